"""Device meshes from config.

Mesh axes, outermost first: ``data`` (pure data parallel), ``fsdp`` (data parallel with sharded
parameters and optimizer state), ``sequence`` (reserved for context parallelism; size 1 for now),
``tensor`` (tensor parallel: heads, mlp, vocab). Sizes come from ``config.mesh``, a mapping of axis
to size where exactly one axis may be ``-1`` (all remaining devices go there).

Multi-slice and multi-host-group runs add ``config.dcn_mesh``: how many *granules* (TPU slices, or
processes/hosts when the devices carry no slice index) each axis spans across the slow data-centre
network. ``config.mesh`` then gives the sizes *within* one granule (ICI), and the mesh axis ``a`` has
``mesh[a] * dcn_mesh[a]`` devices, granule-major: an axis's DCN factor is its outermost part, so
collectives over it cross slices once. Put data parallelism on DCN (``dcn_mesh.data=-1``): it only
all-reduces gradients once per step. One DCN axis may be ``-1`` (all granules).
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


def num_granules(devices) -> tuple[int, str]:
  """(number of DCN granules, their kind): TPU slices when devices carry ``slice_index``, else processes."""
  slices = {getattr(d, "slice_index", None) for d in devices}
  if None not in slices and len(slices) > 1:
    return len(slices), "slice"
  return len({d.process_index for d in devices}), "process"


def resolve_hybrid(sizes: Mapping[str, int], dcn: Mapping[str, int] | None, num_devices: int,
                   granules: int) -> tuple[dict[str, int], dict[str, int]]:
  """(ICI shape within a granule, DCN shape across granules); without ``dcn`` everything is ICI."""
  if not dcn or all(int(v) == 1 for v in dcn.values()):
    return resolve_shape(sizes, num_devices), {a: 1 for a in AXES}
  try:
    dcn_shape = resolve_shape(dcn, granules)
  except MeshError as e:
    raise MeshError(f"dcn_mesh: {e} (granules = {granules} slices/processes)") from None
  if num_devices % granules:
    raise MeshError(f"{num_devices} devices do not split evenly over {granules} slices/processes")
  return resolve_shape(sizes, num_devices // granules), dcn_shape


def mesh_shape(sizes: Mapping[str, int], dcn: Mapping[str, int] | None, devices) -> dict[str, int]:
  """Total devices per axis (ICI x DCN) for these devices."""
  ici, dcn_shape = resolve_hybrid(sizes, dcn, len(devices), num_granules(devices)[0])
  return {a: ici[a] * dcn_shape[a] for a in AXES}


def make_mesh(sizes: Mapping[str, int], devices=None, dcn: Mapping[str, int] | None = None) -> Mesh:
  """The mesh for ``sizes`` (ICI) and optionally ``dcn`` (across slices or processes; see module doc)."""
  devices = jax.devices() if devices is None else list(devices)
  granules, kind = num_granules(devices)
  ici, dcn_shape = resolve_hybrid(sizes, dcn, len(devices), granules)
  from jax.experimental import mesh_utils
  if any(v > 1 for v in dcn_shape.values()):
    try:
      grid = mesh_utils.create_hybrid_device_mesh(
          tuple(ici[a] for a in AXES), tuple(dcn_shape[a] for a in AXES), devices=devices,
          process_is_granule=kind == "process", allow_split_physical_axes=True)
    except Exception:  # noqa: BLE001 - fake CPU devices: granule-major order by hand
      grid = _granule_major(devices, ici, dcn_shape, kind)
    return Mesh(grid, AXES)
  dims = tuple(ici[a] for a in AXES)
  try:
    grid = mesh_utils.create_device_mesh(dims, devices=devices, allow_split_physical_axes=True)
  except Exception:  # noqa: BLE001 - fake CPU devices or unusual topologies: keep device order
    grid = np.asarray(devices).reshape(dims)
  return Mesh(grid, AXES)


def _granule_major(devices, ici, dcn, kind) -> np.ndarray:
  """devices grouped by granule; axis a = (dcn[a] granules) x (ici[a] devices within one)."""
  key = (lambda d: d.slice_index) if kind == "slice" else (lambda d: d.process_index)
  groups: dict = {}
  for d in sorted(devices, key=lambda d: (key(d), d.id)):
    groups.setdefault(key(d), []).append(d)
  per = np.asarray([groups[g] for g in sorted(groups)], dtype=object)          # (granules, devices per granule)
  n = len(AXES)
  arr = per.reshape(tuple(dcn[a] for a in AXES) + tuple(ici[a] for a in AXES))
  arr = arr.transpose([i // 2 + (n if i % 2 else 0) for i in range(2 * n)])     # interleave (dcn_a, ici_a)
  return arr.reshape(tuple(dcn[a] * ici[a] for a in AXES))


def _fmt(shape):
  return " ".join(f"{a}={s}" for a, s in shape.items())
