"""Trend fits with uncertainty: score vs tokens / parameters, and the optimal category share.

Two trend forms, both fitted by least squares on the runs' scores:

  log-linear          y = a + b * ln(x)              (linear in a, b: solved exactly by lstsq)
  saturating power    y = c - a * x^(-alpha)         (a > 0: rises toward the ceiling c; alpha > 0)

The power law is fitted on x / x_ref (x_ref = geometric mean of x, so the parameters are of order
one whatever the unit); the reported ``a`` is in the original units (a = a' * x_ref^alpha). For a
fixed alpha the model is linear in (c, a'), solved in closed form, so the least-squares optimum is a
1-D search over alpha (variable projection: a grid over ln alpha in [0.01, 10], then a bounded
refine) -- reliable on 4-8 points where a 3-parameter Gauss-Newton from a guess often wanders.
``scipy.optimize.curve_fit`` (Levenberg-Marquardt, analytic Jacobian) then polishes that optimum and
gives the standard errors; its result is kept only if it stays in a >= 0, alpha in (0, 10] and does
not raise the RSS. Bootstrap refits use the variable projection alone (same optimum, no covariance).
x must be > 0: the paper's "0B" runs (no language pre-training) are a baseline, not a point on a
curve in ln(x), so :func:`fit_trend` leaves x <= 0 out and says so.

Model comparison: AICc = n ln(RSS/n) + 2k + 2k(k+1)/(n-k-1) (k = 2 or 3 parameters; Gaussian
errors, variance profiled out); the lower wins, and Akaike weights exp(-dAIC/2) / sum say by how
much. With n <= k+1 points a model can (nearly) interpolate them and its AICc is +inf: a 3-parameter
power law is only preferred from 5 points on (a tie at +inf goes to the log-linear model). A power
law whose alpha sits at the search bound (0.01 or 10) is degenerate (a line in ln x, or a step);
``trend_table`` flags it in ``at_bound``.

Uncertainty: a bootstrap (refit on resampled data, predict on a grid; fixed seed); the band is the
pointwise 2.5 / 97.5 percentiles. ``method``:

  cases      resample the points (runs) with replacement -- the textbook bootstrap;
  strata     resample the runs within each x (over seeds): every x stays in every resample;
  residuals  keep x, add resampled residuals (scaled by sqrt(n / (n - k))) to the fitted values;
  auto       (default) strata when every x has >= 2 runs (seeds), else residuals.

Why not always ``cases``: a study has few distinct x (5 shares, 8 token budgets) and often one run
per x; resampling points then often keeps only k distinct x, the model interpolates them exactly
and extrapolates wildly, so the band measures the design's fragility, not the noise. Resamples
whose fit fails (too few distinct x, no convergence) are skipped and counted (``n_failed``).

Optimal share (:func:`optimal_share`, the paper's Fig. 3 "optimal point"): the argmax over the
observed share range of a smoothed fit -- a quadratic polynomial by default (``degree``), the
lowest-order curve with an interior maximum, about what the paper's shaded smoothed bands look
like -- and a bootstrap percentile CI of that argmax.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import optimize

MODELS = ("log_linear", "power_law")
_ALPHAS = np.geomspace(0.01, 10.0, 80)


@dataclasses.dataclass
class Fit:
  model: str                    # "log_linear" | "power_law" | "poly<d>"
  params: dict[str, float]
  stderr: dict[str, float]
  n: int
  k: int
  rss: float
  aic: float
  predict: Callable[[np.ndarray], np.ndarray]

  def formula(self) -> str:
    p = self.params
    if self.model == "log_linear":
      return f"y = {p['a']:.3g} + {p['b']:.3g} ln x"
    if self.model == "power_law":
      return f"y = {p['c']:.3g} - {p['a']:.3g} x^-{p['alpha']:.3g}"
    return "y = " + " + ".join(f"{v:.3g} x^{i}" for i, v in enumerate(p.values()))


def aic(rss: float, n: int, k: int) -> float:
  """AICc of a least-squares fit; +inf when n <= k + 1 (too few points to compare the model)."""
  if n - k - 1 <= 0:
    return math.inf
  rss = max(rss, 1e-300)
  return n * math.log(rss / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)


def _arrays(x, y):
  x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
  ok = np.isfinite(x) & np.isfinite(y)
  return x[ok], y[ok]


def log_linear(x, y) -> Fit:
  """y = a + b ln x by exact least squares (x > 0)."""
  x, y = _arrays(x, y)
  if np.any(x <= 0):
    raise ValueError("log_linear needs x > 0 (leave out the 0-token baseline)")
  if len(np.unique(x)) < 2:
    raise ValueError("log_linear needs at least 2 distinct x")
  design = np.column_stack([np.ones_like(x), np.log(x)])
  coef, *_ = np.linalg.lstsq(design, y, rcond=None)
  resid = y - design @ coef
  rss = float(resid @ resid)
  dof = len(x) - 2
  stderr = {"a": math.nan, "b": math.nan}
  if dof > 0:
    cov = rss / dof * np.linalg.inv(design.T @ design)
    stderr = {"a": float(math.sqrt(cov[0, 0])), "b": float(math.sqrt(cov[1, 1]))}
  a, b = (float(v) for v in coef)
  return Fit("log_linear", {"a": a, "b": b}, stderr, len(x), 2, rss, aic(rss, len(x), 2),
             lambda t: a + b * np.log(np.asarray(t, dtype=float)))


def _profile(z: np.ndarray, y: np.ndarray, alphas: np.ndarray):
  """For each alpha: the least-squares (c, a') of y = c - a' z^-alpha in closed form, and its RSS."""
  zz = z[None, :] ** -alphas[:, None]
  zc = zz - zz.mean(axis=1, keepdims=True)
  yc = y - y.mean()
  var = np.einsum("ij,ij->i", zc, zc)
  cov = zc @ yc
  a = np.where(var > 0, -cov / np.where(var > 0, var, 1.0), 0.0)
  a = np.maximum(a, 0.0)                      # a' >= 0: a rising (or flat) curve
  c = y.mean() + a * zz.mean(axis=1)
  rss = np.sum((y[None, :] - (c[:, None] - a[:, None] * zz)) ** 2, axis=1)
  return c, a, rss


def _profile_fit(z: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
  """Least-squares (c, a', alpha) by variable projection: grid over ln(alpha), then a bounded 1-D refine."""
  _, _, rss = _profile(z, y, _ALPHAS)
  i = int(np.argmin(rss))
  lo, hi = np.log(_ALPHAS[max(i - 1, 0)]), np.log(_ALPHAS[min(i + 1, len(_ALPHAS) - 1)])
  res = optimize.minimize_scalar(lambda t: _profile(z, y, np.array([math.exp(t)]))[2][0], bounds=(lo, hi),
                                 method="bounded", options={"xatol": 1e-6})
  alpha = float(math.exp(res.x)) if res.fun <= rss[i] else float(_ALPHAS[i])
  c, a, _ = _profile(z, y, np.array([alpha]))
  return float(c[0]), float(a[0]), alpha


def power_law(x, y, p0: Sequence[float] | None = None, *, polish: bool = True) -> Fit:
  """y = c - a x^-alpha (a >= 0, alpha > 0): variable projection, polished by ``scipy.optimize.curve_fit``.

  ``polish=False`` (used for bootstrap resamples) skips curve_fit and the standard errors."""
  x, y = _arrays(x, y)
  if np.any(x <= 0):
    raise ValueError("power_law needs x > 0 (leave out the 0-token baseline)")
  if len(np.unique(x)) < 3:
    raise ValueError("power_law needs at least 3 distinct x")
  x_ref = float(np.exp(np.mean(np.log(x))))
  z = x / x_ref

  def f(t, c, a, alpha):
    return c - a * t ** -alpha

  def jac(t, c, a, alpha):
    p = t ** -alpha
    return np.column_stack([np.ones_like(t), -p, a * p * np.log(t)])

  c, a_ref, alpha = _profile_fit(z, y) if p0 is None else (p0[0], p0[1] * x_ref ** -p0[2], p0[2])
  best = (c, a_ref, alpha)
  rss = float(np.sum((y - f(z, *best)) ** 2))
  err = np.full(3, np.nan)
  if polish:
    try:
      with warnings.catch_warnings():
        warnings.simplefilter("ignore", optimize.OptimizeWarning)
        popt, pcov = optimize.curve_fit(f, z, y, p0=best, jac=jac, method="lm", maxfev=400)
      rss_polished = float(np.sum((y - f(z, *popt)) ** 2))
      if popt[1] >= 0 and 0 < popt[2] <= _ALPHAS[-1] and rss_polished <= rss * (1 + 1e-9):
        best, rss = tuple(float(v) for v in popt), rss_polished
      if np.all(np.isfinite(pcov)):
        err = np.sqrt(np.clip(np.diag(pcov), 0, None))
    except (RuntimeError, ValueError):
      pass   # keep the variable-projection optimum (no standard errors)
  c, a_ref, alpha = best
  a = a_ref * x_ref ** alpha
  stderr = {"c": float(err[0]), "a": float(err[1] * x_ref ** alpha), "alpha": float(err[2])}
  return Fit("power_law", {"c": c, "a": a, "alpha": alpha}, stderr, len(x), 3, rss, aic(rss, len(x), 3),
             lambda t: c - a_ref * (np.asarray(t, dtype=float) / x_ref) ** -alpha)


def polynomial(x, y, degree: int = 2) -> Fit:
  x, y = _arrays(x, y)
  if len(np.unique(x)) < degree + 1:
    raise ValueError(f"a degree-{degree} polynomial needs at least {degree + 1} distinct x")
  coef = np.polynomial.polynomial.polyfit(x, y, degree)
  rss = float(np.sum((y - np.polynomial.polynomial.polyval(x, coef)) ** 2))
  params = {f"p{i}": float(v) for i, v in enumerate(coef)}
  return Fit(f"poly{degree}", params, {k: math.nan for k in params}, len(x), degree + 1, rss,
             aic(rss, len(x), degree + 1), lambda t: np.polynomial.polynomial.polyval(np.asarray(t, float), coef))


FITTERS = {"log_linear": log_linear, "power_law": power_law}


def _resampler(method: str, x: np.ndarray, y: np.ndarray, fitter, rng):
  """A function giving one bootstrap sample (x*, y*) for ``method`` (see the module docstring)."""
  if method == "auto":
    _, counts = np.unique(x, return_counts=True)
    method = "strata" if counts.min() >= 2 else "residuals"
  if method == "cases":
    return method, lambda: (lambda i: (x[i], y[i]))(rng.integers(0, len(x), len(x)))
  if method == "strata":
    groups = [np.flatnonzero(x == v) for v in np.unique(x)]
    return method, lambda: (lambda i: (x[i], y[i]))(np.concatenate([rng.choice(g, len(g)) for g in groups]))
  if method == "residuals":
    fit = fitter(x, y)
    fitted = fit.predict(x)
    resid = (y - fitted) * math.sqrt(len(x) / max(len(x) - fit.k, 1))
    return method, lambda: (x, fitted + rng.choice(resid, len(resid)))
  raise ValueError(f"bootstrap method must be auto, cases, strata or residuals, not {method!r}")


def bootstrap(fitter: Callable[..., Fit], x, y, grid, *, n_boot: int = 1000, seed: int = 42, level: float = 0.95,
              method: str = "auto", stat: Callable[[Fit, np.ndarray], object] | None = None) -> dict:
  """Resamples, refits and evaluates ``stat(fit, grid)`` (default: the prediction on grid).

  Returns {"samples": array (n_ok, ...), "lo", "hi" (pointwise percentiles), "n_failed", "method"}."""
  x, y = _arrays(x, y)
  grid = np.asarray(grid, dtype=float)
  stat = stat or (lambda fit, g: fit.predict(g))
  rng = np.random.default_rng(seed)
  method, draw = _resampler(method, x, y, fitter, rng)
  samples, failed = [], 0
  for _ in range(n_boot):
    xs, ys = draw()
    try:
      with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        samples.append(np.asarray(stat(fitter(xs, ys), grid), dtype=float))
    except (ValueError, RuntimeError, np.linalg.LinAlgError):
      failed += 1
  if not samples:
    nan = np.full(np.shape(stat(fitter(x, y), grid)), np.nan)
    return {"samples": np.empty((0,) + nan.shape), "lo": nan, "hi": nan, "n_failed": failed, "method": method}
  arr = np.stack(samples)
  tail = 100 * (1 - level) / 2
  return {"samples": arr, "lo": np.percentile(arr, tail, axis=0), "hi": np.percentile(arr, 100 - tail, axis=0),
          "n_failed": failed, "method": method}


@dataclasses.dataclass
class Trend:
  """Fits of one series (e.g. one model size's score vs tokens) and the preferred one's band."""
  fits: dict[str, Fit]
  best: str
  grid: np.ndarray
  band: dict                         # bootstrap of the best model: lo, hi on grid, n_failed
  n_excluded: int                    # points with x <= 0 left out
  errors: dict[str, str]             # models that could not be fitted, and why

  def weights(self) -> dict[str, float]:
    aics = {k: f.aic for k, f in self.fits.items()}
    m = min(aics.values())
    if not math.isfinite(m):
      return {k: math.nan for k in aics}
    w = {k: math.exp(-(v - m) / 2) for k, v in aics.items()}
    s = sum(w.values())
    return {k: v / s for k, v in w.items()}


def fit_trend(x, y, *, models: Sequence[str] = MODELS, n_boot: int = 1000, seed: int = 42, n_grid: int = 60,
              level: float = 0.95, method: str = "auto") -> Trend:
  """Fits every model that the points allow, picks the lowest AIC(c), bootstraps its band on a log grid."""
  x, y = _arrays(x, y)
  pos = x > 0
  n_excluded = int((~pos).sum())
  x, y = x[pos], y[pos]
  fits, errors = {}, {}
  for name in models:
    try:
      fits[name] = FITTERS[name](x, y)
    except (ValueError, RuntimeError) as e:
      errors[name] = str(e)
  if not fits:
    raise ValueError(f"no trend model could be fitted to {len(x)} points: {errors}")
  best = min(fits, key=lambda k: fits[k].aic)   # ties (+inf) keep the first: log-linear
  grid = np.geomspace(x.min(), x.max(), n_grid) if x.min() < x.max() else np.array([x.min()])
  fitter = FITTERS[best]
  if best == "power_law":   # resamples: the variable-projection optimum without the curve_fit polish
    fitter = lambda a, b: power_law(a, b, polish=False)  # noqa: E731
  band = bootstrap(fitter, x, y, grid, n_boot=n_boot, seed=seed, level=level, method=method)
  return Trend(fits, best, grid, band, n_excluded, errors)


def trend_table(runs: pd.DataFrame, x: str, measures: Sequence[str], by: str | None = None, **kw) -> pd.DataFrame:
  """One row per (group, measure, model): parameters, stderr, AIC, dAIC, Akaike weight, best flag."""
  rows = []
  groups = runs.groupby(by, sort=True) if by else [("all", runs)]
  for key, g in groups:
    key = key[0] if isinstance(key, tuple) and len(key) == 1 else key
    for m in measures:
      if m not in g or g[m].notna().sum() == 0:
        continue
      try:
        trend = fit_trend(g[x], g[m], **kw)
      except ValueError:
        continue
      weights = trend.weights()
      best_aic = trend.fits[trend.best].aic
      for name, fit in trend.fits.items():
        alpha = fit.params.get("alpha", math.nan)
        delta = fit.aic - best_aic if math.isfinite(best_aic) else math.nan
        rows.append({"group": key, "measure": m, "x": x, "model": name, "formula": fit.formula(), "n": fit.n,
                     "n_excluded": trend.n_excluded, "rss": fit.rss, "aic": fit.aic, "delta_aic": delta,
                     "weight": weights[name], "best": name == trend.best,
                     "at_bound": bool(alpha <= _ALPHAS[0] * 1.001 or alpha >= _ALPHAS[-1] * 0.999),
                     **{f"param.{k}": v for k, v in fit.params.items()},
                     **{f"stderr.{k}": v for k, v in fit.stderr.items()}})
  return pd.DataFrame(rows)


def _argmax_on(fit: Fit, grid: np.ndarray) -> float:
  return float(grid[int(np.argmax(fit.predict(grid)))])


def optimal_share(x, y, *, degree: int = 2, n_boot: int = 1000, seed: int = 42, level: float = 0.95,
                  n_grid: int = 201, method: str = "auto") -> dict:
  """Argmax of a degree-``degree`` polynomial fit over [min x, max x] and its bootstrap CI.

  Returns {"x_opt", "y_opt", "ci_lo", "ci_hi", "fit", "grid", "curve", "band_lo", "band_hi", "boot_argmax",
  "n_failed", "at_edge"}; ``at_edge`` is True when the optimum is an end of the observed range (the
  curve still rises there: the data do not locate a maximum)."""
  x, y = _arrays(x, y)
  fit = polynomial(x, y, degree)
  grid = np.linspace(x.min(), x.max(), n_grid)
  fitter = lambda a, b: polynomial(a, b, degree)  # noqa: E731
  boot = bootstrap(fitter, x, y, grid, n_boot=n_boot, seed=seed, level=level, method=method,
                   stat=lambda f, g: np.concatenate([[_argmax_on(f, g)], f.predict(g)]))
  tail = 100 * (1 - level) / 2
  arg = boot["samples"][:, 0] if len(boot["samples"]) else np.array([np.nan])
  x_opt = _argmax_on(fit, grid)
  return {"x_opt": x_opt, "y_opt": float(fit.predict(np.array([x_opt]))[0]),
          "ci_lo": float(np.nanpercentile(arg, tail)), "ci_hi": float(np.nanpercentile(arg, 100 - tail)),
          "fit": fit, "grid": grid, "curve": fit.predict(grid), "band_lo": boot["lo"][1:], "band_hi": boot["hi"][1:],
          "boot_argmax": arg, "n_failed": boot["n_failed"], "method": boot["method"],
          "at_edge": x_opt in (grid[0], grid[-1])}
