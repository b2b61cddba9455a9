"""Figures from the results store, from the paper's published numbers, or both side by side.

  from visprior_jax.analysis import figures
  figures.draw("sweeps", df, source="both", out_dir="report/figures")
  # -> {"png": .../sweeps.png, "pdf": .../sweeps.pdf, "csv": .../sweeps.csv}

``df`` is the store's long table (``store.load``) or a path to one. ``source="store"`` draws the
study's runs, ``"paper"`` the paper's numbers (``paper.paper_table``, restricted to the figure's
own table or figure), ``"both"`` the two side by side (a panel says so when one side has no data).
Every figure is written as PNG and PDF with the plotted numbers in a CSV beside it (the tidy table
of ``figdata``, with a ``source`` column). Matplotlib runs on the Agg backend (no display needed).

Figures (``FIGURES``): scaling_tokens (Fig. 1), scaling_params, sources (Fig. 2), sweeps (Fig. 3),
spearman (Fig. 4), encoders (Fig. 5), sft_ablation (Fig. 6), mle_sources (Fig. 7), judge (Fig. 9),
alignment (Fig. 10), grid (Table 1), mixtures (Table 2), blind (Table 6).

Paper values read by eye from a figure are drawn with hollow markers / hatched bars, so an
approximate number never looks like a printed one. For the tiny study (``question_types.is_tiny``) every
panel that plots a score also gets its baselines as horizontal lines (rows of kind ``baseline`` in the
CSV: chance gray dotted, majority answer brown dash-dot, no-image score purple solid;
``figdata.baseline_rows``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from etils import epath  # noqa: E402

from visprior_jax.analysis import figdata, paper as paper_lib  # noqa: E402
from visprior_jax.analysis.tables import MEASURES, label, runs_table  # noqa: E402

SOURCES = ("store", "paper", "both")
DPI = 120
BASELINE_STYLE = {"chance": dict(color="0.45", ls=":", lw=1.2), "majority": dict(color="C5", ls="-.", lw=1.2),
                  "no image": dict(color="C4", ls="-", lw=1.2, alpha=0.8)}   # rows of kind "baseline"


class NoData(ValueError):
  """The table has no runs for this figure."""


@dataclasses.dataclass(frozen=True)
class FigureSpec:
  title: str
  data: Callable[..., pd.DataFrame]
  panel: Callable                        # panel(ax, tidy rows of one panel, approx: bool)
  paper_sources: tuple[str, ...]
  ncols: int = 3
  baselines: bool = True                 # tiny study: chance / majority / no-image lines on score panels


# ------------------------------------------------------------------------------------- panels


def _curves(ax, d, approx, xlabel, logx=False):
  colors = {}
  for i, (series, g) in enumerate(d[d["kind"] == "point"].groupby("series", sort=False)):
    colors[series] = f"C{i % 10}"
    g = g.sort_values("x")
    mean = g.groupby("x")["y"].mean()
    face = "none" if approx else colors[series]
    ax.plot(mean.index, mean.to_numpy(), "-", color=colors[series], lw=0.8, alpha=0.6)
    ax.scatter(g["x"], g["y"], s=14, color=colors[series], facecolors=face, label=str(series), zorder=3)
  for series, g in d[d["kind"] == "fit"].groupby("series", sort=False):
    c = colors.get(series, "k")
    ax.plot(g["x"], g["y"], "--", color=c, lw=1.0)
    ax.fill_between(g["x"], g["lo"], g["hi"], color=c, alpha=0.15, lw=0)
  if logx:
    ax.set_xscale("log")
  _ylim_to_points(ax, d.loc[d["kind"] == "point", "y"])
  unit = d["x_unit"].dropna().iloc[0] if "x_unit" in d and d["x_unit"].notna().any() else ""
  ax.set_xlabel(f"{xlabel} ({unit})" if unit else xlabel)
  ax.legend(fontsize=6, frameon=False)


def _panel_tokens(ax, d, approx):
  _curves(ax, d, approx, "pre-training tokens")


def _panel_params(ax, d, approx):
  _curves(ax, d, approx, "parameters", logx=True)


def _panel_sweep(ax, d, approx):
  pts = d[d["kind"] == "point"]
  ax.scatter(pts["x"], pts["y"], s=14, color="C0", facecolors="none" if approx else "C0", zorder=3)
  mean = pts.groupby("x")["y"].mean()
  ax.plot(mean.index, mean.to_numpy(), "-", color="C0", lw=0.8, alpha=0.6)
  fit = d[d["kind"] == "fit"]
  if not fit.empty:
    ax.plot(fit["x"], fit["y"], "--", color="C1", lw=1.0)
    ax.fill_between(fit["x"], fit["lo"], fit["hi"], color="C1", alpha=0.15, lw=0)
  for _, o in d[d["kind"] == "opt"].iterrows():
    ax.axvline(o["x"], color="C3", lw=1.0)
    ax.axvspan(o["lo"], o["hi"], color="C3", alpha=0.1, lw=0)
    ax.text(0.02, 0.95, f"opt {o['x']:.0f}% [{o['lo']:.0f}, {o['hi']:.0f}]", transform=ax.transAxes, fontsize=6,
            va="top")
  ax.set_xlabel("share of the mix (%)")
  _ylim_to_points(ax, pts["y"])


def _draw_baselines(ax, rows: pd.DataFrame):
  """The panel's baseline rows as horizontal lines; the y range widened to show them."""
  lo, hi = ax.get_ylim()
  for _, b in rows.iterrows():
    ax.axhline(b["y"], **BASELINE_STYLE.get(b["series"], {}), label=b["series"], zorder=2)
  ys = rows["y"].astype(float)
  pad = 0.05 * max(hi - lo, 1.0)
  ax.set_ylim(min(lo, ys.min() - pad), max(hi, ys.max() + pad))
  ax.legend(fontsize=5, frameon=False)


