"""From the long results table to one row per run: the shape every fit and figure reads.

The store (``visprior_jax.study.store``) and the paper table (``paper.paper_table``) are long: one
row per (run, stage, step, benchmark, metric). :func:`runs_table` pivots the measures the analysis
uses into columns, next to the run's spec (size, params, tokens, mixture, encoder, seed, sft,
blind, ``share.*``):

  measure            benchmark, metric                     scale
  overall            vqa:overall, overall                  0-100 (mean over the 16 benchmarks)
  General ...        vqa:<category>, <category>            0-100 (4 categories)
  perception         vqa:perception, perception            0-100 (General + OCR & Chart)
  reasoning          vqa:reasoning, reasoning              0-100 (Knowledge + Vision-Centric)
  t_acc, ppl         lm:t_acc / lm:ppl                     fraction / perplexity
  mle_<split>        mle_bench, small|medium|large|overall 0-100
  logical_soundness  judge:reasoning_quality               % coherent
  reasoning_depth    judge:reasoning_quality               words
  mnn                alignment:mnn, mnn                    mutual-kNN overlap

Which stage a measure comes from: a run evaluated at several stages has, e.g., language evals of
its pre-trained LLM and VQA of its SFT model. Language measures prefer ``pretrain``, the rest
``sft``; a measure found only at another stage is taken from there (stage preference lists below).
Each run's last evaluated step is used (:func:`latest`). Only real-image evaluations count unless
``images="blank"`` asks for the no-image ones (:func:`blank_runs_table`). In the paper table a run can
appear in two figures with the same number (Fig. 1's 3B/30B point is Fig. 2's web-crawl bar): the exact
value wins over the one read from a figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from visprior_jax.eval.vqa.base import CATEGORIES

MEASURES: dict[str, tuple[str, str]] = {
    "overall": ("vqa:overall", "overall"),
    **{c: (f"vqa:{c}", c) for c in CATEGORIES},
    "perception": ("vqa:perception", "perception"),
    "reasoning": ("vqa:reasoning", "reasoning"),
    "t_acc": ("lm:t_acc", "t_acc"),
    "ppl": ("lm:ppl", "ppl"),
    **{f"mle_{s}": ("mle_bench", s) for s in ("small", "medium", "large", "overall")},
    "logical_soundness": ("judge:reasoning_quality", "logical_soundness"),
    "reasoning_depth": ("judge:reasoning_quality", "reasoning_depth"),
    "mnn": ("alignment:mnn", "mnn"),
}
LABELS = {"overall": "Avg VQA", "t_acc": "language accuracy", "ppl": "perplexity", "mle_overall": "MLE-Bench overall",
          "mle_small": "MLE-Bench small (0-30%)", "mle_medium": "MLE-Bench medium (30-60%)",
          "mle_large": "MLE-Bench large (60-100%)", "logical_soundness": "Logical Soundness (%)",
          "reasoning_depth": "Reasoning Depth", "mnn": "LLM-vision mNN", "perception": "perception (General+OCR)",
          "reasoning": "reasoning (Knowledge+Vision-Centric)"}
STAGE_PREFERENCE = {"lm": ("pretrain", "sft", "align"), "default": ("sft", "align", "pretrain")}
SPEC_COLUMNS = ("study", "size", "params", "tokens", "mixture", "encoder", "seed", "sft", "blind")
IMAGES_DEFAULT = "real"     # records without an "images" field were evaluated on the real images
_NOT_SPEC = {"stage", "step", "checkpoint", "suite", "benchmark", "category", "metric", "value", "primary", "n",
             "n_skipped", "settings", "time", "images", "run_dir", "file", "note", "approx", "source"}


def label(measure: str) -> str:
  return LABELS.get(measure, measure)


def _stage_rank(stage: pd.Series, suite: str) -> pd.Series:
  order = STAGE_PREFERENCE["lm" if suite == "lm" else "default"]
  return stage.map(lambda s: order.index(s) if s in order else len(order)).astype(int)


def latest(df: pd.DataFrame) -> pd.DataFrame:
  """Each run's last evaluated step, per stage and images (a run's pretrain and sft evals are both kept,
  and its real- and blank-image evals each at their own last step).

  Rows without a step (parameter exports, the paper table) count as the last step only when their
  (run, stage) has no numbered step."""
  if df.empty:
    return df
  stage = df["stage"].fillna("")
  keys = [df["run"], stage] + ([df["images"].fillna(IMAGES_DEFAULT)] if "images" in df else [])
  last = df["step"].groupby(keys, dropna=False).transform("max")
  keep = (df["step"] == last).fillna(False) | last.isna()
  return df[keep.astype(bool)].reset_index(drop=True)


def with_images(df: pd.DataFrame, images: str | None = "real") -> pd.DataFrame:
  """The records evaluated on ``images`` ("real": also records without the field, as the paper table;
  "blank": the no-image evaluations; None: all)."""
  if images is None or df.empty:
    return df
  if "images" not in df:
    return df if images == "real" else df.iloc[0:0]
  return df[df["images"].fillna(IMAGES_DEFAULT) == images]


def runs_table(df: pd.DataFrame, measures: Iterable[str] | None = None, images: str = "real") -> pd.DataFrame:
  """One row per run: spec columns, ``share.*`` columns and one column per measure present.

  ``df``: the store's long table or the paper table. Columns ``approx`` (True when any of the run's
  measures was read from a figure) and ``source`` are kept when the input has them. ``images``: which
  evaluations (:func:`with_images`): the real-image ones by default, "blank" for the no-image ones
  (:func:`blank_runs_table`)."""
  names = list(MEASURES) if measures is None else list(measures)
  unknown = [m for m in names if m not in MEASURES]
  if unknown:
    raise ValueError(f"unknown measures {unknown}; known: {', '.join(MEASURES)}")
  df = with_images(df, images)
  if df.empty:
    return pd.DataFrame(columns=["run"])
  df = latest(df)
  stage = df["stage"].fillna("") if "stage" in df else pd.Series("", index=df.index)
  pieces = []
  for m in names:
    bench, metric = MEASURES[m]
    rows = df[(df["benchmark"] == bench) & (df["metric"] == metric)]
    if rows.empty:
      continue
    rows = rows.assign(_rank=_stage_rank(stage[rows.index], bench.split(":")[0]),
                       _approx=rows["approx"].astype(bool) if "approx" in rows else False)
    rows = rows.sort_values(["_rank", "_approx"], kind="stable").drop_duplicates("run", keep="first")
    pieces.append(rows[["run", "value", "_approx"]].rename(columns={"value": m, "_approx": f"_approx_{m}"}))
  spec_cols = [c for c in df.columns if c not in _NOT_SPEC and c != "run" and not c.startswith("spec.")]
  specs = df.groupby("run", sort=False)[spec_cols].first() if spec_cols else pd.DataFrame(index=df["run"].unique())
  out = specs.reset_index()
  for piece in pieces:
    out = out.merge(piece, on="run", how="left")
  approx_cols = [c for c in out.columns if c.startswith("_approx_")]
  if "approx" in df:
    out["approx"] = out[approx_cols].fillna(False).astype(bool).any(axis=1) if approx_cols else False
  if "source" in df:
    out["source"] = df.groupby("run", sort=False)["source"].agg(lambda s: "; ".join(dict.fromkeys(s.dropna())))\
        .reindex(out["run"]).to_numpy()
  out = out.drop(columns=approx_cols)
  present = [m for m in names if m in out.columns]
  out = out.dropna(subset=present, how="all") if present else out
  return out.reset_index(drop=True)


def blank_runs_table(df: pd.DataFrame, measures: Iterable[str] | None = None) -> pd.DataFrame:
  """:func:`runs_table` of the no-image evaluations (``vqa.images=blank``): what each run scores with
  every image replaced by a uniform gray one (empty when the store has none)."""
  return runs_table(df, measures, images="blank")


def select(runs: pd.DataFrame, where: Mapping | None = None) -> pd.DataFrame:
  """Rows of a runs (or long) table whose columns equal ``where``'s values (a list = any of them;
  a callable = a predicate on the column)."""
  if not where:
    return runs
  keep = pd.Series(True, index=runs.index)
  for col, want in where.items():
    if col not in runs:
      return runs.iloc[0:0]
    if callable(want):
      keep &= runs[col].map(want).fillna(False).astype(bool)
    elif isinstance(want, (list, tuple, set)):
      keep &= runs[col].isin(list(want))
    else:
      keep &= runs[col] == want
  return runs[keep]


def mixture_kind(mixture) -> tuple[str, tuple]:
  """Parses a recipe name (``data.mixtures``): ``sweep:<cat>:<pct>`` -> ("sweep", (cat, pct)),
  ``grid:<rea>:<vis>`` -> ("grid", (rea, vis)), ``single:<source>`` -> ("single", (source,)),
  anything else -> ("mix", (name,))."""
  if not isinstance(mixture, str) or not mixture:
    return ("", ())
  parts = mixture.split(":")
  try:
    if parts[0] == "sweep" and len(parts) == 3:
      return ("sweep", (parts[1], float(parts[2])))
    if parts[0] == "grid" and len(parts) == 3:
      return ("grid", (float(parts[1]), float(parts[2])))
  except ValueError:
    pass
  if parts[0] == "single" and len(parts) == 2:
    return ("single", (parts[1],))
  return ("mix", (mixture,))
