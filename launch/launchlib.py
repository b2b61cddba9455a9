"""Shared pieces of the launch scripts (Python standard library only).

The launchers (``tpu.py``, ``xpk.py``, ``slurm.py``) build argument lists and hand them to a
``Runner``: with ``--dry-run`` it prints each command on one line, shell-quoted, and runs nothing;
otherwise it runs them one after another and stops at the first failure. Because the printed
line and the executed argv come from the same list, a dry run shows exactly what a real run does.

Also here: the TPU accelerator table (hosts per slice, runtime image, the AOT topology name), the
``--workdir`` check, and the ``visprior aot`` pre-flight command derived from a run command.
Messages go to stderr as ``note:``, ``warning:`` or ``error:`` (exit status 2), so stdout holds
only the commands.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TRAIN_COMMANDS = ("pretrain", "align", "sft")


def note(msg: str) -> None:
  print(f"note: {msg}", file=sys.stderr)


def warn(msg: str) -> None:
  print(f"warning: {msg}", file=sys.stderr)


def fail(msg: str) -> None:
  print(f"error: {msg}", file=sys.stderr)
  sys.exit(2)


def split_argv(argv: list[str]) -> tuple[list[str], list[str], bool]:
  """(launcher args, the command after ``--``, dry_run); ``--dry-run`` may sit anywhere before ``--``."""
  if "--" in argv:
    i = argv.index("--")
    own, command = argv[:i], argv[i + 1:]
  else:
    own, command = list(argv), []
  dry_run = "--dry-run" in own
  return [a for a in own if a != "--dry-run"], command, dry_run


class Runner:
  """Prints (dry run) or runs argument lists, in order; a failing command ends the launcher."""

  def __init__(self, dry_run: bool):
    self.dry_run = dry_run

  def __call__(self, argv: list[str]) -> None:
    line = shlex.join(argv)
    if self.dry_run:
      print(line, flush=True)
      return
    print(f"+ {line}", file=sys.stderr, flush=True)
    try:
      code = subprocess.call(argv)
    except FileNotFoundError:
      fail(f"{argv[0]!r} is not installed or not on PATH")
    if code != 0:
      print(f"error: command failed with exit status {code}: {line}", file=sys.stderr)
      sys.exit(code)


def parse_env(pairs: list[str] | None) -> list[tuple[str, str]]:
  """``KEY=VALUE`` strings -> pairs; a malformed one is an error."""
  out = []
  for p in pairs or []:
    key, sep, value = p.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
      fail(f"--env expects KEY=VALUE, got {p!r}")
    out.append((key, value))
  return out


def exports(env: list[tuple[str, str]]) -> str:
  """``export A=1 && export B='x y' && `` for a remote shell (empty when there is nothing)."""
  return "".join(f"export {k}={shlex.quote(v)} && " for k, v in env)


# ---------------------------------------------------------------------------------------------
# TPU accelerator types.  gcloud names a slice by TensorCores (v4, v5p: 2 per chip) or by chips
# (v5e = "v5litepod", v6e).  Multi-host slices have 4 chips per TPU VM; v5e/v6e slices of up to
# 8 chips are one VM.  The runtime is the TPU VM image gcloud installs (override with
# --runtime-version).  The AOT name is what `visprior aot --topology=` takes (MaxText's spelling).

@dataclasses.dataclass(frozen=True)
class Accelerator:
  name: str          # as gcloud / xpk spell it, e.g. v5p-128, v5litepod-16
  family: str        # v4 | v5p | v5e | v6e
  chips: int
  hosts: int         # TPU VMs (= JAX processes) per slice
  runtime: str
  aot_name: str      # e.g. v5p-128, v5e-16


_FAMILIES = {
    # family: (gcloud prefix, size counts cores?, runtime version)
    "v4": ("v4", True, "tpu-ubuntu2204-base"),
    "v5p": ("v5p", True, "v2-alpha-tpuv5"),
    "v5e": ("v5litepod", False, "v2-alpha-tpuv5-lite"),
    "v6e": ("v6e", False, "v2-alpha-tpuv6e"),
}
_ALIASES = {"v5litepod": "v5e", "v5lite": "v5e"}
_SMALL_SLICES = (1, 4, 8)                 # v5e / v6e slices that fit one VM
_CHIP_SLICES = (1, 4, 8, 16, 32, 64, 128, 256)


def parse_accelerator(name: str) -> Accelerator:
  """``v5p-128`` -> Accelerator(chips=64, hosts=16, ...); anything else is a one-line error."""
  known = "v4-N, v5p-N (N = TensorCores, a multiple of 8), v5litepod-N / v5e-N, v6e-N (N = chips: " \
          + ", ".join(map(str, _CHIP_SLICES)) + ")"
  m = re.fullmatch(r"(v4|v5p|v5e|v5litepod|v5lite|v6e)-(\d+)", name or "")
  if not m:
    fail(f"unknown accelerator type {name!r}; expected one of {known}")
  family = _ALIASES.get(m.group(1), m.group(1))
  size = int(m.group(2))
  prefix, counts_cores, runtime = _FAMILIES[family]
  if counts_cores:
    if size < 8 or size % 8:
      fail(f"accelerator type {name!r}: {family} sizes count TensorCores and are multiples of 8 "
           f"(e.g. {family}-8, {family}-128)")
    chips = size // 2
    hosts = chips // 4
  else:
    if size not in _CHIP_SLICES:
      fail(f"accelerator type {name!r}: {family} slices have {', '.join(map(str, _CHIP_SLICES))} chips")
    chips = size
    hosts = 1 if size in _SMALL_SLICES else size // 4
  return Accelerator(name=f"{prefix}-{size}", family=family, chips=chips, hosts=hosts,
                     runtime=runtime, aot_name=f"{family}-{size}")


# ---------------------------------------------------------------------------------------------
# The run command: its workdir and the AOT pre-flight command.

def flag_value(command: list[str], flag: str) -> str | None:
  """Value of ``--flag=V`` or ``--flag V`` in a command, else None."""
  for i, tok in enumerate(command):
    if tok.startswith(flag + "="):
      return tok[len(flag) + 1:]
    if tok == flag and i + 1 < len(command):
      return command[i + 1]
  return None


def check_workdir(command: list[str], processes: int, why: str, always: bool = False) -> None:
  """Warns when a multi-process run (or, with ``always``, any run) writes to a local workdir."""
  workdir = flag_value(command, "--workdir")
  if workdir is None or workdir.startswith("gs://") or (processes <= 1 and not always):
    return
  warn(f"--workdir={workdir} is a local path and this run has {processes} process(es): {why} "
       f"Use a gs:// path (e.g. --workdir=gs://BUCKET/runs/NAME).")


def is_train_command(command: list[str]) -> bool:
  return len(command) >= 2 and Path(command[0]).name == "visprior" and command[1] in TRAIN_COMMANDS


def aot_command(command: list[str], topology: str, num_slices: int) -> list[str]:
  """``visprior aot`` with the run's --config flags, compiled for ``topology`` x ``num_slices``."""
  config = []
  for i, tok in enumerate(command):
    if not tok.startswith("--config"):
      continue
    if "=" in tok:
      config.append(tok)                                   # --config=F, --config.a.b=V
    elif i + 1 < len(command) and not command[i + 1].startswith("--"):
      config.append(f"{tok}={command[i + 1]}")             # --config F, --config.a.b V
  out = [command[0], "aot", *config, f"--topology={topology}"]
  if num_slices > 1:
    out.append(f"--num_slices={num_slices}")
  return out


def preflight(command: list[str], topology: str, num_slices: int, run_aot: bool, run) -> None:
  """Checks shared by the TPU launchers: DCN mesh for multi-slice, and the `visprior aot` pre-flight
  (run when ``run_aot``, else printed)."""
  if num_slices > 1 and not any("dcn_mesh" in t for t in command):
    warn(f"{num_slices} slices but no --config.dcn_mesh.* in the command: add "
         f"--config.dcn_mesh.data=-1 so only data parallelism crosses the slow DCN links")
  if is_train_command(command):
    aot = aot_command(command, topology, num_slices)
    if run_aot:
      run(aot)
    else:
      note(f"pre-flight (compile for the topology on this machine first, or pass --aot): {shlex.join(aot)}")
  elif run_aot:
    fail("--aot needs a `visprior pretrain|align|sft ...` command")
