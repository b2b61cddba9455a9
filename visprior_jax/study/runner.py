"""Runs a study: every step in dependency order, in this process, idempotent and resumable.

  visprior study run    --config=configs/study/<name>.py --workdir=DIR [--only=REGEX]
                        [--compilation_cache=auto|off|DIR]
  visprior study status --config=configs/study/<name>.py --workdir=DIR
  visprior study launch --config=configs/study/<name>.py --workdir=gs://... [--prefix="python launch/tpu.py run ... --"]
  visprior study report --config=configs/study/<name>.py --workdir=DIR   (re-collect results, rewrite the report)

Each step's state is a small JSON file under ``DIR/.study/``: ``done`` (with the hash of the step's
spec), ``failed`` (with the one-line error; the traceback beside it) or ``running`` (a step that was
interrupted: rerun). A finished step whose spec is unchanged is skipped; a changed one runs again
(training steps resume from their workdir's checkpoint, evals from their records), and so does a
step one of whose dependencies ran again in this invocation (like make). A failed step
does not stop the study: the steps that need it are ``blocked`` and everything else still runs.
Training and evaluation run in this process (one JAX runtime); ``run`` keeps JAX's persistent
compilation cache in ``DIR/.study/jax_cache`` (see :func:`compilation_cache`), so a program compiled for
one run is loaded, not compiled, by the next run of the same size; ``launch`` prints the equivalent
``visprior`` command per step instead, for clusters where each step is its own job.
"""

from __future__ import annotations

import datetime
import importlib
import importlib.util
import json
import re
import shlex
import sys
import time
import traceback
from collections.abc import Mapping

from etils import epath

from visprior_jax.study import spec as spec_lib

REPO = epath.Path(__file__).resolve().parents[2]


class StudyInterrupted(RuntimeError):
  """SIGTERM (preemption) reached a training step: it saved; the study stops and resumes when rerun."""


# ---------------------------------------------------------------------------------------------
# Configs


def load_config_file(path_arg: str):
  """``path.py[:arg]`` -> the ConfigDict its ``get_config(arg)`` returns (path relative to the cwd,
  else to the repository)."""
  path, _, arg = path_arg.partition(":")
  p = epath.Path(path)
  if not p.exists() and (REPO / path).exists():
    p = REPO / path
  if not p.exists():
    raise FileNotFoundError(f"config file {path} not found")
  module_spec = importlib.util.spec_from_file_location(f"study_cfg_{abs(hash(str(p)))}", str(p))
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def apply_overrides(config, overrides: Mapping) -> None:
  """Sets dotted keys (``data.recipe``) on a ConfigDict; an unknown key is an error (typos)."""
  import ml_collections
  for key, value in overrides.items():
    node, parts = config, key.split(".")
    for part in parts[:-1]:
      if part not in node:
        raise KeyError(f"override {key}: no field {part!r}")
      node = node[part]
    leaf = parts[-1]
    if leaf not in node and len(node):   # an empty section (e.g. rules) takes new keys
      raise KeyError(f"override {key}: no field {leaf!r} (fields: {', '.join(node.keys())})")
    if isinstance(value, Mapping):
      value = ml_collections.ConfigDict(dict(value))
    if leaf in node and node[leaf] is not None and value is not None and type(node[leaf]) is not type(value) \
        and not isinstance(node[leaf], ml_collections.ConfigDict):
      del node[leaf]            # e.g. a recipe name replaced by a list: ConfigDict would refuse the type change
    node[leaf] = value


# ---------------------------------------------------------------------------------------------
# State


def _safe(name: str) -> str:
  return re.sub(r"[^A-Za-z0-9_.-]+", "__", name)


class StudyState:
  def __init__(self, root):
    self.root = epath.Path(root)
    self.dir = self.root / ".study"
    self.dir.mkdir(parents=True, exist_ok=True)

  def get(self, name: str) -> dict | None:
    p = self.dir / f"{_safe(name)}.json"
    return json.loads(p.read_text()) if p.exists() else None

  def put(self, name: str, **state) -> None:
    p = self.dir / f"{_safe(name)}.json"
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps({"name": name, **state}, indent=1))
    tmp.replace(p)

  def done(self, st: Mapping) -> bool:
    s = self.get(st["name"])
    return bool(s and s.get("status") == "done" and s.get("hash") == spec_lib.spec_hash(st))


