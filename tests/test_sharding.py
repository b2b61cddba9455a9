"""Sharded training equals one device (DESIGN.md: a second code path), and parameters are really sharded.

The train step is built exactly the way ``train.trainer.train`` builds it (rules, parameter and
optimizer-state shardings, ``make_train_step`` with the activation resolver, ``jax.jit`` with
explicit in/out shardings under ``jax.set_mesh``) and run for 3 steps on several 8-device meshes and
on a 1-device mesh. Losses, gradients and parameters must agree to a relative error of 1e-5 (fp32).
Gradients are compared at the step-3 parameters with a separately jitted ``jax.grad`` of
``summed_loss`` on the same sharded arrays.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from visprior_jax.data.synthetic import MarkovTokens
from visprior_jax.models import axes, functional, presets
from visprior_jax.parallel.mesh import make_mesh
from visprior_jax.parallel.rules import Rules, param_shardings
from visprior_jax.train.optim import make_optimizer, schedule
from visprior_jax.train.tasks import LanguageModel
from visprior_jax.train.step import make_train_step, opt_state_shardings, summed_loss

# num_kv_heads=2 on tensor=4 exercises the rules' "not divisible -> replicated" fallback.
CFG = presets.get("llama3_tiny", num_heads=4, num_kv_heads=2, vocab_size=512, mlp_dim=192, embed_dim=64,
                  head_dim=16, num_layers=2, scan_layers=True)
BATCH, SEQ, STEPS = 8, 32, 3
RTOL = 1e-5

MESHES = {
    "data8": dict(data=8),
    "fsdp8": dict(fsdp=8),
    "data2_fsdp2_tensor2": dict(data=2, fsdp=2, tensor=2),
    "fsdp2_tensor4": dict(fsdp=2, tensor=4),
}


def _optim_config():
  # The paper's peak LR, constant and without warm-up, so all 3 steps move the parameters.
  return ml_collections.ConfigDict(dict(lr=3e-4, warmup_steps=0, schedule="constant", min_lr_ratio=0.1, b1=0.9,
                                        b2=0.95, eps=1e-8, weight_decay=0.1, clip_norm=1.0, trainable=".*"))


def _batches():
  # Short documents: each row packs several, so segment masks and position restarts are exercised.
  source = MarkovTokens(CFG.vocab_size, BATCH, SEQ, seed=42, mean_doc_len=12)
  return [source.batch(s) for s in range(STEPS)]


def _rel(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _max_rel(tree_a, tree_b) -> tuple[float, str]:
  flat_a = jax.tree_util.tree_flatten_with_path(tree_a)[0]
  flat_b = jax.tree.leaves(tree_b)
  worst = max(((_rel(a, b), jax.tree_util.keystr(path)) for (path, a), b in zip(flat_a, flat_b)))
  return worst


@functools.lru_cache(maxsize=None)
def _initial_state():
  """Initial params and optimizer state on the host: every run starts from the same numbers.

  (Initialising once and placing the arrays with ``device_put`` is what loading a parameter export
  does in the trainer; it avoids compiling the random initialiser once per mesh.)
  """
  abstract = functional.abstract_params(CFG)
  tx = make_optimizer(_optim_config(), abstract, 100)
  params = jax.device_get(jax.jit(lambda: functional.init_params(CFG, 42))())
  return params, jax.device_get(jax.jit(tx.init)(params))


class Setup:
  """The trainer's sharded state and jitted step for one mesh."""

  def __init__(self, mesh, grad_accum: int = 1):
    self.mesh = mesh
    self.rules = rules = Rules(mesh)
    abstract = functional.abstract_params(CFG)
    self.p_sh = param_shardings(rules, abstract, functional.logical_axes(CFG))
    ocfg = _optim_config()
    tx = make_optimizer(ocfg, abstract, 100)
    _, self.opt_sh = opt_state_shardings(tx, abstract, self.p_sh, rules.replicated())
    self.batch_sh = rules.batch_sharding(2)
    step_fn = make_train_step(LanguageModel(CFG), tx, schedule(ocfg, 100), grad_accum=grad_accum,
                              resolver=rules.activation_resolver())
    params, opt_state = _initial_state()
    with jax.set_mesh(mesh):
      self.params = jax.device_put(params, self.p_sh)
      self.opt_state = jax.device_put(opt_state, self.opt_sh)
      self.step = jax.jit(step_fn, in_shardings=(self.p_sh, self.opt_sh, self.batch_sh, rules.replicated()),
                          out_shardings=(self.p_sh, self.opt_sh, rules.replicated()))

  def put(self, batch):
    return {k: jax.device_put(v, self.batch_sh) for k, v in batch.items()}

  def run(self, batches):
    losses = []
    with jax.set_mesh(self.mesh):
      for i, b in enumerate(batches):
        self.params, self.opt_state, m = self.step(self.params, self.opt_state, self.put(b), jnp.int32(i))
        losses.append(float(m["loss"]))
    return losses

  def grads(self, batch):
    """Gradient of the summed loss at the current params, jitted separately, params kept sharded."""
    resolver = self.rules.activation_resolver()

    def grad_fn(params, b):
      with axes.use_resolver(resolver):
        return jax.grad(lambda p: summed_loss(LanguageModel(CFG), p, b, 0.0)[0])(params)

    with jax.set_mesh(self.mesh):
      return jax.jit(grad_fn, in_shardings=(self.p_sh, self.batch_sh), out_shardings=self.p_sh)(
          self.params, self.put(batch))


