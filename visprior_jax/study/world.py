"""The tiny study's world: procedural scenes of coloured shapes with exact ground truth, the text that
describes them, and the captions, instructions and benchmarks built from them (TINY_STUDY.md).

Everything is a function of a seed: every scene, document and question draws from its own
``random.Random`` stream named by a string (``world/<seed>/<purpose>/<index>``), so item ``i`` does
not depend on how many items are written, and training, evaluation and text never share a stream.
Output is byte-identical for a seed on the same NumPy / Pillow versions. This module imports nothing
from the package (``data/sources.py`` imports it lazily for the ``world`` source kind).

The world (``WorldConfig`` holds the knobs):

- Images: 64x64 RGB, drawn at 4x (256x256) and box-downsampled, so edges are antialiased and a
  pixel's value is the exact blend of its 16 sub-pixels.
- Objects: 1-5 per ordinary scene (0-3 in OCR scenes). Shape in SHAPES with a corner count (CORNERS:
  circle 0, triangle 3, square 4, diamond 4, hexagon 6, star 10 = five points and five inner corners;
  the text says both), upright and never rotated (a diamond is a rhombus 0.75 as wide as tall, so it
  never looks like a square); colour in COLOURS (8 names; each object's RGB jittered by up to +-12 per
  channel); position on a 3x3 grid (cell centre +-1.5 px, one object per cell); size = the share of
  image pixels the object covers, drawn from three bands (SIZE_BANDS: small 1-2.5 %, medium 3.5-7 %,
  large 9-22 %) within the room left by the objects already placed and kept for those still to come,
  so objects never touch. Size words follow the measured share (small < 3 % <= medium < 8 % <= large
  < 30 % <= huge). Relations (left/right, above/below) are between grid cells.
- MLE-like scenes (``sample_mle_scene``): one target whose visible share is drawn inside one of the
  MLE-Bench levels 0-30 / 30-60 / 60-100 % (with margins, MLE_SAMPLE: 2-27, 33-57, 63-82 %) and
  reached by bisection on its radius against the rendered mask; big targets extend past the border
  and are clipped, as real 60-100 % objects are. 0-3 small companions that do not touch it (none at
  60-100 %) use at most two further shapes, so three absent shapes always remain for distractors.
- Background: a gray level in [95, 165], plain or (``p_texture``) noise, stripes or checks; gray, so
  no colour name is ambiguous against it.
- Text (the OCR analogue): a short word (WORDS) or a number 0-99 in the top or bottom row, which
  objects keep clear of; Pillow's built-in FreeType font (Aileron Regular, inside every Pillow wheel,
  so no font file has to be found; DejaVu would need matplotlib or a system font), 12 px, black on
  light and white on dark backgrounds.
- Ground truth (``Scene``): every object with attributes, grid cell, centre, radius and the exact
  visible pixel share computed from the rendered masks (later objects and the text occlude earlier
  ones), the text, its row and its pixel box; ``scenes.jsonl`` beside every written folder.

Held out. ``WorldConfig.held_out`` lists (shape, colour) combinations (default: one per shape, each
colour at most once) that never appear in training images, captions or instructions. Evaluation
items come from their own streams; in each task exactly floor(n * ``p_held_out_eval``) items, spread
by index, have a held-out target (``held_out`` true), the others only seen combinations.
Pre-training TEXT covers every combination on purpose: it is the language prior whose effect the
study measures. Facts follow the same idea: instructions teach only the corners of
``sft_fact_shapes`` and the colour associations of ``sft_fact_colours``; the knowledge benchmark asks
about all of them, so the rest must come from pre-training text (items carry ``fact_in_sft``).

Balance. Answers are drawn before the scene where the scene decides them: the target combination of
single-target questions (uniform over seen combinations), the count (1-5) of counting questions, the
relation word of spatial questions; options are shuffled, so letters are balanced too.

Text sources (``generate_documents``; the ``world`` kind of ``data/sources.py``): ``visual_world``
(scene descriptions with positions, relations, sizes, counts, and facts about shapes, colours and
everyday things of those shapes and colours), ``arithmetic`` (word problems with worked steps),
``counting`` (counting problems over shapes and corners, with steps), ``syllogism`` (syllogisms,
transitive comparisons of measured quantities, small data analyses). Each is written the way text of
its category reads, so the lexical labeller files it there (visual_world: attribute + relationship,
not concept: a world of shapes names few concrete objects; arithmetic and counting: math; syllogism:
science + math); every equation is written ``a op b = c`` and is correct (the tests check all).

Writers: ``write_captions`` (captions JSONL for ``data/multimodal.py`` kind "captions"),
``write_instructions`` (LLaVA JSON, prompts in the benchmarks' two forms, + ``labels.jsonl`` with
perception / reasoning / others / text per sample, the format ``data/instruction_labels.removal_variants``
reads), ``write_eval_suite`` (MLE-Bench in its released layout plus the four ``tiny_*`` benchmarks of
``eval/vqa/tiny.py``). About 3-5 ms per image on one CPU core.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import random
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

WORLD_VERSION = 1
SHAPES = ("circle", "square", "triangle", "star", "diamond", "hexagon")
CORNERS = {"circle": 0, "square": 4, "triangle": 3, "star": 10, "diamond": 4, "hexagon": 6}
COLOURS = {"red": (220, 40, 40), "orange": (245, 140, 20), "yellow": (240, 215, 40), "green": (40, 165, 60),
           "blue": (40, 80, 220), "purple": (140, 60, 180), "white": (250, 250, 250), "black": (20, 20, 20)}
# colour -> (option word in questions, noun phrase in facts): facts only the text states
COLOUR_THINGS = {"red": ("strawberry", "a ripe strawberry"), "orange": ("carrot", "a carrot"),
                 "yellow": ("banana", "a ripe banana"), "green": ("grass", "fresh grass"),
                 "blue": ("sky", "the clear sky"), "purple": ("plum", "a ripe plum"),
                 "white": ("snow", "fresh snow"), "black": ("coal", "a piece of coal")}
DEFAULT_HELD_OUT = (("star", "red"), ("circle", "green"), ("square", "yellow"), ("triangle", "blue"),
                    ("hexagon", "purple"), ("diamond", "orange"))
SIZE_BANDS = {"small": (0.010, 0.025), "medium": (0.035, 0.07), "large": (0.09, 0.22)}
SIZE_WEIGHTS = {"small": 0.45, "medium": 0.4, "large": 0.15}
SIZE_EDGES = ((0.03, "small"), (0.08, "medium"), (0.30, "large"), (1.01, "huge"))
MLE_LEVELS = {"existence_0-30": (0.0, 0.30), "existence_30-60": (0.30, 0.60), "existence_60-100": (0.60, 1.0)}
MLE_SAMPLE = {"existence_0-30": (0.02, 0.27), "existence_30-60": (0.33, 0.57), "existence_60-100": (0.63, 0.82)}
MLE_QUESTIONS = ("Which of the following appears in this image?", "Which of the following is in the image?",
                 "Which of the following can be seen in the image?")
TEXTURES = ("plain", "noise", "stripes", "checks")
TEXTURE_WORDS = {"plain": "plain gray", "noise": "noisy gray", "stripes": "striped gray", "checks": "checked gray"}
WORDS = ("cat", "dog", "sun", "map", "pen", "cup", "hat", "box", "key", "bus", "car", "egg", "fox", "owl", "bee",
         "cow", "pig", "ant", "bed", "toy", "jam", "ink", "zoo", "ice", "top", "web", "net", "van", "jar", "bag")
POSITIONS = {(0, 0): "in the top left corner", (0, 1): "at the top", (0, 2): "in the top right corner",
             (1, 0): "on the left", (1, 1): "in the middle", (1, 2): "on the right",
             (2, 0): "in the bottom left corner", (2, 1): "at the bottom", (2, 2): "in the bottom right corner"}
NUMBER_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
                "sixteen seventeen eighteen nineteen twenty").split()
CORNER_CHOICES = ("0", "3", "4", "5", "6", "8", "10")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LETTER_SUFFIX = "Answer with the option's letter from the given choices directly."
SHORT_SUFFIX = "Answer the question using a single word or phrase."

STAR_INNER, DIAMOND_WIDTH, JITTER, GAP, TEXT_PX, TEXT_MARGIN = 0.45, 0.75, 1.5, 1.0, 12, 2.0
# area of each shape per squared circumradius (r = centre to farthest point)
AREA = {"circle": math.pi, "square": 2.0, "diamond": 2.0 * DIAMOND_WIDTH, "triangle": 3 * math.sqrt(3) / 4,
        "hexagon": 3 * math.sqrt(3) / 2, "star": 5 * STAR_INNER * math.sin(math.pi / 5)}
# the radius every object can count on (the smallest small shape, 64 px images), kept free for later objects
R_MIN = math.sqrt(SIZE_BANDS["small"][0] * 64 ** 2 / min(AREA.values()))


@dataclasses.dataclass(frozen=True)
class WorldConfig:
  image_size: int = 64
  supersample: int = 4
  held_out: tuple = DEFAULT_HELD_OUT        # (shape, colour) never in training images, captions, instructions
  max_objects: int = 5
  p_text: float = 0.25                      # ordinary training scenes with a word or number
  p_texture: float = 0.5                    # scenes with a textured background
  p_big: float = 0.2                        # caption / instruction scenes that are MLE-like (one big target)
  p_held_out_eval: float = 0.25             # share of eval items (per task) whose target is held out
  sft_fact_shapes: tuple = ("triangle", "square", "hexagon")     # corner facts instructions teach
  sft_fact_colours: tuple = ("red", "green", "blue", "white")    # colour associations instructions teach

  def __post_init__(self):
    held = tuple(tuple(c) for c in self.held_out)
    for shape, colour in held:
      if shape not in SHAPES or colour not in COLOURS:
        raise ValueError(f"held_out ({shape!r}, {colour!r}) is not a (shape, colour) of this world")
    if not set(self.sft_fact_shapes) <= set(SHAPES) or not set(self.sft_fact_colours) <= set(COLOURS):
      raise ValueError("sft_fact_shapes / sft_fact_colours must name shapes / colours of this world")
    if not 1 <= self.max_objects <= 6:
      raise ValueError(f"max_objects={self.max_objects}; use 1..6 (six free cells when a row holds text)")
    object.__setattr__(self, "held_out", held)
    object.__setattr__(self, "sft_fact_shapes", tuple(self.sft_fact_shapes))
    object.__setattr__(self, "sft_fact_colours", tuple(self.sft_fact_colours))


DEFAULT = WorldConfig()


def as_config(config=None) -> WorldConfig:
  """A WorldConfig from None (the default), a WorldConfig, or a mapping of its fields (a study step's kwargs)."""
  if config is None:
    return DEFAULT
  if isinstance(config, WorldConfig):
    return config
  config = dict(config.to_dict() if hasattr(config, "to_dict") else config)
  unknown = set(config) - {f.name for f in dataclasses.fields(WorldConfig)}
  if unknown:
    raise ValueError(f"unknown world config field(s) {sorted(unknown)}")
  return WorldConfig(**config)


@dataclasses.dataclass(frozen=True)
class Obj:
  shape: str
  colour: str
  row: int
  col: int
  cx: float                 # centre, image pixels
  cy: float
  radius: float             # circumradius, image pixels
  rgb: tuple
  fraction: float           # share of image pixels: requested when sampled, the measured visible share after render

  @property
  def size(self) -> str:
    return next(word for edge, word in SIZE_EDGES if self.fraction < edge)

  @property
  def combo(self) -> tuple:
    return (self.shape, self.colour)


@dataclasses.dataclass(frozen=True)
class Scene:
  objects: tuple
  background: str
  level: int                # background gray level
  bg_seed: int
  text: str = ""
  text_kind: str = ""       # "word" | "number" | ""
  text_row: int = -1
  text_x: float = 0.0
  text_box: tuple = ()      # (x0, y0, x1, y1) image pixels, after render
  target: int = -1          # MLE-like scenes: the target object's index

  def to_dict(self) -> dict:
    d = dataclasses.asdict(self)
    for o, src in zip(d["objects"], self.objects):
      o.update(size=src.size, corners=CORNERS[src.shape], fraction=round(src.fraction, 6),
               cx=round(src.cx, 3), cy=round(src.cy, 3), radius=round(src.radius, 3), rgb=list(src.rgb))
    d["text_box"] = [round(v, 2) for v in self.text_box]
    return d


def _rng(seed: int, *keys) -> random.Random:
  return random.Random("/".join(["world", str(int(seed)), *map(str, keys)]))


def _a(phrase: str) -> str:
  return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _cap(text: str) -> str:
  return text[:1].upper() + text[1:]


def _num(n: int) -> str:
  return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def _plural(shape: str) -> str:
  return shape + "s"       # every shape name here takes a plain -s


# ---------------------------------------------------------------------------------------------
# Geometry and rendering


def _vertices(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
  if shape == "square":
    h = r / math.sqrt(2)
    return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
  if shape == "diamond":
    w = DIAMOND_WIDTH * r
    return [(cx, cy - r), (cx + w, cy), (cx, cy + r), (cx - w, cy)]
  if shape == "star":
    return [(cx + (r if k % 2 == 0 else STAR_INNER * r) * math.cos(math.radians(-90 + 36 * k)),
             cy + (r if k % 2 == 0 else STAR_INNER * r) * math.sin(math.radians(-90 + 36 * k))) for k in range(10)]
  angles = {"triangle": (-90, 30, 150), "hexagon": (0, 60, 120, 180, 240, 300)}[shape]
  return [(cx + r * math.cos(math.radians(a)), cy + r * math.sin(math.radians(a))) for a in angles]


def _draw(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill, ss: int) -> None:
  if shape == "circle":
    draw.ellipse([(cx - r) * ss, (cy - r) * ss, (cx + r) * ss, (cy + r) * ss], fill=fill)
  else:
    draw.polygon([(x * ss, y * ss) for x, y in _vertices(shape, cx, cy, r)], fill=fill)


def _mask_image(shape: str, cx: float, cy: float, r: float, size: int, ss: int) -> Image.Image:
  m = Image.new("L", (size * ss, size * ss), 0)
  _draw(ImageDraw.Draw(m), shape, cx, cy, r, 255, ss)
  return m


def _mask(shape: str, cx: float, cy: float, r: float, size: int, ss: int) -> np.ndarray:
  """Boolean (size*ss, size*ss) coverage of one shape at the supersampled resolution."""
  return np.asarray(_mask_image(shape, cx, cy, r, size, ss)) > 127


def _coverage(shape: str, cx: float, cy: float, r: float, size: int, ss: int) -> float:
  """The share of the image the (clipped) shape covers; the same sub-pixels as ``_mask``."""
  return np.count_nonzero(np.asarray(_mask_image(shape, cx, cy, r, size, ss))) / (size * ss) ** 2


@functools.lru_cache(maxsize=4)
def _font(px: int):
  try:
    return ImageFont.load_default(size=px)   # Pillow >= 10.1 with FreeType: the built-in Aileron Regular
  except TypeError:                          # older Pillow: the fixed bitmap font
    return ImageFont.load_default()


def _background(scene: Scene, size: int, ss: int) -> Image.Image:
  """The supersampled gray background (an RGB image): plain, noise (per output pixel), stripes or checks."""
  s = size * ss
  g = np.random.default_rng(scene.bg_seed)
  if scene.background == "plain":
    return Image.new("RGB", (s, s), (scene.level,) * 3)
  if scene.background == "noise":
    noise = (scene.level + g.normal(0.0, 14.0, (size, size))).astype(np.float32)
    base = np.kron(noise, np.ones((ss, ss), np.float32))
  elif scene.background == "stripes":
    period, angle = g.uniform(5, 9) * ss, math.radians(float(g.choice([0, 45, 90, 135])))
    t = np.arange(s, dtype=np.float32)
    u = t[None, :] * math.cos(angle) + t[:, None] * math.sin(angle)
    base = scene.level + 22.0 * np.sign(np.sin(2 * math.pi * u / period))
  else:
    period = int(g.uniform(6, 10) * ss)
    band = (np.arange(s) // period) % 2
    base = scene.level + 18.0 * (2.0 * (band[:, None] ^ band[None, :]) - 1.0)
  return Image.fromarray(np.clip(np.rint(base), 0, 255).astype(np.uint8), "L").convert("RGB")


def render(scene: Scene, config: WorldConfig = DEFAULT) -> tuple[Image.Image, Scene]:
  """The 64x64 RGB image and the scene with measured visible fractions and the text's pixel box."""
  size, ss = config.image_size, config.supersample
  img = _background(scene, size, ss)
  draw = ImageDraw.Draw(img)
  masks = []
  for o in scene.objects:
    _draw(draw, o.shape, o.cx, o.cy, o.radius, tuple(o.rgb), ss)
    masks.append(_mask(o.shape, o.cx, o.cy, o.radius, size, ss))
  cover = np.zeros((size * ss, size * ss), bool)
  box = ()
  if scene.text:
    at = (scene.text_x * ss, (scene.text_row + 0.5) * size / 3 * ss)
    ink = (15, 15, 15) if scene.level > 128 else (245, 245, 245)
    draw.text(at, scene.text, fill=ink, font=_font(TEXT_PX * ss), anchor="mm")
    tm = Image.new("L", cover.shape[::-1], 0)
    ImageDraw.Draw(tm).text(at, scene.text, fill=255, font=_font(TEXT_PX * ss), anchor="mm")
    cover = np.asarray(tm) > 0
    bb = tm.getbbox() or (0, 0, 0, 0)
    box = tuple(v / ss for v in bb)
  fractions = [0.0] * len(masks)
  for i in reversed(range(len(masks))):
    fractions[i] = float((masks[i] & ~cover).mean())
    cover = cover | masks[i]
  objects = tuple(dataclasses.replace(o, fraction=f) for o, f in zip(scene.objects, fractions))
  return img.resize((size, size), Image.Resampling.BOX), dataclasses.replace(scene, objects=objects, text_box=box)


# ---------------------------------------------------------------------------------------------
# Scene sampling


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
    if _coverage(shape, cx, cy, mid, config.image_size, config.supersample) < fraction:
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
  occupied = _mask(shape, cx, cy, r + 1.0, size, ss)
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
      m2 = _mask(s2, x, y, r2 + 1.0, size, ss)
      if (m2 & occupied).any():
        continue
      occupied |= m2
      used.add((s2, c2))
      others.append(Obj(s2, c2, row, col, x, y, r2, _rgb(rng, c2), f2))
      break
  return Scene(tuple(others) + (target,), target=len(others), **_background_fields(rng, config))


# ---------------------------------------------------------------------------------------------
# Language about scenes


def _where(o: Obj) -> str:
  if o.fraction >= 0.6:
    return "filling most of the picture"
  if o.fraction >= 0.3:
    return "covering a large part of the picture"
  return POSITIONS[(o.row, o.col)]


def _relations(a: Obj, b: Obj) -> list[str]:
  """True grid relations of a to b (cells differ in ordinary scenes)."""
  out = []
  if a.col != b.col:
    out.append("to the left of" if a.col < b.col else "to the right of")
  if a.row != b.row:
    out.append("above" if a.row < b.row else "below")
  return out


def _text_sentence(scene: Scene) -> str:
  what = f'the word "{scene.text}"' if scene.text_kind == "word" else f"the number {scene.text}"
  return f"{what} is written {'at the top' if scene.text_row == 0 else 'at the bottom'}"


def caption(scene: Scene, rng: random.Random) -> str:
  """One short caption (alignment / contrastive pairs): a list, relational, or counting style."""
  objs = list(scene.objects)
  desc = [f"{_a(f'{o.size} {o.colour} {o.shape}')}" for o in objs]
  style = rng.randrange(3) if len(objs) >= 2 and scene.target < 0 else 0
  if not objs:
    parts = []
  elif style == 1:
    i, j = rng.sample(range(len(objs)), 2)
    parts = [f"{desc[i]} {rng.choice(_relations(objs[i], objs[j]))} {desc[j]}"]
    parts += [f"{desc[k]} {_where(objs[k])}" for k in range(len(objs)) if k not in (i, j)]
  elif style == 2:
    parts = [f"{_num(len(objs))} shapes: " + ", ".join(desc[:-1]) + f" and {desc[-1]}"]
  else:
    parts = [f"{d} {_where(o)}" for d, o in zip(desc, objs)]
  if rng.random() < 0.5 or not objs:
    parts.append(f"on {_a(TEXTURE_WORDS[scene.background])} background")
  text = ", ".join(parts)
  if scene.text:
    text += f"; {_text_sentence(scene)}"
  return text + "."


# Facts naming everyday things with the shapes and colours of this world (text only)
SHAPE_THINGS = {
    "circle": ("The wheels of a car are circles.", "A round table top is a circle.",
               "The full moon looks like a circle."),
    "square": ("Many windows are squares.", "A chess board is a big square made of small squares.",
               "A square table has four equal sides."),
    "triangle": ("The roof of a house often looks like a triangle.", "The sail of a boat is often a triangle.",
                 "A slice of pizza is shaped like a triangle."),
    "star": ("A starfish on the beach looks like a star with five points.", "Flags often show white stars.",
             "Children draw stars in the sky with five points."),
    "diamond": ("A kite in the sky often has the shape of a diamond.", "Some road signs are diamonds.",
                "A diamond is taller than it is wide."),
    "hexagon": ("The cells of a honeycomb are hexagons.", "Some floor tiles are hexagons.",
                "A nut on a bolt is often a hexagon."),
}
COLOUR_MORE = {"red": "A fire truck is red.", "orange": "A pumpkin is orange.",
               "yellow": "The sun is often drawn yellow.", "green": "Leaves and trees are green in summer.",
               "blue": "The sea is often blue.", "purple": "Violets are purple flowers.",
               "white": "Clouds are white.", "black": "The sky at night is black."}


def _fact_sentences(rng: random.Random, shapes: Sequence[str] = SHAPES, colours: Sequence[str] = tuple(COLOURS),
                    k: int = 4) -> list[str]:
  out = []
  for _ in range(k):
    kind = rng.random()
    if kind < 0.45:
      s = rng.choice(shapes)
      n = CORNERS[s]
      if s == "circle":
        out.append(rng.choice(["A circle has no corners; it is perfectly round.", "A circle has 0 corners.",
                               "A circle is round, so it has no corners and no straight sides."]))
      elif s == "star":
        out.append(rng.choice(["A star has five points and ten corners.", "A star has 10 corners: five points "
                               "and five inner corners.", "Count the corners of a star and you get ten."]))
      else:
        extra = {"square": " and four equal sides", "diamond": "; it looks like a narrow square standing on one corner",
                 "hexagon": " and six equal sides", "triangle": " and three straight sides"}[s]
        out.append(rng.choice([f"{_cap(_a(s))} has {_num(n)} corners{extra}.", f"{_cap(_a(s))} has {n} corners.",
                               f"Every {s} has exactly {_num(n)} corners."]))
    elif kind < 0.75:
      c = rng.choice(colours)
      word, phrase = COLOUR_THINGS[c]
      out.append(rng.choice([f"{_cap(phrase)} is {c}.", f"{_cap(c)} is the colour of {phrase}.",
                             f"Something {c} has the same colour as {phrase}.", COLOUR_MORE[c]]))
    elif kind < 0.9:
      out.append(rng.choice(SHAPE_THINGS[rng.choice(shapes)]))
    else:
      out.append(rng.choice(["If one shape is to the left of another, the second is to the right of the first.",
                             "If a shape is above another shape, the other shape is below it.",
                             "A larger shape covers more of the picture than a smaller one.",
                             "A square and a diamond both have four corners, but the diamond stands on a corner."]))
  return out


def _scene_paragraph(scene: Scene, rng: random.Random) -> str:
  objs = list(scene.objects)
  n = len(objs)
  out = [rng.choice([f"The picture shows {_num(n)} shape{'s' * (n != 1)} on {_a(TEXTURE_WORDS[scene.background])} "
                     "background.", f"In this image there {'are' if n != 1 else 'is'} {_num(n)} "
                     f"object{'s' * (n != 1)}.", f"Here is a scene with {_num(n)} shape{'s' * (n != 1)}."])]
  for o in objs:
    d = f"{o.size} {o.colour} {o.shape}"
    out.append(rng.choice([f"{_cap(_a(d))} is {_where(o)}.", f"{_cap(_where(o))} there is {_a(d)}."]))
    if rng.random() < 0.25:
      out.append(rng.choice([f"The {o.colour} {o.shape} has {_num(CORNERS[o.shape])} corners.",
                             f"The {o.colour} {o.shape} has the colour of {COLOUR_THINGS[o.colour][1]}."]))
  pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
  for i, j in rng.sample(pairs, min(len(pairs), rng.randint(2, 4))):
    a, b = objs[i], objs[j]
    out.append(f"The {a.colour} {a.shape} is {rng.choice(_relations(a, b))} the {b.colour} {b.shape}.")
    if a.fraction > 1.5 * b.fraction:
      out.append(f"The {a.colour} {a.shape} is larger than the {b.colour} {b.shape}.")
  kinds = sorted({o.shape for o in objs})
  if n >= 2:
    counts = [f"{_num(sum(o.shape == s for o in objs))} {_plural(s) if sum(o.shape == s for o in objs) > 1 else s}"
              for s in kinds]
    out.append("There " + ("are " if counts[0].split()[0] != "one" else "is ") + ", ".join(counts[:-1])
               + (" and " if len(counts) > 1 else "") + counts[-1] + ".")
  if scene.text:
    out.append(_cap(_text_sentence(scene)) + ".")
  return " ".join(out)


def _doc_visual_world(rng: random.Random, config: WorldConfig) -> str:
  paras = [_scene_paragraph(sample_scene(rng, config, held_out=True), rng) for _ in range(rng.randint(2, 4))]
  paras.insert(rng.randint(0, len(paras)), " ".join(_fact_sentences(rng, k=rng.randint(2, 5))))
  return "\n\n".join(paras)


# ---------------------------------------------------------------------------------------------
# Reasoning text: every equation is "a op b = c" and correct


NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Farah", "Gus", "Hana", "Ivo", "Jun", "Kofi", "Lena")
ITEMS = ("apples", "marbles", "stickers", "cards", "pencils", "red circles", "blue squares", "yellow stars",
         "green triangles", "coins", "books", "shells")


def arithmetic_problem(rng: random.Random) -> tuple[str, str, int]:
  """(question, worked solution ending in "Answer: N.", N)."""
  kind, name, items = rng.randrange(6), rng.choice(NAMES), rng.choice(ITEMS)
  if kind == 0:
    a, b = rng.randint(2, 60), rng.randint(2, 60)
    c = a + b
    q = f"{name} has {a} {items}. {name} gets {b} more. How many {items} does {name} have now?"
    s = f"We add the two amounts: {a} + {b} = {c}."
  elif kind == 1:
    a = rng.randint(10, 90)
    b = rng.randint(1, a - 1)
    c = a - b
    q = f"There are {a} {items} in a box. {name} takes out {b}. How many {items} are left in the box?"
    s = f"We subtract what was taken: {a} - {b} = {c}."
  elif kind == 2:
    a, b = rng.randint(2, 12), rng.randint(2, 12)
    c = a * b
    q = f"A tray has {a} rows with {b} {items} in each row. How many {items} are on the tray?"
    s = f"Multiply the number of rows by the number in each row: {a} * {b} = {c}."
  elif kind == 3:
    b, c = rng.randint(2, 9), rng.randint(2, 12)
    a = b * c
    q = f"{a} {items} are shared equally among {b} friends. How many {items} does each friend get?"
    s = f"Divide the total by the number of friends: {a} / {b} = {c}."
  elif kind == 4:
    a, b = rng.randint(2, 9), rng.randint(2, 10)
    p = a * b
    d = rng.randint(1, p - 1)
    c = p - d
    q = f"{name} buys {a} packs of {items} with {b} in each pack and gives away {d}. How many are left?"
    s = f"Step 1: find the total, {a} * {b} = {p}. Step 2: take away the gift, {p} - {d} = {c}."
  else:
    a, c = rng.randint(1, 40), rng.randint(1, 40)
    b = a + c
    q = f"Let x be a number. When {a} is added to x, the sum is {b}. Solve for x."
    s = f"Subtract {a} from both sides of the equation: {b} - {a} = {c}, therefore x is {c}."
  return q, f"{s}\nAnswer: {c}.", c


def counting_problem(rng: random.Random) -> tuple[str, str, int]:
  kind = rng.randrange(5)
  combos = rng.sample([(s, c) for s in SHAPES for c in COLOURS], rng.randint(2, 4))
  counts = [rng.randint(1, 6) for _ in combos]

  def named(n, s, c):
    return f"{n} {c} {_plural(s) if n > 1 else s}"
  if kind == 0:
    q = ("A picture shows " + ", ".join(named(n, s, c) for n, (s, c) in zip(counts[:-1], combos))
         + f" and {named(counts[-1], *combos[-1])}. How many shapes are in the picture?")
    steps, total = [], counts[0]
    for n in counts[1:]:
      steps.append(f"{total} + {n} = {total + n}")
      total += n
    return q, f"Count each kind and add: {', '.join(steps)}.\nAnswer: {total}.", total
  if kind == 1:
    shapes = rng.sample(SHAPES, 2)
    m, n = counts[0], counts[1]
    a, b = m * CORNERS[shapes[0]], n * CORNERS[shapes[1]]
    q = f"How many corners do {m} {_plural(shapes[0]) if m > 1 else shapes[0]} and {n} " \
        f"{_plural(shapes[1]) if n > 1 else shapes[1]} have together?"
    s = (f"{_cap(_a(shapes[0]))} has {CORNERS[shapes[0]]} corners, so {m} * {CORNERS[shapes[0]]} = {a}. "
         f"{_cap(_a(shapes[1]))} has {CORNERS[shapes[1]]} corners, so {n} * {CORNERS[shapes[1]]} = {b}. "
         f"Together: {a} + {b} = {a + b}.")
    return q, f"{s}\nAnswer: {a + b}.", a + b
  if kind == 2:
    total, part, s = sum(counts) + 1, counts[0], combos[0][0]
    q = f"There are {total} shapes in a picture and {part} of them are {_plural(s)}. How many are not {_plural(s)}?"
    return q, f"Subtract the {_plural(s)} from all shapes: {total} - {part} = {total - part}.\nAnswer: " \
              f"{total - part}.", total - part
  if kind == 3:
    rows, per = rng.randint(2, 6), rng.randint(2, 6)
    s, c = combos[0]
    q = f"{_cap(_plural(s))} are arranged in {rows} rows of {per}. How many {_plural(s)} are there?"
    return q, f"Count rows times shapes per row: {rows} * {per} = {rows * per}.\nAnswer: {rows * per}.", rows * per
  hi, lo = max(counts[:2]) + 1, min(counts[:2])
  c1, c2 = rng.sample(list(COLOURS), 2)
  q = f"There are {hi} {c1} shapes and {lo} {c2} shapes. How many more {c1} shapes than {c2} shapes are there?"
  return q, f"Find the difference: {hi} - {lo} = {hi - lo}.\nAnswer: {hi - lo}.", hi - lo


CHAINS = (("squares", "rectangles", "shapes with four corners"), ("hexagons", "polygons", "shapes with straight sides"),
          ("whales", "mammals", "warm-blooded animals"), ("robins", "birds", "animals with feathers"),
          ("copper wires", "metal objects", "conductors of electricity"), ("oaks", "trees", "plants"),
          ("triangles", "polygons", "closed figures"), ("salmon", "fish", "animals that live in water"))
QUANTITIES = (("mass", "heavier", "lightest", "grams"), ("temperature", "warmer", "coldest", "degrees"),
              ("speed", "faster", "slowest", "metres per second"), ("length", "longer", "shortest", "centimetres"))


def syllogism_problem(rng: random.Random) -> tuple[str, str, str]:
  """(premises and question, reasoning, short answer)."""
  kind = rng.randrange(4)
  if kind == 0:
    a, b, c = rng.choice(CHAINS)
    if rng.random() < 0.7:
      return (f"All {a} are {b}. All {b} are {c}. Are all {a} {c}?",
              f"Yes. Every one of the {a} is one of the {b}, and every one of the {b} is one of the {c}; "
              f"therefore all {a} are {c}.", "yes")
    return (f"All {a} are {b}. Some {b} are large. Does it follow that all {a} are large?",
            f"No. The premises only say that some {b} are large, not which ones, so the conclusion does not "
            "follow from the evidence.", "no")
  if kind == 1:
    qty, more, least, unit = rng.choice(QUANTITIES)
    cs = rng.sample("ABCDEFGH", 3)
    vals = sorted(rng.sample(range(5, 95), 3), reverse=True)
    q = (f"In an experiment, a student measured the {qty} of three samples. Sample {cs[0]} is {more} than sample "
         f"{cs[1]}, and sample {cs[1]} is {more} than sample {cs[2]}. Which sample is the {least}?")
    r = (f"The comparison is transitive: if one sample is {more} than a second and the second is {more} than a "
         f"third, then the first is {more} than the third. The measured values were {vals[0]}, {vals[1]} and "
         f"{vals[2]} {unit}, which agrees with this. So sample {cs[2]} is the {least}.")
    return q, r, f"sample {cs[2]}"
  if kind == 2:
    start, step, n = rng.randint(10, 40), rng.randint(2, 9), rng.randint(3, 5)
    series = [start + step * k for k in range(n)]
    nxt = series[-1] + step
    q = (f"A student measured the temperature of water every minute and observed {', '.join(map(str, series[:-1]))} "
         f"and {series[-1]} degrees. If the rate stays the same, what will the next measurement be?")
    r = (f"The data rise by the same amount each minute: {series[1]} - {series[0]} = {step}. The model predicts "
         f"{series[-1]} + {step} = {nxt} degrees.")
    return q, r, str(nxt)
  s = rng.choice([x for x in SHAPES if CORNERS[x] == 4] + ["hexagon", "triangle"])
  c = rng.choice(list(COLOURS))
  n = CORNERS[s]
  return (f"In a picture, every shape with {_num(n)} corners is {c}. The {s} has {_num(n)} corners. What colour is "
          f"the {s}?", f"The {s} has {_num(n)} corners, and every shape with {_num(n)} corners is {c}; therefore the "
          f"{s} is {c}.", c)


def _doc_problems(rng: random.Random, make, title: str) -> str:
  out = [title]
  for k in range(rng.randint(3, 6)):
    q, s, _ = make(rng)
    out.append(f"Problem {k + 1}. {q}\nSolution: {s}")
  return "\n\n".join(out)


GENERATORS = {
    "visual_world": _doc_visual_world,
    "arithmetic": lambda rng, cfg: _doc_problems(rng, arithmetic_problem, rng.choice(
        ["Practice problems with worked solutions.", "Arithmetic word problems, solved step by step."])),
    "counting": lambda rng, cfg: _doc_problems(rng, counting_problem, rng.choice(
        ["Counting problems about shapes, with worked solutions.", "Let us count shapes and corners."])),
    "syllogism": lambda rng, cfg: _doc_problems(rng, syllogism_problem, rng.choice(
        ["Reasoning exercises: what follows from the evidence?", "Comparisons, data and conclusions."])),
}


def check_generator(name) -> str:
  if name not in GENERATORS:
    raise ValueError(f"world generator {name!r} is not one of {sorted(GENERATORS)}")
  return name


def generate_documents(generator: str, n_docs: int, seed: int = 0,
                       config=None) -> Iterator[dict[str, str]]:
  """``n_docs`` documents ``{"id": "world/<generator>/<seed>/<i>", "text"}``; document i depends only on (seed, i)."""
  config = as_config(config)
  make = GENERATORS[check_generator(generator)]
  for i in range(int(n_docs)):
    yield {"id": f"world/{generator}/{seed}/{i}", "text": make(_rng(seed, "text", generator, i), config)}


# ---------------------------------------------------------------------------------------------
# Questions about a rendered scene (shared by instructions and benchmarks)


def _options(answer: str, pool: Sequence[str], rng: random.Random, k: int = 4) -> tuple[list[str], str]:
  opts = rng.sample([p for p in pool if p != answer], k - 1) + [answer]
  rng.shuffle(opts)
  return opts, LETTERS[opts.index(answer)]


def _unique(scene: Scene, i: int, attr: str) -> bool:
  return sum(getattr(o, attr) == getattr(scene.objects[i], attr) for o in scene.objects) == 1


def _ref(scene: Scene, i: int) -> str:
  o = scene.objects[i]
  return o.shape if _unique(scene, i, "shape") else f"{o.colour} {o.shape}"


def ask(task: str, scene: Scene, rng: random.Random, *, target: int | None = None, shapes: Sequence[str] = SHAPES,
        colours: Sequence[str] = tuple(COLOURS), count_shape: str | None = None) -> dict | None:
  """A question of ``task`` about a rendered scene, or None when the scene cannot support it:
  ``{"task", "question", "options" (list, [] for open answers), "answer" (letter, or the text when open),
  "answer_text", "target" (object index or -1)}``. ``target`` forces the object asked about (or one
  of the pair); ``shapes`` / ``colours`` restrict the corner / colour-association facts asked;
  ``count_shape``: count that shape ("" = all shapes; None = either, at random)."""
  objs, idx = scene.objects, range(len(scene.objects))

  def pick(cands):
    cands = [i for i in cands if target is None or i == target]
    return rng.choice(cands) if cands else None

  def pair(ok):
    cands = [(i, j) for i in idx for j in idx if i != j and ok(objs[i], objs[j])
             and (target is None or target in (i, j))]
    return rng.choice(cands) if cands else None

  def mc(question, answer, pool, i=-1, k=4):
    opts, letter = _options(answer, pool, rng, k)
    return dict(task=task, question=question, options=opts, answer=letter, answer_text=answer, target=i)

  if task == "colour":
    i = pick([i for i in idx if _unique(scene, i, "shape")])
    return None if i is None else mc(f"What colour is the {objs[i].shape} in the image?", objs[i].colour,
                                     list(COLOURS), i)
  if task == "shape":
    i = pick([i for i in idx if _unique(scene, i, "colour")])
    return None if i is None else mc(f"What shape is the {objs[i].colour} object in the image?", objs[i].shape,
                                     SHAPES, i)
  if task == "existence":
    present = {o.shape for o in objs}
    i = pick([scene.target] if scene.target >= 0 else list(idx))
    if i is None or len(SHAPES) - len(present) < 3:
      return None
    absent = [s for s in SHAPES if s not in present]
    opts = rng.sample(absent, 3) + [objs[i].shape]
    rng.shuffle(opts)
    return dict(task=task, question=rng.choice(MLE_QUESTIONS), options=opts, answer=LETTERS[opts.index(objs[i].shape)],
                answer_text=objs[i].shape, target=i)
  if task == "corners":
    i = pick([i for i in idx if objs[i].shape in shapes])
    if i is None:
      return None
    ref = "shape" if len(objs) == 1 else _ref(scene, i)
    return mc(f"How many corners does the {ref} in the image have?", str(CORNERS[objs[i].shape]), CORNER_CHOICES, i)
  if task == "colour_fact":
    i = pick([i for i in idx if _unique(scene, i, "shape") and objs[i].colour in colours])
    if i is None:
      return None
    return mc(f"The {objs[i].shape} in the image has the same colour as which of these?",
              COLOUR_THINGS[objs[i].colour][0], [w for w, _ in COLOUR_THINGS.values()], i)
  if task == "count":
    if not objs:
      return None
    if count_shape is None:
      count_shape = "" if rng.random() < 0.5 else rng.choice(sorted({o.shape for o in objs}))
    if not count_shape:
      question, n = "How many shapes are there in the image?", len(objs)
    else:
      question, n = f"How many {_plural(count_shape)} are there in the image?", \
          sum(o.shape == count_shape for o in objs)
    return mc(question, str(n), [str(k) for k in range(8)])
  if task == "relation":
    answer = rng.choice(("left", "right", "above", "below"))     # the answer first, so answers are balanced
    p = pair({"left": lambda a, b: a.col < b.col, "right": lambda a, b: a.col > b.col,
              "above": lambda a, b: a.row < b.row, "below": lambda a, b: a.row > b.row}[answer])
    if p is None:
      return None
    i, j = p
    if answer in ("left", "right"):
      question = f"Is the {_ref(scene, i)} to the left or to the right of the {_ref(scene, j)}?"
      pool = ["left", "right"]
    else:
      question, pool = f"Is the {_ref(scene, i)} above or below the {_ref(scene, j)}?", ["above", "below"]
    return mc(question, answer, pool, i if target is None else target, k=2)
  if task == "size":
    p = pair(lambda a, b: a.fraction >= 1.5 * b.fraction)
    if p is None:
      return None
    big, small = p
    first, second = (big, small) if rng.random() < 0.5 else (small, big)
    return mc(f"Which is larger in the image, the {_ref(scene, first)} or the {_ref(scene, second)}?",
              _ref(scene, big), [_ref(scene, first), _ref(scene, second)], big if target is None else target, k=2)
  if task == "ocr":
    if not scene.text:
      return None
    question = "What word is written in the image?" if scene.text_kind == "word" else \
        "What number is written in the image?"
    return dict(task=task, question=question, options=[], answer=scene.text, answer_text=scene.text, target=-1)
  if task == "describe":
    return dict(task=task, question=rng.choice(["Describe the image.", "What do you see in this picture?",
                                                "Give a short description of the image."]),
                options=[], answer=caption(scene, rng), answer_text="", target=-1)
  raise ValueError(f"unknown question task {task!r}")


def format_question(q: Mapping, multiple_choice: bool = True) -> tuple[str, str]:
  """(prompt without the image tag, reply), in the benchmarks' prompt styles: options as "A. text" lines and
  the letter instruction, or the short-answer instruction (free text for descriptions)."""
  if q["options"] and multiple_choice:
    opts = "\n".join(f"{LETTERS[k]}. {o}" for k, o in enumerate(q["options"]))
    return f"{q['question']}\n{opts}\n{LETTER_SUFFIX}", q["answer"]
  if q["task"] == "describe":
    return q["question"], q["answer"]
  return f"{q['question']}\n{SHORT_SUFFIX}", q["answer_text"] or q["answer"]


# ---------------------------------------------------------------------------------------------
# Instructions (SFT) and captions (alignment)

SFT_TASKS = {"perception": ("colour", "shape", "existence", "ocr"),
             "reasoning": ("count", "relation", "size", "corners", "colour_fact"),
             "others": ("describe",), "text": ("fact_corners", "fact_colour", "arithmetic", "syllogism")}
DEFAULT_MIX = {"perception": 0.35, "reasoning": 0.35, "others": 0.1, "text": 0.2}


def _scene_for(task: str, rng: random.Random, config: WorldConfig, *, held_out: bool = False,
               force: tuple | None = None, n_objects: int | None = None) -> Scene:
  if task == "existence" or (task in ("colour", "shape", "corners", "colour_fact", "describe")
                             and rng.random() < config.p_big):
    return sample_mle_scene(rng, rng.choice(list(MLE_LEVELS)), config, force=force, held_out=held_out)
  if task in ("ocr", "word", "number"):
    kind = task if task != "ocr" else rng.choice(("word", "number"))
    return sample_scene(rng, config, n_objects=rng.randint(0, 3) if n_objects is None else n_objects, force=force,
                        held_out=held_out, text_kind=kind)
  if task in ("relation", "size") and n_objects is None:
    n_objects = rng.randint(2, config.max_objects)
  return sample_scene(rng, config, n_objects=n_objects, force=force, held_out=held_out,
                      text_kind="" if task == "count" else None)


def _count_scene(rng: random.Random, config: WorldConfig, *, force: tuple | None = None,
                 held_out: bool = False) -> tuple[Scene, str]:
  """A scene for a counting question whose answer (1..max_objects) is drawn first: (scene, shape counted or ""
  for all shapes). A forced (held-out) combination is one of the objects counted."""
  n = rng.randint(1, config.max_objects)
  if rng.random() < 0.5:
    return sample_scene(rng, config, n_objects=n, force=force, held_out=held_out, text_kind=""), ""
  shape = force[0] if force else rng.choice(SHAPES)
  colours = [c for c in COLOURS if (held_out or (shape, c) not in config.held_out) and (not force or c != force[1])]
  combos = ([tuple(force)] if force else []) + [(shape, c) for c in rng.sample(colours, n - (1 if force else 0))]
  n_objects = n + rng.randint(0, config.max_objects - n)
  return sample_scene(rng, config, n_objects=n_objects, force=combos, held_out=held_out, text_kind="",
                      avoid_shapes=(shape,)), shape


def _text_question(task: str, rng: random.Random, config: WorldConfig, p_mc: float) -> tuple[str, str]:
  if task == "fact_corners":
    s = rng.choice(config.sft_fact_shapes)
    q = dict(task=task, question=f"How many corners does {_a(s)} have?", answer_text=str(CORNERS[s]))
    q["options"], q["answer"] = _options(q["answer_text"], CORNER_CHOICES, rng)
    return format_question(q, rng.random() < p_mc)
  if task == "fact_colour":
    c = rng.choice(config.sft_fact_colours)
    q = dict(task=task, question=f"What colour is {COLOUR_THINGS[c][1]}?", answer_text=c)
    q["options"], q["answer"] = _options(c, list(COLOURS), rng)
    return format_question(q, rng.random() < p_mc)
  if task == "arithmetic":
    q, s, _ = (arithmetic_problem if rng.random() < 0.5 else counting_problem)(rng)
    return q, s
  q, s, _ = syllogism_problem(rng)
  return q, s


def _save(img: Image.Image, path: str) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  img.save(path, format="PNG")


def _write_jsonl(path: str, rows: Sequence[Mapping]) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path + ".tmp", "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
  os.replace(path + ".tmp", path)


def _held_out_objects(scene: Scene, config: WorldConfig) -> bool:
  return any(o.combo in config.held_out for o in scene.objects)


def write_instructions(out_dir, n: int, seed: int, *, config=None, mix: Mapping | None = None,
                       p_mc: float = 0.6) -> dict:
  """``n`` instructions (LLaVA JSON ``instructions.json``, images under ``images/``) mixing perception,
  reasoning, others (descriptions) and text-only samples (``mix``: shares by label, DEFAULT_MIX); options
  questions are multiple choice with probability ``p_mc``, else short answers. ``labels.jsonl`` holds
  ``{"id", "label", "task"}`` per sample (label: perception | reasoning | others | text), the format
  ``data.instruction_labels.removal_variants`` takes; the label is also in the id
  (``sft-<i>-<label>-<task>``). Held-out combinations never appear; facts only for the SFT subsets."""
  config = as_config(config)
  out_dir = str(out_dir)
  mix = dict(DEFAULT_MIX, **dict(mix or {}))
  if set(mix) - set(SFT_TASKS) or min(mix.values()) < 0 or sum(mix.values()) <= 0:
    raise ValueError(f"mix {mix} must give non-negative shares to {sorted(SFT_TASKS)}")
  entries, labels, scenes = [], [], []
  for i in range(int(n)):
    rng = _rng(seed, "sft", i)
    label = rng.choices(list(mix), weights=list(mix.values()))[0]
    task = rng.choice(SFT_TASKS[label])
    sid = f"sft-{i:06d}-{label}-{task}"
    if label == "text":
      prompt, reply = _text_question(task, rng, config, p_mc)
      entries.append({"id": sid, "conversations": [{"from": "human", "value": prompt},
                                                    {"from": "gpt", "value": reply}]})
    else:
      for _ in range(100):
        scene, count_shape = _count_scene(rng, config) if task == "count" else (_scene_for(task, rng, config), None)
        img, scene = render(scene, config)
        q = ask(task, scene, rng, shapes=config.sft_fact_shapes, colours=config.sft_fact_colours,
                count_shape=count_shape)
        if q is not None:
          break
      else:
        raise RuntimeError(f"no scene supported {task!r} in 100 tries (seed {seed}, sample {i})")
      assert not _held_out_objects(scene, config)
      prompt, reply = format_question(q, q["task"] not in ("ocr", "describe") and rng.random() < p_mc)
      _save(img, os.path.join(out_dir, "images", f"{sid}.png"))
      entries.append({"id": sid, "image": f"images/{sid}.png", "conversations": [
          {"from": "human", "value": "<image>\n" + prompt}, {"from": "gpt", "value": reply}]})
      scenes.append({"id": sid, "scene": scene.to_dict()})
    labels.append({"id": sid, "label": label, "task": task})
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, "instructions.json")
  with open(path + ".tmp", "w") as f:
    f.write("[\n" + ",\n".join(json.dumps(e) for e in entries) + "\n]\n")
  os.replace(path + ".tmp", path)
  _write_jsonl(os.path.join(out_dir, "labels.jsonl"), labels)
  _write_jsonl(os.path.join(out_dir, "scenes.jsonl"), scenes)
  counts: dict[str, int] = {}
  for row in labels:
    counts[row["label"]] = counts.get(row["label"], 0) + 1
  spec = {"kind": "instructions", "paths": [path], "image_root": out_dir}
  return {"instructions": path, "labels": os.path.join(out_dir, "labels.jsonl"), "image_root": out_dir,
          "n": len(entries), "by_label": counts, "spec": spec}


def write_captions(out_dir, n: int, seed: int, split: str = "train", *, config=None) -> dict:
  """``n`` (image, caption) pairs: ``captions.jsonl`` rows ``{"id", "image", "caption"}`` (images under
  ``images/``) for ``data/multimodal.py`` kind "captions", and ``scenes.jsonl``. ``split="train"`` never shows a
  held-out combination; any other split name is its own stream and may."""
  config = as_config(config)
  out_dir = str(out_dir)
  held = split != "train"
  rows, scenes = [], []
  for i in range(int(n)):
    rng = _rng(seed, "captions", split, i)
    if rng.random() < config.p_big:
      scene = sample_mle_scene(rng, rng.choice(list(MLE_LEVELS)), config, held_out=held)
    else:
      scene = sample_scene(rng, config, held_out=held)
    img, scene = render(scene, config)
    sid = f"{split}-{i:06d}"
    _save(img, os.path.join(out_dir, "images", f"{sid}.png"))
    rows.append({"id": sid, "image": f"images/{sid}.png", "caption": caption(scene, rng)})
    scenes.append({"id": sid, "scene": scene.to_dict()})
  path = os.path.join(out_dir, "captions.jsonl")
  _write_jsonl(path, rows)
  _write_jsonl(os.path.join(out_dir, "scenes.jsonl"), scenes)
  return {"captions": path, "image_root": out_dir, "n": len(rows),
          "spec": {"kind": "captions", "paths": [path], "image_root": out_dir}}


# ---------------------------------------------------------------------------------------------
# The evaluation suite

EVAL_TASKS = {"tiny_general": ("colour", "shape"), "tiny_knowledge": ("corners", "colour_fact"),
              "tiny_ocr": ("word", "number"), "tiny_vision": ("count", "relation", "size"),
              "mle_bench": tuple(MLE_LEVELS)}


def _eval_item(bench: str, task: str, i: int, seed: int, config: WorldConfig):
  rng = _rng(seed, "eval", bench, task, i)
  # exactly floor(n * p) held-out items per task, spread evenly by index (not a coin per item: suites are small)
  p = config.p_held_out_eval
  held = bench != "tiny_ocr" and bool(config.held_out) and int((i + 1) * p) > int(i * p)
  force = rng.choice(config.held_out) if held else None
  if force is None and (bench == "mle_bench" or task in ("colour", "shape", "corners", "colour_fact")):
    force = rng.choice(allowed_combos(config))     # the target drawn first: answers balanced by construction
  for _ in range(200):
    count_shape = None
    if bench == "mle_bench":
      scene = sample_mle_scene(rng, task, config, force=force)
    elif task == "count":
      scene, count_shape = _count_scene(rng, config, force=force)
    else:
      n_objects = rng.randint(1, 4) if task in ("colour", "shape", "corners", "colour_fact") else None
      scene = dataclasses.replace(_scene_for(task, rng, config, force=force, n_objects=n_objects), target=-1)
    img, scene = render(scene, config)
    target = scene.target if bench == "mle_bench" else (0 if force and task != "count" else None)
    q = ask("ocr" if bench == "tiny_ocr" else "existence" if bench == "mle_bench" else task, scene, rng, target=target,
            count_shape=count_shape)
    if q is None:
      continue
    if bench == "mle_bench":
      lo, hi = MLE_LEVELS[task]
      if not lo <= scene.objects[scene.target].fraction < hi:
        continue
    return img, scene, q, held
  raise RuntimeError(f"no scene supported {bench}/{task} in 200 tries (seed {seed}, item {i})")


def write_benchmark(name: str, folder, n_per_task: int, seed: int, *, config=None) -> dict:
  """One benchmark of the suite into ``folder``: ``data.jsonl`` + ``images/`` + ``scenes.jsonl``; returns counts."""
  config = as_config(config)
  if name not in EVAL_TASKS:
    raise ValueError(f"unknown world benchmark {name!r}; one of {sorted(EVAL_TASKS)}")
  folder = str(folder)
  rows, scenes = [], []
  for task in EVAL_TASKS[name]:
    for i in range(int(n_per_task)):
      img, scene, q, held = _eval_item(name, task, i, seed, config)
      sid = f"{task}-{i:05d}"
      image = f"images/{sid}.png"
      _save(img, os.path.join(folder, image))
      if name == "mle_bench":   # the released imagefolder fields, nothing else
        rows.append({"file_name": image, "question": q["question"], "choices": q["options"],
                     "answer": q["answer_text"], "answer_text": q["answer_text"], "sub_task": task})
      elif name == "tiny_ocr":
        rows.append({"id": sid, "image": image, "question": q["question"], "answers": [q["answer"]], "task": task,
                     "held_out": False})
      else:
        row = {"id": sid, "image": image, "question": q["question"], "options": q["options"], "answer": q["answer"],
               "answer_text": q["answer_text"], "task": task, "held_out": held}
        if name == "tiny_knowledge":
          o = scene.objects[q["target"]]
          row["fact_in_sft"] = o.shape in config.sft_fact_shapes if task == "corners" else \
              o.colour in config.sft_fact_colours
        rows.append(row)
      scenes.append({"id": image if name == "mle_bench" else sid, "target": q["target"], "held_out": held,
                     "scene": scene.to_dict()})
  _write_jsonl(os.path.join(folder, "data.jsonl"), rows)
  _write_jsonl(os.path.join(folder, "scenes.jsonl"), scenes)
  return {"n": len(rows), "tasks": {t: int(n_per_task) for t in EVAL_TASKS[name]},
          "held_out": sum(s["held_out"] for s in scenes)}


def write_eval_suite(out_root, n_per_task: int, seed: int, *, config=None,
                     benchmarks: Sequence[str] = tuple(EVAL_TASKS)) -> dict:
  """The synthetic suite under ``out_root`` (a VQA ``data_root``): ``mle_bench/`` in MLE-Bench's released
  layout and ``tiny_general``, ``tiny_knowledge``, ``tiny_ocr``, ``tiny_vision`` (``eval/vqa/tiny.py``);
  ``n_per_task`` items per task (sub_task); ``suite.json`` records what was written."""
  config = as_config(config)
  out_root = str(out_root)
  manifest = {"world_version": WORLD_VERSION, "seed": int(seed), "n_per_task": int(n_per_task),
              "held_out": [list(c) for c in config.held_out], "config": dataclasses.asdict(config), "benchmarks": {}}
  for name in benchmarks:
    manifest["benchmarks"][name] = write_benchmark(name, os.path.join(out_root, name), n_per_task, seed,
                                                   config=config)
  with open(os.path.join(out_root, "suite.json"), "w") as f:
    json.dump(manifest, f, indent=1)
  return manifest
