"""Study specs and the runner: ordering, skip/resume, failures recorded and isolated, status, launch,
the paper's study configs, and a real pretrain -> eval chain on a tiny model."""

import json

import ml_collections
import numpy as np
import pytest

from conftest import REPO
import fixtures_lm

from visprior_jax.study import runner
from visprior_jax.study import spec


def _study(tmp_path, steps, runs=None, paths=None):
  c = ml_collections.ConfigDict()
  c.name = "t"
  c.paths = ml_collections.ConfigDict(paths or {})
  c.steps = steps
  c.runs = runs or {}
  return c


def _py(name, log, needs=(), run="", fail=None):
  if fail:
    return spec.step(name, "python", run=run, call="study_steps:fail", kwargs=dict(log=log, name=name, fixed=fail),
                     needs=needs)
  return spec.step(name, "python", run=run, call="study_steps:record", kwargs=dict(log=log, name=name), needs=needs)


def test_check_orders_by_dependencies_and_rejects_bad_specs():
  a, b, c = (spec.step(n, "python", call="m:f", needs=needs) for n, needs in
             (("a", ["b"]), ("b", []), ("c", ["a", "b"])))
  assert [s["name"] for s in spec.check([a, b, c])] == ["b", "a", "c"]
  with pytest.raises(ValueError, match="duplicate step names"):
    spec.check([b, b])
  with pytest.raises(ValueError, match="needs unknown step"):
    spec.check([a])
  with pytest.raises(ValueError, match="cycle"):
    spec.check([spec.step("x", "python", call="m:f", needs=["y"]), spec.step("y", "python", call="m:f", needs=["x"])])
  with pytest.raises(ValueError, match="unknown stage"):
    spec.step("x", "train")


def test_failures_are_recorded_isolated_and_resumed(tmp_path):
  log, fixed = str(tmp_path / "log.txt"), str(tmp_path / "fixed")
  steps = [_py("data", log),
           _py("r1/pretrain", log, ["data"], run="r1"), _py("r1/eval", log, ["r1/pretrain"], run="r1"),
           _py("r2/pretrain", log, ["data"], run="r2", fail=fixed), _py("r2/eval", log, ["r2/pretrain"], run="r2")]
  study = _study(tmp_path, steps, runs={"r1": {"size": "tiny", "shares": {"code": 0.5}}})
  root = tmp_path / "study"
  out = runner.run_study(study, root, log=lambda m: None)
  assert out == {"data": "done", "r1/pretrain": "done", "r1/eval": "done", "r2/pretrain": "failed",
                 "r2/eval": "blocked"}
  assert open(log).read().split() == ["data", "r1/pretrain", "r1/eval"]
  state = json.loads((root / ".study" / "r2__pretrain.json").read_text())
  assert state["status"] == "failed" and state["error"] == "RuntimeError: r2/pretrain is broken"
  assert "Traceback" in (root / ".study" / "r2__pretrain.traceback.txt").read_text()
  table = runner.status_table(study, root)
  assert "r1" in table and "✗ r2/pretrain: RuntimeError: r2/pretrain is broken" in table
  assert "3 done, 1 failed, 1 blocked" in table
  assert json.loads((root / "runs" / "r1" / "run.json").read_text()) == {"study": "t", "run": "r1", "size": "tiny",
                                                                          "shares": {"code": 0.5}}
  # fix and rerun: finished steps are skipped, the failed one and its dependant run
  open(fixed, "w").close()
  out = runner.run_study(study, root, log=lambda m: None)
  assert [k for k, v in out.items() if v == "done"] == ["r2/pretrain", "r2/eval"]
  assert open(log).read().split()[3:] == ["r2/pretrain", "r2/eval"]
  # a changed step spec runs again; --only limits the steps
  steps[2]["kwargs"]["name"] = "r1/eval-v2"
  out = runner.run_study(_study(tmp_path, steps), root, only=r"^r1/", log=lambda m: None)
  assert out == {"r1/pretrain": "skipped", "r1/eval": "done"}
  assert "~" not in runner.status_table(_study(tmp_path, steps), root)


def test_interrupted_step_reruns(tmp_path):
  log = str(tmp_path / "log.txt")
  study = _study(tmp_path, [_py("a", log)])
  root = tmp_path / "s"
  runner.StudyState(root).put("a", status="running", hash=spec.spec_hash(study.steps[0].to_dict()
                                                                           if hasattr(study.steps[0], "to_dict")
                                                                           else study.steps[0]))
  assert "1 interrupted" in runner.status_table(study, root)
  assert runner.run_study(study, root, log=lambda m: None) == {"a": "done"}


