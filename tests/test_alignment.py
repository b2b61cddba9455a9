"""Representation alignment (visprior_jax.eval.alignment): the mutual-kNN score on hand-computed and
limiting cases, the layer-pair max, and per-layer features of a tiny Llama and tiny ViTs."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visprior_jax.data.tokenizers import ByteTokenizer
from visprior_jax.eval import alignment as A
from visprior_jax.models import functional, presets, vit

TOK = ByteTokenizer()


def _circle(degrees):
  t = np.deg2rad(np.asarray(degrees, np.float64))
  return np.stack([np.cos(t), np.sin(t)], axis=1)


def test_mutual_knn_hand_computed():
  # Unit vectors: cosine similarity decreases with the angle between them (all gaps < 180 degrees).
  a = _circle([0, 10, 30, 70, 150])
  b = _circle([0, 15, 100, 60, 170]) * np.array([[1.0], [3.0], [0.5], [2.0], [7.0]])   # row norms do not matter
  # k=1: NN_a = [1, 0, 1, 2, 3], NN_b = [1, 0, 3, 2, 2] -> items 0, 1, 3 agree: 3/5.
  np.testing.assert_array_equal(A.knn_indices(a, 1)[:, 0], [1, 0, 1, 2, 3])
  np.testing.assert_array_equal(A.knn_indices(b, 1)[:, 0], [1, 0, 3, 2, 2])
  assert A.mutual_knn(a, b, k=1) == pytest.approx(0.6, abs=1e-12)
  # k=2: NN_a = {1,2} {0,2} {0,1} {1,2} {2,3}; NN_b = {1,3} {0,3} {3,4} {1,2} {2,3};
  # overlaps 1, 1, 0, 2, 2 -> (6 / 2) / 5.
  assert A.mutual_knn(a, b, k=2) == pytest.approx(0.6, abs=1e-12)
  assert A.mutual_knn(a, a, k=4) == 1.0             # k = N - 1: every other item is a neighbour


def test_identical_rotated_and_scaled_features_score_one():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(300, 32))
  assert A.mutual_knn(x, x, k=20) == 1.0
  q, _ = np.linalg.qr(rng.normal(size=(32, 32)))
  assert A.mutual_knn(x, 5.0 * x @ q, k=20) == 1.0
  # Embedding into a wider space (orthonormal columns) with per-row scales, as jax arrays.
  wide, _ = np.linalg.qr(rng.normal(size=(48, 32)))
  scales = rng.uniform(0.1, 10.0, size=(300, 1))
  assert A.mutual_knn(jnp.asarray(x, jnp.float32), (scales * x) @ wide.T, k=20) == 1.0


def test_independent_features_score_chance():
  # Independent spaces: NN_b(i) is a random 20-subset of the other 999 items given NN_a(i), so
  # E|overlap| = 20 * 20 / 999 and E[score] = 20 / 999 = 0.02002. The per-item score has standard
  # deviation ~ sqrt(20 * 0.02 * 0.98) / 20 = 0.031, so the mean over 1000 items ~ 0.001; +-0.005 is
  # five standard deviations (the seed is fixed, so the test is deterministic anyway).
  rng = np.random.default_rng(1)
  score = A.mutual_knn(rng.normal(size=(1000, 64)), rng.normal(size=(1000, 48)), k=20)
  assert abs(score - 20 / 999) < 0.005, score


def test_k_and_shape_validation():
  x = np.zeros((5, 3))
  for k in (0, 5, 6):
    with pytest.raises(ValueError, match="1 <= k < N"):
      A.mutual_knn(x, x, k=k)
  with pytest.raises(ValueError, match="same N"):
    A.mutual_knn(np.zeros((5, 3)), np.zeros((6, 3)), k=2)
  with pytest.raises(ValueError, match="same N"):
    A.layerwise_mutual_knn([np.zeros((5, 3))], [np.zeros((4, 3))], k=2)


def test_layerwise_max_picks_the_aligned_pair():
  rng = np.random.default_rng(2)
  n = 200
  shared = rng.normal(size=(n, 16))
  q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
  layers_a = np.stack([rng.normal(size=(n, 16)), shared, rng.normal(size=(n, 16))])
  layers_b = [rng.normal(size=(n, 24)), rng.normal(size=(n, 24)),
              np.concatenate([shared @ q, np.zeros((n, 8))], axis=1), rng.normal(size=(n, 24))]
  out = A.layerwise_mutual_knn(layers_a, layers_b, k=10)
  assert out["best"] == (1, 2) and out["score"] == 1.0
  assert out["matrix"].shape == (3, 4)
  assert out["matrix"][1, 2] == 1.0 and np.all(np.delete(out["matrix"].ravel(), 1 * 4 + 2) < 0.2)
  np.testing.assert_allclose(out["matrix"][0, 0], A.mutual_knn(layers_a[0], layers_b[0], k=10))
  assert A.alignment_score(layers_a, layers_b, k=10)["best"] == (1, 2)


# ------------------------------------------------------------------------------------ LLM side


@functools.lru_cache(maxsize=None)
def _llama(init_std=0.02):
  """The tiny preset; init_std=0.2 makes the blocks change the residual stream a lot (states up to ~15,
  so float32 shape-dependent rounding reaches ~2e-5 there); 0.02 (the default) keeps states O(1)."""
  cfg = presets.get("llama3_tiny", init_std=init_std, dtype="float32")
  return cfg, functional.init_params(cfg, seed=3)


CAPTIONS = ["a red bird", "two dogs running on a wide sandy beach at sunset", "x",
            "a very long caption about a castle on a hill, with towers and a moat all around it"]


def test_llm_hidden_states_match_the_model():
  cfg, params = _llama(0.2)
  tokens = jnp.asarray([[TOK.bos_id] + list(b"hello there")], jnp.int32)
  states = A.llm_hidden_states(cfg, params, tokens)
  assert states.shape == (cfg.num_layers + 2, 1, tokens.shape[1], cfg.embed_dim)
  model = functional.bind(cfg, params)
  np.testing.assert_allclose(states[0], model.embed_tokens(tokens), rtol=0, atol=0)
  # The pre-final-norm last layer through the final norm and the head gives apply()'s logits.
  head = params["lm_head"]["kernel"]
  logits = jnp.einsum("btd,dv->btv", model.final_norm(states[cfg.num_layers]), head)
  np.testing.assert_allclose(logits, functional.apply(cfg, params, tokens), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(states[-1], model.final_norm(states[cfg.num_layers]), rtol=1e-6, atol=1e-6)
  # Unrolled layers give the same states.
  unrolled = dataclasses.replace(cfg, scan_layers=False)
  np.testing.assert_allclose(A.llm_hidden_states(unrolled, params, tokens), states, rtol=1e-6, atol=1e-6)


def test_llm_caption_features_shapes_pooling_and_padding():
  cfg, params = _llama()
  feats = A.llm_caption_features(cfg, params, TOK, CAPTIONS, batch_size=3)
  assert feats.shape == (cfg.num_layers + 2, len(CAPTIONS), cfg.embed_dim) and feats.dtype == np.float32
  # Padding: the short caption alone (width 16) == in a batch with longer ones (width 64).
  alone = A.llm_caption_features(cfg, params, TOK, ["x"], batch_size=1)
  np.testing.assert_allclose(alone[:, 0], feats[:, 2], rtol=1e-5, atol=1e-5)
  # The pooled vector is the mean over the caption's tokens (bos fed but not pooled).
  ids = [TOK.bos_id] + TOK.encode(CAPTIONS[1])
  states = A.llm_hidden_states(cfg, params, jnp.asarray([ids], jnp.int32))
  np.testing.assert_allclose(feats[:, 1], np.asarray(states)[:, 0, 1:].mean(axis=1), rtol=1e-5, atol=1e-5)
  # layers= selects entries; max_len truncates (the first max_len - 1 caption bytes after bos).
  sel = A.llm_caption_features(cfg, params, TOK, CAPTIONS[:2], layers=[0, -1], batch_size=2)
  np.testing.assert_allclose(sel, feats[[0, -1], :2], rtol=1e-5, atol=1e-5)
  cut = A.llm_caption_features(cfg, params, TOK, [CAPTIONS[3]], max_len=8, batch_size=1)
  ref = A.llm_caption_features(cfg, params, TOK, [CAPTIONS[3][:7]], batch_size=1)
  np.testing.assert_allclose(cut, ref, rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="no tokens"):
    A.llm_caption_features(cfg, params, TOK, ["ok", ""])
  with pytest.raises(ValueError, match="layers"):
    A.llm_caption_features(cfg, params, TOK, ["ok"], layers="last")


# --------------------------------------------------------------------------------- vision side


@pytest.mark.parametrize("make", [vit.clip_config, vit.siglip_config])
def test_vision_image_features(make):
  cfg = make("mu/8", image_size=16, depth=2)
  params = vit.init_params(cfg, seed=0)
  images = jax.random.normal(jax.random.PRNGKey(0), (5, 16, 16, 3))
  feats = A.vision_image_features(cfg, params, images, batch_size=2)   # 3 batches, the last padded
  assert feats.shape == (cfg.depth + 1, 5, cfg.width)
  states = vit.apply(cfg, params, images, return_hidden_states=True)["hidden_states"]
  if cfg.class_token:
    ref = np.stack([h[:, 0] for h in states])
  else:
    ref = np.stack([np.mean(h, axis=1) for h in states])
  np.testing.assert_allclose(feats, ref, rtol=1e-5, atol=1e-5)
  lang = A.llm_caption_features(*_llama(), TOK, ["a", "b", "c", "d", "e"], batch_size=5)
  out = A.alignment_score(lang, feats, k=2)
  assert out["matrix"].shape == (_llama()[0].num_layers + 2, cfg.depth + 1) and 0.0 <= out["score"] <= 1.0
