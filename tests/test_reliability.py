"""Reliability of training runs: preemption, crashes mid-save, re-meshing, mismatches, divergence.

The reference for every resumed run is an uninterrupted run of the same config (DESIGN.md:
"a resumed run reproduces the uninterrupted run's losses exactly on CPU").

- Subprocess tests (``slow``) run ``visprior pretrain`` on 8 fake CPU devices (the environment
  conftest.py sets), interrupt it with SIGTERM or SIGKILL, rerun the same command and compare the
  per-step losses in ``metrics.jsonl`` bitwise with the uninterrupted run.
- In-process tests call ``train()`` on a tiny model: resuming onto another mesh, a checkpoint
  that does not match the model, ``load_model`` on workdirs and exports, and divergence.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import pretrain_config, subprocess_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VISPRIOR = os.path.join(os.path.dirname(sys.executable), "visprior")
TMP_SUFFIX = ".orbax-checkpoint-tmp"   # orbax 0.12: checkpoints/<step>.orbax-checkpoint-tmp while writing

# ----------------------------------------------------------------------------------------------
# Subprocess runs of `visprior pretrain`
# ----------------------------------------------------------------------------------------------

STEPS = 20
# llama3_tiny with a 16k vocabulary: ~0.7 MB of compute per step but ~21 MB per checkpoint
# (params + Adam moments), so a save takes a few hundred ms and can be caught in progress.
RUN_FLAGS = ("--config=configs/pretrain.py:llama3_tiny", f"--config.train.steps={STEPS}",
             "--config.train.log_every=1", "--config.model.vocab_size=16384",
             "--config.checkpoint.export=False", "--config.metrics.tensorboard=False",
             "--config.metrics.mfu=False")


def _env() -> dict:
  return subprocess_env()


def _start(workdir, log_path, *overrides) -> subprocess.Popen:
  # Output goes to a file, never a pipe: orbax logs a lot, and a full pipe would block the child.
  log = open(log_path, "a")
  try:
    return subprocess.Popen([VISPRIOR, "pretrain", f"--workdir={workdir}", *RUN_FLAGS, *overrides],
                            cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT)
  finally:
    log.close()


def _run(workdir, log_path, *overrides, timeout=300) -> str:
  """Runs to completion; returns this run's output; fails the test on a nonzero exit."""
  start = os.path.getsize(log_path) if os.path.exists(log_path) else 0
  proc = _start(workdir, log_path, *overrides)
  rc = proc.wait(timeout=timeout)
  with open(log_path) as f:
    f.seek(start)
    out = f.read()
  assert rc == 0, f"visprior pretrain exited {rc}:\n{_tail(out)}"
  return out


def _tail(text: str, n: int = 40) -> str:
  lines = [l for l in text.splitlines() if not re.match(r"^[IW]\d{4} ", l)]   # drop absl INFO/WARN
  return "\n".join(lines[-n:])


def _losses(workdir) -> dict[int, float]:
  """step -> loss from metrics.jsonl; the last row wins (resumed runs repeat steps)."""
  out = {}
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return out
  with open(path) as f:
    for line in f:
      try:
        row = json.loads(line)
      except json.JSONDecodeError:   # a line cut short by SIGKILL
        continue
      out[row["step"]] = row["loss"]
  return out


def _complete_steps(workdir) -> list[int]:
  d = os.path.join(workdir, "checkpoints")
  return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


def _tmp_dirs(workdir) -> list[str]:
  d = os.path.join(workdir, "checkpoints")
  return sorted(n for n in os.listdir(d) if TMP_SUFFIX in n) if os.path.isdir(d) else []


def _assert_same_losses(got: dict[int, float], want: dict[int, float]) -> None:
  assert sorted(got) == sorted(want) == list(range(1, STEPS + 1))
  diff = [(s, got[s], want[s]) for s in want if got[s] != want[s]]   # bitwise: exact float equality
  assert not diff, f"losses differ from the uninterrupted run at (step, got, want): {diff[:5]}"


def _wait_until(predicate, proc, timeout=240, poll=0.002):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    value = predicate()
    if value:
      return value
    if proc.poll() is not None:
      return None
    time.sleep(poll)
  proc.kill()
  pytest.fail(f"timed out after {timeout}s waiting for the run")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """Losses of the uninterrupted run (checkpointing only at the end; cadence never changes losses)."""
  wd = tmp_path_factory.mktemp("reference")
  _run(wd, wd / "log.txt", "--config.checkpoint.every=1000")
  losses = _losses(wd)
  assert sorted(losses) == list(range(1, STEPS + 1))
  assert all(np.isfinite(v) for v in losses.values())
  return losses