@functools.lru_cache(maxsize=None)
def _reference():
  """(losses, params, grads) of the 1-device run."""
  setup = Setup(make_mesh({"data": 1}, devices=jax.devices()[:1]))
  batches = _batches()
  losses = setup.run(batches)
  return losses, jax.device_get(setup.params), jax.device_get(setup.grads(batches[-1]))


@functools.lru_cache(maxsize=None)
def _sharded(name):
  setup = Setup(make_mesh(MESHES[name]))
  batches = _batches()
  losses = setup.run(batches)
  return setup, losses, setup.grads(batches[-1])


def test_eight_devices_available():
  assert jax.device_count() == 8, "tests/conftest.py should force 8 fake CPU devices"


@pytest.mark.parametrize("name", list(MESHES))
def test_three_steps_match_single_device(name):
  ref_losses, ref_params, ref_grads = _reference()
  setup, losses, grads = _sharded(name)
  for step, (a, b) in enumerate(zip(losses, ref_losses)):
    assert abs(a - b) <= RTOL * abs(b), f"{name} step {step}: loss {a} vs 1-device {b}"
  err, where = _max_rel(jax.device_get(grads), ref_grads)
  assert err <= RTOL, f"{name}: gradient {where} relative error {err:.2e} after {STEPS} steps"
  err, where = _max_rel(jax.device_get(setup.params), ref_params)
  assert err <= RTOL, f"{name}: parameter {where} relative error {err:.2e} after {STEPS} steps"
  # The comparison is not vacuous: training moved the parameters well beyond the tolerance.
  moved, _ = _max_rel(ref_params, _initial_state()[0])
  assert moved > 1e3 * RTOL


# What the rules must give on (fsdp 2, tensor 4): kv_heads=2 is not divisible by tensor=4, so
# wk/wv stay replicated along tensor (the documented fallback).
EXPECTED_FSDP2_TENSOR4 = {
    "embed/embedding": P("tensor", "fsdp"),
    "lm_head/kernel": P("fsdp", "tensor"),
    "blocks/attn/wq": P(None, "fsdp", "tensor", None),
    "blocks/attn/wk": P(None, "fsdp", None, None),
    "blocks/attn/wv": P(None, "fsdp", None, None),
    "blocks/attn/wo": P(None, "tensor", None, "fsdp"),
    "blocks/mlp/w_gate": P(None, "fsdp", "tensor"),
    "blocks/mlp/w_up": P(None, "fsdp", "tensor"),
    "blocks/mlp/w_down": P(None, "tensor", "fsdp"),
    "blocks/attn_norm/scale": P(None, None),
    "blocks/mlp_norm/scale": P(None, None),
    "final_norm/scale": P(None),
}


def _by_path(tree, is_leaf=None):
  flat = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)[0]
  return {"/".join(str(k.key) for k in path): leaf for path, leaf in flat}


def _adam_states(opt_state):
  """The optax ScaleByAdamState(s) inside the (chained) optimizer state."""
  found = []
  def visit(x):
    if hasattr(x, "mu") and hasattr(x, "nu"):
      found.append(x)
    elif isinstance(x, (tuple, list)):
      for y in x:
        visit(y)
  visit(opt_state)
  return found


def _norm_spec(spec, ndim):
  return tuple(spec) + (None,) * (ndim - len(spec))


def test_parameters_sharded_as_rules_say_fsdp2_tensor4():
  setup, _, _ = _sharded("fsdp2_tensor4")
  params = _by_path(setup.params)
  assert set(params) == set(EXPECTED_FSDP2_TENSOR4)
  for path, expected in EXPECTED_FSDP2_TENSOR4.items():
    arr = params[path]
    assert _norm_spec(arr.sharding.spec, arr.ndim) == _norm_spec(expected, arr.ndim), path
    shard = arr.sharding.shard_shape(arr.shape)
    divisor = np.prod([{"fsdp": 2, "tensor": 4, None: 1}[a] for a in _norm_spec(expected, arr.ndim)])
    assert np.prod(shard) * divisor == np.prod(arr.shape), (path, shard, arr.shape)
    # The data is really split: each device holds one shard of that shape.
    assert {s.data.shape for s in arr.addressable_shards} == {shard}, path
  assert np.prod(params["blocks/attn/wq"].addressable_shards[0].data.shape) * 8 == params["blocks/attn/wq"].size


