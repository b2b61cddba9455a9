"""Ahead-of-time compilation of the training step for a TPU topology, from any (CPU) machine.

``visprior aot --config=<stage config> --topology=v5p-128 [--num_slices=N] [--search]`` answers
"does this run fit, and how" before a pod is booked: it builds the *same* step the trainer runs
(``train.setup.build_step`` with the topology's devices, so the same validation, mesh, rules,
shardings, optimizer, remat and donation), feeds ``jax.ShapeDtypeStruct`` stand-ins for the
parameters, optimizer state and batch (nothing is allocated), lowers, and compiles with libtpu
(``pip install 'visprior_jax[tpu]'``). MaxText's ``train_compile.py`` does the same for its trainer
(ANCHORS.md 1.3); the topology names, megacore and chips-per-host conventions below follow Cloud
TPU's.

Topologies. ``v4-<cores>`` and ``v5p-<cores>`` count TensorCores, two per chip; both run in
megacore mode (one JAX device per chip). ``v5e-<chips>`` (also ``v5litepod-<chips>``) and
``v6e-<chips>`` count chips (one TensorCore each). The physical shapes are Cloud TPU's (3-D for
v4/v5p, 2-D for v5e/v6e); a raw ``v5p:4x4x8`` names any other shape. Hosts hold 4 chips (2x2x1),
except single-host v5e/v6e slices of 1, 4 or 8 chips. Wrap-around links (tori) are assumed for
v4/v5p slices whose every side is a multiple of 4 (full 4x4x4 cubes) and for the full 16x16 v5e/v6e
pod; smaller slices are open meshes. ``num_slices > 1`` gives devices a ``slice_index``; when the
config puts nothing on DCN (all ``dcn_mesh`` sizes 1), data parallelism goes across slices
(``dcn_mesh.data=-1``: the only collective over DCN is then one gradient all-reduce per step;
parallel/mesh.py).

Memory, per device, from ``compiled.memory_analysis()``: arguments + outputs - aliased (donated
parameters and optimizer state are updated in place) + temporaries + generated code = total. HBM
per chip: the nominal capacity (Cloud TPU system-architecture pages: v4 32 GiB, v5e 16 GiB,
v5p 95 GiB, v6e 32 GiB) and the capacity the TPU compiler itself allows, read from its
out-of-memory messages with libtpu 0.0.42.1 (v4 30.75, v5e 15.75, v5p 95.74, v6e 31.25 GiB: the
runtime keeps the rest). The verdict uses the compiler's figure with a 5% headroom margin for what a
compiled program does not show: the trainer's next batch already on the device, allocator
fragmentation, runtime buffers. A program over the capacity does not compile: the compiler raises
RESOURCE_EXHAUSTED, which is caught and reported as "does not fit" with its numbers.

FLOPs. ``compiled.cost_analysis()`` counts a ``lax.scan`` body once, so with ``scan_layers`` (the
default: compiles of 40 unrolled 13B layers take many minutes) it misses all but one layer. The
hardware FLOPs are instead counted on the *unrolled* step (same config, ``scan_layers=False`` and
``grad_accum=1`` over the same global batch: the same arithmetic) by XLA's HLO cost analysis of the
pre-optimisation program, which needs a lowering only, not a TPU compile. That program is global
(not yet partitioned), so the figure is divided by the device count; checked against a TPU compile
of an unrolled 2-layer 7B step it agrees to 0.1%. It includes remat recomputation, attention over
the full map, the optimizer and elementwise work, so it exceeds the model FLOPs of
``models.flops`` (the MFU definition) by ~1/3 with full remat. The cost analysis goes through a
private jaxlib entry point; if it is unavailable the figure is left out and the scan-once figure is
shown, labelled.

Collectives: static counts of all-gather, reduce-scatter, all-reduce, all-to-all and
collective-permute ops in the compiled HLO (async start/done pairs count once; TPU reduce-scatters
are fusions calling an ``all-reduce-scatter`` computation). A scan body's ops count once.

Search (``--search``): the global batch is the recipe's and stays fixed; what varies is the
per-device micro-batch ``b`` (powers of two up to ``global / data-parallel size``, with
``grad_accum = global / (b x data-parallel size)``) and the remat policy. Policies are tried from
the least recompute to the most, stopping once the largest micro-batch fits: none < minimal < dots
< dots_except_mlp < full. That order (not minimal < dots_except_mlp < dots) follows what each saves
in ``models/llama.py::remat_policy``: ``minimal`` keeps every projection output (q/k/v, attention
output, MLP gate/up and down) and the attention context; ``dots`` keeps the same projections but not
the context, so it recomputes QK^T and AV (cheap next to the MLP); ``dots_except_mlp`` keeps q/k/v,
the context and the attention output and recomputes the three MLP matmuls (most of a layer's
FLOPs), trading two mlp-wide tensors for one embed-wide one; ``full`` keeps nothing. Down that list
memory falls and recompute rises. For each
policy the largest fitting ``b`` is found by doubling from the previous policy's (halving if that
fails); the recommendation is the largest ``b`` overall at the cheapest policy reaching it.

Layering: this module sits in ``parallel/``, below ``train/`` (DESIGN.md's import order), so it does
not import the trainer: callers pass ``train.setup.build_step`` in (``build``), as the CLI and
scripts/scale_table.py do. Limitation: ``attention=splash`` picks its Pallas interpret mode from
``jax.default_backend()``, which is the CPU here, so AOT of a splash config would compile the
interpreter rather than the Mosaic kernel; the scale table uses the XLA attention (it materialises
the score matrix, so its memory is an upper bound for a splash run).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import math
import os
import re
import sys
import tempfile
import time
from typing import Any, Callable

GiB = 1024 ** 3
HEADROOM = 0.05            # share of the compiler's HBM kept free for what the program does not show
REMAT_ORDER = ("none", "minimal", "dots", "dots_except_mlp", "full")   # least recompute first


# ``train.setup.build_step``: (config, devices=...) -> StepSetup. Passed in, because parallel/ sits
# below train/ in the import order (DESIGN.md); the CLI and scripts/scale_table.py pass it.
Build = Callable[..., Any]


class AotError(ValueError):
  """A topology name, option or environment problem, said in one line."""


@dataclasses.dataclass(frozen=True)
class Chip:
  generation: str            # v4 | v5e | v5p | v6e
  device_kind: str           # jax Device.device_kind of its AOT devices
  hbm_bytes: int             # nominal HBM per chip
  usable_hbm_bytes: int      # what the TPU compiler allows a program (its out-of-memory messages)
  peak_flops: float          # bf16 dense FLOP/s per chip (DESIGN.md)
  dims: int                  # torus dimensions
  cores_in_name: bool        # the "-N" suffix counts TensorCores (2 per chip) rather than chips

  @property
  def chip_config(self) -> str:
    return "megacore" if self.cores_in_name else "default"


CHIPS = {
    "v4": Chip("v4", "TPU v4", 32 * GiB, int(30.75 * GiB), 275e12, 3, True),
    "v5e": Chip("v5e", "TPU v5 lite", 16 * GiB, int(15.75 * GiB), 197e12, 2, False),
    "v5p": Chip("v5p", "TPU v5", 95 * GiB, int(95.74 * GiB), 459e12, 3, True),
    "v6e": Chip("v6e", "TPU v6 lite", 32 * GiB, int(31.25 * GiB), 918e12, 2, False),
}
_ALIASES = {"v5litepod": "v5e", "v5": "v5p"}

# chips -> physical shape (Cloud TPU's published slice shapes); other shapes: pass them raw (v5p:4x4x20).
SHAPES_3D = {4: (2, 2, 1), 8: (2, 2, 2), 16: (2, 2, 4), 32: (2, 4, 4), 64: (4, 4, 4), 128: (4, 4, 8),
             192: (4, 4, 12), 256: (4, 8, 8), 384: (4, 8, 12), 512: (8, 8, 8), 768: (8, 8, 12),
             1024: (8, 8, 16), 2048: (8, 16, 16), 3072: (12, 16, 16), 4096: (16, 16, 16), 6144: (16, 16, 24)}
SHAPES_2D = {1: (1, 1), 4: (2, 2), 8: (2, 4), 16: (4, 4), 32: (4, 8), 64: (8, 8), 128: (8, 16), 256: (16, 16)}
MAX_CHIPS = {"v4": 4096, "v5p": 6144, "v5e": 256, "v6e": 256}


@dataclasses.dataclass(frozen=True)
class Topology:
  name: str                       # as given, normalised: v5p-128, v5e:4x4
  chip: Chip
  shape: tuple[int, ...]          # chips per dimension of one slice
  chips_per_host: tuple[int, int, int]
  wrap: tuple[bool, bool, bool]
  num_slices: int = 1

  @property
  def topology_name(self) -> str:
    return f"{self.chip.generation}:{'x'.join(map(str, self.shape))}"

  @property
  def devices_per_slice(self) -> int:
    return math.prod(self.shape)

  @property
  def num_devices(self) -> int:
    return self.devices_per_slice * self.num_slices

  def describe(self) -> str:
    slices = f"{self.num_slices} x " if self.num_slices > 1 else ""
    return (f"{slices}{self.name} ({self.topology_name}, {self.num_devices} devices, {self.chip.device_kind}"
            f"{', megacore' if self.chip.cores_in_name else ''})")


def parse_topology(name: str, num_slices: int = 1) -> Topology:
  """``v5p-128``, ``v4-8``, ``v5e-16``, ``v5litepod-16``, ``v6e-8`` or a raw ``v5p:4x4x8``."""
  text = name.strip().lower()
  if num_slices < 1:
    raise AotError(f"--num_slices={num_slices} must be at least 1")
  raw = re.fullmatch(r"(v4|v5p|v5|v5e|v5litepod|v6e):(\d+(?:x\d+){1,2})", text)
  named = re.fullmatch(r"(v4|v5p|v5e|v5litepod|v6e)-(\d+)", text)
  if raw:
    gen = _ALIASES.get(raw.group(1), raw.group(1))
    chip = CHIPS[gen]
    shape = tuple(int(x) for x in raw.group(2).split("x"))
    if len(shape) != chip.dims or min(shape) < 1:
      raise AotError(f"topology {name!r}: {gen} slices are {chip.dims}-D, e.g. "
                     f"{gen}:{'x'.join(['2'] * chip.dims)}")
  elif named:
    gen = _ALIASES.get(named.group(1), named.group(1))
    chip, n = CHIPS[gen], int(named.group(2))
    chips = n // 2 if chip.cores_in_name else n
    table = SHAPES_3D if chip.dims == 3 else SHAPES_2D
    if (chip.cores_in_name and n % 2) or chips not in table or chips > MAX_CHIPS[gen]:
      unit = 2 if chip.cores_in_name else 1
      known = ", ".join(f"{gen}-{c * unit}" for c in sorted(table) if c <= MAX_CHIPS[gen])
      raise AotError(f"unknown topology {name!r}; known {gen} sizes: {known}; or give the shape, e.g. "
                     f"{gen}:{'x'.join(map(str, table[max(c for c in table if c <= MAX_CHIPS[gen])]))}")
    shape = table[chips]
    text = f"{gen}-{n}"
  else:
    raise AotError(f"unknown topology {name!r}: use v4-<cores>, v5p-<cores>, v5e-<chips> (v5litepod-<chips>), "
                   f"v6e-<chips>, or a shape such as v5p:4x4x8 or v5e:4x4")
  chips = math.prod(shape)
  if chip.dims == 3:
    per_host = (2, 2, 1) if chips >= 4 and shape[0] % 2 == 0 and shape[1] % 2 == 0 else (*shape,)
    wrap = (True,) * 3 if all(s % 4 == 0 for s in shape) else (False,) * 3
  else:
    per_host = (shape[0], shape[1], 1) if chips <= 8 else (2, 2, 1)
    wrap = (True, True, False) if shape == (16, 16) else (False,) * 3
  return Topology(text, chip, shape, per_host, wrap, int(num_slices))


# ------------------------------------------------------------------------------------------ devices


def _check_libtpu() -> None:
  if importlib.util.find_spec("libtpu") is None:
    raise AotError("AOT compilation for TPU needs libtpu: pip install 'visprior_jax[tpu]' "
                   "(or pip install 'jax[tpu]'); no TPU hardware is needed")


@contextlib.contextmanager
def _quiet_stderr():
  """Hides libtpu's start-up complaints about missing TPU hardware (C++ writes to fd 2); shows them
  if the block fails."""
  try:
    saved = os.dup(2)
  except OSError:
    yield
    return
  with tempfile.TemporaryFile() as tmp:
    sys.stderr.flush()
    os.dup2(tmp.fileno(), 2)
    try:
      yield
    except BaseException:
      os.dup2(saved, 2)
      tmp.seek(0)
      sys.stderr.write(tmp.read().decode(errors="replace"))
      raise
    finally:
      os.dup2(saved, 2)
      os.close(saved)


_DEVICES: dict = {}


def topology_devices(topo: Topology) -> list:
  """The topology's (compile-only) devices, from libtpu; no TPU hardware needed."""
  _check_libtpu()
  # Compile-only use never touches TPU hardware, so concurrent AOT processes (tests, the scale
  # table's workers, other sessions) are safe; libtpu otherwise allows one process per machine.
  if "tpu" not in os.environ.get("JAX_PLATFORMS", "cpu"):
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  key = (topo.topology_name, topo.chips_per_host, topo.wrap, topo.num_slices)
  if key not in _DEVICES:
    from jax.experimental import topologies
    with _quiet_stderr():
      desc = topologies.get_topology_desc(
          platform="tpu", topology_name=topo.topology_name, chip_config_name=topo.chip.chip_config,
          chips_per_host_bounds=topo.chips_per_host, num_slices=topo.num_slices, wrap=topo.wrap)
    _DEVICES[key] = list(desc.devices)
  devices = _DEVICES[key]
  if len(devices) != topo.num_devices:
    raise AotError(f"{topo.describe()}: libtpu returned {len(devices)} devices, expected {topo.num_devices}")
  return devices


