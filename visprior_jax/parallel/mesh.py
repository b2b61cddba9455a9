"""Device meshes from config.

Mesh axes, outermost first: ``data`` (pure data parallel), ``fsdp`` (data parallel with sharded
parameters and optimizer state), ``sequence`` (reserved for context parallelism; size 1 for now),
``tensor`` (tensor parallel: heads, mlp, vocab). Sizes come from ``config.mesh``, a mapping of axis
to size where exactly one axis may be ``-1`` (all remaining devices go there).
"""

from __future__ import annotations

import math
from typing import Mapping

import jax
import numpy as np
from jax.sharding import Mesh

AXES = ("data", "fsdp", "sequence", "tensor")


class MeshError(ValueError):
  pass


def resolve_shape(sizes: Mapping[str, int], num_devices: int) -> dict[str, int]:
  """Fills in the one ``-1`` axis and checks that the product is the device count."""
  unknown = sorted(set(sizes) - set(AXES))
  if unknown:
    raise MeshError(f"mesh has unknown axes {unknown}; axes are {', '.join(AXES)}")
  shape = {a: int(sizes.get(a, 1)) for a in AXES}
  auto = [a for a, s in shape.items() if s == -1]
  if len(auto) > 1:
    raise MeshError(f"mesh axes {auto} are all -1; at most one axis may be inferred")
  if any(s == 0 or s < -1 for s in shape.values()):
    raise MeshError(f"mesh sizes must be positive or -1, got {shape}")
  known = math.prod(s for s in shape.values() if s != -1)
  if auto:
    if num_devices % known:
      raise MeshError(f"mesh {_fmt(shape)}: the fixed axes use {known} devices, which does not "
                      f"divide the {num_devices} devices available")
    shape[auto[0]] = num_devices // known
  elif known != num_devices:
    raise MeshError(f"mesh {_fmt(shape)} needs {known} devices but {num_devices} are available; "
                    f"set one axis to -1 or change the sizes")
  if shape["sequence"] != 1:
    raise MeshError("mesh.sequence > 1 (context parallelism) is reserved and not implemented yet")
  return shape


def make_mesh(sizes: Mapping[str, int], devices=None) -> Mesh:
  devices = jax.devices() if devices is None else list(devices)
  shape = resolve_shape(sizes, len(devices))
  dims = tuple(shape[a] for a in AXES)
  try:
    from jax.experimental import mesh_utils
    grid = mesh_utils.create_device_mesh(dims, devices=devices)
  except Exception:  # noqa: BLE001 - fake CPU devices or unusual topologies: keep device order
    grid = np.asarray(devices).reshape(dims)
  return Mesh(grid, AXES)


def _fmt(shape):
  return " ".join(f"{a}={s}" for a, s in shape.items())
