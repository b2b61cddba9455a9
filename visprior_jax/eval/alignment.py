"""LLM-vision representational alignment (arXiv §2.2, §4.3): the mutual
nearest-neighbour (mNN) score of the Platonic Representation Hypothesis (PRH) between an LLM's
caption features and a vision encoder's image features, over N image-caption pairs.

Metric. For features ``a_i`` (N, Da) and ``b_i`` (N, Db) of the same N pairs:

  a_i <- a_i / ||a_i||,  K_a(i, j) = <a_i, a_j>            (cosine kernel; likewise K_b)
  NN_a(i) = the k indices j != i with the largest K_a(i, j)
  mNN(a, b) = (1 / N) * sum_i |NN_a(i) & NN_b(i)| / k        in [0, 1], k = 20 in the paper

Independent features score k / (N - 1) in expectation (each NN set is then a uniformly random
k-subset of the other N - 1 items), identical or rotated/rescaled features score 1. Computed in
float64 numpy, rows in blocks (memory O(block * N)); NN sets come from a stable sort of -K, so ties
go to the lower index, deterministically. Zero rows stay zero after normalisation (all their
similarities tie at 0).

Layers. :func:`layerwise_mutual_knn` scores every (LLM layer, vision layer) pair and reports the
maximum, as the PRH reference does (our inference: per-layer mean-pooled features,
L2-normalised, max over layer pairs); the paper states none of layer, pooling or normalisation.
The NN sets of each layer are computed once (La + Lb kNN searches, then La * Lb cheap overlaps).

Features.

- :func:`llm_caption_features` -> (L + 2, N, D): entry 0 is the token-embedding output, entry i
  (1..L) the residual stream after block i (pre-final-norm), entry L + 1 the final-normed state
  (what the LM head reads) as an extra layer. Each is mean-pooled over the caption's real tokens.
  Captions are encoded with bos (the LM is trained with it) but the bos position is NOT pooled:
  its state is identical for every caption (causal attention, position 0) and in deep layers often
  has a very large norm, so it would add a shared offset that swamps the cosine kernel. Padding is
  on the right and never pooled (causal attention: a real token never sees padding). Captions
  longer than ``max_len`` tokens (default ``cfg.max_seq_len``) keep their first ``max_len``; an
  empty caption is an error. The blocks are the model's own: the stacked block params run under
  ``jax.lax.scan`` exactly as ``Llama._run_blocks`` does, collecting each layer's output
  (``llama.py`` is unchanged); the tests check that entry L through the final norm and head gives
  ``functional.apply``'s logits.
- :func:`vision_image_features` -> (depth + 1, N, width): the ViT's HF-style hidden states
  (embeddings, then each block's output; no final norm), pooled per image: the class token when
  the config has one (CLIP, DINOv2, MAE), else the mean over patch tokens (SigLIP; registers
  excluded). Images must already be preprocessed for the backbone (size, mean/std).

Usage; the paper's final score averages over three vision backbones (ViT-L IN-21K, DINOv2-g,
CLIP-H)::

  lang = llm_caption_features(cfg, params, tok, captions)               # (L+2, N, D)
  scores = [alignment_score(lang, vision_image_features(vcfg, vparams, images), k=20)["score"]
            for vcfg, vparams, images in backbones]   # images preprocessed per backbone
  score = sum(scores) / len(scores)
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from visprior_jax.models import functional as llama_fn
from visprior_jax.models import llama as llama_lib
from visprior_jax.models import vit as vit_lib

_BLOCK_ROWS = 1024


# ----------------------------------------------------------------------------------------------
# Mutual k-nearest-neighbour score


def _normalize(feats) -> np.ndarray:
  x = np.asarray(feats, dtype=np.float64)
  if x.ndim != 2:
    raise ValueError(f"features must be (N, D), got shape {x.shape}")
  norm = np.linalg.norm(x, axis=1, keepdims=True)
  return x / np.where(norm > 0, norm, 1.0)


def _check_k(n: int, k: int) -> None:
  if not 1 <= k < n:
    raise ValueError(f"k={k} nearest neighbours need 1 <= k < N (N={n} items, each item's own "
                     f"row excluded leaves N-1={n - 1} candidates)")


def knn_indices(feats, k: int) -> np.ndarray:
  """(N, k) indices of each row's k most cosine-similar other rows, most similar first."""
  x = _normalize(feats)
  n = x.shape[0]
  _check_k(n, k)
  out = np.empty((n, k), dtype=np.int64)
  for start in range(0, n, _BLOCK_ROWS):          # blocks of rows, not items: memory O(block * N)
    rows = np.arange(start, min(start + _BLOCK_ROWS, n))
    sim = x[rows] @ x.T
    sim[np.arange(len(rows)), rows] = -np.inf     # exclude the item itself
    out[rows] = np.argsort(-sim, axis=1, kind="stable")[:, :k]
  return out


