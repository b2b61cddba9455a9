"""Throughput, MFU and metric writers (JSONL, TensorBoard, console; W&B optional).

MFU = model FLOPs per second / peak FLOPs per second, with model FLOPs as in
``visprior_jax.models.flops`` (matmuls incl. unembedding, x3 for fwd+bwd, causal attention at half
the full map; the full-map MFU is logged beside it as ``mfu_full_attn``). Peaks are bf16 TFLOP/s per
chip from DESIGN.md; on CPU the peak is a float32 matmul measured in the same process, so CPU MFU
compares the train step with the best this machine's matmul does.
"""

from __future__ import annotations

import functools
import json
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

PEAK_TFLOPS = {"TPU v4": 275.0, "TPU v5 lite": 197.0, "TPU v5e": 197.0, "TPU v5": 459.0, "TPU v5p": 459.0,
               "TPU v6 lite": 918.0, "TPU v6e": 918.0, "NVIDIA H100": 989.0, "NVIDIA H200": 989.0}


def measure_matmul_flops(n: int = 2048, dtype: str = "float32", repeats: int = 7) -> float:
  """Best FLOP/s of an n x n matmul on the default device, measured now (best of ``repeats``)."""
  a = jnp.ones((n, n), dtype)
  mm = jax.jit(lambda x, y: x @ y)
  mm(a, a).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    mm(a, a).block_until_ready()
    best = min(best, time.perf_counter() - t0)
  return 2 * n ** 3 / best


@functools.lru_cache(maxsize=4)
def measured_matmul_flops(n: int = 2048, dtype: str = "float32") -> float:
  """:func:`measure_matmul_flops`, once per process."""
  return measure_matmul_flops(n, dtype)


def peak_flops(devices=None, override_tflops: float = 0.0) -> tuple[float, str]:
  """(peak FLOP/s of all devices together, how it was obtained).

  On a shared CPU the in-process measurement reads low while others compete, which inflates MFU;
  ``override_tflops`` (``--config.metrics.peak_tflops``) pins the per-device peak instead.
  """
  devices = devices or jax.devices()
  kind = devices[0].device_kind
  if override_tflops:
    return override_tflops * 1e12 * len(devices), f"configured peak {override_tflops} TFLOP/s x {len(devices)}"
  if devices[0].platform == "cpu":
    return measured_matmul_flops(), "cpu float32 matmul measured in-process"
  for name, tflops in sorted(PEAK_TFLOPS.items(), key=lambda kv: -len(kv[0])):
    if kind.startswith(name):
      return tflops * 1e12 * len(devices), f"{name} bf16 peak {tflops} TFLOP/s x {len(devices)}"
  return float("nan"), f"unknown peak for device kind {kind!r}"


class MetricsWriter:
  """One row per step to ``metrics.jsonl``; TensorBoard scalars and a console line on log steps."""

  def __init__(self, workdir, *, tensorboard: bool = True, wandb_project: str = "", config: dict | None = None,
               is_main: bool = True):
    self.is_main = is_main
    self._jsonl = None
    self._tb = self._wandb = None
    if not is_main:
      return
    workdir = epath.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    self._jsonl = (workdir / "metrics.jsonl").open("a")
    if tensorboard:
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(str(workdir / "tb"))
    if wandb_project:
      import wandb
      self._wandb = wandb.init(project=wandb_project, dir=str(workdir), config=config, resume="allow")

  def write(self, step: int, scalars: dict[str, Any], console: bool = False) -> None:
    if not self.is_main:
      return
    row = {"step": step, **{k: _num(v) for k, v in scalars.items()}}
    self._jsonl.write(json.dumps(row) + "\n")
    if console:
      self._jsonl.flush()
      if self._tb:
        for k, v in row.items():
          if k != "step" and np.isfinite(v):
            self._tb.add_scalar(k, v, step)
      if self._wandb:
        self._wandb.log(row, step=step)
      print(format_line(row), flush=True)

  def flush(self) -> None:
    """Makes every row written so far durable (called before each checkpoint save)."""
    if self._jsonl:
      self._jsonl.flush()

  def close(self) -> None:
    if self._jsonl:
      self._jsonl.close()
    if self._tb:
      self._tb.close()
    if self._wandb:
      self._wandb.finish()


def _num(v) -> float:
  return float(np.asarray(v))


def format_line(row: dict) -> str:
  parts = [f"step {row['step']:>6d}", f"loss {row['loss']:.4f}"]
  if "grad_norm" in row:
    parts.append(f"gnorm {row['grad_norm']:.3f}")
  if "lr" in row:
    parts.append(f"lr {row['lr']:.2e}")
  if "step_time" in row:
    parts.append(f"{row['step_time'] * 1e3:.0f} ms/step")
  if "tokens_per_sec" in row:
    parts.append(f"{row['tokens_per_sec']:,.0f} tok/s ({row['tokens_per_sec_per_device']:,.0f}/dev)")
  if "mfu" in row and np.isfinite(row["mfu"]):
    parts.append(f"MFU {100 * row['mfu']:.1f}% (full-attn {100 * row['mfu_full_attn']:.1f}%)")
  return " | ".join(parts)