def _ylim_to_points(ax, y):
  """Bands may be wide; keep the data readable (points +- 60% of their range)."""
  lo, hi = float(np.nanmin(y)), float(np.nanmax(y))
  pad = max(0.6 * (hi - lo), 0.05 * max(abs(hi), 1e-9))
  ax.set_ylim(lo - pad, hi + pad)


def _panel_lines(ax, d, approx):
  for i, (series, g) in enumerate(d.groupby("series", sort=False)):
    g = g.sort_values("x")
    c = f"C{i % 10}"
    ax.errorbar(g["x"], g["y"], yerr=g["sd"] if "sd" in g else None, fmt="-o", ms=3, color=c, lw=1,
                mfc="none" if approx else c, label=str(series))
  ax.set_xlabel("share of the mix (%)")
  ax.legend(fontsize=6, frameon=False)


def _panel_bars(ax, d, approx):
  if "split" in d and d["split"].notna().any():
    splits = list(dict.fromkeys(d["split"]))
    labels = list(dict.fromkeys(d["label"]))
    width = 0.8 / len(splits)
    for j, s in enumerate(splits):
      g = d[d["split"] == s].set_index("label").reindex(labels)
      ax.bar(np.arange(len(labels)) + (j - (len(splits) - 1) / 2) * width, g["y"], width, label=label(s),
             hatch="//" if approx else None, color=f"C{j}", edgecolor="white" if not approx else f"C{j}",
             fill=not approx)
    ax.set_xticks(np.arange(len(labels)), labels, rotation=60, ha="right", fontsize=6)
    ax.legend(fontsize=6, frameon=False, ncols=2)
  else:
    ax.bar(np.arange(len(d)), d["y"], yerr=d["sd"] if "sd" in d and d["sd"].notna().any() else None,
           color="C0", fill=not approx, hatch="//" if approx else None, edgecolor="C0")
    ax.set_xticks(np.arange(len(d)), d["label"], rotation=60, ha="right", fontsize=6)
  lo, hi = np.nanmin(d["y"]), np.nanmax(d["y"])
  if np.isfinite(lo) and lo > 0:
    pad = max((hi - lo) * 0.3, 0.5)
    ax.set_ylim(max(lo - pad, 0), hi + pad)


