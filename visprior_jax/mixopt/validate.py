"""Validation: how well does each predictor rank mixtures and find the best one?

On one scale (the paper's Table 1 grid, or any study's runs):

  loo_table      leave-one-mixture-out (all seeds of a mixture @ size leave together): RMSE, MAE,
                 Spearman over mixtures with a 95% bootstrap interval (the held-out pairs resampled,
                 1000 draws; no refit), Kendall, and the Spearman difference to "more reasoning wins"
                 with a paired bootstrap interval; top-1 regret of the full fit's best mixture; the
                 continuous argmax over the runs' (reasoning, visual) box and its distance from a
                 reference optimum (60/15 for Table 1)
  baselines      a random mixture (expected regret and distance), "more reasoning wins" (rank by the
                 reasoning share; ties share the pick), the best of K randomly chosen observed mixtures
  budget_curve   each predictor fitted on K random mixtures, scored on all of them: median held-out
                 Spearman, mean regret of its pick, P(regret <= tie), mean distance of its optimum --
                 beside the best of the same K observed mixtures, the honest comparison at equal cost

Across scales (the tiny study): :func:`cross_size` fits on the smaller size's runs only and ranks the
larger size's mixtures, beside "rank by the smaller size's own scores" (DataDecide's single-scale
baseline) and "more reasoning wins".

Regret is in the target's units against the best observed mixture (the mean over seeds); lower-is-
better targets are negated first so "best" is the maximum. A predictor that refuses to fit is reported
with its reason, never dropped. Everything is seeded (``seed``).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from visprior_jax.mixopt import coords, predictors
from visprior_jax.mixopt.base import TooFewRuns

TIE = 0.2      # VQA points: MIXTURE_LAWS.md 5's "hit@0.2" (the residual SD is ~0.25)


def _make(name, higher):
  return predictors.make(name, higher_is_better=higher)


def fit(name, tab, higher):
  """A fitted predictor (numerical warnings of the optimisers silenced; refusals still raise)."""
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    return _make(name, higher).fit(tab)


def cell_means(tab: pd.DataFrame, column: str = "y") -> pd.DataFrame:
  """One row per mixture @ size: coordinates, the mean of ``column`` over seeds, the number of runs."""
  keys = ["cell", "size", "reasoning", "visual", "other"]
  g = tab.groupby("cell", sort=False)
  out = g[keys[1:] + list(coords.SCALE)].first().reset_index()
  out[column] = g[column].mean().to_numpy()
  out["n_runs"] = g.size().to_numpy()
  return out


def _sign(higher: bool) -> float:
  return 1.0 if higher else -1.0


def _distance(r, v, ref) -> float:
  return float(math.hypot(100 * (r - ref[0]), 100 * (v - ref[1]))) if ref is not None else math.nan


def _rank_stats(pred, y, ref_score, n_boot, seed, level=0.95) -> dict:
  """Spearman/Kendall of pred vs y; bootstrap CI over pairs; paired difference to ref_score's Spearman."""
  pred, y, ref_score = (np.asarray(a, dtype=float) for a in (pred, y, ref_score))
  rho = stats.spearmanr(pred, y).statistic
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, len(y), (n_boot, len(y)))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    boot = np.array([stats.spearmanr(pred[i], y[i]).statistic for i in idx])
    ref = np.array([stats.spearmanr(ref_score[i], y[i]).statistic for i in idx])
  tail = 100 * (1 - level) / 2
  ok = np.isfinite(boot)
  diff = (boot - ref)[ok & np.isfinite(ref)]
  return {"spearman": float(rho), "ci_lo": float(np.percentile(boot[ok], tail)) if ok.any() else math.nan,
          "ci_hi": float(np.percentile(boot[ok], 100 - tail)) if ok.any() else math.nan,
          "kendall": float(stats.kendalltau(pred, y).statistic),
          "d_rho_vs_reasoning": float(rho - stats.spearmanr(ref_score, y).statistic),
          "d_lo": float(np.percentile(diff, tail)) if len(diff) else math.nan,
          "d_hi": float(np.percentile(diff, 100 - tail)) if len(diff) else math.nan}


def loo(tab: pd.DataFrame, name: str, higher: bool = True) -> pd.DataFrame:
  """Leave-one-mixture-out predictions: one row per run (``mean``, ``std`` from the fit without its cell)."""
  out = tab[["run", "cell", "y"]].copy()
  out["mean"], out["std"] = np.nan, np.nan
  for cell in tab["cell"].unique():
    held = (tab["cell"] == cell).to_numpy()
    mean, std = fit(name, tab[~held], higher).predict(tab[held])
    out.loc[held, "mean"], out.loc[held, "std"] = mean, std
  return out


