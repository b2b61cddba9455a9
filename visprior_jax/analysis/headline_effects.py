"""Headline effects: each one estimate from many runs, with a 95% interval and the noise behind it.

Share effects (a category sweep, ``sweep:<category>:<pct>`` runs): one straight line over all the
sweep's runs, score = a + b * share (share in %), by ordinary least squares; when the sweep holds
several model sizes each size gets its own intercept (the slope is shared). Reported: the slope b with
its Student-t interval from the regression (b +- t_{0.975, n - p} se(b)) and the fitted change over the
sweep's range of shares, b * (max share - min share), with the same interval scaled. With fewer runs
than parameters + 1 there is no interval (NaN).

Size effect: larger minus smaller model (the largest and smallest sizes present). When two or more
(mixture, seed) pairs were trained at both sizes the difference is paired over them (mean of the
differences, Student-t interval); otherwise it is the difference of the two sizes' means over all their
runs with Welch's interval.

Noise, so the reader sees which dominates, both per run's score:

  item noise   the binomial standard error of a run's score from its n items, 100 sqrt(p (1 - p) / n),
               averaged over the runs (``question_types`` ``<measure>.se``)
  run noise    the residual standard deviation of the fit (sizes: the SD of the paired differences
               / sqrt 2, or the pooled within-size SD), which holds the item noise plus everything
               that differs between runs (seeds, data order, initialisation)

``dominant``: "items" when the item variance is at least half the run variance (more items per type
would narrow the interval most), else "runs" (more seeds would). The run noise cannot truly be below the
item noise; when the fit's estimate is (few runs), the effect's note says its interval may be too
narrow. :func:`replicate_noise` measures the seed noise directly where runs differ only in seed.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
from scipy import stats as sstats

from visprior_jax.analysis.figdata import default_variant, sweep_runs

LEVEL = 0.95
SIZE_ORDER = ("xxs", "xs", "s", "small", "m", "medium", "base", "l", "large", "xl", "xxl")


@dataclasses.dataclass
class Effect:
  name: str                 # what is varied -> what is measured
  measure: str
  runs: int
  estimate: float           # the change (share: over the sweep's range; size: larger - smaller)
  lo: float
  hi: float
  slope: float = math.nan   # share effects: score points per share point
  slope_lo: float = math.nan
  slope_hi: float = math.nan
  x_min: float = math.nan
  x_max: float = math.nan
  item_noise: float = math.nan
  run_noise: float = math.nan
  paired: bool = False
  note: str = ""

  def __post_init__(self):
    if self.run_noise < self.item_noise:   # NaN compares False
      self.note = "; ".join(n for n in (self.note, "run noise estimate below the item noise: the interval may be "
                                        "too narrow") if n)

  @property
  def dominant(self) -> str:
    if not (self.item_noise >= 0 and self.run_noise > 0):
      return ""
    return "items" if self.item_noise ** 2 >= 0.5 * self.run_noise ** 2 else "runs"

  def row(self) -> dict:
    return {**dataclasses.asdict(self), "dominant": self.dominant}


def line_fit(x, y, groups=None, level: float = LEVEL) -> dict:
  """OLS of y on x (+ one intercept per group when ``groups`` has several values): slope, its standard
  error and t interval, residual SD, n, residual degrees of freedom, the intercept per group, and what
  :func:`line_band` needs (coefficients, their covariance, the groups in order; the most common first)."""
  x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
  ok = np.isfinite(x) & np.isfinite(y)
  g = np.asarray(groups, dtype=object)[ok] if groups is not None else np.full(int(ok.sum()), None, dtype=object)
  x, y = x[ok], y[ok]
  levels = sorted(dict.fromkeys(g), key=lambda v: -int(np.sum(g == v)))   # stable: ties keep first seen
  design = np.column_stack([np.ones_like(x)] + [(g == v).astype(float) for v in levels[1:]] + [x])
  n, p = design.shape
  base = dict(slope=math.nan, se=math.nan, lo=math.nan, hi=math.nan, resid_sd=math.nan, n=n, df=n - p,
              intercepts={}, levels=levels, coef=None, cov=None, x_min=float(x.min()) if n else math.nan,
              x_max=float(x.max()) if n else math.nan)
  if n < 2 or len(np.unique(x)) < 2:
    return base
  coef, *_ = np.linalg.lstsq(design, y, rcond=None)
  resid = y - design @ coef
  df = n - p
  out = dict(base, slope=float(coef[-1]), coef=coef,
             intercepts={v: float(coef[0] + (coef[i] if i else 0.0)) for i, v in enumerate(levels)})
  if df > 0:
    s2 = float(resid @ resid) / df
    cov = s2 * np.linalg.pinv(design.T @ design)
    se = float(math.sqrt(max(cov[-1, -1], 0.0)))
    half = float(sstats.t.ppf(1 - (1 - level) / 2, df)) * se
    out.update(se=se, resid_sd=math.sqrt(s2), lo=out["slope"] - half, hi=out["slope"] + half, cov=cov)
  return out


def line_band(fit: dict, grid=None, level: float = LEVEL) -> pd.DataFrame:
  """The fitted line of the most common group (e.g. model size) on ``grid`` (default: 41 points over the
  data's range) with its pointwise confidence band (t, the fit's residual degrees of freedom)."""
  if fit["coef"] is None:
    return pd.DataFrame(columns=["x", "y", "lo", "hi"])
  grid = np.linspace(fit["x_min"], fit["x_max"], 41) if grid is None else np.asarray(grid, dtype=float)
  rows = np.column_stack([np.ones_like(grid)] + [np.zeros_like(grid)] * (len(fit["levels"]) - 1) + [grid])
  yhat = rows @ fit["coef"]
  if fit["cov"] is not None:
    half = sstats.t.ppf(1 - (1 - level) / 2, fit["df"]) * np.sqrt(np.einsum("ij,jk,ik->i", rows, fit["cov"], rows))
  else:
    half = np.full_like(grid, np.nan)
  return pd.DataFrame(dict(x=grid, y=yhat, lo=yhat - half, hi=yhat + half))


def sweep_data(runs: pd.DataFrame, category: str, measure: str) -> pd.DataFrame:
  """The sweep's runs that have ``measure``: run, size, share (%), y, se."""
  sw = sweep_runs(runs)
  sw = sw[(sw["category"] == category)] if "category" in sw else sw.iloc[0:0]
  if measure not in sw:
    return pd.DataFrame(columns=["run", "size", "share", "y", "se"])
  sw = sw[sw[measure].notna()]
  return pd.DataFrame(dict(run=sw["run"], size=sw["size"] if "size" in sw else "?", share=sw["share"],
                           y=sw[measure], se=sw[f"{measure}.se"] if f"{measure}.se" in sw else np.nan))


