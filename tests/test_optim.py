"""Schedule values, weight-decay and freeze masks."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from visprior_jax.train import optim


def _cfg(**kw):
  base = dict(lr=3e-4, warmup_steps=1024, schedule="cosine", min_lr_ratio=0.1, b1=0.9, b2=0.95, eps=1e-8,
              weight_decay=0.1, clip_norm=1.0, trainable=".*")
  return ml_collections.ConfigDict({**base, **kw})


def test_paper_schedule_warms_up_then_cosine_decays():
  s = optim.schedule(_cfg(), total_steps=10000)
  assert float(s(0)) == 0.0
  np.testing.assert_allclose(float(s(512)), 1.5e-4, rtol=1e-6)
  np.testing.assert_allclose(float(s(1024)), 3e-4, rtol=1e-6)
  mid = 1024 + (10000 - 1024) // 2
  np.testing.assert_allclose(float(s(mid)), 3e-5 + 0.5 * (3e-4 - 3e-5), rtol=1e-3)
  np.testing.assert_allclose(float(s(10000)), 3e-5, rtol=1e-6)
  with pytest.raises(ValueError, match="not one of"):
    optim.schedule(_cfg(schedule="exp"), 10)


def _params():
  return {"embed": {"embedding": jnp.ones((4, 3))}, "final_norm": {"scale": jnp.ones((3,))},
          "blocks": {"attn": {"wq": jnp.ones((3, 3))}}}


def test_norm_scales_get_no_weight_decay():
  params = _params()
  tx = optim.make_optimizer(_cfg(lr=1.0, warmup_steps=0, schedule="constant", weight_decay=0.5, clip_norm=0.0),
                            params, 10)
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zeros, tx.init(params), params)
  assert float(jnp.abs(updates["final_norm"]["scale"]).max()) == 0.0
  assert float(updates["blocks"]["attn"]["wq"][0, 0]) == pytest.approx(-0.5)


def test_frozen_parameters_do_not_move():
  params = _params()
  tx = optim.make_optimizer(_cfg(trainable="blocks/.*", warmup_steps=0, schedule="constant"), params, 10)
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  new = optax.apply_updates(params, updates)
  np.testing.assert_array_equal(new["embed"]["embedding"], params["embed"]["embedding"])
  assert float(jnp.abs(new["blocks"]["attn"]["wq"] - 1).max()) > 0
  with pytest.raises(ValueError, match="matches no parameter"):
    optim.make_optimizer(_cfg(trainable="nothing_here"), params, 10)