def optimum(model, cand: pd.DataFrame, higher: bool) -> tuple[float, float, float]:
  """(reasoning, visual, predicted value) of the model's best mixture among ``cand`` (``coords.candidates``)."""
  mean, _ = model.predict(cand)
  i = int(np.nanargmax(_sign(higher) * mean))
  return float(cand["reasoning"].iloc[i]), float(cand["visual"].iloc[i]), float(mean[i])


def loo_table(tab: pd.DataFrame, names=predictors.NAMES, *, higher: bool = True, reference=None,
              n_boot: int = 1000, seed: int = 42, box=None) -> pd.DataFrame:
  """One row per predictor (module docstring); ``status`` is fitted, "fitted, no LOO" (it fits all the
  runs but not all but one mixture) or refused, with the reason.
  ``attrs["models"]`` holds the predictors fitted on all runs."""
  cells, cand = cell_means(tab), coords.candidates(tab, box=box)
  s = _sign(higher)
  best = float(np.max(s * cells["y"]))
  rows, models = [], {}
  for name in names:
    row = {"predictor": name, "summary": _make(name, higher).summary, "runs": len(tab), "mixtures": len(cells)}
    try:
      full = fit(name, tab, higher)
    except (TooFewRuns, ValueError) as e:
      rows.append({**row, "status": "refused", "reason": str(e)})
      continue
    models[name] = full
    try:
      pred = loo(tab, name, higher).groupby("cell", sort=False)["mean"].mean().reindex(cells["cell"]).to_numpy()
      err = pred - cells["y"].to_numpy()
      scores = {"status": "fitted", "reason": "", "loo_rmse": float(np.sqrt(np.mean(err ** 2))),
                "loo_mae": float(np.mean(np.abs(err))),
                **_rank_stats(s * pred, s * cells["y"], cells["reasoning"], n_boot, seed)}
    except (TooFewRuns, ValueError) as e:     # fits all the runs, not all but one mixture
      scores = {"status": "fitted, no LOO", "reason": f"leave-one-out: {e}"}
    fitted, _ = full.predict(cells)
    pick = int(np.argmax(s * fitted))
    r_opt, v_opt, y_opt = optimum(full, cand, higher)
    rows.append({**row, **scores, "n_params": full.n_params,
                 "pick_reasoning": cells["reasoning"].iloc[pick], "pick_visual": cells["visual"].iloc[pick],
                 "regret": best - s * cells["y"].iloc[pick], "opt_reasoning": r_opt, "opt_visual": v_opt,
                 "opt_value": y_opt, "distance": _distance(r_opt, v_opt, reference)})
  out = pd.DataFrame(rows)
  out.attrs["models"] = models      # the full fits, for plots
  return out


def baselines(tab: pd.DataFrame, *, higher: bool = True, reference=None, ks=(6, 9, 12, 15, 20),
              n_draws: int = 1000, n_boot: int = 1000, seed: int = 42) -> pd.DataFrame:
  """Random mixture, "more reasoning wins", best of K random observed mixtures (module docstring)."""
  cells = cell_means(tab)
  s = _sign(higher)
  y = s * cells["y"].to_numpy()
  best = y.max()
  dist = np.array([_distance(r, v, reference) for r, v in zip(cells["reasoning"], cells["visual"])])
  rows = [{"baseline": "random mixture", "spearman": 0.0, "regret": float(np.mean(best - y)),
           "p_tie": float(np.mean(best - y <= TIE + 1e-9)), "distance": float(np.mean(dist))}]
  top = (cells["reasoning"] == cells["reasoning"].max()).to_numpy()
  ranks = _rank_stats(cells["reasoning"], y, cells["reasoning"], n_boot, seed)
  rows.append({"baseline": "more reasoning wins", **{k: ranks[k] for k in ("spearman", "ci_lo", "ci_hi", "kendall")},
               "regret": float(np.mean(best - y[top])), "p_tie": float(np.mean(best - y[top] <= TIE + 1e-9)),
               "distance": float(np.mean(dist[top]))})
  rng = np.random.default_rng(seed)
  for k in ks:
    if k >= len(cells):
      continue
    picks = [(lambda i: i[np.argmax(y[i])])(rng.choice(len(cells), k, replace=False)) for _ in range(n_draws)]
    regrets = best - y[picks]
    rows.append({"baseline": f"best of {k} observed", "k": k, "regret": float(regrets.mean()),
                 "p_tie": float(np.mean(regrets <= TIE + 1e-9)), "distance": float(np.mean(dist[picks]))})
  return pd.DataFrame(rows)


