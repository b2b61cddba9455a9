"""Propose the next mixtures to run: expected improvement, written as a study config ``visprior study`` runs.

  proposals = propose.propose(tab, k=4)                       # predictor "gp" by default
  propose.write_config("configs/study/proposed_overall.py", proposals, tab, target)
  visprior study run --config=configs/study/proposed_overall.py --workdir=...

Decisions:

- Candidates: a 2.5-point (reasoning, visual) lattice (``coords.candidates``) at the largest size's
  scale, inside the convex hull of the runs' mixtures widened by one lattice step, without the
  mixtures already run there. Expected improvement rewards uncertainty, and far from every run the
  uncertainty is the model's ignorance, not information: on Table 2's one-dimensional mix0 -> mix10
  path a box would propose two-dimensional extrapolations (41% encyclopedia blends). Expected improvement over the best
  observed mixture mean at that size, EI = (m - best) Phi(z) + s phi(z), z = (m - best) / s (negated for
  lower-is-better targets), with s the model's uncertainty of the mean.
- Batches: k proposals by the "kriging believer" rule -- after each pick the predictor is refitted
  with the pick added at its predicted mean, which shrinks the uncertainty there, so the next pick
  goes elsewhere. Predictors without an uncertainty (NaN) rank by the mean alone.
- Recipes. Results whose runs are grid cells (``share.reasoning``/``share.visual`` only) become
  ``grid:<r>:<v>`` recipes. Results whose runs are source blends become source weights: the blend
  closest to the runs' mean blend (minimum KL divergence, exponential tilting by the sources' label
  rates -- the rule ``data.mixtures`` uses for grid cells) that has the proposed reasoning and visual
  shares; a candidate no blend of those sources reaches is skipped.
- Config. The tiny study's results (study ``tiny``/``tiny_quick``) are re-run through
  configs/study/tiny.py's ``blend_study`` (every size and seed); anything else through
  configs/study/paper.py's ``study`` at the largest size's preset and token budget. The written file
  finds those configs by a path relative to itself, so keep it inside the repository.
"""

from __future__ import annotations

import os
import pprint
import warnings

import numpy as np
import pandas as pd
from scipy import optimize, spatial, stats

from visprior_jax.mixopt import coords, predictors
from visprior_jax.mixopt.validate import cell_means

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STUDY_CONFIGS = os.path.join(REPO, "configs", "study")
TINY_STUDIES = ("tiny", "tiny_quick")


def expected_improvement(mean, std, best: float, higher: bool = True) -> np.ndarray:
  """EI of each candidate over ``best`` (NaN or zero std: the improvement itself, floored at 0)."""
  imp = (np.asarray(mean, dtype=float) - best) * (1.0 if higher else -1.0)
  std = np.asarray(std, dtype=float)
  ok = np.isfinite(std) & (std > 0)
  z = np.where(ok, imp / np.where(ok, std, 1.0), 0.0)
  return np.where(ok, imp * stats.norm.cdf(z) + np.where(ok, std, 0.0) * stats.norm.pdf(z), np.maximum(imp, 0.0))


def source_columns(tab: pd.DataFrame) -> list[str]:
  return [c for c in tab.columns if c.startswith("share.") and tab[c].fillna(0).gt(0).any()]


def tilt(reference: dict[str, float], rates: dict, reasoning: float, visual: float) -> dict[str, float] | None:
  """The blend of ``reference``'s sources closest to it (min KL) with the given shares, or None."""
  names = [s for s, w in reference.items() if w > 0]
  ref = np.array([reference[s] for s in names]) / sum(reference[s] for s in names)
  a = np.array([[rates[s]["reasoning"], rates[s]["visual"]] for s in names])
  goal = np.array([reasoning, visual])

  def dual(lam):   # log-partition minus lam . goal; its minimiser hits the goal when the goal is reachable
    e = a @ lam
    m = e.max()
    z = ref * np.exp(e - m)
    w = z / z.sum()
    return m + np.log(z.sum()) - lam @ goal, a.T @ w - goal

  with np.errstate(all="ignore"), warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)     # an unreachable goal sends the multipliers to infinity
    res = optimize.minimize(dual, np.zeros(2), jac=True, method="BFGS", options={"gtol": 1e-11, "maxiter": 500})
  e = a @ res.x
  w = ref * np.exp(e - e.max())
  w /= w.sum()
  if np.max(np.abs(a.T @ w - goal)) > 1e-4:
    return None
  return {s: float(x) for s, x in zip(names, w)}