def knn_overlap(idx_a: np.ndarray, idx_b: np.ndarray) -> float:
  """mean_i |idx_a[i] & idx_b[i]| / k for two (N, k) neighbour tables (rows without repeats)."""
  if idx_a.shape != idx_b.shape:
    raise ValueError(f"neighbour tables differ in shape: {idx_a.shape} vs {idx_b.shape}")
  hits = (idx_a[:, :, None] == idx_b[:, None, :]).sum(axis=(1, 2))
  return float(hits.mean() / idx_a.shape[1])


def mutual_knn(feats_a, feats_b, k: int = 20) -> float:
  """The mNN score of (N, Da) and (N, Db) features of the same N items (see module docstring)."""
  a, b = np.asarray(feats_a), np.asarray(feats_b)
  if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
    raise ValueError(f"need (N, Da) and (N, Db) features of the same N items, got {a.shape} and {b.shape}")
  _check_k(a.shape[0], k)
  return knn_overlap(knn_indices(a, k), knn_indices(b, k))


def layerwise_mutual_knn(layers_a, layers_b, k: int = 20) -> dict[str, Any]:
  """mNN for every pair of (La, N, Da) x (Lb, N, Db) layers.

  Returns ``{"score": max over pairs, "best": (i, j) of the max (first in row-major order on ties),
  "matrix": (La, Lb) numpy array}``.
  """
  layers_a = [np.asarray(x) for x in layers_a]
  layers_b = [np.asarray(x) for x in layers_b]
  if not layers_a or not layers_b:
    raise ValueError("need at least one layer on each side")
  ns = {x.shape[0] for x in layers_a + layers_b if x.ndim == 2}
  if len(ns) != 1 or any(x.ndim != 2 for x in layers_a + layers_b):
    raise ValueError("every layer must be (N, D) with the same N on both sides; got shapes "
                     f"{[x.shape for x in layers_a]} and {[x.shape for x in layers_b]}")
  _check_k(ns.pop(), k)
  nn_a = [knn_indices(x, k) for x in layers_a]
  nn_b = [knn_indices(x, k) for x in layers_b]
  matrix = np.array([[knn_overlap(ia, ib) for ib in nn_b] for ia in nn_a])
  best = np.unravel_index(int(np.argmax(matrix)), matrix.shape)
  return {"score": float(matrix[best]), "best": (int(best[0]), int(best[1])), "matrix": matrix}


def alignment_score(llm_features, vision_features, k: int = 20) -> dict[str, Any]:
  """Per-layer (La, N, Da) LLM and (Lb, N, Db) vision features -> :func:`layerwise_mutual_knn`."""
  return layerwise_mutual_knn(llm_features, vision_features, k)


# ----------------------------------------------------------------------------------------------
# LLM caption features


def llm_hidden_states(cfg: llama_lib.LlamaConfig, params, tokens) -> jax.Array:
  """(L + 2, B, T, D) float32: embeddings, each block's output, final-normed last state.

  Unjitted; the blocks run under ``jax.lax.scan`` over the stacked params (as ``Llama._run_blocks``
  with ``scan_layers``), so remat and the unrolled layout do not change the values.
  """
  model = llama_fn.bind(cfg, params)
  x = model.embed_tokens(tokens)
  positions = jnp.broadcast_to(jnp.arange(x.shape[1]), x.shape[:2])
  segment_ids = jnp.ones(x.shape[:2], jnp.int32)
  inv_freq = llama_lib.rope_inverse_frequencies(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling)
  graphdef, stacked = nnx.split(model.blocks)

  def body(h, block_params):
    h = nnx.merge(graphdef, block_params)(h, positions, segment_ids, inv_freq)
    return h, h

  last, states = jax.lax.scan(body, x, stacked)
  final = model.final_norm(last)
  return jnp.concatenate([x[None], states, final[None]], axis=0).astype(jnp.float32)


