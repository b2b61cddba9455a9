"""Batched decoding with a KV cache: left-padded prompts, one prefill, then decode steps.

``generate(cfg, params, prompts, max_new_tokens)`` returns, per prompt, the generated ids only:
the prompt is not repeated and the stop token that ended a row is **not** included. Greedy when
``temperature == 0`` (the paper's setting); otherwise sampling with temperature and top-p
(nucleus), reproducible for a given ``seed`` and batch. The whole loop (prefill and a
``jax.lax.while_loop`` of decode steps that ends once every row has stopped) runs under one jit.

``cfg`` is a ``LlamaConfig`` with Llama params, or an ``MLLMConfig`` with multimodal params; then
``image_features`` (B, images, tokens_per_image, vision_dim) fill the prompts' ``<image>`` slots
(prompt ids equal to ``image_token_id``) exactly as in training.

Sharded like training: pass ``rules`` (a ``parallel.rules.Rules`` on the mesh the params were
placed with, e.g. by :func:`shard_params`); the batch and the KV cache are split over the batch
axes (``act_batch``: data, fsdp), heads over ``tensor``, through the same logical-axis table as
training. Rows are padded with a copy of the first prompt up to a multiple of the data-parallel
size (their outputs are dropped).
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from visprior_jax.models import axes
from visprior_jax.models import functional as llama_fn
from visprior_jax.models import mllm as mllm_lib
from visprior_jax.models import pure
from visprior_jax.models.llama import KVCache, init_cache


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int = 0, pad_multiple: int = 1):
  """-> tokens (B,P) int32, valid (B,P) bool, positions (B,P) counted from each first real token.
  P is the longest prompt rounded up to ``pad_multiple`` (fewer shapes to compile)."""
  if not prompts or any(len(p) == 0 for p in prompts):
    raise ValueError("every prompt needs at least one token")
  width = -(-max(len(p) for p in prompts) // pad_multiple) * pad_multiple
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


def _constrain_cache(cache: KVCache) -> KVCache:
  kv = ("layers", "act_batch", None, "act_kv_heads", None)
  return KVCache(axes.constrain(cache.k, kv), axes.constrain(cache.v, kv),
                 axes.constrain(cache.valid, ("act_batch", None)), cache.index,
                 axes.constrain(cache.lengths, ("act_batch",)))


@functools.partial(jax.jit, static_argnums=(0, 6, 7, 8, 9, 11))
def _generate(cfg, params, tokens, valid, positions, image_features, max_new_tokens: int,
              stop_tokens: tuple, temperature: float, top_p: float, key, rules=None):
  with axes.use_resolver(rules.activation_resolver() if rules is not None else None):
    return _generate_body(cfg, params, tokens, valid, positions, image_features, max_new_tokens,
                          stop_tokens, temperature, top_p, key)


def _generate_body(cfg, params, tokens, valid, positions, image_features, max_new_tokens, stop_tokens,
                   temperature, top_p, key):
  llm_cfg = cfg.llm if isinstance(cfg, mllm_lib.MLLMConfig) else cfg
  batch, width = tokens.shape
  # the body also decodes after its last token (its logits unused), filling the final slot
  cache = _constrain_cache(init_cache(llm_cfg, batch, width + max_new_tokens))
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
    cache = _constrain_cache(cache)
    return dict(step=s["step"] + 1, logits=logits, cache=cache, key=key, position=s["position"] + 1,
                done=s["done"] | stopped, out=out, length=length)

  state = jax.lax.while_loop(cond, body, state)
  return state["out"], state["length"]


def shard_params(params, logical_axes, rules):
  """Places a params tree on ``rules.mesh`` by the training rules (``logical_axes``: the task's)."""
  from visprior_jax.parallel.rules import param_shardings
  return jax.device_put(params, param_shardings(rules, params, logical_axes))


def generate(cfg, params, prompts: Sequence[Sequence[int]], max_new_tokens: int, *,
             stop_tokens: Sequence[int] = (), temperature: float = 0.0, top_p: float = 1.0,
             seed: int = 0, pad_id: int = 0, image_features=None, rules=None,
             pad_multiple: int = 1) -> list[list[int]]:
  """Generated ids per prompt (without the prompt and without the stop token); see the module doc."""
  if temperature < 0 or not 0 < top_p <= 1:
    raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
  if image_features is not None and not isinstance(cfg, mllm_lib.MLLMConfig):
    raise ValueError("image_features need an MLLMConfig")
  if max_new_tokens <= 0:
    return [[] for _ in prompts]
  n = len(prompts)
  if rules is not None:
    extra = -n % rules.data_parallel_size()
    prompts = list(prompts) + [prompts[0]] * extra
    if image_features is not None and extra:
      image_features = np.concatenate([image_features, np.repeat(image_features[:1], extra, 0)])
  tokens, valid, positions = left_pad(prompts, pad_id, pad_multiple)
  args = (tokens, valid, positions, image_features)
  if rules is not None:
    args = tuple(None if a is None else jax.device_put(a, rules.batch_sharding(np.ndim(a))) for a in args)
  call = functools.partial(_generate, cfg, params, *args, int(max_new_tokens), tuple(int(t) for t in stop_tokens),
                           float(temperature), float(top_p), jax.random.PRNGKey(seed), rules)
  if rules is not None:
    with jax.set_mesh(rules.mesh):
      out, length = call()
  else:
    out, length = call()
  out, length = np.asarray(out)[:n], np.asarray(length)[:n]
  return [out[row, :length[row]].tolist() for row in range(n)]
