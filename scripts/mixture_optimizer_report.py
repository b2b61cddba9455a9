"""Writes docs/mixture_optimizer.md (+ docs/figures/mixture_optimizer/*.png/.csv): the mixture optimizer's validation.

  python scripts/mixture_optimizer_report.py [--tiny=runs/tiny_study] [--out=docs/mixture_optimizer.md]   (make mix-report)

On the paper's Table 1 (shipped reference numbers): leave-one-out Spearman with a bootstrap interval,
top-1 regret, distance of the predicted optimum from 60/15, the same for the baselines, and the budget
curve; on the tiny study (when ``--tiny`` holds its results): fit on the smaller size, rank the larger.
visprior_jax/mixopt/report.py documents the page. About 1-2 minutes on a 2-core machine (--quick: a
few seconds, fewer draws; for trying changes, not for the committed page).
"""

import argparse
import os
import sys
import time

# Small matrices only: OpenBLAS threads just add synchronisation (25x slower GP fits measured on a
# busy 2-core machine). Must be set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from visprior_jax.mixopt import report  # noqa: E402


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--out", default="docs/mixture_optimizer.md")
  ap.add_argument("--tiny", default="runs/tiny_study", help="the tiny study's directory (skipped when absent)")
  ap.add_argument("--quick", action="store_true", help="few draws (a smoke run; do not commit its page)")
  args = ap.parse_args(argv)
  kw = dict(n_boot=200, n_draws=10, slow_draws=3) if args.quick else {}
  start = time.time()
  path = report.write(args.out, tiny=args.tiny, **kw)
  print(f"wrote {path} in {time.time() - start:.0f} s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
