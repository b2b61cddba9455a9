"""``visprior eval lm|vqa|judge|alignment|all``: one checkpoint, the suites, the records (configs/eval.py).

Each suite writes into the checkpoint's eval folder (``eval.results``): per-benchmark predictions,
metrics records keyed by run, stage and step, and ``done`` markers so a rerun resumes.

  lm         the language evals (the paper's §2.2): every task folder under lm.data_root; then ``lm:t_acc``
             (mean of the 8 accuracy tasks, ARC = mean of ARC-e/-c) and ``lm:ppl`` (mean of the WikiText
             and LAMBADA perplexities); the LLM of a multimodal checkpoint is evaluated alone.
  vqa        the VQA registry (eval/vqa/registry.py) over vqa.data_root; then the category, perception /
             reasoning and overall means (``vqa:<name>`` records). ``vqa.images=blank``: every image
             replaced by a uniform mid-gray one (the no-image baseline); records carry
             ``"images": "blank"`` and go to ``<workdir>/eval_blank/step_<N>``.
  judge      the Knowledge and Vision-Centric benchmarks again with the paper's explain instruction
             (suite ``explain``), then each explanation judged by the endpoint: ``judge:reasoning_quality``
             (logical_soundness %, reasoning_depth words), overall and per category.
  alignment  the mutual-kNN score (k = 20) between the LLM's caption features and each vision
             encoder's image features over alignment.pairs; ``alignment:mnn`` is the mean over encoders.
  all        lm when lm.data_root is set, vqa when vqa.data_root is set (multimodal checkpoints), judge
             when judge.enabled (it needs an endpoint), alignment when alignment.pairs is set.
"""

from __future__ import annotations

import logging
import math
import sys

import numpy as np
from etils import epath

from visprior_jax.eval.model import EvalModel, load_eval_model
from visprior_jax.eval.results import EvalOutput

log = logging.getLogger(__name__)
SUITES = ("lm", "vqa", "judge", "alignment", "all")


def _load(config, language_only: bool = False) -> EvalModel:
  if not config.checkpoint:
    raise ValueError("--config.checkpoint is required (a training workdir, step folder or export)")
  return load_eval_model(config.checkpoint, mesh=config.mesh.to_dict(), rules=config.rules.to_dict(),
                         tokenizer=config.tokenizer, run=config.run, language_only=language_only, dtype=config.dtype)


def _blank(config) -> bool:
  return config.vqa.get("images", "real") == "blank"


def output_dir(config, model: EvalModel) -> epath.Path:
  """``config.out``, else ``<workdir>/eval/step_<N>`` (exports ``<export>/eval/export``); ``eval_blank``
  instead of ``eval`` when the images are blanked (``vqa.images=blank``)."""
  if config.out:
    return epath.Path(config.out)
  path = epath.Path(model.path)
  parts = path.parts
  if "checkpoints" in parts:
    path = epath.Path(*parts[:parts.index("checkpoints")])
  return path / ("eval_blank" if _blank(config) else "eval") / (f"step_{model.step}" if model.step is not None
                                                                 else "export")


def _output(config, model: EvalModel) -> EvalOutput:
  return EvalOutput(output_dir(config, model), run=model.run, stage=model.stage, step=model.step,
                    checkpoint=model.path, fields={"images": "blank"} if _blank(config) else None)


def _names(spec: str, known) -> list[str]:
  names = list(known) if spec.strip() == "all" else [n.strip() for n in spec.split(",") if n.strip()]
  unknown = [n for n in names if n not in known]
  if unknown:
    raise ValueError(f"unknown task(s) {unknown}; known: {', '.join(known)}")
  return names


# ---------------------------------------------------------------------------------------------
# lm


