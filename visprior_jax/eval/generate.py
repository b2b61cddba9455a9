"""Batched decoding with a KV cache: left-padded prompts, one prefill, then decode steps.

``generate(cfg, params, prompts, max_new_tokens)`` returns, per prompt, the generated ids only:
the prompt is not repeated and the stop token that ended a row is **not** included. Greedy when
``temperature == 0`` (the paper's setting); otherwise sampling with temperature and top-p
(nucleus), reproducible for a given ``seed`` and batch. The whole loop (prefill and a
``jax.lax.while_loop`` of decode steps that ends once every row has stopped) runs under one jit.

``cfg`` is a ``LlamaConfig`` with Llama params, or an ``MLLMConfig`` with multimodal params; then
``image_features`` (B, images, tokens_per_image, vision_dim) fill the prompts' ``<image>`` slots
(prompt ids equal to ``image_token_id``) exactly as in training.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from visprior_jax.models import functional as llama_fn
from visprior_jax.models import mllm as mllm_lib
from visprior_jax.models import pure
from visprior_jax.models.llama import init_cache


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int = 0):
  """-> tokens (B,P) int32, valid (B,P) bool, positions (B,P) counted from each first real token."""
  if not prompts or any(len(p) == 0 for p in prompts):
    raise ValueError("every prompt needs at least one token")
  width = max(len(p) for p in prompts)
  tokens = np.full((len(prompts), width), pad_id, np.int32)
  valid = np.zeros((len(prompts), width), bool)
  for row, prompt in enumerate(prompts):
    tokens[row, width - len(prompt):] = prompt
    valid[row, width - len(prompt):] = True
  positions = np.maximum(np.cumsum(valid, axis=1) - 1, 0).astype(np.int32)
  return tokens, valid, positions


def sample_token(logits, key, temperature: float, top_p: float):
  """(B,V) float32 logits -> (B,) ids: argmax when temperature == 0, else nucleus sampling."""
  if temperature == 0.0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  logits = logits.astype(jnp.float32) / temperature
  if top_p < 1.0:
    sorted_logits = jnp.sort(logits, axis=-1)[:, ::-1]
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs            # mass of the strictly better tokens
    kept = jnp.where(before < top_p, sorted_logits, jnp.inf)
    threshold = jnp.min(kept, axis=-1, keepdims=True)      # the smallest logit still in the nucleus
    logits = jnp.where(logits >= threshold, logits, -jnp.inf)
  return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def _prefill(cfg, params, tokens, valid, positions, cache, image_features):
  if isinstance(cfg, mllm_lib.MLLMConfig):
    model = pure.bind(mllm_lib.MultimodalLlama, cfg, params)
    x = model.llm.embed_tokens(tokens)
    if image_features is not None:
      b, n_img, n_tok, dv = image_features.shape
      image_embeds = model.projector(image_features.reshape(b, n_img * n_tok, dv))
      # padding never counts as an image slot, even when pad_id == image_token_id
      slots = jnp.where(valid, tokens, cfg.image_token_id + 1)
      x = mllm_lib.merge_image_features(x, slots, image_embeds, cfg.image_token_id)
    return model.llm.prefill(x, positions, valid, cache), model.llm
  model = llama_fn.bind(cfg, params)
  return model.prefill(tokens, positions, valid, cache), model


@functools.partial(jax.jit, static_argnums=(0, 6, 7, 8, 9))
def _generate(cfg, params, tokens, valid, positions, image_features, max_new_tokens: int,
              stop_tokens: tuple, temperature: float, top_p: float, key):
  llm_cfg = cfg.llm if isinstance(cfg, mllm_lib.MLLMConfig) else cfg
  batch, width = tokens.shape
  # the body also decodes after its last token (its logits unused), filling the final slot
  cache = init_cache(llm_cfg, batch, width + max_new_tokens)
  (logits, cache), model = _prefill(cfg, params, tokens, valid, positions, cache, image_features)
  stops = jnp.asarray(stop_tokens if stop_tokens else (-1,), jnp.int32)
  state = dict(step=jnp.zeros((), jnp.int32), logits=logits, cache=cache, key=key,
               position=positions[:, -1] + 1, done=jnp.zeros((batch,), bool),
               out=jnp.zeros((batch, max_new_tokens), jnp.int32), length=jnp.zeros((batch,), jnp.int32))

  def cond(s):
    return (s["step"] < max_new_tokens) & ~jnp.all(s["done"])

  def body(s):
    key, sub = jax.random.split(s["key"])
    token = sample_token(s["logits"], sub, temperature, top_p)
    stopped = jnp.isin(token, stops)
    out = s["out"].at[:, s["step"]].set(jnp.where(s["done"], 0, token))
    length = s["length"] + (~s["done"] & ~stopped)
    logits, cache = model.decode_step(token[:, None], s["position"][:, None], s["cache"])
    return dict(step=s["step"] + 1, logits=logits, cache=cache, key=key, position=s["position"] + 1,
                done=s["done"] | stopped, out=out, length=length)

  state = jax.lax.while_loop(cond, body, state)
  return state["out"], state["length"]


def generate(cfg, params, prompts: Sequence[Sequence[int]], max_new_tokens: int, *,
             stop_tokens: Sequence[int] = (), temperature: float = 0.0, top_p: float = 1.0,
             seed: int = 0, pad_id: int = 0, image_features=None) -> list[list[int]]:
  """Generated ids per prompt (without the prompt and without the stop token); see the module doc."""
  if temperature < 0 or not 0 < top_p <= 1:
    raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
  if image_features is not None and not isinstance(cfg, mllm_lib.MLLMConfig):
    raise ValueError("image_features need an MLLMConfig")
  if max_new_tokens <= 0:
    return [[] for _ in prompts]
  tokens, valid, positions = left_pad(prompts, pad_id)
  out, length = _generate(cfg, params, tokens, valid, positions, image_features, int(max_new_tokens),
                          tuple(int(t) for t in stop_tokens), float(temperature), float(top_p),
                          jax.random.PRNGKey(seed))
  out, length = np.asarray(out), np.asarray(length)
  return [out[row, :length[row]].tolist() for row in range(len(prompts))]
