"""Vision Transformers in Flax NNX: SigLIP (big_vision), CLIP/MetaCLIP, DINOv2 and MAE encoders.

One module, variants by :class:`ViTConfig`. Parameter names and shapes are big_vision's
(``big_vision/models/vit.py``) byte for byte, so a released SigLIP ``.npz`` loads directly
(``convert/big_vision.py``); HF checkpoints of the other families map onto the same names
(``convert/hf_vision.py``). Pure-dict layout::

  embedding/{kernel (p,p,3,width), bias (width)}      bias absent when patch_bias=False (CLIP)
  cls (1,1,width)                                      class_token=True (CLIP, DINOv2, MAE)
  reg (1,R,width)                                      num_registers=R>0 (DINOv2 with registers)
  pos_embedding (1, n [+1 if cls_posemb], width)       learned grid (MAE: its fixed sincos values)
  pre_norm/{scale,bias}                                pre_norm=True (CLIP's pre_layrnorm)
  Transformer/encoderblock_{i}/
    LayerNorm_0, LayerNorm_1/{scale,bias}
    MultiHeadDotProductAttention_0/{query,key,value}/{kernel (width,heads,hd), bias (heads,hd)}
    MultiHeadDotProductAttention_0/out/{kernel (heads,hd,width), bias (width)}
    LayerScale_0, LayerScale_1/scale (width)           layer_scale=True (DINOv2)
    MlpBlock_0/Dense_0 (width->mlp), Dense_1 (mlp->width); mlp_type="swiglu" adds Dense_2
      (width->mlp): out = Dense_1(silu(Dense_0 x) * Dense_2 x)   (DINOv2-g)
  Transformer/encoder_norm/{scale,bias}
  MAPHead_0/{probe, MultiHeadDotProductAttention_0, LayerNorm_0, MlpBlock_0}   pool_type="map"
  head/{kernel (width,num_classes), bias}              num_classes>0 (PaliGemma's projector)

Blocks are kept unstacked (one ``encoderblock_{i}`` module each, a Python loop), which is
big_vision's default loop layout: the pure dict *is* the checkpoint, with no converter. Encoders
are frozen in this project and at most 48 layers deep, so the longer compile of an unrolled loop
is the price for direct ``.npz`` compatibility (big_vision's scan layout is unstacked on load).

Hidden-state indexing follows HF ``output_hidden_states``: ``hidden_states[0]`` is the embedding
output (after CLIP's pre-norm), ``hidden_states[i]`` the output of block ``i``.
``last_hidden_state`` is ``encoder_norm(hidden_states[-1])`` except when ``final_norm="pooled"``
(CLIP: HF norms only the pooled class token).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from visprior_jax.models import pure
from visprior_jax.models.axes import constrain

Params = pure.Params

# big_vision's decode_variant table: name -> (width, depth, mlp_dim, heads).
VARIANTS = {
    "mu": (32, 1, 128, 2), "Ti": (192, 12, 768, 3), "S": (384, 12, 1536, 6), "M": (512, 12, 2048, 8),
    "B": (768, 12, 3072, 12), "L": (1024, 24, 4096, 16), "So400m": (1152, 27, 4304, 16),
    "H": (1280, 32, 5120, 16), "g": (1408, 40, 6144, 16), "g-opt": (1536, 40, 6144, 16),
    "G": (1664, 48, 8192, 16), "e": (1792, 56, 15360, 16),
}
# DINOv2 sizes differ from big_vision's at S/B (heads) and g (1536 wide, 24 heads, SwiGLU 4096).
DINOV2_VARIANTS = {"S": (384, 12, 1536, 6), "B": (768, 12, 3072, 12), "L": (1024, 24, 4096, 16),
                   "g": (1536, 40, 4096, 24)}
POOL_TYPES = ("map", "tok", "gap", "none")
ACTIVATIONS = ("gelu_tanh", "gelu", "quick_gelu")


@dataclasses.dataclass(frozen=True)
class ViTConfig:
  width: int = 768
  depth: int = 12
  mlp_dim: int = 3072
  num_heads: int = 12
  patch_size: int = 16
  image_size: int = 224           # the grid pos_embedding is sized for (image_size // patch_size)^2
  pool_type: str = "map"          # map | tok | gap | none
  num_classes: int = 0            # >0 adds `head` (applied per token when pool_type="none")
  class_token: bool = False
  cls_posemb: bool = True         # the class token gets a position embedding (HF families)
  num_registers: int = 0
  pre_norm: bool = False          # CLIP's pre_layrnorm
  final_norm: str = "all"         # all | pooled (CLIP) : where encoder_norm applies
  act: str = "gelu_tanh"          # gelu_tanh (big_vision nn.gelu) | gelu (erf) | quick_gelu
  mlp_type: str = "mlp"           # mlp | swiglu
  layer_scale: bool = False
  norm_eps: float = 1e-6
  patch_bias: bool = True
  dtype: str = "float32"          # compute dtype
  param_dtype: str = "float32"

  def __post_init__(self):
    if self.pool_type not in POOL_TYPES:
      raise ValueError(f"pool_type={self.pool_type!r} is not one of {POOL_TYPES}")
    if self.act not in ACTIVATIONS:
      raise ValueError(f"act={self.act!r} is not one of {ACTIVATIONS}")
    if self.mlp_type not in ("mlp", "swiglu") or self.final_norm not in ("all", "pooled"):
      raise ValueError(f"mlp_type={self.mlp_type!r} / final_norm={self.final_norm!r} not supported")
    if self.width % self.num_heads:
      raise ValueError(f"width={self.width} is not a multiple of num_heads={self.num_heads}")
    if self.pool_type == "tok" and not self.class_token:
      raise ValueError("pool_type='tok' needs class_token=True")

  @property
  def head_dim(self) -> int:
    return self.width // self.num_heads

  @property
  def grid(self) -> int:
    return self.image_size // self.patch_size

  @property
  def num_prefix(self) -> int:
    """Tokens before the patch tokens: class token then registers."""
    return int(self.class_token) + self.num_registers

  @classmethod
  def from_variant(cls, variant: str, **overrides) -> "ViTConfig":
    """``ViTConfig.from_variant("So400m/14", image_size=384)`` with big_vision's sizes."""
    return cls(**{**decode_variant(variant), **overrides})

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "ViTConfig":
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
      raise ValueError(f"unknown ViT config fields {unknown}; known: {sorted(names)}")
    return cls(**d)