# ------------------------------------------------------------------------------------------ config


def prepare_config(config, topo: Topology | None = None, **overrides):
  """An unlocked copy of ``config``; for a multi-slice ``topo``, ``dcn_mesh.data=-1`` unless the
  config spreads an axis over DCN already; ``overrides`` like ``remat="full"`` (model) or
  ``grad_accum=4`` (train)."""
  import ml_collections
  c = ml_collections.ConfigDict(config.to_dict())
  dcn = c.get("dcn_mesh")
  if topo is not None and topo.num_slices > 1 and (dcn is None or all(int(v) == 1 for v in dcn.values())):
    c.dcn_mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, sequence=1, tensor=1))
  for key, value in overrides.items():
    section = c.model if key in c.model else c.train if key in c.train else None
    if section is None:
      raise AotError(f"{key!r} is neither a model nor a train config field")
    section[key] = value
  return c


def batch_spec(config, task) -> dict[str, tuple[tuple[int, ...], str]]:
  """name -> (global shape, dtype) of the batch the trainer feeds this config's step: the keys and
  dtypes of the text sources, ``data.multimodal.MultimodalSource`` (multimodal stages) and
  ``data.contrastive.ContrastiveSource`` (the encoder stage). tests/test_aot.py checks the first
  two against real sources."""
  b, s = config.train.batch_size, config.train.seq_len
  if config.get("stage") == "encoder":
    res = int(config.data.get("resolution") or task.vision.image_size)
    return {"images": ((b, res, res, 3), "float32"), "text": ((b, s), "int32"), "text_mask": ((b, s), "int32")}
  spec = {k: ((b, s), "int32") for k in ("inputs", "targets", "segment_ids", "positions")}
  spec["loss_mask"] = ((b, s), "float32")
  if hasattr(task, "vision"):
    res = int(config.data.get("resolution") or task.vision.image_size)
    m = int(config.data.get("max_images", 1))
    spec["images"] = ((b, m, res, res, 3), "float32")
    spec["image_mask"] = ((b, m), "bool")
  return spec


