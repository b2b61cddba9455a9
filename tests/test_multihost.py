"""Multi-host training on one machine: several ``visprior pretrain`` processes joined by ``jax.distributed``.

Every child is a real CLI run (``parallel/distributed.py`` start-up, the trainer, orbax, the
mixture pipeline over prepared shards) with ``--xla_force_host_platform_device_count`` giving it
fake CPU devices; the processes talk over gloo on 127.0.0.1. The reference is one process with
the same four devices: DESIGN.md asks a second code path to agree, and a 2-process run differs from
it only in where the cross-device sums happen, so losses agree to float rounding (1e-5 relative).

Covered: equal losses (2 x 2 devices vs 1 x 4), disjoint per-process rows that together make the
one-process batch, one writer for metrics/TensorBoard/export, checkpoints moving 2 -> 1 and 1 -> 2
processes, SIGTERM on one process stopping both at one step, and start-up failures (a missing
process, an unreachable coordinator, mismatched settings, a hanging initialize) as one line.

Children run concurrently (a 2-process run next to its 1-process reference; the resumes next to
the preemption run) and each has a timeout, so a hang fails the test instead of stalling CI. A
small driver wraps the data source to record a hash of every row each process loaded, per step,
so the test sees the processes' shares of each batch directly. The unit tests at the end check
which ``jax.distributed.initialize`` arguments each environment produces, with a fake initialize.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest
from conftest import subprocess_env

from visprior_jax.parallel import distributed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 10
RTOL = 1e-5
CHILD_TIMEOUT = 300

# The config each child loads: llama3_tiny on a 70/30 mixture of two prepared byte-level sources.
CONFIG = '''
import sys
sys.path.insert(0, {configs!r})
import pretrain

def get_config(arg=""):
  c = pretrain.get_config("llama3_tiny")
  c.mesh.update(data=1, fsdp=-1)
  c.data.update(kind="mixture", prepared_dir={data!r})
  del c.data["recipe"]
  c.data.recipe = [dict(source="letters", weight=0.7), dict(source="digits", weight=0.3)]
  c.train.update(steps={steps}, batch_size=8, seq_len=64, log_every=1)
  c.checkpoint.update(every=5, keep=5, export=False)
  c.metrics.update(tensorboard=False, mfu=False)
  return c
'''

# `visprior` with the source's batch() wrapped: appends {step, index, count, row hashes} per call
# to $MH_ROWS.<process index>. Everything else is the real CLI.
DRIVER = '''
import hashlib, json, os, sys
import jax
from visprior_jax import cli
from visprior_jax.train import trainer

real_make_source = trainer.make_source

def make_source(*args, **kwargs):
  source = real_make_source(*args, **kwargs)
  batch = source.batch
  def recorded(step, index=0, count=1):
    out = batch(step, index, count)
    rows = [hashlib.sha256(r.tobytes()).hexdigest()[:16] for r in out["inputs"]]
    with open(os.environ["MH_ROWS"] + "." + str(jax.process_index()), "a") as f:
      f.write(json.dumps(dict(step=step, index=index, count=count, rows=rows)) + "\\n")
    return out
  source.batch = recorded
  return source

trainer.make_source = make_source
sys.argv = ["visprior"] + sys.argv[1:]
cli.run()
'''

_CLUSTER_ENV = ("SLURM_", "TPU_", "MEGASCALE_", "CLOUD_TPU_", "VISPRIOR_")


def _free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _child_env(devices: int, num_processes: int = 1, process_id: int = 0, port: int = 0, **extra) -> dict:
  env = {k: v for k, v in subprocess_env().items() if not k.startswith(_CLUSTER_ENV)}
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  if num_processes > 1:
    env.update(VISPRIOR_COORDINATOR=f"127.0.0.1:{port}", VISPRIOR_NUM_PROCESSES=str(num_processes),
               VISPRIOR_PROCESS_ID=str(process_id))
  env.update(extra)
  return env


class _Run:
  """One logical run: ``processes`` children of ``visprior pretrain`` sharing a workdir."""

  def __init__(self, root, name, workdir, processes: int, devices: int, *flags):
    self.name, self.workdir, self.logs, self.procs = name, workdir, [], []
    port = _free_port()
    for i in range(processes):
      log_path = os.path.join(root, f"{name}.{i}.log")
      self.logs.append(log_path)
      child_env = _child_env(devices, processes, i, port, MH_ROWS=os.path.join(root, f"{name}.rows"))
      with open(log_path, "w") as log:   # a file, never a pipe: a full pipe would block the child
        self.procs.append(subprocess.Popen(
            [sys.executable, "-c", DRIVER, "pretrain", f"--config={os.path.join(root, 'config.py')}",
             f"--workdir={workdir}", *flags], cwd=REPO, env=child_env, stdout=log, stderr=subprocess.STDOUT))
    self.rows_prefix = os.path.join(root, f"{name}.rows")

  def wait(self, timeout=CHILD_TIMEOUT) -> list[str]:
    """Waits for every child (all share one deadline); returns their outputs; fails on a hang or error."""
    deadline = time.monotonic() + timeout
    codes = []
    for p in self.procs:
      try:
        codes.append(p.wait(timeout=max(1.0, deadline - time.monotonic())))
      except subprocess.TimeoutExpired:
        for q in self.procs:
          q.kill()
        pytest.fail(f"{self.name}: timed out after {timeout}s\n" + self._tails())
    outs = [open(path).read() for path in self.logs]
    assert codes == [0] * len(codes), f"{self.name}: exit codes {codes}\n{self._tails()}"
    return outs

  def _tails(self) -> str:
    return "\n".join(f"--- {path}\n{_tail(open(path).read())}" for path in self.logs)

  def rows(self, process: int) -> dict[int, dict]:
    """step -> the last record of what ``process`` loaded for that step."""
    out = {}
    with open(f"{self.rows_prefix}.{process}") as f:
      for line in f:
        row = json.loads(line)
        out[row["step"]] = row
    return out


def _tail(text: str, n: int = 30) -> str:
  lines = [l for l in text.splitlines() if not re.match(r"^[IWF]\d{4} |^\[Gloo\]|^    @", l)]
  return "\n".join(lines[-n:])


def _losses(workdir) -> dict[int, float]:
  """step -> loss from metrics.jsonl; the last row wins (a resumed run repeats steps)."""
  out = {}
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    for line in f:
      row = json.loads(line)
      out[row["step"]] = row["loss"]
  return out


def _assert_close(got: dict[int, float], want: dict[int, float], steps) -> None:
  for s in steps:
    assert abs(got[s] - want[s]) <= RTOL * abs(want[s]), f"step {s}: loss {got[s]} vs reference {want[s]}"


def _resume_copy(src, dst, keep_step: int) -> None:
  """A copy of a finished run's workdir as it was at ``keep_step`` (later checkpoints removed)."""
  shutil.copytree(src, dst)
  for name in os.listdir(os.path.join(dst, "checkpoints")):
    if name.isdigit() and int(name) > keep_step:
      shutil.rmtree(os.path.join(dst, "checkpoints", name))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """A 1-process x 4-device reference run and a 2-process x 2-device run of the same config, concurrently."""
  import random
  import string
  from visprior_jax.data.prepare import prepare_source
  from visprior_jax.data.tokenizers import ByteTokenizer
  root = str(tmp_path_factory.mktemp("multihost"))
  for i, (name, alphabet) in enumerate((("letters", string.ascii_lowercase + " "), ("digits", string.digits + " "))):
    rng = random.Random(i)
    docs = [{"text": "".join(rng.choice(alphabet) for _ in range(rng.randint(20, 300))), "id": str(j)}
            for j in range(60)]
    prepare_source(docs, ByteTokenizer(), os.path.join(root, "data"), name, docs_per_shard=16, progress=False)
  with open(os.path.join(root, "config.py"), "w") as f:
    f.write(CONFIG.format(configs=os.path.join(REPO, "configs"), data=os.path.join(root, "data"), steps=STEPS))
  ref = _Run(root, "ref", os.path.join(root, "ref"), 1, 4)
  two = _Run(root, "two", os.path.join(root, "two"), 2, 2, "--config.metrics.tensorboard=True",
             "--config.checkpoint.export=True")
  outs = {"ref": ref.wait(), "two": two.wait()}
  return dict(root=root, ref=ref, two=two, outs=outs, ref_losses=_losses(ref.workdir))