# ---------------------------------------------------------------------------------------------
# Steps


def _resolved(st: Mapping, root: str, paths: Mapping | None = None) -> dict:
  return {**st, "overrides": spec_lib.substitute(st["overrides"], root, st, paths),
          "kwargs": spec_lib.substitute(st["kwargs"], root, st, paths)}


def _paths(study) -> dict:
  paths = study.get("paths", {}) or {}
  return dict(paths.to_dict() if hasattr(paths, "to_dict") else paths)


def run_step(st: Mapping, root: str, paths: Mapping | None = None) -> None:
  """Runs one step in this process; raises on failure."""
  st = _resolved(st, root, paths)
  wd = spec_lib.workdir(st, root)
  if st["stage"] in spec_lib.TRAIN_STAGES:
    from visprior_jax.train.trainer import train
    config = load_config_file(st["config"])
    apply_overrides(config, st["overrides"])
    if config.get("stage", "pretrain") != st["stage"]:
      raise ValueError(f"{st['config']} is a {config.get('stage', 'pretrain')} config, not {st['stage']}")
    result = train(config, wd)
    if result.status == "preempted":
      raise StudyInterrupted(f"{st['name']}: preempted at step {result.step} (saved); rerun the study to resume")
    if result.status != "finished":
      raise RuntimeError(f"training {result.status} at step {result.step}; run the study again to resume")
  elif st["stage"] == "eval":
    from visprior_jax.eval import commands
    config = load_config_file(st["config"])
    apply_overrides(config, st["overrides"])
    commands.run(config, st["suite"] or "all")
  elif st["stage"] == "data":
    from visprior_jax.data.commands import prepare_command
    config = load_config_file(st["config"])
    apply_overrides(config, st["overrides"])
    prepare_command(config)
  else:  # python
    module, _, fn = st["call"].partition(":")
    getattr(importlib.import_module(module), fn)(**st["kwargs"])


def write_run_specs(study, root: str) -> None:
  for run, meta in dict(study.get("runs", {}) or {}).items():
    d = epath.Path(root) / "runs" / run
    d.mkdir(parents=True, exist_ok=True)
    meta = dict(meta.to_dict() if hasattr(meta, "to_dict") else meta)
    (d / "run.json").write_text(json.dumps({"study": study.name, "run": run, **meta}, indent=1, default=str))


def _steps(study, only: str | None = None, strict: bool = True) -> list[dict]:
  """The study's steps in dependency order; a step's hash covers its resolved paths, so changing a
  data location reruns what reads it. ``strict``: an unset path a step uses is an error."""
  paths = _paths(study)
  steps = [s.to_dict() if hasattr(s, "to_dict") else dict(s) for s in study.steps]
  if paths:  # resolve {paths.*} here ({root} stays a placeholder until a step runs)
    steps = [{**s, "overrides": spec_lib.substitute(s["overrides"], "{root}", s, paths, strict),
              "kwargs": spec_lib.substitute(s["kwargs"], "{root}", s, paths, strict)} for s in steps]
  ordered = spec_lib.check(steps)
  if only:
    pattern = re.compile(only)
    ordered = [s for s in ordered if pattern.search(s["name"])]
  return ordered


CACHE_DIR = ".study/jax_cache"     # the study's persistent compilation cache, under its workdir
CACHE_MIN_COMPILE_SECS = 0.0       # cache every program (a tiny study has init programs of 0.2-0.5 s)


