"""The launch scripts (launch/): the commands they print, the commands they run, their guard rails.

No cloud, no cluster, no network: stub ``gcloud``, ``xpk``, ``srun``, ``sbatch``, ``scontrol``,
``git`` and ``visprior`` executables on PATH append their argv (and the launch-related
environment) as one JSON line to a log and exit 0. ``scontrol show hostnames`` prints two node
names; ``srun`` runs its task command once per task id, as SLURM would on the nodes; with
STUB_SSH_EXEC=1, ``gcloud ... ssh --command=C`` runs C with bash here, standing in for one TPU host.

Each launcher is checked twice: with --dry-run (the exact command lines; nothing is called) and for
real against the stubs (the recorded argv are the dry-run lines).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAUNCH = REPO / "launch"
CMD = ["visprior", "pretrain", "--config=configs/pretrain.py:llama3_7b", "--workdir=gs://bkt/runs/7b",
       "--config.metrics.wandb_project=my run"]
TPU = ["--name=vp", "--zone=us-east5-a", "--project=proj"]
WHERE = ["vp", "--zone=us-east5-a", "--project=proj"]
QR = ["gcloud", "compute", "tpus", "queued-resources"]

STUB = """#!{python}
import json, os, subprocess, sys, time
prog, args = os.path.basename(sys.argv[0]), sys.argv[1:]
keep = ("VISPRIOR_", "XLA_", "JAX_", "NCCL_", "CUDA_VISIBLE_DEVICES", "SLURM_", "PATH")
env = {{k: v for k, v in os.environ.items() if k.startswith(keep)}}
with open(os.environ["STUB_LOG"], "a") as f:
  f.write(json.dumps({{"prog": prog, "argv": args, "env": env}}) + "\\n")
if prog == "scontrol" and args[:2] == ["show", "hostnames"]:
  print("gpu-node-1\\ngpu-node-2")
if prog == "srun":
  task = args[args.index("bash"):]
  for rank in range(int(os.environ["SLURM_NTASKS"])):
    subprocess.run(task, env=dict(os.environ, SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank)), check=True)
if prog == "gcloud" and os.environ.get("STUB_SSH_EXEC") and "ssh" in args:
  command = [a for a in args if a.startswith("--command=")][0][len("--command="):]
  sys.exit(subprocess.run(["bash", "-c", command], cwd=os.environ["HOME"]).returncode)
rank = os.environ.get("VISPRIOR_PROCESS_ID", "")
if os.environ.get("STUB_FAIL") in (prog, prog + ":" + rank):
  sys.exit(3)
if prog == "visprior" and os.environ.get("STUB_SLEEP") and os.environ.get("STUB_SLEEP_PROCESS", rank) == rank:
  time.sleep(float(os.environ["STUB_SLEEP"]))