@pytest.mark.parametrize("name", list(MESHES))
def test_large_parameters_sharded_and_moments_follow(name):
  setup, _, _ = _sharded(name)
  rules = setup.rules
  logical = _by_path(functional.logical_axes(CFG), is_leaf=lambda x: isinstance(x, tuple))
  params = _by_path(setup.params)
  for path, arr in params.items():
    assert arr.sharding.spec == rules.spec(logical[path], arr.shape), path
    large = not path.endswith("scale")
    if name == "data8":   # pure data parallelism: the rules replicate everything
      assert arr.sharding.is_fully_replicated, path
    elif large:           # every matrix is split over fsdp (and tensor where it divides)
      assert arr.sharding.shard_shape(arr.shape) != arr.shape, f"{name}: {path} is not sharded"
      assert arr.addressable_shards[0].data.size < arr.size, f"{name}: {path} is not sharded"
  if name in ("fsdp8", "fsdp2_tensor4"):
    # On pure fsdp every matrix is split 8 ways; with tensor 4 everything but wk/wv is split 8 ways.
    for path in ("embed/embedding", "lm_head/kernel", "blocks/attn/wq", "blocks/mlp/w_up", "blocks/mlp/w_down"):
      assert params[path].addressable_shards[0].data.size * 8 == params[path].size, (name, path)
  # Adam moments (mu, nu) carry their parameter's sharding.
  moments = _adam_states(setup.opt_state)
  assert moments, "no Adam state found"
  for state in moments:
    for field in ("mu", "nu"):
      tree = _by_path(getattr(state, field))
      assert tree.keys() == params.keys()
      for path, m in tree.items():
        assert m.sharding.is_equivalent_to(params[path].sharding, m.ndim), (name, field, path)


@pytest.mark.parametrize("name", ["fsdp8", "data2_fsdp2_tensor2"])
def test_batch_sharded_over_data_and_fsdp(name):
  setup, _, _ = _sharded(name)
  spec = setup.batch_sh.spec
  dp = {"fsdp8": ("fsdp",), "data2_fsdp2_tensor2": ("data", "fsdp")}[name]
  assert tuple(spec)[0] == (dp[0] if len(dp) == 1 else dp)
  batch = setup.put(_batches()[0])
  for arr in batch.values():
    shard = arr.sharding.shard_shape(arr.shape)
    assert shard == (BATCH // setup.rules.data_parallel_size(), SEQ)
    assert shard[0] < BATCH
  assert setup.rules.data_parallel_size() == {"fsdp8": 8, "data2_fsdp2_tensor2": 4}[name]


def _grad_recorder() -> optax.GradientTransformation:
  """An 'optimizer' whose state is the gradient it was given (and whose update is zero)."""
  return optax.GradientTransformation(lambda p: jax.tree.map(jnp.zeros_like, p),
                                      lambda g, state, params=None: (jax.tree.map(jnp.zeros_like, g), g))


def test_grad_accumulation_matches_one_big_batch():
  """grad_accum=2 (two micro-batches of 4 rows, scanned) gives the update of one batch of 8 rows."""
  name = "data2_fsdp2_tensor2"
  one, losses_one, grads_one = _sharded(name)
  mesh = make_mesh(MESHES[name])
  two = Setup(mesh, grad_accum=2)
  losses_two = two.run(_batches())
  for a, b in zip(losses_two, losses_one):
    assert abs(a - b) <= RTOL * abs(b), (losses_two, losses_one)
  err, where = _max_rel(jax.device_get(two.params), jax.device_get(one.params))
  assert err <= RTOL, f"grad_accum=2 vs 1: parameter {where} relative error {err:.2e}"

  # The accumulated gradient itself, taken out of the train step through the optimizer state, equals
  # the one-batch gradient (the separately jitted jax.grad at the same params, divided by the tokens).
  tx = _grad_recorder()
  step = make_train_step(LanguageModel(CFG), tx, lambda _: 0.0, grad_accum=2, resolver=one.rules.activation_resolver())
  batch = _batches()[-1]
  with jax.set_mesh(mesh):
    _, grads_two, m = jax.jit(step, in_shardings=(one.p_sh, one.p_sh, one.batch_sh, one.rules.replicated()),
                              out_shardings=(one.p_sh, one.p_sh, one.rules.replicated()))(
        one.params, tx.init(one.params), one.put(batch), jnp.int32(0))
  tokens = float(batch["loss_mask"].sum())
  assert float(m["tokens"]) == tokens
  err, where = _max_rel(jax.device_get(grads_two), jax.tree.map(lambda g: np.asarray(g) / tokens, grads_one))
  assert err <= RTOL, f"grad_accum=2 vs one batch: gradient {where} relative error {err:.2e}"
