"""Ahead-of-time compilation for TPU topologies on this CPU machine (parallel/aot.py, ``visprior aot``).

Needs libtpu (the test extra installs it on Linux x86_64); no TPU hardware. Real compiles use the
tiny preset on 4-chip v5e slices (seconds each); the search logic is also checked exactly against a
fake memory model, and the FLOP-count shortcut against a real unrolled TPU compile.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, pretrain_config, subprocess_env

from visprior_jax.parallel import aot
from visprior_jax.train.setup import build_step

pytestmark = pytest.mark.aot

if importlib.util.find_spec("libtpu") is None:
  if sys.platform == "linux" and platform.machine() == "x86_64":
    raise RuntimeError("tests/test_aot.py needs libtpu: pip install -e '.[test]' installs it")
  pytest.skip("libtpu has no wheel for this platform", allow_module_level=True)

VISPRIOR = os.path.join(os.path.dirname(sys.executable), "visprior")


def _sft_config(arg="tiny"):
  sys.path.insert(0, os.path.join(REPO, "configs"))
  spec = importlib.util.spec_from_file_location("sft_config", os.path.join(REPO, "configs", "sft.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


# ------------------------------------------------------------------------------------------ names


@pytest.mark.parametrize("name, shape, devices, config, per_host, wrap", [
    ("v5p-8", "v5p:2x2x1", 4, "megacore", (2, 2, 1), (False,) * 3),
    ("v5p-128", "v5p:4x4x4", 64, "megacore", (2, 2, 1), (True,) * 3),
    ("v5p-1024", "v5p:8x8x8", 512, "megacore", (2, 2, 1), (True,) * 3),
    ("v4-8", "v4:2x2x1", 4, "megacore", (2, 2, 1), (False,) * 3),
    ("v4-512", "v4:4x8x8", 256, "megacore", (2, 2, 1), (True,) * 3),
    ("v5e-4", "v5e:2x2", 4, "default", (2, 2, 1), (False,) * 3),
    ("v5litepod-8", "v5e:2x4", 8, "default", (2, 4, 1), (False,) * 3),
    ("v5e-256", "v5e:16x16", 256, "default", (2, 2, 1), (True, True, False)),
    ("v6e-8", "v6e:2x4", 8, "default", (2, 4, 1), (False,) * 3),
    ("v6e-64", "v6e:8x8", 64, "default", (2, 2, 1), (False,) * 3),
    ("V5P:4x4x8", "v5p:4x4x8", 128, "megacore", (2, 2, 1), (True,) * 3),
    ("v5e:1x1", "v5e:1x1", 1, "default", (1, 1, 1), (False,) * 3),
])
def test_topology_names_map_to_physical_shapes(name, shape, devices, config, per_host, wrap):
  topo = aot.parse_topology(name)
  assert (topo.topology_name, topo.num_devices, topo.chip.chip_config, topo.chips_per_host, topo.wrap) == \
      (shape, devices, config, per_host, wrap)
  assert aot.parse_topology(name, num_slices=3).num_devices == 3 * devices


def test_topology_aliases_and_hbm():
  assert aot.parse_topology("v5litepod-16").name == "v5e-16"
  assert aot.parse_topology("v5p-8").chip.hbm_bytes == 95 * aot.GiB
  assert {g: c.hbm_bytes // aot.GiB for g, c in aot.CHIPS.items()} == {"v4": 32, "v5e": 16, "v5p": 95, "v6e": 32}
  assert all(c.usable_hbm_bytes < c.hbm_bytes + aot.GiB for c in aot.CHIPS.values())
  with pytest.raises(aot.AotError, match="num_slices"):
    aot.parse_topology("v5e-4", num_slices=0)


@pytest.mark.parametrize("name, message", [
    ("v5p-7", "known v5p sizes: v5p-8, v5p-16"),        # cores must be even, and a known slice
    ("v5p-24", "known v5p sizes"),                      # 12 chips: not a Cloud TPU slice shape
    ("v5e-2", "known v5e sizes: v5e-1, v5e-4"),
    ("v6e-512", "known v6e sizes"),
    ("v7-8", "unknown topology 'v7-8'"),
    ("tpu", "use v4-<cores>"),
    ("v5e:2x2x2", "v5e slices are 2-D"),
    ("v5p:4x4", "v5p slices are 3-D"),
])
def test_unknown_topologies_are_one_line_errors(name, message):
  with pytest.raises(aot.AotError, match=message):
    aot.parse_topology(name)


def test_topology_devices_from_libtpu():
  for name, kind in (("v5e-4", "TPU v5 lite"), ("v5p-8", "TPU v5"), ("v4-8", "TPU v4"), ("v6e-8", "TPU v6 lite")):
    topo = aot.parse_topology(name)
    devices = aot.topology_devices(topo)
    assert len(devices) == topo.num_devices and devices[0].device_kind == kind == topo.chip.device_kind
  two = aot.topology_devices(aot.parse_topology("v5e-4", num_slices=2))
  assert sorted({d.slice_index for d in two}) == [0, 1] and len(two) == 8


# ------------------------------------------------------------------------------------------ inputs


def test_batch_spec_matches_the_real_sources():
  from PIL import Image
  from visprior_jax.data import multimodal as mm
  from visprior_jax.data.source import make_source
  from visprior_jax.data.tokenizers import ByteTokenizer
  from visprior_jax.train.tasks import make_task

  def described(batch):
    return {k: (tuple(v.shape), str(v.dtype)) for k, v in batch.items()}

  c = pretrain_config("llama3_tiny")
  source = make_source(c.data, c.train.batch_size, c.train.seq_len, c.seed, c.model.vocab_size)
  assert described(source.batch(0)) == aot.batch_spec(c, make_task(c))

  c = _sft_config("tiny")
  png = io.BytesIO()
  Image.new("RGB", (20, 12), (200, 10, 30)).save(png, "PNG")
  sample = mm.Sample(id="one", images=(png.getvalue(),), turns=(("user", "<image>\nColour?"), ("assistant", "Red.")))
  source = mm.MultimodalSource([sample], ByteTokenizer(), batch_size=c.train.batch_size, seq_len=c.train.seq_len,
                               family=c.data.family, resolution=c.data.resolution, max_images=c.data.max_images,
                               tokens_per_image=c.mllm.tokens_per_image, image_token_id=c.mllm.image_token_id)
  assert described(source.batch(0)) == aot.batch_spec(c, make_task(c))


# ------------------------------------------------------------------------------------------ compiles


def test_tiny_pretrain_step_compiles_for_v5e_and_fits():
  r = aot.compile_step(pretrain_config("llama3_tiny"), aot.parse_topology("v5e-4"), build_step, name="tiny")
  assert r.fits and r.verdict.startswith("FITS") and r.devices == 4 and r.device_kind == "TPU v5 lite"
  assert r.mesh == {"data": 1, "fsdp": 4, "sequence": 1, "tensor": 1}
  m = r.memory
  assert min(m["argument"], m["output"], m["alias"], m["generated_code"]) > 0 and m["temp"] >= 0   # tiny temps: VMEM
  assert m["total"] == m["argument"] + m["output"] - m["alias"] + m["temp"] + m["generated_code"]
  assert 0 < m["total"] < r.usable_hbm_bytes == aot.CHIPS["v5e"].usable_hbm_bytes
  assert r.collectives["all-gather"] > 0 and r.collectives["reduce-scatter"] + r.collectives["all-reduce"] > 0
  # scanned layers: the compiled count holds one layer; the unrolled count all of them, plus remat etc.
  assert r.xla_flops_unrolled > r.model_flops > 0 and r.xla_flops_unrolled > r.xla_flops_as_compiled
  assert r.per_device_batch == 2 and r.compile_s > 0
  assert "verdict: FITS" in r.summary() and json.dumps(r.to_dict())


def test_unrolled_flop_count_matches_a_real_unrolled_tpu_compile():
  c = pretrain_config("llama3_tiny")
  c.model.update(scan_layers=False, remat="full")
  topo = aot.parse_topology("v5e-4")
  r = aot.compile_step(c, topo, build_step)
  # Pre-optimisation HLO vs what the TPU compiler emits: 3% apart on this elementwise-heavy toy,
  # 0.1% on a 2-layer 7B step (matmul-dominated; parallel/aot.py).
  assert r.xla_flops_unrolled == pytest.approx(r.xla_flops_as_compiled, rel=0.05)


def test_multimodal_step_compiles_with_its_vision_tower():
  r = aot.compile_step(_sft_config("tiny"), aot.parse_topology("v5p-8"), build_step, flops=False)
  assert r.fits and r.memory["total"] > 0 and r.model["vision"] and r.device_kind == "TPU v5"


def test_two_slices_put_data_parallelism_across_slices():
  c = pretrain_config("llama3_tiny")
  topo = aot.parse_topology("v5e-4", num_slices=2)
  prepared = aot.prepare_config(c, topo)
  assert prepared.dcn_mesh.data == -1 and c.dcn_mesh.data == 1     # the caller's config is untouched
  setup = build_step(prepared, devices=aot.topology_devices(topo))
  assert dict(setup.mesh.shape) == {"data": 2, "fsdp": 4, "sequence": 1, "tensor": 1}
  slices = np.vectorize(lambda d: d.slice_index)(setup.mesh.devices)
  assert (slices[0] == slices[0].flat[0]).all() and (slices[1] == slices[1].flat[0]).all()
  assert slices[0].flat[0] != slices[1].flat[0]                     # data (DCN) splits the slices
  r = aot.compile_step(c, topo, build_step, flops=False)
  assert r.fits and r.num_slices == 2 and r.mesh["data"] == 2 and r.per_device_batch == 1
  # an explicit DCN layout is kept
  c.dcn_mesh.fsdp = 2
  assert aot.prepare_config(c, topo).dcn_mesh.to_dict() == {"data": 1, "fsdp": 2, "sequence": 1, "tensor": 1}


def test_out_of_memory_is_a_verdict_not_a_crash():
  c = pretrain_config("llama3_tiny")
  c.train.batch_size = 65536                     # 16384 sequences per chip: tens of GiB of logits
  r = aot.compile_step(c, aot.parse_topology("v5e-4"), build_step, flops=False)
  assert not r.fits and r.verdict.startswith("DOES NOT FIT") and "RESOURCE_EXHAUSTED" in r.oom_message
  assert r.oom_required_bytes > aot.CHIPS["v5e"].usable_hbm_bytes and not r.memory
  # a program that compiles but exceeds a (here artificially small) budget
  r = aot.compile_step(pretrain_config("llama3_tiny"), aot.parse_topology("v5e-4"), build_step, flops=False,
                       usable_hbm_bytes=2 ** 20)
  assert not r.fits and r.memory["total"] > 2 ** 20 and "DOES NOT FIT" in r.verdict


def test_oom_messages_parse():
  assert aot.parse_oom("RESOURCE_EXHAUSTED: Ran out of memory on HBM, the total memory required for HLO "
                       "temporaries (41.71G) exceeds available HBM (15.75G).") == \
      (int(41.71 * aot.GiB), int(15.75 * aot.GiB))
  assert aot.parse_oom("Ran out of memory in memory space hbm. Used 20.50G of 15.48G hbm.") == \
      (int(20.5 * aot.GiB), int(15.48 * aot.GiB))
  assert aot.parse_oom("something else") == (None, None)
  assert aot.is_oom(RuntimeError("RESOURCE_EXHAUSTED: ...")) and not aot.is_oom(RuntimeError("INVALID_ARGUMENT"))


def test_collective_counts_from_tpu_hlo_text():
  hlo = """HloModule jit_step