def abstract_inputs(setup, config) -> tuple:
  """(params, opt_state, batch, step_index) as ShapeDtypeStructs carrying the step's shardings."""
  import jax
  import jax.numpy as jnp

  def sds(a, sh):
    return jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh)
  params = jax.tree.map(sds, setup.abstract_params, setup.param_shardings)
  opt = jax.tree.map(sds, setup.abstract_opt_state, setup.opt_shardings)
  batch = {k: jax.ShapeDtypeStruct(shape, jnp.dtype(dt), sharding=setup.batch_sharding)
           for k, (shape, dt) in batch_spec(config, setup.task).items()}
  return params, opt, batch, jax.ShapeDtypeStruct((), jnp.int32, sharding=setup.rules.replicated())


# ------------------------------------------------------------------------------------------ analysis


def is_oom(err: BaseException) -> bool:
  text = str(err).lower()
  return "resource_exhausted" in text or "ran out of memory" in text or "out of memory" in text


_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": GiB, "t": 1024 ** 4}


def _bytes(number: str, unit: str) -> int:
  return int(float(number) * _UNITS[unit.lower().rstrip("ib")[:1] if unit else ""])


def parse_oom(message: str) -> tuple[int | None, int | None]:
  """(bytes required, bytes available) from a TPU compiler out-of-memory message, when stated
  ("... required for HLO temporaries (41.71G) exceeds available HBM (15.75G)" or
  "Used 20.5G of 15.48G hbm")."""
  num = r"([\d.]+)\s*([KMGT]i?B?|B)?"
  m = re.search(rf"\({num}\)\s*exceeds available HBM\s*\({num}\)", message, re.I)
  if m:
    return _bytes(m.group(1), m.group(2) or ""), _bytes(m.group(3), m.group(4) or "")
  m = re.search(rf"Used {num} of {num} hbm", message, re.I)
  if m:
    return _bytes(m.group(1), m.group(2) or ""), _bytes(m.group(3), m.group(4) or "")
  return None, None