def compilation_cache(root: str, cache: str = "auto", log=None) -> str | None:
  """Turns on JAX's persistent compilation cache for this process; returns its directory (None: off).

  Runs of one size compile the same programs (only their data differ), so every compile after the first
  becomes a load. The same HLO gives the same executable, so results cannot change. ``cache``: "auto" (the
  default of ``visprior study run``) is ``<root>/.study/jax_cache`` for a local workdir, off for a remote
  one (gs://...) and left alone when a cache is configured already (JAX_COMPILATION_CACHE_DIR); "off";
  or a directory. A directory that cannot be written turns it off with a warning: never a failed study
  (JAX itself only warns about an unreadable or corrupt entry and compiles instead)."""
  import jax
  log = log or (lambda msg: print(msg, flush=True))
  if cache == "off" or not cache:
    return None
  if cache == "auto":
    if jax.config.jax_compilation_cache_dir or "://" in root:
      return jax.config.jax_compilation_cache_dir or None
    cache = str(epath.Path(root).resolve() / CACHE_DIR)
  try:
    path = epath.Path(cache)
    path.mkdir(parents=True, exist_ok=True)
    probe = path / f".probe-{time.time_ns()}"
    probe.write_bytes(b"")
    probe.unlink()
  except Exception as e:  # noqa: BLE001 - a speed-up only: the study runs without it
    log(f"warning: compilation cache {cache} is not writable ({type(e).__name__}: {e}); compiling without it")
    return None
  if jax.config.jax_compilation_cache_dir != str(path):
    from jax.experimental.compilation_cache import compilation_cache as jax_cache
    jax_cache.reset_cache()      # JAX opens its cache once per process: a new directory needs a reset
  jax.config.update("jax_compilation_cache_dir", str(path))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_SECS)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  return str(path)


def run_study(study, root, *, only: str | None = None, log=None, cache: str = "off") -> dict[str, str]:
  """Runs the study's pending steps; returns {step: done | failed | blocked | skipped | interrupted}; a
  preempted (SIGTERM) training step stops the study there. ``cache``: the persistent compilation cache
  (:func:`compilation_cache`; process-wide; ``visprior study run`` passes "auto")."""
  log = log or (lambda msg: print(msg, flush=True))
  root = str(root)
  compilation_cache(root, cache, log)
  state = StudyState(root)
  write_run_specs(study, root)
  outcome: dict[str, str] = {}
  steps = _steps(study, only)
  for i, st in enumerate(steps, 1):
    head = f"[{i}/{len(steps)}] {st['name']}"
    if state.done(st) and not any(outcome.get(n) == "done" for n in st["needs"]):
      outcome[st["name"]] = "skipped"
      log(f"{head}: done earlier, skipped")
      continue
    bad = [n for n in st["needs"] if outcome.get(n) in ("failed", "blocked") or
           (n not in outcome and not (state.get(n) or {}).get("status") == "done")]
    if bad:
      outcome[st["name"]] = "blocked"
      state.put(st["name"], status="blocked", hash=spec_lib.spec_hash(st), error=f"needs {bad}")
      log(f"{head}: blocked (needs {', '.join(bad)})")
      continue
    started = time.time()
    state.put(st["name"], status="running", hash=spec_lib.spec_hash(st), started=_now())
    log(f"{head}: running ({st['stage']})")
    try:
      run_step(st, root, _paths(study))
    except StudyInterrupted as e:   # left "running" (= interrupted): the next run resumes it
      log(f"{head}: {e}")
      outcome[st["name"]] = "interrupted"
      break
    except Exception as e:  # noqa: BLE001 - recorded; the study goes on
      msg = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:500]
      (state.dir / f"{_safe(st['name'])}.traceback.txt").write_text(traceback.format_exc())
      state.put(st["name"], status="failed", hash=spec_lib.spec_hash(st), error=msg, started=_now(),
                seconds=round(time.time() - started, 1))
      outcome[st["name"]] = "failed"
      log(f"{head}: FAILED after {time.time() - started:.0f}s: {msg}")
      continue
    state.put(st["name"], status="done", hash=spec_lib.spec_hash(st), finished=_now(),
              seconds=round(time.time() - started, 1))
    outcome[st["name"]] = "done"
    log(f"{head}: done in {time.time() - started:.0f}s")
  return outcome


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# Status and launch


