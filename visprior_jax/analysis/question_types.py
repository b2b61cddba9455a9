"""The tiny study's question types with their baselines: one row per run, and the tables the report shows.

The tiny suite (``eval/vqa/tiny.py``, ``eval/vqa/mle_bench.py``) records, per question type, the
accuracy and its baselines (``eval/vqa/baselines.py``): ``chance`` (uniform guess), ``majority`` (always
the type's most common gold answer), ``distinct`` and ``top_share`` (how many different answers the
model gives, and the % of items given the most common one), ``items``. :func:`per_run` turns the long
results table into one row per run with, for every measure below, the columns

  <key>             the run's score (0-100)
  <key>.chance      expected score of a uniform guess
  <key>.majority    score of always giving the most common gold answer
  <key>.distinct    number of different answers (question types only)
  <key>.top_share   % of items given the most common answer (question types only)
  <key>.items       items behind the score
  <key>.se          binomial standard error of the score from its items: 100 sqrt(p (1 - p) / n)

  measures   question types (``TYPES``; keys differ from run spec columns): colour, shape (General);
             count, relation, relative_size (the "size" task: which is larger) (Vision-Centric);
             fact_in_sft (facts the instructions teach) and fact_in_text (facts stated only in the
             pre-training text: the CONTROL) (Knowledge); word, number (OCR & Chart); mle_small /
             mle_medium / mle_large (MLE-Bench existence by object size)
             categories: General, Knowledge, OCR & Chart, Vision-Centric and overall (Avg VQA), the
             ``tables.runs_table`` columns; their chance / majority are the means over the category's
             benchmarks of the benchmarks' own (item-weighted) chance / majority, their standard error
             that of the mean of the benchmarks' scores

A question type is read from the open-asked benchmark when a run has it (``tiny_*_open``, the tiny
study's setting), else from the letter-answered one. The same function over the no-image evaluations
(``images="blank"``) gives what each run scores with every image replaced by a gray one.

A run answers a type "with one constant" when ``top_share >= CONSTANT_SHARE`` (95%).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd

from visprior_jax.analysis import tables
from visprior_jax.eval.vqa import registry
from visprior_jax.eval.vqa.base import CATEGORIES

CONSTANT_SHARE = 95.0
BASELINES = ("chance", "majority")


@dataclasses.dataclass(frozen=True)
class QuestionType:
  key: str                      # column name in per_run
  label: str
  category: str                 # the paper category it belongs to, or "MLE-Bench"
  benchmarks: tuple[str, ...]   # where it is recorded, in order of preference
  group: str                    # records: accuracy/<group> (MLE-Bench: <group>) and <baseline>/<group>
  visual: bool = False          # needs the image (General and Vision-Centric types): the "models that see" check

  @property
  def accuracy_metric(self) -> str:
    return self.group if self.benchmarks == ("mle_bench",) else f"accuracy/{self.group}"


_GENERAL, _KNOWLEDGE, _VISION = (("tiny_general_open", "tiny_general"), ("tiny_knowledge_open", "tiny_knowledge"),
                                 ("tiny_vision_open", "tiny_vision"))
TYPES = (
    QuestionType("colour", "colour", "General", _GENERAL, "colour", visual=True),
    QuestionType("shape", "shape", "General", _GENERAL, "shape", visual=True),
    QuestionType("count", "count", "Vision-Centric", _VISION, "count", visual=True),
    QuestionType("relation", "relation", "Vision-Centric", _VISION, "relation", visual=True),
    QuestionType("relative_size", "size (which is larger)", "Vision-Centric", _VISION, "size", visual=True),
    QuestionType("fact_in_sft", "fact taught in SFT", "Knowledge", _KNOWLEDGE, "fact_in_sft"),
    QuestionType("fact_in_text", "CONTROL: fact only in pre-training text", "Knowledge", _KNOWLEDGE, "fact_in_text"),
    QuestionType("word", "OCR word", "OCR & Chart", ("tiny_ocr",), "word"),
    QuestionType("number", "OCR number", "OCR & Chart", ("tiny_ocr",), "number"),
    QuestionType("mle_small", "MLE small objects (0-30%)", "MLE-Bench", ("mle_bench",), "small"),
    QuestionType("mle_medium", "MLE medium objects (30-60%)", "MLE-Bench", ("mle_bench",), "medium"),
    QuestionType("mle_large", "MLE large objects (60-100%)", "MLE-Bench", ("mle_bench",), "large"),
)
BY_KEY = {t.key: t for t in TYPES}
VISUAL = tuple(t.key for t in TYPES if t.visual)
CONTROL = "fact_in_text"
CATEGORY_MEASURES = CATEGORIES + ("overall",)
TINY_BENCHMARKS = tuple(n for n, b in registry.BENCHMARKS.items() if n.startswith("tiny_") and b.category)


def label(key: str) -> str:
  return BY_KEY[key].label if key in BY_KEY else tables.label(key)


def is_tiny(df: pd.DataFrame) -> bool:
  """True when the long table holds records of the tiny suite (``tiny_*`` benchmarks)."""
  return "benchmark" in df and bool(df["benchmark"].astype(str).str.startswith("tiny_").any())


def binomial_se(score, items):
  """100 sqrt(p (1 - p) / n) for a score in % over n items (NaN without items)."""
  p = np.clip(np.asarray(score, dtype=float) / 100.0, 0.0, 1.0)
  n = np.asarray(items, dtype=float)
  with np.errstate(divide="ignore", invalid="ignore"):
    return np.where(n > 0, 100.0 * np.sqrt(p * (1 - p) / n), np.nan)


def _cells(df: pd.DataFrame, images: str) -> tuple[dict, dict]:
  """{(run, benchmark, metric): value} and {(run, benchmark): n} of the suite's records (stage preference
  as ``tables.runs_table``: sft, then align, then pretrain; each run's last step)."""
  long = tables.latest(tables.with_images(df, images))
  long = long[long["benchmark"].isin(TINY_BENCHMARKS + ("mle_bench",))]
  if long.empty:
    return {}, {}
  order = tables.STAGE_PREFERENCE["default"]
  rank = long["stage"].map(lambda s: order.index(s) if s in order else len(order)) if "stage" in long else 0
  long = long.assign(_rank=rank).sort_values("_rank", kind="stable")
  long = long.drop_duplicates(["run", "benchmark", "metric"], keep="first")
  cells = dict(zip(zip(long["run"], long["benchmark"], long["metric"]), long["value"].astype(float)))
  counts = dict(zip(zip(long["run"], long["benchmark"]), pd.to_numeric(long["n"], errors="coerce")))
  return cells, counts