def eval_lm(config, model: EvalModel | None = None) -> dict:
  from visprior_jax.eval import lm_tasks
  if not config.lm.data_root:
    raise ValueError("--config.lm.data_root is required: a folder with one sub-folder per task")
  if model is None or model.multimodal:
    model = _load(config, language_only=True)
  out = _output(config, model)
  root = epath.Path(config.lm.data_root)
  results = {}
  for name in _names(config.lm.tasks, lm_tasks.TASKS):
    folder = root / name
    if not folder.exists():
      if config.lm.tasks.strip() == "all":
        log.warning("lm %s: %s not found; skipped", name, folder)
        continue
      raise FileNotFoundError(f"lm {name}: task folder {folder} not found")
    settings = dict(task=name, limit=config.limit, max_len=config.lm.max_len, suite="lm")
    done = out.finished(name, settings)
    if done is None:
      res = lm_tasks.evaluate_task(name, model.llm, model.llm_params, model.tokenizer, folder, limit=config.limit or None,
                                   on_error=config.on_error, batch_size=config.lm.batch_size,
                                   max_len=config.lm.max_len or None)
      out.write_predictions(name, settings, res.get("predictions", []))
      metrics = {k: v for k, v in res.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                 and k not in ("n", "n_skipped")}
      out.finish(name, settings, metrics, suite="lm", primary=res["primary"], n=res["n"], n_skipped=res["n_skipped"])
      done = out.finished(name, settings)
    results[name] = {**done["metrics"], "primary": done["primary"], "n": done["n"], "n_skipped": done["n_skipped"]}
    print(f"lm  {name:14s} {done['primary']} {done['metrics'][done['primary']]:.4f}  (n={done['n']}, "
          f"skipped={done['n_skipped']})", file=sys.stderr)
  summary = lm_tasks.summary(results)
  for key in ("t_acc", "ppl"):
    value = summary.get(key)
    if value is not None and not (isinstance(value, float) and math.isnan(value)):
      out.finish(f"lm:{key}", {"tasks": sorted(results)}, {key: value}, suite="lm", primary=key, n=len(results))
  print("lm summary    " + "  ".join(f"{k} {summary[k]:.4f}" for k in ("t_acc", "ppl")
                                     if isinstance(summary.get(k), float)), file=sys.stderr)
  return {"tasks": results, "summary": summary}


# ---------------------------------------------------------------------------------------------
# vqa and judge


def _vqa_settings(config, **overrides):
  from visprior_jax.eval.vqa_runner import VQASettings
  v = config.vqa
  kw = dict(parser=v.parser, batch_size=v.batch_size, max_new_tokens=v.max_new_tokens, max_images=v.max_images,
            limit=config.limit, on_error=config.on_error, temperature=v.temperature, seed=config.seed,
            images=v.get("images", "real"))
  return VQASettings(**{**kw, **overrides})


def eval_vqa(config, model: EvalModel | None = None) -> dict:
  from visprior_jax.eval.vqa_runner import run_vqa
  if not config.vqa.data_root:
    raise ValueError("--config.vqa.data_root is required: a folder with one sub-folder per benchmark")
  model = model if model is not None and model.multimodal else _load(config)
  return run_vqa(model, config.vqa.benchmarks, config.vqa.data_root, _output(config, model), _vqa_settings(config),
                 progress=config.progress, missing=config.vqa.missing)


def eval_judge(config, model: EvalModel | None = None) -> dict:
  from visprior_jax.eval import judge as judge_lib
  from visprior_jax.eval.vqa import registry
  from visprior_jax.eval.vqa_runner import run_vqa
  if not config.vqa.data_root:
    raise ValueError("--config.vqa.data_root is required for the judge's explained answers")
  model = model if model is not None and model.multimodal else _load(config)
  out = _output(config, model)
  settings = _vqa_settings(config, suffix=judge_lib.EXPLAIN_SUFFIX, suite="explain",
                           max_new_tokens=config.judge.max_new_tokens, limit=config.judge.limit or config.limit)
  names = registry.resolve(config.judge.benchmarks)
  run_vqa(model, names, config.vqa.data_root, out, settings, progress=config.progress, missing=config.vqa.missing)
  traces, cats = [], []
  for name in names:
    bench = registry.BENCHMARKS[name]
    if not (epath.Path(config.vqa.data_root) / bench.folder).exists():
      continue
    for row in out.predictions(f"explain:{name}", settings.for_benchmark(bench)).values():
      question = row["prompt"].removesuffix(judge_lib.EXPLAIN_SUFFIX).rstrip()
      traces.append({"question": question, "response": row["prediction"], "answer": row["answer"]})
      cats.append(bench.category or "other")
  endpoint = config.judge.endpoint.to_dict()
  backend = judge_lib.make_judge(endpoint)
  try:
    report = judge_lib.reasoning_quality(traces, backend)
  finally:
    backend.close()
  settings_key = {"benchmarks": names, "model": endpoint.get("model"), "prompt": endpoint.get("prompt_path"),
                  "include_answer": endpoint.get("include_answer"), "n": len(traces)}
  groups = {"reasoning_quality": list(range(len(traces)))}
  for cat in sorted(set(cats)):
    groups[f"reasoning_quality/{cat}"] = [i for i, c in enumerate(cats) if c == cat]
  summaries = {}
  for key, idx in groups.items():
    verdicts = [report["verdicts"][i] for i in idx]
    judged = [v for v in verdicts if v in (judge_lib.COHERENT, judge_lib.INCOHERENT)]
    soundness = 100.0 * sum(v == judge_lib.COHERENT for v in judged) / len(judged) if judged else float("nan")
    depth = float(np.mean([judge_lib.word_count(traces[i]["response"]) for i in idx])) if idx else float("nan")
    summaries[key] = dict(logical_soundness=soundness, reasoning_depth=depth)
    out.finish(f"judge:{key}", settings_key, summaries[key], suite="judge", primary="logical_soundness",
               category=key.split("/", 1)[1] if "/" in key else None, n=len(judged),
               n_skipped=len(verdicts) - len(judged))
  print(f"judge  logical soundness {summaries['reasoning_quality']['logical_soundness']:.2f}%  reasoning depth "
        f"{summaries['reasoning_quality']['reasoning_depth']:.1f} words  (n={report['n']}, unjudged="
        f"{report['n_unjudged']})", file=sys.stderr)
  return summaries


