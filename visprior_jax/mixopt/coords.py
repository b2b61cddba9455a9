"""Mixture coordinates: results rows -> one row per run, in the space the predictors fit.

:func:`table` turns the results store's long table (or the paper table) into one row per run:

  run, study, size, params, tokens, seed,      the run's spec
  mixture
  reasoning, visual, other                     derived shares (fractions): with a reasoning label, with a
                                               visual label, and other = 1 - reasoning - visual
  bucket.<b>                                   the four disjoint label buckets the pipeline samples
                                               (reasoning-only, visual-only, both, neither; sum 1)
  epochs.<b>                                   how many times the run repeats each bucket of the pool
                                               (NaN when the pool's token counts are unknown)
  log_params, log_tokens                       ln of the model size and the token budget (NaN if unknown)
  cell                                         (reasoning, visual) @ size: the runs of one mixture (its
                                               seeds) share it -- a predictor's unit of distinct data
  share.<source>                               the run's source weights, when it has them
  y                                            the target measure (``resolve_target``)

Decisions:

- Everything is computed by ``data.mixtures``. A run with ``share.reasoning`` / ``share.visual`` (a
  Table 1 grid cell, or Table 2's printed columns) keeps those shares; its buckets come from its
  source weights when it has them, else from ``GridCell`` (the minimum-KL both-share). A run with
  only source weights (``share.<source>``: Table 2, the tiny study) gets its shares from
  ``derived_shares`` and its buckets as the weighted sum of each source's bucket fractions.
- The predictors fit the composition (reasoning, visual, other). A segment with both labels counts as
  reasoning AND as visual -- the paper's convention for Table 1 -- so other = neither - both, a linear
  function of the buckets; on every mixture family here the both-share is fixed by the other two
  (minimum KL, or the sources' own overlap), so the buckets add no free dimension and a quadratic in
  the four buckets (10 terms) would not be identifiable. The bucket columns are kept for repetition
  control and reporting.
- Label rates (``label_rates``): "table4" is the paper's Table 4 with both = reasoning x visual (an
  independence assumption, ``mixtures.with_independent_overlap``); "tiny" is the tiny study's pools by
  construction (configs/study/tiny.py: code, arithmetic, counting and syllogism are reasoning text,
  visual_world describes the visual world, docs is neither); "auto" picks table4 when it covers the
  runs' sources and tiny otherwise; a prepared directory with labels.jsonl (``visprior data label``)
  or a JSON file (``visprior data label-report --out``, or {source: {label: fraction}}) gives measured
  rates. Grid cells without a pool use an equal-tokens pool over the rated sources: only the relative
  sizes enter the both-share.
- Rows that cannot be placed (no shares, a source without label rates, no target) are left out and
  counted in ``attrs["skipped"]``, never silently.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

from visprior_jax.analysis import paper as paper_lib
from visprior_jax.analysis.figdata import default_variant
from visprior_jax.analysis.tables import LABELS, MEASURES, runs_table
from visprior_jax.data import mixtures
from visprior_jax.data.mixtures import _BUCKETS as BUCKET_STREAMS  # the four disjoint buckets' (require, exclude)

BUCKETS = tuple(BUCKET_STREAMS)                   # reasoning-only, visual-only, both, neither
COMPOSITION = ("reasoning", "visual", "other")    # what the predictors fit (module docstring)
SCALE = ("log_params", "log_tokens")
SPEC = ("study", "size", "params", "tokens", "seed", "mixture")
_TINY_GROUPS = {"code": "reasoning", "arithmetic": "reasoning", "counting": "reasoning", "syllogism": "reasoning",
                "visual_world": "visual", "docs": None}
TINY_RATES = {s: {"reasoning": float(g == "reasoning"), "visual": float(g == "visual"), mixtures.BOTH: 0.0}
              for s, g in _TINY_GROUPS.items()}
SIZE_ORDER = ("xxs", "xs", "s", "m", "l", "xl", "xxl")    # size names without params, smallest first
LOWER_IS_BETTER = {"ppl"}
TARGET_ALIASES = {"vqa_overall": "overall", "vqa_general": "General", "vqa_knowledge": "Knowledge",
                  "vqa_ocr": "OCR & Chart", "vqa_vision": "Vision-Centric", "vqa_perception": "perception",
                  "vqa_reasoning": "reasoning", "lm_acc": "t_acc", "lm_ppl": "ppl"}


@dataclasses.dataclass(frozen=True)
class Target:
  name: str                 # as given (vqa_overall)
  measure: str              # tables.MEASURES key (overall)
  higher_is_better: bool

  @property
  def label(self) -> str:
    return LABELS.get(self.measure, self.measure)


def resolve_target(name: str) -> Target:
  """``vqa_overall`` (or any ``tables.MEASURES`` name) -> the measure and its direction."""
  measure = TARGET_ALIASES.get(name, name)
  if measure not in MEASURES:
    raise ValueError(f"unknown target {name!r}; use one of {', '.join(list(TARGET_ALIASES) + list(MEASURES))}")
  return Target(name, measure, measure not in LOWER_IS_BETTER)


# ------------------------------------------------------------------------------------ inputs


def load_results(spec: str) -> pd.DataFrame:
  """The long results table from ``spec``: a study directory, a results .parquet/.csv, ``paper`` (the
  paper's Table 1) or ``paper:<source>`` (e.g. ``paper:Table 2``); several joined by commas."""
  from visprior_jax.study import store
  frames = []
  for part in [p.strip() for p in str(spec).split(",") if p.strip()]:
    if part == "paper" or part.startswith("paper:"):
      source = part.partition(":")[2] or "Table 1"
      df = paper_lib.paper_table(source)
      if df.empty:
        known = sorted(paper_lib.paper_table()["source"].unique())
        raise ValueError(f"--results={part}: the paper table has no {source!r}; sources: {', '.join(known)}")
    elif os.path.exists(part) or "://" in part:
      df = store.load(part)
    else:
      raise FileNotFoundError(f"results {part} not found: give a study directory, a results.parquet/.csv, "
                              "or paper[:Table 1]")
    frames.append(df)
  if not frames:
    raise ValueError("--results is empty: give a study directory, a results.parquet/.csv, or paper[:Table 1]")
  runs = [set(f["run"].dropna()) for f in frames]
  clash = set.intersection(*runs) if len(runs) > 1 else set()
  if clash:
    raise ValueError(f"--results: run names appear in more than one results table: {sorted(clash)[:5]}")
  return pd.concat(frames, ignore_index=True)


def pool_tokens(prepared_dir) -> dict[str, int] | None:
  """{source: tokens} from a prepared directory's ``<source>/manifest.json`` files (None when none)."""
  if not prepared_dir or not os.path.isdir(prepared_dir):
    return None
  out = {}
  for name in sorted(os.listdir(prepared_dir)):
    path = os.path.join(prepared_dir, name, "manifest.json")
    if os.path.exists(path):
      with open(path) as f:
        out[name] = int(json.load(f)["tokens"])
  return out or None


def _rates_from(spec) -> dict:
  if isinstance(spec, Mapping):
    rates = dict(spec)
  elif spec == "table4":
    rates = mixtures.TABLE4_FRACTIONS
  elif spec == "tiny":
    return TINY_RATES
  elif isinstance(spec, str) and os.path.isdir(spec):
    from visprior_jax.data import labels
    rates = labels.label_rates(spec)
  elif isinstance(spec, str) and os.path.isfile(spec):
    with open(spec) as f:
      rates = json.load(f)
    rates = rates.get("rates", rates)
  else:
    raise ValueError(f"label rates {spec!r}: use auto, table4, tiny, a prepared directory with labels, "
                     "or a JSON file of {source: {label: fraction}}")
  return {s: r if mixtures.BOTH in r else mixtures.with_independent_overlap({s: r})[s] for s, r in rates.items()}


def _source_columns(runs: pd.DataFrame) -> list[str]:
  return [c for c in runs.columns if c.startswith("share.") and c[6:] not in mixtures.CATEGORIES]


def choose_rates(runs: pd.DataFrame, spec="auto") -> dict:
  """The label rates for ``runs`` (module docstring); "auto": table4 if it covers every source used."""
  if spec != "auto":
    return _rates_from(spec)
  used = {c[6:] for c in _source_columns(runs) if runs[c].fillna(0).gt(0).any()}
  if used <= set(mixtures.TABLE4_FRACTIONS):
    return _rates_from("table4")
  if used <= set(TINY_RATES):
    return TINY_RATES
  raise ValueError(f"no label rates for sources {sorted(used - set(mixtures.TABLE4_FRACTIONS) - set(TINY_RATES))}: "
                   "pass label rates (a prepared directory with labels, or a label-report JSON)")


# ------------------------------------------------------------------------------------ coordinates


def _bucket_of(stream: mixtures.Stream) -> str:
  return next(b for b, (req, exc) in BUCKET_STREAMS.items() if stream.require == req and stream.exclude == exc)


def _buckets(resolved, rates, pool, tokens) -> tuple[dict, dict]:
  """Bucket shares and epochs of a resolved recipe (whole-source streams are split by label rates)."""
  shares, got, have = dict.fromkeys(BUCKETS, 0.0), dict.fromkeys(BUCKETS, 0.0), dict.fromkeys(BUCKETS, 0.0)
  alloc = {}
  if pool is not None and tokens and tokens > 0:
    available = mixtures.available_from_rates([s for s, _ in resolved], pool, rates)
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")      # epochs past 4 are reported, not warned about
      alloc = mixtures.budget(resolved, int(tokens), available, max_epochs=math.inf)
  for stream, share in resolved:
    parts = ({_bucket_of(stream): 1.0} if stream.require or stream.exclude else
             {b: mixtures.stream_fraction(mixtures.Stream(stream.source, *BUCKET_STREAMS[b]), rates) for b in BUCKETS})
    for b, frac in parts.items():
      shares[b] += share * frac
      if stream in alloc:
        got[b] += alloc[stream].tokens * frac
        have[b] += alloc[stream].available * frac
  epochs = {b: (got[b] / have[b] if have[b] > 0 else (0.0 if got[b] == 0 else math.inf)) if alloc else math.nan
            for b in BUCKETS}
  return shares, epochs


def _place(row: pd.Series, sources: list[str], rates: dict, pool) -> dict:
  """One run's coordinates; raises ValueError with the reason when it cannot be placed."""
  weights = {c[6:]: float(row[c]) for c in sources if pd.notna(row[c]) and row[c] > 0}
  r, v = row.get("share.reasoning"), row.get("share.visual")
  has_rv = r is not None and v is not None and pd.notna(r) and pd.notna(v)
  missing = sorted(s for s in weights if s not in rates)
  if weights and not missing:
    resolved = mixtures.SourceMix("run", weights).resolve()
    if not has_rv:
      derived = mixtures.derived_shares(weights, rates)
      r, v = derived["reasoning"] / 100, derived["visual"] / 100
  elif has_rv:
    grid_pool = pool or {s: 1.0 for s in rates}
    resolved = mixtures.GridCell(100 * float(r), 100 * float(v)).resolve(grid_pool, rates)
  elif missing:
    raise ValueError(f"no label rates for source(s) {missing}")
  else:
    raise ValueError("no reasoning/visual shares and no source weights")
  shares, epochs = _buckets(resolved, rates, pool, row.get("tokens"))
  out = {"reasoning": float(r), "visual": float(v), "other": 1.0 - float(r) - float(v)}
  out.update({f"bucket.{b}": shares[b] for b in BUCKETS})
  out.update({f"epochs.{b}": epochs[b] for b in BUCKETS})
  return out


def _log(values) -> np.ndarray:
  x = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
  return np.where(x > 0, np.log(np.where(x > 0, x, 1.0)), np.nan)


def coordinates(runs: pd.DataFrame, *, label_rates="auto", pool=None) -> pd.DataFrame:
  """Coordinates of every run of a runs table (``tables.runs_table``); see the module docstring.

  ``pool``: {source: tokens} of the pool (for epochs; :func:`pool_tokens` reads a prepared dir)."""
  rates = choose_rates(runs, label_rates)
  sources = _source_columns(runs)
  rows, skipped = [], []
  for _, row in runs.iterrows():
    try:
      coords = _place(row, sources, rates, pool)
    except ValueError as e:
      skipped.append(f"{row['run']} ({e})")
      continue
    rows.append({"run": row["run"], **{k: row.get(k) for k in SPEC}, **coords,
                 **{c: row[c] for c in sources}})
  out = pd.DataFrame(rows, columns=["run", *SPEC, *COMPOSITION, *[f"bucket.{b}" for b in BUCKETS],
                                    *[f"epochs.{b}" for b in BUCKETS], *sources])
  out["log_params"] = _log(out["params"])
  out["log_tokens"] = _log(out["tokens"])
  key = out["reasoning"].round(4).astype(str) + "/" + out["visual"].round(4).astype(str)
  out["cell"] = key + "@" + out["size"].astype(str)
  out.attrs["skipped"] = skipped
  return out


def table(results: pd.DataFrame, target: Target | str, *, label_rates="auto", pool=None) -> pd.DataFrame:
  """Long results -> the coordinates of every default-variant run with the target, plus ``y``.

  Blind-SFT, SFT-ablation and minority-encoder runs are left out (``figdata.default_variant``)."""
  target = resolve_target(target) if isinstance(target, str) else target
  runs = default_variant(runs_table(results))
  if target.measure not in runs or runs[target.measure].notna().sum() == 0:
    raise ValueError(f"no run has the target {target.name} ({target.measure})")
  no_y = runs.loc[runs[target.measure].isna(), "run"].tolist()
  runs = runs[runs[target.measure].notna()]
  out = coordinates(runs, label_rates=label_rates, pool=pool)
  out["y"] = runs.set_index("run").loc[out["run"], target.measure].to_numpy(dtype=float)
  out.attrs["skipped"] = out.attrs.get("skipped", []) + [f"{r} (no {target.measure})" for r in no_y]
  out.attrs["target"] = target
  return out


def order_sizes(tab: pd.DataFrame) -> list:
  """The sizes in ``tab``, smallest first: by params, else by the names in SIZE_ORDER."""
  sizes = list(dict.fromkeys(tab["size"].dropna()))
  if tab["params"].notna().all() and tab.groupby("size")["params"].nunique().le(1).all():
    return sorted(sizes, key=lambda s: float(tab.loc[tab["size"] == s, "params"].iloc[0]))
  unknown = [s for s in sizes if str(s) not in SIZE_ORDER]
  if unknown:
    raise ValueError(f"cannot order sizes {unknown}: the runs have no params (record them in run.json)")
  return sorted(sizes, key=lambda s: SIZE_ORDER.index(str(s)))


def candidates(tab: pd.DataFrame, *, step: float = 0.005, box=None, size=None) -> pd.DataFrame:
  """Mixtures on a (reasoning, visual) lattice of multiples of ``step`` in ``box`` ((r_lo, r_hi), (v_lo, v_hi);
  default: the runs' range), other >= 0, at the scale of ``size`` (default: the largest size's runs,
  their most common token budget) -- what optima, surfaces and proposals are searched over."""
  if box is None:
    box = ((tab["reasoning"].min(), tab["reasoning"].max()), (tab["visual"].min(), tab["visual"].max()))
  (r_lo, r_hi), (v_lo, v_hi) = box
  lattice = lambda lo, hi: np.round(np.arange(np.ceil(lo / step - 1e-6), np.floor(hi / step + 1e-6) + 1) * step, 6)  # noqa: E731
  rs, vs = lattice(r_lo, r_hi), lattice(v_lo, v_hi)    # multiples of step, so proposals are round numbers
  r, v = (a.ravel() for a in np.meshgrid(rs, vs, indexing="ij"))
  keep = r + v <= 1 + 1e-9
  out = pd.DataFrame({"reasoning": r[keep], "visual": v[keep]})
  out["other"] = np.clip(1 - out["reasoning"] - out["visual"], 0, None)
  size = size if size is not None else order_sizes(tab)[-1] if tab["size"].notna().any() else None
  at = tab[tab["size"] == size] if size is not None else tab
  for col in SCALE:
    values = at[col].dropna()
    out[col] = float(values.mode().iloc[0]) if len(values) else np.nan
  out["size"] = size
  out["cell"] = out["reasoning"].astype(str) + "/" + out["visual"].astype(str) + "@" + str(size)
  return out