def decode_variant(variant: str, table: dict | None = None) -> dict[str, int]:
  """"B/16" -> dict(width, depth, mlp_dim, num_heads, patch_size) (big_vision's decode_variant)."""
  table = VARIANTS if table is None else table
  name, _, patch = variant.partition("/")
  if name not in table:
    raise ValueError(f"unknown ViT variant {name!r} in {variant!r}; known: {sorted(table)}")
  width, depth, mlp_dim, heads = table[name]
  out = dict(width=width, depth=depth, mlp_dim=mlp_dim, num_heads=heads)
  if patch:
    out["patch_size"] = int(patch)
  return out


def siglip_config(variant="So400m/14", image_size=224, **kw) -> ViTConfig:
  """big_vision SigLIP image tower: no class token, MAP head, tanh-GELU, eps 1e-6."""
  return ViTConfig(**{**decode_variant(variant), "image_size": image_size, "pool_type": "map", **kw})


def clip_config(variant="B/16", image_size=224, **kw) -> ViTConfig:
  """CLIP / MetaCLIP vision tower (HF CLIPVisionModel): class token, pre-LN, quick-GELU."""
  return ViTConfig(**{**decode_variant(variant), "image_size": image_size, "pool_type": "tok",
                      "class_token": True, "pre_norm": True, "final_norm": "pooled",
                      "act": "quick_gelu", "norm_eps": 1e-5, "patch_bias": False, **kw})