%all-reduce-scatter.1.clone (input: bf16[8]) -> bf16[2] {
  %all-reduce.3 = bf16[8]{0} all-reduce(%input), channel_id=1, to_apply=%add
}

ENTRY %main (p: bf16[8]) -> bf16[8] {
  %all-gather.82 = bf16[1,8]{1,0} all-gather(%p), channel_id=2, dimensions={1}
  %ags = (bf16[2], bf16[8]) all-gather-start(%p), channel_id=3
  %agd = bf16[8] all-gather-done(%ags)
  %fusion.7 = bf16[2]{0} fusion(%x), kind=kCustom, calls=%all-reduce-scatter.1.clone
  %all-reduce.9 = f32[] all-reduce(%y), channel_id=4, to_apply=%add
  %all-to-all = bf16[4,2]{1,0} all-to-all(%z), channel_id=5, dimensions={0}
  %cp = bf16[8] collective-permute(%p), source_target_pairs={{0,1}}
}
"""
  assert aot.count_collectives(hlo) == {"all-gather": 2, "reduce-scatter": 1, "all-reduce": 1, "all-to-all": 1,
                                        "collective-permute": 1}


# ------------------------------------------------------------------------------------------ search


def test_search_logic_on_a_fake_memory_model(monkeypatch):
  """Memory = b x cost(policy) against a budget of 10: none fits b<=2, minimal b<=2, dots b<=4,
  dots_except_mlp b<=4, full b<=8 (capped at 8 by the global batch)."""
  cost = {"none": 4, "minimal": 3.5, "dots": 2.5, "dots_except_mlp": 2, "full": 1}
  seen = []

  def fake_compile(config, topo, build, **kw):
    b = config.train.batch_size // config.train.grad_accum // 4
    seen.append((config.model.remat, b))
    fits = b * cost[config.model.remat] <= 10
    return aot.AotResult(**{**_blank(), "fits": fits, "memory": {"total": b} if fits else {}, "verdict": str(fits)})

  monkeypatch.setattr(aot, "compile_step", fake_compile)
  c = pretrain_config("llama3_tiny")
  c.train.batch_size = 32                                         # 8 per chip on v5e-4
  found = aot.search(c, aot.parse_topology("v5e-4"), build_step)
  assert found.best_per_policy == {"none": 2, "minimal": 2, "dots": 4, "dots_except_mlp": 4, "full": 8}
  assert (found.remat, found.per_device_batch, found.grad_accum) == ("full", 8, 1)
  assert len(seen) == len(set(seen)) <= 12                        # no compile twice; doubling from the last best
  assert "recommended: --config.model.remat=full --config.train.grad_accum=1" in found.summary()
  # the budget only fits b=1 without remat: halving down works, and the cheapest policy wins ties
  cost.update(none=6, minimal=6, dots=6, dots_except_mlp=6, full=6)
  found = aot.search(c, aot.parse_topology("v5e-4"), build_step)
  assert (found.remat, found.per_device_batch, found.grad_accum) == ("none", 1, 8)
  cost.update(full=11, none=11, minimal=11, dots=11, dots_except_mlp=11)
  found = aot.search(c, aot.parse_topology("v5e-4"), build_step)
  assert found.remat is None and "nothing fits" in found.summary()


def _blank():
  return dict(topology="", topology_shape="", num_slices=1, devices=4, device_kind="", mesh={}, model={}, params=0,
              remat="", scan_layers=True, attention="xla", dtype="float32", global_batch=0, seq_len=0, grad_accum=1,
              per_device_batch=0, fits=False, verdict="", hbm_bytes=1, usable_hbm_bytes=1)


def test_search_compiles_a_small_case():
  c = pretrain_config("llama3_tiny")
  c.train.batch_size = 16                                         # micro-batch 1, 2 or 4 per chip
  found = aot.search(c, aot.parse_topology("v5e-4"), build_step, policies=("none", "full"))
  assert (found.remat, found.per_device_batch, found.grad_accum) == ("none", 4, 1)
  # micro-batch 4 is the cap (16 / 4 chips): once it fits without remat, nothing else is tried
  assert [(t["remat"], t["per_device_batch"]) for t in found.tries] == [("none", 1), ("none", 2), ("none", 4)]
  assert found.best_per_policy == {"none": 4}
  assert all(t["fits"] and t["total_bytes"] > 0 for t in found.tries)


# ------------------------------------------------------------------------------------------ CLI


def test_cli_aot_reports_a_verdict(tmp_path):
  out = tmp_path / "aot.json"
  proc = subprocess.run([VISPRIOR, "aot", "--config=configs/pretrain.py:llama3_tiny", "--topology=v5e-4",
                         f"--out={out}"], cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "verdict: FITS" in proc.stdout and "memory/device" in proc.stdout and "v5e:2x2" in proc.stdout
  report = json.loads(out.read_text())
  assert report["fits"] and report["memory"]["total"] > 0 and report["topology"] == "v5e-4"
  proc = subprocess.run([VISPRIOR, "aot", "--config=configs/pretrain.py:llama3_tiny", "--topology=v5p-7"],
                        cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2 and "error: unknown topology 'v5p-7'" in proc.stderr