def test_launch_prints_one_visprior_command_per_step_and_paths_must_be_set(tmp_path):
  study = runner.load_config_file(f"{REPO}/configs/study/table3_7b.py")
  with pytest.raises(ValueError, match="needs paths.prepared_dir: set --config.paths.prepared_dir"):
    runner.launch_commands(study, "gs://b/s")
  for k in study.paths:
    study.paths[k] = f"/data/{k}"
  cmds = runner.launch_commands(study, "gs://b/s", prefix="python launch/tpu.py run --")
  assert len(cmds) == 10
  assert cmds[0] == ("python launch/tpu.py run -- visprior pretrain --config=configs/pretrain.py:llama3_7b "
                     "--workdir=gs://b/s/runs/language_favorable/pretrain --config.data.kind=mixture "
                     "--config.data.prepared_dir=/data/prepared_dir --config.data.recipe=mix0 --config.train.steps=476837")
  assert any("visprior eval vqa --config=configs/eval.py --config.checkpoint=gs://b/s/runs/balanced/sft" in c
             for c in cmds)


@pytest.mark.parametrize("name, runs", [("fig1_scaling", 35), ("fig2_sources", 16), ("fig3_sweeps", 40),
                                        ("table1_grid", 30), ("table2_mixtures", 11), ("table3_7b", 2),
                                        ("table6_blind", 4), ("fig5_encoders", 15), ("fig6_sft_ablation", 5)])
def test_paper_study_configs_expand(name, runs):
  study = runner.load_config_file(f"{REPO}/configs/study/{name}.py")
  steps = runner._steps(study, strict=False)
  assert len(study.runs) == runs
  run_names = {s["run"] for s in steps}
  assert run_names == set(study.runs)
  stages = {s["stage"] for s in steps}
  assert {"align", "sft", "eval"} <= stages


def test_table6_adapts_each_llm_with_and_without_the_blind_phase():
  study = runner.load_config_file(f"{REPO}/configs/study/table6_blind.py")
  steps = {s["name"]: s for s in runner._steps(study, strict=False)}
  assert "balanced_blind/pretrain" not in steps
  assert steps["balanced_blind/align"]["overrides"]["init_llm_from"] == "{root}/runs/balanced/pretrain"
  assert steps["balanced_blind/blind"]["config"] == "configs/sft.py:llama3_7b,blind"
  assert steps["balanced_blind/sft"]["overrides"]["init_from"] == "{root}/runs/balanced_blind/blind"


def test_a_real_chain_pretrain_then_language_eval(tmp_path):
  fixtures_lm.write_all(tmp_path / "lm")
  pre = ("configs/pretrain.py:llama3_tiny", {"train.steps": 3, "train.batch_size": 8, "metrics.mfu": False,
                                             "metrics.tensorboard": False, "checkpoint.every": 3})
  steps = spec.standard_run("tiny", pretrain=pre,
                            extra_eval={"eval_lm": {"suite": "lm", "tokenizer": "bytes",
                                                    "lm.data_root": "{paths.lm}", "progress": False}})
  study = _study(tmp_path, steps, runs={"tiny": {"size": "llama3_tiny"}}, paths={"lm": str(tmp_path / "lm")})
  root = tmp_path / "study"
  assert runner.run_study(study, root, log=lambda m: None) == {"tiny/pretrain": "done", "tiny/eval_lm": "done"}
  recs = [json.loads(x) for x in (root / "runs" / "tiny" / "pretrain" / "eval" / "step_3" / "metrics.jsonl")
          .read_text().splitlines()]
  assert {r["run"] for r in recs} == {"tiny"} and any(r["benchmark"] == "lm:t_acc" for r in recs)
  assert runner.run_study(study, root, log=lambda m: None) == {"tiny/pretrain": "skipped", "tiny/eval_lm": "skipped"}


def test_cli_status(tmp_path):
  import subprocess
  import sys
  from conftest import subprocess_env
  p = subprocess.run([sys.executable, "-m", "visprior_jax.cli", "study", "status",
                      "--config=configs/study/table2_mixtures.py", f"--workdir={tmp_path}"],
                     cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)
  assert p.returncode == 0, p.stderr[-1500:]
  assert "mix10" in p.stdout and "0 done, 0 failed, 0 blocked, 0 interrupted, 55 pending" in p.stdout


def test_preemption_stops_the_study_and_the_step_resumes_next_time(tmp_path):
  log = str(tmp_path / "log.txt")
  pre = spec.step("a", "python", call="study_steps:preempted", kwargs=dict(log=log, name="a"))
  study = _study(tmp_path, [pre, _py("b", log)])
  root = tmp_path / "s"
  assert runner.run_study(study, root, log=lambda m: None) == {"a": "interrupted"}
  assert "1 interrupted" in runner.status_table(study, root) and "1 pending" in runner.status_table(study, root)