def within_hull(cand: pd.DataFrame, points: np.ndarray, margin: float) -> np.ndarray:
  """Which candidates lie within ``margin`` of the convex hull of ``points`` (reasoning, visual)."""
  x = cand[["reasoning", "visual"]].to_numpy(dtype=float)
  points = np.unique(np.round(points, 9), axis=0)
  if len(points) >= 3:
    try:
      hull = spatial.ConvexHull(points)
      return np.all(x @ hull.equations[:, :2].T + hull.equations[:, 2] <= margin + 1e-9, axis=1)
    except spatial.QhullError:
      pass                                     # collinear: distance to the segment below
  a, b = points[0], points[-1]
  if len(points) > 1:
    order = np.argsort((points - a) @ (b - a if np.any(b != a) else np.ones(2)))
    a, b = points[order[0]], points[order[-1]]
  seg = b - a
  t = np.clip(((x - a) @ seg) / max(seg @ seg, 1e-18), 0, 1)
  return np.linalg.norm(x - (a + t[:, None] * seg), axis=1) <= margin + 1e-9


def _reference_blend(tab: pd.DataFrame) -> dict[str, float]:
  cols = source_columns(tab)
  mean = tab[cols].fillna(0).mean()
  return {c[6:]: float(v) for c, v in mean.items() if v > 0}


def propose(tab: pd.DataFrame, k: int, *, predictor: str = "gp", higher: bool = True, step: float = 0.025,
            box=None, label_rates="auto") -> pd.DataFrame:
  """The next ``k`` mixtures (module docstring). One row each: rank, reasoning, visual, other, mean, std,
  ei, and ``weights`` (a source blend, for source-blend results; else None)."""
  if k < 1:
    raise ValueError(f"--k must be at least 1, got {k}")
  size = coords.order_sizes(tab)[-1] if tab["size"].notna().any() else None
  at = tab[tab["size"] == size] if size is not None else tab
  cand = coords.candidates(tab, step=step, box=box, size=size)
  seen = set(zip(at["reasoning"].round(4), at["visual"].round(4)))
  cand = cand[[(r, v) not in seen for r, v in zip(cand["reasoning"].round(4), cand["visual"].round(4))]]
  cand = cand[within_hull(cand, tab[["reasoning", "visual"]].to_numpy(dtype=float), step)]
  blends = bool(source_columns(tab))
  rates = coords.choose_rates(tab, label_rates) if blends else None
  reference = _reference_blend(tab) if blends else None
  best = float((cell_means(at)["y"] * (1 if higher else -1)).max() * (1 if higher else -1))
  train, rows = tab, []
  while len(rows) < k and len(cand):
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", RuntimeWarning)
      model = predictors.make(predictor, higher_is_better=higher).fit(train)
    mean, std = model.predict(cand)
    ei = expected_improvement(mean, std, best, higher)
    score = np.where(np.isfinite(std), ei, (1 if higher else -1) * mean)
    i = int(np.argmax(score))
    pick = cand.iloc[i]
    cand = cand.drop(cand.index[i])
    weights = tilt(reference, rates, pick["reasoning"], pick["visual"]) if blends else None
    if blends and weights is None:
      continue
    rows.append({"rank": len(rows) + 1, "reasoning": pick["reasoning"], "visual": pick["visual"],
                 "other": pick["other"], "mean": mean[i], "std": std[i], "ei": ei[i], "weights": weights})
    believer = pick.to_frame().T.assign(y=mean[i], cell=f"proposal{len(rows)}@{size}", run=f"proposal{len(rows)}")
    train = pd.concat([train, believer], ignore_index=True)
  if not rows:
    raise ValueError("no candidate mixture could be proposed (every candidate was run already or unreachable)")
  out = pd.DataFrame(rows)
  out.attrs.update(predictor=predictor, size=size, best=best, base=_base(tab))
  return out


def _base(tab: pd.DataFrame) -> str:
  studies = set(tab["study"].dropna()) if "study" in tab else set()
  return "tiny" if studies and studies <= set(TINY_STUDIES) else "paper"


