#!/usr/bin/env python3
"""Cloud TPU VMs and pods: create, copy the code, install, run on every host, logs, stop, delete.

  python launch/tpu.py create  --name=N --zone=Z --accelerator=v5p-128 [--num-slices=2] [--spot|--reserved]
  python launch/tpu.py copy    --name=N --zone=Z [--source=archive|git --repo-url=URL --ref=main]
  python launch/tpu.py install --name=N --zone=Z
  python launch/tpu.py run     --name=N --zone=Z --accelerator=v5p-128 [--aot] -- \\
                               visprior pretrain --config=configs/pretrain.py:llama3_7b --workdir=gs://B/runs/7b
  python launch/tpu.py logs    --name=N --zone=Z [--follow]
  python launch/tpu.py stop    --name=N --zone=Z        (SIGTERM: the trainer saves and exits)
  python launch/tpu.py status  --name=N --zone=Z
  python launch/tpu.py delete  --name=N --zone=Z

Every subcommand takes --dry-run (print the gcloud commands, one per line, and run nothing) and
--project=P. By default the TPU is a *queued resource* (the recommended way to get capacity, and
the only way to get several slices): node N for one slice, nodes N-0 ... N-{k-1} for
--num-slices=k, all addressed with ``gcloud compute tpus queued-resources ssh N --node=all
--worker=all``. --mode=vm creates a plain TPU VM instead (``tpu-vm create``, one slice).

A JAX program on a pod must start on every host: ``jax.distributed.initialize`` waits until all
of them have joined, so a command run on one worker hangs (jax-ml/jax#19971, #22436). ``run``
therefore always targets all workers and refuses --worker/--node other than ``all`` on a
multi-host slice. It starts the command detached (``setsid nohup``), so the run survives a lost
ssh connection; each host writes ``~/visprior_logs/<run-name>.log`` and a pid file, which
``logs`` and ``stop`` use. A second ``run`` while one is alive is refused on that host.

Multi-slice: the slices talk over the data-centre network (DCN). With a multi-slice queued
resource the TPU runtime provides the MEGASCALE_* settings (coordinator = slice 0, host 0) to
libtpu; if you assemble slices yourself, set MEGASCALE_COORDINATOR_ADDRESS, MEGASCALE_NUM_SLICES
and MEGASCALE_SLICE_ID per host with --env. Put data parallelism across slices:
``--config.dcn_mesh.data=-1`` (docs/scaling.md).

Before spending accelerator hours, compile for the topology from a CPU machine:
``visprior aot --config=... --topology=v5p-128`` (printed by ``run``; ``run --aot`` runs it first
and stops if it fails).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile

import launchlib as L

LOG_DIR = "~/visprior_logs"


def _remote_dir(path: str) -> str:
  """A remote directory for the shell: relative paths are under the home directory."""
  return shlex.quote(path) if path.startswith("/") else "~/" + shlex.quote(path)


class Tpu:
  """The gcloud command lines for one TPU (a queued resource or a plain TPU VM)."""

  def __init__(self, args):
    self.name, self.mode = args.name, args.mode
    self.where = [f"--zone={args.zone}"] + ([f"--project={args.project}"] if args.project else [])

  def _group(self) -> list[str]:
    return ["gcloud", "compute", "tpus", "queued-resources" if self.mode == "queued" else "tpu-vm"]

  def _all(self, worker: str = "all", node: str = "all") -> list[str]:
    return ([f"--node={node}"] if self.mode == "queued" else []) + [f"--worker={worker}"]

  def ssh(self, command: str, worker: str = "all", node: str = "all") -> list[str]:
    return [*self._group(), "ssh", self.name, *self.where, *self._all(worker, node), f"--command={command}"]

  def scp(self, src: str, dest: str) -> list[str]:
    return [*self._group(), "scp", src, f"{self.name}:{dest}", *self.where, *self._all()]

  def simple(self, verb: str, *extra: str) -> list[str]:
    return [*self._group(), verb, self.name, *self.where, *extra]


def create(args, tpu: Tpu, run: L.Runner) -> None:
  acc = L.parse_accelerator(args.accelerator)
  runtime = args.runtime_version or acc.runtime
  capacity = ["--spot"] if args.spot else ["--reserved"] if args.reserved else []
  if args.mode == "vm":
    if args.num_slices > 1:
      L.fail("--num-slices > 1 needs a queued resource (drop --mode=vm)")
    run(tpu.simple("create", f"--accelerator-type={acc.name}", f"--version={runtime}", *capacity,
                   *args.gcloud_arg))
  else:
    nodes = ([f"--node-count={args.num_slices}", f"--node-prefix={args.name}"] if args.num_slices > 1
             else [f"--node-id={args.name}"])
    run(tpu.simple("create", f"--accelerator-type={acc.name}", f"--runtime-version={runtime}", *nodes,
                   *capacity, *args.gcloud_arg))
    L.note(f"a queued resource waits for capacity; check it with `python launch/tpu.py status "
           f"--name={args.name} --zone={args.zone}` until its state is ACTIVE")
  L.note(f"{acc.name}: {acc.chips} chips, {acc.hosts} host(s) per slice x {args.num_slices} slice(s)")


def copy(args, tpu: Tpu, run: L.Runner) -> None:
  dest = _remote_dir(args.remote_dir)
  if args.source == "git":
    if not args.repo_url:
      L.fail("--source=git needs --repo-url (each worker clones it)")
    ref = args.ref or "main"
    run(tpu.ssh(f"([ -d {dest}/.git ] || git clone -q {shlex.quote(args.repo_url)} {dest}) && cd {dest} && "
                f"git fetch -q origin {shlex.quote(ref)} && git checkout -q --force FETCH_HEAD"))
    return
  archive = args.archive or os.path.join(tempfile.gettempdir(), f"visprior_jax-{args.name}.tar.gz")
  ref = args.ref or "HEAD"
  if not run.dry_run:
    status = subprocess.run(["git", "-C", args.repo_dir, "status", "--porcelain"], capture_output=True, text=True)
    if status.stdout.strip():
      L.warn(f"the archive holds the committed tree ({ref}); uncommitted changes are not copied")
  run(["git", "-C", args.repo_dir, "archive", "--format=tar.gz", f"--output={archive}", ref])
  run(tpu.scp(archive, "visprior_jax.tar.gz"))
  run(tpu.ssh(f"mkdir -p {dest} && tar -xzf ~/visprior_jax.tar.gz -C {dest} && rm ~/visprior_jax.tar.gz"))


def install(args, tpu: Tpu, run: L.Runner) -> None:
  py = shlex.quote(args.python)
  run(tpu.ssh(f"cd {_remote_dir(args.remote_dir)} && "
              f"(command -v {py} >/dev/null || (sudo apt-get update -qq && "
              f"sudo apt-get install -y -qq {py} {py}-venv)) && "
              f"{py} -m venv .venv && .venv/bin/pip install -q --upgrade pip && "
              f".venv/bin/pip install -q -e {shlex.quote(f'.[{args.extras}]')}"))


def run_command(args, command: list[str], tpu: Tpu, run: L.Runner) -> None:
  if not command:
    L.fail("give the command to run after `--`, e.g. -- visprior pretrain --config=... --workdir=gs://...")
  acc = L.parse_accelerator(args.accelerator)
  processes = acc.hosts * args.num_slices
  if args.mode == "vm" and args.num_slices > 1:
    L.fail("--num-slices > 1 needs a queued resource (drop --mode=vm)")
  if args.worker != "all" and acc.hosts > 1:
    L.fail(f"refusing --worker={args.worker}: {acc.name} has {acc.hosts} hosts and every one must run the "
           f"same command (jax.distributed waits for all of them; one host alone hangs). Use --worker=all.")
  if args.node != "all" and args.num_slices > 1:
    L.fail(f"refusing --node={args.node}: all {args.num_slices} slices must run the command. Use --node=all.")
  L.check_workdir(command, processes, "each host would write its own checkpoints, and a resumed run "
                  "(possibly on other hosts) would not find them.")
  L.preflight(command, acc.aot_name, args.num_slices, args.aot, run)

  # The venv's bin first on PATH (so `visprior` and `python` are the installed ones), then the command.
  env = " ".join(f"{k}={shlex.quote(v)}" for k, v in L.parse_env(args.env))
  program = f'env PATH="$PWD/.venv/bin:$PATH" {env + " " if env else ""}{shlex.join(command)}'
  log, pid = f"{LOG_DIR}/{args.run_name}.log", f"{LOG_DIR}/{args.run_name}.pid"
  cd = f"cd {_remote_dir(args.remote_dir)} && mkdir -p {LOG_DIR} && "
  if args.foreground:
    remote = f'{cd}{program} 2>&1 | tee {log} | sed -u "s/^/[$(hostname)] /"'
  else:
    remote = (f'{cd}if [ -f {pid} ] && kill -0 "$(cat {pid})" 2>/dev/null; then '
              f'echo "$(hostname): {args.run_name} is still running; stop it first" >&2; exit 1; fi; '
              f"setsid nohup {program} > {log} 2>&1 < /dev/null & echo $! > {pid}")
  run(tpu.ssh(remote, args.worker, args.node))
  if not args.foreground and not run.dry_run:
    L.note(f"started on all {processes} host(s); follow with `python launch/tpu.py logs --name={args.name} "
           f"--zone={args.zone} --follow`")


def logs(args, tpu: Tpu, run: L.Runner) -> None:
  follow = " -F" if args.follow else ""
  run(tpu.ssh(f'tail -n {args.lines}{follow} {LOG_DIR}/{args.run_name}.log 2>&1 | sed -u "s/^/[$(hostname)] /"',
              args.worker, args.node))


def stop(args, tpu: Tpu, run: L.Runner) -> None:
  pid = f"{LOG_DIR}/{args.run_name}.pid"
  run(tpu.ssh(f'if [ -f {pid} ] && kill -TERM -- -"$(cat {pid})" 2>/dev/null; then '
              f'echo "$(hostname): sent SIGTERM to {args.run_name}"; else echo "$(hostname): not running"; fi'))


def main(argv: list[str]) -> None:
  own, command, dry_run = L.split_argv(argv)
  common = argparse.ArgumentParser(add_help=False)
  common.add_argument("--name", required=True, help="queued resource / TPU VM name")
  common.add_argument("--zone", required=True)
  common.add_argument("--project", default=None)
  common.add_argument("--mode", choices=("queued", "vm"), default="queued",
                      help="queued resource (default, needed for multi-slice) or a plain TPU VM")
  common.add_argument("--remote-dir", default="visprior_jax", help="code directory on each host (under ~)")
  common.add_argument("--run-name", default="visprior", help="names the log and pid files of a run")
  common.add_argument("--dry-run", action="store_true", help="print the commands and run nothing")
  topo = argparse.ArgumentParser(add_help=False)
  topo.add_argument("--accelerator", default=None, help="e.g. v5p-128, v5litepod-256, v6e-256, v4-32")
  topo.add_argument("--num-slices", type=int, default=1)
  workers = argparse.ArgumentParser(add_help=False)
  workers.add_argument("--worker", default="all")
  workers.add_argument("--node", default="all")

  p = argparse.ArgumentParser(prog="launch/tpu.py", description=__doc__.split("\n")[0])
  sub = p.add_subparsers(dest="cmd", required=True)
  c = sub.add_parser("create", parents=[common, topo])
  c.add_argument("--runtime-version", default=None, help="default: the family's TPU VM image")
  cap = c.add_mutually_exclusive_group()
  cap.add_argument("--spot", action="store_true")
  cap.add_argument("--reserved", action="store_true")
  c.add_argument("--gcloud-arg", action="append", default=[], help="passed through to gcloud (repeatable)")
  c = sub.add_parser("copy", parents=[common, topo])
  c.add_argument("--source", choices=("archive", "git"), default="archive",
                 help="archive: `git archive` of this checkout, copied to every host; git: clone/fetch on each")
  c.add_argument("--repo-url", default=None)
  c.add_argument("--ref", default=None, help="archive: default HEAD; git: default main")
  c.add_argument("--repo-dir", default=str(L.REPO_ROOT), help="the local checkout to archive")
  c.add_argument("--archive", default=None, help="local archive path (default: in the temp directory)")
  c = sub.add_parser("install", parents=[common, topo])
  c.add_argument("--python", default="python3.11", help="interpreter for the venv (installed with apt if missing)")
  c.add_argument("--extras", default="tpu")
  c = sub.add_parser("run", parents=[common, topo, workers])
  c.add_argument("--env", action="append", default=[], help="KEY=VALUE exported for the command (repeatable)")
  c.add_argument("--foreground", action="store_true", help="stream output through ssh instead of detaching")
  c.add_argument("--aot", action="store_true", help="run `visprior aot` for the topology here first")
  c = sub.add_parser("logs", parents=[common, topo, workers])
  c.add_argument("--lines", type=int, default=100)
  c.add_argument("--follow", action="store_true")
  for name in ("stop", "status", "delete"):
    sub.add_parser(name, parents=[common, topo])
  args = p.parse_args(own)
  if command and args.cmd != "run":
    L.fail(f"`{args.cmd}` takes no command after `--`")
  if args.cmd in ("create", "run") and not args.accelerator:
    L.fail(f"`{args.cmd}` needs --accelerator (e.g. v5p-128): it decides the host count and the runtime")

  tpu, run = Tpu(args), L.Runner(dry_run)
  if args.cmd == "run":
    run_command(args, command, tpu, run)
  elif args.cmd == "status":
    run(tpu.simple("describe"))
  elif args.cmd == "delete":
    run(tpu.simple("delete", *(["--force"] if args.mode == "queued" else []), "--quiet"))
  else:
    {"create": create, "copy": copy, "install": install, "logs": logs, "stop": stop}[args.cmd](args, tpu, run)


if __name__ == "__main__":
  main(sys.argv[1:])
