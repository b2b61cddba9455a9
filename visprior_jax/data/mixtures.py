"""Pre-training data mixtures: streams, recipes, share arithmetic and token budgets (PAPER.md 2).

The pipeline mixes **streams**. A :class:`Stream` is the 1024-token segments of one source whose
label set contains every label in ``require`` and none in ``exclude``; with both empty it is the
whole source and needs no labels. Every recipe resolves to ``[(Stream, share), ...]``: token shares
that sum to 1.

Labels are the six classifier categories (PAPER.md 2.1): ``code_reasoning``, ``math_reasoning``,
``science_reasoning``, ``visual_concept``, ``visual_attribute``, ``visual_relationship``. The paper's
two "combination" categories are the groups ``reasoning`` and ``visual``: a segment has a group when
it has *any* of the group's three labels (:func:`expand` gives that disjunction). ``require`` is a
conjunction, so the group is written as a label of its own: **the pipeline adds the union labels to
every segment's label set before matching** (:func:`with_groups`; :meth:`Stream.matches` does it
too). ``Stream("web_crawl", require={"reasoning"})`` is any web-crawl segment with a reasoning label;
``exclude={"visual"}`` means no visual label at all.

Recipe names (:func:`get_recipe`; what configs write):

  mix0 ... mix10               Table 2 source weights over the 6 practical sources (PAPER.md 2.5).
  language_favorable, balanced The 1T-token recipes (PAPER.md 2.6): mix0 and mix6.
  single:<source>              One of the 16 sources alone (PAPER.md 1.4), e.g. ``single:qa_forum``.
  sweep:<category>:<percent>   A label or group at percent% of tokens, the rest from the pool's
                               segments without it (PAPER.md 2.3), e.g. ``sweep:visual_concept:25``.
  grid:<rea>:<vis>             Table 1 cell: rea% reasoning, vis% visual, rest other pool data,
                               e.g. ``grid:60:15`` (PAPER.md 2.4; all cells in TABLE1_CELLS).

Source weights resolve on their own. Sweeps and grid cells need the pool:
``recipe.resolve(pool_tokens={source: tokens}, label_rates={source: {label: fraction}})``, where
``label_rates`` holds fractions in [0, 1] of each source's segments with a label or group
(TABLE4_FRACTIONS is the paper's Table 4 in that form; TABLE4_RATES is the same in %).

How sweeps and grid cells choose shares, and how overlap is handled. Both are the pool reweighted
as little as possible: the minimum-KL reweighting of the pool's tokens that hits the requested
shares. For a sweep that is the paper's rule exactly: p of the tokens come from segments with the
category and 1 - p from segments without it, each spread over sources in proportion to the source's
pool tokens times its fraction of such segments. For the grid, each segment falls in exactly one of
four disjoint buckets by its union labels: reasoning-only, visual-only, both, neither. With blend
shares x_R, x_V, x_B, x_N the cell asks rea = x_R + x_B and vis = x_V + x_B, so a segment that is
both counts toward both percentages (its tokens are drawn once). That leaves one free number, the
both-share x_B; minimum KL fixes it by keeping the pool's odds ratio x_B*x_N / (x_R*x_V). This needs
each source's fraction of segments with both groups, ``label_rates[source][BOTH]``: labels.py
counts it; :func:`with_independent_overlap` estimates it as reasoning*visual when only marginals
are known (Table 4), an explicit assumption. A cell is infeasible, a ValueError, when a bucket it
needs is empty in the pool (no overlap and rea + vis > 100, for instance).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Iterable, Mapping, Union

REASONING_LABELS = ("code_reasoning", "math_reasoning", "science_reasoning")
VISUAL_LABELS = ("visual_concept", "visual_attribute", "visual_relationship")
LABELS = REASONING_LABELS + VISUAL_LABELS
GROUPS = {"reasoning": REASONING_LABELS, "visual": VISUAL_LABELS}
# The 8 categories of the proportion sweeps (Fig. 3): 6 labels and 2 groups ("combinations").
CATEGORIES = REASONING_LABELS + ("reasoning",) + VISUAL_LABELS + ("visual",)
# Key in label_rates[source]: fraction of segments with a reasoning AND a visual label (grid overlap).
BOTH = "reasoning+visual"

# The 16 sources (PAPER.md 1.4); "academic" is also called academia, "math" is mathematics.
SOURCES = ("academic", "arts", "biology", "code", "computer_science", "economics", "encyclopedia",
           "food", "law", "literature", "math", "medicine", "philosophy", "politics", "qa_forum",
           "web_crawl")
SOURCE_ALIASES = {"academia": "academic", "mathematics": "math", "q_a_forum": "qa_forum",
                  "webcrawl": "web_crawl"}
CATEGORY_ALIASES = {"reasoning_combination": "reasoning", "visual_combination": "visual"}
MIX_SOURCES = ("web_crawl", "encyclopedia", "academic", "literature", "math", "code")

# Table 4 verbatim: % of 1024-token segments per source with each label; reasoning/visual are the
# paper's "combination" columns. (Web-crawl visual 26.9 < visual_concept 27.7: the paper's numbers.)
TABLE4_RATES = {
    "web_crawl": dict(code_reasoning=3.5, math_reasoning=3.6, science_reasoning=8.6, reasoning=10.0,
                      visual_concept=27.7, visual_attribute=14.1, visual_relationship=13.5, visual=26.9),
    "encyclopedia": dict(code_reasoning=0.5, math_reasoning=2.3, science_reasoning=3.0, reasoning=3.4,
                         visual_concept=12.2, visual_attribute=2.9, visual_relationship=6.0, visual=12.4),
    "academic": dict(code_reasoning=21.0, math_reasoning=68.2, science_reasoning=74.4, reasoning=83.3,
                     visual_concept=5.2, visual_attribute=0.7, visual_relationship=5.1, visual=5.3),
    "literature": dict(code_reasoning=0.3, math_reasoning=1.3, science_reasoning=8.9, reasoning=9.1,
                       visual_concept=33.4, visual_attribute=8.4, visual_relationship=27.9, visual=33.5),
    "math": dict(code_reasoning=31.1, math_reasoning=81.7, science_reasoning=83.2, reasoning=92.9,
                 visual_concept=7.8, visual_attribute=2.8, visual_relationship=6.6, visual=8.0),
    "code": dict(code_reasoning=96.7, math_reasoning=13.3, science_reasoning=6.8, reasoning=97.3,
                 visual_concept=3.3, visual_attribute=2.0, visual_relationship=2.4, visual=3.7),
}
TABLE4_FRACTIONS = {s: {k: v / 100 for k, v in rates.items()} for s, rates in TABLE4_RATES.items()}

# Table 2 verbatim, in %: weights over MIX_SOURCES, then the reasoning and visual columns.
TABLE2 = {
    "mix0": (50.0, 2.5, 2.5, 20.0, 5.0, 20.0, 33.1, 21.7),
    "mix1": (48.3, 3.4, 2.9, 17.0, 5.8, 22.5, 36.2, 20.6),
    "mix2": (46.7, 4.3, 3.3, 14.0, 6.7, 25.0, 39.4, 19.4),
    "mix3": (45.0, 5.2, 3.8, 11.0, 7.5, 27.5, 42.6, 18.2),
    "mix4": (43.3, 6.1, 4.2, 8.0, 8.3, 30.0, 45.7, 17.1),
    "mix5": (41.7, 7.1, 4.6, 5.0, 9.2, 32.5, 48.9, 16.0),
    "mix6": (40.0, 8.0, 5.0, 2.0, 10.0, 35.0, 52.0, 14.8),
    "mix7": (36.5, 7.0, 7.5, 2.0, 11.5, 35.5, 55.5, 14.4),
    "mix8": (33.0, 6.5, 9.5, 2.0, 12.0, 37.0, 57.2, 14.0),
    "mix9": (29.5, 6.0, 11.5, 2.0, 12.5, 38.5, 59.0, 13.6),
    "mix10": (26.0, 5.5, 12.5, 2.0, 13.0, 41.0, 61.3, 13.3),
}


def _table2_weights(name: str) -> dict[str, float]:
  return {s: w / 100 for s, w in zip(MIX_SOURCES, TABLE2[name][:6])}


def _interpolate(k: int) -> dict[str, float]:
  """mix_k = mix0 + k/6 (mix6 - mix0): Table 2's mix1-mix5 are this, printed to one decimal."""
  a, b = _table2_weights("mix0"), _table2_weights("mix6")
  return {s: a[s] + k / 6 * (b[s] - a[s]) for s in MIX_SOURCES}


