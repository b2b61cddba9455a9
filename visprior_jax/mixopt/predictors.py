"""The predictors, by name (``make``), and the two least-squares ones: the Scheffe quadratic and a linear model.

  name       model                                                              parameters (k = 3 parts)
  scheffe    y = sum_i b_i x_i + sum_{i<j} b_ij x_i x_j  (+ a ln N + b ln D)     6 (+1 per varying scale)
  shukor     Shukor et al. 2025's joint mixture + scale law (shukor.py)         7 at one scale, 17 across N and D
  gp         Gaussian process, RBF + noise, over (reasoning, visual[, ln N, ln D])  4 hyperparameters in 2-D
  linear     y = b0 + b_r reasoning + b_v visual  (+ a ln N + b ln D)           3 (+1 per varying scale)
  boosting   gradient-boosted depth-2 trees, bagged (boosting.py)               enabled from 50 runs

The Scheffe model (Scheffe 1958; the quadratic mixture surrogate MoDoMoDo uses) is the full quadratic
on the simplex without an intercept -- sum x_i = 1 makes one redundant -- so over the composition
(reasoning, visual, other) it is every quadratic in the two free shares and can hold an interior
optimum, which a linear model or a single exponential mixing law (Ye et al.) cannot. It is the default
for accuracy-type targets: on the paper's Table 1 its leave-one-out Spearman is 0.82
(/work/shared/MIXTURE_LAWS.md section 5; a test checks that number). Both least-squares models are
ordinary least squares (optional ridge for the Scheffe model); ``std`` is the standard error of the
fitted mean, s * sqrt(x0' (X'X)^-1 x0).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from visprior_jax.mixopt.base import Predictor, TooFewRuns
from visprior_jax.mixopt.coords import COMPOSITION

NAMES = ("scheffe", "shukor", "gp", "linear", "boosting")


class LeastSquares(Predictor):
  """Ordinary (or ridge) least squares on a design matrix the subclass builds."""
  ridge = 0.0

  def design(self, tab: pd.DataFrame) -> np.ndarray:
    raise NotImplementedError

  def _fit(self, tab, y):
    x = self.design(tab)
    rank = np.linalg.matrix_rank(x)
    if rank < x.shape[1]:
      raise TooFewRuns(f"{self.name}: the runs' mixtures pin down only {rank} of its {x.shape[1]} parameters "
                       "(they lie on a line or repeat); add mixtures off that line")
    gram = x.T @ x + self.ridge * np.eye(x.shape[1])
    inv = np.linalg.pinv(gram)
    self.coef = inv @ x.T @ y
    resid = y - x @ self.coef
    dof = len(y) - x.shape[1]
    self.sigma2 = float(resid @ resid / dof) if dof > 0 else np.nan
    self.cov = self.sigma2 * inv

  def _predict(self, tab):
    x = self.design(tab)
    return x @ self.coef, np.sqrt(np.clip(np.einsum("ij,jk,ik->i", x, self.cov, x), 0, None))


class Scheffe(LeastSquares):
  name = "scheffe"
  summary = "quadratic Scheffe mixture model over (reasoning, visual, other)"

  def __init__(self, components=COMPOSITION, ridge: float = 0.0):
    super().__init__()
    self.components, self.ridge = tuple(components), float(ridge)

  def _n_params(self, n_scale):
    k = len(self.components)
    return k + k * (k - 1) // 2 + n_scale

  def design(self, tab):
    x = self.matrix(tab, self.components)
    pairs = [x[:, i] * x[:, j] for i, j in itertools.combinations(range(x.shape[1]), 2)]
    return np.column_stack([x, *pairs, self.matrix(tab, self.scale)])


class Linear(LeastSquares):
  name = "linear"
  summary = "linear regression on (reasoning, visual) (RegMix's linear baseline)"

  def _n_params(self, n_scale):
    return 3 + n_scale

  def design(self, tab):
    return np.column_stack([np.ones(len(tab)), self.matrix(tab, ("reasoning", "visual")),
                            self.matrix(tab, self.scale)])


def make(name: str, *, higher_is_better: bool = True) -> Predictor:
  """A fresh predictor by name (NAMES); ``higher_is_better`` orients the Shukor law (accuracy vs loss)."""
  from visprior_jax.mixopt import boosting, gp, shukor
  makers = {"scheffe": Scheffe, "linear": Linear, "gp": gp.GaussianProcess, "boosting": boosting.Boosting,
            "shukor": lambda: shukor.ShukorJoint(higher_is_better=higher_is_better)}
  if name not in makers:
    raise ValueError(f"unknown predictor {name!r}; predictors: {', '.join(NAMES)}")
  return makers[name]()