def test_launched_commands_parse_to_the_configs_the_runner_builds(tmp_path):
  """Every printed train/eval command, parsed by absl's config flags as ``visprior`` parses it (+ its
  ``--overrides`` JSON), gives the config the runner itself would run (lists, dicts and type changes included)."""
  import shlex

  from absl import flags as absl_flags
  from ml_collections import config_flags
  study = runner.load_config_file(f"{REPO}/configs/study/tiny.py")
  steps = [s for s in runner._steps(study) if s["stage"] in ("pretrain", "align", "sft", "eval")]
  cmds = runner.launch_commands(study, str(tmp_path))
  by_workdir = {}
  for c in cmds:
    argv = shlex.split(c)
    if argv[1] in ("pretrain", "align", "sft", "eval"):
      by_workdir.setdefault(argv[1], []).append(argv)
  firsts = list({s["stage"]: s for s in reversed(steps)}.values())
  assert {s["stage"] for s in firsts} == {"pretrain", "align", "sft", "eval"}
  for st in firsts:
    resolved = runner._resolved(st, str(tmp_path), {})
    expected = runner.load_config_file(st["config"])
    runner.apply_overrides(expected, resolved["overrides"])
    stage = "eval" if st["stage"] == "eval" else st["stage"]
    argv = next(a for a in by_workdir[stage] if all(
        f"--config.{k}={v}" in a or any(x.startswith("--overrides=") and json.dumps({k: v})[1:-1] in x for x in a)
        for k, v in resolved["overrides"].items()))
    args = [argv[0]] + [a for a in argv if a.startswith("--")]
    fv = absl_flags.FlagValues()
    holder = config_flags.DEFINE_config_file("config", None, "", flag_values=fv, lock_config=True, sys_argv=args)
    absl_flags.DEFINE_string("overrides", None, "", flag_values=fv)
    absl_flags.DEFINE_string("workdir", None, "", flag_values=fv)
    fv(args)
    got = holder.value
    if fv.overrides:
      with got.unlocked():
        runner.apply_overrides(got, json.loads(fv.overrides))
    assert got.to_dict() == expected.to_dict(), st["name"]


@pytest.fixture
def jax_cache_config():
  """Puts JAX's compilation-cache settings back after a test that turns the cache on (they are process-wide)."""
  import jax
  from jax.experimental.compilation_cache import compilation_cache as jax_cache
  names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
           "jax_persistent_cache_min_entry_size_bytes")
  saved = {n: getattr(jax.config, n) for n in names}
  yield jax
  for n, v in saved.items():
    jax.config.update(n, v)
  jax_cache.reset_cache()


def test_study_run_keeps_a_compilation_cache_that_hits(tmp_path, jax_cache_config):
  import jax.numpy as jnp
  from jax import monitoring
  jax = jax_cache_config
  jax.config.update("jax_compilation_cache_dir", None)
  log = str(tmp_path / "log.txt")
  root = tmp_path / "s"
  assert runner.run_study(_study(tmp_path, [_py("a", log)]), root, log=lambda m: None, cache="auto") == {"a": "done"}
  cache = root / ".study" / "jax_cache"
  assert jax.config.jax_compilation_cache_dir == str(cache)
  x, events = jnp.ones((3, 5)), []

  def listener(event, **kw):
    events.append(event)
  monitoring.register_event_listener(listener)
  try:
    for _ in range(2):     # a new function each time, as each run's stage builds its own: the same program
      def study_cache_probe(v):
        return jnp.tanh(v) * 3.0 + 1.0     # compiles in milliseconds: cached all the same (no time threshold)
      jax.jit(study_cache_probe)(x).block_until_ready()
      assert [p.name for p in cache.iterdir() if "study_cache_probe" in p.name]
  finally:
    monitoring.unregister_event_listener(listener)
  assert events.count("/jax/compilation_cache/cache_misses") == 1
  assert events.count("/jax/compilation_cache/cache_hits") == 1
  # a corrupt entry is a warning and a compile, never a failure or a wrong result
  for p in cache.iterdir():
    if "study_cache_probe" in p.name:
      p.write_bytes(b"garbage")

  def study_cache_probe(v):
    return jnp.tanh(v) * 3.0 + 1.0
  with pytest.warns(UserWarning, match="Error reading persistent compilation cache"):
    y = jax.jit(study_cache_probe)(x)
  assert np.allclose(y, np.tanh(1.0) * 3.0 + 1.0)


def test_an_unwritable_compilation_cache_only_warns(tmp_path, jax_cache_config):
  jax = jax_cache_config
  jax.config.update("jax_compilation_cache_dir", None)
  (tmp_path / "file").write_text("not a directory")
  messages, log = [], str(tmp_path / "log.txt")
  out = runner.run_study(_study(tmp_path, [_py("a", log)]), tmp_path / "s", log=messages.append,
                         cache=str(tmp_path / "file" / "cache"))
  assert out == {"a": "done"}
  assert any(m.startswith("warning: compilation cache") and "compiling without it" in m for m in messages)
  assert jax.config.jax_compilation_cache_dir is None
  # off, and a remote workdir under auto: no cache
  assert runner.compilation_cache(str(tmp_path / "t"), "off") is None
  assert runner.compilation_cache("gs://bucket/study", "auto") is None
  assert jax.config.jax_compilation_cache_dir is None and not (tmp_path / "t").exists()
