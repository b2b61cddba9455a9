"""Gaussian-process predictor over mixture coordinates (and log size): the proposal model.

Model: y = m + f(x) + noise, f ~ GP(0, s_f^2 exp(-|(x - x')/l|^2 / 2)) with one length-scale per input
(ARD), white noise s_n^2, the constant m = the mean of y. Inputs are (reasoning, visual) plus the
scale columns that vary (ln params, ln tokens), each mapped to [0, 1] by the fitted runs' range; y is
standardized. Hyperparameters (d length-scales, s_f, s_n: d + 2 parameters, the refusal threshold)
maximise the log marginal likelihood (L-BFGS-B from two starts, bounded: length-scales 0.05-20 of
the range, s_f 0.05-10 and s_n 0.001-2 of y's SD). ``std`` is the posterior SD of f (the mean's
uncertainty, without the noise), which is what expected improvement needs. MixAtlas uses a GP the
same way for multimodal mixtures; on Table 1 it ranks worse than the quadratic (MIXTURE_LAWS.md 5)
but gives the calibrated uncertainty the proposals need.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, optimize

from visprior_jax.mixopt.base import Predictor

_BOUNDS = ((np.log(0.05), np.log(20.0)), (np.log(0.05), np.log(10.0)), (np.log(1e-3), np.log(2.0)))


def _kernel(a: np.ndarray, b: np.ndarray, ls: np.ndarray, sf2: float) -> np.ndarray:
  d = (a[:, None, :] - b[None, :, :]) / ls
  return sf2 * np.exp(-0.5 * np.sum(d * d, axis=-1))


class GaussianProcess(Predictor):
  name = "gp"
  summary = "Gaussian process (RBF + noise) over (reasoning, visual[, ln size])"

  def _n_params(self, n_scale):
    return 2 + n_scale + 2

  def _inputs(self, tab) -> np.ndarray:
    return (self.matrix(tab, ("reasoning", "visual", *self.scale)) - self.lo) / self.span

  def _nll(self, theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Negative log marginal likelihood and its gradient in the log hyperparameters."""
    d = x.shape[1]
    ls, sf2, sn2 = np.exp(theta[:d]), np.exp(2 * theta[d]), np.exp(2 * theta[d + 1])
    kf = _kernel(x, x, ls, sf2)
    try:
      c = linalg.cho_factor(kf + (sn2 + 1e-8) * np.eye(len(x)), lower=True)
    except linalg.LinAlgError:
      return 1e10, np.zeros_like(theta)
    alpha = linalg.cho_solve(c, y)
    nll = 0.5 * y @ alpha + np.sum(np.log(np.diag(c[0]))) + 0.5 * len(y) * np.log(2 * np.pi)
    inner = np.outer(alpha, alpha) - linalg.cho_solve(c, np.eye(len(x)))   # dNLL = -tr(inner dK) / 2
    sq = ((x[:, None, :] - x[None, :, :]) / ls) ** 2
    grad = [-0.5 * np.sum(inner * kf * sq[..., j]) for j in range(d)]
    grad += [-np.sum(inner * kf), -sn2 * np.trace(inner)]
    return float(nll), np.array(grad)

  def _fit(self, tab, y):
    raw = self.matrix(tab, ("reasoning", "visual", *self.scale))
    self.lo = raw.min(axis=0)
    self.span = np.where(np.ptp(raw, axis=0) > 0, np.ptp(raw, axis=0), 1.0)
    x = self._inputs(tab)
    self.y_mean, self.y_sd = float(y.mean()), float(y.std()) or 1.0
    z = (y - self.y_mean) / self.y_sd
    d = x.shape[1]
    bounds = [_BOUNDS[0]] * d + [_BOUNDS[1], _BOUNDS[2]]
    best = None
    for ls0, sn0 in ((0.3, 0.3), (1.0, 0.5)):
      start = np.array([np.log(ls0)] * d + [0.0, np.log(sn0)])
      res = optimize.minimize(self._nll, start, args=(x, z), jac=True, method="L-BFGS-B", bounds=bounds)
      if best is None or res.fun < best.fun:
        best = res
    self.theta = best.x
    self.x, self.z = x, z
    ls, sf2, sn2 = np.exp(self.theta[:d]), np.exp(2 * self.theta[d]), np.exp(2 * self.theta[d + 1])
    self.ls, self.sf2, self.noise_sd = ls, sf2, float(np.sqrt(sn2) * self.y_sd)
    self.chol = linalg.cho_factor(_kernel(x, x, ls, sf2) + (sn2 + 1e-8) * np.eye(len(x)), lower=True)
    self.alpha = linalg.cho_solve(self.chol, z)

  def _predict(self, tab):
    xs = self._inputs(tab)
    ks = _kernel(xs, self.x, self.ls, self.sf2)
    mean = ks @ self.alpha
    v = linalg.solve_triangular(self.chol[0], ks.T, lower=True)
    var = np.clip(self.sf2 - np.sum(v * v, axis=0), 0, None)
    return self.y_mean + self.y_sd * mean, self.y_sd * np.sqrt(var)
