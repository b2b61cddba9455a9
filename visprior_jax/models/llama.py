"""Llama-3 decoder in Flax NNX.

RMSNorm, RoPE (configurable theta, optional Llama-3.1 frequency scaling), grouped-query attention,
SwiGLU MLP, tied or untied embeddings, no biases. Parameters are float32; the compute dtype is
configurable. Attention runs over packed sequences: ``segment_ids`` keep documents apart and
``positions`` restart per document.

Parameter layout (the pure-dict paths that checkpoints and converters use)::

  embed/embedding          (vocab, embed)
  blocks/attn_norm/scale   (layers, embed)
  blocks/attn/wq           (layers, embed, heads, head_dim)
  blocks/attn/wk, wv       (layers, embed, kv_heads, head_dim)
  blocks/attn/wo           (layers, heads, head_dim, embed)
  blocks/mlp_norm/scale    (layers, embed)
  blocks/mlp/w_gate, w_up  (layers, embed, mlp)
  blocks/mlp/w_down        (layers, mlp, embed)
  final_norm/scale         (embed,)
  lm_head/kernel           (embed, vocab)      absent when embeddings are tied

Block parameters are always stacked along a leading ``layers`` axis, so a checkpoint is the same
whether the layers run under ``jax.lax.scan`` (``scan_layers=True``: one compiled layer, fast
compiles) or unrolled. RoPE uses the rotate-half convention of HF transformers, so HF weights map
onto these by reshapes only (no permutation).

Decoding: :class:`KVCache` holds every layer's keys and values, stacked on a leading ``layers`` axis
like the block parameters. Rows are left-padded, so all rows write the same cache slot at each step
(``index``) and ``valid`` masks the padding keys; positions count from each row's first real token.
``prefill`` fills the cache from a prompt, ``decode_step`` appends one token; both attend with
einsums and a masked float32 softmax over the whole cache (the ``xla`` path).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any, NamedTuple

import jax
from jax.ad_checkpoint import checkpoint_name
import jax.numpy as jnp
import numpy as np
from flax import nnx

from visprior_jax.models import attention
from visprior_jax.models.axes import constrain

REMAT_POLICIES = ("none", "minimal", "dots", "dots_except_mlp", "full")


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
  vocab_size: int = 32000
  embed_dim: int = 1024
  num_layers: int = 24
  num_heads: int = 16
  num_kv_heads: int = 16
  head_dim: int = 64
  mlp_dim: int = 2816
  max_seq_len: int = 2048
  rope_theta: float = 10000.0
  # Llama-3.1 frequency scaling: None, or dict(factor, low_freq_factor, high_freq_factor,
  # original_max_position_embeddings) exactly as in HF's rope_parameters.
  rope_scaling: dict | None = None
  norm_eps: float = 1e-6
  tie_embeddings: bool = False
  init_std: float = 0.02
  dtype: str = "float32"          # compute dtype; bfloat16 on accelerators
  param_dtype: str = "float32"
  attention: str = "xla"          # xla | cudnn | splash
  scan_layers: bool = True
  remat: str = "none"             # see REMAT_POLICIES
  logits_soft_cap: float = 0.0    # 0 disables

  def __post_init__(self):
    if self.num_heads % self.num_kv_heads:
      raise ValueError(f"num_heads={self.num_heads} is not a multiple of num_kv_heads={self.num_kv_heads}")
    if self.remat not in REMAT_POLICIES:
      raise ValueError(f"remat={self.remat!r} is not one of {REMAT_POLICIES}")
    if self.attention not in attention.IMPLEMENTATIONS:
      raise ValueError(f"attention={self.attention!r} is not one of {attention.IMPLEMENTATIONS}")
    if self.rope_scaling is not None and not isinstance(self.rope_scaling, dict):
      object.__setattr__(self, "rope_scaling", dict(self.rope_scaling))

  def __hash__(self):  # rope_scaling is a dict; hash the JSON form so configs can key caches
    return hash(json.dumps(self.to_dict(), sort_keys=True))

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "LlamaConfig":
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
      raise ValueError(f"unknown model config fields {unknown}; known: {sorted(names)}")
    return cls(**d)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


def _param(rngs: nnx.Rngs, shape, axes, std, dtype):
  value = (std * jax.random.normal(rngs.params(), shape)).astype(dtype) if std else jnp.ones(shape, dtype)
  return nnx.Param(value, logical_axes=tuple(axes))


def rope_inverse_frequencies(head_dim: int, theta: float, scaling: dict | None) -> np.ndarray:
  """float32 inverse frequencies, computed the way HF transformers computes them."""
  inv = 1.0 / (np.float32(theta) ** (np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / head_dim))
  inv = inv.astype(np.float32)
  if scaling is None:
    return inv
  factor = scaling["factor"]
  low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
  old_len = scaling["original_max_position_embeddings"]
  wavelen = 2 * np.pi / inv
  scaled = np.where(wavelen > old_len / low, inv / factor, inv)
  smooth = (old_len / wavelen - low) / (high - low)
  smoothed = (1 - smooth) * scaled / factor + smooth * scaled
  medium = ~(wavelen < old_len / high) & ~(wavelen > old_len / low)
  return np.where(medium, smoothed, scaled).astype(np.float32)


def apply_rope(x: jax.Array, positions: jax.Array, inv_freq: np.ndarray) -> jax.Array:
  """x (B,T,H,D), positions (B,T) -> rotated x, computed in float32 (rotate-half convention)."""
  angles = positions[..., None].astype(jnp.float32) * jnp.asarray(inv_freq)   # (B,T,D/2)
  angles = jnp.concatenate([angles, angles], axis=-1)[:, :, None, :]
  cos, sin = jnp.cos(angles), jnp.sin(angles)
  xf = x.astype(jnp.float32)
  half = x.shape[-1] // 2
  rotated = jnp.concatenate([-xf[..., half:], xf[..., :half]], axis=-1)
  return (xf * cos + rotated * sin).astype(x.dtype)


class RMSNorm(nnx.Module):
  def __init__(self, dim: int, eps: float, dtype, rngs: nnx.Rngs):
    self.scale = _param(rngs, (dim,), ("norm",), 0.0, dtype)
    self.eps = eps

  def __call__(self, x):
    xf = x.astype(jnp.float32)
    xf = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + self.eps)
    return (xf * self.scale[...].astype(jnp.float32)).astype(x.dtype)


class Attention(nnx.Module):
  def __init__(self, cfg: LlamaConfig, rngs: nnx.Rngs):
    d, h, k, hd, pd = cfg.embed_dim, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.param_dtype
    self.wq = _param(rngs, (d, h, hd), ("embed", "heads", "head_dim"), cfg.init_std, pd)
    self.wk = _param(rngs, (d, k, hd), ("embed", "kv_heads", "head_dim"), cfg.init_std, pd)
    self.wv = _param(rngs, (d, k, hd), ("embed", "kv_heads", "head_dim"), cfg.init_std, pd)
    self.wo = _param(rngs, (h, hd, d), ("heads", "head_dim", "embed"), cfg.init_std, pd)
    self.cfg = cfg

  def __call__(self, x, positions, segment_ids, inv_freq):
    cfg, dt = self.cfg, jnp.dtype(self.cfg.dtype)
    name = checkpoint_name
    q = name(project(x, self.wq[...].astype(dt)), "qkv_proj")
    k = name(project(x, self.wk[...].astype(dt)), "qkv_proj")
    v = name(project(x, self.wv[...].astype(dt)), "qkv_proj")
    q = constrain(q, ("act_batch", "act_length", "act_heads", "act_head_dim"))
    k = constrain(k, ("act_batch", "act_length", "act_kv_heads", "act_head_dim"))
    v = constrain(v, ("act_batch", "act_length", "act_kv_heads", "act_head_dim"))
    q, k = apply_rope(q, positions, inv_freq), apply_rope(k, positions, inv_freq)
    out = attention.attend(cfg.attention, q, k, v, segment_ids, scale=cfg.head_dim ** -0.5)
    out = name(constrain(out, ("act_batch", "act_length", "act_heads", "act_head_dim")), "attn_context")
    b, t, h, hd = out.shape
    return name(dense(out.reshape(b, t, h * hd), self.wo[...].astype(dt).reshape(h * hd, -1)), "attn_out")

  def decode(self, x, positions, inv_freq, k_cache, v_cache, mask, index):
    """Writes this chunk's k/v at cache slots [index, index+T) and attends over the whole cache;
    ``mask`` (B,T,S) says which cache slots each query sees. Returns (out, k_cache, v_cache)."""
    cfg, dt = self.cfg, jnp.dtype(self.cfg.dtype)
    q = jnp.einsum("btd,dhk->bthk", x, self.wq[...].astype(dt))
    k = jnp.einsum("btd,dhk->bthk", x, self.wk[...].astype(dt))
    v = jnp.einsum("btd,dhk->bthk", x, self.wv[...].astype(dt))
    q, k = apply_rope(q, positions, inv_freq), apply_rope(k, positions, inv_freq)
    k_cache = jax.lax.dynamic_update_slice(k_cache, k.astype(k_cache.dtype), (0, index, 0, 0))
    v_cache = jax.lax.dynamic_update_slice(v_cache, v.astype(v_cache.dtype), (0, index, 0, 0))
    k_cache = constrain(k_cache, ("act_batch", "act_length", "act_kv_heads", "act_head_dim"))
    v_cache = constrain(v_cache, ("act_batch", "act_length", "act_kv_heads", "act_head_dim"))
    b, t, h, d = q.shape
    kv_heads = k_cache.shape[2]
    q = q.reshape(b, t, kv_heads, h // kv_heads, d)
    scores = jnp.einsum("btkgd,bskd->bkgts", q, k_cache, preferred_element_type=jnp.float32)
    scores = jnp.where(mask[:, None, None], scores * cfg.head_dim ** -0.5, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v_cache.dtype)
    out = jnp.einsum("bkgts,bskd->btkgd", probs, v_cache).reshape(b, t, h, d)
    return jnp.einsum("bthk,hkd->btd", out, self.wo[...].astype(dt)), k_cache, v_cache


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def dense(x, w, out_dtype=None):
  """``x @ w`` (x (..., K), w (K, N)) whose weight gradient is computed as ``(dy^T x)^T``. Autodiff's
  ``x^T dy`` makes XLA:CPU store ``dy`` transposed (row-strided writes fused into the elementwise
  producer of ``dy``: 17% of the tiny step, 10% of the CPU-sized one); this form reads both
  operands as stored and transposes the (K, N) result instead (bench/RESULTS.md). ``out_dtype``:
  the result's dtype (``preferred_element_type``; default the inputs')."""
  return jnp.matmul(x, w, preferred_element_type=out_dtype)


def _dense_fwd(x, w, out_dtype):
  return dense(x, w, out_dtype), (x, w)


def _dense_bwd(out_dtype, res, d_out):
  x, w = res
  d_out = d_out.astype(x.dtype)
  rows = lambda a: a.reshape(-1, a.shape[-1])
  d_w = jax.lax.dot_general(rows(d_out), rows(x), (((0,), (0,)), ((), ())))   # (N, K)
  return d_out @ w.T, d_w.T.astype(w.dtype)


dense.defvjp(_dense_fwd, _dense_bwd)


def project(x, w):
  """``einsum("btd,dhk->bthk")`` (heads projection) through :func:`dense`."""
  d, h, k = w.shape
  return dense(x, w.reshape(d, h * k)).reshape(*x.shape[:-1], h, k)


@jax.custom_vjp
def swiglu(gate, up):
  """``silu(gate) * up`` with its backward written out: XLA:CPU fuses the two input gradients with
  the transposing copy the weight-gradient dots want, ~4% of a CPU train step (bench/RESULTS.md)."""
  return jax.nn.silu(gate) * up


def _swiglu_fwd(gate, up):
  return swiglu(gate, up), (gate, up)


def _swiglu_bwd(res, d_out):
  gate, up = res
  sig = jax.nn.sigmoid(gate)
  return d_out * up * sig * (1 + gate * (1 - sig)), d_out * gate * sig


swiglu.defvjp(_swiglu_fwd, _swiglu_bwd)


class MLP(nnx.Module):
  def __init__(self, cfg: LlamaConfig, rngs: nnx.Rngs):
    d, m, pd = cfg.embed_dim, cfg.mlp_dim, cfg.param_dtype
    self.w_gate = _param(rngs, (d, m), ("embed", "mlp"), cfg.init_std, pd)
    self.w_up = _param(rngs, (d, m), ("embed", "mlp"), cfg.init_std, pd)
    self.w_down = _param(rngs, (m, d), ("mlp", "embed"), cfg.init_std, pd)
    self.dtype = jnp.dtype(cfg.dtype)

  def __call__(self, x):
    name, dt = checkpoint_name, self.dtype
    gate = name(dense(x, self.w_gate[...].astype(dt)), "mlp_hidden")
    up = name(dense(x, self.w_up[...].astype(dt)), "mlp_hidden")
    hidden = constrain(swiglu(gate, up), ("act_batch", "act_length", "act_mlp"))
    return name(dense(hidden, self.w_down[...].astype(dt)), "mlp_out")


class Block(nnx.Module):
  def __init__(self, cfg: LlamaConfig, rngs: nnx.Rngs):
    self.attn_norm = RMSNorm(cfg.embed_dim, cfg.norm_eps, cfg.param_dtype, rngs)
    self.attn = Attention(cfg, rngs)
    self.mlp_norm = RMSNorm(cfg.embed_dim, cfg.norm_eps, cfg.param_dtype, rngs)
    self.mlp = MLP(cfg, rngs)

  def __call__(self, x, positions, segment_ids, inv_freq):
    x = x + self.attn(self.attn_norm(x), positions, segment_ids, inv_freq)
    x = x + self.mlp(self.mlp_norm(x))
    return constrain(x, ("act_batch", "act_length", "act_embed"))

  def decode(self, x, positions, inv_freq, k_cache, v_cache, mask, index):
    attn, k_cache, v_cache = self.attn.decode(self.attn_norm(x), positions, inv_freq, k_cache, v_cache,
                                              mask, index)
    x = x + attn
    x = x + self.mlp(self.mlp_norm(x))
    return constrain(x, ("act_batch", "act_length", "act_embed")), k_cache, v_cache


class KVCache(NamedTuple):
  """Decoding state: ``k, v`` (layers, B, max_len, kv_heads, head_dim) in the compute dtype,
  ``valid`` (B, max_len) the filled non-padding slots, ``index`` () the next slot to write (shared
  by all rows: prompts are left-padded), ``lengths`` (B,) the real tokens held per row."""
  k: jax.Array
  v: jax.Array
  valid: jax.Array
  index: jax.Array
  lengths: jax.Array


def init_cache(cfg: LlamaConfig, batch: int, max_len: int) -> KVCache:
  shape = (cfg.num_layers, batch, max_len, cfg.num_kv_heads, cfg.head_dim)
  zeros = jnp.zeros(shape, jnp.dtype(cfg.dtype))
  return KVCache(zeros, zeros, jnp.zeros((batch, max_len), bool), jnp.zeros((), jnp.int32),
                 jnp.zeros((batch,), jnp.int32))


def remat_policy(name: str):
  """The jax.checkpoint policy for a remat name (None: no rematerialisation)."""
  cp = jax.checkpoint_policies
  return {
      "none": None,
      "minimal": cp.save_only_these_names("qkv_proj", "attn_context", "attn_out", "mlp_hidden", "mlp_out"),
      "dots": cp.dots_with_no_batch_dims_saveable,
      "dots_except_mlp": cp.save_only_these_names("qkv_proj", "attn_context", "attn_out"),
      "full": cp.nothing_saveable,
  }[name]


class Llama(nnx.Module):
  """``Llama(cfg, rngs=nnx.Rngs(42))(tokens, positions=None, segment_ids=None) -> logits``;
  ``from_embeddings`` runs the same decoder on precomputed input embeddings."""

  def __init__(self, cfg: LlamaConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    pd = cfg.param_dtype
    self.embed = nnx.Module()
    self.embed.embedding = _param(rngs, (cfg.vocab_size, cfg.embed_dim), ("vocab", "embed"), cfg.init_std, pd)

    @nnx.split_rngs(splits=cfg.num_layers)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def make_blocks(rngs):
      return Block(cfg, rngs)

    self.blocks = make_blocks(rngs)
    for _, var in nnx.iter_graph(self.blocks):
      if isinstance(var, nnx.Variable):
        var.set_metadata("logical_axes", ("layers",) + tuple(var.get_metadata()["logical_axes"]))
    self.final_norm = RMSNorm(cfg.embed_dim, cfg.norm_eps, pd, rngs)
    if not cfg.tie_embeddings:
      self.lm_head = nnx.Module()
      self.lm_head.kernel = _param(rngs, (cfg.embed_dim, cfg.vocab_size), ("embed", "vocab"), cfg.init_std, pd)

  def __call__(self, tokens, positions=None, segment_ids=None):
    return self.from_embeddings(self.embed_tokens(tokens), positions, segment_ids)

  def embed_tokens(self, tokens):
    """(B,T) ids -> (B,T,D) input embeddings in the compute dtype."""
    x = jnp.take(self.embed.embedding[...], tokens, axis=0).astype(jnp.dtype(self.cfg.dtype))
    return constrain(x, ("act_batch", "act_length", "act_embed"))

  def from_embeddings(self, x, positions=None, segment_ids=None):
    """Input embeddings (B,T,D) -> logits (B,T,V): the decoder after the token lookup (the
    multimodal model enters here with image features merged into the embeddings)."""
    if positions is None:
      positions = jnp.broadcast_to(jnp.arange(x.shape[1]), x.shape[:2])
    if segment_ids is None:
      segment_ids = jnp.ones(x.shape[:2], jnp.int32)
    return self._logits(self._run_blocks(x, positions, segment_ids))

  def _logits(self, x):
    cfg, dt = self.cfg, jnp.dtype(self.cfg.dtype)
    x = self.final_norm(x)
    head = self.embed.embedding[...].T if cfg.tie_embeddings else self.lm_head.kernel[...]
    logits = dense(x, head.astype(dt), jnp.float32)
    logits = constrain(logits, ("act_batch", "act_length", "act_vocab"))
    if cfg.logits_soft_cap:
      logits = cfg.logits_soft_cap * jnp.tanh(logits / cfg.logits_soft_cap)
    return logits

  def _run_blocks(self, x, positions, segment_ids):
    cfg = self.cfg
    inv_freq = rope_inverse_frequencies(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling)
    graphdef, stacked = nnx.split(self.blocks)

    def layer(x, params):
      return nnx.merge(graphdef, params)(x, positions, segment_ids, inv_freq)

    policy = remat_policy(cfg.remat)
    if cfg.remat != "none":
      layer = jax.checkpoint(layer, policy=policy, prevent_cse=not cfg.scan_layers)
    if cfg.scan_layers:
      x, _ = jax.lax.scan(lambda x, p: (layer(x, p), None), x, stacked)
      return x
    for i in range(cfg.num_layers):
      x = layer(x, jax.tree.map(lambda a: a[i], stacked))
    return x

  def prefill(self, inputs, positions, valid, cache: KVCache):
    """Runs a left-padded prompt chunk into the cache. ``inputs`` are token ids (B,T) or input
    embeddings (B,T,D); ``positions`` (B,T) count from each row's first real token; ``valid`` (B,T)
    is False on padding (an attention mask). Returns (logits (B,V) at the chunk's last slot, cache)."""
    x = self.embed_tokens(inputs) if inputs.ndim == 2 else inputs.astype(jnp.dtype(self.cfg.dtype))
    return self._decode(x, positions, valid.astype(bool), cache)

  def decode_step(self, tokens, positions, cache: KVCache):
    """One new token per row: tokens, positions (B,1) -> (logits (B,V), cache)."""
    return self._decode(self.embed_tokens(tokens), positions, jnp.ones(tokens.shape, bool), cache)

  def _decode(self, x, positions, valid, cache: KVCache):
    cfg, t = self.cfg, x.shape[1]
    inv_freq = rope_inverse_frequencies(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling)
    kv_valid = jax.lax.dynamic_update_slice(cache.valid, valid, (0, cache.index))
    slots = jnp.arange(kv_valid.shape[1])
    causal = slots[None, :] <= cache.index + jnp.arange(t)[:, None]          # (T,S)
    mask = causal[None] & kv_valid[:, None, :]                              # (B,T,S)
    graphdef, stacked = nnx.split(self.blocks)

    def layer(x, params, k, v):
      return nnx.merge(graphdef, params).decode(x, positions, inv_freq, k, v, mask, cache.index)

    if cfg.scan_layers:
      def body(x, layer_in):
        x, k, v = layer(x, *layer_in)
        return x, (k, v)
      x, (ks, vs) = jax.lax.scan(body, x, (stacked, cache.k, cache.v))
    else:
      ks, vs = [], []
      for i in range(cfg.num_layers):
        x, k, v = layer(x, jax.tree.map(lambda a: a[i], stacked), cache.k[i], cache.v[i])
        ks.append(k)
        vs.append(v)
      ks, vs = jnp.stack(ks), jnp.stack(vs)
    logits = self._logits(x[:, -1:])[:, 0]
    cache = KVCache(ks, vs, kv_valid, cache.index + t, cache.lengths + valid.sum(axis=1, dtype=jnp.int32))
    return logits, cache
