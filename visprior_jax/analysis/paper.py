"""Paper mode: every number the paper publishes in its tables and figures, in the results store's long format.

``paper_results.csv`` (package data, next to this file) holds one row per published number, with
the store's record and spec columns, so every fit and figure runs on it exactly as on a study's
results (``figures.draw(..., source="paper"|"both")``)::

  source   where it is printed: "Table 1/2/3/5/6", "Fig. 1/2/3/4/5/6/7", "Sec. 4.4" (Fig. 9), "Sec. 4.5" (Fig. 10)
  approx   False for tables and data labels printed in the PDF; True for values read by eye from a
           figure by eye (about +-0.1 on the plotted scale)
  run      the paper's model: ``<size>_<tokens>/<recipe>`` (``3b_30b/sweep:code_reasoning:75``,
           ``7b_1t/balanced``, ``3b_50b/mix6``), ``sft_ablation/<variant>``, ``frontier/<model>``
  spec     size (preset name), params (nominal), tokens, mixture (``data.mixtures`` recipe name),
           encoder, seed (42: the paper's seed), sft, blind, share.<source or category> (fractions)
  record   stage, suite, benchmark, category, metric, value, primary, n, plus ``note``

What is where (and which numbers are approximate):

  Table 3 / 6   7B / 1T: lm:t_acc (fraction), lm:ppl, vqa:<category>, vqa:overall           exact
  Table 1       3B / 30B grid, vqa:overall, share.reasoning x share.visual                   exact
  Table 2       3B / 50B mix0-mix10: source shares, share.reasoning/visual (the table's own
                columns), lm:t_acc (printed in %, stored as a fraction), lm:ppl, vqa:overall,
                study/mixture_rank/overall_rank                                              exact
  Fig. 2        16 single-source 3B / 30B models: vqa:overall (data labels)                 exact
                                                  vqa:<category> bars                        approx
  Fig. 7        the same models, mle_bench small/medium/large/overall                        exact
  Fig. 6        SFT data removal: sft_ablation/full category scores; the 4 variants as
                metric ``pct_of_baseline`` (% of full) per category and for the overall     exact
  Fig. 4        Spearman rho between categories over 105 3B models: suite ``correlation``,
                benchmark ``spearman:<row>``, category = row, metric = column (upper triangle)  exact
  Fig. 3        8 category sweeps, vqa:overall and vqa:Vision-Centric                        approx
  Fig. 5        reasoning sweep x 3 encoders: overall, Vision-Centric, OCR & Chart           approx
  Fig. 1        web-crawl scaling, 5 sizes x 8 token budgets, vqa:overall                    approx
  Table 5       frontier models on MLE-Bench                                                  exact
  Sec. 4.4      judge curves (logical_soundness %, reasoning_depth) of the code / science
                sweeps; the code 0% and 100% endpoints are printed in the text               endpoints exact
  Sec. 4.5      alignment:mnn curves of the code / science sweeps                            approx

Left out: Fig. 1's other panels (only their ranges were read, not points), Fig. 5's General and
Knowledge (ranges only). Values keep the store's scales (VQA 0-100, language accuracy as a fraction).

Overall means follow ``eval/vqa/registry.summarize``: the unweighted mean over the 16 benchmarks,
i.e. the category means weighted by their benchmark counts 4/4/3/5 (Table 3: 37.32 = (4*46.92 +
4*28.35 + 3*21.49 + 5*46.31) / 16). :func:`overall_from_categories` computes it with that very
function, by giving every benchmark of a category the category's mean.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from visprior_jax.eval.vqa import registry
from visprior_jax.eval.vqa.base import CATEGORIES

PAPER_CSV = "paper_results.csv"
_BOOL = ("approx", "primary", "blind")


def paper_table(source: str | Iterable[str] | None = None) -> pd.DataFrame:
  """The paper's published numbers (long format); ``source`` filters to e.g. "Table 3" or a list."""
  ref = importlib.resources.files("visprior_jax.analysis") / PAPER_CSV
  with ref.open("r") as fh:
    df = pd.read_csv(fh, dtype={"size": "string", "mixture": "string", "encoder": "string", "sft": "string",
                                "stage": "string", "category": "string", "note": "string"})
  for col in _BOOL:
    df[col] = df[col].map({True: True, False: False, "true": True, "false": False}).astype("boolean")
  for col in ("params", "tokens", "seed", "n", "step"):
    df[col] = df[col].astype("Int64")
  if source is not None:
    df = df[df["source"].isin([source] if isinstance(source, str) else list(source))].reset_index(drop=True)
  return df


def overall_from_categories(scores: Mapping[str, float]) -> dict[str, float]:
  """Category means -> {"overall", "perception", "reasoning", <category>...} with registry.summarize.

  Every benchmark of a category gets the category's mean, so the summary's unweighted mean over
  benchmarks is the benchmark-count-weighted mean of the categories."""
  primary = {}
  for name in registry.PAPER16:
    cat = registry.BENCHMARKS[name].category
    if cat in scores and scores[cat] is not None and not pd.isna(scores[cat]):
      primary[name] = float(scores[cat])
  return {k: v for k, (v, _) in registry.summarize(primary).items()}


def derive_summaries(df: pd.DataFrame) -> pd.DataFrame:
  """Rows for vqa:overall / perception / reasoning computed from each run's 4 category scores.

  Returns new rows only (``note`` = "derived from category scores"; ``approx`` if any input was);
  published rows are not touched, so the two can be compared."""
  cats = df[df["benchmark"].isin([f"vqa:{c}" for c in CATEGORIES]) & (df["metric"].isin(CATEGORIES))]
  out = []
  for (source, run), g in cats.groupby(["source", "run"], sort=False):
    scores = dict(zip(g["metric"], g["value"]))
    if len(scores) < len(CATEGORIES):
      continue
    summary = overall_from_categories(scores)
    base = g.iloc[0].to_dict()
    for metric in ("overall", "perception", "reasoning"):
      out.append({**base, "benchmark": f"vqa:{metric}", "category": pd.NA, "metric": metric, "value": summary[metric],
                  "approx": bool(g["approx"].any()), "n": 16 if metric == "overall" else 7 if metric == "perception"
                  else 9, "note": "derived from category scores"})
  return pd.DataFrame(out, columns=df.columns)


def paper_spearman() -> pd.DataFrame:
  """Fig. 4 as a symmetric 4 x 4 matrix (1 on the diagonal) over CATEGORIES."""
  rows = paper_table("Fig. 4")
  m = pd.DataFrame(np.eye(len(CATEGORIES)), index=list(CATEGORIES), columns=list(CATEGORIES))
  for a, b, v in zip(rows["category"], rows["metric"], rows["value"]):
    m.loc[a, b] = m.loc[b, a] = v
  return m
