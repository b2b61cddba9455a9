"""The numbers behind every figure, as tidy tables (the CSV written next to each figure).

Each ``<figure>(long, runs, **opts)`` takes the long results table (store or paper) and its
:func:`tables.runs_table`, and returns a DataFrame with a ``panel`` column plus the plotted numbers.
Rows carry a ``kind``: ``point`` (a run or a mean over seeds), ``fit`` (a fitted curve with its
bootstrap band ``lo``/``hi``), ``opt`` (an optimal share with its CI), ``bar`` or ``cell``.
An empty result means the table has no runs for that figure.

Which runs a figure uses (store): study-wide comparisons use the default variant of everything
that the figure does not vary -- SFT ``full`` (or unset), not blind, the most common encoder --
so an encoder or SFT ablation does not leak into a mixture sweep. Seeds are averaged for bars and
cells (``sd`` and ``n`` kept); curves are fitted on every run, so seed noise is in their bands.
The scaling figures use the mixture with the most (size, tokens) cells unless ``where`` says
otherwise (the paper: web-crawl only). In the paper table the figure's own rows are picked by
``source`` before this (``figures.FIGURES[...].paper_sources``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from visprior_jax.analysis import fits, question_types, stats
from visprior_jax.analysis.tables import label, mixture_kind, select
from visprior_jax.eval.vqa.base import CATEGORIES

VQA = ("overall",) + CATEGORIES
MLE = ("mle_small", "mle_medium", "mle_large", "mle_overall")


def size_label(size) -> str:
  if not isinstance(size, str) or not size:
    return "?"
  return size.removeprefix("llama3_").upper() if size.startswith("llama3_") else size


def _units(values: pd.Series, names=((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))) -> tuple[float, str]:
  top = float(values.max()) if len(values) else 1.0
  for scale, unit in names:
    if top >= scale:
      return scale, unit
  return 1.0, ""


def default_variant(runs: pd.DataFrame, keep_encoders: bool = False, keep_sft: bool = False) -> pd.DataFrame:
  """Runs with SFT full/unset, not blind and (unless kept) the most common encoder."""
  out = runs
  if "blind" in out and not keep_sft:
    out = out[~out["blind"].fillna(False).astype(bool)]
  if "sft" in out and not keep_sft:
    out = out[out["sft"].isna() | out["sft"].isin(["full", ""])]
  if "encoder" in out and not keep_encoders and out["encoder"].nunique() > 1:
    out = out[out["encoder"] == out["encoder"].mode().iloc[0]]
  return out


def _present(runs: pd.DataFrame, measures) -> list[str]:
  return [m for m in measures if m in runs and runs[m].notna().any()]


# ------------------------------------------------------------------------------------- scaling


def scaling_subset(runs: pd.DataFrame) -> pd.DataFrame:
  """The default-variant runs of the mixture with the most (size, tokens) cells."""
  runs = default_variant(runs)
  if "mixture" not in runs or runs["mixture"].nunique() <= 1:
    return runs
  cells = runs.groupby("mixture").apply(lambda g: len(g[["size", "tokens"]].drop_duplicates()), include_groups=False)
  return runs[runs["mixture"] == cells.idxmax()]


def scaling(long, runs, *, x: str = "tokens", series: str = "size", measures=VQA, where=None, n_boot=1000,
            seed=42, **_) -> pd.DataFrame:
  """Score vs tokens (series = sizes) or vs params (series = token budgets), trend fit + band."""
  runs = select(runs, where) if where else scaling_subset(runs)
  if x not in runs or series not in runs:
    return pd.DataFrame()
  runs = runs[runs[x].notna()]
  if runs[x].nunique() < 2:   # one token budget (or size): nothing to draw a trend over
    return pd.DataFrame()
  scale, unit = _units(runs[x].astype(float))
  rows = []
  for m in _present(runs, measures):
    sub = runs[runs[m].notna()]
    order = sub.groupby(series)["params" if series == "size" and "params" in sub else series].first()\
        .sort_values().index if len(sub) else []
    for key in order:
      g = sub[sub[series] == key]
      name = size_label(key) if series == "size" else token_label(key)
      xv = g[x].astype(float).to_numpy() / scale
      for xi, yi, run in zip(xv, g[m].to_numpy(float), g["run"]):
        rows.append(dict(panel=m, series=name, kind="point", x=xi, y=yi, run=run, x_unit=unit))
      if len(np.unique(xv[xv > 0])) >= 2:
        try:
          trend = fits.fit_trend(xv, g[m].to_numpy(float), n_boot=n_boot, seed=seed)
        except ValueError:
          continue
        curve = trend.fits[trend.best].predict(trend.grid)
        for xi, yi, lo, hi in zip(trend.grid, curve, trend.band["lo"], trend.band["hi"]):
          rows.append(dict(panel=m, series=name, kind="fit", x=xi, y=yi, lo=lo, hi=hi, model=trend.best,
                           x_unit=unit))
  return pd.DataFrame(rows)


def token_label(tokens) -> str:
  if pd.isna(tokens):
    return "?"
  scale, unit = _units(pd.Series([float(tokens)]))
  return f"{float(tokens) / scale:g}{unit}"


def scaling_tokens(long, runs, **kw):
  return scaling(long, runs, x="tokens", series="size", **kw)


def scaling_params(long, runs, **kw):
  return scaling(long, runs, x="params", series="tokens", **kw)


# -------------------------------------------------------------------------------------- sweeps


def sweep_runs(runs: pd.DataFrame, keep_encoders=False) -> pd.DataFrame:
  """The default-variant runs of ``sweep:<category>:<pct>`` mixtures, with ``category`` and ``share`` (%,
  from ``share.<category>`` when the spec has it, else the name's percentage)."""
  if "mixture" not in runs:
    return runs.iloc[0:0]
  runs = default_variant(runs, keep_encoders=keep_encoders)
  parsed = runs["mixture"].map(mixture_kind)
  sweep = parsed.map(lambda p: p[0] == "sweep")
  out = runs[sweep].copy()
  out["category"] = parsed[sweep].map(lambda p: p[1][0])
  pct = parsed[sweep].map(lambda p: p[1][1])
  shares = [out.at[i, f"share.{c}"] * 100 if f"share.{c}" in out and pd.notna(out.at[i, f"share.{c}"]) else pct[i]
            for i, c in zip(out.index, out["category"])]
  out["share"] = np.asarray(shares, dtype=float)
  return out


def one_size(runs: pd.DataFrame) -> pd.DataFrame:
  """The runs of the most common model size when there are several (a curve over shares is not fitted
  across sizes); all runs otherwise."""
  if "size" not in runs or runs["size"].nunique() <= 1:
    return runs
  return runs[runs["size"] == runs["size"].mode().iloc[0]]


def sweeps(long, runs, *, measures=("overall", "Vision-Centric"), where=None, degree=2, n_boot=1000, seed=42,
           **_) -> pd.DataFrame:
  """Score vs category share per category, quadratic smooth + band, optimal share with bootstrap CI (each
  category's runs of its most common model size, :func:`one_size`)."""
  runs = sweep_runs(select(runs, where))
  rows = []
  for m in _present(runs, measures):
    for cat in [c for c in _category_order(runs["category"].unique())]:
      g = one_size(runs[(runs["category"] == cat) & runs[m].notna()])
      panel = f"{m} | {cat}"
      for xi, yi, run in zip(g["share"], g[m], g["run"]):
        rows.append(dict(panel=panel, measure=m, category=cat, kind="point", x=xi, y=yi, run=run))
      if g["share"].nunique() >= degree + 1:
        o = fits.optimal_share(g["share"], g[m], degree=degree, n_boot=n_boot, seed=seed)
        for xi, yi, lo, hi in zip(o["grid"], o["curve"], o["band_lo"], o["band_hi"]):
          rows.append(dict(panel=panel, measure=m, category=cat, kind="fit", x=xi, y=yi, lo=lo, hi=hi))
        rows.append(dict(panel=panel, measure=m, category=cat, kind="opt", x=o["x_opt"], y=o["y_opt"],
                         lo=o["ci_lo"], hi=o["ci_hi"], at_edge=o["at_edge"]))
  return pd.DataFrame(rows)


def baseline_rows(tidy: pd.DataFrame, long: pd.DataFrame) -> pd.DataFrame:
  """The tiny study's baselines for a figure's panels, as rows of kind ``baseline`` (``series`` = chance,
  majority or no image; ``y``): for every panel whose measure (the panel, or its part before " | ") is a
  score of ``question_types.per_run``, over the runs plotted in it (all runs when its rows name none).
  Empty for other studies."""
  if tidy.empty or not question_types.is_tiny(long):
    return pd.DataFrame()
  real, blank = question_types.per_run(long), question_types.per_run(long, images="blank")
  rows = []
  for panel, g in tidy.groupby("panel", sort=False):
    measure = g["measure"].iloc[0] if "measure" in g and pd.notna(g["measure"].iloc[0]) else str(panel).split(" | ")[0]
    if measure not in real or f"{measure}.chance" not in real:
      continue
    runs = g["run"].dropna().tolist() if "run" in g and g["run"].notna().any() else None
    base = question_types.measure_baselines(real, blank, measure, runs=runs)
    rows += [dict(panel=panel, kind="baseline", series=k, y=v) for k, v in base.items() if pd.notna(v)]
  return pd.DataFrame(rows)


def optimal_share_rows(runs: pd.DataFrame, n_boot: int = 1000, seed: int = 42,
                       measures=("overall", "Vision-Centric")) -> pd.DataFrame:
  """Per (measure, sweep category with >= 3 shares): the optimal share (``fits.optimal_share``: argmax of a
  quadratic over the observed range, bootstrap CI), the fitted score there, ``at_edge``, the runs (of the
  category's most common model size, :func:`one_size`)."""
  sw = sweep_runs(runs)
  rows = []
  for m in [m for m in measures if m in sw]:
    for cat, g in sw[sw[m].notna()].groupby("category"):
      g = one_size(g)
      if g["share"].nunique() < 3:
        continue
      o = fits.optimal_share(g["share"], g[m], n_boot=n_boot, seed=seed)
      rows.append(dict(category=cat, measure=label(m), optimal_share=o["x_opt"], ci_lo=o["ci_lo"], ci_hi=o["ci_hi"],
                       at_edge=o["at_edge"], runs=len(g), bootstrap=o["method"], key=m, fitted=o["y_opt"],
                       share_min=float(g["share"].min()), share_max=float(g["share"].max())))
  return pd.DataFrame(rows)


def _category_order(cats):
  from visprior_jax.data.mixtures import CATEGORIES as MIX_CATEGORIES
  known = [c for c in MIX_CATEGORIES if c in cats]
  return known + sorted(c for c in cats if c not in known)


def encoders(long, runs, *, measures=("overall", "Vision-Centric", "OCR & Chart"), category="reasoning", where=None,
             **_) -> pd.DataFrame:
  """Score vs share of one category, one line per vision encoder (Fig. 5)."""
  runs = sweep_runs(select(runs, where), keep_encoders=True)
  runs = runs[runs["category"] == category]
  if "encoder" not in runs or runs["encoder"].nunique() < 2:   # one encoder: that is the sweeps figure
    return pd.DataFrame()
  return _lines(runs, measures, "encoder")


def _lines(runs, measures, series) -> pd.DataFrame:
  rows = []
  for m in _present(runs, measures):
    g = runs[runs[m].notna()].groupby([series, "share"])[m]
    for (s, x), v in g:
      rows.append(dict(panel=m, series=s, kind="point", x=x, y=v.mean(), sd=v.std(ddof=1) if len(v) > 1 else np.nan,
                       n=len(v)))
  return pd.DataFrame(rows)


def judge(long, runs, *, measures=("logical_soundness", "reasoning_depth"), where=None, **_) -> pd.DataFrame:
  """Reasoning quality vs category share (the paper's §4.2 / Fig. 9), one line per category."""
  return _lines(sweep_runs(select(runs, where)), measures, "category")


def alignment(long, runs, *, measures=("mnn",), where=None, **_) -> pd.DataFrame:
  """LLM-vision mNN vs category share (the paper's §4.3 / Fig. 10)."""
  return _lines(sweep_runs(select(runs, where)), measures, "category")


# ---------------------------------------------------------------------------------- grid, bars


def grid(long, runs, *, measure="overall", where=None, **_) -> pd.DataFrame:
  """Table 1: mean score per (reasoning %, visual %) cell."""
  runs = default_variant(select(runs, where))
  if "mixture" not in runs or measure not in runs:
    return pd.DataFrame()
  parsed = runs["mixture"].map(mixture_kind)
  g = runs[parsed.map(lambda p: p[0] == "grid")].copy()
  if g.empty:
    return pd.DataFrame()
  cells = parsed[g.index].map(lambda p: p[1])
  g["rea"] = [g.at[i, "share.reasoning"] * 100 if "share.reasoning" in g and pd.notna(g.at[i, "share.reasoning"])
              else c[0] for i, c in zip(g.index, cells)]
  g["vis"] = [g.at[i, "share.visual"] * 100 if "share.visual" in g and pd.notna(g.at[i, "share.visual"])
              else c[1] for i, c in zip(g.index, cells)]
  g["rea"], g["vis"] = g["rea"].round(6), g["vis"].round(6)
  agg = g.groupby(["rea", "vis"])[measure].agg(["mean", "std", "count"]).reset_index()
  best = agg["mean"].idxmax()
  return pd.DataFrame(dict(panel=measure, kind="cell", rea=agg["rea"], vis=agg["vis"], y=agg["mean"], sd=agg["std"],
                           n=agg["count"], best=agg.index == best))


def _single_runs(runs):
  """Single-source runs of one (size, tokens) cell: the one with the most sources (the paper: 3B / 30B)."""
  runs = default_variant(runs)
  if "mixture" not in runs:
    return runs.iloc[0:0]
  parsed = runs["mixture"].map(mixture_kind)
  out = runs[parsed.map(lambda p: p[0] == "single")].copy()
  out["source_name"] = parsed[out.index].map(lambda p: p[1][0])
  keys = [k for k in ("size", "tokens") if k in out and out[k].notna().any()]
  if keys and len(out):
    cell = out.groupby(keys)["source_name"].nunique().idxmax()
    cell = cell if isinstance(cell, tuple) else (cell,)
    out = out[np.logical_and.reduce([out[k] == v for k, v in zip(keys, cell)])]
  return out


def _bars(runs, measures, group, order_by) -> pd.DataFrame:
  rows = []
  present = _present(runs, measures)
  if not present:
    return pd.DataFrame()
  key = order_by if order_by in present else present[0]
  order = runs.groupby(group)[key].mean().sort_values(ascending=False).index
  for m in present:
    g = runs[runs[m].notna()].groupby(group)[m]
    mean, sd, n = g.mean(), g.std(ddof=1), g.size()
    for name in order:
      if name in mean:
        rows.append(dict(panel=m, kind="bar", label=name, y=mean[name], sd=sd.get(name, np.nan), n=int(n[name])))
  return pd.DataFrame(rows)


def sources(long, runs, *, measures=VQA, where=None, **_) -> pd.DataFrame:
  """Fig. 2: Avg VQA and the 4 categories per single-source model (sorted by Avg)."""
  return _bars(_single_runs(select(runs, where)), measures, "source_name", "overall")


def mle_sources(long, runs, *, where=None, **_) -> pd.DataFrame:
  """Fig. 7: MLE-Bench small / medium / large / overall per single-source model (one grouped panel)."""
  out = _bars(_single_runs(select(runs, where)), MLE, "source_name", "mle_overall")
  if not out.empty:
    out = out.rename(columns={"panel": "split"}).assign(panel="MLE-Bench")
  return out


def blind(long, runs, *, measures=VQA, where=None, **_) -> pd.DataFrame:
  """Blind SFT vs normal SFT (Table 6): category bars per (mixture, blind), mean over seeds."""
  runs = select(runs, where)
  if "blind" not in runs or runs["blind"].fillna(False).astype(bool).sum() == 0:
    return pd.DataFrame()
  runs = default_variant(runs, keep_sft=True)
  if "mixture" in runs:   # only mixtures trained both ways
    with_blind = set(runs.loc[runs["blind"].fillna(False).astype(bool), "mixture"])
    runs = runs[runs["mixture"].isin(with_blind)]
  if "sft" in runs:       # normal = full SFT (not the data-removal variants)
    runs = runs[runs["blind"].fillna(False).astype(bool) | runs["sft"].isna() | runs["sft"].isin(["full", ""])]
  runs = runs.assign(group=[f"{m}{' +blind' if b else ''}" for m, b in
                            zip(runs.get("mixture", runs["run"]).fillna("?"), runs["blind"].fillna(False))])
  rows = []
  for m in _present(runs, measures):
    g = runs[runs[m].notna()].groupby("group")[m]
    for name, v in g:
      rows.append(dict(panel="categories", kind="bar", split=m, label=name, y=v.mean(),
                       sd=v.std(ddof=1) if len(v) > 1 else np.nan, n=len(v)))
  return pd.DataFrame(rows)


def sft_ablation(long, runs, *, where=None, **_) -> pd.DataFrame:
  """Fig. 6: scores of SFT-data-removal variants as % of the full-data run they match.

  Paper table: its ``pct_of_baseline`` rows. Store: each variant run is matched with the ``full`` run
  of the same (size, tokens, mixture, encoder, seed); percentages are averaged over matches."""
  if "pct_of_baseline" in set(long.get("metric", pd.Series(dtype=str))):
    p = long[long["metric"] == "pct_of_baseline"]
    return pd.DataFrame(dict(panel="% of full SFT", kind="bar", label=p["sft"].to_numpy(),
                             split=p["benchmark"].str.removeprefix("vqa:").to_numpy(), y=p["value"].to_numpy(),
                             n=1))
  runs = select(runs, where)
  if "blind" in runs:   # blind SFT is its own figure
    runs = runs[~runs["blind"].fillna(False).astype(bool)]
  if "sft" not in runs or not (runs["sft"] == "full").any() or runs["sft"].nunique() < 2:
    return pd.DataFrame()
  keys = [k for k in ("size", "tokens", "mixture", "encoder", "seed") if k in runs]
  base = runs[runs["sft"] == "full"].set_index(keys) if keys else None
  rows = []
  for m in _present(runs, VQA):
    for variant, g in runs[(runs["sft"] != "full") & runs["sft"].notna()].groupby("sft"):
      pct = []
      for _, r in g.iterrows():
        k = tuple(r[c] for c in keys)
        if base is not None and k in base.index:
          ref = base.loc[[k], m].mean()
          if pd.notna(ref) and ref and pd.notna(r[m]):
            pct.append(100 * r[m] / ref)
      if pct:
        rows.append(dict(panel="% of full SFT", kind="bar", label=variant, split=m, y=float(np.mean(pct)), n=len(pct)))
  return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ correlation, mixtures


def correlation_runs(runs: pd.DataFrame) -> pd.DataFrame:
  """Default-variant runs of the most common model size (the paper: all 105 3B models)."""
  runs = default_variant(runs)
  if "size" in runs and runs["size"].nunique() > 1:
    runs = runs[runs["size"] == runs["size"].mode().iloc[0]]
  return runs


def spearman(long, runs, *, where=None, matrix: pd.DataFrame | None = None, **_) -> pd.DataFrame:
  """Fig. 4: Spearman rho across the categories (computed over runs, or a given matrix) + clusters."""
  if matrix is not None:
    rho, p, n = matrix, None, None
  else:
    runs = correlation_runs(select(runs, where))
    try:
      rho, p, n = stats.spearman_matrix(runs)
    except ValueError:
      return pd.DataFrame()
  cl = stats.cluster_categories(rho)
  member = {c: i + 1 for i, group in enumerate(cl["clusters"]) for c in group}
  rows = [dict(panel="spearman", kind="cell", row=a, col=b, y=rho.loc[a, b], p=None if p is None else p.loc[a, b],
               n=n, cluster_row=member[a], cluster_col=member[b], order=cl["order"].index(a))
          for a in rho.index for b in rho.columns]
  return pd.DataFrame(rows)


def mixtures(long, runs, *, vision="overall", where=None, **_) -> pd.DataFrame:
  """Table 2: language (ppl) vs vision (Avg VQA) per mixture, with the ranking."""
  runs = default_variant(select(runs, where))
  if "mixture" not in runs:
    return pd.DataFrame()
  runs = runs[runs["mixture"].map(lambda m: mixture_kind(m)[0] == "mix")]
  if "size" in runs and runs["size"].nunique() > 1:   # one model size: the one with the most mixtures
    runs = runs[runs["size"] == runs.groupby("size")["mixture"].nunique().idxmax()]
  try:
    table = stats.mixture_ranking(runs, vision=vision)
  except ValueError:
    return pd.DataFrame()
  table = table.assign(panel="language vs vision", kind="point", label=table["mixture"])
  published = long[long["benchmark"] == "mixture_rank"] if "benchmark" in long else long.iloc[0:0]
  if not published.empty:   # the paper's own "Overall Rank" beside ours
    table["paper_rank"] = table["mixture"].map(published.groupby("mixture")["value"].first())
  return table