def dinov2_config(variant="g/14", image_size=518, num_registers=0, **kw) -> ViTConfig:
  """DINOv2 (HF Dinov2Model): class token, layer scale, exact GELU; g uses SwiGLU."""
  sizes = decode_variant(variant, DINOV2_VARIANTS)
  mlp_type = "swiglu" if variant.startswith("g/") else "mlp"
  return ViTConfig(**{**sizes, "image_size": image_size, "pool_type": "tok", "class_token": True,
                      "num_registers": num_registers, "layer_scale": True, "act": "gelu",
                      "mlp_type": mlp_type, **kw})


def mae_config(variant="H/14", image_size=224, **kw) -> ViTConfig:
  """MAE encoder (HF ViTMAEModel, no masking): class token, exact GELU, eps 1e-12 (HF's)."""
  return ViTConfig(**{**decode_variant(variant), "image_size": image_size, "pool_type": "none",
                      "class_token": True, "act": "gelu", "norm_eps": 1e-12, **kw})


# ------------------------------------------------------------------------------------ resizing


def _linear_axis(x: jax.Array, axis: int, size: int, align_corners: bool) -> jax.Array:
  n = x.shape[axis]
  if n == size:
    return x
  i = jnp.arange(size, dtype=jnp.float32)
  if align_corners:
    src = i * ((n - 1) / (size - 1)) if size > 1 else jnp.zeros_like(i)
  else:  # half-pixel centres, clamped at the border: torch F.interpolate(align_corners=False)
    src = jnp.clip((i + 0.5) * (n / size) - 0.5, 0.0, None)
  lo = jnp.minimum(jnp.floor(src).astype(jnp.int32), n - 1)
  hi = jnp.minimum(lo + 1, n - 1)
  frac = (src - lo).reshape([-1 if d == axis else 1 for d in range(x.ndim)])
  xf = x.astype(jnp.float32)
  out = jnp.take(xf, lo, axis=axis) * (1 - frac) + jnp.take(xf, hi, axis=axis) * frac
  return out.astype(x.dtype)


def resize_bilinear(x: jax.Array, size: tuple[int, int], align_corners: bool = False) -> jax.Array:
  """Bilinear resize of (B,H,W,C) without antialiasing; align_corners=False is torch's default."""
  return _linear_axis(_linear_axis(x, 1, size[0], align_corners), 2, size[1], align_corners)


def resample_posemb(posemb: jax.Array, new_grid: int | tuple[int, int], num_prefix: int = 0) -> jax.Array:
  """(1, prefix + g*g, D) -> (1, prefix + h*w, D): bilinear on the grid, prefix rows kept.

  Corner-aligned, as big_vision's ``resample_posemb`` (``scipy.ndimage.zoom(order=1)``) does.
  """
  new_grid = (new_grid, new_grid) if isinstance(new_grid, int) else tuple(new_grid)
  prefix, grid = posemb[:, :num_prefix], posemb[:, num_prefix:]
  old = math.isqrt(grid.shape[1])
  if old * old != grid.shape[1]:
    raise ValueError(f"pos_embedding has {grid.shape[1]} grid rows, not a square")
  grid = resize_bilinear(grid.reshape(1, old, old, -1), new_grid, align_corners=True)
  return jnp.concatenate([prefix, grid.reshape(1, new_grid[0] * new_grid[1], -1)], axis=1)


def tokens_to_n(tokens: jax.Array, num_tokens: int) -> jax.Array:
  """(B, g*g, D) patch tokens -> (B, N, D) by bilinear resize of the grid to sqrt(N) x sqrt(N)."""
  side, g = math.isqrt(num_tokens), math.isqrt(tokens.shape[1])
  if side * side != num_tokens:
    raise ValueError(f"num_tokens={num_tokens} is not a square number")
  if g * g != tokens.shape[1]:
    raise ValueError(f"{tokens.shape[1]} patch tokens do not form a square grid")
  grid = resize_bilinear(tokens.reshape(tokens.shape[0], g, g, -1), (side, side))
  return grid.reshape(tokens.shape[0], num_tokens, -1)


