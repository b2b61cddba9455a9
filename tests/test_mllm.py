"""The multimodal LLM: projector, placeholder merging, and that the LLM part is the Llama itself."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from visprior_jax.models import functional, presets
from visprior_jax.models.mllm import MLLMConfig, MultimodalLlama, merge_image_features

IMG = 5  # image_token_id


def _cfg(projector="mlp2x_gelu"):
  return MLLMConfig(llm=presets.get("llama3_tiny"), vision_dim=24, tokens_per_image=4, image_token_id=IMG,
                    projector=projector)


def test_merge_puts_the_kth_feature_at_the_kth_placeholder():
  tokens = jnp.array([[1, IMG, IMG, 2, IMG, IMG, 3], [1, 2, 3, 4, 6, 7, 8]])
  text = jnp.zeros((2, 7, 3))
  feats = jnp.arange(2 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 3) + 1
  out = merge_image_features(text, tokens, feats, IMG)
  np.testing.assert_array_equal(out[0, [1, 2, 4, 5]], feats[0])
  np.testing.assert_array_equal(out[0, [0, 3, 6]], 0)
  np.testing.assert_array_equal(out[1], 0)   # a text-only row is untouched


def test_mllm_is_the_llama_on_merged_embeddings():
  cfg = _cfg()
  model = MultimodalLlama(cfg, rngs=nnx.Rngs(0))
  tokens = jnp.array([[1, IMG, IMG, IMG, IMG, 9, 10, 11], [1, 2, 3, 4, 6, 7, 8, 12]])
  feats = jax.random.normal(jax.random.key(1), (2, 1, 4, 24))
  logits = model(tokens, feats)
  manual = merge_image_features(model.llm.embed_tokens(tokens), tokens,
                                model.projector(feats.reshape(2, 4, 24)), IMG)
  np.testing.assert_allclose(logits, model.llm.from_embeddings(manual), atol=1e-6)
  # The text-only row is exactly what the plain Llama gives with the same weights.
  llm_params = nnx.to_pure_dict(nnx.state(model.llm))
  plain = functional.apply(cfg.llm, llm_params, tokens[1:])
  np.testing.assert_allclose(logits[1:], plain, atol=1e-6)
  # The image row depends on the features.
  assert not np.allclose(model(tokens, feats * 2)[0], logits[0])


def test_llm_subtree_is_a_llama_checkpoint_and_projector_variants():
  cfg = _cfg("linear")
  model = MultimodalLlama(cfg, rngs=nnx.Rngs(0))
  state = nnx.to_pure_dict(nnx.state(model))
  llama = functional.abstract_params(cfg.llm)
  assert jax.tree.map(lambda a: a.shape, state["llm"]) == jax.tree.map(lambda a: a.shape, llama)
  assert set(state["projector"]) == {"fc1"} and state["projector"]["fc1"]["kernel"].shape == (24, 64)
  with pytest.raises(ValueError, match="projector"):
    MLLMConfig(llm=cfg.llm, vision_dim=24, projector="qformer")


def test_gradients_reach_the_projector_but_not_the_frozen_features():
  cfg = _cfg()
  model = MultimodalLlama(cfg, rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model)
  tokens = jnp.array([[1, IMG, IMG, IMG, IMG, 9, 10, 11]])
  feats = jax.random.normal(jax.random.key(1), (1, 1, 4, 24))

  def loss(params, feats):
    return nnx.merge(graphdef, params)(tokens, feats)[0, -1].sum()

  g_params, g_feats = jax.grad(loss, argnums=(0, 1))(params, feats)
  assert float(jnp.abs(g_params["projector"]["fc1"]["kernel"][...]).max()) > 0
  assert float(jnp.abs(g_feats).max()) == 0.0


def test_several_images_per_sample_fill_their_runs_in_order():
  """Two images of 4 tokens: the first run of placeholders gets image 0, the second image 1."""
  from visprior_jax.models import vit
  from visprior_jax.train.tasks import MultimodalModel
  vcfg = vit.ViTConfig(width=24, depth=1, mlp_dim=32, num_heads=2, patch_size=8, image_size=16, pool_type="none")
  task = MultimodalModel(_cfg(), vcfg)
  params = task.init_params(0)
  images = jax.random.uniform(jax.random.key(2), (1, 2, 16, 16, 3))
  feats = task.image_features(params["vision"], images)
  assert feats.shape == (1, 2, 4, 24)
  np.testing.assert_allclose(feats[0, 1], vit.features(vcfg, params["vision"], images[:, 1], num_tokens=4)[0],
                             atol=1e-6)
  tokens = jnp.array([[1, IMG, IMG, IMG, IMG, 7, 8, IMG, IMG, IMG, IMG, 9]])
  batch = dict(inputs=tokens, images=images, positions=jnp.arange(12)[None], segment_ids=jnp.ones((1, 12), jnp.int32))
  logits = task.logits(params, batch)
  swapped = task.logits(params, dict(batch, images=images[:, ::-1]))
  assert not np.allclose(logits[0, 5], swapped[0, 5])   # order matters: image 0 feeds the first run
  flat = feats.reshape(1, 8, 24)   # what the model projects: image 0's tokens, then image 1's
  merged = merge_image_features(jnp.zeros((1, 12, 24)), tokens, flat, IMG)
  np.testing.assert_array_equal(merged[0, 1:5], feats[0, 0])
  np.testing.assert_array_equal(merged[0, 7:11], feats[0, 1])