def shown(path: str) -> str:
  """``path`` relative to the repository when it lies inside it (how configs are named), else absolute."""
  rel = os.path.relpath(os.path.abspath(path), REPO)
  return os.path.abspath(path) if rel.startswith("..") else rel


def _header(path: str, proposals: pd.DataFrame, target: coords.Target, command: str) -> str:
  lines = [f'"""Proposed mixtures for {target.label} ({target.name}), written by `visprior mix propose`; '
           "do not edit by hand.", "",
           f"  {command or 'visprior mix propose'}",
           f"  visprior study run --config={shown(path)} --workdir=DIR   "
           "(plus the paths the base study config needs)", "",
           f"Predictor {proposals.attrs.get('predictor')}; best observed mean at size {proposals.attrs.get('size')}: "
           f"{proposals.attrs.get('best', float('nan')):.3f}. Expected improvement, batched by the kriging-believer",
           "rule (visprior_jax/mixopt/propose.py):", ""]
  for _, p in proposals.iterrows():
    lines.append(f"  {int(p['rank'])}. reasoning {100 * p['reasoning']:.1f}%, visual {100 * p['visual']:.1f}%: "
                 f"predicted {p['mean']:.3f} +- {p['std']:.3f}, expected improvement {p['ei']:.3g}")
  return "\n".join(lines + ['"""', "", ""])


_TINY_BODY = """import importlib.util
import os

BASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), {base!r})
PROPOSED = {mixes}


def get_config(arg: str = ""):
  if arg:
    raise ValueError("{file} takes no argument")
  spec = importlib.util.spec_from_file_location("tiny_base", BASE)
  base = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(base)
  return base.blend_study({name!r}, PROPOSED)
"""

_PAPER_BODY = """import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), {base!r}))
import paper  # noqa: E402

RUNS = {runs}


def get_config(arg: str = ""):
  del arg
  return paper.study({name!r}, {{k: dict(v) for k, v in RUNS.items()}})
"""


def _paper_runs(proposals: pd.DataFrame, tab: pd.DataFrame) -> dict:
  size = proposals.attrs.get("size")
  at = tab[tab["size"] == size] if size is not None else tab
  tokens = int(at["tokens"].mode().iloc[0])
  runs = {}
  for _, p in proposals.iterrows():
    r, v = round(100 * p["reasoning"], 3), round(100 * p["visual"], 3)
    if p["weights"] is None:
      runs[f"prop{int(p['rank'])}_grid_{r:g}_{v:g}".replace(".", "p")] = dict(   # config keys have no dots
          preset=str(size), recipe=f"grid:{r:g}:{v:g}", tokens=tokens, shares={"reasoning": r / 100, "visual": v / 100})
    else:
      weights = {s: round(w, 6) for s, w in p["weights"].items()}
      runs[f"prop{int(p['rank'])}"] = dict(preset=str(size), tokens=tokens, shares=weights,
                                           recipe=[dict(source=s, weight=w) for s, w in weights.items()])
  return runs


def write_config(path, proposals: pd.DataFrame, tab: pd.DataFrame, target: coords.Target, command: str = "") -> str:
  """Writes the proposals as a study config (module docstring); returns the path."""
  path = os.path.abspath(path)
  out_dir = os.path.dirname(path)
  if not os.path.isdir(STUDY_CONFIGS):
    raise FileNotFoundError(f"{STUDY_CONFIGS} not found: proposals are written against the repository's study configs")
  if not path.endswith(".py"):
    raise ValueError(f"--out={path}: a study config is a .py file")
  os.makedirs(out_dir, exist_ok=True)
  name = f"proposed_{target.name}"
  if proposals.attrs.get("base") == "tiny":
    mixes = {f"prop{int(p['rank'])}": {s: round(w, 6) for s, w in p["weights"].items()} for _, p in proposals.iterrows()}
    body = _TINY_BODY.format(base=os.path.relpath(os.path.join(STUDY_CONFIGS, "tiny.py"), out_dir),
                             mixes=pprint.pformat(mixes, indent=1, width=110), file=os.path.basename(path), name=name)
  else:
    body = _PAPER_BODY.format(base=os.path.relpath(STUDY_CONFIGS, out_dir), name=name,
                              runs=pprint.pformat(_paper_runs(proposals, tab), indent=1, width=110))
  with open(path, "w") as f:
    f.write(_header(path, proposals, target, command) + body)
  return path
