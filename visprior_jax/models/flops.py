"""Parameter counts and training FLOPs per token (the MFU definition of DESIGN.md).

MFU counts matmul FLOPs only: the q/k/v/o projections, the three MLP matrices and the unembedding
(the embedding lookup is a gather, not counted), times 3 for forward + backward. Causal attention
(QK^T and AV) is counted at half of the full map; the full-map figure is returned beside it so
numbers compare with codebases that count it whole (Levanter). Remat recomputation is not counted.
"""

from __future__ import annotations

import dataclasses

from visprior_jax.models.llama import LlamaConfig


@dataclasses.dataclass(frozen=True)
class FlopsPerToken:
  causal: float      # the number MFU uses
  full_attention: float


def param_count(cfg: LlamaConfig) -> int:
  d, hd = cfg.embed_dim, cfg.head_dim
  per_layer = (d * cfg.num_heads * hd * 2 + d * cfg.num_kv_heads * hd * 2   # q, o, k, v
               + 3 * d * cfg.mlp_dim + 2 * d)                              # mlp, two norms
  embeddings = cfg.vocab_size * d * (1 if cfg.tie_embeddings else 2)
  return cfg.num_layers * per_layer + embeddings + d


def training_flops_per_token(cfg: LlamaConfig, seq_len: int) -> FlopsPerToken:
  d, hd = cfg.embed_dim, cfg.head_dim
  matmul_params = cfg.num_layers * (d * cfg.num_heads * hd * 2 + d * cfg.num_kv_heads * hd * 2
                                    + 3 * d * cfg.mlp_dim) + d * cfg.vocab_size
  dense = 2 * matmul_params
  attn_full = cfg.num_layers * 4 * seq_len * cfg.num_heads * hd   # QK^T and AV over the full map
  return FlopsPerToken(causal=3 * (dense + attn_full / 2), full_attention=3 * (dense + attn_full))