# ------------------------------------------------------------------------------------- modules


def _xavier(in_axis, out_axis):
  return jax.nn.initializers.xavier_uniform(in_axis=in_axis, out_axis=out_axis)


def _param(rngs, init, shape, axes, dtype):
  return nnx.Param(init(rngs.params(), shape, jnp.dtype(dtype)), logical_axes=tuple(axes))


_zeros = jax.nn.initializers.zeros
_ones = jax.nn.initializers.ones


class Dense(nnx.Module):
  """kernel (in..., out...) with a bias over the output axes; ``spec`` is the einsum."""

  def __init__(self, shape, axes, n_in, spec, rngs, dtype, bias_init=_zeros, kernel_init=None):
    nd = len(shape)
    init = kernel_init or _xavier(tuple(range(n_in)), tuple(range(n_in, nd)))
    self.kernel = _param(rngs, init, shape, axes, dtype)
    self.bias = _param(rngs, bias_init, shape[n_in:], axes[n_in:], dtype)
    self.spec = spec

  def __call__(self, x):
    return jnp.einsum(self.spec, x, self.kernel[...].astype(x.dtype)) + self.bias[...].astype(x.dtype)


class LayerNorm(nnx.Module):
  def __init__(self, dim, eps, rngs, dtype):
    self.scale = _param(rngs, _ones, (dim,), ("norm",), dtype)
    self.bias = _param(rngs, _zeros, (dim,), ("norm",), dtype)
    self.eps = eps

  def __call__(self, x):
    xf = x.astype(jnp.float32)
    mean = jnp.mean(xf, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(xf - mean), axis=-1, keepdims=True)
    y = (xf - mean) * jax.lax.rsqrt(var + self.eps)
    return (y * self.scale[...].astype(jnp.float32) + self.bias[...].astype(jnp.float32)).astype(x.dtype)


class MultiHeadDotProductAttention(nnx.Module):
  def __init__(self, cfg: ViTConfig, rngs):
    d, h, k, pd = cfg.width, cfg.num_heads, cfg.head_dim, cfg.param_dtype
    for name in ("query", "key", "value"):
      setattr(self, name, Dense((d, h, k), ("embed", "heads", "head_dim"), 1, "btd,dhk->bthk", rngs, pd))
    self.out = Dense((h, k, d), ("heads", "head_dim", "embed"), 2, "bthk,hkd->btd", rngs, pd)
    self.scale = k ** -0.5

  def __call__(self, xq, xkv):
    qkv_axes = ("act_batch", "act_length", "act_heads", "act_head_dim")
    q = constrain(self.query(xq), qkv_axes)
    k = constrain(self.key(xkv), qkv_axes)
    v = constrain(self.value(xkv), qkv_axes)
    logits = jnp.einsum("bthk,bshk->bhts", q * self.scale, k, preferred_element_type=jnp.float32)
    weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    out = constrain(jnp.einsum("bhts,bshk->bthk", weights, v), qkv_axes)
    return self.out(out)


def _activation(name, x):
  if name == "quick_gelu":
    return x * jax.nn.sigmoid(1.702 * x)
  return jax.nn.gelu(x, approximate=(name == "gelu_tanh"))


