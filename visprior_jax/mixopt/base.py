"""The predictor interface: fit on coordinate rows, predict a mean and an uncertainty.

Every predictor takes the table ``coords.table`` makes (one row per run, coordinates and ``y``)::

  p = predictors.make("scheffe").fit(tab)          # ValueError (TooFewRuns) when the runs cannot pin it down
  mean, std = p.predict(candidates)                 # candidates: rows with the same coordinate columns
  p.n_params                                        # parameters of the fitted model (data-dependent, below)

Decisions:

- Features: the composition (reasoning, visual, other) or its two free shares, plus ``log_params`` /
  ``log_tokens`` only when they vary among the fitted runs: a scale variable with one value is not
  identifiable (it is a constant), so the model leaves it out and ``n_params`` counts only what is
  fitted. Runs of several sizes without ``params`` cannot be told apart by scale: an error says to fit
  one size at a time.
- Refusal: a model with P parameters needs at least P *distinct* mixtures (``cell``: mixture @ size);
  seeds of one mixture repeat a point, they do not pin down another parameter. Fewer is a
  :class:`TooFewRuns` error: "<name> needs at least P runs with distinct mixtures (its parameters), got N".
- ``std`` is the uncertainty of the predicted mean (the model's, not the run-to-run noise): the
  least-squares standard error, the GP posterior, the delta method for the law, the spread of a bag
  for boosting. NaN when the data leave no residual degrees of freedom.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from visprior_jax.mixopt.coords import COMPOSITION, SCALE


class TooFewRuns(ValueError):
  """The runs cannot determine the model's parameters."""


def distinct(tab: pd.DataFrame) -> int:
  return int(tab["cell"].nunique()) if "cell" in tab else len(tab)


def scale_features(tab: pd.DataFrame) -> list[str]:
  """The scale columns that vary among ``tab``'s runs (an error when sizes vary without params)."""
  out = []
  for col in SCALE:
    values = pd.to_numeric(tab[col], errors="coerce") if col in tab else pd.Series(np.nan, index=tab.index)
    if values.dropna().nunique() > 1:
      if values.isna().any():
        raise ValueError(f"{col} is missing for some runs and varies among the others")
      out.append(col)
  if "log_params" not in out and "size" in tab and tab["size"].nunique() > 1:
    raise ValueError(f"runs of sizes {sorted(map(str, tab['size'].unique()))} have no params to tell them apart: "
                     "fit one size at a time")
  return out


class Predictor:
  """Base class: subclasses set ``name``, ``summary`` and implement ``_n_params``, ``_fit``, ``_predict``."""
  name = "predictor"
  summary = ""
  min_runs = 0          # a floor on top of the parameter count (regressors that need many runs)

  def __init__(self):
    self.scale: list[str] = []
    self.fitted = False
    self.n_params = 0

  def _n_params(self, n_scale: int) -> int:
    raise NotImplementedError

  def required(self, tab: pd.DataFrame) -> int:
    """Distinct mixtures needed to fit ``tab``'s runs."""
    return max(self._n_params(len(scale_features(tab))), self.min_runs)

  def fit(self, tab: pd.DataFrame) -> "Predictor":
    tab = tab[np.isfinite(tab["y"].to_numpy(dtype=float))]
    self.scale = scale_features(tab)
    need, have = self.required(tab), distinct(tab)
    if have < need:
      why = "its floor for a regressor of this kind" if self.min_runs > self._n_params(len(self.scale)) \
          else "its parameters"
      raise TooFewRuns(f"{self.name} needs at least {need} runs with distinct mixtures ({why}), got {have}")
    self.n_params = self._n_params(len(self.scale))
    self._fit(tab, tab["y"].to_numpy(dtype=float))
    self.fitted = True
    return self

  def predict(self, tab: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    if not self.fitted:
      raise ValueError(f"{self.name}: fit before predict")
    missing = [c for c in (*COMPOSITION, *self.scale) if c not in tab]
    if missing:
      raise ValueError(f"{self.name}: the rows to predict lack columns {missing}")
    mean, std = self._predict(tab)
    return np.asarray(mean, dtype=float), np.asarray(std, dtype=float)

  def _fit(self, tab: pd.DataFrame, y: np.ndarray) -> None:
    raise NotImplementedError

  def _predict(self, tab: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    raise NotImplementedError

  def matrix(self, tab: pd.DataFrame, columns) -> np.ndarray:
    return tab[list(columns)].to_numpy(dtype=float)
