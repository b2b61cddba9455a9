"""Executes the analysis notebooks (jupytext "percent" .py files) against a results table.

  python analysis/run_notebooks.py --results runs/study                # a study dir or results.parquet
  VISPRIOR_RESULTS=runs/study python analysis/run_notebooks.py mixtures
  python analysis/run_notebooks.py --synthetic --out /tmp/nb           # on a synthetic study (no runs needed)

Each notebook under ``analysis/notebooks/`` is converted with jupytext, executed with nbclient on
the ``python3`` kernel of this interpreter, and written executed to ``<out>/<name>.ipynb``; its
figures go to ``<out>/figures``. The notebooks read their inputs from the environment:
``VISPRIOR_RESULTS`` (absolute path of the table), ``VISPRIOR_FIGURES``, ``VISPRIOR_N_BOOT``,
``VISPRIOR_SOURCE`` (``both``: figures beside the paper's; ``store``: the study alone).
Exit status 1 if any notebook fails; the failing cell's error is printed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
NOTEBOOKS = HERE / "notebooks"


def notebook_paths(names=None) -> list[pathlib.Path]:
  if not names:
    return sorted(NOTEBOOKS.glob("*.py"))
  out = []
  for name in names:
    path = pathlib.Path(name)
    if not path.suffix:
      path = NOTEBOOKS / f"{name}.py"
    if not path.exists():
      raise SystemExit(f"notebook {name} not found (looked for {path})")
    out.append(path.resolve())
  return out


def _environment(results: pathlib.Path, out: pathlib.Path, n_boot: int, source: str) -> None:
  """What the kernels inherit: inputs, a headless matplotlib, and this interpreter first on PATH."""
  os.environ["VISPRIOR_RESULTS"] = str(results)
  os.environ["VISPRIOR_SOURCE"] = source
  os.environ["VISPRIOR_FIGURES"] = str(out / "figures")
  os.environ["VISPRIOR_N_BOOT"] = str(n_boot)
  os.environ["MPLBACKEND"] = "Agg"
  os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")


def execute(path: pathlib.Path, out: pathlib.Path, timeout: int = 600) -> tuple[str, float, str | None]:
  """Runs one notebook; returns (name, seconds, error or None) and writes <out>/<name>.ipynb."""
  import jupytext
  import nbformat
  from nbclient import NotebookClient
  from nbclient.exceptions import CellExecutionError

  start = time.time()
  nb = jupytext.read(path, fmt="py:percent")
  client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(out)}})
  error = None
  try:
    client.execute()
  except CellExecutionError as e:
    error = str(e)
  except Exception as e:  # kernel died, timeout: still write what ran
    error = f"{type(e).__name__}: {e}"
  nbformat.write(nb, out / f"{path.stem}.ipynb")
  return path.stem, time.time() - start, error


def run(results, out, names=None, *, n_boot: int = 200, timeout: int = 600, jobs: int = 1,
        source: str = "both") -> dict:
  """Executes the notebooks; returns {name: error or None}."""
  results = pathlib.Path(results).resolve()
  out = pathlib.Path(out).resolve()
  (out / "figures").mkdir(parents=True, exist_ok=True)
  _environment(results, out, n_boot, source)
  paths = notebook_paths(names)
  outcome = {}
  if jobs > 1 and len(paths) > 1:   # one child process per notebook (this script, one notebook each)
    def child(path):
      start = time.time()
      proc = subprocess.run([sys.executable, __file__, str(path), "--results", str(results), "--out", str(out),
                             "--n-boot", str(n_boot), "--timeout", str(timeout), "--source", source],
                            capture_output=True, text=True)
      return path.stem, time.time() - start, None if proc.returncode == 0 else (proc.stdout + proc.stderr)
    with concurrent.futures.ThreadPoolExecutor(min(jobs, len(paths))) as pool:
      done = list(pool.map(child, paths))
  else:
    done = [execute(p, out, timeout) for p in paths]
  for name, seconds, error in done:
    print(f"{name:12s} {'FAILED' if error else 'ok':6s} {seconds:6.1f} s  -> {out / (name + '.ipynb')}")
    if error:
      print(error[-3000:], file=sys.stderr)
    outcome[name] = error
  return outcome


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("notebooks", nargs="*", help="names under analysis/notebooks (default: all) or paths")
  parser.add_argument("--results", default=os.environ.get("VISPRIOR_RESULTS"),
                      help="study dir or results.parquet (default: $VISPRIOR_RESULTS)")
  parser.add_argument("--out", default="analysis/executed", help="executed notebooks and figures go here")
  parser.add_argument("--synthetic", action="store_true", help="write and use a synthetic study in <out>/synthetic")
  parser.add_argument("--n-boot", type=int, default=int(os.environ.get("VISPRIOR_N_BOOT", 200)))
  parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
  parser.add_argument("--jobs", type=int, default=1, help="notebooks executed in parallel")
  parser.add_argument("--source", default=os.environ.get("VISPRIOR_SOURCE", "both"), choices=("store", "both"),
                      help="figures of the study alone, or beside the paper's numbers")
  args = parser.parse_args(argv)
  results = args.results
  if args.synthetic:
    from visprior_jax.analysis.synthetic import write_synthetic_study
    from visprior_jax.study.store import collect
    results = collect(write_synthetic_study(pathlib.Path(args.out) / "synthetic"))
  if not results:
    parser.error("give --results, set VISPRIOR_RESULTS, or use --synthetic")
  outcome = run(results, args.out, args.notebooks, n_boot=args.n_boot, timeout=args.timeout, jobs=args.jobs,
                source=args.source)
  return 1 if any(outcome.values()) else 0


if __name__ == "__main__":
  sys.exit(main())
