"""Times the trainer's jitted train step: tokens/s, MFU, compile time, XLA's FLOP count.

  python bench/train_step.py --config=configs/pretrain.py:bench_small [--config.x=y ...]
      [--steps N] [--warmup W] [--repeats R] [--out results.jsonl] [--profile DIR] [--hlo FILE]

  # 8 fake CPU devices, fsdp 4 x tensor 2:
  XLA_FLAGS=--xla_force_host_platform_device_count=8 python bench/train_step.py \
      --config=configs/pretrain.py:bench_small --config.mesh.fsdp=4 --config.mesh.tensor=2

The step is built by ``visprior_jax.train.setup.build_step``, the function the trainer uses, so this
measures the step ``visprior pretrain`` runs. One synthetic batch from the config's source is put on the devices
once and reused: data loading is not measured.

Timing: W warm-up steps, then R repeats of N steps, each step followed by ``block_until_ready``;
median and best are over all N*R steps. ``pipelined_step_s`` is one further window of N steps
dispatched back to back and synchronised once at the end (how the trainer runs between log steps);
the gap to the per-step median is host/dispatch overhead that asynchronous dispatch hides.

MFU (DESIGN.md): model FLOPs/token from ``models.flops`` (matmuls incl. the unembedding, no
embedding lookup, x3 for forward+backward, causal attention at half the full map; the full-map
figure beside it; remat recomputation not counted) x tokens/s / peak. On CPU the peak is the best
float32 n x n matmul (``train.metrics.measured_matmul_flops``) measured in this process right
before and right after the timed steps; both are reported and MFU uses the larger. With several
(fake) devices a second peak runs one matmul per device at once (``peak_all_devices``); the devices
share the same cores, so MFU uses the larger of all the peak measurements. On GPU/TPU the peak is
the bf16 table of DESIGN.md.

``xla_flops_per_step`` is XLA's cost analysis of the compiled step: hardware FLOPs, so it includes
remat recomputation, the optimizer and elementwise work; under SPMD it is for one device's
partitioned program (``*_all_devices`` multiplies by the device count). Cost analysis counts a
``lax.scan`` body once, not once per layer, so with ``scan_layers`` the same step is also compiled
(not run) with unrolled layers: ``xla_flops_per_step_unrolled`` is the figure to compare with the
model FLOPs. Neither is used for MFU.

``others_cpu_share`` (Linux): the fraction of the machine's CPU that other processes used during
the peak measurements and the timed steps, from /proc/stat. On a shared machine, read any run where
it is above ~10% as contended.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import statistics
import sys
import time

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file and argument, e.g. configs/pretrain.py:bench_small.",
                                          lock_config=True)
flags.DEFINE_integer("steps", None, "Timed steps per repeat (default: config.train.steps).")
flags.DEFINE_integer("warmup", 2, "Untimed steps after compilation.")
flags.DEFINE_integer("repeats", 1, "Repeats of the timed steps.")
flags.DEFINE_integer("matmul_n", 2048, "Size of the square float32 matmul that measures the CPU peak.")
flags.DEFINE_string("out", None, "Append one JSON line with every number to this file.")
flags.DEFINE_bool("xla_unrolled", True, "With scan_layers, also compile (not run) the step with unrolled layers for "
                  "XLA's FLOP count: cost analysis counts a scan body once, not once per layer.")
flags.DEFINE_string("profile", None, "After timing, trace 3 more steps with jax.profiler into this directory "
                    "(with a Perfetto trace, perfetto_trace.json.gz).")
flags.DEFINE_string("hlo", None, "Write the compiled (optimised) HLO text of the step here.")
FLAGS = flags.FLAGS


def _matmul_peak(n: int) -> float:
  """Best FLOP/s of an n x n float32 matmul on the default device (the trainer's CPU peak), now."""
  from visprior_jax.train import metrics as metrics_lib
  return metrics_lib.measure_matmul_flops(n, "float32", repeats=7)


def _matmul_peak_all(n: int, devices) -> float:
  """Best total FLOP/s of one n x n float32 matmul per device, all devices at once."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
  mesh = Mesh(np.asarray(devices), ("d",))
  sh = NamedSharding(mesh, P("d"))
  a = jax.device_put(jnp.ones((len(devices), n, n), jnp.float32), sh)
  mm = jax.jit(lambda x, y: jnp.einsum("bij,bjk->bik", x, y), out_shardings=sh)
  mm(a, a).block_until_ready()
  best = float("inf")
  for _ in range(7):
    t0 = time.perf_counter()
    mm(a, a).block_until_ready()
    best = min(best, time.perf_counter() - t0)
  return 2 * n ** 3 * len(devices) / best


def _cpu_snapshot():
  """(machine CPU-seconds, machine idle CPU-seconds, this process's CPU-seconds); Linux only."""
  try:
    with open("/proc/stat") as f:
      ticks = [int(x) for x in f.readline().split()[1:]]
  except OSError:
    return None
  hz, t = os.sysconf("SC_CLK_TCK"), os.times()
  return sum(ticks) / hz, (ticks[3] + ticks[4]) / hz, t.user + t.system


def _others_share(a, b) -> float:
  """Fraction of the machine's CPU that other processes used between two snapshots (noise gauge)."""
  if a is None or b is None or b[0] <= a[0]:
    return float("nan")
  total, idle, own = b[0] - a[0], b[1] - a[1], b[2] - a[2]
  return min(max((total - idle - own) / total, 0.0), 1.0)


def _measured(fn, *args):
  a = _cpu_snapshot()
  value = fn(*args)
  return value, _others_share(a, _cpu_snapshot())


@dataclasses.dataclass
class StepTimes:
  first_step_s: float            # the first step after compilation, loss fetched
  first_loss: float
  times: list                    # every timed step, each synchronised on its own
  repeat_medians: list
  pipelined_s: float             # mean of N more steps dispatched back to back, one sync at the end
  others_share: float            # other processes' share of the machine's CPU while timing
  last_loss: float


def time_steps(run_one, loss, steps: int, warmup: int, repeats: int) -> StepTimes:
  """The timing protocol of the module docstring, for any jitted train step: ``run_one()`` dispatches
  the next step and returns its outputs (new state and metrics), ``loss(outputs)`` picks the loss.
  bench/vs_maxtext.py times MaxText's step with this same function."""
  import jax
  t0 = time.perf_counter()
  out = run_one()
  first_loss = float(jax.device_get(loss(out)))
  first_step_s = time.perf_counter() - t0
  for _ in range(max(warmup - 1, 0)):
    jax.block_until_ready(run_one())
  times, repeat_medians = [], []
  snap = _cpu_snapshot()
  for _ in range(repeats):
    rep = []
    for _ in range(steps):
      t0 = time.perf_counter()
      jax.block_until_ready(run_one())
      rep.append(time.perf_counter() - t0)
    times += rep
    repeat_medians.append(statistics.median(rep))
  t0 = time.perf_counter()
  for _ in range(steps):
    out = run_one()
  jax.block_until_ready(out)
  pipelined_s = (time.perf_counter() - t0) / steps
  others = _others_share(snap, _cpu_snapshot())
  return StepTimes(first_step_s, first_loss, times, repeat_medians, pipelined_s, others,
                   float(jax.device_get(loss(out))))


def _cost_flops(compiled) -> float:
  try:
    cost = compiled.cost_analysis()
  except Exception:  # noqa: BLE001 - not every backend implements it
    return float("nan")
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float(cost.get("flops", float("nan"))) if cost else float("nan")


def _memory(compiled) -> dict:
  try:
    m = compiled.memory_analysis()
  except Exception:  # noqa: BLE001
    return {}
  if m is None:
    return {}
  return {k: int(getattr(m, k)) for k in ("argument_size_in_bytes", "output_size_in_bytes",
                                          "temp_size_in_bytes", "generated_code_size_in_bytes") if hasattr(m, k)}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  import jax
  import jax.numpy as jnp

  from visprior_jax.data.source import make_source
  from visprior_jax.models import flops as flops_lib
  from visprior_jax.train import metrics as metrics_lib
  from visprior_jax.train.setup import build_step
  from visprior_jax.train.tasks import LanguageModel
  from visprior_jax.train.validate import ConfigError, check_vocab

  config = _CONFIG.value
  name = config_flags.get_config_filename(FLAGS["config"])
  name = name.rsplit("/", 1)[-1]
  steps = FLAGS.steps or config.train.steps
  devices = jax.devices()
  on_cpu = devices[0].platform == "cpu"

  # --- exactly the trainer's state and step (train.setup.build_step), minus checkpoints and logging ---
  tr = config.train
  try:
    setup = build_step(config)
    source = make_source(config.data, tr.batch_size, tr.seq_len, config.seed, setup.cfg.vocab_size)
    check_vocab(source.vocab_size, setup.cfg)
  except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  cfg, mesh, mesh_shape = setup.cfg, setup.mesh, setup.mesh_shape

  # Peak before: measured before any model array exists, so nothing else competes for memory.
  peak_before, others_peak_before = (_measured(_matmul_peak, FLAGS.matmul_n) if on_cpu
                                     else (float("nan"), float("nan")))

  with jax.set_mesh(mesh):
    params, opt_state = setup.init_state(config.seed)
    batch = setup.put_batch(source.batch(0, jax.process_index(), jax.process_count()))
    jax.block_until_ready((params, opt_state, batch))

    t0 = time.perf_counter()
    lowered = setup.step.lower(params, opt_state, batch, jnp.int32(0))
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    lower_s, compile_s = t1 - t0, t2 - t1
    xla_unrolled, unrolled_compile_s = float("nan"), float("nan")
    if FLAGS.xla_unrolled and cfg.scan_layers:
      unrolled = build_step(config, task=LanguageModel(dataclasses.replace(cfg, scan_layers=False)))
      t0 = time.perf_counter()
      xla_unrolled = _cost_flops(unrolled.step.lower(params, opt_state, batch, jnp.int32(0)).compile())
      unrolled_compile_s = time.perf_counter() - t0
    elif not cfg.scan_layers:
      xla_unrolled = _cost_flops(compiled)
    if FLAGS.hlo:
      with open(FLAGS.hlo, "w") as f:
        f.write(compiled.as_text())

    i = 0

    def run_one():
      nonlocal params, opt_state, i
      params, opt_state, m = compiled(params, opt_state, batch, jnp.int32(i))
      i += 1
      return params, opt_state, m

    timed = time_steps(run_one, lambda out: out[2]["loss"], steps, FLAGS.warmup, FLAGS.repeats)
    first_loss, first_step_s, last_loss = timed.first_loss, timed.first_step_s, timed.last_loss
    times, repeat_medians, pipelined_s = timed.times, timed.repeat_medians, timed.pipelined_s
    others_timing = timed.others_share
    if FLAGS.profile:
      jax.block_until_ready(run_one())
      with jax.profiler.trace(FLAGS.profile, create_perfetto_trace=True):
        for _ in range(3):
          jax.block_until_ready(run_one())
    del params, opt_state

  nan2 = (float("nan"), float("nan"))
  peak_after, others_peak_after = _measured(_matmul_peak, FLAGS.matmul_n) if on_cpu else nan2
  peak_all, others_peak_all = (_measured(_matmul_peak_all, FLAGS.matmul_n, devices) if on_cpu and len(devices) > 1
                               else nan2)
  if on_cpu:
    peak = max(p for p in (peak_before, peak_after, peak_all) if p == p)
    peak_note = "max of in-process float32 matmul peaks"
  else:
    peak, peak_note = metrics_lib.peak_flops(devices)

  # --- numbers ---
  n_dev = jax.device_count()
  tokens_per_step = tr.batch_size * tr.seq_len
  median_s, best_s = statistics.median(times), min(times)
  f = flops_lib.training_flops_per_token(cfg, tr.seq_len)
  tps = tokens_per_step / median_s
  xla_flops = _cost_flops(compiled)
  row = dict(
      date=datetime.date.today().isoformat(), config=name, mesh=dict(mesh_shape), devices=n_dev, device_kind=devices[0].device_kind, platform=devices[0].platform,
      host=platform.node(), jax=jax.__version__, python=platform.python_version(),
      model=dict(layers=cfg.num_layers, d=cfg.embed_dim, heads=cfg.num_heads, kv=cfg.num_kv_heads,
                 mlp=cfg.mlp_dim, vocab=cfg.vocab_size, dtype=cfg.dtype, remat=cfg.remat,
                 scan_layers=cfg.scan_layers),
      params=flops_lib.param_count(cfg), batch_size=tr.batch_size, seq_len=tr.seq_len,
      grad_accum=tr.grad_accum, tokens_per_step=tokens_per_step,
      steps=steps, warmup=FLAGS.warmup, repeats=FLAGS.repeats,
      lower_s=lower_s, compile_s=compile_s, first_step_s=first_step_s,
      median_step_s=median_s, best_step_s=best_s, repeat_median_step_s=repeat_medians,
      pipelined_step_s=pipelined_s,
      tokens_per_s=tps, tokens_per_s_per_device=tps / n_dev, tokens_per_s_best=tokens_per_step / best_s,
      model_flops_per_token=f.causal, model_flops_per_token_full_attn=f.full_attention,
      model_flops_per_step=f.causal * tokens_per_step,
      xla_flops_per_step=xla_flops, xla_flops_per_step_all_devices=xla_flops * n_dev,
      xla_flops_per_step_unrolled=xla_unrolled, xla_flops_per_step_unrolled_all_devices=xla_unrolled * n_dev,
      unrolled_compile_s=unrolled_compile_s,
      peak_flops_before=peak_before, peak_flops_after=peak_after, peak_flops_all_devices=peak_all,
      peak_flops=peak, peak_note=peak_note,
      others_cpu_share=dict(peak_before=others_peak_before, timing=others_timing, peak_after=others_peak_after,
                            peak_all_devices=others_peak_all),
      mfu=tps * f.causal / peak, mfu_full_attn=tps * f.full_attention / peak,
      mfu_best=tokens_per_step / best_s * f.causal / peak,
      memory=_memory(compiled), loss_first=first_loss, loss_last=last_loss, argv=sys.argv[1:],
  )
  mesh_txt = " x ".join(f"{k} {v}" for k, v in mesh_shape.items() if v != 1) or "1 device"
  print(f"{name} | {n_dev} dev ({mesh_txt}) | remat {cfg.remat} | {tokens_per_step} tok/step | "
        f"compile {compile_s:.1f}s | step median {median_s * 1e3:.1f} ms best {best_s * 1e3:.1f} ms "
        f"(pipelined {pipelined_s * 1e3:.1f} ms) | {tps:,.0f} tok/s ({tps / n_dev:,.0f}/dev) | "
        f"MFU {100 * row['mfu']:.1f}% (full-attn {100 * row['mfu_full_attn']:.1f}%) vs peak "
        f"{peak / 1e9:.1f} GFLOP/s [before {peak_before / 1e9:.1f}, after {peak_after / 1e9:.1f}"
        + (f", all-dev {peak_all / 1e9:.1f}" if peak_all == peak_all else "") + "] | "
        f"model {f.causal * tokens_per_step / 1e9:.2f} GFLOP/step (full-attn "
        f"{f.full_attention * tokens_per_step / 1e9:.2f}), XLA hw {xla_unrolled * n_dev / 1e9:.2f} unrolled / "
        f"{xla_flops * n_dev / 1e9:.2f} as compiled (scan body once) | loss {first_loss:.3f}->{last_loss:.3f} | "
        f"other processes' CPU share: {100 * others_peak_before:.0f}% / {100 * others_timing:.0f}% / "
        f"{100 * others_peak_after:.0f}% (peak before / timing / peak after)", flush=True)
  if FLAGS.out:
    with open(FLAGS.out, "a") as fh:
      fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
