"""Figures of the mixture optimizer, each a PNG with the plotted numbers in a CSV beside it.

  surface   one panel per fitted predictor: its predicted mean over (visual %, reasoning %) -- rows are
            reasoning as in the paper's Table 1 -- with the observed mixtures drawn on top in the same
            colours (value printed beside), the predicted optimum (star) and a reference optimum (x)
  budget    regret of the pick and P(regret <= tie) against the number of runs K, per predictor and for
            the best of the same K observed mixtures
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from etils import epath

from visprior_jax.analysis.figures import DPI, plt
from visprior_jax.mixopt import coords
from visprior_jax.mixopt.validate import TIE, cell_means


def _save(fig, table: pd.DataFrame, out_dir, stem: str) -> dict:
  out = epath.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  paths = {"png": out / f"{stem}.png", "csv": out / f"{stem}.csv"}
  with paths["png"].open("wb") as fh:
    fig.savefig(fh, format="png", dpi=DPI)
  plt.close(fig)
  paths["csv"].write_text(table.to_csv(index=False))
  return paths


def surface(tab: pd.DataFrame, models: dict, target: coords.Target, out_dir, *, stem: str = "surface",
            reference=None, optima: dict | None = None, step: float = 0.01, box=None) -> dict:
  """``models``: {name: fitted predictor}; ``optima``: {name: (reasoning, visual)} to mark (default: the
  argmax on this plot's lattice). Returns {"png", "csv"} paths."""
  cand = coords.candidates(tab, step=step, box=box)
  cells = cell_means(tab)
  rs, vs = np.unique(cand["reasoning"]), np.unique(cand["visual"])
  preds = {n: m.predict(cand) for n, m in models.items()}
  values = np.concatenate([cells["y"].to_numpy()] + [p[0] for p in preds.values()])
  lo, hi = np.nanpercentile(values, [2, 100])
  n = max(len(models), 1)
  ncols = min(n, 3)
  fig, axes = plt.subplots(math.ceil(n / ncols), ncols, figsize=(3.6 * ncols, 3.2 * math.ceil(n / ncols)),
                           squeeze=False, layout="constrained")
  rows = [pd.DataFrame({"kind": "observed", "predictor": "", "reasoning": cells["reasoning"], "visual": cells["visual"],
                        "mean": cells["y"], "std": np.nan, "n_runs": cells["n_runs"]})]
  sign = 1.0 if target.higher_is_better else -1.0
  for ax, (name, (mean, std)) in zip(axes.ravel(), preds.items()):
    grid = pd.DataFrame({"r": cand["reasoning"], "v": cand["visual"], "m": mean}).pivot(index="r", columns="v", values="m")
    grid = grid.reindex(index=rs, columns=vs)
    im = ax.imshow(grid.to_numpy(float), origin="lower", aspect="auto", cmap="viridis", vmin=lo, vmax=hi,
                   extent=(100 * (vs[0] - step / 2), 100 * (vs[-1] + step / 2), 100 * (rs[0] - step / 2),
                           100 * (rs[-1] + step / 2)))
    ax.scatter(100 * cells["visual"], 100 * cells["reasoning"], c=cells["y"], cmap="viridis", vmin=lo, vmax=hi,
               edgecolors="black", linewidths=0.6, s=28, zorder=3)
    for _, c in cells.iterrows():
      ax.annotate(f"{c['y']:.1f}", (100 * c["visual"], 100 * c["reasoning"]), fontsize=5, xytext=(3, 2),
                  textcoords="offset points", color="white")
    i = int(np.nanargmax(sign * mean))
    r_opt, v_opt = (optima or {}).get(name, (cand["reasoning"].iloc[i], cand["visual"].iloc[i]))
    ax.scatter([100 * v_opt], [100 * r_opt], marker="*", s=120, color="red", edgecolors="white", zorder=4,
               label=f"predicted optimum {100 * r_opt:.1f}/{100 * v_opt:.1f}")
    if reference is not None:
      ax.scatter([100 * reference[1]], [100 * reference[0]], marker="x", s=50, color="white", zorder=4,
                 label=f"reference {100 * reference[0]:g}/{100 * reference[1]:g}")
    ax.set_title(name, fontsize=8)
    ax.set_xlabel("visual (%)", fontsize=7)
    ax.set_ylabel("reasoning (%)", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.margins(0.04)
    ax.legend(fontsize=5, loc="upper right", frameon=True)
    plt.colorbar(im, ax=ax, fraction=0.05).ax.tick_params(labelsize=6)
    rows.append(pd.DataFrame({"kind": "surface", "predictor": name, "reasoning": cand["reasoning"],
                              "visual": cand["visual"], "mean": mean, "std": std, "n_runs": np.nan}))
  for ax in axes.ravel()[len(preds):]:
    ax.axis("off")
  fig.suptitle(f"{target.label}: predicted surface and observed mixtures (dots)", fontsize=9)
  return _save(fig, pd.concat(rows, ignore_index=True), out_dir, stem)


def budget(curve: pd.DataFrame, out_dir, *, stem: str = "budget", unit: str = "VQA points") -> dict:
  """Regret and P(regret <= tie) against K from ``validate.budget_curve``."""
  fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2), layout="constrained")
  for i, (name, g) in enumerate(curve.dropna(subset=["regret"]).groupby("predictor", sort=False)):
    style = dict(color="black", lw=2) if name == "best of K observed" else dict(color=f"C{i}")
    a.plot(g["k"], g["regret"], "o-", label=name, **style)
    b.plot(g["k"], g["p_tie"], "o-", label=name, **style)
  a.set_xlabel("runs K")
  a.set_ylabel(f"mean regret of the pick ({unit})")
  b.set_xlabel("runs K")
  b.set_ylabel(f"P(regret <= {TIE:g})")
  a.legend(fontsize=6)
  fig.suptitle("Picking the best mixture from K runs: predictors vs the best observed run", fontsize=9)
  return _save(fig, curve, out_dir, stem)
