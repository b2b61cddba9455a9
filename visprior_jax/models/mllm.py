"""The multimodal LLM: vision features -> projector -> placed at ``<image>`` slots -> Llama.

The token sequence holds ``image_token_id`` placeholders, ``tokens_per_image`` of them for each
image (the data pipeline expands every ``<image>`` tag). The vision encoder's patch features
(B, images, tokens_per_image, vision_dim) go through the projector (PAPER.md 3.1: a 2-layer MLP with
GELU; ``linear`` as in PaliGemma), and the k-th placeholder of a row receives the k-th projected
feature of that row, in order. Text-only rows simply have no placeholders. Everything after the
embedding lookup is the unchanged Llama decoder (``Llama.from_embeddings``).

Parameters (pure-dict paths): ``projector/fc1/{kernel,bias}`` (and ``fc2`` for the MLP) and
``llm/...`` exactly as a Llama checkpoint, so a pre-training export loads into ``llm`` unchanged.
The vision encoder is frozen and kept outside this module; its features are an input.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from visprior_jax.models.axes import constrain
from visprior_jax.models.llama import Llama, LlamaConfig

PROJECTORS = ("mlp2x_gelu", "linear")


@dataclasses.dataclass(frozen=True)
class MLLMConfig:
  llm: LlamaConfig
  vision_dim: int
  tokens_per_image: int = 576
  image_token_id: int = 0     # a reserved id; its embedding row is never read for image slots
  projector: str = "mlp2x_gelu"

  def __post_init__(self):
    if self.projector not in PROJECTORS:
      raise ValueError(f"projector={self.projector!r} is not one of {PROJECTORS}")
    if not 0 <= self.image_token_id < self.llm.vocab_size:
      raise ValueError(f"image_token_id={self.image_token_id} is outside the vocab of {self.llm.vocab_size}")


def _dense(rngs, din, dout, axes, dtype):
  layer = nnx.Module()
  std = din ** -0.5
  layer.kernel = nnx.Param((std * jax.random.normal(rngs.params(), (din, dout))).astype(dtype), logical_axes=axes)
  layer.bias = nnx.Param(jnp.zeros((dout,), dtype), logical_axes=(axes[1],))
  return layer


class Projector(nnx.Module):

  def __init__(self, cfg: MLLMConfig, rngs: nnx.Rngs):
    d, pd = cfg.llm.embed_dim, cfg.llm.param_dtype
    self.kind, self.dtype = cfg.projector, jnp.dtype(cfg.llm.dtype)
    self.fc1 = _dense(rngs, cfg.vision_dim, d, ("vision_embed", "mlp"), pd)
    if cfg.projector == "mlp2x_gelu":
      self.fc2 = _dense(rngs, d, d, ("mlp", "embed"), pd)

  def __call__(self, x):
    dt = self.dtype
    x = x.astype(dt) @ self.fc1.kernel[...].astype(dt) + self.fc1.bias[...].astype(dt)
    if self.kind == "mlp2x_gelu":
      x = jax.nn.gelu(x, approximate=False)
      x = x @ self.fc2.kernel[...].astype(dt) + self.fc2.bias[...].astype(dt)
    return x


def merge_image_features(text_embeds, tokens, image_embeds, image_token_id: int):
  """Puts row b's k-th image embedding at row b's k-th ``image_token_id`` position.

  text_embeds (B,T,D), tokens (B,T), image_embeds (B,M,D) with M = images x tokens_per_image.
  Placeholders beyond M (never produced by the data pipeline) would read the last feature.
  """
  is_image = tokens == image_token_id
  order = jnp.clip(jnp.cumsum(is_image, axis=1) - 1, 0, image_embeds.shape[1] - 1)
  gathered = jnp.take_along_axis(image_embeds, order[..., None], axis=1)
  return jnp.where(is_image[..., None], gathered.astype(text_embeds.dtype), text_embeds)


class MultimodalLlama(nnx.Module):
  """``model(tokens, image_features, positions=None, segment_ids=None) -> logits``."""

  def __init__(self, cfg: MLLMConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.projector = Projector(cfg, rngs)
    self.llm = Llama(cfg.llm, rngs=rngs)

  def __call__(self, tokens, image_features=None, positions=None, segment_ids=None):
    x = self.llm.embed_tokens(tokens)
    if image_features is not None:
      b, n_img, n_tok, dv = image_features.shape
      feats = jax.lax.stop_gradient(image_features).reshape(b, n_img * n_tok, dv)
      image_embeds = constrain(self.projector(feats), ("act_batch", "act_length", "act_embed"))
      x = merge_image_features(x, tokens, image_embeds, self.cfg.image_token_id)
    return self.llm.from_embeddings(x, positions, segment_ids)