def status_table(study, root) -> str:
  """Runs x stages with ✓ done, ✗ failed, … running/interrupted, - blocked, · pending, ~ changed."""
  state = StudyState(root)
  steps = _steps(study, strict=False)
  marks = {}
  for st in steps:
    s = state.get(st["name"])
    if s is None:
      m = "·"
    elif s["status"] == "done":
      m = "✓" if s.get("hash") == spec_lib.spec_hash(st) else "~"
    else:
      m = {"failed": "✗", "running": "…", "blocked": "-"}.get(s["status"], "?")
    marks[st["name"]] = m
  setup = [s for s in steps if not s["run"]]
  runs: dict[str, dict[str, str]] = {}
  stages: list[str] = []
  for st in steps:
    if st["run"]:
      stage = st["name"].split("/", 1)[1]
      runs.setdefault(st["run"], {})[stage] = marks[st["name"]]
      if stage not in stages:
        stages.append(stage)
  lines = []
  if setup:
    lines.append("setup: " + "  ".join(f"{s['name']} {marks[s['name']]}" for s in setup))
  width = max([len(r) for r in runs] + [3])
  lines.append(f"{'run':{width}s}  " + "  ".join(f"{s:>8s}" for s in stages))
  for run, row in runs.items():
    lines.append(f"{run:{width}s}  " + "  ".join(f"{row.get(s, ''):>8s}" for s in stages))
  failed = [(n, (state.get(n) or {}).get("error", "")) for n, m in marks.items() if m == "✗"]
  counts = {m: list(marks.values()).count(m) for m in "✓✗…-·~"}
  lines.append(f"{counts['✓']} done, {counts['✗']} failed, {counts['-']} blocked, {counts['…']} interrupted, "
               f"{counts['·']} pending, {counts['~']} changed (of {len(marks)})")
  lines += [f"  ✗ {n}: {e}" for n, e in failed]
  return "\n".join(lines)


def _current(config, key: str):
  node = config
  for part in key.split("."):
    if not hasattr(node, "keys") or part not in node:
      return None
    node = node[part]
  return node


def _flags(overrides: Mapping, config) -> list[str]:
  """``--config.key=value`` where absl's config flags can set it (a scalar of the field's own type);
  everything else (lists, dicts, None fields, a changed type) in one ``--overrides=<JSON>``
  (visprior_jax/cli.py), which applies them the way the runner does."""
  def flag_ok(k, v):
    cur = _current(config, k)
    return isinstance(v, (bool, int, float, str)) and cur is not None and (
        type(cur) is type(v) or (isinstance(cur, float) and type(v) is int))
  scalars = {k: v for k, v in overrides.items() if flag_ok(k, v)}
  rest = {k: v for k, v in overrides.items() if k not in scalars}
  return [f"--config.{k}={v}" for k, v in scalars.items()] + ([f"--overrides={json.dumps(rest)}"] if rest else [])


def launch_commands(study, root, prefix: str = "") -> list[str]:
  """One shell command per step, in dependency order (for clusters: one job each)."""
  out = []
  for st in _steps(study):
    st = _resolved(st, str(root), _paths(study))
    flags = _flags(st["overrides"], load_config_file(st["config"])) if st["config"] else []
    if st["stage"] in spec_lib.TRAIN_STAGES:
      cmd = ["visprior", st["stage"], f"--config={st['config']}", f"--workdir={spec_lib.workdir(st, str(root))}"]
    elif st["stage"] == "eval":
      cmd = ["visprior", "eval", st["suite"] or "all", f"--config={st['config']}"]
    elif st["stage"] == "data":
      cmd = ["visprior", "data", "prepare", f"--config={st['config']}"]
    else:
      module, _, fn = st["call"].partition(":")
      cmd, flags = [sys.executable.rsplit("/", 1)[-1], "-c",
                    f"import {module} as m, json; m.{fn}(**json.loads({json.dumps(json.dumps(st['kwargs']))}))"], []
    line = " ".join(shlex.quote(c) for c in cmd + flags)
    out.append(f"{prefix} {line}".strip() if prefix else line)
  return out


def main_command(action: str, study, root, only: str | None = None, prefix: str = "",
                 cache: str = "auto") -> int:
  if action == "run":
    outcome = run_study(study, root, only=only, cache=cache)
    print(status_table(study, root))
    report = epath.Path(root) / "report" / "report.md"
    if report.exists():
      print(f"report: {report}  (figures: {report.parent / 'figures'})")
    return 1 if any(v in ("failed", "interrupted") for v in outcome.values()) else 0
  if action == "report":
    from visprior_jax.analysis.report import study_report
    study_report(root)
    return 0
  if action == "status":
    print(status_table(study, root))
    return 0
  if action == "launch":
    print("\n".join(launch_commands(study, root, prefix)))
    return 0
  raise ValueError("usage: visprior study run|status|launch|report --config=configs/study/<name>.py --workdir=DIR")


__all__ = ["apply_overrides", "compilation_cache", "launch_commands", "load_config_file", "main_command", "run_study",
           "status_table", "StudyState"]