# Source weights (fractions). mix1-mix5 are the exact interpolation the printed, rounded rows come
# from (they differ from the print by < 0.07 points; mix1, mix4 and mix5 print to 99.9/100.1 %).
MIXES = {f"mix{k}": (_interpolate(k) if 1 <= k <= 5 else _table2_weights(f"mix{k}")) for k in range(11)}
RECIPE_ALIASES = {"language_favorable": "mix0", "balanced": "mix6"}
SWEEP_PERCENTS = (0, 25, 50, 75, 100)
TABLE1_CELLS = tuple((r, v) for r in range(50, 90, 5) for v in (5, 10, 15)) + tuple(
    (r, v) for r in (60, 65) for v in (20, 25, 30))


# ---------------------------------------------------------------------------------------- labels

def expand(category: str) -> tuple[str, ...]:
  """A label -> (label,); a group -> its three member labels, any of which gives the group."""
  if category in GROUPS:
    return GROUPS[category]
  if category in LABELS:
    return (category,)
  raise ValueError(f"unknown category {category!r}; valid: {', '.join(CATEGORIES)}")


def with_groups(labels: Iterable[str]) -> frozenset[str]:
  """A segment's labels plus the union labels it implies (what streams match against)."""
  labels = frozenset(labels)
  return labels | {g for g, members in GROUPS.items() if labels & set(members)}


