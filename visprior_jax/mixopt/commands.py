"""``visprior mix fit|propose|validate``: the CLI logic (cli.py parses flags and prints errors).

  visprior mix fit      --results=SPEC [--target=vqa_overall] [--out=DIR]
  visprior mix propose  --results=SPEC [--target=vqa_overall] [--k=4] [--predictor=gp] [--out=FILE.py]
  visprior mix validate [--results=runs/tiny_study] [--out=docs/mixture_optimizer.md]

``--results``: a study directory, a results .parquet/.csv, ``paper`` (the paper's Table 1) or
``paper:<source>``; several joined by commas (``coords.load_results``). ``fit`` prints each predictor's
leave-one-out error and rank correlation and writes ``fit_<target>.csv`` and the surface plot
(``surface_<target>.png/.csv``) under ``--out`` (default ``<study dir>/mixopt``, or ``runs/mixopt``).

Runs of several sizes without ``params`` cannot share one model (nothing says how far apart the sizes
are), so ``fit`` and ``propose`` then use the largest size's runs and say so. A study directory's
prepared pool (``<study>/data/<source>/manifest.json``) gives the epochs per bucket.
"""

from __future__ import annotations

import os

import pandas as pd

from visprior_jax.analysis.report import md_table
from visprior_jax.mixopt import coords, plots, predictors, propose, validate
from visprior_jax.mixopt.base import scale_features


def load_table(results: str, target: str, log=print) -> pd.DataFrame:
  """The coordinates table of ``results`` for ``target``; one size when sizes cannot be told apart."""
  if not results:
    raise ValueError("--results is required: a study directory, a results.parquet/.csv, or paper[:Table 1]")
  tgt = coords.resolve_target(target)
  first = results.split(",")[0]
  pool = coords.pool_tokens(os.path.join(first, "data")) if os.path.isdir(first) else None
  tab = coords.table(coords.load_results(results), tgt, pool=pool)
  if tab.attrs.get("skipped"):
    skipped = tab.attrs["skipped"]
    log(f"left out {len(skipped)} runs: {'; '.join(skipped[:5])}" + (" ..." if len(skipped) > 5 else ""))
  if tab.empty:
    raise ValueError(f"no run of {results} has mixture coordinates and {tgt.name}")
  try:
    scale_features(tab)
  except ValueError:
    largest = coords.order_sizes(tab)[-1]
    log(f"runs of sizes {sorted(map(str, tab['size'].unique()))} have no params: using size {largest} only")
    tab = tab[tab["size"] == largest].reset_index(drop=True)
    tab.attrs["target"] = tgt
  return tab


def _default_out(results: str) -> str:
  first = results.split(",")[0]
  return os.path.join(first, "mixopt") if os.path.isdir(first) else os.path.join("runs", "mixopt")


def fit_command(results: str, target: str = "vqa_overall", out: str | None = None, names=predictors.NAMES,
                n_boot: int = 1000) -> pd.DataFrame:
  """Fits every predictor, prints the leave-one-out table, writes it and the surface plot under ``out``."""
  tab = load_table(results, target)
  tgt = tab.attrs["target"]
  out = out or _default_out(results)
  print(f"{len(tab)} runs, {tab['cell'].nunique()} mixtures; target {tgt.name} ({tgt.label}, "
        f"{'higher' if tgt.higher_is_better else 'lower'} is better)")
  table = validate.loo_table(tab, names, higher=tgt.higher_is_better, n_boot=n_boot)
  show = table.assign(
      n_params=table.get("n_params", pd.Series(dtype=float)).astype("Int64"),
      spearman_ci=[f"[{lo:.2f}, {hi:.2f}]" if pd.notna(lo) else "" for lo, hi in
                   zip(table.get("ci_lo", pd.Series(dtype=float)), table.get("ci_hi", pd.Series(dtype=float)))])
  cols = ["predictor", "status", "n_params", "loo_rmse", "spearman", "spearman_ci", "regret", "opt_reasoning",
          "opt_visual", "opt_value", "reason"]
  print(md_table(show, cols))
  models = table.attrs.get("models", {})
  os.makedirs(out, exist_ok=True)
  table.to_csv(os.path.join(out, f"fit_{tgt.name}.csv"), index=False)
  if models:
    paths = plots.surface(tab, models, tgt, out, stem=f"surface_{tgt.name}")
    print(f"wrote {os.path.join(out, f'fit_{tgt.name}.csv')} and {paths['png']} (+ .csv)")
  else:
    print(f"wrote {os.path.join(out, f'fit_{tgt.name}.csv')}; no predictor could be fitted, so no surface plot")
  return table


def propose_command(results: str, target: str = "vqa_overall", k: int = 4, out: str | None = None,
                    predictor: str = "gp", command: str = "") -> str:
  """Proposes ``k`` mixtures and writes them as a study config (default configs/study/proposed_<target>.py)."""
  tab = load_table(results, target)
  tgt = tab.attrs["target"]
  if predictor not in predictors.NAMES:
    raise ValueError(f"unknown predictor {predictor!r}; predictors: {', '.join(predictors.NAMES)}")
  props = propose.propose(tab, k, predictor=predictor, higher=tgt.higher_is_better)
  out = out or os.path.join(propose.STUDY_CONFIGS, f"proposed_{tgt.name}.py")
  path = propose.write_config(out, props, tab, tgt, command)
  print(md_table(props.assign(reasoning=100 * props["reasoning"], visual=100 * props["visual"]),
                 ["rank", "reasoning", "visual", "mean", "std", "ei"]))
  if len(props) < k:
    print(f"only {len(props)} of {k} candidates could be proposed")
  print(f"wrote {path}; run it with: visprior study run --config={propose.shown(path)} --workdir=DIR")
  return path


def validate_command(out: str = "docs/mixture_optimizer.md", tiny: str | None = None, **kw) -> str:
  from visprior_jax.mixopt import report
  path = report.write(out, tiny=tiny, **kw)
  print(f"wrote {path}")
  return path
