#!/usr/bin/env python3
"""TPU workloads on GKE through XPK: create, list, delete.

  python launch/xpk.py run    --cluster=C --workload=W --tpu-type=v5p-128 [--num-slices=2] [--aot] -- \\
                              visprior pretrain --config=configs/pretrain.py:llama3_7b --workdir=gs://B/runs/7b
  python launch/xpk.py list   --cluster=C
  python launch/xpk.py delete --cluster=C --workload=W

Every subcommand takes --dry-run (print the xpk commands, one per line, and run nothing) and
--project / --zone. The cluster and its TPU node pools come first (``xpk cluster create``, see
docs/scaling.md); a workload is one run on them.

XPK starts the same container on every host of every slice and sets up the multi-slice (DCN)
environment itself, so there is no worker selection to get wrong. The container is built by xpk
from --base-docker-image (default python:3.11-slim) with this checkout (--script-dir) copied to
/app, and the command first installs the package (``pip install -e '.[tpu]'``); with a prebuilt
--docker-image that already holds visprior_jax, the install step is skipped (--install forces it).

The container's disk is gone when the workload ends or is restarted, so --workdir must be a
gs:// path for checkpoints to survive and for a restarted workload (--max-restarts) to resume.
"""

from __future__ import annotations

import argparse
import shlex
import sys

import launchlib as L


def workload_command(args, command: list[str]) -> str:
  """The shell command each container runs: [install &&] [env K=V] <command>."""
  env = " ".join(f"{k}={shlex.quote(v)}" for k, v in L.parse_env(args.env))
  install = args.install if args.install is not None else not args.docker_image
  parts = []
  if install:
    parts.append(f"pip install -q -e {shlex.quote(f'.[{args.extras}]')}")
  parts.append((f"env {env} " if env else "") + shlex.join(command))
  return " && ".join(parts)


def run_workload(args, command: list[str], run: L.Runner) -> None:
  if not command:
    L.fail("give the command to run after `--`, e.g. -- visprior pretrain --config=... --workdir=gs://...")
  acc = L.parse_accelerator(args.tpu_type)
  L.check_workdir(command, acc.hosts * args.num_slices, "the containers' disks are lost when the workload "
                  "ends or restarts, so nothing could resume.", always=True)
  L.preflight(command, acc.aot_name, args.num_slices, args.aot, run)
  image = ([f"--docker-image={args.docker_image}"] if args.docker_image else
           [f"--base-docker-image={args.base_docker_image}", f"--script-dir={args.script_dir}"])
  extra = ([f"--priority={args.priority}"] if args.priority else []) + \
          ([f"--max-restarts={args.max_restarts}"] if args.max_restarts is not None else [])
  run(["xpk", "workload", "create", *_where(args), f"--workload={args.workload}", f"--tpu-type={acc.name}",
       f"--num-slices={args.num_slices}", *image, *extra, f"--command={workload_command(args, command)}"])


def _where(args) -> list[str]:
  return ([f"--cluster={args.cluster}"] + ([f"--project={args.project}"] if args.project else []) +
          ([f"--zone={args.zone}"] if args.zone else []))


def main(argv: list[str]) -> None:
  own, command, dry_run = L.split_argv(argv)
  common = argparse.ArgumentParser(add_help=False)
  common.add_argument("--cluster", required=True)
  common.add_argument("--project", default=None)
  common.add_argument("--zone", default=None)
  common.add_argument("--dry-run", action="store_true", help="print the commands and run nothing")
  p = argparse.ArgumentParser(prog="launch/xpk.py", description=__doc__.split("\n")[0])
  sub = p.add_subparsers(dest="cmd", required=True)
  c = sub.add_parser("run", parents=[common])
  c.add_argument("--workload", required=True)
  c.add_argument("--tpu-type", required=True, help="e.g. v5p-128, v5litepod-256, v6e-256")
  c.add_argument("--num-slices", type=int, default=1)
  c.add_argument("--docker-image", default=None, help="a prebuilt image with visprior_jax installed")
  c.add_argument("--base-docker-image", default="python:3.11-slim")
  c.add_argument("--script-dir", default=str(L.REPO_ROOT), help="copied into the image at /app")
  inst = c.add_mutually_exclusive_group()
  inst.add_argument("--install", dest="install", action="store_true", default=None)
  inst.add_argument("--no-install", dest="install", action="store_false")
  c.add_argument("--extras", default="tpu")
  c.add_argument("--priority", default=None, help="xpk priority, e.g. medium, high")
  c.add_argument("--max-restarts", type=int, default=None, help="restarts after failure/preemption")
  c.add_argument("--env", action="append", default=[], help="KEY=VALUE for the command (repeatable)")
  c.add_argument("--aot", action="store_true", help="run `visprior aot` for the topology here first")
  sub.add_parser("list", parents=[common])
  c = sub.add_parser("delete", parents=[common])
  c.add_argument("--workload", required=True)
  args = p.parse_args(own)
  if command and args.cmd != "run":
    L.fail(f"`{args.cmd}` takes no command after `--`")

  run = L.Runner(dry_run)
  if args.cmd == "run":
    run_workload(args, command, run)
  elif args.cmd == "list":
    run(["xpk", "workload", "list", *_where(args)])
  else:
    run(["xpk", "workload", "delete", *_where(args), f"--workload={args.workload}"])


if __name__ == "__main__":
  main(sys.argv[1:])