def _label_set(value, what: str) -> frozenset[str]:
  value = frozenset({value} if isinstance(value, str) else value)
  bad = value - set(LABELS) - set(GROUPS)
  if bad:
    raise ValueError(f"{what}: unknown label(s) {sorted(bad)}; valid: {', '.join(CATEGORIES)}")
  return value


@dataclasses.dataclass(frozen=True)
class Stream:
  """Segments of ``source`` with every label in ``require`` and none in ``exclude`` (see module doc)."""
  source: str
  require: frozenset[str] = frozenset()
  exclude: frozenset[str] = frozenset()

  def __post_init__(self):
    object.__setattr__(self, "require", _label_set(self.require, f"Stream {self.source!r} require"))
    object.__setattr__(self, "exclude", _label_set(self.exclude, f"Stream {self.source!r} exclude"))
    if self.require & self.exclude:
      raise ValueError(f"stream {self.name}: {sorted(self.require & self.exclude)} both required and excluded")

  @property
  def name(self) -> str:
    """``source``, or e.g. ``web_crawl[+reasoning,-visual]``."""
    parts = [f"+{l}" for l in sorted(self.require)] + [f"-{l}" for l in sorted(self.exclude)]
    return f"{self.source}[{','.join(parts)}]" if parts else self.source

  def __str__(self) -> str:
    return self.name

  def matches(self, labels: Iterable[str]) -> bool:
    """Whether a segment with these classifier labels belongs to the stream (groups added here)."""
    labels = with_groups(labels)
    return self.require <= labels and not self.exclude & labels


# -------------------------------------------------------------------------------- rate arithmetic

def _rate(label_rates: Mapping, source: str, key: str) -> float:
  try:
    rate = float(label_rates[source][key])
  except KeyError:
    hint = {BOTH: " (count it, or estimate it with with_independent_overlap)"}.get(
        key, " (group rates are unions; they cannot be derived from the members)" if key in GROUPS else "")
    raise ValueError(f"label_rates[{source!r}] has no {key!r} rate{hint}") from None
  if not 0 <= rate <= 1:
    raise ValueError(f"label_rates[{source!r}][{key!r}] = {rate} is not a fraction in [0, 1] "
                     "(TABLE4_RATES is in %; TABLE4_FRACTIONS is the same as fractions)")
  return rate


def with_independent_overlap(label_rates: Mapping) -> dict:
  """label_rates plus BOTH = reasoning * visual per source: an independence assumption."""
  return {s: {BOTH: _rate(label_rates, s, "reasoning") * _rate(label_rates, s, "visual"), **rates}
          for s, rates in label_rates.items()}