@pytest.mark.slow
def test_sigterm_preemption_resumes_bitwise(tmp_path, reference):
  kill_at = random.Random(1234).randint(2, STEPS - 4)   # fixed seed: step 14; never 0 or the last
  wd, log = tmp_path / "run", tmp_path / "log.txt"
  # No periodic checkpoint before the end: whatever is on disk after SIGTERM is the preemption save.
  every = "--config.checkpoint.every=1000"
  proc = _start(wd, log, every)
  reached = _wait_until(lambda: max(_losses(wd), default=0) >= kill_at, proc, poll=0.01)
  assert reached, f"the run ended before step {kill_at}:\n{_tail(log.read_text())}"
  proc.send_signal(signal.SIGTERM)
  assert proc.wait(timeout=120) == 0, _tail(log.read_text())
  out = log.read_text()
  preempted = re.search(r"preempted at step (\d+)", out)
  assert preempted, _tail(out)
  stopped = int(preempted.group(1))
  assert kill_at <= stopped < STEPS
  assert f"preempted: saved step {stopped}" in out
  assert _complete_steps(wd) == [stopped]          # the preemption save, complete on disk
  assert not _tmp_dirs(wd)
  assert max(_losses(wd)) == stopped

  out = _run(wd, log, every)                        # the same command again
  assert f"(step {stopped})" in out and "resumed from" in out, _tail(out)
  assert f"finished at step {STEPS}" in out
  _assert_same_losses(_losses(wd), reference)


@pytest.mark.slow
def test_sigkill_during_checkpoint_write_resumes_from_last_complete(tmp_path, reference):
  wd, log = tmp_path / "run", tmp_path / "log.txt"
  rng = random.Random(4321)
  threshold = rng.randint(3, STEPS - 6)
  # Kill as soon as a save of step >= threshold is in progress. If orbax finished renaming between
  # our look and the kill (a race of microseconds against a ~0.4 s write), run and try again later.
  every = "--config.checkpoint.every=1"
  for attempt in range(3):
    proc = _start(wd, log, every)

    def writing():
      names = _tmp_dirs(wd)
      return [n for n in names if int(n.split(".")[0]) >= threshold] or None

    seen = _wait_until(writing, proc, poll=0.001)
    assert seen, f"no checkpoint write of step >= {threshold} observed:\n{_tail(log.read_text())}"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    if _tmp_dirs(wd):
      break
    threshold = max(_complete_steps(wd)) + 1
    assert threshold < STEPS - 2, "could not catch a checkpoint write in progress"
  else:
    pytest.fail("no SIGKILL landed during a checkpoint write in 3 attempts")

  complete = _complete_steps(wd)
  assert complete, "no complete checkpoint before the kill"
  last_complete = complete[-1]
  interrupted = [int(n.split(".")[0]) for n in _tmp_dirs(wd)]
  assert max(interrupted) > last_complete          # the interrupted write is newer than the last complete one
  assert last_complete < STEPS

  out = _run(wd, log, every)                        # the same command again
  resumed = re.search(r"resumed from \S+/checkpoints/(\d+) \(step (\d+)\)", out)
  assert resumed, _tail(out)
  assert int(resumed.group(1)) == int(resumed.group(2)) == last_complete
  assert f"finished at step {STEPS}" in out
  assert _complete_steps(wd) == [STEPS - 2, STEPS - 1, STEPS]   # keep=3; the re-run saved every step
  assert not _tmp_dirs(wd)                                        # the interrupted write was replaced
  _assert_same_losses(_losses(wd), reference)


# ----------------------------------------------------------------------------------------------
# In-process runs of train()
# ----------------------------------------------------------------------------------------------

def _tiny_config(**train):
  c = pretrain_config("llama3_tiny")
  c.train.update({**dict(steps=8, batch_size=8, seq_len=64, log_every=1), **train})
  c.optim.warmup_steps = 2
  c.checkpoint.update(every=4, keep=5, async_save=False, export=True)
  c.metrics.update(tensorboard=False, mfu=False)
  c.mesh.update(data=1, fsdp=8, tensor=1)
  return c


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """An 8-step run on mesh fsdp=8 with checkpoints at steps 4 and 8 and a parameter export."""
  from visprior_jax.train.trainer import train
  config = _tiny_config()
  wd = tmp_path_factory.mktemp("trained")
  result = train(config, wd)
  assert result.status == "finished" and result.step == 8
  assert sorted(result.losses) == list(range(1, 9))
  assert _complete_steps(wd) == [4, 8]
  return config, wd, result


def test_resume_onto_a_different_mesh(tmp_path, trained):
  from visprior_jax.train.trainer import train
  config, wd, reference = trained
  # The run as it was after step 4 (its last checkpoint before the end), then continued on 2x2x2.
  wd2 = tmp_path / "remeshed"
  shutil.copytree(wd, wd2)
  shutil.rmtree(wd2 / "checkpoints" / "8")
  shutil.rmtree(wd2 / "export")
  config2 = _tiny_config()
  config2.mesh.update(data=2, fsdp=2, tensor=2)
  result = train(config2, wd2)
  assert result.status == "finished" and result.step == 8
  assert sorted(result.losses) == [5, 6, 7, 8]      # resumed at step 4: steps 1-4 were not re-run
  got = np.array([result.losses[s] for s in range(5, 9)])
  want = np.array([reference.losses[s] for s in range(5, 9)])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=0)
  # The new checkpoint is stored with the new mesh's sharding and restores onto a single device.
  from visprior_jax.checkpoint.params import load_params
  _, p_ref = load_params(wd / "checkpoints" / "8")
  _, p_new = load_params(wd2 / "checkpoints" / "8")
  for a, b in zip(jax.tree.leaves(p_ref), jax.tree.leaves(p_new)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)


