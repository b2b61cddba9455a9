"""The world's vocabulary and its scene model: shapes, colours, ``WorldConfig`` (the knobs), ``Obj`` and
``Scene`` (the ground truth), and ``stream``, the named random stream everything draws from.

- Shapes: SHAPES, each with a corner count (CORNERS: circle 0, triangle 3, square 4, diamond 4, hexagon
  6, star 10 = five points and five inner corners; the text says both).
- Colours: COLOURS (8 names, each with its RGB); COLOUR_THINGS names the everyday thing of each colour
  that only the text states.
- Size words follow the measured share of image pixels an object covers (SIZE_EDGES: small < 3 % <=
  medium < 8 % <= large < 30 % <= huge).
- Ground truth (``Scene``): every object with attributes, grid cell, centre, radius and the exact
  visible pixel share computed from the rendered masks (``render.py``: later objects and the text
  occlude earlier ones), the text, its row and its pixel box; ``scenes.jsonl`` beside every written
  folder.
"""

from __future__ import annotations

import dataclasses
import random

WORLD_VERSION = 2         # 2: the reasoning pools state corner counts of the SFT-taught shapes only
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
SIZE_EDGES = ((0.03, "small"), (0.08, "medium"), (0.30, "large"), (1.01, "huge"))


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


def stream(seed: int, *keys) -> random.Random:
  """The random stream named ``world/<seed>/<keys...>``: what one item draws depends on nothing else."""
  return random.Random("/".join(["world", str(int(seed)), *map(str, keys)]))
