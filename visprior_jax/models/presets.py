"""Named model sizes.

The paper gives five scales (340M, 1B, 3B, 7B, 13B), a ~32k vocabulary and context 2048, but not
the per-scale shapes (PAPER.md 1.2). These follow the suggested configs of PAPER.md 1.3 (fla-org
flame transformer configs, Llama-3.2-3B, Llama-3-8B, Llama-2-13B bodies), adjusted where needed so
the total parameter count (untied embeddings included) is within 10% of the name:

  preset        layers  d_model  heads  kv  mlp     params
  llama3_340m   24      1024     16     16  2688    364M   (flame 340M body; mlp 2816 -> 2688)
  llama3_1b     16      2048     32     8   7168    1.00B  (Llama-3.2-1B body, narrower mlp)
  llama3_3b     28      3072     24     8   8192    3.02B  (Llama-3.2-3B body)
  llama3_7b     32      4096     32     8   14336   7.24B  (Llama-3-8B body)
  llama3_13b    40      5120     40     40  13824   13.0B  (Llama-2-13B body)

Test and CPU sizes: ``llama3_tiny`` (unit tests, demo), ``llama3_small`` (the tiny MaxText peer
config of ENV.md item 9), ``llama3_cpu`` (the CPU-sized benchmark config of the performance issue).
rope_theta is 10000 and norm_eps 1e-6 as in the flame configs; both are config fields.
"""

from __future__ import annotations

from visprior_jax.models.llama import LlamaConfig

_COMMON = dict(vocab_size=32000, max_seq_len=2048, rope_theta=10000.0, norm_eps=1e-6, tie_embeddings=False)

PRESETS: dict[str, dict] = {
    "llama3_340m": dict(_COMMON, num_layers=24, embed_dim=1024, num_heads=16, num_kv_heads=16, head_dim=64, mlp_dim=2688),
    "llama3_1b": dict(_COMMON, num_layers=16, embed_dim=2048, num_heads=32, num_kv_heads=8, head_dim=64, mlp_dim=7168),
    "llama3_3b": dict(_COMMON, num_layers=28, embed_dim=3072, num_heads=24, num_kv_heads=8, head_dim=128, mlp_dim=8192),
    "llama3_7b": dict(_COMMON, num_layers=32, embed_dim=4096, num_heads=32, num_kv_heads=8, head_dim=128, mlp_dim=14336),
    "llama3_13b": dict(_COMMON, num_layers=40, embed_dim=5120, num_heads=40, num_kv_heads=40, head_dim=128, mlp_dim=13824),
    # Small sizes for tests, the demo and CPU benchmarks.
    "llama3_tiny": dict(vocab_size=512, max_seq_len=128, num_layers=2, embed_dim=64, num_heads=4, num_kv_heads=2,
                        head_dim=16, mlp_dim=192, rope_theta=10000.0),
    "llama3_small": dict(vocab_size=1024, max_seq_len=256, num_layers=2, embed_dim=256, num_heads=4, num_kv_heads=2,
                         head_dim=64, mlp_dim=1024, rope_theta=500000.0),
    "llama3_cpu": dict(vocab_size=32000, max_seq_len=512, num_layers=4, embed_dim=1024, num_heads=16, num_kv_heads=8,
                       head_dim=64, mlp_dim=4096, rope_theta=500000.0),
}

# The size a preset's name claims (paper scales only), for the +-10% check.
NOMINAL_PARAMS = {"llama3_340m": 340e6, "llama3_1b": 1e9, "llama3_3b": 3e9, "llama3_7b": 7e9, "llama3_13b": 13e9}


def get(name: str, **overrides) -> LlamaConfig:
  if name not in PRESETS:
    raise ValueError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
  return LlamaConfig.from_dict({**PRESETS[name], **overrides})