def test_checkpoint_model_mismatch_names_parameter_and_shapes(tmp_path, trained):
  from visprior_jax.checkpoint.params import CheckpointMismatch, load_params
  from visprior_jax.train.trainer import train
  config, wd, _ = trained
  wd2 = tmp_path / "copy"
  shutil.copytree(wd, wd2)
  config_json = (wd2 / "config.json").read_text()
  bad = _tiny_config()
  bad.model.mlp_dim = 256
  with pytest.raises(CheckpointMismatch) as e:
    train(bad, wd2)
  msg = str(e.value)
  # Parameters are compared in sorted order; blocks/mlp/w_down is the first one mlp_dim changes.
  assert "blocks/mlp/w_down" in msg, msg
  assert "(2, 192, 64)" in msg and "(2, 256, 64)" in msg, msg
  assert "\n" not in msg
  assert _complete_steps(wd2) == [4, 8]                           # nothing written or deleted
  assert (wd2 / "config.json").read_text() == config_json        # the run's record is untouched

  from visprior_jax.models.llama import LlamaConfig
  cfg = LlamaConfig.from_dict(config.model.to_dict())
  other = LlamaConfig.from_dict({**cfg.to_dict(), "embed_dim": 96})
  with pytest.raises(CheckpointMismatch, match=r"blocks/attn/wk has shape \(2, 64, 2, 16\) in the checkpoint "
                                               r"but \(2, 96, 2, 16\) in the model"):
    load_params(wd / "export", cfg=other)


def test_load_model_matches_trained_params(trained):
  import visprior_jax
  from visprior_jax.checkpoint.manager import RunCheckpoints
  from visprior_jax.models import functional
  from visprior_jax.models.llama import LlamaConfig
  config, wd, _ = trained
  cfg = LlamaConfig.from_dict(config.model.to_dict())
  # The trained parameters, read through the trainer's own checkpoint manager (another code path).
  ckpts = RunCheckpoints(wd)
  try:
    params = ckpts.restore(8, functional.abstract_params(cfg), None)["params"]
  finally:
    ckpts.close()
  tokens = np.random.default_rng(0).integers(0, cfg.vocab_size, size=(2, 16)).astype(np.int32)
  want = np.asarray(jax.jit(lambda p, t: functional.apply(cfg, p, t))(params, jnp.asarray(tokens)))
  assert np.isfinite(want).all()
  for path in (wd, wd / "export"):
    model = visprior_jax.load_model(path)
    assert model.cfg == cfg
    for a, b in zip(jax.tree.leaves(model.params), jax.tree.leaves(params)):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(model(tokens)), want)
    np.testing.assert_array_equal(np.asarray(model(tokens[0])), want[0])   # 1-D tokens: one sequence


def test_divergence_stops_before_saving_nonfinite_state(tmp_path):
  from visprior_jax.checkpoint.manager import RunCheckpoints
  from visprior_jax.models import functional
  from visprior_jax.models.llama import LlamaConfig
  from visprior_jax.train.trainer import TrainingDiverged, train
  config = _tiny_config(steps=12)
  config.optim.update(lr=1e6, warmup_steps=0)       # Adam at lr 1e6: non-finite within a few steps
  config.checkpoint.update(every=1, keep=20)
  wd = tmp_path / "diverge"
  with pytest.raises(TrainingDiverged) as e:
    train(config, wd)
  msg = str(e.value)
  found = re.search(r"at step (\d+)", msg)
  assert found, msg
  bad_step = int(found.group(1))
  assert 1 <= bad_step <= 12
  steps = _complete_steps(wd)
  assert steps and steps[-1] < bad_step, (steps, msg)
  assert f"checkpoints/{steps[-1]}" in msg           # the message points at the last good checkpoint
  assert max(_losses(wd)) == bad_step - 1            # metrics hold no row of the diverged step
  assert all(np.isfinite(v) for v in _losses(wd).values())
  # Every checkpoint on disk, the latest included, holds finite parameters and optimizer state.
  cfg = LlamaConfig.from_dict(config.model.to_dict())
  from visprior_jax.train.optim import make_optimizer
  abstract = functional.abstract_params(cfg)
  abstract_opt = jax.eval_shape(make_optimizer(config.optim, abstract, config.train.steps).init, abstract)
  ckpts = RunCheckpoints(wd)
  try:
    for step in steps:
      restored = ckpts.restore(step, abstract, None, abstract_opt, None)
      for leaf in jax.tree.leaves((restored["params"], restored["opt_state"])):
        assert np.isfinite(np.asarray(leaf)).all(), f"non-finite values in checkpoint {step}"
  finally:
    ckpts.close()
