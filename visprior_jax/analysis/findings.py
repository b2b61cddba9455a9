"""The paper's findings and hypotheses against the toy study: one row each, one verdict each.

Each testable row has the paper's claim (one line), its direction, the toy's estimate with a 95%
interval, and a verdict chosen mechanically from the interval and the direction (nothing is tuned):

  agrees             the interval lies entirely on the paper's side of 0
  disagrees          the interval lies entirely on the other side
  not significant    the interval contains 0, or there are too few runs for an interval
  not testable here  the study has no runs for it, or the toy cannot measure it at all

Two rows have their own rule, also fixed in advance:

  Finding 3, visual text saturates   the share that maximises a quadratic fit of Avg VQA over the visual
        sweep, with its bootstrap interval (``fits.optimal_share``): agrees when the interval lies strictly
        inside the sweep's range (a maximum before the end: visual text helps up to a point, then no
        more), disagrees when it sits entirely on one end (the score only falls, or only rises), else not
        significant
  Finding 5, perception / reasoning clusters   Spearman rho of General-OCR and of Knowledge-Vision-Centric
        over runs, each with a Fisher-z interval (Bonett-Wright standard error sqrt((1 + rho^2/2)/(n-3))):
        agrees when both intervals are above 0 and the clustering (``stats.cluster_categories``) is the
        paper's split, disagrees when either interval is below 0 or both are above 0 yet the clusters
        differ, else not significant

The control (facts stated only in the pre-training text) is not a paper claim; it is listed, marked as
the control, with the same rule: its accuracy should rise with the share of the text that states them.
"""

from __future__ import annotations

import math

import pandas as pd

from visprior_jax.analysis import stats
from visprior_jax.analysis.headline_effects import Effect

VERDICTS = ("agrees", "disagrees", "not significant", "not testable here")

UNTESTABLE = (
    ("Finding 4", "VQA is best with a mix heavy in reasoning text plus some visual-world text (about 60% / 15%), "
     "and a calibrated blend (mix6) balances language and vision",
     "needs the reasoning x visual grid and language evaluations; the toy runs neither"),
    ("Finding 6", "the reasoning prior is universal across vision encoders (MetaCLIP, DINOv2, MAE); perception "
     "depends more on the encoder and instruction tuning", "the toy has one image encoder"),
    ("Hypothesis 2", "reasoning learned from text transfers to visual problems: Logical Soundness and Reasoning "
     "Depth rise with the reasoning share", "needs an LLM judge of written-out reasoning"),
    ("Hypothesis 3", "code and math text partly drive the LLM's representational alignment with vision (mNN "
     "peaks at 50-75%)", "the toy study does not measure LLM-vision alignment"),
)


def verdict(lo: float, hi: float, direction: int = 1, available: bool = True) -> str:
  """agrees / disagrees / not significant / not testable here from a 95% interval and the paper's
  direction (+1: the paper says the quantity is positive, -1: negative)."""
  if not available:
    return "not testable here"
  if not (math.isfinite(lo) and math.isfinite(hi)):
    return "not significant"
  if lo > 0:
    return "agrees" if direction > 0 else "disagrees"
  if hi < 0:
    return "agrees" if direction < 0 else "disagrees"
  return "not significant"


def interior_verdict(lo: float, hi: float, x_min: float, x_max: float) -> str:
  """Finding 3's saturation rule (module docstring) for an optimum's interval on [x_min, x_max]."""
  if not (math.isfinite(lo) and math.isfinite(hi)):
    return "not significant"
  if x_min < lo and hi < x_max:
    return "agrees"
  if hi <= x_min or lo >= x_max:
    return "disagrees"
  return "not significant"


def spearman_interval(rho: float, n: int, level: float = 0.95) -> tuple[float, float]:
  """Fisher-z interval of a Spearman rho over n runs (Bonett-Wright standard error); NaN for n < 4."""
  if n < 4 or not math.isfinite(rho):
    return math.nan, math.nan
  from scipy import stats as sstats
  z = math.atanh(min(max(rho, -0.999999), 0.999999))
  half = sstats.norm.ppf(1 - (1 - level) / 2) * math.sqrt((1 + rho ** 2 / 2) / (n - 3))
  return math.tanh(z - half), math.tanh(z + half)