@pytest.mark.multiprocess
def test_two_processes_train_like_one(runs):
  ref, two = runs["ref_losses"], _losses(runs["two"].workdir)
  assert sorted(ref) == sorted(two) == list(range(1, STEPS + 1))
  _assert_close(two, ref, range(1, STEPS + 1))
  # Logging, TensorBoard, the summary line and the export come from process 0 alone.
  p0, p1 = runs["outs"]["two"]
  assert "distributed: 2 processes" in p0 and "2 local / 4 global cpu devices" in p0
  assert re.search(r"step\s+10 \| loss", p0) and "finished at step 10" in p0
  assert not re.search(r"step\s+\d+ \| loss", p1) and "finished at step" not in p1 and "distributed:" not in p1
  assert len(os.listdir(os.path.join(runs["two"].workdir, "tb"))) == 1
  from visprior_jax.checkpoint.params import load_params
  _, exported = load_params(os.path.join(runs["two"].workdir, "export"))
  _, final = load_params(os.path.join(runs["two"].workdir, "checkpoints", str(STEPS)))
  for a, b in zip(jax.tree.leaves(exported), jax.tree.leaves(final)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.multiprocess
def test_each_process_loads_its_own_disjoint_rows(runs):
  ref = runs["ref"].rows(0)
  p0, p1 = runs["two"].rows(0), runs["two"].rows(1)
  assert sorted(ref) == sorted(p0) == sorted(p1) == list(range(STEPS))
  for step in range(STEPS):
    assert (p0[step]["index"], p0[step]["count"], p1[step]["index"], p1[step]["count"]) == (0, 2, 1, 2)
    assert len(p0[step]["rows"]) == len(p1[step]["rows"]) == 4
    assert not set(p0[step]["rows"]) & set(p1[step]["rows"]), f"step {step}: both processes loaded a row"
    assert p0[step]["rows"] + p1[step]["rows"] == ref[step]["rows"], f"step {step}: not the global batch"


@pytest.fixture(scope="module")
def later_runs(runs):
  """Concurrently: the two resumes across process counts, and a 2-process run that process 1 alone
  gets SIGTERM in (after step 3)."""
  root = runs["root"]
  _resume_copy(runs["two"].workdir, os.path.join(root, "two_to_one"), 5)
  _resume_copy(runs["ref"].workdir, os.path.join(root, "one_to_two"), 5)
  started = {
      "to_one": _Run(root, "two_to_one", os.path.join(root, "two_to_one"), 1, 4),
      # Across processes the data axis goes over DCN (one granule per process), fsdp within a process.
      "to_two": _Run(root, "one_to_two", os.path.join(root, "one_to_two"), 2, 2, "--config.dcn_mesh.data=2"),
      "preempt": _Run(root, "preempt", os.path.join(root, "preempt"), 2, 2, "--config.train.steps=1000",
                      "--config.checkpoint.every=1000"),
  }
  preempt = started["preempt"]
  metrics = os.path.join(preempt.workdir, "metrics.jsonl")
  deadline = time.monotonic() + CHILD_TIMEOUT
  while not (os.path.exists(metrics) and len(open(metrics).read().splitlines()) >= 3):
    if time.monotonic() > deadline or any(p.poll() is not None for p in preempt.procs):
      preempt.wait(timeout=1)   # reports the exit codes (or kills) and fails
      pytest.fail("the preemption run ended before step 3")
    time.sleep(0.1)
  preempt.procs[1].send_signal(signal.SIGTERM)   # process 1 only
  return dict(runs=started, outs={name: run.wait() for name, run in started.items()})


@pytest.mark.multiprocess
def test_checkpoints_move_between_process_counts(runs, later_runs):
  """2-process checkpoint -> 1 process, and 1-process checkpoint -> 2 processes on a DCN x ICI mesh."""
  outs = later_runs["outs"]
  for name in ("to_one", "to_two"):
    assert "resumed from" in outs[name][0] and "(step 5)" in outs[name][0], f"{name}:\n{_tail(outs[name][0])}"
  assert "'data': 2, 'fsdp': 2" in outs["to_two"][0]
  for name in ("to_one", "to_two"):
    wd = later_runs["runs"][name].workdir
    losses = _losses(wd)
    assert sorted(losses) == list(range(1, STEPS + 1))
    _assert_close(losses, runs["ref_losses"], range(6, STEPS + 1))
    with open(os.path.join(wd, "metrics.jsonl")) as f:
      assert len(f.read().splitlines()) == STEPS + 5   # the first run's 10 rows, then steps 6..10 again


@pytest.mark.multiprocess
def test_sigterm_on_one_process_stops_every_process_at_one_step(later_runs):
  """Preemption notices reach hosts at different times; JAX's sync point makes all save the same step."""
  out0 = later_runs["outs"]["preempt"][0]
  wd = later_runs["runs"]["preempt"].workdir
  stopped = int(re.search(r"preempted at step (\d+)", out0).group(1))
  assert 3 <= stopped < 1000 and f"preempted: saved step {stopped}" in out0
  assert sorted(int(n) for n in os.listdir(os.path.join(wd, "checkpoints")) if n.isdigit()) == [stopped]
  assert max(_losses(wd)) == stopped


@pytest.mark.multiprocess
def test_missing_processes_fail_fast_with_one_line(tmp_path):
  """Only some processes started: each one that did exits 2 with one line naming who is missing."""
  def start(name, port, process_id, num_processes):
    log = open(tmp_path / f"{name}.log", "w")
    env = _child_env(2, num_processes, process_id, port)
    cmd = [os.path.join(os.path.dirname(sys.executable), "visprior"), "pretrain",
           "--config=configs/pretrain.py:llama3_tiny", f"--workdir={tmp_path / name}",
           "--config.distributed.initialization_timeout_s=10"]
    return name, subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

  mismatch = _free_port()
  procs = [start("only_coordinator", _free_port(), 0, 2), start("only_worker", _free_port(), 1, 2),
           start("mismatch0", mismatch, 0, 2), start("mismatch1", mismatch, 1, 3)]
  errors = {}
  for name, p in procs:
    try:
      rc = p.wait(timeout=120)
    except subprocess.TimeoutExpired:
      for _, q in procs:
        q.kill()
      pytest.fail(f"{name} did not exit: start-up hangs instead of failing")
    lines = [l for l in (tmp_path / f"{name}.log").read_text().splitlines() if l.startswith("error:")]
    assert rc == 2 and len(lines) == 1, f"{name}: rc {rc}\n{(tmp_path / f'{name}.log').read_text()[-3000:]}"
    errors[name] = lines[0]
  assert re.search(r"1 of 2 processes joined the coordinator at 127\.0\.0\.1:\d+ within 10 s "
                   r"\(missing process ids: 1\): start the same command on every host", errors["only_coordinator"])
  assert re.search(r"process 1 could not reach the coordinator at 127\.0\.0\.1:\d+ within 10 s",
                   errors["only_worker"])
  for name in ("mismatch0", "mismatch1"):
    assert "process 1 was started with num_processes=3 but process 0 with 2" in errors[name]


@pytest.mark.multiprocess
def test_watchdog_ends_a_hanging_initialize(tmp_path):
  """An auto-detected cluster whose initialize never returns: one line and exit 2 after the timeout."""
  script = ("import time, jax\n"
            "jax.distributed.initialize = lambda **kw: time.sleep(600)\n"
            "from visprior_jax.parallel import distributed\n"
            "distributed.initialize({'initialization_timeout_s': 2})\n")
  env = _child_env(1, SLURM_JOB_ID="7", SLURM_NTASKS="4", SLURM_PROCID="3")
  proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode == 2, proc.stderr[-2000:]
  lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(lines) == 1 and ("did not finish within 2 s (slurm cluster detected by JAX; 4 processes expected, "
                              "this is process 3)") in lines[0], proc.stderr[-2000:]


# ----------------------------------------------------------------------------------------------
# Unit tests: environment -> plan -> jax.distributed.initialize arguments
# ----------------------------------------------------------------------------------------------

def _kwargs(environ, config=None):
  return distributed.detect(config, environ).initialize_kwargs(supported={"initialization_timeout"})


def test_no_cluster_is_one_process():
  assert distributed.detect(None, {}).mode == "single"
  assert _kwargs({}) == {}
  assert _kwargs({"SLURM_JOB_ID": "1", "SLURM_NTASKS": "1"}) == {}          # one task: nothing to join
  assert _kwargs({"TPU_WORKER_HOSTNAMES": "localhost", "TPU_WORKER_ID": "0"}) == {}   # single-host TPU VM


def test_explicit_coordinator_from_env_and_config():
  env = {"VISPRIOR_COORDINATOR": "10.0.0.2:8476", "VISPRIOR_NUM_PROCESSES": "4", "VISPRIOR_PROCESS_ID": "3"}
  assert _kwargs(env) == dict(coordinator_address="10.0.0.2:8476", num_processes=4, process_id=3,
                              initialization_timeout=300 + distributed.JAX_TIMEOUT_MARGIN_S)
  config = {"distributed": dict(coordinator_address="h0:1234", num_processes=2, process_id=1,
                                initialization_timeout_s=20)}
  plan = distributed.detect(config, {**env, "SLURM_JOB_ID": "5", "SLURM_NTASKS": "8"})   # explicit beats SLURM
  assert (plan.mode, plan.source, plan.coordinator_address, plan.num_processes, plan.process_id) == (
      "explicit", "config", "h0:1234", 2, 1)
  assert plan.initialize_kwargs(supported={"initialization_timeout"})["initialization_timeout"] == 20 + 60
  assert "initialization_timeout" not in plan.initialize_kwargs(supported=set())   # an older JAX
  # config fields fill in what env lacks, and a process id of 0 from the config is honoured
  mixed = distributed.detect({"distributed": dict(process_id=0)}, env)
  assert (mixed.coordinator_address, mixed.num_processes, mixed.process_id) == ("10.0.0.2:8476", 4, 0)


def test_clusters_jax_detects_get_a_bare_initialize():
  tpu = {"TPU_WORKER_HOSTNAMES": "t0,t1,t2,t3", "TPU_WORKER_ID": "2"}
  assert _kwargs(tpu) == {"initialization_timeout": 360}
  assert distributed.detect(None, tpu).cluster_processes == 4
  assert distributed.detect(None, {**tpu, "MEGASCALE_NUM_SLICES": "2",
                                   "MEGASCALE_COORDINATOR_ADDRESS": "c:8080"}).cluster_processes == 8
  assert distributed.detect(None, {"CLOUD_TPU_TASK_ID": "0"}).mode == "auto"   # hosts unknown: let JAX decide
  slurm = distributed.detect(None, {"SLURM_JOB_ID": "9", "SLURM_NTASKS": "16", "SLURM_PROCID": "5"})
  assert (slurm.mode, slurm.source, slurm.cluster_processes, slurm.process_id) == ("auto", "slurm", 16, 5)
  assert slurm.initialize_kwargs(supported={"initialization_timeout"}) == {"initialization_timeout": 360}


@pytest.mark.parametrize("environ, config, message", [
    ({"VISPRIOR_COORDINATOR": "h:1"}, None, "num_processes is not"),
    ({"VISPRIOR_NUM_PROCESSES": "2", "VISPRIOR_PROCESS_ID": "0"}, None, "no coordinator"),
    ({"VISPRIOR_COORDINATOR": "h:1", "VISPRIOR_NUM_PROCESSES": "2", "VISPRIOR_PROCESS_ID": "2"}, None,
     "process_id=2 with num_processes=2"),
    ({"VISPRIOR_COORDINATOR": "h:1", "VISPRIOR_NUM_PROCESSES": "2"}, None, "process_id=-1"),
    ({"VISPRIOR_COORDINATOR": "nohost", "VISPRIOR_NUM_PROCESSES": "2", "VISPRIOR_PROCESS_ID": "0"}, None,
     "is not host:port"),
    ({"VISPRIOR_NUM_PROCESSES": "two"}, None, "is not an integer"),
    ({}, {"distributed": dict(initialization_timeout_s=0)}, "must be positive"),
])
def test_bad_settings_are_one_line_errors(environ, config, message):
  with pytest.raises(distributed.DistributedError, match=re.escape(message)):
    distributed.detect(config, environ)


def test_initialize_calls_jax_and_checks_the_topology(monkeypatch, capsys):
  from conftest import pretrain_config
  calls = []

  def fake_initialize(coordinator_address=None, num_processes=None, process_id=None, initialization_timeout=300):
    calls.append(dict(coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id,
                      initialization_timeout=initialization_timeout))

  monkeypatch.setattr(jax.distributed, "initialize", fake_initialize)
  monkeypatch.setattr(distributed, "_roll_call", lambda plan: calls.append("roll call"))
  env = {"VISPRIOR_COORDINATOR": "127.0.0.1:9", "VISPRIOR_NUM_PROCESSES": "2", "VISPRIOR_PROCESS_ID": "0"}
  config = pretrain_config("llama3_tiny")
  plan = distributed.initialize(config, environ=env)
  assert calls == ["roll call", dict(coordinator_address="127.0.0.1:9", num_processes=2, process_id=0,
                                     initialization_timeout=360)]
  assert plan.mode == "explicit" and "distributed: 1 process (" in capsys.readouterr().out
  # The fake joined nothing: this process alone is not the 2 processes the config expects.
  config.distributed.expected_processes = 2
  with pytest.raises(distributed.DistributedError, match=r"1 process joined .* distributed.expected_processes=2"):
    distributed.initialize(config, environ=env)
  config.distributed.expected_processes = 0
  config.mesh.update(fsdp=16)
  with pytest.raises(distributed.DistributedError, match=r"the mesh does not fit this run's 8 devices"):
    distributed.initialize(config, environ=env)
  calls.clear()
  assert distributed.initialize(config, environ={}).mode == "single" and calls == []
  # A host started without any cluster environment runs alone, unless the config says otherwise.
  config.distributed.expected_processes = 4
  with pytest.raises(distributed.DistributedError, match=r"1 process joined \(single process\) but "
                     r"distributed.expected_processes=4: this process found no coordinator"):
    distributed.initialize(config, environ={})
  assert calls == []


def test_roll_call_in_threads():
  """The roll call itself, in-process: three processes meet; a missing one fails everyone present."""
  port = _free_port()
  plans = [distributed.Plan("explicit", "env", f"127.0.0.1:{port}", 3, i, timeout_s=20) for i in range(3)]
  errors, threads = [], []
  for plan in reversed(plans):   # clients first: they retry until process 0 listens
    t = threading.Thread(target=lambda p=plan: _catch(errors, distributed._roll_call, p))
    t.start()
    threads.append(t)
    time.sleep(0.1)
  for t in threads:
    t.join(30)
  assert errors == []

  port = _free_port()
  plans = [distributed.Plan("explicit", "env", f"127.0.0.1:{port}", 3, i, timeout_s=2) for i in range(2)]
  threads = [threading.Thread(target=lambda p=p: _catch(errors, distributed._roll_call, p)) for p in plans]
  for t in threads:
    t.start()
  for t in threads:
    t.join(30)
  messages = sorted(str(e) for e in errors)
  assert len(messages) == 2 and all(m.startswith("2 of 3 processes joined the coordinator") for m in messages)
  assert all("within 2 s (missing process ids: 2):" in m for m in messages)   # process 0's verdict reaches all


def _catch(errors, fn, *args):
  try:
    fn(*args)
  except distributed.DistributedError as e:
    errors.append(e)