class MlpBlock(nnx.Module):
  def __init__(self, cfg: ViTConfig, rngs):
    d, m, pd = cfg.width, cfg.mlp_dim, cfg.param_dtype
    tiny = jax.nn.initializers.normal(1e-6)
    self.Dense_0 = Dense((d, m), ("embed", "mlp"), 1, "btd,dm->btm", rngs, pd, tiny)
    self.Dense_1 = Dense((m, d), ("mlp", "embed"), 1, "btm,md->btd", rngs, pd, tiny)
    if cfg.mlp_type == "swiglu":
      self.Dense_2 = Dense((d, m), ("embed", "mlp"), 1, "btd,dm->btm", rngs, pd, tiny)
    self.cfg = cfg

  def __call__(self, x):
    if self.cfg.mlp_type == "swiglu":
      hidden = jax.nn.silu(self.Dense_0(x)) * self.Dense_2(x)
    else:
      hidden = _activation(self.cfg.act, self.Dense_0(x))
    return self.Dense_1(constrain(hidden, ("act_batch", "act_length", "act_mlp")))


class LayerScale(nnx.Module):
  def __init__(self, dim, rngs, dtype):
    self.scale = _param(rngs, jax.nn.initializers.constant(1e-5), (dim,), ("norm",), dtype)

  def __call__(self, x):
    return x * self.scale[...].astype(x.dtype)


class Encoder1DBlock(nnx.Module):
  def __init__(self, cfg: ViTConfig, rngs):
    pd = cfg.param_dtype
    self.LayerNorm_0 = LayerNorm(cfg.width, cfg.norm_eps, rngs, pd)
    self.MultiHeadDotProductAttention_0 = MultiHeadDotProductAttention(cfg, rngs)
    self.LayerNorm_1 = LayerNorm(cfg.width, cfg.norm_eps, rngs, pd)
    self.MlpBlock_0 = MlpBlock(cfg, rngs)
    if cfg.layer_scale:
      self.LayerScale_0 = LayerScale(cfg.width, rngs, pd)
      self.LayerScale_1 = LayerScale(cfg.width, rngs, pd)
    self.layer_scale = cfg.layer_scale

  def __call__(self, x):
    y = self.LayerNorm_0(x)
    y = self.MultiHeadDotProductAttention_0(y, y)
    x = x + (self.LayerScale_0(y) if self.layer_scale else y)
    y = self.MlpBlock_0(self.LayerNorm_1(x))
    x = x + (self.LayerScale_1(y) if self.layer_scale else y)
    return constrain(x, ("act_batch", "act_length", "act_embed"))


class Encoder(nnx.Module):
  """big_vision's ``Transformer``: ``encoderblock_{i}`` then ``encoder_norm``."""

  def __init__(self, cfg: ViTConfig, rngs):
    for i in range(cfg.depth):
      setattr(self, f"encoderblock_{i}", Encoder1DBlock(cfg, rngs))
    self.encoder_norm = LayerNorm(cfg.width, cfg.norm_eps, rngs, cfg.param_dtype)
    self.depth = cfg.depth

  def block(self, i: int) -> Encoder1DBlock:
    return getattr(self, f"encoderblock_{i}")


class MAPHead(nnx.Module):
  """Multihead attention pooling: a learned probe attends over the tokens."""

  def __init__(self, cfg: ViTConfig, rngs):
    pd = cfg.param_dtype
    self.probe = _param(rngs, _xavier(-2, -1), (1, 1, cfg.width), (None, None, "embed"), pd)
    self.MultiHeadDotProductAttention_0 = MultiHeadDotProductAttention(cfg, rngs)
    self.LayerNorm_0 = LayerNorm(cfg.width, cfg.norm_eps, rngs, pd)
    self.MlpBlock_0 = MlpBlock(dataclasses.replace(cfg, mlp_type="mlp"), rngs)

  def __call__(self, x):
    probe = jnp.broadcast_to(self.probe[...].astype(x.dtype), (x.shape[0], 1, x.shape[-1]))
    x = self.MultiHeadDotProductAttention_0(probe, x)
    x = x + self.MlpBlock_0(self.LayerNorm_0(x))
    return x[:, 0]


