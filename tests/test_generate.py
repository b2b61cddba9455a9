"""KV-cache decoding against the training forward: greedy by full recomputation, prefill logits,
stop tokens, sampling determinism, and the multimodal pass-through."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from visprior_jax.eval.generate import generate, left_pad
from visprior_jax.models import functional, presets, pure
from visprior_jax.models.llama import init_cache
from visprior_jax.models.mllm import MLLMConfig, MultimodalLlama

PROMPTS = [[5, 17, 42, 99, 3, 250, 7], [11, 300], [8, 8, 1, 400, 77]]   # different lengths: left padding
MAX_NEW = 6


@functools.lru_cache(maxsize=None)
def _setup(scan_layers: bool):
  cfg = presets.get("llama3_tiny", scan_layers=scan_layers, init_std=0.2)  # GQA: 4 heads, 2 kv heads
  return cfg, functional.init_params(cfg, seed=3)


def _last_logits(cfg, params, seq):
  """The training forward on one unpadded row (right-padded to a fixed width: causal, so harmless)."""
  width = 32
  tokens = jnp.zeros((1, width), jnp.int32).at[0, :len(seq)].set(jnp.asarray(seq))
  logits = jax.jit(functional.apply, static_argnums=0)(cfg, params, tokens)
  return logits[0, len(seq) - 1]


def _greedy_by_recompute(cfg, params, prompt, n):
  seq = list(prompt)
  for _ in range(n):
    seq.append(int(jnp.argmax(_last_logits(cfg, params, seq))))
  return seq[len(prompt):]


@pytest.mark.parametrize("scan_layers", [True, False])
def test_prefill_logits_equal_the_full_forward(scan_layers):
  cfg, params = _setup(scan_layers)
  tokens, valid, positions = left_pad(PROMPTS)
  cache = init_cache(cfg, len(PROMPTS), tokens.shape[1] + 4)
  logits, cache = functional.prefill(cfg, params, tokens, positions, valid, cache)
  for row, prompt in enumerate(PROMPTS):
    np.testing.assert_allclose(logits[row], _last_logits(cfg, params, prompt), atol=1e-5, rtol=0)
  np.testing.assert_array_equal(cache.lengths, [len(p) for p in PROMPTS])
  assert int(cache.index) == tokens.shape[1]
  assert cache.k.shape == (cfg.num_layers, 3, tokens.shape[1] + 4, cfg.num_kv_heads, cfg.head_dim)


@pytest.mark.parametrize("scan_layers", [True, False])
def test_greedy_with_cache_equals_greedy_by_recomputation(scan_layers):
  cfg, params = _setup(scan_layers)
  out = generate(cfg, params, PROMPTS, MAX_NEW)
  expected = [_greedy_by_recompute(cfg, params, p, MAX_NEW) for p in PROMPTS]
  assert out == expected
  assert len({tuple(o) for o in out}) > 1   # the rows really differ


def test_decode_step_logits_equal_the_full_forward():
  cfg, params = _setup(True)
  tokens, valid, positions = left_pad(PROMPTS)
  cache = init_cache(cfg, len(PROMPTS), tokens.shape[1] + 2)
  _, cache = functional.prefill(cfg, params, tokens, positions, valid, cache)
  new = jnp.array([[9], [10], [11]])
  logits, cache = functional.decode_step(cfg, params, new, cache.lengths[:, None], cache)
  for row, prompt in enumerate(PROMPTS):
    np.testing.assert_allclose(logits[row], _last_logits(cfg, params, prompt + [9 + row]), atol=1e-5, rtol=0)


def test_stop_tokens_end_rows_independently():
  cfg, params = _setup(True)
  full = generate(cfg, params, PROMPTS, MAX_NEW)
  stop = full[0][2]   # row 0 stops after two tokens; other rows stop wherever this id shows up
  out = generate(cfg, params, PROMPTS, MAX_NEW, stop_tokens=(stop, 10**6))
  expected = [row[:row.index(stop)] if stop in row else row for row in full]
  assert out == expected
  assert len(out[0]) == 2 and any(len(o) != 2 for o in out)
  assert generate(cfg, params, PROMPTS, MAX_NEW, stop_tokens=(full[0][0],))[0] == []


def test_sampling_is_seeded_and_low_temperature_or_tiny_top_p_is_greedy():
  cfg, params = _setup(True)
  greedy = generate(cfg, params, PROMPTS, MAX_NEW)
  a = generate(cfg, params, PROMPTS, MAX_NEW, temperature=1.0, top_p=0.9, seed=7)
  b = generate(cfg, params, PROMPTS, MAX_NEW, temperature=1.0, top_p=0.9, seed=7)
  c = generate(cfg, params, PROMPTS, MAX_NEW, temperature=1.0, top_p=0.9, seed=8)
  assert a == b and a != c and a != greedy
  assert generate(cfg, params, PROMPTS, MAX_NEW, temperature=1e-7, seed=1) == greedy
  assert generate(cfg, params, PROMPTS, MAX_NEW, temperature=1.0, top_p=1e-6, seed=1) == greedy


def test_multimodal_generation_sees_the_images():
  img = 5
  cfg = MLLMConfig(llm=presets.get("llama3_tiny", init_std=0.2), vision_dim=24, tokens_per_image=2,
                   image_token_id=img)
  params = nnx.to_pure_dict(nnx.state(MultimodalLlama(cfg, rngs=nnx.Rngs(0))))
  prompts = [[1, img, img, 9, 10], [1, img, img, 20]]
  feats = 3 * jax.random.normal(jax.random.key(1), (2, 1, 2, 24))
  out = generate(cfg, params, prompts, 4, image_features=feats, pad_id=img)  # padding is never an image slot
  model = pure.bind(MultimodalLlama, cfg, params)
  for row, prompt in enumerate(prompts):
    seq = list(prompt)
    for _ in range(4):
      seq.append(int(jnp.argmax(model(jnp.asarray([seq]), feats[row:row + 1])[0, -1])))
    assert out[row] == seq[len(prompt):]
  assert generate(cfg, params, prompts, 4, image_features=-feats) != out


@pytest.mark.parametrize("mesh", [dict(data=2, fsdp=2, tensor=2), dict(fsdp=4, tensor=2), dict(data=8)])
def test_sharded_decoding_equals_single_device(mesh):
  """Params placed by the training rules, batch and KV cache split over data/fsdp, heads over tensor:
  the same greedy tokens as one device (5 prompts: padded up to the data-parallel size)."""
  from visprior_jax.eval.generate import shard_params
  from visprior_jax.parallel.mesh import make_mesh
  from visprior_jax.parallel.rules import Rules
  cfg, params = _setup(True)
  prompts = PROMPTS + [[9, 9, 9, 2], [1]]
  expected = generate(cfg, params, prompts, MAX_NEW)
  rules = Rules(make_mesh(mesh))
  sharded = shard_params(params, functional.logical_axes(cfg), rules)
  embed = jax.tree.leaves(sharded["embed"])[0]
  assert not embed.sharding.is_fully_replicated or mesh == dict(data=8)
  assert generate(cfg, sharded, prompts, MAX_NEW, rules=rules) == expected