_COLLECTIVES = ("all-gather", "reduce-scatter", "all-reduce", "all-to-all", "collective-permute")
_OP = re.compile(r"=\s*\S.*?\s(all-gather|reduce-scatter|all-reduce|all-to-all|collective-permute)(-start)?\(")


def count_collectives(hlo_text: str) -> dict[str, int]:
  """Static collective op counts in compiled HLO text (see module docstring)."""
  counts = dict.fromkeys(_COLLECTIVES, 0)
  computation = ""
  for line in hlo_text.splitlines():
    if line and not line[0].isspace():
      head = line.split("(", 1)[0].split()
      computation = head[-1].lstrip("%") if head else ""
      continue
    if "calls=%all-reduce-scatter" in line:
      counts["reduce-scatter"] += 1
      continue
    m = _OP.search(line)
    if m and not computation.startswith("all-reduce-scatter"):
      counts[m.group(1)] += 1
  return counts


def memory_stats(compiled) -> dict[str, int]:
  m = compiled.memory_analysis()
  out = {k: int(getattr(m, f"{k}_size_in_bytes", 0) or 0)
         for k in ("argument", "output", "alias", "temp", "generated_code")}
  out["total"] = out["argument"] + out["output"] - out["alias"] + out["temp"] + out["generated_code"]
  return out


