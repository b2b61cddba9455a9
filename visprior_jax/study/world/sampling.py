"""Sampling scenes: ordinary scenes (``sample_scene``) and MLE-like scenes (``sample_mle_scene``).

- Objects: 1-5 per ordinary scene (0-3 in OCR scenes), distinct (shape, colour) pairs; each object's
  RGB jittered by up to +-12 per channel; position on a 3x3 grid (cell centre +-1.5 px, one object
  per cell); size = the share of image pixels the object covers, drawn from three bands (SIZE_BANDS:
  small 1-2.5 %, medium 3.5-7 %, large 9-22 %) within the room left by the objects already placed and
  kept for those still to come, so objects never touch.
- MLE-like scenes (``sample_mle_scene``): one target whose visible share is drawn inside one of the
  MLE-Bench levels 0-30 / 30-60 / 60-100 % (with margins, MLE_SAMPLE: 2-27, 33-57, 63-82 %) and
  reached by bisection on its radius against the rendered mask; big targets extend past the border
  and are clipped, as real 60-100 % objects are. 0-3 small companions that do not touch it (none at
  60-100 %) use at most two further shapes, so three absent shapes always remain for distractors.
- Background: a gray level in [95, 165], plain or (``p_texture``) noise, stripes or checks.
- Text (the OCR analogue): a short word (WORDS) or a number 0-99 in the top or bottom row, which
  objects keep clear of.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from visprior_jax.study.world.render import AREA, shape_coverage, shape_mask
from visprior_jax.study.world.scene import COLOURS, DEFAULT, SHAPES, Obj, Scene, WorldConfig

SIZE_BANDS = {"small": (0.010, 0.025), "medium": (0.035, 0.07), "large": (0.09, 0.22)}
SIZE_WEIGHTS = {"small": 0.45, "medium": 0.4, "large": 0.15}
MLE_LEVELS = {"existence_0-30": (0.0, 0.30), "existence_30-60": (0.30, 0.60), "existence_60-100": (0.60, 1.0)}
MLE_SAMPLE = {"existence_0-30": (0.02, 0.27), "existence_30-60": (0.33, 0.57), "existence_60-100": (0.63, 0.82)}
TEXTURES = ("plain", "noise", "stripes", "checks")
WORDS = ("cat", "dog", "sun", "map", "pen", "cup", "hat", "box", "key", "bus", "car", "egg", "fox", "owl", "bee",
         "cow", "pig", "ant", "bed", "toy", "jam", "ink", "zoo", "ice", "top", "web", "net", "van", "jar", "bag")
JITTER, GAP, TEXT_MARGIN = 1.5, 1.0, 2.0
# the radius every object can count on (the smallest small shape, 64 px images), kept free for later objects
R_MIN = math.sqrt(SIZE_BANDS["small"][0] * 64 ** 2 / min(AREA.values()))


def allowed_combos(config: WorldConfig = DEFAULT, held_out: bool = False) -> list[tuple[str, str]]:
  return [(s, c) for s in SHAPES for c in COLOURS if held_out or (s, c) not in config.held_out]


def _rgb(rng: random.Random, colour: str) -> tuple:
  return tuple(min(255, max(0, v + rng.randint(-12, 12))) for v in COLOURS[colour])


def _background_fields(rng: random.Random, config: WorldConfig) -> dict:
  texture = "plain" if rng.random() >= config.p_texture else rng.choice(TEXTURES[1:])
  return dict(background=texture, level=rng.randint(95, 165), bg_seed=rng.getrandbits(32))


def sample_scene(rng: random.Random, config: WorldConfig = DEFAULT, *, n_objects: int | None = None,
                 force=None, held_out: bool = False, text_kind: str | None = None,
                 avoid_shapes: Sequence[str] = ()) -> Scene:
  """An ordinary scene: ``n_objects`` (default 1..max_objects) distinct (shape, colour) pairs in distinct
  cells, none touching. ``force``: the first object's (shape, colour), or a list for the first objects
  (may be held out); ``held_out``: whether the others may be held-out combinations; ``avoid_shapes``:
  shapes the others may not have; ``text_kind``: "word", "number", "" (none) or None (random, ``p_text``)."""
  size, cell = config.image_size, config.image_size / 3
  if text_kind is None:
    text_kind = rng.choice(("word", "number")) if rng.random() < config.p_text else ""
  text, text_row, text_x, band = "", -1, 0.0, None
  if text_kind:
    text = rng.choice(WORDS) if text_kind == "word" else str(rng.randint(0, 99))
    text_row, text_x = rng.choice((0, 2)), size / 2 + rng.uniform(-8, 8)
    band = (text_row * cell + TEXT_MARGIN, (text_row + 1) * cell - TEXT_MARGIN)
  cells = [(r, c) for r in range(3) for c in range(3) if r != text_row]
  forced = [] if not force else [tuple(force)] if isinstance(force[0], str) else [tuple(f) for f in force]
  n = min(rng.randint(1, config.max_objects) if n_objects is None else n_objects, len(cells))
  pool = [c for c in allowed_combos(config, held_out) if c not in forced and c[0] not in avoid_shapes]
  combos = forced[:n] + rng.sample(pool, n - len(forced[:n]))
  placed: list[Obj] = []
  chosen = rng.sample(cells, n)
  reserve = R_MIN * size / 64 + JITTER * math.sqrt(2) + GAP    # room kept for each object still to come
  for k, ((shape, colour), (row, col)) in enumerate(zip(combos, chosen)):
    cx, cy = (col + 0.5) * cell + rng.uniform(-JITTER, JITTER), (row + 0.5) * cell + rng.uniform(-JITTER, JITTER)
    r_max = min(cx, size - cx, cy, size - cy) - 0.5
    for o in placed:
      r_max = min(r_max, math.hypot(cx - o.cx, cy - o.cy) - o.radius - GAP)
    for r2, c2 in chosen[k + 1:]:
      r_max = min(r_max, math.hypot(cx - (c2 + 0.5) * cell, cy - (r2 + 0.5) * cell) - reserve)
    if band:
      r_max = min(r_max, (cy - band[1]) if cy > band[1] else (band[0] - cy))
    f_max = AREA[shape] * r_max ** 2 / size ** 2
    feasible = [s for s in SIZE_BANDS if SIZE_BANDS[s][0] <= f_max]
    if not feasible:    # cannot happen with the 3x3 grid's geometry; a config that breaks it must not pass quietly
      raise RuntimeError(f"no room for a small {shape} in cell {(row, col)} (max share {f_max:.4f})")
    word = rng.choices(feasible, weights=[SIZE_WEIGHTS[s] for s in feasible])[0]
    lo, hi = SIZE_BANDS[word]
    f = rng.uniform(lo, min(hi, f_max))
    placed.append(Obj(shape, colour, row, col, cx, cy, math.sqrt(f * size ** 2 / AREA[shape]), _rgb(rng, colour), f))
  return Scene(tuple(placed), text=text, text_kind=text_kind, text_row=text_row, text_x=text_x,
               **_background_fields(rng, config))


def _radius_for(shape: str, cx: float, cy: float, fraction: float, config: WorldConfig) -> float:
  """The radius whose clipped, rendered mask covers ``fraction`` of the image (bisection; area grows with r)."""
  lo, hi = 0.5, 3.0 * config.image_size
  for _ in range(20):
    mid = (lo + hi) / 2
    if shape_coverage(shape, cx, cy, mid, config.image_size, config.supersample) < fraction:
      lo = mid
    else:
      hi = mid
  return hi


def sample_mle_scene(rng: random.Random, level: str, config: WorldConfig = DEFAULT, *, force: tuple | None = None,
                     held_out: bool = False) -> Scene:
  """A scene whose target (the last object, ``Scene.target``) covers a share inside MLE-Bench ``level``."""
  size, ss, cell = config.image_size, config.supersample, config.image_size / 3
  shape, colour = force or rng.choice(allowed_combos(config, held_out))
  f = rng.uniform(*MLE_SAMPLE[level])
  if level == "existence_60-100":
    cx, cy, n_others = size / 2 + rng.uniform(-5, 5), size / 2 + rng.uniform(-5, 5), 0
  elif level == "existence_30-60":
    cx, cy, n_others = size / 2 + rng.uniform(-9, 9), size / 2 + rng.uniform(-9, 9), rng.randint(0, 2)
  else:
    row, col = rng.randrange(3), rng.randrange(3)
    cx, cy = (col + 0.5) * cell + rng.uniform(-JITTER, JITTER), (row + 0.5) * cell + rng.uniform(-JITTER, JITTER)
    n_others = rng.randint(0, 3)
  r = _radius_for(shape, cx, cy, f, config)
  target = Obj(shape, colour, min(2, int(cy // cell)), min(2, int(cx // cell)), cx, cy, r, _rgb(rng, colour), f)
  occupied = shape_mask(shape, cx, cy, r + 1.0, size, ss)
  pool = [shape] + rng.sample([s for s in SHAPES if s != shape], 2)
  used, others = {target.combo}, []
  for _ in range(n_others):
    for _attempt in range(10):
      s2 = rng.choice(pool)
      colours = [c for c in COLOURS if (s2, c) not in used and (held_out or (s2, c) not in config.held_out)]
      row, col = rng.randrange(3), rng.randrange(3)
      if (row, col) == (target.row, target.col) or any((o.row, o.col) == (row, col) for o in others) or not colours:
        continue
      c2 = rng.choice(colours)
      x, y = (col + 0.5) * cell + rng.uniform(-JITTER, JITTER), (row + 0.5) * cell + rng.uniform(-JITTER, JITTER)
      f2 = rng.uniform(*SIZE_BANDS["small"])
      r2 = math.sqrt(f2 * size ** 2 / AREA[s2])
      if r2 > min(x, size - x, y, size - y) - 0.5:
        continue
      m2 = shape_mask(s2, x, y, r2 + 1.0, size, ss)
      if (m2 & occupied).any():
        continue
      occupied |= m2
      used.add((s2, c2))
      others.append(Obj(s2, c2, row, col, x, y, r2, _rgb(rng, c2), f2))
      break
  return Scene(tuple(others) + (target,), target=len(others), **_background_fields(rng, config))