def _type_columns(run: str, t: QuestionType, cells: dict, counts: dict) -> dict:
  bench = next((b for b in t.benchmarks if (run, b, t.accuracy_metric) in cells), None)
  if bench is None:
    return {}
  out = {t.key: cells[(run, bench, t.accuracy_metric)]}
  for kind in ("chance", "majority", "distinct", "top_share", "items"):
    out[f"{t.key}.{kind}"] = cells.get((run, bench, f"{kind}/{t.group}"), math.nan)
  if not out[f"{t.key}.items"] > 0:    # records written before items/<task>: the benchmark's items, split evenly
    groups = sum(1 for other in TYPES if bench in other.benchmarks)
    out[f"{t.key}.items"] = float(counts.get((run, bench), math.nan)) / groups
  out[f"{t.key}.se"] = float(binomial_se(out[t.key], out[f"{t.key}.items"]))
  return out


def _category_columns(run: str, runs_row: pd.Series, cells: dict, counts: dict) -> dict:
  out = {}
  present = [b for b in TINY_BENCHMARKS if (run, b, "accuracy") in cells]
  for cat in CATEGORY_MEASURES:
    benches = [b for b in present if cat == "overall" or registry.BENCHMARKS[b].category == cat]
    if not benches:
      continue
    scores = [cells[(run, b, "accuracy")] for b in benches]
    value = runs_row.get(cat, math.nan)
    out[cat] = float(np.mean(scores)) if pd.isna(value) else float(value)
    for kind in BASELINES:
      values = [cells.get((run, b, kind), math.nan) for b in benches]
      out[f"{cat}.{kind}"] = float(np.mean(values))
    items = [float(counts.get((run, b), math.nan)) for b in benches]
    out[f"{cat}.items"] = float(np.sum(items))
    ses = binomial_se(scores, items)
    out[f"{cat}.se"] = float(np.sqrt(np.sum(ses ** 2)) / len(benches))
  return out


def per_run(df: pd.DataFrame, images: str = "real") -> pd.DataFrame:
  """One row per run: ``tables.runs_table`` plus every measure's score, baselines, items and standard
  error (module docstring). Empty when the table has no tiny-suite records for ``images``."""
  runs = tables.runs_table(df, images=images) if not df.empty else pd.DataFrame(columns=["run"])
  cells, counts = _cells(df, images) if not df.empty else ({}, {})
  if runs.empty or not cells:
    return pd.DataFrame(columns=["run"])
  extra = []
  for _, row in runs.iterrows():
    cols = {"run": row["run"]}
    for t in TYPES:
      cols.update(_type_columns(row["run"], t, cells, counts))
    cols.update(_category_columns(row["run"], row, cells, counts))
    extra.append(cols)
  wide = pd.DataFrame(extra)
  keep = [c for c in runs.columns if c not in wide.columns or c == "run"]
  out = runs[keep].merge(wide, on="run", how="left")
  measured = [m for m in measure_keys() if m in out]
  return out.dropna(subset=measured, how="all").reset_index(drop=True) if measured else out.iloc[0:0]


def measure_keys() -> tuple[str, ...]:
  return tuple(t.key for t in TYPES) + CATEGORY_MEASURES