def _cost_flops(cost) -> float:
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float((cost or {}).get("flops", float("nan")))


def unrolled_flops(config, devices, build: Build) -> float:
  """Hardware FLOPs per device of the unrolled step: XLA's cost analysis of the pre-optimisation
  HLO (global) / devices; NaN when the private entry point is unavailable (module docstring)."""
  import jax
  c = prepare_config(config, scan_layers=False, grad_accum=1)
  setup = build(c, devices=devices)
  with jax.set_mesh(setup.mesh):
    lowered = setup.step.lower(*abstract_inputs(setup, c))
  try:
    from jax._src.lib import _jax
    module = lowered._lowering.hlo().as_hlo_module()
    return _cost_flops(_jax.hlo_module_cost_analysis(jax.devices("cpu")[0].client, module)) / len(devices)
  except Exception:  # noqa: BLE001 - private API; the caller labels the missing figure
    return float("nan")


# ------------------------------------------------------------------------------------------ compile


@dataclasses.dataclass
class AotResult:
  topology: str
  topology_shape: str
  num_slices: int
  devices: int
  device_kind: str
  mesh: dict[str, int]
  model: dict[str, Any]
  params: int
  remat: str
  scan_layers: bool
  attention: str
  dtype: str
  global_batch: int
  seq_len: int
  grad_accum: int
  per_device_batch: float          # micro-batch rows per device: global / grad_accum / data-parallel size
  fits: bool
  verdict: str
  hbm_bytes: int                   # nominal per chip
  usable_hbm_bytes: int            # the compiler's capacity (or the override)
  memory: dict[str, int] = dataclasses.field(default_factory=dict)   # per device; empty when OOM
  oom_required_bytes: int | None = None
  oom_message: str = ""
  lower_s: float = float("nan")
  compile_s: float = float("nan")
  xla_flops_as_compiled: float = float("nan")        # per device, a scan body counted once
  xla_flops_unrolled: float = float("nan")           # per device, every layer (module docstring)
  model_flops: float = float("nan")                  # per device, models.flops (MFU definition)
  model_flops_full_attention: float = float("nan")
  peak_flops: float = float("nan")                   # per chip, bf16
  collectives: dict[str, int] = dataclasses.field(default_factory=dict)
  notes: list[str] = dataclasses.field(default_factory=list)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  def summary(self) -> str:
    mesh = " x ".join(f"{k} {v}" for k, v in self.mesh.items() if v > 1) or "1 device"
    lines = [f"{self.model.get('name', 'model')} ({self.params / 1e9:.2f}B params) on {self.topology} "
             f"({self.topology_shape}, {self.devices} devices, {self.device_kind}"
             f"{f', {self.num_slices} slices' if self.num_slices > 1 else ''}) | mesh {mesh}",
             f"step: global batch {self.global_batch} x {self.seq_len} tokens, grad_accum {self.grad_accum} "
             f"-> micro-batch {self.per_device_batch:g}/device | remat {self.remat} | {self.dtype} | "
             f"attention {self.attention} | scan_layers {self.scan_layers}"]
    usable = f"{size(self.usable_hbm_bytes)} usable HBM"
    if self.memory:
      m = self.memory
      lines.append(f"memory/device: arguments {size(m['argument'])}, outputs {size(m['output'])}, aliased "
                   f"{size(m['alias'])}, temporaries {size(m['temp'])}, code {size(m['generated_code'])} -> "
                   f"total {size(m['total'])} of {usable} ({100 * m['total'] / self.usable_hbm_bytes:.0f}%; "
                   f"{size(self.hbm_bytes)} nominal)")
    elif self.oom_required_bytes:
      lines.append(f"memory/device: the compiler needs {size(self.oom_required_bytes)} of {usable}")
    parts = [f"model {self.model_flops:.3e} (MFU definition)"]
    if _known(self.xla_flops_unrolled):
      parts.append(f"XLA {self.xla_flops_unrolled:.3e} (unrolled; with remat, optimizer, the full attention map: "
                   f"{self.xla_flops_unrolled / self.model_flops:.2f}x model)")
    if _known(self.xla_flops_as_compiled):
      parts.append(f"as compiled {self.xla_flops_as_compiled:.3e} (a scan body once)")
    parts.append(f"{self.model_flops / self.peak_flops:.3g} s at 100% of {self.peak_flops / 1e12:.0f} TFLOP/s")
    lines.append("FLOPs/device/step: " + " | ".join(parts))
    if self.collectives:
      lines.append("collectives (static HLO ops, a scan body once): "
                   + ", ".join(f"{k} {v}" for k, v in self.collectives.items()))
    lines.append(f"lower {self.lower_s:.1f} s, compile {self.compile_s:.1f} s")
    lines += [f"note: {n}" for n in self.notes]
    lines.append(f"verdict: {self.verdict}")
    return "\n".join(lines)


