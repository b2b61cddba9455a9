"""NNX modules as pure functions of plain parameter dicts (for jit, checkpoints, converters).

Every model class here is built as ``Cls(cfg, rngs=nnx.Rngs(seed))`` with a hashable config. These
helpers give its parameters as nested dicts of arrays (or ShapeDtypeStructs), their logical axes
(the ``logical_axes`` metadata on each ``nnx.Param``), and rebuild the module around a dict inside
traced code. ``functional.py`` (Llama), ``vit.py`` and ``mllm.py`` expose them per model.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
from flax import nnx

Params = dict[str, Any]


@functools.lru_cache(maxsize=64)
def _skeleton(cls, cfg):
  return nnx.split(nnx.eval_shape(lambda: cls(cfg, rngs=nnx.Rngs(0))))


def _is_var(x):
  return isinstance(x, nnx.Variable)


def abstract_params(cls, cfg) -> Params:
  """jax.ShapeDtypeStruct for every parameter, without allocating anything."""
  return nnx.to_pure_dict(_skeleton(cls, cfg)[1])


def logical_axes(cls, cfg) -> Params:
  """The logical axis names of every parameter, as a dict shaped like the params."""
  _, state = _skeleton(cls, cfg)
  return nnx.to_pure_dict(jax.tree.map(lambda v: v.replace(v.get_metadata()["logical_axes"]), state,
                                       is_leaf=_is_var))


def init_params(cls, cfg, seed: int = 42) -> Params:
  """Fresh parameters (call under jax.jit with out_shardings to create them sharded)."""
  return nnx.to_pure_dict(nnx.state(cls(cfg, rngs=nnx.Rngs(seed))))


def bind(cls, cfg, params: Params):
  """A module whose parameters are ``params`` (no copy; fine inside jit)."""
  graphdef, state = _skeleton(cls, cfg)
  state = jax.tree.map(lambda v: v, state, is_leaf=_is_var)  # a fresh State to fill
  nnx.replace_by_pure_dict(state, params)
  return nnx.merge(graphdef, state)