"""


@pytest.fixture
def stubs(tmp_path):
  """(environment for the launchers, path of the call log)."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  for name in ("gcloud", "xpk", "srun", "sbatch", "scontrol", "git", "visprior"):
    (bin_dir / name).write_text(STUB.format(python=sys.executable))
    (bin_dir / name).chmod(0o755)
  log = tmp_path / "calls.jsonl"
  env = {k: v for k, v in os.environ.items() if not k.startswith(("XLA_", "JAX_", "VISPRIOR_", "STUB_", "SLURM_"))}
  env.update(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", STUB_LOG=str(log), TMPDIR=str(tmp_path))
  return env, log


def launch(script: str, *args: str, env: dict, cwd=REPO, timeout: float = 30) -> subprocess.CompletedProcess:
  exe = ["bash"] if script.endswith(".sh") else [sys.executable]
  return subprocess.run([*exe, str(LAUNCH / script), *args], env=env, cwd=cwd, capture_output=True,
                        text=True, timeout=timeout)


def lines(result: subprocess.CompletedProcess) -> list[list[str]]:
  assert result.returncode == 0, result.stderr
  return [shlex.split(line) for line in result.stdout.splitlines()]


def calls(log: Path, prog: str | None = None) -> list[dict]:
  found = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
  return [c for c in found if prog is None or c["prog"] == prog]


def argvs(log: Path) -> list[list[str]]:
  return [[c["prog"], *c["argv"]] for c in calls(log)]


def option(argv: list[str], name: str) -> str:
  return [a for a in argv if a.startswith(name + "=")][0][len(name) + 1:]


# ------------------------------------------------------------------------------------------- TPU

def test_tpu_create_queued_resource(stubs):
  env, log = stubs
  out = launch("tpu.py", "create", "--dry-run", *TPU, "--accelerator=v5p-128", "--spot", env=env)
  assert lines(out) == [[*QR, "create", *WHERE, "--accelerator-type=v5p-128", "--runtime-version=v2-alpha-tpuv5",
                         "--node-id=vp", "--spot"]]
  assert "16 host(s) per slice" in out.stderr
  assert calls(log) == []   # a dry run runs nothing

  multi = launch("tpu.py", "create", *TPU, "--accelerator=v5p-128", "--num-slices=2", "--reserved", "--dry-run",
                 env=env)
  assert lines(multi) == [[*QR, "create", *WHERE, "--accelerator-type=v5p-128", "--runtime-version=v2-alpha-tpuv5",
                           "--node-count=2", "--node-prefix=vp", "--reserved"]]

  vm = launch("tpu.py", "--dry-run", "create", *TPU, "--mode=vm", "--accelerator=v5e-16", env=env)
  assert lines(vm) == [["gcloud", "compute", "tpus", "tpu-vm", "create", *WHERE, "--accelerator-type=v5litepod-16",
                        "--version=v2-alpha-tpuv5-lite"]]


def test_tpu_run_targets_every_worker_and_quotes_the_command(stubs):
  env, log = stubs
  out = launch("tpu.py", "run", "--dry-run", *TPU, "--accelerator=v5p-128", "--env=WANDB_MODE=offline", "--", *CMD,
               env=env)
  (argv,) = lines(out)
  assert argv[:len(QR) + 2] == [*QR, "ssh", "vp"]
  assert "--node=all" in argv and "--worker=all" in argv
  remote = option(argv, "--command")
  program = remote.split("setsid nohup ", 1)[1].split(" > ~/visprior_logs/visprior.log", 1)[0]
  assert shlex.split(program) == ["env", "PATH=$PWD/.venv/bin:$PATH", "WANDB_MODE=offline", *CMD]
  assert remote.startswith("cd ~/visprior_jax && ")
  # the AOT pre-flight for the same config and topology is printed, not run
  aot = "visprior aot --config=configs/pretrain.py:llama3_7b '--config.metrics.wandb_project=my run' --topology=v5p-128"
  assert aot in out.stderr
  assert "warning" not in out.stderr
  assert calls(log) == []


@pytest.mark.parametrize("sub, extra", [
    ("create", ["--accelerator=v6e-256", "--num-slices=4"]),
    ("copy", ["--source=git", "--repo-url=https://example.org/visprior_jax.git", "--ref=v1"]),
    ("install", []),
    ("run", ["--accelerator=v5p-128", "--num-slices=2", "--", *CMD, "--config.dcn_mesh.data=-1"]),
    ("logs", ["--follow"]),
    ("stop", []),
    ("status", []),
    ("delete", []),
])
def test_tpu_real_run_executes_the_dry_run_lines(stubs, sub, extra):
  env, log = stubs
  dry = lines(launch("tpu.py", sub, "--dry-run", *TPU, *extra, env=env))
  real = launch("tpu.py", sub, *TPU, *extra, env=env)
  assert real.returncode == 0, real.stderr
  assert argvs(log) == dry and dry


def test_tpu_copy_archive_and_teardown(stubs, tmp_path):
  env, log = stubs
  archive = str(tmp_path / "visprior_jax-vp.tar.gz")
  out = lines(launch("tpu.py", "copy", "--dry-run", *TPU, env=env))
  assert out == [
      ["git", "-C", str(REPO), "archive", "--format=tar.gz", f"--output={archive}", "HEAD"],
      [*QR, "scp", archive, "vp:visprior_jax.tar.gz", "--zone=us-east5-a", "--project=proj", "--node=all",
       "--worker=all"],
      [*QR, "ssh", *WHERE, "--node=all", "--worker=all",
       "--command=mkdir -p ~/visprior_jax && tar -xzf ~/visprior_jax.tar.gz -C ~/visprior_jax "
       "&& rm ~/visprior_jax.tar.gz"]]
  real = launch("tpu.py", "copy", *TPU, env=env)
  assert real.returncode == 0, real.stderr
  recorded = argvs(log)
  assert recorded[0] == ["git", "-C", str(REPO), "status", "--porcelain"]   # the uncommitted-changes check
  assert recorded[1:] == out
  assert lines(launch("tpu.py", "delete", "--dry-run", *TPU, env=env)) == [[*QR, "delete", *WHERE, "--force",
                                                                             "--quiet"]]
  assert lines(launch("tpu.py", "delete", "--dry-run", *TPU, "--mode=vm", env=env)) == [
      ["gcloud", "compute", "tpus", "tpu-vm", "delete", *WHERE, "--quiet"]]


def test_tpu_run_refuses_a_single_worker_on_a_multi_host_slice(stubs):
  env, log = stubs
  out = launch("tpu.py", "run", *TPU, "--accelerator=v5p-128", "--worker=0", "--", *CMD, env=env)
  assert out.returncode == 2
  assert "refusing --worker=0: v5p-128 has 16 hosts" in out.stderr and "--worker=all" in out.stderr
  out = launch("tpu.py", "run", *TPU, "--accelerator=v5p-128", "--num-slices=2", "--node=1", "--", *CMD, env=env)
  assert out.returncode == 2 and "refusing --node=1" in out.stderr
  assert calls(log) == []
  single = launch("tpu.py", "run", "--dry-run", *TPU, "--accelerator=v5p-8", "--mode=vm", "--worker=0", "--", *CMD,
                  env=env)
  (argv,) = lines(single)   # one host: a single worker is the whole slice
  assert argv[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "vp"] and "--worker=0" in argv


def test_tpu_warnings_local_workdir_and_missing_dcn_mesh(stubs):
  env, _ = stubs
  local = [*CMD[:3], "--workdir=runs/7b"]
  out = launch("tpu.py", "run", "--dry-run", *TPU, "--accelerator=v5p-128", "--", *local, env=env)
  assert out.returncode == 0 and "warning: --workdir=runs/7b is a local path" in out.stderr
  assert "16 process(es)" in out.stderr and "gs://" in out.stderr
  one_host = launch("tpu.py", "run", "--dry-run", *TPU, "--accelerator=v5p-8", "--", *local, env=env)
  assert "warning" not in one_host.stderr
  multi = launch("tpu.py", "run", "--dry-run", *TPU, "--accelerator=v5p-128", "--num-slices=2", "--", *CMD, env=env)
  assert "--config.dcn_mesh.data=-1" in multi.stderr
  assert "--topology=v5p-128 --num_slices=2" in multi.stderr


@pytest.mark.parametrize("accelerator, message", [
    ("v9x-64", "unknown accelerator type 'v9x-64'"),
    ("v5p-12", "multiples of 8"),
    ("v6e-48", "v6e slices have 1, 4, 8, 16"),
])
def test_tpu_unknown_accelerator_is_a_clear_error(stubs, accelerator, message):
  env, log = stubs
  out = launch("tpu.py", "create", *TPU, f"--accelerator={accelerator}", env=env)
  assert out.returncode == 2 and message in out.stderr
  assert out.stderr.startswith("error: ") and out.stdout == "" and calls(log) == []


def test_tpu_aot_preflight_runs_first_and_a_failure_stops_the_launch(stubs):
  env, log = stubs
  args = ["run", *TPU, "--accelerator=v5p-128", "--num-slices=2", "--aot", "--", *CMD, "--config.dcn_mesh.data=-1"]
  dry = lines(launch("tpu.py", "--dry-run", *args, env=env))
  aot = ["visprior", "aot", "--config=configs/pretrain.py:llama3_7b", "--config.metrics.wandb_project=my run",
         "--config.dcn_mesh.data=-1", "--topology=v5p-128", "--num_slices=2"]
  assert dry[0] == aot and dry[1][:len(QR) + 1] == [*QR, "ssh"]
  assert launch("tpu.py", *args, env=env).returncode == 0
  assert argvs(log) == dry
  log.unlink()
  failed = launch("tpu.py", *args, env={**env, "STUB_FAIL": "visprior"})
  assert failed.returncode == 3 and "command failed" in failed.stderr
  assert argvs(log) == [aot]   # nothing was started on the TPU


def test_tpu_remote_commands_run_detach_log_and_stop(stubs, tmp_path):
  """The strings sent over ssh, executed by bash on a stand-in host (HOME=tmp/home)."""
  env, log = stubs
  home = tmp_path / "home"
  venv_bin = home / "visprior_jax" / ".venv" / "bin"
  venv_bin.mkdir(parents=True)
  env = {**env, "HOME": str(home), "STUB_SSH_EXEC": "1", "STUB_SLEEP": "20"}
  out = launch("tpu.py", "run", *TPU, "--accelerator=v5p-8", "--", *CMD, env=env)
  assert out.returncode == 0, out.stderr
  for _ in range(100):   # the run is detached: wait for it to start
    if calls(log, "visprior"):
      break
    time.sleep(0.1)
  (started,) = calls(log, "visprior")
  assert started["argv"] == CMD[1:]
  assert started["env"]["PATH"].startswith(f"{venv_bin}:")
  pid = int((home / "visprior_logs" / "visprior.pid").read_text())
  assert _alive(pid)

  again = launch("tpu.py", "run", *TPU, "--accelerator=v5p-8", "--", *CMD, env=env)
  assert again.returncode != 0 and "visprior is still running; stop it first" in again.stderr

  (home / "visprior_logs" / "visprior.log").write_text("step 10 loss 3.2\n")
  logs = launch("tpu.py", "logs", *TPU, env=env)
  assert logs.returncode == 0 and logs.stdout.endswith("] step 10 loss 3.2\n") and logs.stdout.startswith("[")

  stop = launch("tpu.py", "stop", *TPU, env=env)
  assert stop.returncode == 0 and "sent SIGTERM to visprior" in stop.stdout
  for _ in range(100):
    if not _alive(pid):
      break
    time.sleep(0.1)
  else:
    pytest.fail("the run did not stop after SIGTERM")


def _alive(pid: int) -> bool:
  """Running (an exited process waiting to be reaped counts as stopped)."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  stat = Path(f"/proc/{pid}/stat")
  return not (stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z")


# ------------------------------------------------------------------------------------------- XPK

def test_xpk_workload_create_list_delete(stubs):
  env, log = stubs
  where = ["--cluster=pod", "--project=proj", "--zone=us-east5-a"]
  cmd = [*CMD, "--config.dcn_mesh.data=-1"]
  out = launch("xpk.py", "run", "--dry-run", *where, "--workload=llama7b", "--tpu-type=v5p-128", "--num-slices=2",
               "--max-restarts=3", "--", *cmd, env=env)
  (argv,) = lines(out)
  assert argv[:-1] == ["xpk", "workload", "create", *where, "--workload=llama7b", "--tpu-type=v5p-128",
                       "--num-slices=2", "--base-docker-image=python:3.11-slim", f"--script-dir={REPO}",
                       "--max-restarts=3"]
  assert shlex.split(option(argv, "--command")) == ["pip", "install", "-q", "-e", ".[tpu]", "&&", *cmd]
  assert "--topology=v5p-128 --num_slices=2" in out.stderr
  listed = lines(launch("xpk.py", "list", "--dry-run", *where, env=env))
  deleted = lines(launch("xpk.py", "delete", "--dry-run", *where, "--workload=llama7b", env=env))
  assert listed == [["xpk", "workload", "list", *where]]
  assert deleted == [["xpk", "workload", "delete", *where, "--workload=llama7b"]]
  assert calls(log) == []

  for sub, extra in (("run", ["--workload=llama7b", "--tpu-type=v5p-128", "--num-slices=2", "--max-restarts=3",
                              "--", *cmd]), ("list", []), ("delete", ["--workload=llama7b"])):
    assert launch("xpk.py", sub, *where, *extra, env=env).returncode == 0
  assert argvs(log) == [argv, *listed, *deleted]


def test_xpk_prebuilt_image_guards(stubs):
  env, _ = stubs
  local = [*CMD[:3], "--workdir=runs/7b"]
  out = launch("xpk.py", "run", "--dry-run", "--cluster=pod", "--workload=w", "--tpu-type=v5p-8",
               "--docker-image=gcr.io/proj/visprior:1", "--", *local, env=env)
  (argv,) = lines(out)
  assert "--docker-image=gcr.io/proj/visprior:1" in argv and not any(a.startswith("--script-dir") for a in argv)
  assert shlex.split(option(argv, "--command")) == local   # the prebuilt image is not reinstalled
  assert "warning: --workdir=runs/7b is a local path" in out.stderr   # even on one host: containers are ephemeral
  bad = launch("xpk.py", "run", "--cluster=pod", "--workload=w", "--tpu-type=tpu9-8", "--", *CMD, env=env)
  assert bad.returncode == 2 and "unknown accelerator type 'tpu9-8'" in bad.stderr


# ----------------------------------------------------------------------------------------- SLURM

def test_slurm_dry_run_and_script(stubs, tmp_path):
  env, log = stubs
  script = tmp_path / "job.sbatch"
  out = launch("slurm.py", "--dry-run", "--nodes=2", "--partition=gpu", f"--script={script}", "--", *CMD, env=env,
               cwd=tmp_path)
  assert lines(out) == [["sbatch", str(script)]]
  assert not script.exists() and calls(log) == []

  text = launch("slurm.py", "--print", "--nodes=2", "--partition=gpu", "--", *CMD, env=env, cwd=tmp_path).stdout
  for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-node=8",
               "#SBATCH --partition=gpu", "export XLA_PYTHON_CLIENT_MEM_FRACTION=0.90", "export NCCL_DEBUG=WARN",
               '  export CUDA_VISIBLE_DEVICES="$SLURM_LOCALID"   # this process drives one GPU',
               f"  exec {shlex.join(CMD)}", "srun --label --kill-on-bad-exit=1 bash -c run_task"):
    assert line in text.splitlines(), line
  assert "--xla_gpu_enable_latency_hiding_scheduler=true --xla_gpu_enable_triton_gemm=false" in text
  (tmp_path / "print.sbatch").write_text(text)
  assert subprocess.run(["bash", "-n", str(tmp_path / "print.sbatch")]).returncode == 0

  per_node = launch("slurm.py", "--print", "--nodes=2", "--per-node", "--", *CMD, env=env, cwd=tmp_path).stdout
  assert "#SBATCH --ntasks-per-node=1" in per_node and "CUDA_VISIBLE_DEVICES" not in per_node
  warned = launch("slurm.py", "--dry-run", "--nodes=2", "--", *CMD[:3], "--workdir=/tmp/run", env=env, cwd=tmp_path)
  assert "warning: --workdir=/tmp/run is node-local" in warned.stderr


def test_slurm_submit_and_the_job_starts_one_process_per_gpu(stubs, tmp_path):
  env, log = stubs
  script = tmp_path / "job.sbatch"
  out = launch("slurm.py", "--nodes=2", "--gpus-per-node=1", f"--repo={tmp_path}", f"--script={script}", "--",
               *CMD, env=env, cwd=tmp_path)
  assert out.returncode == 0, out.stderr
  assert argvs(log) == [["sbatch", str(script)]] and script.exists()
  assert (tmp_path / "runs" / "slurm").is_dir()   # where SLURM writes the job's output
  log.unlink()

  # The job itself, as SLURM would start it on the first node of a 2-node allocation.
  job_env = {**env, "SLURM_JOB_NODELIST": "gpu-node-[1-2]", "SLURM_NTASKS": "2"}
  job = subprocess.run(["bash", str(script)], env=job_env, cwd=tmp_path, capture_output=True, text=True, timeout=30)
  assert job.returncode == 0, job.stderr
  assert "2 processes on 2 nodes, coordinator gpu-node-1:12355" in job.stdout
  assert argvs(log)[:2] == [["scontrol", "show", "hostnames", "gpu-node-[1-2]"],
                            ["srun", "--label", "--kill-on-bad-exit=1", "bash", "-c", "run_task"]]
  procs = calls(log, "visprior")
  assert [p["argv"] for p in procs] == [CMD[1:]] * 2
  for rank, p in enumerate(procs):
    e = p["env"]
    assert (e["VISPRIOR_COORDINATOR"], e["VISPRIOR_NUM_PROCESSES"], e["VISPRIOR_PROCESS_ID"]) == (
        "gpu-node-1:12355", "2", str(rank))
    assert e["CUDA_VISIBLE_DEVICES"] == str(rank) and e["NCCL_DEBUG"] == "WARN"
    assert e["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.90"
    assert "--xla_gpu_enable_latency_hiding_scheduler=true" in e["XLA_FLAGS"]


# ----------------------------------------------------------------------------------------- local

def test_local_sh_syntax():
  assert subprocess.run(["bash", "-n", str(LAUNCH / "local.sh")]).returncode == 0


def test_local_dry_run(stubs):
  env, log = stubs
  assert lines(launch("local.sh", "--dry-run", env=env)) == [["make", "demo"]]
  assert lines(launch("local.sh", "--dry-run", "--", *CMD, env=env)) == [["env", "JAX_PLATFORMS=cpu", *CMD]]
  many = lines(launch("local.sh", "--dry-run", "-n", "2", "-d", "2", "--port", "23456", "--", *CMD, env=env))
  assert many == [["env", "JAX_PLATFORMS=cpu", "XLA_FLAGS=--xla_force_host_platform_device_count=2",
                   "VISPRIOR_COORDINATOR=127.0.0.1:23456", "VISPRIOR_NUM_PROCESSES=2", f"VISPRIOR_PROCESS_ID={i}",
                   *CMD] for i in range(2)]
  assert calls(log) == []
  bad = launch("local.sh", "-n", "zero", env=env)
  assert bad.returncode == 2 and "-n expects a positive number" in bad.stderr


def test_local_processes_share_one_coordinator(stubs, tmp_path):
  env, log = stubs
  out = launch("local.sh", "-n", "3", f"--logdir={tmp_path / 'logs'}", "--", *CMD, env=env)
  assert out.returncode == 0, out.stderr
  procs = sorted(calls(log, "visprior"), key=lambda c: c["env"]["VISPRIOR_PROCESS_ID"])
  assert [p["argv"] for p in procs] == [CMD[1:]] * 3
  assert [p["env"]["VISPRIOR_PROCESS_ID"] for p in procs] == ["0", "1", "2"]
  assert {p["env"]["VISPRIOR_COORDINATOR"] for p in procs} == {"127.0.0.1:12355"}
  assert {p["env"]["XLA_FLAGS"] for p in procs} == {"--xla_force_host_platform_device_count=4"}
  assert sorted(os.listdir(tmp_path / "logs")) == ["proc_0.log", "proc_1.log", "proc_2.log"]


def test_local_one_failure_stops_the_others(stubs, tmp_path):
  """Process 1 fails while process 0 would wait 60 s (as in a collective): all end, status 3."""
  env, log = stubs
  env = {**env, "STUB_FAIL": "visprior:1", "STUB_SLEEP": "60", "STUB_SLEEP_PROCESS": "0"}
  out = launch("local.sh", "-n", "2", f"--logdir={tmp_path / 'logs'}", "--", *CMD, env=env, timeout=40)
  assert out.returncode == 3
  assert "process 1 exited with status 3; stopping the others" in out.stderr
  assert len(calls(log, "visprior")) == 2