def size(n: float) -> str:
  """Bytes as GiB (MiB below 0.1 GiB)."""
  return f"{n / GiB:.2f} GiB" if n >= 0.1 * GiB else f"{n / 2 ** 20:.1f} MiB"


def _known(x: float) -> bool:
  return x == x


def compile_step(config, topo: Topology, build: Build, *, flops: bool = True,
                 usable_hbm_bytes: int | None = None, headroom: float = HEADROOM, name: str = "") -> AotResult:
  """Builds (``build``: ``train.setup.build_step``), lowers and compiles the training step of
  ``config`` for ``topo``; a program that does not fit is a result (``fits=False``), not an error.
  ``usable_hbm_bytes`` overrides the chip's capacity (tests; planning for a smaller budget);
  ``name`` labels the model in the summary."""
  import jax
  config = prepare_config(config, topo)
  devices = topology_devices(topo)
  setup = build(config, devices=devices)
  cfg, tr, n = setup.cfg, config.train, len(devices)
  chip = topo.chip
  usable = int(usable_hbm_bytes or chip.usable_hbm_bytes)
  flops_per_token = setup.task.flops_per_token(tr.seq_len)
  tokens = tr.batch_size * tr.seq_len
  result = AotResult(
      topology=topo.name, topology_shape=topo.topology_name, num_slices=topo.num_slices, devices=n,
      device_kind=devices[0].device_kind, mesh=dict(setup.mesh_shape),
      model=dict(name=name or f"llama {cfg.num_layers}x{cfg.embed_dim}", layers=cfg.num_layers, d=cfg.embed_dim,
                 heads=cfg.num_heads, kv=cfg.num_kv_heads, mlp=cfg.mlp_dim, vocab=cfg.vocab_size,
                 vision=(f"{setup.task.vision.width}w x {setup.task.vision.depth}L @"
                         f"{setup.task.vision.image_size}px" if hasattr(setup.task, "vision") else "")),
      params=setup.task.param_count(), remat=cfg.remat, scan_layers=cfg.scan_layers, attention=cfg.attention,
      dtype=cfg.dtype, global_batch=tr.batch_size, seq_len=tr.seq_len, grad_accum=tr.grad_accum,
      per_device_batch=tr.batch_size / tr.grad_accum / setup.rules.data_parallel_size(),
      fits=False, verdict="", hbm_bytes=chip.hbm_bytes, usable_hbm_bytes=usable,
      model_flops=flops_per_token.causal * tokens / n,
      model_flops_full_attention=flops_per_token.full_attention * tokens / n, peak_flops=chip.peak_flops)
  if cfg.attention == "splash" and jax.default_backend() != "tpu":
    result.notes.append("attention=splash compiles in Pallas interpret mode off a TPU host (models/attention.py "
                        "decides from jax.default_backend()): memory and FLOPs are not the kernel's")
  t0 = time.perf_counter()
  with jax.set_mesh(setup.mesh):
    lowered = setup.step.lower(*abstract_inputs(setup, config))
  result.lower_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  try:
    compiled = lowered.compile()
  except Exception as e:  # noqa: BLE001 - only out-of-memory is a verdict; anything else propagates
    if not is_oom(e):
      raise
    result.compile_s = time.perf_counter() - t0
    required, available = parse_oom(str(e))
    result.oom_required_bytes, result.oom_message = required, str(e).strip().splitlines()[0][:500]
    need = f": needs {size(required)}" if required else ""
    cap = f" of {size(available)}" if available else ""
    result.verdict = f"DOES NOT FIT (the compiler ran out of HBM{need}{cap})"
  else:
    result.compile_s = time.perf_counter() - t0
    result.memory = memory_stats(compiled)
    result.xla_flops_as_compiled = _cost_flops(compiled.cost_analysis())
    result.collectives = count_collectives(compiled.as_text())
    total, limit = result.memory["total"], (1 - headroom) * usable
    result.fits = total <= limit
    pct = f"{100 * total / usable:.0f}% of {size(usable)} usable HBM"
    result.verdict = (f"FITS ({size(total)}/device, {pct})" if result.fits else
                      f"DOES NOT FIT ({size(total)}/device, {pct}; over the "
                      f"{100 * (1 - headroom):.0f}% line that leaves headroom)")
  if flops:
    result.xla_flops_unrolled = unrolled_flops(config, devices, build)
  return result


