"""Gradient-boosted trees over mixture coordinates (RegMix-style), enabled only from 50 runs.

RegMix (arXiv:2407.01492) fits LightGBM on 512 proxy runs; Olmix finds such regressors need more than
~118 runs to win, and on the paper's 30 Table-1 cells LightGBM ranked worst of the non-trivial models
(MIXTURE_LAWS.md 2, 3, 5). So this predictor refuses below ``MIN_RUNS`` = 50 distinct mixtures
whatever its parameter count. LightGBM is not a dependency: this is plain least-squares boosting of
depth-2 regression trees in numpy (150 rounds, learning rate 0.1, leaves of at least 3 runs) over
(reasoning, visual) and the varying scale columns. ``std`` is the spread of a bag of 4 boosters fitted
on bootstrap resamples; the mean is the bag's mean.
"""

from __future__ import annotations

import numpy as np

from visprior_jax.mixopt.base import Predictor

MIN_RUNS = 50


def _split(x: np.ndarray, r: np.ndarray, idx: np.ndarray, min_leaf: int):
  """Best (feature, threshold) of a least-squares split of rows ``idx``, or None."""
  best, n = (0.0, None, None), len(idx)
  if n < 2 * min_leaf:
    return None
  for j in range(x.shape[1]):
    order = idx[np.argsort(x[idx, j], kind="stable")]
    xs, cs = x[order, j], np.cumsum(r[order])
    k = np.arange(1, n)
    gain = cs[:-1] ** 2 / k + (cs[-1] - cs[:-1]) ** 2 / (n - k) - cs[-1] ** 2 / n
    ok = (xs[1:] > xs[:-1]) & (k >= min_leaf) & (n - k >= min_leaf)
    if ok.any():
      i = int(np.argmax(np.where(ok, gain, -np.inf)))
      if gain[i] > best[0]:
        best = (gain[i], j, 0.5 * (xs[i] + xs[i + 1]))
  return None if best[1] is None else best[1:]


def _tree(x, r, idx, depth, min_leaf):
  """A regression tree as nested tuples: (feature, threshold, left, right) or a leaf value."""
  split = _split(x, r, idx, min_leaf) if depth > 0 else None
  if split is None:
    return float(r[idx].mean())
  j, t = split
  left = idx[x[idx, j] <= t]
  right = idx[x[idx, j] > t]
  return (j, t, _tree(x, r, left, depth - 1, min_leaf), _tree(x, r, right, depth - 1, min_leaf))


def _apply(tree, x: np.ndarray) -> np.ndarray:
  if not isinstance(tree, tuple):
    return np.full(len(x), tree)
  j, t, left, right = tree
  go_left = x[:, j] <= t
  out = np.empty(len(x))
  out[go_left] = _apply(left, x[go_left])
  out[~go_left] = _apply(right, x[~go_left])
  return out


def _boost(x, y, rounds, rate, min_leaf):
  base = float(y.mean())
  pred, trees = np.full(len(y), base), []
  idx = np.arange(len(y))
  for _ in range(rounds):
    tree = _tree(x, y - pred, idx, 2, min_leaf)
    trees.append(tree)
    pred += rate * _apply(tree, x)
  return base, trees


class Boosting(Predictor):
  name = "boosting"
  summary = f"gradient-boosted depth-2 trees (RegMix-style), from {MIN_RUNS} runs"
  min_runs = MIN_RUNS

  def __init__(self, rounds: int = 150, rate: float = 0.1, min_leaf: int = 3, bag: int = 4, seed: int = 0):
    super().__init__()
    self.rounds, self.rate, self.min_leaf, self.bag, self.seed = rounds, rate, min_leaf, bag, seed

  def _n_params(self, n_scale):
    return 3 + n_scale     # what it needs at the least; MIN_RUNS is the floor that binds

  def _fit(self, tab, y):
    x = self.matrix(tab, ("reasoning", "visual", *self.scale))
    rng = np.random.default_rng(self.seed)
    self.models = []
    for _ in range(self.bag):
      i = rng.integers(0, len(y), len(y))
      self.models.append(_boost(x[i], y[i], self.rounds, self.rate, self.min_leaf))

  def _predict(self, tab):
    x = self.matrix(tab, ("reasoning", "visual", *self.scale))
    preds = np.stack([base + self.rate * sum(_apply(t, x) for t in trees) for base, trees in self.models])
    return preds.mean(axis=0), preds.std(axis=0, ddof=1)
