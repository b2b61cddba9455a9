"""Fig. 3: each of the 8 categories at 0/25/50/75/100% of a 30B-token mix, 3B models (PAPER.md 2.3).
Arg: a comma-separated subset of categories (default all 8)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paper  # noqa: E402

from visprior_jax.data.mixtures import CATEGORIES, SWEEP_PERCENTS  # noqa: E402


def get_config(arg: str = ""):
  cats = [c for c in arg.split(",") if c] or list(CATEGORIES)
  runs = {f"sweep_{c}_{p}": dict(preset="llama3_3b", recipe=f"sweep:{c}:{p}", tokens=30 * paper.B,
                                 shares={c: p / 100}) for c in cats for p in SWEEP_PERCENTS}
  return paper.study("fig3_sweeps", runs)
