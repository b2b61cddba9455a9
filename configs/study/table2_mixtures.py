"""Table 2: mix0 (language-favorable) ... mix10, 3B models on 50B tokens each (PAPER.md 2.5)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paper  # noqa: E402

from visprior_jax.data.mixtures import MIXES  # noqa: E402


def get_config(arg: str = ""):
  del arg
  runs = {m: dict(preset="llama3_3b", recipe=m, tokens=50 * paper.B, shares=dict(MIXES[m])) for m in MIXES}
  return paper.study("table2_mixtures", runs)