_BUCKETS = {  # the four disjoint grid buckets as streams' (require, exclude)
    "reasoning-only": ({"reasoning"}, {"visual"}),
    "visual-only": ({"visual"}, {"reasoning"}),
    "both": ({"reasoning", "visual"}, set()),
    "neither": (set(), {"reasoning", "visual"}),
}


def _bucket_fractions(label_rates: Mapping, source: str) -> dict[str, float]:
  r, v = _rate(label_rates, source, "reasoning"), _rate(label_rates, source, "visual")
  b = _rate(label_rates, source, BOTH)
  fr = {"reasoning-only": r - b, "visual-only": v - b, "both": b, "neither": 1 - r - v + b}
  if min(fr.values()) < -1e-9:
    raise ValueError(f"label_rates[{source!r}] is inconsistent: reasoning {r}, visual {v}, both {b} "
                     "make a bucket negative")
  return {k: max(x, 0.0) for k, x in fr.items()}


def stream_fraction(stream: Stream, label_rates: Mapping) -> float:
  """Fraction of the source's segments in ``stream``, for the stream shapes recipes produce."""
  keys = stream.require | stream.exclude
  if not keys:
    return 1.0
  if len(keys) == 1:
    rate = _rate(label_rates, stream.source, next(iter(keys)))
    return rate if stream.require else 1 - rate
  for bucket, (req, exc) in _BUCKETS.items():
    if stream.require == req and stream.exclude == exc:
      return _bucket_fractions(label_rates, stream.source)[bucket]
  raise ValueError(f"the size of stream {stream.name} does not follow from label rates; count it")


def available_from_rates(streams: Iterable, pool_tokens: Mapping[str, float],
                         label_rates: Mapping) -> dict[Stream, int]:
  """Estimated tokens per stream: pool tokens of its source times its fraction of segments."""
  streams = [s[0] if isinstance(s, tuple) else s for s in streams]
  return {s: int(round(pool_tokens[s.source] * stream_fraction(s, label_rates))) for s in streams}


def derived_shares(source_weights: Mapping[str, float], label_rates: Mapping) -> dict[str, float]:
  """{"reasoning": %, "visual": %} of a source-weight blend: sum of weight x group rate.

  With TABLE4_FRACTIONS this gives Table 2's reasoning/visual columns for mix0-mix6 (not mix7-10).
  """
  weights = _normalized(source_weights, "source_weights")
  return {g: 100 * sum(w * _rate(label_rates, s, g) for s, w in weights.items()) for g in GROUPS}


# -------------------------------------------------------------------------------------- recipes

Resolved = list[tuple[Stream, float]]


def _normalized(weights: Mapping[str, float], what: str) -> dict[str, float]:
  if any(w < 0 for w in weights.values()):
    raise ValueError(f"{what} has negative weights: {dict(weights)}")
  total = sum(weights.values())
  if not total > 0:
    raise ValueError(f"{what} has no positive weight: {dict(weights)}")
  return {s: w / total for s, w in weights.items() if w > 0}


def _check_pool(name: str, pool_tokens, label_rates) -> None:
  if pool_tokens is None or label_rates is None:
    raise ValueError(f"recipe {name} needs pool_tokens and label_rates (per-source pool sizes and "
                     "label fractions) to resolve")
  if not pool_tokens or any(t < 0 for t in pool_tokens.values()) or not sum(pool_tokens.values()) > 0:
    raise ValueError(f"recipe {name}: pool_tokens must be non-negative with a positive total, got {pool_tokens}")


def _spread(name: str, groups: list[tuple[str, float, dict[Stream, float]]]) -> Resolved:
  """Give each (what, share, {stream: pool mass}) group its share, split in proportion to mass."""
  out = []
  for what, share, masses in groups:
    if share <= 1e-12:  # float dust from the grid's subtractions
      continue
    total = sum(masses.values())
    if not total > 0:
      raise ValueError(f"recipe {name} is infeasible: it needs {100 * share:g}% {what} segments "
                       "and the pool has none")
    out += [(stream, share * m / total) for stream, m in masses.items() if m > 0]
  return out


@dataclasses.dataclass(frozen=True)
class SourceMix:
  """Fixed source weights (Table 2 mixes, single sources); normalized to sum to 1."""
  name: str
  weights: Mapping[str, float]

  def resolve(self, pool_tokens=None, label_rates=None) -> Resolved:
    return [(Stream(s), w) for s, w in _normalized(self.weights, f"recipe {self.name}").items()]