def cluster_row(runs: pd.DataFrame) -> dict:
  """Finding 5's row from the runs' category scores (module docstring)."""
  claim = ("the visual prior splits into a perception cluster (General + OCR & Chart, rho 0.37) and a "
           "reasoning cluster (Knowledge + Vision-Centric, rho 0.33)")
  try:
    rho, _, n = stats.spearman_matrix(runs)
  except ValueError:
    return _row("Finding 5", claim, "fewer than 3 runs with all four categories", "not testable here")
  pairs = (("General", "OCR & Chart"), ("Knowledge", "Vision-Centric"))
  if not all(a in rho and b in rho for a, b in pairs):
    return _row("Finding 5", claim, "a category is missing", "not testable here")
  cis = [(rho.loc[a, b],) + spearman_interval(rho.loc[a, b], n) for a, b in pairs]
  clusters = stats.cluster_categories(rho)["clusters"]
  split = stats.is_perception_reasoning_split(clusters)
  los, his = [c[1] for c in cis], [c[2] for c in cis]
  if any(math.isfinite(h) and h < 0 for h in his) or (all(lo > 0 for lo in los) and not split):
    v = "disagrees"
  elif all(lo > 0 for lo in los) and split:
    v = "agrees"
  else:
    v = "not significant"
  def ci(c):
    return f"{c[0]:+.2f} [{c[1]:+.2f}, {c[2]:+.2f}]" if math.isfinite(c[1]) else f"{c[0]:+.2f} [no interval: < 4 runs]"
  est = (f"rho General-OCR {ci(cis[0])}, Knowledge-Vision {ci(cis[1])} over {n} runs; clusters "
         + " | ".join(" + ".join(c) for c in clusters))
  return _row("Finding 5", claim, est, v, estimate=cis[1][0], lo=min(los), hi=min(his))


def _row(finding, claim, estimate_text, v, estimate=math.nan, lo=math.nan, hi=math.nan, control=False) -> dict:
  assert v in VERDICTS, v
  return dict(finding=finding, claim=claim, toy_estimate=estimate_text, estimate=estimate, lo=lo, hi=hi, verdict=v,
              control=control)


def effect_row(finding: str, claim: str, effect: Effect | None, direction: int = 1, unit: str = "points",
               missing: str = "no runs for it in this study", control: bool = False) -> dict:
  """A row for an interval estimate (``headline_effects.Effect``)."""
  if effect is None:
    return _row(finding, claim, missing, "not testable here", control=control)
  interval = f"[{effect.lo:+.2f}, {effect.hi:+.2f}]" if math.isfinite(effect.lo) and math.isfinite(effect.hi) \
      else "[no interval: too few runs]"
  text = f"{effect.estimate:+.2f} {unit} {interval} ({effect.name}; {effect.runs} runs"
  text += (f"; shares {effect.x_min:g}-{effect.x_max:g}%" if math.isfinite(effect.x_min) else "") + ")"
  return _row(finding, claim, text, verdict(effect.lo, effect.hi, direction), effect.estimate, effect.lo, effect.hi,
              control)


def optimum_row(finding: str, claim: str, opt: dict | None, x_min: float = math.nan,
                x_max: float = math.nan) -> dict:
  """Finding 3's saturation row from ``fits.optimal_share``'s result (None: no visual sweep)."""
  if opt is None:
    return _row(finding, claim, "no visual-share sweep with 3 or more shares in this study", "not testable here")
  text = (f"optimum {opt['x_opt']:.0f}% [{opt['ci_lo']:.0f}, {opt['ci_hi']:.0f}] of the sweep's "
          f"{x_min:g}-{x_max:g}% (quadratic fit of Avg VQA, bootstrap interval)")
  return _row(finding, claim, text, interior_verdict(opt["ci_lo"], opt["ci_hi"], x_min, x_max), opt["x_opt"],
              opt["ci_lo"], opt["ci_hi"])


def untestable_rows() -> list[dict]:
  return [_row(f, c, why, "not testable here") for f, c, why in UNTESTABLE]


def table(rows) -> pd.DataFrame:
  out = pd.DataFrame(list(rows))
  return out if not out.empty else pd.DataFrame(columns=["finding", "claim", "toy_estimate", "verdict"])


def counts(findings: pd.DataFrame) -> dict:
  """{verdict: number of rows} over the paper's rows (the control left out)."""
  paper = findings[~findings["control"].astype(bool)] if "control" in findings else findings
  return {v: int((paper["verdict"] == v).sum()) for v in VERDICTS}

