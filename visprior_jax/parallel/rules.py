"""The one table that maps logical axis names to mesh axes.

Model code names logical axes only (``visprior_jax.models.axes``); this module turns them into
``PartitionSpec``s for a given mesh. ``config.rules`` overrides entries of :data:`DEFAULT_RULES`
(values: a mesh axis, a tuple of mesh axes, or None for replicated).

Two rules keep every spec valid: a mesh axis is used at most once per array (later dimensions drop
an axis an earlier dimension took), and a dimension that a mesh axis does not divide is left
replicated on it (e.g. 2 kv heads on tensor=4); :func:`param_shardings` reports those fallbacks.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DEFAULT_RULES: dict[str, Any] = {
    # parameters
    "vocab": "tensor",
    "embed": "fsdp",
    "heads": "tensor",
    "kv_heads": "tensor",
    "head_dim": None,
    "mlp": "tensor",
    "layers": None,
    "norm": None,
    "vision_embed": None,
    # activations
    "act_batch": ("data", "fsdp"),
    "act_length": "sequence",
    "act_embed": None,
    "act_heads": "tensor",
    "act_kv_heads": "tensor",
    "act_head_dim": None,
    "act_mlp": "tensor",
    "act_vocab": "tensor",
}


class Rules:
  """Logical-to-mesh mapping bound to one mesh."""

  def __init__(self, mesh: Mesh, overrides: Mapping[str, Any] | None = None):
    table = dict(DEFAULT_RULES)
    for name, value in (overrides or {}).items():
      if name not in table:
        raise ValueError(f"rules: unknown logical axis {name!r}; known: {', '.join(table)}")
      table[name] = value
    for name, value in table.items():
      for axis in _as_tuple(value):
        if axis not in mesh.axis_names:
          raise ValueError(f"rules: {name!r} maps to {axis!r}, which is not a mesh axis {mesh.axis_names}")
    self.mesh, self.table = mesh, table

  def spec(self, logical: Sequence[str | None], shape: Sequence[int] | None = None) -> P:
    """PartitionSpec for an array with these logical axes (and, if given, this shape)."""
    used: set[str] = set()
    out = []
    for i, name in enumerate(logical):
      if name is not None and name not in self.table:
        raise ValueError(f"rules: no rule for logical axis {name!r}")
      axes = []
      for axis in _as_tuple(self.table.get(name) if name else None):
        size = self.mesh.shape[axis]
        if axis in used or size == 1:
          continue
        if shape is not None and shape[i] % (math.prod(self.mesh.shape[a] for a in axes) * size):
          continue
        axes.append(axis)
      used.update(axes)
      out.append(tuple(axes) if len(axes) > 1 else (axes[0] if axes else None))
    return P(*out)

  def sharding(self, logical, shape=None) -> NamedSharding:
    return NamedSharding(self.mesh, self.spec(logical, shape))

  def activation_resolver(self):
    """For ``models.axes.use_resolver``: (logical axes, shape) -> NamedSharding."""
    return lambda logical, shape=None: NamedSharding(self.mesh, self.spec(logical, shape))

  def batch_sharding(self, ndim: int = 2) -> NamedSharding:
    return self.sharding(("act_batch",) + (None,) * (ndim - 1))

  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, P())

  def data_parallel_size(self) -> int:
    return math.prod(self.mesh.shape[a] for a in _as_tuple(self.table["act_batch"]))


def param_shardings(rules: Rules, abstract: Any, logical: Any) -> Any:
  """NamedShardings for a params tree, given its shapes and logical axes (trees of equal shape)."""
  return jax.tree.map(lambda a, names: rules.sharding(names, a.shape), abstract, logical,
                      is_leaf=lambda x: isinstance(x, tuple))


def _as_tuple(value) -> tuple[str, ...]:
  if value is None:
    return ()
  return (value,) if isinstance(value, str) else tuple(value)