# ------------------------------------------------------------------------------------------ search


@dataclasses.dataclass
class SearchResult:
  tries: list[dict]                 # policy, per_device_batch, grad_accum, fits, total bytes, compile_s
  best_per_policy: dict[str, int | None]
  remat: str | None
  per_device_batch: int | None
  grad_accum: int | None

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  def summary(self) -> str:
    rows = ["remat            micro-batch/dev  grad_accum  memory/device   fits   compile",
            "---------------  ---------------  ----------  --------------  -----  -------"]
    for t in self.tries:
      mem = size(t["total_bytes"]) if t["total_bytes"] else "?"
      rows.append(f"{t['remat']:<15}  {t['per_device_batch']:>15}  {t['grad_accum']:>10}  {mem:>14}  "
                  f"{'yes' if t['fits'] else 'no':<5}  {t['compile_s']:6.1f}s")
    best = ", ".join(f"{p} {b if b else '(no fit)'}" for p, b in self.best_per_policy.items())
    rows.append(f"largest fitting micro-batch per policy tried: {best}")
    if self.remat is None:
      rows.append("nothing fits, not even micro-batch 1 with remat=full: use more chips or tensor parallelism")
    else:
      rows.append(f"recommended: --config.model.remat={self.remat} --config.train.grad_accum={self.grad_accum} "
                  f"(micro-batch {self.per_device_batch}/device)")
    return "\n".join(rows)


