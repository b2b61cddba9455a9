"""Across-run statistics: category correlations and their clusters, effect sizes, mixture ranking.

Correlation (the paper's Fig. 4, Finding 5). :func:`spearman_matrix` is Spearman's rho between the four
VQA categories over runs (``scipy.stats.spearmanr``, rows with a missing category dropped).
:func:`cluster_categories` groups the categories by average-linkage hierarchical clustering
(``scipy.cluster.hierarchy``) on the distance 1 - rho, cut into ``n_clusters`` groups. On the paper's
matrix that gives {General, OCR & Chart} (rho 0.37) and {Knowledge, Vision-Centric} (0.33): the
perception and reasoning priors.

Effect sizes. :func:`effect_size` compares a measure between two groups
of runs (e.g. two mixtures, each trained with several seeds): the difference of group means with a
bootstrap CI. When both groups hold the same seeds once each, the bootstrap resamples seeds jointly
(paired: run-to-run noise shared by a seed cancels); otherwise each group's runs are resampled
independently. A study has 2-5 seeds per cell, where the plain percentile interval is far too narrow
(with 3 seeds there are only 10 distinct resamples). So the interval is Hesterberg's expanded
percentile interval: the percentiles are taken at alpha' / 2 with alpha' = 2 Phi(-sqrt(n / (n - 1))
t_{1 - alpha/2, n - 1}), n = the number of pairs (paired) or the smaller group (unpaired); it tends to
the plain percentile interval for large n and to the bootstrap range for n = 2-3. Even that range
says "significant" whenever two seeds agree in sign, so the reported interval is the union of it and
the classical t interval (Student's on the paired differences, else Welch's), which at n = 2 is
+-12.7 standard errors: two seeds alone rarely make a claim. Hedges' g
(pooled-SD standardised difference, small-sample corrected) is reported beside it. The verdict is
plain: "not significant" when the CI contains 0; "cannot tell" when a group has fewer than 2 runs
(no spread to estimate); otherwise which group is higher.

Mixture ranking (the paper's Table 2). The paper does not say how its "Overall Rank" is made; here:
mean over seeds per mixture, rank on language (perplexity ascending and accuracy descending; the
language rank is the rank of their rank sum) and on vision (Avg VQA descending); ``rank_sum`` =
ppl rank + accuracy rank + vision rank, ``overall_rank`` its rank (ties: better vision first), and
``pareto`` marks mixtures no other mixture beats on both language (ppl) and vision.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sstats
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform

from visprior_jax.analysis.tables import label, select
from visprior_jax.eval.vqa.base import CATEGORIES

PERCEPTION = ("General", "OCR & Chart")
REASONING = ("Knowledge", "Vision-Centric")


# --------------------------------------------------------------------------------- correlations


def spearman_matrix(runs: pd.DataFrame, columns: Sequence[str] = CATEGORIES) -> tuple[pd.DataFrame, pd.DataFrame, int]:
  """(rho, p-value, number of runs) between ``columns`` over the runs that have all of them."""
  cols = [c for c in columns if c in runs]
  data = runs[cols].dropna()
  if len(cols) < 2 or len(data) < 3:
    raise ValueError(f"Spearman needs >= 2 measures over >= 3 runs; have {len(cols)} measures, {len(data)} runs")
  res = sstats.spearmanr(data.to_numpy(dtype=float), axis=0)
  rho = np.atleast_2d(res.statistic)
  p = np.atleast_2d(res.pvalue)
  if rho.shape == (1, 1):   # two columns: scipy returns scalars
    rho = np.array([[1.0, rho[0, 0]], [rho[0, 0], 1.0]])
    p = np.array([[0.0, p[0, 0]], [p[0, 0], 0.0]])
  return (pd.DataFrame(rho, index=cols, columns=cols), pd.DataFrame(p, index=cols, columns=cols), len(data))


def cluster_categories(rho: pd.DataFrame, n_clusters: int = 2, method: str = "average") -> dict:
  """Hierarchical clustering of the categories on 1 - rho.

  Returns {"clusters": [[names], ...] (each in the matrix's order, clusters by first member),
  "linkage": scipy linkage matrix, "order": leaf order (names), "distance": 1 - rho}."""
  names = list(rho.index)
  dist = 1.0 - rho.to_numpy(dtype=float)
  dist = (dist + dist.T) / 2
  np.fill_diagonal(dist, 0.0)
  dist = np.clip(np.nan_to_num(dist, nan=1.0), 0.0, 2.0)
  z = hierarchy.linkage(squareform(dist, checks=False), method=method)
  labels = hierarchy.fcluster(z, t=n_clusters, criterion="maxclust")
  groups: dict[int, list[str]] = {}
  for name, lab in zip(names, labels):
    groups.setdefault(int(lab), []).append(name)
  clusters = sorted(groups.values(), key=lambda g: names.index(g[0]))
  order = [names[i] for i in hierarchy.leaves_list(z)]
  return {"clusters": clusters, "linkage": z, "order": order,
          "distance": pd.DataFrame(dist, index=names, columns=names)}


def is_perception_reasoning_split(clusters: Sequence[Sequence[str]]) -> bool:
  """True when the clusters are exactly {General, OCR & Chart} and {Knowledge, Vision-Centric}."""
  return sorted(map(frozenset, clusters), key=sorted) == sorted([frozenset(PERCEPTION), frozenset(REASONING)],
                                                               key=sorted)


# --------------------------------------------------------------------------------- effect sizes


@dataclasses.dataclass
class Effect:
  measure: str
  a: str
  b: str
  n_a: int
  n_b: int
  mean_a: float
  mean_b: float
  diff: float                 # mean_a - mean_b
  ci_lo: float
  ci_hi: float
  hedges_g: float
  paired: bool
  level: float
  verdict: str                # "not significant" | "cannot tell" | "<a> higher" | "<a> lower"

  @property
  def significant(self) -> bool:
    return self.verdict not in ("not significant", "cannot tell")

  def sentence(self) -> str:
    pct = f"{100 * self.level:.0f}%"
    head = (f"{label(self.measure)}, {self.a} vs {self.b}: {self.mean_a:.3g} vs {self.mean_b:.3g}, "
            f"difference {self.diff:+.3g}")
    runs = f"{self.n_a} vs {self.n_b} runs" + (", paired by seed" if self.paired else "")
    if self.verdict == "cannot tell":
      return f"{head} ({runs}): cannot tell -- at least 2 seeds per group are needed for an uncertainty estimate."
    tail = f"{pct} CI {self.ci_lo:+.3g} to {self.ci_hi:+.3g}; {runs}; Hedges' g {self.hedges_g:+.2f}"
    if self.verdict == "not significant":
      return f"{head} ({tail}): not significant -- the interval contains 0."
    return f"{head} ({tail}): {self.verdict}, significant at {pct}."


def expanded_tail(alpha: float, n: int) -> float:
  """One tail's probability of the expanded percentile interval (Hesterberg 2015) for n observations."""
  if n < 2:
    return alpha / 2
  return float(sstats.norm.cdf(-math.sqrt(n / (n - 1)) * sstats.t.ppf(1 - alpha / 2, n - 1)))


def _group(runs: pd.DataFrame, spec, by: str | None) -> tuple[pd.DataFrame, str]:
  if isinstance(spec, Mapping):
    return select(runs, spec), ", ".join(f"{k}={v}" for k, v in spec.items())
  if by is None:
    raise ValueError("give `by` (a column) with group values, or the groups as {column: value} mappings")
  return runs[runs[by] == spec], str(spec)


def _hedges_g(a: np.ndarray, b: np.ndarray) -> float:
  na, nb = len(a), len(b)
  if na < 2 or nb < 2:
    return math.nan
  pooled = math.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
  if pooled == 0:
    return math.nan
  return (a.mean() - b.mean()) / pooled * (1 - 3 / (4 * (na + nb) - 9))


def _t_interval(d, va: np.ndarray, vb: np.ndarray, level: float) -> tuple[float, float]:
  """Student's t interval of the paired differences ``d``, else Welch's for two groups (NaN-free: a
  zero spread gives the point)."""
  q = 1 - (1 - level) / 2
  if d is not None:
    half = sstats.t.ppf(q, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return float(d.mean() - half), float(d.mean() + half)
  sa, sb = va.var(ddof=1) / len(va), vb.var(ddof=1) / len(vb)
  se = math.sqrt(sa + sb)
  df = (sa + sb) ** 2 / (sa ** 2 / (len(va) - 1) + sb ** 2 / (len(vb) - 1)) if se > 0 else 1.0
  half = sstats.t.ppf(q, df) * se
  diff = float(va.mean() - vb.mean())
  return diff - half, diff + half


def effect_size(runs: pd.DataFrame, measure: str, a, b, *, by: str | None = None, n_boot: int = 10000,
                seed: int = 42, level: float = 0.95, paired: bool | None = None) -> Effect:
  """Difference of ``measure`` between run groups ``a`` and ``b`` with a bootstrap CI over seeds.

  ``a``/``b``: values of column ``by`` (e.g. by="mixture", a="mix6", b="mix0") or {column: value}
  filters. ``paired``: None = pair by ``seed`` when both groups hold the same seeds once each."""
  ga, name_a = _group(runs, a, by)
  gb, name_b = _group(runs, b, by)
  ga, gb = ga[ga[measure].notna()], gb[gb[measure].notna()]
  va, vb = ga[measure].to_numpy(float), gb[measure].to_numpy(float)
  if len(va) == 0 or len(vb) == 0:
    raise ValueError(f"effect_size: no runs with {measure} in group {name_a if len(va) == 0 else name_b}")
  can_pair = ("seed" in runs and ga["seed"].is_unique and gb["seed"].is_unique
              and set(ga["seed"]) == set(gb["seed"]) and len(va) > 1)
  paired = can_pair if paired is None else (paired and can_pair)
  diff = float(va.mean() - vb.mean())
  rng = np.random.default_rng(seed)
  if len(va) < 2 or len(vb) < 2:
    lo = hi = math.nan
    verdict = "cannot tell"
  else:
    if paired:
      d = (ga.set_index("seed")[measure] - gb.set_index("seed")[measure]).to_numpy(float)
      boot = d[rng.integers(0, len(d), (n_boot, len(d)))].mean(axis=1)
    else:
      boot = (va[rng.integers(0, len(va), (n_boot, len(va)))].mean(axis=1)
              - vb[rng.integers(0, len(vb), (n_boot, len(vb)))].mean(axis=1))
    n = len(va) if paired else min(len(va), len(vb))
    tail = 100 * expanded_tail(1 - level, n)
    lo, hi = (float(v) for v in np.percentile(boot, [tail, 100 - tail]))
    t_lo, t_hi = _t_interval(d if paired else None, va, vb, level)
    lo, hi = min(lo, t_lo), max(hi, t_hi)
    if lo <= 0 <= hi:
      verdict = "not significant"
    else:
      verdict = f"{name_a} higher" if diff > 0 else f"{name_a} lower"
  return Effect(measure, name_a, name_b, len(va), len(vb), float(va.mean()), float(vb.mean()), diff, lo, hi,
                _hedges_g(va, vb), bool(paired), level, verdict)


def effects_table(runs: pd.DataFrame, measure: str, by: str, baseline, **kw) -> pd.DataFrame:
  """Every other value of ``by`` against ``baseline``: one row per comparison, with its sentence."""
  rows = []
  for value in runs[by].dropna().unique():
    if value == baseline:
      continue
    try:
      e = effect_size(runs, measure, value, baseline, by=by, **kw)
    except ValueError:
      continue
    rows.append({**dataclasses.asdict(e), "significant": e.significant, "sentence": e.sentence()})
  return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------- ranking


def mixture_ranking(runs: pd.DataFrame, by: str = "mixture", vision: str = "overall") -> pd.DataFrame:
  """Mixtures ranked on language (ppl, t_acc) and vision (Avg VQA); see the module docstring."""
  cols = [c for c in ("ppl", "t_acc", vision) if c in runs]
  if vision not in cols or not ({"ppl", "t_acc"} & set(cols)):
    raise ValueError(f"mixture_ranking needs {vision} and ppl or t_acc columns")
  g = runs.dropna(subset=[vision]).groupby(by)
  table = g[cols].mean()
  table["n_runs"] = g.size()
  lang = []
  if "ppl" in table:
    table["rank_ppl"] = table["ppl"].rank(method="min", ascending=True)
    lang.append("rank_ppl")
  if "t_acc" in table:
    table["rank_t_acc"] = table["t_acc"].rank(method="min", ascending=False)
    lang.append("rank_t_acc")
  table["rank_language"] = table[lang].sum(axis=1).rank(method="min")
  table["rank_vision"] = table[vision].rank(method="min", ascending=False)
  table["rank_sum"] = table[lang].sum(axis=1) + table["rank_vision"]
  order = table.sort_values(["rank_sum", vision], ascending=[True, False]).index
  table["overall_rank"] = pd.Series(np.arange(1, len(order) + 1), index=order)
  lang_score = -table["ppl"] if "ppl" in table else table["t_acc"]
  vis = table[vision]
  table["pareto"] = [not bool(((lang_score > lang_score[m]) & (vis >= vis[m]) | (lang_score >= lang_score[m])
                               & (vis > vis[m])).any()) for m in table.index]
  return table.sort_values("overall_rank").reset_index()