def _panel_grid(ax, d, approx):
  reas, viss = sorted(d["rea"].unique()), sorted(d["vis"].unique())
  m = np.full((len(reas), len(viss)), np.nan)
  for _, r in d.iterrows():
    m[reas.index(r["rea"]), viss.index(r["vis"])] = r["y"]
  im = ax.imshow(m, cmap="viridis", aspect="auto")
  ax.set_xticks(range(len(viss)), [f"{v:g}" for v in viss])
  ax.set_yticks(range(len(reas)), [f"{v:g}" for v in reas])
  ax.set_xlabel("visual (%)")
  ax.set_ylabel("reasoning (%)")
  for _, r in d.iterrows():
    i, j = reas.index(r["rea"]), viss.index(r["vis"])
    ax.text(j, i, f"{r['y']:.1f}", ha="center", va="center", fontsize=6,
            color="red" if r.get("best") else "white", fontweight="bold" if r.get("best") else None)
  plt.colorbar(im, ax=ax, fraction=0.05).ax.tick_params(labelsize=6)


def _panel_spearman(ax, d, approx):
  order = d.drop_duplicates("row").sort_values("order")["row"].tolist()
  m = d.pivot(index="row", columns="col", values="y").reindex(index=order, columns=order)
  im = ax.imshow(m.to_numpy(float), cmap="RdBu_r", vmin=-1, vmax=1)
  ax.set_xticks(range(len(order)), order, rotation=30, ha="right", fontsize=7)
  ax.set_yticks(range(len(order)), order, fontsize=7)
  for i in range(len(order)):
    for j in range(len(order)):
      if i != j:
        ax.text(j, i, f"{m.iloc[i, j]:.2f}", ha="center", va="center", fontsize=7)
  groups = d.drop_duplicates("row").groupby("cluster_row")["row"].apply(list).tolist()
  ax.set_title("clusters: " + " | ".join("+".join(g) for g in groups), fontsize=6)
  plt.colorbar(im, ax=ax, fraction=0.05).ax.tick_params(labelsize=6)


def _panel_mixtures(ax, d, approx):
  x = "ppl" if "ppl" in d and d["ppl"].notna().any() else "t_acc"
  y = "overall"
  ax.scatter(d[x], d[y], c=np.where(d["pareto"], "C3", "C0"), s=18, zorder=3)
  for _, r in d.iterrows():
    rank = f"#{int(r['overall_rank'])}"
    if "paper_rank" in d and pd.notna(r.get("paper_rank")):
      rank += f", paper #{int(r['paper_rank'])}"
    ax.annotate(f"{r['label']} ({rank})", (r[x], r[y]), fontsize=6, xytext=(3, 2), textcoords="offset points")
  ax.set_xlabel(label(x) + (" (lower is better)" if x == "ppl" else ""))
  ax.set_ylabel(label(y))
  ax.set_title("our rank: rank sum of ppl, accuracy, Avg VQA; red: Pareto front", fontsize=6)


