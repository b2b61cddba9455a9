"""Study specs: a study is a list of steps; a run is the steps that share a run name.

A study config (``configs/study/<name>.py``) returns ``ConfigDict(name=..., steps=[...], runs={...})``
built with the helpers here, so the file reads as the experiment it describes::

  steps = [data_step("data", "configs/data/tiny_world.py")]
  for mix in ("mix0", "mix6"):
    steps += standard_run(mix, pretrain=("configs/pretrain.py:llama3_3b", {"data.recipe": mix}),
                          align=("configs/align.py:llama3_3b", {...}), sft=("configs/sft.py:llama3_3b", {...}),
                          eval={"vqa.data_root": "/data/vqa"}, needs=["data"])

A step (a plain dict, so it survives ConfigDict round trips and command-line overrides):

  name      unique, e.g. ``mix0/pretrain`` (run/stage) or ``data`` (a study-level step)
  run       the run it belongs to ("" for study-level steps: data, the vision encoder, ...)
  stage     pretrain | align | sft | encoder | eval | data | python
  config    ``path.py[:arg]`` of the stage's config (train, eval and data steps)
  overrides flat dotted keys -> values, applied on top of the config
  suite     eval steps: lm | vqa | judge | alignment | all
  call      python steps: ``module:function`` called with ``kwargs``
  needs     names of the steps that must have finished first

String values may use ``{root}`` (the study workdir), ``{run}``, ``{workdir}`` (this step's
workdir, ``{root}/runs/<run>/<stage>`` or ``{root}/<name>`` for study-level steps) and
``{paths.<name>}`` (the study config's ``paths`` section, so data locations are set on the command
line: ``--config.paths.vqa_root=/data/vqa``). Train steps
write to their workdir; ``standard_run`` chains align from pretrain (``init_llm_from``), sft from
align (``init_from``) and eval reads sft's workdir.

``runs`` maps each run name to its metadata (size, params, tokens, mixture, shares, encoder, seed,
sft variant, blind): the runner writes it to ``{root}/runs/<run>/run.json`` for the results store.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence

STAGES = ("data", "python", "encoder", "pretrain", "align", "sft", "eval")
TRAIN_STAGES = ("encoder", "pretrain", "align", "sft")


def step(name: str, stage: str, *, run: str = "", config: str = "", overrides: Mapping | None = None,
         suite: str = "", call: str = "", kwargs: Mapping | None = None, needs: Sequence[str] = ()) -> dict:
  if stage not in STAGES:
    raise ValueError(f"step {name}: unknown stage {stage!r}; stages are {', '.join(STAGES)}")
  return dict(name=name, run=run, stage=stage, config=config, overrides=dict(overrides or {}), suite=suite,
              call=call, kwargs=dict(kwargs or {}), needs=list(needs))


def data_step(name: str, config: str, overrides: Mapping | None = None, needs: Sequence[str] = ()) -> dict:
  return step(name, "data", config=config, overrides=overrides, needs=needs)


def python_step(name: str, call: str, kwargs: Mapping | None = None, needs: Sequence[str] = ()) -> dict:
  return step(name, "python", call=call, kwargs=kwargs, needs=needs)


def standard_run(run: str, *, pretrain=None, align=None, sft=None, eval=None, eval_suite: str = "all",
                 needs: Sequence[str] = (), extra_eval: Mapping[str, Mapping] | None = None) -> list[dict]:
  """pretrain -> align -> sft -> eval for one run. ``pretrain``/``align``/``sft``: (config, overrides)
  or None to leave the stage out (align then needs ``init_llm_from`` in its overrides); ``eval``:
  overrides of configs/eval.py (None: no eval). ``extra_eval``: more eval steps by name (e.g. the
  language evals of the pre-trained LLM: {"eval_lm": {"suite": "lm", "checkpoint": "pretrain", ...}})."""
  steps, prev = [], list(needs)
  base = "{root}/runs/" + run
  if pretrain is not None:
    cfg, ov = pretrain
    steps.append(step(f"{run}/pretrain", "pretrain", run=run, config=cfg, overrides=ov, needs=prev))
    prev = [f"{run}/pretrain"]
  if align is not None:
    cfg, ov = align
    ov = dict(ov)
    if pretrain is not None:
      ov.setdefault("init_llm_from", base + "/pretrain")
    steps.append(step(f"{run}/align", "align", run=run, config=cfg, overrides=ov, needs=prev))
    prev = [f"{run}/align"]
  if sft is not None:
    cfg, ov = sft
    ov = dict(ov)
    if align is not None:
      ov.setdefault("init_from", base + "/align")
    steps.append(step(f"{run}/sft", "sft", run=run, config=cfg, overrides=ov, needs=prev))
    prev = [f"{run}/sft"]
  if eval is not None:
    last = "sft" if sft is not None else ("align" if align is not None else "pretrain")
    ov = {"checkpoint": f"{base}/{last}", "run": run, **dict(eval)}
    steps.append(step(f"{run}/eval", "eval", run=run, config="configs/eval.py", overrides=ov, suite=eval_suite,
                      needs=prev))
  for name, spec in (extra_eval or {}).items():
    spec = dict(spec)
    suite = spec.pop("suite", "lm")
    source = spec.pop("checkpoint", "pretrain")
    ov = {"checkpoint": f"{base}/{source}", "run": run, **spec}
    steps.append(step(f"{run}/{name}", "eval", run=run, config="configs/eval.py", overrides=ov, suite=suite,
                      needs=[f"{run}/{source}"]))
  return steps


def workdir(st: Mapping, root: str) -> str:
  return f"{root}/runs/{st['run']}/{st['name'].split('/', 1)[1]}" if st["run"] else f"{root}/{st['name']}"


def substitute(value, root: str, st: Mapping, paths: Mapping | None = None, strict: bool = True):
  """{root}, {run}, {workdir}, {paths.<name>} in strings (recursively in lists and dicts). ``strict``:
  a path that is used but empty is an error (the study cannot run without it)."""
  if isinstance(value, str):
    for name, path in (paths or {}).items():
      token = "{paths." + name + "}"
      if token in value and strict and not path:
        raise ValueError(f"step {st['name']} needs paths.{name}: set --config.paths.{name}=...")
      value = value.replace(token, str(path))
    if "{paths." in value:
      raise ValueError(f"step {st['name']}: {value!r} names a path the study config's paths section lacks")
    return value.replace("{root}", root).replace("{run}", st["run"]).replace("{workdir}", workdir(st, root))
  if isinstance(value, Mapping):
    return {k: substitute(v, root, st, paths, strict) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [substitute(v, root, st, paths, strict) for v in value]
  return value


def spec_hash(st: Mapping) -> str:
  """What identifies a step's work: everything but its dependencies."""
  body = {k: v for k, v in st.items() if k != "needs"}
  return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check(steps: Sequence[Mapping]) -> list[dict]:
  """Validates names, stages and dependencies; returns the steps in a dependency order (stable)."""
  steps = [copy.deepcopy(dict(s)) for s in steps]
  names = [s["name"] for s in steps]
  dup = sorted({n for n in names if names.count(n) > 1})
  if dup:
    raise ValueError(f"study: duplicate step names {dup}")
  known = set(names)
  for s in steps:
    missing = [n for n in s["needs"] if n not in known]
    if missing:
      raise ValueError(f"study: step {s['name']} needs unknown step(s) {missing}")
    if s["stage"] in TRAIN_STAGES + ("eval", "data") and not s["config"]:
      raise ValueError(f"study: step {s['name']} ({s['stage']}) has no config")
  order, done, pending = [], set(), list(steps)
  while pending:
    ready = [s for s in pending if all(n in done for n in s["needs"])]
    if not ready:
      raise ValueError(f"study: dependency cycle among {[s['name'] for s in pending]}")
    for s in ready:
      order.append(s)
      done.add(s["name"])
    pending = [s for s in pending if s["name"] not in done]
  return order
