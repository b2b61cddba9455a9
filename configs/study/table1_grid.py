"""Table 1: the reasoning x visual grid, 3B models on 30B tokens per cell (PAPER.md 2.4)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paper  # noqa: E402

from visprior_jax.data.mixtures import TABLE1_CELLS  # noqa: E402


def get_config(arg: str = ""):
  del arg
  runs = {f"grid_{r}_{v}": dict(preset="llama3_3b", recipe=f"grid:{r}:{v}", tokens=30 * paper.B,
                                shares={"reasoning": r / 100, "visual": v / 100}) for r, v in TABLE1_CELLS}
  return paper.study("table1_grid", runs)
