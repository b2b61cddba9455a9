"""Attention implementations behind one signature.

All take ``q (B,T,H,D)``, ``k, v (B,S,K,D)`` (``H`` a multiple of ``K``: grouped-query attention),
``segment_ids (B,T)`` and return ``(B,T,H,D)``. The mask is causal within a document: query ``t``
sees key ``s`` when ``s <= t`` and both carry the same segment id (packed sequences).

- ``xla``: plain einsums and a float32 softmax; runs everywhere; the reference for the others.
- ``cudnn``: ``jax.nn.dot_product_attention(implementation="cudnn")``, fused flash attention on
  NVIDIA GPUs (bf16/fp16 only). Not runnable on CPU.
- ``splash``: the Pallas TPU splash-attention kernel, wrapped in ``shard_map`` over the batch and
  heads axes as the logical rules shard them. On CPU it runs in Pallas interpret mode (tests only).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from visprior_jax.models import axes

IMPLEMENTATIONS = ("xla", "cudnn", "splash")


def document_causal_mask(segment_ids: jax.Array, kv_segment_ids: jax.Array | None = None) -> jax.Array:
  """(B,T,S) boolean mask: causal and within the same segment (document)."""
  kv_segment_ids = segment_ids if kv_segment_ids is None else kv_segment_ids
  t, s = segment_ids.shape[1], kv_segment_ids.shape[1]
  causal = jnp.arange(t)[:, None] + (s - t) >= jnp.arange(s)[None, :]
  same_doc = segment_ids[:, :, None] == kv_segment_ids[:, None, :]
  return causal[None] & same_doc


def xla_attention(q, k, v, segment_ids, *, scale: float):
  """Heads-major einsums: with (batch, kv_head, group) leading and the contracted axis last, XLA's
  CPU dots read every operand in its stored layout and the (B,K,G,T,S) scores and probabilities are
  never transposed (the sequence-major form spent ~1/3 of its time copying them; bench/RESULTS.md)."""
  b, t, h, d = q.shape
  kv_heads = k.shape[2]
  q = (q * jnp.asarray(scale, q.dtype)).reshape(b, t, kv_heads, h // kv_heads, d).transpose(0, 2, 3, 1, 4)
  k, v = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)
  scores = jnp.einsum("bkgtd,bksd->bkgts", q, k, preferred_element_type=jnp.float32)
  mask = document_causal_mask(segment_ids)[:, None, None]
  scores = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
  out = jnp.einsum("bkgts,bksd->bkgtd", probs, v)
  return out.transpose(0, 3, 1, 2, 4).reshape(b, t, h, d)


def cudnn_attention(q, k, v, segment_ids, *, scale: float):
  mask = document_causal_mask(segment_ids)[:, None]
  return jax.nn.dot_product_attention(q, k, v, mask=mask, scale=scale, implementation="cudnn")


@functools.lru_cache(maxsize=16)
def _splash_kernel(num_heads: int, seq_len: int, block: int, interpret: bool):
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm
  mask = sm.MultiHeadMask([sm.CausalMask((seq_len, seq_len)) for _ in range(num_heads)])
  block = min(block, seq_len)
  sizes = sk.BlockSizes(block_q=block, block_kv=block, block_kv_compute=block,
                        block_q_dkv=block, block_kv_dkv=block, block_kv_dkv_compute=block,
                        block_q_dq=block, block_kv_dq=block)
  return sk.make_splash_mha(mask=mask, block_sizes=sizes, head_shards=1, q_seq_shards=1,
                            interpret=interpret)


def splash_attention(q, k, v, segment_ids, *, scale: float, block: int = 512):
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
  interpret = jax.default_backend() != "tpu"

  def local(q, k, v, seg):  # per-shard: q (b,t,h,d) -> kernel wants (h,t,d) per example
    kernel = _splash_kernel(q.shape[2], q.shape[1], block, interpret)
    q, k, v = (jnp.swapaxes(x, 1, 2) for x in (q * scale, k, v))
    out = jax.vmap(lambda q, k, v, s: kernel(q, k, v, segment_ids=sk.SegmentIds(q=s, kv=s)))(
        q, k, v, seg)
    return jnp.swapaxes(out, 1, 2)

  resolve = axes.current_resolver()
  qkv_sharding = resolve(("act_batch", None, "act_heads", None), q.shape) if resolve else None
  if qkv_sharding is None:
    return local(q, k, v, segment_ids)
  spec = qkv_sharding.spec
  kv_spec = resolve(("act_batch", None, "act_kv_heads", None)).spec
  kv_shards = _num_shards(qkv_sharding.mesh, kv_spec[2] if len(kv_spec) > 2 else None)
  if k.shape[2] % kv_shards:
    # Fewer kv heads than head shards (the rules leave e.g. 2 kv heads on tensor=4 replicated):
    # repeat each kv head for its query group so k/v shard exactly like q.
    group = q.shape[2] // k.shape[2]
    k, v = jnp.repeat(k, group, axis=2), jnp.repeat(v, group, axis=2)
    kv_spec = spec
  seg_spec = jax.sharding.PartitionSpec(spec[0], None)
  return jax.shard_map(local, mesh=qkv_sharding.mesh, in_specs=(spec, kv_spec, kv_spec, seg_spec),
                       out_specs=spec, check_vma=False)(q, k, v, segment_ids)


def _num_shards(mesh, entry) -> int:
  names = () if entry is None else ((entry,) if isinstance(entry, str) else tuple(entry))
  n = 1
  for name in names:
    n *= mesh.shape[name]
  return n


def attend(impl: str, q, k, v, segment_ids, *, scale: float):
  if impl == "xla":
    return xla_attention(q, k, v, segment_ids, scale=scale)
  if impl == "cudnn":
    return cudnn_attention(q, k, v, segment_ids, scale=scale)
  if impl == "splash":
    return splash_attention(q, k, v, segment_ids, scale=scale)
  raise ValueError(f"attention={impl!r} is not one of {IMPLEMENTATIONS}")