def sweep_effect(runs: pd.DataFrame, category: str, measure: str, level: float = LEVEL) -> Effect | None:
  """The line over the ``category`` sweep's runs (module docstring); None without 2 distinct shares."""
  d = sweep_data(runs, category, measure)
  if d["share"].nunique() < 2:
    return None
  sizes = d["size"].fillna("?").astype(str)
  fit = line_fit(d["share"], d["y"], sizes if sizes.nunique() > 1 else None, level)
  span = fit["x_max"] - fit["x_min"]
  return Effect(name=f"{category} share -> {measure}", measure=measure, runs=fit["n"], estimate=fit["slope"] * span,
                lo=fit["lo"] * span, hi=fit["hi"] * span, slope=fit["slope"], slope_lo=fit["lo"], slope_hi=fit["hi"],
                x_min=fit["x_min"], x_max=fit["x_max"], item_noise=float(d["se"].mean()),
                run_noise=fit["resid_sd"], note=f"sizes {', '.join(sorted(set(sizes)))}" if sizes.nunique() > 1 else "")


def size_order(runs: pd.DataFrame) -> list:
  """The sizes present, smallest first: by ``params`` when known, else by name (xs < s < m < l ...)."""
  sizes = [s for s in runs["size"].dropna().unique()] if "size" in runs else []
  if "params" in runs and runs["params"].notna().any():
    p = runs.groupby("size")["params"].mean()
    if p.reindex(sizes).notna().all():
      return sorted(sizes, key=lambda s: p[s])
  return sorted(sizes, key=lambda s: (SIZE_ORDER.index(str(s).lower()) if str(s).lower() in SIZE_ORDER
                                      else len(SIZE_ORDER), str(s)))


def size_pairs(runs: pd.DataFrame, measure: str) -> tuple[pd.DataFrame, str, str]:
  """(pairs, small, large): runs of the smallest and largest size matched on (mixture, seed), with
  columns small, large, se_small, se_large, mixture, seed."""
  runs = default_variant(runs)
  order = size_order(runs)
  empty = pd.DataFrame(columns=["mixture", "seed", "small", "large", "se_small", "se_large"])
  if len(order) < 2 or measure not in runs:
    return empty, "", ""
  small, large = order[0], order[-1]
  keys = [k for k in ("mixture", "seed") if k in runs]
  cols = keys + [measure] + ([f"{measure}.se"] if f"{measure}.se" in runs else [])
  a = runs[(runs["size"] == small) & runs[measure].notna()][cols]
  b = runs[(runs["size"] == large) & runs[measure].notna()][cols]
  if not keys:
    return empty, small, large
  a, b = a.drop_duplicates(keys), b.drop_duplicates(keys)
  m = a.merge(b, on=keys, suffixes=("_s", "_l"))
  pairs = pd.DataFrame({**{k: m[k] for k in keys}, "small": m[f"{measure}_s"], "large": m[f"{measure}_l"],
                        "se_small": m.get(f"{measure}.se_s", np.nan), "se_large": m.get(f"{measure}.se_l", np.nan)})
  return pairs, small, large


