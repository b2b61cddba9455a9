"""Fig. 2 and Fig. 7: the 16 single-source 3B models on 30B tokens each (PAPER.md 1.4, 5.3, 5.4)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paper  # noqa: E402

from visprior_jax.data.mixtures import SOURCES  # noqa: E402


def get_config(arg: str = ""):
  del arg
  runs = {f"single_{s}": dict(preset="llama3_3b", recipe=f"single:{s}", tokens=30 * paper.B, shares={s: 1.0})
          for s in SOURCES}
  return paper.study("fig2_sources", runs)
