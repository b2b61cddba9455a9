"""Table 3: the two 7B models on 1T tokens, language-favorable (mix0) vs balanced (mix6), adapted with
the full alignment (2.5M) and SFT (7M) sets (PAPER.md 2.6, 3.4): point paths.align_data/sft_data at them.
Arg ``blind`` adds Table 6's runs (a blind SFT phase first) on the same two LLMs (configs/study/table6_blind.py)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paper  # noqa: E402

from visprior_jax.data.mixtures import MIXES  # noqa: E402


def get_config(arg: str = ""):
  runs = {}
  for name, mix in (("language_favorable", "mix0"), ("balanced", "mix6")):
    runs[name] = dict(preset="llama3_7b", recipe=mix, tokens=1000 * paper.B, shares=dict(MIXES[mix]))
    if arg == "blind":
      runs[f"{name}_blind"] = dict(runs[name], blind=True, llm_from=name)
  return paper.study("table6_blind" if arg == "blind" else "table3_7b", runs)