def search(config, topo: Topology, build: Build, *, policies=REMAT_ORDER, max_per_device: int | None = None,
           usable_hbm_bytes: int | None = None, progress: Callable[[str], None] | None = None) -> SearchResult:
  """Largest per-device micro-batch (powers of two) and cheapest remat that fit (module docstring).
  The global batch stays ``config.train.batch_size``; ``max_per_device`` caps the micro-batch."""
  base = prepare_config(config, topo, grad_accum=1)
  setup = build(base, devices=topology_devices(topo))
  dp, global_batch = setup.rules.data_parallel_size(), base.train.batch_size
  cap = global_batch // dp
  if max_per_device:
    cap = min(cap, max_per_device)
  sizes = [2 ** i for i in range(cap.bit_length()) if global_batch % (2 ** i * dp) == 0 and 2 ** i <= cap]
  if not sizes:
    raise AotError(f"the global batch {global_batch} has no power-of-two micro-batch over the "
                   f"data-parallel size {dp}")
  tries, fitted = [], {}

  def attempt(policy: str, b: int) -> bool:
    key = (policy, b)
    if key not in fitted:
      accum = global_batch // (b * dp)
      r = compile_step(prepare_config(config, topo, remat=policy, grad_accum=accum), topo, build, flops=False,
                       usable_hbm_bytes=usable_hbm_bytes)
      fitted[key] = r.fits
      tries.append(dict(remat=policy, per_device_batch=b, grad_accum=accum, fits=r.fits,
                        total_bytes=r.memory.get("total") or r.oom_required_bytes or 0, compile_s=r.compile_s,
                        verdict=r.verdict))
      if progress:
        progress(f"  remat {policy:<15} micro-batch {b:>4}/device: {r.verdict} [{r.compile_s:.0f} s]")
    return fitted[key]

  best: dict[str, int | None] = {}
  start = 0                                       # index into sizes
  for policy in policies:
    i, found = start, None
    if attempt(policy, sizes[i]):
      found = i
      while i + 1 < len(sizes) and attempt(policy, sizes[i + 1]):
        i += 1
        found = i
    else:
      while i > 0:
        i -= 1
        if attempt(policy, sizes[i]):
          found = i
          break
    best[policy] = sizes[found] if found is not None else None
    if found is not None:
      start = found
    if found == len(sizes) - 1:
      break                       # the largest micro-batch fits: more recompute cannot do better
  top = max((b for b in best.values() if b), default=None)
  remat = next((p for p in policies if best[p] == top), None) if top else None
  return SearchResult(tries, best, remat, top, global_batch // (top * dp) if top else None)