def visual_share(runs: pd.DataFrame) -> pd.Series:
  """Each run's visual-text share of its pre-training mixture, in %: ``share.visual`` (the category) or
  ``share.visual_world`` (the tiny world's visual source), over the sum of the run's ``share.*``; a run
  without either takes the percentage of a ``sweep:visual:<pct>`` mixture name (else NaN)."""
  shares = [c for c in runs.columns if c.startswith("share.")]
  total = runs[shares].sum(axis=1, min_count=1) if shares else pd.Series(np.nan, index=runs.index)
  out = pd.Series(np.nan, index=runs.index, dtype=float)
  for col in ("share.visual", "share.visual_world"):
    if col in runs:
      out = out.fillna(100.0 * runs[col] / total.where(total > 0))
  if "mixture" in runs:
    parsed = runs["mixture"].map(tables.mixture_kind)
    pct = parsed.map(lambda p: p[1][1] if p[0] == "sweep" and p[1][0] == "visual" else np.nan).astype(float)
    out = out.fillna(pct)
  return out


def measure_baselines(real: pd.DataFrame, blank: pd.DataFrame | None, key: str, runs=None) -> dict:
  """{"chance", "majority", "no image"} of measure ``key``: means over the (given) runs' real-image
  rows; the no-image mean over the given runs' blank evaluations when they have them, else over all."""
  r = real if runs is None else real[real["run"].isin(list(runs))]
  out = {"chance": r[f"{key}.chance"].mean() if f"{key}.chance" in r else math.nan,
         "majority": r[f"{key}.majority"].mean() if f"{key}.majority" in r else math.nan, "no image": math.nan}
  if blank is not None and key in blank and blank[key].notna().any():
    b = blank[blank["run"].isin(list(runs))] if runs is not None else blank
    out["no image"] = (b if b[key].notna().any() else blank)[key].mean()
  return out


# ------------------------------------------------------------------------------------------ tables


def summary(real: pd.DataFrame, blank: pd.DataFrame | None = None) -> pd.DataFrame:
  """One row per measure (question types, then categories): chance, majority, the no-image score (mean
  over the runs evaluated without images), the runs' mean / min / max, the range of distinct answers and
  how many runs answer the type with one constant."""
  blank = blank if blank is not None else pd.DataFrame(columns=["run"])
  rows = []
  for key in measure_keys():
    if key not in real or real[key].notna().sum() == 0:
      continue
    v = real[key].dropna()
    row = dict(measure=key, label=label(key), category=BY_KEY[key].category if key in BY_KEY else "category",
               chance=real[f"{key}.chance"].mean(), majority=real[f"{key}.majority"].mean(),
               no_image=blank[key].mean() if key in blank and blank[key].notna().any() else math.nan,
               no_image_runs=int(blank[key].notna().sum()) if key in blank else 0,
               mean=v.mean(), min=v.min(), max=v.max(), runs=len(v), item_se=real[f"{key}.se"].mean())
    if f"{key}.top_share" in real:
      d = real[f"{key}.distinct"].dropna()
      row["distinct"] = f"{d.min():.0f}-{d.max():.0f}" if len(d) and d.min() != d.max() else \
          (f"{d.min():.0f}" if len(d) else "")
      const = int((real[f"{key}.top_share"] >= CONSTANT_SHARE).sum())
      row["constant_runs"] = const
      row["constant"] = f"{const}/{len(v)}" + (" CONSTANT" if const == len(v) else "") if const else "0"
    rows.append(row)
  return pd.DataFrame(rows)


def constant_answers(real: pd.DataFrame) -> pd.DataFrame:
  """The (run, question type) pairs answered with one constant (``top_share >= CONSTANT_SHARE``)."""
  rows = []
  for t in TYPES:
    col = f"{t.key}.top_share"
    if col not in real:
      continue
    hit = real[real[col] >= CONSTANT_SHARE]
    rows += [dict(run=r["run"], type=t.key, label=t.label, top_share=r[col], distinct=r[f"{t.key}.distinct"],
                  score=r[t.key], majority=r[f"{t.key}.majority"]) for _, r in hit.iterrows()]
  return pd.DataFrame(rows, columns=["run", "type", "label", "top_share", "distinct", "score", "majority"])


def seeing_margins(real: pd.DataFrame, blank: pd.DataFrame | None = None) -> pd.DataFrame:
  """Per run: the mean over the question types that need the image (``VISUAL``) of score - majority
  (``margin``), its item standard error, score - no-image score of the same run (``over_no_image``),
  and per type margins (``margin.<type>``); sorted best first."""
  present = [k for k in VISUAL if k in real]
  if not present or real.empty:
    return pd.DataFrame(columns=["run", "margin"])
  m = pd.DataFrame({"run": real["run"]})
  for k in present:
    m[f"margin.{k}"] = real[k] - real[f"{k}.majority"]
  m["margin"] = m[[f"margin.{k}" for k in present]].mean(axis=1)
  m["se"] = np.sqrt((real[[f"{k}.se" for k in present]] ** 2).sum(axis=1, min_count=1)) / len(present)
  m["score"] = real[present].mean(axis=1)
  m["majority"] = real[[f"{k}.majority" for k in present]].mean(axis=1)
  if blank is not None and not blank.empty and all(k in blank for k in present):
    no_image = blank.set_index("run")[present].mean(axis=1)
    m["no_image"] = m["run"].map(no_image)
    m["over_no_image"] = m["score"] - m["no_image"]
  return m.sort_values("margin", ascending=False, kind="stable").reset_index(drop=True)