@dataclasses.dataclass(frozen=True)
class CategorySweep:
  """``category`` (label or group) at ``percent``% of tokens; the rest has no such label."""
  category: str
  percent: float

  def __post_init__(self):
    expand(self.category)
    if not 0 <= self.percent <= 100:
      raise ValueError(f"recipe {self.name}: percent must be in [0, 100]")

  @property
  def name(self) -> str:
    return f"sweep:{self.category}:{self.percent:g}"

  def resolve(self, pool_tokens=None, label_rates=None) -> Resolved:
    _check_pool(self.name, pool_tokens, label_rates)
    c, p = self.category, self.percent / 100
    with_c = {Stream(s, require={c}): t * _rate(label_rates, s, c) for s, t in pool_tokens.items()}
    without = {Stream(s, exclude={c}): t * (1 - _rate(label_rates, s, c)) for s, t in pool_tokens.items()}
    return _spread(self.name, [(c, p, with_c), (f"non-{c}", 1 - p, without)])


@dataclasses.dataclass(frozen=True)
class GridCell:
  """Table 1 cell: ``reasoning``% of tokens with a reasoning label, ``visual``% with a visual one."""
  reasoning: float
  visual: float

  def __post_init__(self):
    if not (0 <= self.reasoning <= 100 and 0 <= self.visual <= 100):
      raise ValueError(f"recipe {self.name}: percentages must be in [0, 100]")

  @property
  def name(self) -> str:
    return f"grid:{self.reasoning:g}:{self.visual:g}"

  def resolve(self, pool_tokens=None, label_rates=None) -> Resolved:
    _check_pool(self.name, pool_tokens, label_rates)
    masses = {b: {} for b in _BUCKETS}
    for s, t in pool_tokens.items():
      for b, frac in _bucket_fractions(label_rates, s).items():
        masses[b][Stream(s, *_BUCKETS[b])] = t * frac
    pool = {b: sum(m.values()) for b, m in masses.items()}
    rea, vis = self.reasoning / 100, self.visual / 100
    x_b = self._both_share(rea, vis, pool)
    shares = {"reasoning-only": rea - x_b, "visual-only": vis - x_b, "both": x_b,
              "neither": 1 - rea - vis + x_b}
    return _spread(self.name, [(b, max(shares[b], 0.0), masses[b]) for b in _BUCKETS])

  def _both_share(self, rea: float, vis: float, pool: Mapping[str, float]) -> float:
    """x_B keeping the pool's odds ratio, or the value an empty pool bucket forces."""
    lo, hi = max(0.0, rea + vis - 1), min(rea, vis)
    forced = {"both": (0.0, "reasoning% + visual% <= 100"),
              "neither": (rea + vis - 1, "reasoning% + visual% >= 100"),
              "reasoning-only": (rea, "reasoning% <= visual%"), "visual-only": (vis, "visual% <= reasoning%")}
    empty = [b for b in _BUCKETS if pool[b] <= 0]
    if empty:
      values = [forced[b][0] for b in empty]
      if max(values) - min(values) > 1e-9 or not lo - 1e-9 <= values[0] <= hi + 1e-9:
        raise ValueError(f"recipe {self.name} is infeasible: the pool has no {', '.join(empty)} segments, "
                         f"so it needs {' and '.join(forced[b][1] for b in empty)}")
      return min(max(values[0], lo), hi)
    theta = pool["both"] * pool["neither"] / (pool["reasoning-only"] * pool["visual-only"])
    f = lambda t: t * (1 - rea - vis + t) - theta * (rea - t) * (vis - t)  # rises from <=0 at lo to >=0 at hi
    for _ in range(200):
      mid = (lo + hi) / 2
      lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
    return (lo + hi) / 2


Recipe = Union[SourceMix, CategorySweep, GridCell]
_FORMS = ("mix0..mix10, language_favorable, balanced, single:<source>, sweep:<category>:<percent>, "
          "grid:<reasoning%>:<visual%>")


