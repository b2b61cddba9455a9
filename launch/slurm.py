#!/usr/bin/env python3
"""GPU clusters with SLURM: write an sbatch script for a multi-node run and submit it.

  python launch/slurm.py --nodes=4 [--gpus-per-node=8] [--per-node] [--partition=P] [--time=24:00:00] -- \\
      visprior pretrain --config=configs/pretrain.py:llama3_7b --workdir=/shared/runs/7b

writes runs/slurm/<job-name>.sbatch (--script=PATH to choose) and runs ``sbatch`` on it.
--print writes the script to stdout instead (nothing is written or submitted); --dry-run prints
the commands (``sbatch PATH``) and runs nothing.

What the script does on the allocation:
- one process per GPU (default: ``--ntasks-per-node`` = GPUs per node, each task sees only its
  GPU through CUDA_VISIBLE_DEVICES=$SLURM_LOCALID) or, with --per-node, one process per node that
  drives all its GPUs;
- the first node of the allocation (``scontrol show hostnames``) is the coordinator, and every
  process gets VISPRIOR_COORDINATOR=<node>:<port>, VISPRIOR_NUM_PROCESSES=$SLURM_NTASKS and
  VISPRIOR_PROCESS_ID=$SLURM_PROCID for visprior's distributed initialisation;
- ``srun --kill-on-bad-exit=1``: when one process dies, SLURM ends the others instead of leaving
  them waiting in a collective until the time limit; ``--label`` prefixes each output line with
  the task number;
- the environment below (each line says why); ``--xla-flag`` adds flags, ``--no-default-xla-flags``
  drops ours.

  --xla_gpu_enable_latency_hiding_scheduler=true  schedule collectives (FSDP all-gathers and
      reduce-scatters, gradient all-reduces) asynchronously so they overlap with compute.
  --xla_gpu_enable_triton_gemm=false  send matmuls to cuBLAS/cuBLASLt instead of Triton-generated
      kernels: the vendor GEMMs are the tuned path for a dense LLM's large bf16 matmuls, and it
      avoids autotuning Triton configs for every GEMM shape at compile time.
  XLA_PYTHON_CLIENT_MEM_FRACTION=0.90  JAX preallocates 75% of GPU memory by default; training
      wants more, minus room for NCCL buffers and cuDNN/cuBLAS workspaces (--mem-fraction).
  NCCL_DEBUG=WARN  NCCL reports warnings and errors (a broken link, a failed init) without the
      INFO chatter.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import launchlib as L

DEFAULT_XLA_FLAGS = ("--xla_gpu_enable_latency_hiding_scheduler=true", "--xla_gpu_enable_triton_gemm=false")
NODE_LOCAL = ("/tmp", "/dev/shm", "/var/tmp")


def sbatch_script(args, command: list[str]) -> str:
  tasks = 1 if args.per_node else args.gpus_per_node
  directives = [f"--job-name={args.job_name}", f"--nodes={args.nodes}", f"--ntasks-per-node={tasks}",
                f"--gpus-per-node={args.gpus_per_node}", f"--time={args.time}", f"--output={args.output}",
                "--exclusive"]
  directives += [f"--partition={args.partition}"] if args.partition else []
  directives += [f"--account={args.account}"] if args.account else []
  directives += [f"--cpus-per-task={args.cpus_per_task}"] if args.cpus_per_task else []
  flags = ([] if args.no_default_xla_flags else list(DEFAULT_XLA_FLAGS)) + args.xla_flag
  env = L.parse_env(args.env)
  task = ['  export VISPRIOR_PROCESS_ID="$SLURM_PROCID"']
  if not args.per_node:
    task.append('  export CUDA_VISIBLE_DEVICES="$SLURM_LOCALID"   # this process drives one GPU')
  task += [f"  cd {shlex.quote(args.repo)}", f'  export PATH={shlex.quote(args.venv + "/bin")}:"$PATH"',
           f"  exec {shlex.join(command)}"]
  lines = [
      "#!/bin/bash",
      "# Written by launch/slurm.py; submit with: sbatch THIS_FILE",
      *(f"#SBATCH {d}" for d in directives),
      "set -euo pipefail",
      "",
      "# The coordinator is the allocation's first node; every process connects to it.",
      'mapfile -t nodes < <(scontrol show hostnames "$SLURM_JOB_NODELIST")',
      f'export VISPRIOR_COORDINATOR="${{nodes[0]}}:{args.port}"',
      'export VISPRIOR_NUM_PROCESSES="$SLURM_NTASKS"',
      "",
      "# XLA / NCCL settings (launch/slurm.py explains each).",
      f'export XLA_FLAGS="${{XLA_FLAGS:-}} {" ".join(flags)}"' if flags else "",
      f"export XLA_PYTHON_CLIENT_MEM_FRACTION={args.mem_fraction}",
      "export NCCL_DEBUG=WARN",
      *(f"export {k}={shlex.quote(v)}" for k, v in env),
      "",
      "# What each process runs (srun starts one per task, with its SLURM_PROCID / SLURM_LOCALID).",
      "run_task() {", *task, "}",
      "export -f run_task",
      "",
      'echo "visprior: $SLURM_NTASKS processes on ${#nodes[@]} nodes, coordinator $VISPRIOR_COORDINATOR"',
      "srun --label --kill-on-bad-exit=1 bash -c run_task",
  ]
  return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
  own, command, dry_run = L.split_argv(argv)
  p = argparse.ArgumentParser(prog="launch/slurm.py", description=__doc__.split("\n")[0])
  p.add_argument("--nodes", type=int, required=True)
  p.add_argument("--gpus-per-node", type=int, default=8)
  p.add_argument("--per-node", action="store_true", help="one process per node instead of one per GPU")
  p.add_argument("--partition", default=None)
  p.add_argument("--account", default=None)
  p.add_argument("--time", default="24:00:00")
  p.add_argument("--cpus-per-task", type=int, default=None)
  p.add_argument("--job-name", default="visprior")
  p.add_argument("--port", type=int, default=12355, help="coordinator port on the first node")
  p.add_argument("--repo", default=str(L.REPO_ROOT), help="the checkout on the shared filesystem")
  p.add_argument("--venv", default=None, help="default: <repo>/.venv")
  p.add_argument("--mem-fraction", default="0.90", help="XLA_PYTHON_CLIENT_MEM_FRACTION")
  p.add_argument("--xla-flag", action="append", default=[], help="extra XLA flag (repeatable)")
  p.add_argument("--no-default-xla-flags", action="store_true")
  p.add_argument("--env", action="append", default=[], help="KEY=VALUE exported in the job (repeatable)")
  p.add_argument("--output", default=None, help="SLURM log path (default: runs/slurm/%%x-%%j.out)")
  p.add_argument("--script", default=None, help="where to write the sbatch script")
  p.add_argument("--print", action="store_true", help="print the script and submit nothing")
  p.add_argument("--dry-run", action="store_true", help="print the commands and run nothing")
  args = p.parse_args(own)
  if not command:
    L.fail("give the command to run after `--`, e.g. -- visprior pretrain --config=... --workdir=...")
  if args.nodes < 1 or args.gpus_per_node < 1:
    L.fail("--nodes and --gpus-per-node must be at least 1")
  args.venv = args.venv or str(Path(args.repo) / ".venv")
  args.output = args.output or "runs/slurm/%x-%j.out"
  script_path = Path(args.script or f"runs/slurm/{args.job_name}.sbatch")

  processes = args.nodes * (1 if args.per_node else args.gpus_per_node)
  workdir = L.flag_value(command, "--workdir")
  if workdir and args.nodes > 1 and workdir.startswith(NODE_LOCAL):
    L.warn(f"--workdir={workdir} is node-local but the run spans {args.nodes} nodes: each node would keep "
           f"its own checkpoints. Use a shared filesystem path or gs://.")
  text = sbatch_script(args, command)
  if args.print:
    sys.stdout.write(text)
    return
  if not dry_run:
    script_path.parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)   # SLURM does not create it
    script_path.write_text(text)
    L.note(f"wrote {script_path} ({processes} processes on {args.nodes} nodes)")
  L.Runner(dry_run)(["sbatch", str(script_path)])


if __name__ == "__main__":
  main(sys.argv[1:])
