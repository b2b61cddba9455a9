"""The model as pure functions of a parameter dict: what jit, checkpoints and converters use.

Parameters travel as plain nested dicts of arrays (``params["blocks"]["attn"]["wq"]``; the layout is
in ``llama.py``'s docstring). NNX modules are rebuilt from them inside traced functions with
:func:`bind`, so optimizer states, orbax checkpoints and HF converters never see NNX objects.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
from flax import nnx

from visprior_jax.models.llama import Llama, LlamaConfig

Params = dict[str, Any]


@functools.lru_cache(maxsize=32)
def _skeleton(cfg: LlamaConfig):
  model = nnx.eval_shape(lambda: Llama(cfg, rngs=nnx.Rngs(0)))
  graphdef, state = nnx.split(model)
  return graphdef, state


def _is_var(x):
  return isinstance(x, nnx.Variable)


def logical_axes(cfg: LlamaConfig) -> Params:
  """The logical axis names of every parameter, as a dict shaped like the params."""
  _, state = _skeleton(cfg)
  return nnx.to_pure_dict(jax.tree.map(lambda v: v.replace(v.get_metadata()["logical_axes"]), state,
                                       is_leaf=_is_var))


def abstract_params(cfg: LlamaConfig) -> Params:
  """jax.ShapeDtypeStruct for every parameter, without allocating anything."""
  _, state = _skeleton(cfg)
  return nnx.to_pure_dict(state)


def init_params(cfg: LlamaConfig, seed: int = 42) -> Params:
  """Fresh parameters (call under jax.jit with out_shardings to create them sharded)."""
  return nnx.to_pure_dict(nnx.state(Llama(cfg, rngs=nnx.Rngs(seed))))


def bind(cfg: LlamaConfig, params: Params) -> Llama:
  """An NNX Llama whose parameters are ``params`` (no copy; fine inside jit)."""
  graphdef, state = _skeleton(cfg)
  state = jax.tree.map(lambda v: v, state, is_leaf=_is_var)  # a fresh State to fill
  nnx.replace_by_pure_dict(state, params)
  return nnx.merge(graphdef, state)


def apply(cfg: LlamaConfig, params: Params, tokens, positions=None, segment_ids=None):
  """logits (B,T,V) float32 for int tokens (B,T)."""
  return bind(cfg, params)(tokens, positions, segment_ids)