def budget_curve(tab: pd.DataFrame, names=predictors.NAMES, *, higher: bool = True, reference=None,
                 ks=(6, 9, 12, 15, 20), n_draws: int = 100, slow_draws: int = 30, seed: int = 42,
                 box=None) -> pd.DataFrame:
  """Each predictor fitted on K random mixtures (``slow_draws`` for the Shukor law, whose fit costs
  ~0.2 s), against the best of the same K observed mixtures. One row per (predictor, K)."""
  cells, cand = cell_means(tab), coords.candidates(tab, box=box)
  s = _sign(higher)
  y = s * cells["y"].to_numpy()
  best = y.max()
  dist = np.array([_distance(r, v, reference) for r, v in zip(cells["reasoning"], cells["visual"])])
  rows = []
  for k in ks:
    if k >= len(cells):
      continue
    rng = np.random.default_rng(seed + k)
    draws = [np.sort(rng.choice(len(cells), k, replace=False)) for _ in range(max(n_draws, slow_draws))]
    observed = np.array([best - y[i[np.argmax(y[i])]] for i in draws[:n_draws]])
    rows.append({"predictor": "best of K observed", "k": k, "draws": n_draws, "refused": 0,
                 "median_spearman": math.nan, "regret": float(observed.mean()),
                 "p_tie": float(np.mean(observed <= TIE + 1e-9)),
                 "distance": float(np.mean([dist[i[np.argmax(y[i])]] for i in draws[:n_draws]]))})
    for name in names:
      use = draws[:slow_draws if name == "shukor" else n_draws]
      rho, regret, far, refused = [], [], [], 0
      for i in use:
        train = tab[tab["cell"].isin(cells["cell"].iloc[i])]
        try:
          model = fit(name, train, higher)
        except (TooFewRuns, ValueError):
          refused += 1
          continue
        mean, _ = model.predict(cells)
        held = np.setdiff1d(np.arange(len(cells)), i)
        with warnings.catch_warnings():
          warnings.simplefilter("ignore")
          rho.append(stats.spearmanr(s * mean[held], y[held]).statistic)
        regret.append(best - y[int(np.argmax(s * mean))])
        r_opt, v_opt, _ = optimum(model, cand, higher)
        far.append(_distance(r_opt, v_opt, reference))
      ok = len(regret) > 0
      rows.append({"predictor": name, "k": k, "draws": len(use), "refused": refused,
                   "median_spearman": float(np.nanmedian(rho)) if ok else math.nan,
                   "regret": float(np.mean(regret)) if ok else math.nan,
                   "p_tie": float(np.mean(np.array(regret) <= TIE + 1e-9)) if ok else math.nan,
                   "distance": float(np.mean(far)) if ok else math.nan})
  return pd.DataFrame(rows)


def cross_size(tab: pd.DataFrame, names=predictors.NAMES, *, higher: bool = True, small=None,
               large=None) -> dict:
  """Fit on the smaller size, rank the larger size's mixtures. Returns {"small", "large", "table", "cells"}:
  ``table`` has one row per predictor or baseline (spearman, top-1 hit, regret at the larger size)."""
  sizes = coords.order_sizes(tab)
  if len(sizes) < 2 and (small is None or large is None):
    raise ValueError(f"the cross-size check needs runs of two sizes; the runs have {sizes}")
  small = sizes[0] if small is None else small
  large = sizes[-1] if large is None else large
  s = _sign(higher)
  lo, hi = tab[tab["size"] == small], tab[tab["size"] == large]
  cells = cell_means(hi)
  mix_lo = lo.groupby("mixture")["y"].mean() if "mixture" in lo and lo["mixture"].notna().all() else None
  y = s * cells["y"].to_numpy()
  best = y.max()
  order = hi.groupby("cell", sort=False)["mixture"].first().reindex(cells["cell"]).to_numpy()

  def score(pred, name, status="fitted", reason="", n_params=None):   # pred in the target's units
    pred = s * np.asarray(pred, dtype=float)
    tied = np.flatnonzero(pred == np.max(pred))
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      rho = stats.spearmanr(pred, y).statistic
    return {"predictor": name, "status": status, "reason": reason, "n_params": n_params, "spearman": float(rho),
            "hit": bool(np.all(y[tied] == best)), "regret": float(np.mean(best - y[tied])),
            "pick": ", ".join(str(order[i]) for i in tied)}

  rows = []
  for name in names:
    try:
      model = fit(name, lo, higher)
    except (TooFewRuns, ValueError) as e:
      rows.append({"predictor": name, "status": "refused", "reason": str(e)})
      continue
    rows.append(score(model.predict(cells)[0], name, n_params=model.n_params))
  if mix_lo is not None and set(order) <= set(mix_lo.index):
    rows.append(score(mix_lo.reindex(order).to_numpy(), f"rank by the {small} scores", status="baseline"))
  rows.append(score(cells["reasoning"].to_numpy() * s, "more reasoning wins", status="baseline"))
  rows.append({"predictor": "random mixture", "status": "baseline", "spearman": 0.0, "hit": False,
               "regret": float(np.mean(best - y))})
  cells = cells.assign(mixture=order)
  return {"small": small, "large": large, "table": pd.DataFrame(rows), "cells": cells,
          "runs": (len(lo), len(hi))}
