"""ICI x DCN (multi-slice / multi-process) meshes: shapes, granule-major layout, clear errors."""

import dataclasses

import numpy as np
import pytest

from visprior_jax.parallel import mesh as mesh_lib


@dataclasses.dataclass(frozen=True)
class FakeDevice:
  id: int
  process_index: int
  slice_index: int | None = None


def _devices(granules, per, slices=True):
  return [FakeDevice(g * per + i, g if not slices else 0, g if slices else None)
          for g in range(granules) for i in range(per)]


def test_granules_are_slices_else_processes():
  assert mesh_lib.num_granules(_devices(2, 4)) == (2, "slice")
  assert mesh_lib.num_granules(_devices(3, 2, slices=False)) == (3, "process")
  assert mesh_lib.num_granules(_devices(1, 8)) == (1, "process")


def test_resolve_hybrid_infers_one_axis_on_each_network():
  ici, dcn = mesh_lib.resolve_hybrid({"fsdp": -1, "tensor": 2}, {"data": -1}, 16, 2)
  assert ici == {"data": 1, "fsdp": 4, "sequence": 1, "tensor": 2}
  assert dcn == {"data": 2, "fsdp": 1, "sequence": 1, "tensor": 1}
  assert mesh_lib.mesh_shape({"fsdp": -1, "tensor": 2}, {"data": -1}, _devices(2, 8)) == \
      {"data": 2, "fsdp": 4, "sequence": 1, "tensor": 2}
  with pytest.raises(mesh_lib.MeshError, match="dcn_mesh: .*granules = 2"):
    mesh_lib.resolve_hybrid({"fsdp": -1}, {"data": 4}, 16, 2)


@pytest.mark.parametrize("slices", [True, False])
def test_granule_major_layout_keeps_each_granule_together_on_the_dcn_axis(slices):
  devices = _devices(2, 4, slices)
  ici, dcn = mesh_lib.resolve_hybrid({"fsdp": 2, "tensor": 2}, {"data": 2}, 8, 2)
  grid = mesh_lib._granule_major(devices, ici, dcn, "slice" if slices else "process")
  assert grid.shape == (2, 2, 1, 2)
  granule = np.vectorize(lambda d: d.slice_index if slices else d.process_index)(grid)
  assert (granule[0] == 0).all() and (granule[1] == 1).all()      # data (DCN) splits the granules
  # a DCN factor on fsdp with ICI fsdp 2: the granule is the outer part of the fsdp axis
  ici, dcn = mesh_lib.resolve_hybrid({"fsdp": 2, "tensor": 2}, {"fsdp": 2}, 8, 2)
  grid = mesh_lib._granule_major(devices, ici, dcn, "slice" if slices else "process")
  assert grid.shape == (1, 4, 1, 2)
  granule = np.vectorize(lambda d: d.slice_index if slices else d.process_index)(grid)
  assert granule[0, :, 0, 0].tolist() == [0, 0, 1, 1]


def test_single_granule_mesh_is_unchanged():
  import jax
  mesh = mesh_lib.make_mesh({"fsdp": 4, "tensor": 2}, dcn={"data": 1})
  assert dict(mesh.shape) == {"data": 1, "fsdp": 4, "sequence": 1, "tensor": 2}
  assert mesh.devices.size == len(jax.devices())