# ---------------------------------------------------------------------------------------------
# alignment


def _encoders(spec: str, model: EvalModel, family: str):
  """[(name, vit cfg, params, family, resolution)] for "self" and HF vision model folders."""
  from visprior_jax.convert import hf_vision
  out = []
  for entry in [e.strip() for e in (spec or "self").split(",") if e.strip()]:
    if entry == "self":
      if not model.multimodal:
        raise ValueError("alignment encoder 'self' needs a multimodal checkpoint; name HF vision folders instead")
      fam, res = model.image_preprocessing
      out.append(("self", model.task.vision, model.params["vision"], fam, res))
    else:
      cfg, params = hf_vision.load_hf(entry)
      out.append((epath.Path(entry).name, cfg, params, family or "clip", cfg.image_size))
  return out


def eval_alignment(config, model: EvalModel | None = None) -> dict:
  from visprior_jax.data import multimodal as mm
  from visprior_jax.eval import alignment
  a = config.alignment
  if not a.pairs:
    raise ValueError("--config.alignment.pairs is required: image-caption rows (JSONL or Parquet)")
  model = model or _load(config)
  out = _output(config, model)
  spec = {"kind": "captions", "paths": [a.pairs], "on_error": config.on_error, "limit": a.max_pairs}
  if a.image_root:
    spec["image_root"] = a.image_root
  samples = list(mm.read_samples(spec))
  captions = [next(t for r, t in s.turns if r == "assistant") for s in samples]
  settings = {"pairs": a.pairs, "n": len(samples), "k": a.k, "encoders": a.encoders or "self"}
  llm_feats = alignment.llm_caption_features(model.llm, model.llm_params, model.tokenizer, captions,
                                             batch_size=a.batch_size)
  scores = {}
  for name, cfg, params, family, res in _encoders(a.encoders, model, a.family):
    images = np.stack([mm.preprocess(mm.load_image(s.images[0]), family, res) for s in samples])
    vis = alignment.vision_image_features(cfg, params, images, batch_size=a.batch_size)
    scores[f"mnn/{name}"] = alignment.alignment_score(llm_feats, vis, k=a.k)["score"]
  metrics = {"mnn": float(np.mean(list(scores.values()))), **scores}
  out.finish("alignment:mnn", settings, metrics, suite="alignment", primary="mnn", n=len(samples))
  print(f"alignment  mNN (k={a.k}) {metrics['mnn']:.4f} over {len(samples)} pairs; " +
        ", ".join(f"{k} {v:.4f}" for k, v in scores.items()), file=sys.stderr)
  return metrics


# ---------------------------------------------------------------------------------------------


def run(config, suite: str) -> dict:
  if suite not in SUITES:
    raise ValueError(f"usage: visprior eval {{{'|'.join(SUITES)}}} --config=configs/eval.py ...")
  if suite == "lm":
    return eval_lm(config)
  if suite == "vqa":
    return eval_vqa(config)
  if suite == "judge":
    return eval_judge(config)
  if suite == "alignment":
    return eval_alignment(config)
  model = _load(config)
  results = {}
  if config.lm.data_root:
    results["lm"] = eval_lm(config, model)
  if config.vqa.data_root and model.multimodal:
    results["vqa"] = eval_vqa(config, model)
  if config.judge.get("enabled", False):
    results["judge"] = eval_judge(config, model)
  if config.alignment.pairs:
    results["alignment"] = eval_alignment(config, model)
  print(f"records: {output_dir(config, model) / 'metrics.jsonl'}")
  return results