class ViT(nnx.Module):
  """``ViT(cfg, rngs=nnx.Rngs(42))(images (B,H,W,3)) -> dict`` (see :meth:`__call__`)."""

  def __init__(self, cfg: ViTConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    d, p, pd = cfg.width, cfg.patch_size, cfg.param_dtype
    self.embedding = nnx.Module()
    self.embedding.kernel = _param(rngs, jax.nn.initializers.lecun_normal((0, 1, 2), 3), (p, p, 3, d),
                                   (None, None, None, "embed"), pd)
    if cfg.patch_bias:
      self.embedding.bias = _param(rngs, _zeros, (d,), ("embed",), pd)
    if cfg.class_token:
      self.cls = _param(rngs, _zeros, (1, 1, d), (None, None, "embed"), pd)
    if cfg.num_registers:
      self.reg = _param(rngs, jax.nn.initializers.normal(0.02), (1, cfg.num_registers, d),
                        (None, None, "embed"), pd)
    n_pos = cfg.grid ** 2 + int(cfg.class_token and cfg.cls_posemb)
    self.pos_embedding = _param(rngs, jax.nn.initializers.normal(d ** -0.5), (1, n_pos, d),
                                (None, None, "embed"), pd)
    if cfg.pre_norm:
      self.pre_norm = LayerNorm(d, cfg.norm_eps, rngs, pd)
    self.Transformer = Encoder(cfg, rngs)
    if cfg.pool_type == "map":
      self.MAPHead_0 = MAPHead(cfg, rngs)
    if cfg.num_classes:
      self.head = Dense((d, cfg.num_classes), ("embed", None), 1, "...d,dc->...c", rngs, pd,
                        kernel_init=_zeros)

  # -- pieces
  def embed(self, images: jax.Array) -> jax.Array:
    """(B,H,W,3) -> hidden_states[0] (B, prefix + gh*gw, width)."""
    cfg, dt = self.cfg, jnp.dtype(self.cfg.dtype)
    p = cfg.patch_size
    b, h, w, c = images.shape
    gh, gw = h // p, w // p
    if (gh, gw) != (cfg.grid, cfg.grid):
      raise ValueError(f"images {h}x{w} give a {gh}x{gw} patch grid but pos_embedding is for "
                       f"{cfg.grid}x{cfg.grid} ({cfg.image_size}px); use vit.with_image_size()")
    x = images[:, :gh * p, :gw * p].astype(dt).reshape(b, gh, p, gw, p, c)
    x = jnp.einsum("byixjc,ijcd->byxd", x, self.embedding.kernel[...].astype(dt))
    if cfg.patch_bias:
      x = x + self.embedding.bias[...].astype(dt)
    x = x.reshape(b, gh * gw, cfg.width)
    pos = self.pos_embedding[...].astype(dt)
    prefix = []
    if cfg.class_token:
      cls = jnp.broadcast_to(self.cls[...].astype(dt), (b, 1, cfg.width))
      if cfg.cls_posemb:
        cls, pos = cls + pos[:, :1], pos[:, 1:]
      prefix.append(cls)
    x = x + pos
    if cfg.num_registers:
      prefix.append(jnp.broadcast_to(self.reg[...].astype(dt), (b, cfg.num_registers, cfg.width)))
    x = jnp.concatenate(prefix + [x], axis=1) if prefix else x
    if cfg.pre_norm:
      x = self.pre_norm(x)
    return constrain(x, ("act_batch", "act_length", "act_embed"))

  def hidden_states(self, images: jax.Array, upto: int | None = None) -> list[jax.Array]:
    """HF-style ``hidden_states`` list ``[embeddings, block_0 out, ...]``, stopping at ``upto``."""
    upto = self.cfg.depth if upto is None else upto
    states = [self.embed(images)]
    for i in range(upto):
      states.append(self.Transformer.block(i)(states[-1]))
    return states

  def pool(self, last: jax.Array, encoded: jax.Array) -> jax.Array | None:
    cfg = self.cfg
    if cfg.pool_type == "map":
      return self.MAPHead_0(last)
    if cfg.pool_type == "tok":
      return last[:, 0] if cfg.final_norm == "all" else self.Transformer.encoder_norm(encoded[:, 0])
    if cfg.pool_type == "gap":
      return jnp.mean(last[:, cfg.num_prefix:], axis=1)
    return None

  def __call__(self, images: jax.Array, *, return_hidden_states: bool = False) -> dict[str, Any]:
    """dict(last_hidden_state (B,T,D), pooled (B,D) or None, logits when num_classes[, hidden_states])."""
    cfg = self.cfg
    states = self.hidden_states(images)
    encoded = states[-1]
    last = self.Transformer.encoder_norm(encoded) if cfg.final_norm == "all" else encoded
    pooled = self.pool(last, encoded)
    out = {"last_hidden_state": last, "pooled": pooled}
    if cfg.num_classes:
      out["logits"] = self.head(last if cfg.pool_type == "none" else pooled)
    if return_hidden_states:
      out["hidden_states"] = states
    return out

  def features(self, images: jax.Array, layer: int = -1, drop_prefix: bool = True,
               num_tokens: int | None = 576) -> jax.Array:
    """Visual tokens for the MLLM projector, (B, N, width).

    ``layer=-1``: ``last_hidden_state`` (final norm applied as HF does); any other int indexes
    ``hidden_states`` Python-style (0 = embeddings, -2 = LLaVA's penultimate layer). Only the
    blocks needed are run. ``drop_prefix`` drops class/register tokens; ``num_tokens`` resizes
    the patch grid bilinearly to sqrt(N) x sqrt(N) (None keeps it; needs drop_prefix).
    """
    cfg = self.cfg
    if layer == -1:
      states = self.hidden_states(images)
      x = self.Transformer.encoder_norm(states[-1]) if cfg.final_norm == "all" else states[-1]
    else:
      index = layer if layer >= 0 else cfg.depth + 1 + layer
      if not 0 <= index <= cfg.depth:
        raise ValueError(f"layer={layer} is outside the {cfg.depth + 1} hidden states")
      x = self.hidden_states(images, upto=index)[index]
    if drop_prefix:
      x = x[:, cfg.num_prefix:]
    if num_tokens is not None:
      if not drop_prefix and cfg.num_prefix:
        raise ValueError("num_tokens resizing needs drop_prefix=True")
      x = tokens_to_n(x, num_tokens)
    return constrain(x, ("act_batch", "act_length", "act_embed"))


# -------------------------------------------------------------------------- pure-dict helpers


def logical_axes(cfg: ViTConfig) -> Params:
  return pure.logical_axes(ViT, cfg)


def abstract_params(cfg: ViTConfig) -> Params:
  return pure.abstract_params(ViT, cfg)


def init_params(cfg: ViTConfig, seed: int = 42) -> Params:
  return pure.init_params(ViT, cfg, seed)


def bind(cfg: ViTConfig, params: Params) -> ViT:
  return pure.bind(ViT, cfg, params)


def apply(cfg: ViTConfig, params: Params, images, **kw) -> dict[str, Any]:
  return bind(cfg, params)(images, **kw)


def features(cfg: ViTConfig, params: Params, images, layer: int = -1, drop_prefix: bool = True,
             num_tokens: int | None = 576) -> jax.Array:
  return bind(cfg, params).features(images, layer, drop_prefix, num_tokens)


def with_image_size(cfg: ViTConfig, params: Params, image_size: int) -> tuple[ViTConfig, Params]:
  """Config and params for a new input resolution (pos_embedding resampled bilinearly)."""
  new = dataclasses.replace(cfg, image_size=image_size)
  prefix = int(cfg.class_token and cfg.cls_posemb)
  params = dict(params, pos_embedding=resample_posemb(params["pos_embedding"], new.grid, prefix))
  return new, params