FIGURES: dict[str, FigureSpec] = {
    "scaling_tokens": FigureSpec("VQA vs pre-training tokens, per model size (Fig. 1)", figdata.scaling_tokens,
                                 _panel_tokens, ("Fig. 1",)),
    "scaling_params": FigureSpec("VQA vs parameters, per token budget", figdata.scaling_params, _panel_params,
                                 ("Fig. 1",)),
    "sources": FigureSpec("Single-source models (Fig. 2)", figdata.sources, _panel_bars, ("Fig. 2",)),
    "sweeps": FigureSpec("Category share sweeps with the optimal share (Fig. 3)", figdata.sweeps, _panel_sweep,
                         ("Fig. 3",), ncols=4),
    "spearman": FigureSpec("Spearman correlation across VQA categories (Fig. 4)", figdata.spearman, _panel_spearman,
                           ("Fig. 4",), ncols=1, baselines=False),
    "encoders": FigureSpec("Vision encoders x reasoning share (Fig. 5)", figdata.encoders, _panel_lines, ("Fig. 5",)),
    "sft_ablation": FigureSpec("Removing perception / reasoning SFT data (Fig. 6)", figdata.sft_ablation, _panel_bars,
                               ("Fig. 6",), ncols=1),
    "mle_sources": FigureSpec("MLE-Bench by object size, single-source models (Fig. 7)", figdata.mle_sources,
                              _panel_bars, ("Fig. 7",), ncols=1),
    "judge": FigureSpec("Reasoning quality vs share (Fig. 9)", figdata.judge, _panel_lines, ("Sec. 4.4",), ncols=2),
    "alignment": FigureSpec("LLM-vision alignment vs share (Fig. 10)", figdata.alignment, _panel_lines,
                            ("Sec. 4.5",), ncols=1),
    "grid": FigureSpec("Reasoning x visual grid, Avg VQA (Table 1)", figdata.grid, _panel_grid, ("Table 1",), ncols=1,
                       baselines=False),
    "mixtures": FigureSpec("Mixtures: language vs vision (Table 2)", figdata.mixtures, _panel_mixtures, ("Table 2",),
                           ncols=1, baselines=False),
    "blind": FigureSpec("Blind SFT (Table 6)", figdata.blind, _panel_bars, ("Table 6",), ncols=1),
}


# ---------------------------------------------------------------------------------------- data


def _as_long(results) -> pd.DataFrame:
  if results is None:
    return pd.DataFrame()
  if isinstance(results, pd.DataFrame):
    return results
  from visprior_jax.study.store import load
  return load(results)


def figure_data(name: str, results=None, *, source: str = "store", **opts) -> pd.DataFrame:
  """The tidy numbers of figure ``name`` (``source`` "store" or "paper"); empty when there are none."""
  spec = FIGURES[name]
  if source == "paper":
    long = paper_lib.paper_table(spec.paper_sources)
    if name == "spearman":
      return spec.data(long, None, matrix=paper_lib.paper_spearman())
    approx = bool(long["approx"].any())
  else:
    long = _as_long(results)
    approx = False
  if long.empty:
    return pd.DataFrame()
  runs = runs_table(long)
  out = spec.data(long, runs, **opts)
  if not out.empty and source == "paper":
    out = out.assign(approx=_approx_rows(out, long) if approx else False)
  if not out.empty and source == "store" and spec.baselines:
    out = pd.concat([out, figdata.baseline_rows(out, long)], ignore_index=True)
  return out


def _approx_rows(out: pd.DataFrame, long: pd.DataFrame) -> np.ndarray:
  """Per plotted row: is its measure read from a figure? (Fig. 2: exact Avg labels, approximate bars.)"""
  by_key = {v: k for k, v in MEASURES.items()}
  approx = {by_key.get((b, m), m) for b, m in zip(long.loc[long["approx"].astype(bool), "benchmark"],
                                                  long.loc[long["approx"].astype(bool), "metric"])}
  if "measure" in out:
    measure = out["measure"]
  elif "split" in out and out["split"].notna().any():
    measure = out["split"]
  else:
    measure = out["panel"]
  return measure.isin(approx).to_numpy()


def _panels(d: pd.DataFrame) -> list:
  return list(dict.fromkeys(d["panel"])) if not d.empty else []