def _percent(text: str, name: str) -> float:
  try:
    value = float(text)
  except ValueError:
    raise ValueError(f"recipe {name!r}: {text!r} is not a percentage; valid forms: {_FORMS}") from None
  if not 0 <= value <= 100:
    raise ValueError(f"recipe {name!r}: {value:g} is outside [0, 100]")
  return value


def _snake(text: str) -> str:
  return text.strip().lower().replace("-", "_").replace(" ", "_")


def get_recipe(name: str) -> Recipe:
  """A recipe from its config name (forms in the module docstring)."""
  parts = name.split(":")
  kind = _snake(parts[0])
  if len(parts) == 1 and RECIPE_ALIASES.get(kind, kind) in MIXES:
    mix = RECIPE_ALIASES.get(kind, kind)
    return SourceMix(mix, MIXES[mix])
  if kind == "single" and len(parts) == 2:
    source = SOURCE_ALIASES.get(_snake(parts[1]), _snake(parts[1]))
    if source not in SOURCES:
      raise ValueError(f"recipe {name!r}: unknown source; valid: {', '.join(SOURCES)}")
    return SourceMix(f"single:{source}", {source: 1.0})
  if kind == "sweep" and len(parts) == 3:
    category = CATEGORY_ALIASES.get(_snake(parts[1]), _snake(parts[1]))
    if category not in CATEGORIES:
      raise ValueError(f"recipe {name!r}: unknown category; valid: {', '.join(CATEGORIES)}")
    return CategorySweep(category, _percent(parts[2], name))
  if kind == "grid" and len(parts) == 3:
    return GridCell(_percent(parts[1], name), _percent(parts[2], name))
  raise ValueError(f"unknown recipe {name!r}; valid forms: {_FORMS}")


def resolve(recipe: Union[str, Recipe], pool_tokens=None, label_rates=None) -> Resolved:
  """[(Stream, share)] summing to 1 for a recipe or recipe name."""
  recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
  return recipe.resolve(pool_tokens, label_rates)


# -------------------------------------------------------------------------------------- budgets

@dataclasses.dataclass(frozen=True)
class Allocation:
  tokens: int      # tokens the run draws from the stream
  available: int   # tokens the stream holds
  epochs: float    # tokens / available: how many times the stream repeats


def _available(available_tokens: Mapping, stream: Stream) -> int:
  for key in (stream, stream.name) + ((stream.source,) if stream.name == stream.source else ()):
    if key in available_tokens:
      return int(available_tokens[key])
  hint = "" if stream.name == stream.source else (
      " (key it by the Stream; a source count covers only whole-source streams)")
  raise ValueError(f"available_tokens has no entry for stream {stream.name}{hint}")


def budget(resolved: Resolved, total_tokens: int, available_tokens: Mapping,
           max_epochs: float = 4.0) -> dict[Stream, Allocation]:
  """Tokens and epochs per stream for a run of ``total_tokens``; warns past ``max_epochs``.

  ``available_tokens`` is keyed by Stream (or its name), or by source for whole-source streams.
  Token counts are rounded by largest remainder so they sum to ``total_tokens`` exactly.
  """
  streams = [s for s, _ in resolved]
  shares = [float(w) for _, w in resolved]
  if len(set(streams)) != len(streams):
    raise ValueError(f"resolved recipe lists a stream twice: {[s.name for s in streams]}")
  if any(w < 0 for w in shares) or abs(sum(shares) - 1) > 1e-6:
    raise ValueError(f"shares must be non-negative and sum to 1, got sum {sum(shares):.6f}")
  exact = [w * total_tokens for w in shares]
  tokens = [math.floor(x) for x in exact]
  for i in sorted(range(len(exact)), key=lambda i: tokens[i] - exact[i])[:total_tokens - sum(tokens)]:
    tokens[i] += 1
  out = {}
  for stream, share, n in zip(streams, shares, tokens):
    have = _available(available_tokens, stream)
    if share > 0 and have <= 0:
      raise ValueError(f"stream {stream.name} has share {100 * share:.2f}% but no data")
    epochs = n / have if have > 0 else 0.0
    if epochs > max_epochs:
      warnings.warn(f"stream {stream.name} would repeat {epochs:.2f} epochs (> max_epochs={max_epochs:g}): "
                    f"{n} tokens from {have}", stacklevel=2)
    out[stream] = Allocation(n, have, epochs)
  return out
