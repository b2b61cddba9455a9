"""Drawing a scene: shape geometry, masks and the 64x64 RGB image with the measured ground truth.

- Images: 64x64 RGB, drawn at 4x (256x256) and box-downsampled, so edges are antialiased and a
  pixel's value is the exact blend of its 16 sub-pixels.
- Shapes are upright and never rotated (a diamond is a rhombus 0.75 as wide as tall, so it never looks
  like a square); AREA gives each shape's area per squared circumradius.
- Background: a gray level, plain or noise (per output pixel), stripes or checks; gray, so no colour
  name is ambiguous against it.
- Text: Pillow's built-in FreeType font (Aileron Regular, inside every Pillow wheel, so no font file
  has to be found; DejaVu would need matplotlib or a system font), 12 px, black on light and white on
  dark backgrounds.
- ``render`` measures each object's visible share from the masks (later objects and the text occlude
  earlier ones) and the text's pixel box.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from visprior_jax.study.world.scene import DEFAULT, Scene, WorldConfig

STAR_INNER, DIAMOND_WIDTH, TEXT_PX = 0.45, 0.75, 12
# area of each shape per squared circumradius (r = centre to farthest point)
AREA = {"circle": math.pi, "square": 2.0, "diamond": 2.0 * DIAMOND_WIDTH, "triangle": 3 * math.sqrt(3) / 4,
        "hexagon": 3 * math.sqrt(3) / 2, "star": 5 * STAR_INNER * math.sin(math.pi / 5)}


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


def shape_mask(shape: str, cx: float, cy: float, r: float, size: int, ss: int) -> np.ndarray:
  """Boolean (size*ss, size*ss) coverage of one shape at the supersampled resolution."""
  return np.asarray(_mask_image(shape, cx, cy, r, size, ss)) > 127


def shape_coverage(shape: str, cx: float, cy: float, r: float, size: int, ss: int) -> float:
  """The share of the image the (clipped) shape covers; the same sub-pixels as ``shape_mask``."""
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
    masks.append(shape_mask(o.shape, o.cx, o.cy, o.radius, size, ss))
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