@functools.partial(jax.jit, static_argnums=0)
def _pooled_llm(cfg, params, tokens, pool_mask):
  states = llm_hidden_states(cfg, params, tokens)                  # (L+2, B, T, D)
  w = pool_mask.astype(jnp.float32)
  return jnp.einsum("lbtd,bt->lbd", states, w) / jnp.sum(w, axis=1)[None, :, None]


def _bucket(n: int, cap: int) -> int:
  return min(cap, max(16, 1 << (n - 1).bit_length()))


def llm_caption_features(cfg: llama_lib.LlamaConfig, params, tokenizer, captions: Sequence[str], *,
                         batch_size: int = 16, max_len: int | None = None, layers: str | Sequence[int] = "all",
                         add_bos: bool = True) -> np.ndarray:
  """(L + 2, N, D) float32 per-layer mean-pooled caption features (see module docstring).

  ``layers``: "all" or indices into those L + 2 entries (Python-style; -1 = final-normed).
  ``add_bos``: prepend the tokenizer's bos (it is fed to the model but never pooled).
  Batches are right-padded to a power-of-two width (at least 16, at most ``max_len``) and filled
  to ``batch_size`` rows, so only a few shapes compile.
  """
  if isinstance(captions, str):
    raise TypeError("captions must be a sequence of strings, not one string")
  max_len = int(max_len or cfg.max_seq_len)
  bos = [int(tokenizer.bos_id)] if add_bos and tokenizer.bos_id is not None else []
  if max_len <= len(bos):
    raise ValueError(f"max_len={max_len} leaves no room for caption tokens")
  pad = int(getattr(tokenizer, "pad_id", 0) or 0)
  rows = []
  for i, caption in enumerate(captions):
    ids = list(tokenizer.encode(caption))
    if not ids:
      raise ValueError(f"caption {i} ({caption!r}) has no tokens to pool")
    rows.append(bos + ids[:max_len - len(bos)])
  out = []
  for start in range(0, len(rows), batch_size):
    chunk = rows[start:start + batch_size]
    width = _bucket(max(len(ids) for ids in chunk), max_len)
    tokens = np.full((batch_size, width), pad, np.int32)
    mask = np.zeros((batch_size, width), bool)
    mask[len(chunk):, 0] = True                                    # filler rows: avoid 0 / 0
    for r, ids in enumerate(chunk):
      tokens[r, :len(ids)] = ids
      mask[r, len(bos):len(ids)] = True                             # bos is fed, not pooled
    pooled = _pooled_llm(cfg, params, jnp.asarray(tokens), jnp.asarray(mask))
    out.append(np.asarray(pooled)[:, :len(chunk)])
  if not out:
    raise ValueError("no captions")
  feats = np.concatenate(out, axis=1)
  if isinstance(layers, str):
    if layers != "all":
      raise ValueError(f"layers={layers!r}: use 'all' or a list of indices")
    return feats
  return feats[np.asarray(list(layers), dtype=np.int64)]


# ----------------------------------------------------------------------------------------------
# Vision features


@functools.partial(jax.jit, static_argnums=0)
def _pooled_vit(cfg: vit_lib.ViTConfig, params, images):
  states = vit_lib.bind(cfg, params).hidden_states(images)       # depth + 1 of (B, prefix + P, W)
  if cfg.class_token:
    pooled = [h[:, 0] for h in states]
  else:
    pooled = [jnp.mean(h[:, cfg.num_prefix:], axis=1) for h in states]
  return jnp.stack(pooled).astype(jnp.float32)


def vision_image_features(vit_cfg: vit_lib.ViTConfig, params, images, *, batch_size: int = 32) -> np.ndarray:
  """(depth + 1, N, width) float32 per-layer pooled image features (see module docstring)."""
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3 or not len(images):
    raise ValueError(f"images must be (N, H, W, 3) with N >= 1, got {images.shape}")
  out = []
  for start in range(0, len(images), batch_size):
    chunk = images[start:start + batch_size]
    if len(chunk) < batch_size:                                      # one compiled shape
      chunk = np.concatenate([chunk, np.zeros((batch_size - len(chunk),) + chunk.shape[1:], chunk.dtype)])
    pooled = _pooled_vit(vit_cfg, params, jnp.asarray(chunk))
    out.append(np.asarray(pooled)[:, :min(batch_size, len(images) - start)])
  return np.concatenate(out, axis=1)
