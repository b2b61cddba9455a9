"""One training loop for every stage; pre-training is its first user.

``train(config, workdir)``: validate the config, build the mesh and sharded state (or resume from
the workdir's latest checkpoint, on whatever mesh this run has), then step, log, checkpoint.

Reliability contract:
- batches are a function of (seed, step), so a resumed run repeats the uninterrupted run exactly;
- SIGTERM (preemption) finishes the current step, saves, and returns ``status="preempted"``; with
  several processes JAX's preemption sync point picks the step, so every process saves the same one
  even when only some of them got the signal;
- a crash or SIGKILL loses at most the steps since the last complete checkpoint;
- a non-finite loss stops the run with its step number before anything non-finite is saved.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import signal
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

from visprior_jax.checkpoint.manager import RunCheckpoints
from visprior_jax.data.source import make_source
from visprior_jax.parallel.mesh import num_granules
from visprior_jax.train import metrics as metrics_lib
from visprior_jax.train.setup import build_step
from visprior_jax.train.validate import ConfigError, check_vocab, model_config, validate


class TrainingDiverged(RuntimeError):
  pass


@dataclasses.dataclass
class TrainResult:
  status: str                 # "finished" | "preempted"
  step: int
  losses: dict[int, float]    # step -> loss, for the steps this process ran
  compile_seconds: float


class _Preemption:
  """Turns SIGTERM into a flag the loop checks between steps (``stop_before(step)``).

  Several processes must stop at the same step, or the ones still stepping wait forever in a
  collective while the others save. There JAX's preemption sync manager (started by
  ``jax.distributed.initialize``) owns SIGTERM: it spreads a notice to every process and
  ``reached_preemption_sync_point(step)`` turns true on all of them at one agreed step. No Python
  handler is installed then, since it would replace the manager's."""

  def __init__(self):
    self.requested = False
    self._previous = None
    self._synced = (jax.process_count() > 1 and jax.distributed.is_initialized()
                    and bool(jax.config.jax_enable_preemption_service))

  def stop_before(self, step: int) -> bool:
    if self._synced:
      from jax.experimental import multihost_utils
      self.requested = self.requested or multihost_utils.reached_preemption_sync_point(step)
    return self.requested

  def __enter__(self):
    if not self._synced and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    self.requested = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def train(config, workdir) -> TrainResult:
  workdir = epath.Path(workdir)
  validate(config, jax.device_count(), num_granules(jax.devices())[0])
  tr, is_main = config.train, jax.process_index() == 0
  cfg = model_config(config)
  source = make_source(config.data, tr.batch_size, tr.seq_len, config.seed, cfg.vocab_size)
  check_vocab(source.vocab_size, cfg)
  if tr.get("epochs"):   # steps from a number of passes over a finite dataset (multimodal stages)
    if not hasattr(source, "samples"):
      raise ConfigError(f"train.epochs needs a finite dataset; data.kind={config.data.kind} has no epochs")
    tr.steps = max(1, math.ceil(tr.epochs * len(source.samples) / tr.batch_size))
    _log(is_main, f"train.epochs={tr.epochs}: {len(source.samples)} samples / batch {tr.batch_size} "
                  f"-> {tr.steps} steps")
  setup = build_step(config)

  if is_main:
    workdir.mkdir(parents=True, exist_ok=True)
  ckpts = RunCheckpoints(workdir, keep=config.checkpoint.keep, async_save=config.checkpoint.async_save)
  mesh_txt = dict(setup.mesh.shape)
  with jax.set_mesh(setup.mesh):
    step = 0
    latest = ckpts.latest_step()
    if latest is not None:
      restored = ckpts.restore(latest, setup.abstract_params, setup.param_shardings, setup.abstract_opt_state,
                               setup.opt_shardings)
      source.check_state(restored["data"])
      params, opt_state, step = restored["params"], restored["opt_state"], restored["meta"]["step"]
      _log(is_main, f"resumed from {ckpts.directory}/{latest} (step {step}) on mesh {mesh_txt}")
    elif (params := setup.task.initial_params(config, setup.param_shardings)) is not None:
      opt_state = setup.init_opt_state(params)
      _log(is_main, "initialised parameters from " + ", ".join(
          f"{k}={config[k]}" for k in ("init_from", "init_llm_from", "init_vision_from") if config.get(k)))
    else:
      params, opt_state = setup.init_state(config.seed)
    if is_main:  # only once the state is good: a config that cannot resume must not overwrite the record
      (workdir / "config.json").write_text(config.to_json(indent=1))

    shard = setup.data_shard(tr.batch_size)   # (process_index, process_count) unless processes are replicas
    put_batch = functools.partial(setup.put_batch, batch_size=tr.batch_size)
    first = put_batch(source.batch(step, *shard))
    t0 = time.perf_counter()
    compiled = setup.step.lower(params, opt_state, first, jnp.int32(step)).compile()
    compile_seconds = time.perf_counter() - t0
    _log(is_main, f"compiled the train step in {compile_seconds:.1f}s; "
                  f"{setup.task.param_count() / 1e6:.2f}M params; mesh {mesh_txt}")

    writer = metrics_lib.MetricsWriter(workdir, tensorboard=config.metrics.tensorboard,
                                       wandb_project=config.metrics.wandb_project, is_main=is_main,
                                       config=config.to_dict())
    loop = _Loop(config, setup.task, ckpts, source, writer, compile_seconds)
    try:
      with _Preemption() as preemption:
        result = loop.run(compiled, params, opt_state, step, first, put_batch, shard, preemption)
    finally:
      writer.close()
      ckpts.close()
    if result.status == "finished" and config.checkpoint.export:
      setup.task.export(workdir / "export", loop.final_params)
      _log(is_main, f"exported parameters to {workdir / 'export'}")
  return result


