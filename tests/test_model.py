"""The Llama model against second code paths of itself: scan vs unrolled layers, remat policies vs none,
packed rows vs documents run alone, splash (Pallas, interpret mode on CPU) vs XLA attention, bf16 vs
fp32; z-loss and logit soft-capping against closed forms; parameter counts and FLOPs per token
against the real parameter tree and hand arithmetic.

Parameters are drawn with numpy (norm scales too, so a misplaced norm would show), not with the
model's initialiser, to keep compiles few: each jitted function here compiles once.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visprior_jax.models import attention, axes, flops, functional, presets
from visprior_jax.models.llama import REMAT_POLICIES
from visprior_jax.parallel.mesh import make_mesh
from visprior_jax.parallel.rules import Rules
from visprior_jax.train.tasks import LanguageModel
from visprior_jax.train.step import summed_loss

CFG = presets.get("llama3_tiny")   # vocab 512, d 64, 2 layers, 4 heads / 2 kv heads of 16, mlp 192
B, T = 2, 32
RTOL = 1e-5


def _rel(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _max_rel(tree_a, tree_b) -> tuple[float, str]:
  flat_a = jax.tree_util.tree_flatten_with_path(tree_a)[0]
  return max((_rel(a, b), jax.tree_util.keystr(p)) for (p, a), b in zip(flat_a, jax.tree.leaves(tree_b)))


@functools.lru_cache(maxsize=None)
def _params(cfg=CFG, seed: int = 0):
  rng = np.random.default_rng(seed)
  def draw(path, a):
    if jax.tree_util.keystr(path).endswith("['scale']"):
      return rng.normal(1.0, 0.2, a.shape).astype(np.float32)
    return rng.normal(0.0, 0.05, a.shape).astype(np.float32)
  return jax.tree_util.tree_map_with_path(draw, functional.abstract_params(cfg))


def _batch(seed: int = 1, b: int = B, t: int = T):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(0, CFG.vocab_size, (b, t + 1))
  split = t // 3   # two documents per row
  seg = np.where(np.arange(t) < split, 1, 2)[None].repeat(b, 0).astype(np.int32)
  pos = np.where(np.arange(t) < split, np.arange(t), np.arange(t) - split)[None].repeat(b, 0).astype(np.int32)
  mask = np.ones((b, t), np.float32)
  mask[:, split - 1] = 0.0   # the target there belongs to the next document
  return dict(inputs=tokens[:, :-1].astype(np.int32), targets=tokens[:, 1:].astype(np.int32), segment_ids=seg,
              positions=pos, loss_mask=mask)


@functools.lru_cache(maxsize=None)
def _logits_and_grads(cfg):
  """(logits, grads of the summed loss) for _params() on _batch(), one jit per config."""
  def f(params, batch):
    def loss(p):
      total, _ = summed_loss(LanguageModel(cfg), p, batch, 0.0)
      return total
    logits = functional.apply(cfg, params, batch["inputs"], batch["positions"], batch["segment_ids"])
    return logits, jax.grad(loss)(params)
  return jax.device_get(jax.jit(f)(_params(), _batch()))


def _variant(**overrides):
  return presets.get("llama3_tiny", **overrides)


# --- layer loop: scan vs unrolled, remat policies ------------------------------------------------

def _jaxpr(cfg) -> str:
  return str(jax.make_jaxpr(functional.apply, static_argnums=0)(cfg, _params(), _batch()["inputs"]))


def test_scan_and_unrolled_layers_agree():
  scan, unrolled = _variant(scan_layers=True), _variant(scan_layers=False)
  assert "scan[" in _jaxpr(scan) and "scan[" not in _jaxpr(unrolled)   # two different programs
  logits_s, grads_s = _logits_and_grads(scan)
  logits_u, grads_u = _logits_and_grads(unrolled)
  assert _rel(logits_u, logits_s) <= RTOL
  err, where = _max_rel(grads_u, grads_s)
  assert err <= RTOL, f"unrolled vs scan: gradient {where} relative error {err:.2e}"
  assert np.abs(logits_s).max() > 0.1   # not vacuous


@pytest.mark.parametrize("policy", [p for p in REMAT_POLICIES if p != "none"])
def test_remat_policy_gives_the_same_gradients(policy):
  _, ref = _logits_and_grads(_variant(scan_layers=True, remat="none"))
  cfg = _variant(scan_layers=True, remat=policy)
  assert "remat2[" in _jaxpr(cfg) and "remat2[" not in _jaxpr(_variant(remat="none"))
  _, grads = _logits_and_grads(cfg)
  err, where = _max_rel(grads, ref)
  assert err <= RTOL, f"remat={policy}: gradient {where} relative error {err:.2e}"


def test_remat_unrolled_layers():
  """Unrolled layers take the other jax.checkpoint branch (prevent_cse=True)."""
  _, ref = _logits_and_grads(_variant(scan_layers=True, remat="none"))
  _, grads = _logits_and_grads(_variant(scan_layers=False, remat="full"))
  err, where = _max_rel(grads, ref)
  assert err <= RTOL, f"unrolled remat=full: gradient {where} relative error {err:.2e}"


# --- packed sequences ------------------------------------------------------------------------------

_forward = jax.jit(functional.apply, static_argnums=0)


def test_packed_row_equals_documents_run_alone():
  rng = np.random.default_rng(3)
  doc_a, doc_b = rng.integers(0, CFG.vocab_size, 11), rng.integers(0, CFG.vocab_size, 21)
  row = np.concatenate([doc_a, doc_b])[None].astype(np.int32)
  seg = np.concatenate([np.full(11, 1), np.full(21, 2)])[None].astype(np.int32)
  pos = np.concatenate([np.arange(11), np.arange(21)])[None].astype(np.int32)
  params = _params()
  packed = np.asarray(_forward(CFG, params, row, pos, seg))
  alone_a = np.asarray(_forward(CFG, params, doc_a[None].astype(np.int32), None, None))
  alone_b = np.asarray(_forward(CFG, params, doc_b[None].astype(np.int32), None, None))
  assert _rel(packed[:, :11], alone_a) <= RTOL
  assert _rel(packed[:, 11:], alone_b) <= RTOL
  # Without the segment mask the second document would see the first: the check is not vacuous.
  leaky = np.asarray(_forward(CFG, params, row, pos, np.ones_like(seg)))
  assert _rel(leaky[:, 11:], alone_b) > 1e-2
  # (RoPE scores depend on position differences only, so restarting positions cannot change logits
  # beyond rounding; the position-restart arithmetic is the data pipeline's and tested there.)


# --- splash attention (Pallas; interpret mode off TPU) ------------------------------------------

def _qkv(b, t, h, k, d, seed=0):
  rng = np.random.default_rng(seed)
  q = jnp.asarray(rng.normal(size=(b, t, h, d)), jnp.float32)
  kv = [jnp.asarray(rng.normal(size=(b, t, k, d)), jnp.float32) for _ in range(2)]
  cut = np.array([[t // 3], [t // 2]])[:b]
  seg = jnp.asarray(np.where(np.arange(t)[None] < cut, 1, 2), jnp.int32)   # rows split at different places
  return q, kv[0], kv[1], seg


@functools.lru_cache(maxsize=None)
def _splash_unavailable() -> str | None:
  """Why the Pallas kernel cannot run on this backend (None if it can): a minimal probe, so that a
  failure in the tests themselves is a failure, never a skip."""
  if jax.default_backend() == "tpu":
    return None
  q, k, v, seg = _qkv(1, 128, 1, 1, 128)
  try:
    jax.block_until_ready(attention.splash_attention(q, k, v, seg, scale=1.0))
  except Exception as e:  # noqa: BLE001 - report exactly what failed
    return f"splash attention cannot run in Pallas interpret mode on {jax.default_backend()}: {type(e).__name__}: {e}"
  return None


def _require_splash():
  reason = _splash_unavailable()
  if reason:
    pytest.skip(reason)


def _naive_attention(q, k, v, seg, scale):
  """One (row, head) at a time in float64 numpy: the definition the fast path is checked against."""
  q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
  seg = np.asarray(seg)
  b, t, h, _ = q.shape
  out = np.zeros_like(q)
  for i in range(b):
    allowed = np.tril(np.ones((t, t), bool)) & (seg[i][:, None] == seg[i][None, :])
    for j in range(h):
      kv = j // (h // k.shape[2])
      s = np.where(allowed, q[i, :, j] @ k[i, :, kv].T * scale, -np.inf)
      p = np.exp(s - s.max(-1, keepdims=True))
      out[i, :, j] = (p / p.sum(-1, keepdims=True)) @ v[i, :, kv]
  return out


def test_xla_attention_matches_the_naive_definition_with_gqa_and_packing():
  q, k, v, seg = _qkv(2, 40, 6, 2, 16)
  out = attention.xla_attention(q, k, v, seg, scale=16 ** -0.5)
  assert _rel(out, _naive_attention(q, k, v, seg, 16 ** -0.5)) <= RTOL


@pytest.mark.parametrize("out_dtype", [None, jnp.float32])
def test_dense_gradients_equal_autodiff_of_matmul(out_dtype):
  from visprior_jax.models.llama import dense
  rng = np.random.default_rng(0)
  x, w, cot = (jnp.asarray(rng.normal(size=s), jnp.float32) for s in ((2, 5, 12), (12, 7), (2, 5, 7)))
  ours = jax.vjp(lambda x, w: dense(x, w, out_dtype), x, w)
  ref = jax.vjp(lambda x, w: jnp.einsum("btk,kn->btn", x, w), x, w)
  assert _rel(ours[0], ref[0]) <= RTOL
  for a, b in zip(ours[1](cot), ref[1](cot)):
    assert a.shape == b.shape and _rel(a, b) <= RTOL


def test_swiglu_gradient_equals_autodiff_of_silu_times_up():
  from visprior_jax.models.llama import swiglu
  rng = np.random.default_rng(0)
  gate, up, cot = (jnp.asarray(rng.normal(size=(3, 7, 32)) * 3, jnp.float32) for _ in range(3))
  ours = jax.vjp(swiglu, gate, up)
  ref = jax.vjp(lambda g, u: jax.nn.silu(g) * u, gate, up)
  assert _rel(ours[0], ref[0]) <= RTOL
  for a, b in zip(ours[1](cot), ref[1](cot)):
    assert _rel(a, b) <= RTOL


def test_splash_attention_matches_xla_forward_and_gradient():
  # T=256 with 128-blocks: several q/kv blocks, causal block skipping, GQA (4 heads on 2 kv heads).
  _require_splash()
  q, k, v, seg = _qkv(2, 256, 4, 2, 64)
  scale = 64 ** -0.5
  cot = jnp.asarray(np.random.default_rng(1).normal(size=q.shape), jnp.float32)

  @functools.partial(jax.jit, static_argnums=0)
  def run(impl, q, k, v, seg, cot):
    out = impl(q, k, v, seg, scale=scale)
    grads = jax.grad(lambda q, k, v: jnp.sum(impl(q, k, v, seg, scale=scale) * cot), argnums=(0, 1, 2))(q, k, v)
    return out, grads

  splash = functools.partial(attention.splash_attention, block=128)
  out, grads = run(splash, q, k, v, seg, cot)
  ref_out, ref_grads = run(attention.xla_attention, q, k, v, seg, cot)
  assert _rel(out, ref_out) <= RTOL
  for name, g, r in zip("qkv", grads, ref_grads):
    assert _rel(g, r) <= RTOL, f"d{name}: relative error {_rel(g, r):.2e}"


@pytest.mark.parametrize("mesh_shape", [dict(data=2, fsdp=2, tensor=2), dict(fsdp=2, tensor=4)])
def test_splash_through_the_sharded_model(mesh_shape):
  """attention='splash' in the model, under shard_map over batch and heads, equals XLA attention.

  On tensor=4 the 2 kv heads cannot be split 4 ways (the rules leave them replicated): splash must
  still run and agree.
  """
  _require_splash()
  t = 128   # the kernel's block is min(512, T) and must be a multiple of 128
  rng = np.random.default_rng(4)
  tokens = jnp.asarray(rng.integers(0, CFG.vocab_size, (4, t)), jnp.int32)
  seg = jnp.asarray(np.where(np.arange(t) < 50, 1, 2)[None].repeat(4, 0), jnp.int32)
  pos = jnp.asarray(np.where(np.arange(t) < 50, np.arange(t), np.arange(t) - 50)[None].repeat(4, 0), jnp.int32)
  params = _params()
  ref = _forward(CFG, params, tokens, pos, seg)
  mesh = make_mesh(mesh_shape)
  resolver = Rules(mesh).activation_resolver()
  splash_cfg = _variant(attention="splash")

  def f(p):
    with axes.use_resolver(resolver):
      return functional.apply(splash_cfg, p, tokens, pos, seg)

  with jax.set_mesh(mesh):
    out = jax.jit(f)(params)
  assert _rel(out, ref) <= RTOL


# --- z-loss, soft cap, bf16 --------------------------------------------------------------------------

def test_logits_soft_cap_bounds_logits():
  cap = 0.5
  batch = _batch()
  raw = np.asarray(_forward(CFG, _params(), batch["inputs"], batch["positions"], batch["segment_ids"]))
  capped = np.asarray(_forward(_variant(logits_soft_cap=cap), _params(), batch["inputs"], batch["positions"],
                               batch["segment_ids"]))
  assert np.abs(raw).max() > 2 * cap          # the cap is active on this input
  assert np.abs(capped).max() <= cap
  assert _rel(capped, cap * np.tanh(raw.astype(np.float64) / cap)) <= RTOL


def test_z_loss_adds_z_times_mean_log_z_squared():
  z = 1e-2
  batch, params = _batch(), _params()
  f = jax.jit(lambda p, zz: summed_loss(LanguageModel(CFG), p, batch, zz))
  (plain, aux0), (with_z, aux1) = f(params, 0.0), f(params, z)
  logits = np.asarray(_forward(CFG, params, batch["inputs"], batch["positions"], batch["segment_ids"]), np.float64)
  m = logits.max(-1, keepdims=True)
  log_z = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[..., 0]
  mask = batch["loss_mask"]
  tokens = mask.sum()
  mean_sq = float((log_z ** 2 * mask).sum() / tokens)
  assert float(aux1["tokens"]) == tokens
  assert float(with_z) > float(plain)
  np.testing.assert_allclose((float(with_z) - float(plain)) / tokens, z * mean_sq, rtol=1e-4)
  np.testing.assert_allclose(float(aux1["z_sum"]) / tokens, mean_sq, rtol=RTOL)
  np.testing.assert_allclose(float(aux0["ce_sum"]), float(aux1["ce_sum"]), rtol=RTOL)
  # And the CE part against numpy.
  target_logit = np.take_along_axis(logits, batch["targets"][..., None], -1)[..., 0]
  np.testing.assert_allclose(float(aux0["ce_sum"]), ((log_z - target_logit) * mask).sum(), rtol=RTOL)


def test_bfloat16_compute_close_to_float32():
  batch, params = _batch(), _params()
  f32 = np.asarray(_forward(CFG, params, batch["inputs"], batch["positions"], batch["segment_ids"]))
  bf16 = _forward(_variant(dtype="bfloat16"), params, batch["inputs"], batch["positions"], batch["segment_ids"])
  assert bf16.dtype == jnp.float32          # logits accumulate in float32
  bf16 = np.asarray(bf16)
  assert np.isfinite(bf16).all()
  assert _rel(bf16, f32) < 3e-2, _rel(bf16, f32)
  assert _rel(bf16, f32) > 0                # really computed in lower precision


# --- model-info numbers --------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_param_count_matches_the_parameter_tree(name):
  cfg = presets.get(name)
  actual = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(functional.abstract_params(cfg)))
  assert flops.param_count(cfg) == actual
  if name in presets.NOMINAL_PARAMS:
    nominal = presets.NOMINAL_PARAMS[name]
    assert abs(actual / nominal - 1) <= 0.10, f"{name}: {actual / 1e6:.1f}M params vs nominal {nominal / 1e6:.0f}M"


def test_param_count_tied_embeddings():
  cfg = _variant(tie_embeddings=True)
  actual = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(functional.abstract_params(cfg)))
  assert flops.param_count(cfg) == actual == flops.param_count(CFG) - CFG.vocab_size * CFG.embed_dim


def test_flops_per_token_by_hand():
  # llama3_tiny: d=64, L=2, H=4, K=2, hd=16, mlp=192, vocab=512; seq 32.
  # per layer: q,o 2*64*4*16=8192; k,v 2*64*2*16=4096; mlp 3*64*192=36864 -> 49152 matmul weights
  # matmul weights: 2*49152 + unembedding 64*512=32768 = 131072; forward 2 FLOPs each = 262144
  # attention, full map: L * 4 * T * H * hd = 2*4*32*4*16 = 16384; causal half = 8192
  f = flops.training_flops_per_token(CFG, 32)
  assert f.causal == 3 * (262144 + 8192) == 811008
  assert f.full_attention == 3 * (262144 + 16384) == 835584
  # parameters: 2*(49152 + 2 norms*64) + 2 embeddings*512*64 + final norm 64
  assert flops.param_count(CFG) == 2 * (49152 + 128) + 2 * 512 * 64 + 64 == 164160


def test_forward_flops_agree_with_xla_cost_analysis():
  """XLA's own FLOP count of the forward pass (full attention map, plus a little elementwise work).

  Layers unrolled: XLA's cost analysis counts a while-loop (scan) body once, not per iteration.
  """
  tokens = jnp.zeros((1, 32), jnp.int32)
  cfg = _variant(scan_layers=False)
  compiled = jax.jit(lambda p: functional.apply(cfg, p, tokens)).lower(_params()).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  if not cost or "flops" not in cost:
    pytest.skip("this XLA backend reports no cost analysis")
  expected = 32 * flops.training_flops_per_token(CFG, 32).full_attention / 3
  assert 1.0 <= cost["flops"] / expected <= 1.05, (cost["flops"], expected)
