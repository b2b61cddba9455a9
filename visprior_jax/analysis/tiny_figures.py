"""The tiny study's figures, every one with its baselines drawn in: chance (gray dotted), majority answer
(brown dash-dot) and the no-image score (purple solid; the mean over the runs evaluated with blank images).

  types           every question type and category: each run's score (dots, by model size), the mean (bar)
  sweep_<cat>     score vs the category's share of the mixture, one panel per question type and category:
                  the sweep's runs, the fitted line (one slope, an intercept per size) and its 95% band
  size            score per model size over the runs whose (mixture, seed) was trained at several sizes
                  (all runs when none was), runs of the same (mixture, seed) joined
  control         facts stated only in the pre-training text (the control) and facts taught in SFT vs the
                  visual-text share of every run's mixture, with the fitted line and band

Each is written as PNG and PDF with its numbers in a CSV beside it (``save``). Inputs are
``question_types.per_run`` tables (real and blank images).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from etils import epath

from visprior_jax.analysis import headline_effects, question_types as qt
from visprior_jax.analysis.figures import BASELINE_STYLE, DPI, plt



def _measures(real: pd.DataFrame) -> list[str]:
  return [m for m in qt.measure_keys() if m in real and real[m].notna().any()]


def draw_baselines(ax, base: dict, x=None, width: float = 0.8, label: bool = True):
  """Horizontal baseline lines across the panel (``x`` None) or a segment centred on ``x``."""
  for name, style in BASELINE_STYLE.items():
    y = base.get(name, math.nan)
    if not (isinstance(y, (int, float)) and math.isfinite(y)):
      continue
    kw = dict(style, label=name if label else None, zorder=2)
    if x is None:
      ax.axhline(y, **kw)
    else:
      ax.hlines(y, x - width / 2, x + width / 2, **kw)


def _size_colors(real: pd.DataFrame) -> dict:
  order = headline_effects.size_order(real) if "size" in real else []
  palette = ("C0", "C2", "C3", "C6", "C8", "C9", "C7")    # not the baselines' C5 / C4 / gray
  return {s: palette[i % len(palette)] for i, s in enumerate(order)}


def save(fig, table: pd.DataFrame, out_dir, stem: str) -> dict:
  out = epath.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  paths = {"png": out / f"{stem}.png", "pdf": out / f"{stem}.pdf", "csv": out / f"{stem}.csv"}
  for kind in ("png", "pdf"):
    with paths[kind].open("wb") as fh:
      fig.savefig(fh, format=kind, dpi=DPI)
    fig.set_layout_engine("none")   # laid out once; the PDF reuses it
  plt.close(fig)
  paths["csv"].write_text(table.to_csv(index=False))
  return paths


def _grid(n: int, ncols: int):
  ncols = max(1, min(ncols, n))
  nrows = max(1, math.ceil(n / ncols))
  fig, axes = plt.subplots(nrows, ncols, figsize=(2.9 * ncols + 0.6, 2.5 * nrows + 0.8), squeeze=False,
                           layout="constrained")
  axes = axes.ravel()
  for ax in axes[n:]:
    ax.axis("off")
  return fig, axes


def _legend(fig, axes):
  entries = {}
  for ax in axes:
    for handle, name in zip(*ax.get_legend_handles_labels()):
      entries.setdefault(name, handle)
  if entries:
    fig.legend(list(entries.values()), list(entries), loc="outside lower center", ncols=min(len(entries), 8),
               fontsize=7, frameon=False)


# ------------------------------------------------------------------------------------------ figures


def types(real: pd.DataFrame, blank: pd.DataFrame, out_dir, stem: str = "tiny_types") -> dict | None:
  measures = _measures(real)
  if not measures:
    return None
  groups = [[m for m in measures if m in qt.BY_KEY], [m for m in measures if m not in qt.BY_KEY]]
  groups = [g for g in groups if g]
  fig, axes = plt.subplots(1, len(groups), figsize=(11, 3.6), squeeze=False, layout="constrained",
                           width_ratios=[len(g) for g in groups])
  colors = _size_colors(real)
  rng = np.random.default_rng(0)
  rows = []
  for ax, group in zip(axes.ravel(), groups):
    for i, m in enumerate(group):
      base = qt.measure_baselines(real, blank, m)
      ax.bar(i, real[m].mean(), 0.7, color="0.85", zorder=1)
      for size, g in real.groupby("size") if "size" in real else [("?", real)]:
        v = g[m].dropna()
        ax.scatter(i + rng.uniform(-0.22, 0.22, len(v)), v, s=10, color=colors.get(size, "C0"), zorder=3,
                   label=f"size {size}" if i == 0 else None)
      draw_baselines(ax, base, x=i, label=i == 0)
      rows.append(dict(measure=m, label=qt.label(m), mean=real[m].mean(), min=real[m].min(), max=real[m].max(),
                       runs=int(real[m].notna().sum()), **base))
    ax.set_xticks(range(len(group)), [qt.label(m).replace("CONTROL: ", "CONTROL\n") for m in group], rotation=50,
                  ha="right", fontsize=6)
    ax.set_ylabel("score (%)", fontsize=7)
    ax.tick_params(labelsize=6)
  _legend(fig, axes.ravel())
  fig.suptitle("Scores per question type and category: runs (dots), mean (bar), baselines (lines)", fontsize=9)
  return save(fig, pd.DataFrame(rows), out_dir, stem)


def _points_and_line(ax, x, y, size, colors, marker_size):
  """Each run as a point coloured by size, and the fitted line (one intercept per size) with its band:
  (fit, band)."""
  for s, idx in size.groupby(size).groups.items():
    ax.scatter(x[idx], y[idx], s=marker_size, color=colors.get(s, "C0"), zorder=3, label=f"size {s}")
  sizes = size.fillna("?").astype(str)
  fit = headline_effects.line_fit(x, y, sizes if sizes.nunique() > 1 else None)
  band = headline_effects.line_band(fit)
  if not band.empty:
    ax.plot(band["x"], band["y"], "-", color="k", lw=1.0, label="fitted line (most common size)")
    ax.fill_between(band["x"], band["lo"], band["hi"], color="k", alpha=0.12, lw=0)
  return fit, band


def sweep(real: pd.DataFrame, blank: pd.DataFrame, category: str, out_dir, stem: str | None = None) -> dict | None:
  """Score vs ``category`` share, one panel per measure (module docstring); None without the sweep."""
  measures = [m for m in _measures(real) if headline_effects.sweep_data(real, category, m)["share"].nunique() >= 2]
  if not measures:
    return None
  fig, axes = _grid(len(measures), 6)
  colors = _size_colors(real)
  rows = []
  for ax, m in zip(axes, measures):
    d = headline_effects.sweep_data(real, category, m)
    fit, band = _points_and_line(ax, d["share"], d["y"], d["size"], colors, marker_size=10)
    base = qt.measure_baselines(real, blank, m, runs=d["run"])
    draw_baselines(ax, base)
    span = fit["x_max"] - fit["x_min"]
    ax.set_title(f"{qt.label(m)}\nchange {fit['slope'] * span:+.1f} [{fit['lo'] * span:+.1f}, {fit['hi'] * span:+.1f}]",
                 fontsize=7)
    ax.set_xlabel(f"{category} share (%)", fontsize=6)
    ax.tick_params(labelsize=6)
    rows += [dict(measure=m, kind="point", run=r, size=s, x=x, y=y) for r, s, x, y in
             zip(d["run"], d["size"], d["share"], d["y"])]
    rows += [dict(measure=m, kind="fit", x=x, y=y, lo=lo, hi=hi) for x, y, lo, hi in
             zip(band.get("x", []), band.get("y", []), band.get("lo", []), band.get("hi", []))]
    rows += [dict(measure=m, kind="baseline", series=k, y=v) for k, v in base.items()]
  _legend(fig, axes)
  fig.suptitle(f"Score vs {category} share: the sweep's runs, fitted line with 95% band, baselines", fontsize=9)
  return save(fig, pd.DataFrame(rows), out_dir, stem or f"tiny_sweep_{category}")


def size(real: pd.DataFrame, blank: pd.DataFrame, out_dir, stem: str = "tiny_size") -> dict | None:
  """Score per model size, matched (mixture, seed) runs joined; None with one size."""
  if "size" not in real or real["size"].nunique() < 2:
    return None
  keys = [k for k in ("mixture", "seed") if k in real]
  if keys:   # the runs of a (mixture, seed) trained at several sizes, when there are any
    matched = real.groupby(keys)["size"].transform("nunique") > 1
    real = real[matched] if matched.any() else real
  order = headline_effects.size_order(real)
  measures = _measures(real)
  fig, axes = _grid(len(measures), 6)
  rows = []
  for ax, m in zip(axes, measures):
    d = real[real[m].notna()]
    xpos = d["size"].map({s: i for i, s in enumerate(order)})
    for _, g in d.assign(_x=xpos).groupby(keys) if keys else []:
      g = g.sort_values("_x")
      if len(g) > 1:
        ax.plot(g["_x"], g[m], "-", color="0.7", lw=0.6, zorder=1)
    ax.scatter(xpos, d[m], s=10, color="C0", zorder=3, label="run")
    means = d.groupby("size")[m].mean().reindex(order)
    ax.plot(range(len(order)), means.to_numpy(), "s", color="k", ms=4, zorder=4, label="mean")
    base = qt.measure_baselines(real, blank, m)
    draw_baselines(ax, base)
    ax.set_xticks(range(len(order)), [str(s) for s in order], fontsize=6)
    ax.set_xlim(-0.5, len(order) - 0.5)
    ax.set_title(qt.label(m), fontsize=7)
    ax.tick_params(labelsize=6)
    rows += [dict(measure=m, kind="point", run=r, size=s, y=y) for r, s, y in zip(d["run"], d["size"], d[m])]
    rows += [dict(measure=m, kind="baseline", series=k, y=v) for k, v in base.items()]
  _legend(fig, axes)
  fig.suptitle("Score per model size (lines: the same mixture and seed), baselines", fontsize=9)
  return save(fig, pd.DataFrame(rows), out_dir, stem)


def control(real: pd.DataFrame, blank: pd.DataFrame, out_dir, stem: str = "tiny_control") -> dict | None:
  """The control (and facts taught in SFT) vs every run's visual-text share; None without both."""
  share = qt.visual_share(real)
  measures = [m for m in (qt.CONTROL, "fact_in_sft") if m in real and real[m].notna().any()]
  if not measures or share.notna().sum() < 2:
    return None
  fig, axes = _grid(len(measures), 2)
  colors = _size_colors(real)
  rows = []
  for ax, m in zip(axes, measures):
    d = pd.DataFrame(dict(run=real["run"], size=real["size"] if "size" in real else "?", x=share, y=real[m])).dropna(
        subset=["x", "y"])
    fit, band = _points_and_line(ax, d["x"], d["y"], d["size"], colors, marker_size=12)
    base = qt.measure_baselines(real, blank, m)
    draw_baselines(ax, base)
    ax.set_title(f"{qt.label(m)}\nslope {fit['slope']:+.2f} [{fit['lo']:+.2f}, {fit['hi']:+.2f}] per share point",
                 fontsize=7)
    ax.set_xlabel("visual-text share of the mixture (%)", fontsize=7)
    ax.set_ylabel("score (%)", fontsize=7)
    ax.tick_params(labelsize=6)
    rows += [dict(measure=m, kind="point", run=r, size=s, x=x, y=y) for r, s, x, y in
             zip(d["run"], d["size"], d["x"], d["y"])]
    rows += [dict(measure=m, kind="baseline", series=k, y=v) for k, v in base.items()]
  _legend(fig, axes)
  fig.suptitle("The control: facts stated only in the pre-training text vs the visual-text share (all runs)",
               fontsize=9)
  return save(fig, pd.DataFrame(rows), out_dir, stem)