class _Loop:

  def __init__(self, config, task, ckpts, source, writer, compile_seconds):
    self.config, self.task, self.ckpts, self.source, self.writer = config, task, ckpts, source, writer
    self.compile_seconds = compile_seconds
    tr = config.train
    self.tokens_per_step = tr.batch_size * tr.seq_len
    self.flops = task.flops_per_token(tr.seq_len)
    self.peak, self.peak_note = (metrics_lib.peak_flops(override_tflops=config.metrics.peak_tflops)
                                 if config.metrics.mfu else (float("nan"), "off"))
    self.losses: dict[int, float] = {}
    self.final_params = None
    self.timed = False

  def run(self, compiled, params, opt_state, step, batch, put_batch, shard, preemption) -> TrainResult:
    tr, ck = self.config.train, self.config.checkpoint
    pending, window_start, window_steps = [], time.perf_counter(), 0
    status = "finished"
    pi, pc = shard
    while step < tr.steps:
      if preemption.stop_before(step):
        status = "preempted"
        break
      if batch is None:
        batch = put_batch(self.source.batch(step, pi, pc))
      params, opt_state, m = compiled(params, opt_state, batch, jnp.int32(step))
      batch, step, window_steps = None, step + 1, window_steps + 1
      pending.append((step, m))
      if window_steps == 1 and not self.timed:  # the first step warms caches: keep it out of tokens/s
        jax.block_until_ready(m)
        window_start, window_steps, self.timed = time.perf_counter(), 0, True
      log_now = step % tr.log_every == 0 or step == tr.steps
      save_now = step % ck.every == 0 or step == tr.steps
      if log_now or save_now:
        self._flush(pending, window_start, window_steps, console=log_now)
        pending = []
        if save_now:
          self._save(step, params, opt_state)
        window_start, window_steps = time.perf_counter(), 0   # time steps only, not I/O
    if pending:
      self._flush(pending, window_start, window_steps, console=True)
    if status == "preempted" and self.ckpts.latest_step() != step:
      self._save(step, params, opt_state)
      self.ckpts.wait()
      _log(jax.process_index() == 0, f"preempted: saved step {step}; rerun the same command to resume")
    self.final_params = params
    return TrainResult(status, step, self.losses, self.compile_seconds)

  def _flush(self, pending, window_start, window_steps, console: bool) -> None:
    fetched = [(s, jax.device_get(m)) for s, m in pending]
    elapsed = time.perf_counter() - window_start
    for s, m in fetched:
      loss, grad_norm = float(m["loss"]), float(m["grad_norm"])
      # A non-finite gradient poisons this step's update even when its loss is finite, so it
      # stops the run too (before _save writes the poisoned parameters).
      if not (np.isfinite(loss) and np.isfinite(grad_norm)):
        latest = self.ckpts.latest_step()
        what = f"loss is {loss}" if not np.isfinite(loss) else f"grad_norm is {grad_norm} (loss {loss})"
        raise TrainingDiverged(f"{what} at step {s}; stopped. Last good checkpoint: "
                               f"{'none' if latest is None else self.ckpts.directory / str(latest)}")
      self.losses[s] = loss
      row = {k: v for k, v in m.items()}
      last = s == fetched[-1][0]
      if last and console and window_steps:
        row.update(self._throughput(elapsed / window_steps))
      self.writer.write(s, row, console=console and last)

  def _throughput(self, step_time: float) -> dict:
    tps = self.tokens_per_step / step_time
    return dict(step_time=step_time, tokens_per_sec=tps, tokens_per_sec_per_device=tps / jax.device_count(),
                mfu=tps * self.flops.causal / self.peak, mfu_full_attn=tps * self.flops.full_attention / self.peak)

  def _save(self, step, params, opt_state):
    self.writer.flush()  # rows of checkpointed steps must survive a crash: they are never re-run
    meta = dict(step=step, **self.task.description(), config=self.config.to_dict())
    self.ckpts.save(step, params, opt_state, self.source.state(step), meta)


def _log(is_main: bool, msg: str) -> None:
  if is_main:
    print(msg, flush=True)
