"""The Llama as pure functions of a parameter dict: what jit, checkpoints and converters use.

Parameters travel as plain nested dicts of arrays (``params["blocks"]["attn"]["wq"]``; the layout is
in ``llama.py``'s docstring). NNX modules are rebuilt from them inside traced functions with
:func:`bind`, so optimizer states, orbax checkpoints and HF converters never see NNX objects.
"""

from __future__ import annotations

from visprior_jax.models import pure
from visprior_jax.models.llama import KVCache, Llama, LlamaConfig

Params = pure.Params


def logical_axes(cfg: LlamaConfig) -> Params:
  return pure.logical_axes(Llama, cfg)


def abstract_params(cfg: LlamaConfig) -> Params:
  return pure.abstract_params(Llama, cfg)


def init_params(cfg: LlamaConfig, seed: int = 42) -> Params:
  return pure.init_params(Llama, cfg, seed)


def bind(cfg: LlamaConfig, params: Params) -> Llama:
  return pure.bind(Llama, cfg, params)


def apply(cfg: LlamaConfig, params: Params, tokens, positions=None, segment_ids=None):
  """logits (B,T,V) float32 for int tokens (B,T)."""
  return bind(cfg, params)(tokens, positions, segment_ids)


def prefill(cfg: LlamaConfig, params: Params, inputs, positions, valid, cache: KVCache):
  """(logits (B,V) at the last slot, cache) for a left-padded prompt; see ``Llama.prefill``."""
  return bind(cfg, params).prefill(inputs, positions, valid, cache)


def decode_step(cfg: LlamaConfig, params: Params, tokens, positions, cache: KVCache):
  """(logits (B,V), cache) for one new token per row (B,1); see ``Llama.decode_step``."""
  return bind(cfg, params).decode_step(tokens, positions, cache)