def _draw_side(subfig, spec: FigureSpec, d: pd.DataFrame, heading: str, n_rows: int):
  panels = _panels(d)
  ncols = min(spec.ncols, max(len(panels), 1))
  axes = np.atleast_1d(subfig.subplots(n_rows, ncols, squeeze=False)).ravel()
  approx = bool(d["approx"].any()) if "approx" in d else False
  for ax in axes[len(panels):]:
    ax.axis("off")
  if not panels:
    axes[0].text(0.5, 0.5, "no runs for this figure", ha="center", va="center", transform=axes[0].transAxes)
  for ax, p in zip(axes, panels):
    rows = d[d["panel"] == p]
    base = rows[rows["kind"] == "baseline"] if "kind" in rows else rows.iloc[0:0]
    rows = rows.drop(base.index)
    spec.panel(ax, rows, bool(rows["approx"].any()) if "approx" in rows else False)
    if not base.empty:
      _draw_baselines(ax, base)
    if not ax.get_title():
      ax.set_title(label(str(p)) if " | " not in str(p) else " | ".join(
        [label(str(p).split(" | ")[0])] + str(p).split(" | ")[1:]), fontsize=8)
    ax.tick_params(labelsize=6)
    ax.xaxis.label.set_size(7)
    ax.yaxis.label.set_size(7)
  subfig.suptitle(heading + ("  (hollow / hatched: read from the paper's figure, approximate)" if approx else ""),
                  fontsize=8)


def draw(name: str, results=None, *, source: str = "store", out_dir="figures", stem: str | None = None,
         missing: str = "raise", precomputed: dict | None = None, **opts) -> dict | None:
  """Draws figure ``name`` and writes <stem>.png, .pdf and .csv in ``out_dir``; returns their paths.

  ``results``: the store's long table or a path to it (needed for "store" and "both"). ``opts`` go to
  the figure's data function (``where``, ``measures``, ``n_boot``, ``seed``, ...). With no data:
  ``missing="raise"`` raises :class:`NoData`, ``"skip"`` returns None. ``precomputed``: {side: tidy
  table} already made by :func:`figure_data` (not computed again)."""
  if name not in FIGURES:
    raise ValueError(f"unknown figure {name!r}; known: {', '.join(FIGURES)}")
  if source not in SOURCES:
    raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
  spec = FIGURES[name]
  sides = ["store", "paper"] if source == "both" else [source]
  precomputed = precomputed or {}
  data = {s: precomputed[s] if s in precomputed else figure_data(name, results if s == "store" else None, source=s,
                                                                  **opts) for s in sides}
  if all(d.empty for d in data.values()):
    if missing == "skip":
      return None
    raise NoData(f"figure {name}: no data in the {' or '.join(sides)} table")
  n_rows = max(math.ceil(max(len(_panels(d)), 1) / min(spec.ncols, max(len(_panels(d)), 1))) for d in data.values())
  ncols = sum(min(spec.ncols, max(len(_panels(d)), 1)) for d in data.values())
  fig = plt.figure(figsize=(max(3.2 * ncols, 5), 2.8 * n_rows + 0.6), layout="constrained")
  subfigs = fig.subfigures(1, len(sides), squeeze=False).ravel() if len(sides) > 1 else [fig]
  headings = {"store": "this study", "paper": f"paper ({', '.join(spec.paper_sources)})"}
  for sf, s in zip(subfigs, sides):
    _draw_side(sf, spec, data[s], headings[s], n_rows)
  if len(sides) == 1:
    fig.suptitle(spec.title + f" -- {headings[sides[0]]}", fontsize=9)
  else:
    fig.suptitle(spec.title, fontsize=9)
  out = epath.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  stem = stem or name
  paths = {"png": out / f"{stem}.png", "pdf": out / f"{stem}.pdf", "csv": out / f"{stem}.csv"}
  for kind in ("png", "pdf"):
    with paths[kind].open("wb") as fh:
      fig.savefig(fh, format=kind, dpi=DPI)
    fig.set_layout_engine("none")   # the layout is done; the PDF reuses it (constrained layout is the slow part)
  plt.close(fig)
  table = pd.concat([d.assign(source=s) for s, d in data.items() if not d.empty], ignore_index=True)
  paths["csv"].write_text(table.to_csv(index=False))
  return paths


def draw_all(results=None, *, source: str = "store", out_dir="figures", names: Sequence[str] | None = None,
             **opts) -> dict[str, dict]:
  """Every figure that has data (others skipped); {name: paths}."""
  out = {}
  for name in names or FIGURES:
    paths = draw(name, results, source=source, out_dir=out_dir, missing="skip", **opts)
    if paths:
      out[name] = paths
  return out
