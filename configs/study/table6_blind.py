"""Table 6: Table 3's two 7B/1T models adapted with and without a blind SFT phase (instructions without
images) before the standard SFT (PAPER.md 3.6, 5.2): four adaptations of two LLMs."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import table3_7b  # noqa: E402


def get_config(arg: str = ""):
  del arg
  return table3_7b.get_config("blind")