def size_effect(runs: pd.DataFrame, measure: str, level: float = LEVEL) -> Effect | None:
  """Larger minus smaller model on ``measure`` (module docstring); None with one size."""
  pairs, small, large = size_pairs(runs, measure)
  if not small:
    return None
  q = 1 - (1 - level) / 2
  name = f"size {large} vs {small} -> {measure}"
  if len(pairs) >= 2:
    d = (pairs["large"] - pairs["small"]).to_numpy(float)
    sd = float(d.std(ddof=1))
    half = float(sstats.t.ppf(q, len(d) - 1)) * sd / math.sqrt(len(d))
    item = float(np.sqrt((pairs["se_small"] ** 2 + pairs["se_large"] ** 2) / 2).mean())
    return Effect(name=name, measure=measure, runs=2 * len(d), estimate=float(d.mean()), lo=float(d.mean()) - half,
                  hi=float(d.mean()) + half, item_noise=item, run_noise=sd / math.sqrt(2), paired=True,
                  note=f"{len(d)} (mixture, seed) pairs")
  runs = default_variant(runs)
  va = runs.loc[(runs["size"] == small), measure].dropna().to_numpy(float)
  vb = runs.loc[(runs["size"] == large), measure].dropna().to_numpy(float)
  if len(va) == 0 or len(vb) == 0:
    return None
  diff = float(vb.mean() - va.mean())
  lo = hi = sd = math.nan
  if len(va) >= 2 and len(vb) >= 2:
    sa, sb = va.var(ddof=1) / len(va), vb.var(ddof=1) / len(vb)
    se = math.sqrt(sa + sb)
    dof = (sa + sb) ** 2 / (sa ** 2 / (len(va) - 1) + sb ** 2 / (len(vb) - 1)) if se > 0 else 1.0
    half = float(sstats.t.ppf(q, dof)) * se
    lo, hi = diff - half, diff + half
    sd = math.sqrt(((len(va) - 1) * va.var(ddof=1) + (len(vb) - 1) * vb.var(ddof=1)) / (len(va) + len(vb) - 2))
  se_col = f"{measure}.se"
  item = float(runs.loc[runs["size"].isin([small, large]), se_col].mean()) if se_col in runs else math.nan
  return Effect(name=name, measure=measure, runs=len(va) + len(vb), estimate=diff, lo=lo, hi=hi, item_noise=item,
                run_noise=sd, note="unpaired (Welch)")


def replicate_noise(runs: pd.DataFrame, measure: str) -> dict:
  """Seed noise measured directly: the pooled within-group standard deviation of ``measure`` over groups of
  runs that differ only in seed (same size, same ``share.*``; e.g. a centre mixture in two sweeps under two
  names). {"groups", "runs", "sd", "item_se"}; sd NaN without such a group."""
  shares = sorted(c for c in runs.columns if c.startswith("share."))
  out = {"groups": 0, "runs": 0, "sd": math.nan, "item_se": math.nan}
  if measure not in runs or not shares:
    return out
  r = runs[runs[measure].notna()]
  key = r[shares].astype(float).fillna(-1.0).round(6).astype(str).agg("|".join, axis=1)
  if "size" in r:
    key = key + "|" + r["size"].astype(str)
  groups = [g for _, g in r.groupby(key) if len(g) >= 2 and ("seed" not in g or g["seed"].nunique() == len(g))]
  if not groups:
    return out
  dof = sum(len(g) - 1 for g in groups)
  ss = sum(float(((g[measure] - g[measure].mean()) ** 2).sum()) for g in groups)
  se_col = f"{measure}.se"
  item = float(pd.concat([g[se_col] for g in groups]).mean()) if se_col in r else math.nan
  return {"groups": len(groups), "runs": sum(len(g) for g in groups), "sd": math.sqrt(ss / dof), "item_se": item}


def effects_table(effects) -> pd.DataFrame:
  return pd.DataFrame([e.row() for e in effects if e is not None])
