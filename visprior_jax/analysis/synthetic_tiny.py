"""A synthetic tiny-study directory with known effects, for tests and for trying the tiny report.

``write_synthetic_tiny_study(dir)`` writes what the tiny study writes -- ``runs/<run>/run.json`` and
``runs/<run>/sft/eval/step_200/metrics.jsonl`` (+ ``eval_blank/step_200`` for the no-image evaluation) --
with records made by the real scorers and writer: every run answers synthetic items of the tiny suite
(``tiny_*_open``, ``tiny_ocr``, ``mle_bench``), its answers are scored by the benchmarks' own ``score`` and
``aggregate`` and written by ``eval.results.EvalOutput`` with the category means of
``registry.summarize``, as the VQA runner does. A run answers an item right with a probability that
follows known laws (``TRUTH``), else a wrong answer; some types are answered with one constant:

  runs       reasoning sweep  sweep:reasoning:{0,25,50,75,100}, 2 seeds, size s   (share.reasoning)
             visual sweep     sweep:visual:{0,25,50,75,100}, 2 seeds, size s      (share.visual)
             sizes            "balanced", sizes s and m, 4 seeds (paired by seed)
  truth      count / relation / size (Vision-Centric): 0.30 + 0.002 x reasoning % (+0.15 for size m)
             colour / shape (General): 0.45 (+0.15 for size m)
             fact only in pre-training text (the control): 0.10 + 0.004 x visual %
             fact taught in SFT 0.60; MLE small 0.30 + 0.002 x visual %, medium 0.35, large 0.40
             OCR word: 0.2; OCR number: always "4" (one constant, right when the answer is 4)
  blank      with blank images every type that needs the image (General, Vision-Centric, MLE-Bench) is
             answered with the type's most common gold answer; the rest as with images

so Vision-Centric rises by 20 points over the reasoning sweep (slope 0.2 per share point), the control by
40 points over the visual sweep, and the larger size adds 7.5 points to Avg VQA. Item noise is real
(40 items per type), seed noise is ``seed_sd`` on every probability. Everything is a function of ``seed``.
"""

from __future__ import annotations

import collections
import json

import numpy as np
from etils import epath

from visprior_jax.eval.results import EvalOutput
from visprior_jax.eval.vqa import registry
from visprior_jax.eval.vqa.base import LETTERS, VQAItem

N_PER_TASK = 40
STEP = 200
TRUTH = {"vision_per_reasoning_pct": 0.002, "control_per_visual_pct": 0.004, "size_m": 0.15}
VOCAB = {"colour": ["red", "blue", "green", "white", "black", "orange"], "shape": ["star", "square", "circle",
                                                                                  "triangle", "hexagon"],
         "count": ["1", "2", "3", "4", "5"], "relation": ["left", "right", "above", "below"],
         "size": ["star", "square", "circle", "triangle"], "corners": ["0", "3", "4", "5", "6"],
         "colour_fact": ["snow", "plum", "carrot", "grass", "sky"],
         "word": ["cat", "dog", "sun", "cup", "hat", "pig", "zoo", "bee"], "number": [str(i) for i in range(10, 40)],
         "existence": ["star", "square", "circle", "triangle", "hexagon", "diamond"]}
BENCHES = {"tiny_general_open": ("colour", "shape"), "tiny_knowledge_open": ("corners", "colour_fact"),
           "tiny_ocr": ("word", "number"), "tiny_vision_open": ("count", "relation", "size"),
           "mle_bench": ("small", "medium", "large")}


def _items(rng) -> dict[str, list[VQAItem]]:
  """The suite's items (the same for every run): golds drawn unevenly, so majority > chance."""
  out = {}
  for bench, tasks in BENCHES.items():
    items = []
    for task in tasks:
      vocab = VOCAB["existence" if bench == "mle_bench" else task]
      weights = np.linspace(2.0, 1.0, len(vocab))
      for i in range(N_PER_TASK):
        gold = str(rng.choice(vocab, p=weights / weights.sum()))
        iid = f"{task}-{i:03d}"
        if bench == "mle_bench":
          others = [v for v in vocab if v != gold]
          options = list(rng.choice(others, 3, replace=False)) + [gold]
          rng.shuffle(options)
          items.append(VQAItem(id=iid, question="Which of the following appears in this image?",
                               options=tuple(str(o) for o in options), answer=LETTERS[options.index(gold)],
                               meta={"split": task, "sub_task": task}))
        elif bench == "tiny_ocr":
          items.append(VQAItem(id=iid, question="What is written in the image?", answer=[gold],
                               meta={"task": task, "held_out": False}))
        else:
          meta = {"task": task, "held_out": False, "n_options": 2 if task == "relation" else 4}
          if task in ("corners", "colour_fact"):
            meta["fact_in_sft"] = bool(i % 2)
          items.append(VQAItem(id=iid, question=f"{task}?", answer=[gold], meta=meta))
    out[bench] = items
  return out


def _probability(group: str, shares: dict, size: str, noise: float) -> float | None:
  """The truth (module docstring): a run's probability of answering an item of ``group`` right (None: a
  constant answer)."""
  rea, vis, big = 100 * shares.get("reasoning", 0.0), 100 * shares.get("visual", 0.0), float(size == "m")
  p = {"count": 0.30 + TRUTH["vision_per_reasoning_pct"] * rea + TRUTH["size_m"] * big,
       "colour": 0.45 + TRUTH["size_m"] * big, "fact_in_text": 0.10 + TRUTH["control_per_visual_pct"] * vis,
       "fact_in_sft": 0.60, "word": 0.20, "number": None, "small": 0.30 + 0.002 * vis, "medium": 0.35,
       "large": 0.40}
  p.update(relation=p["count"], size=p["count"], shape=p["colour"])
  return None if p[group] is None else float(np.clip(p[group] + noise, 0.0, 1.0))


def _answer(bench: str, item: VQAItem, p: float | None, blank: bool, majority: dict, rng) -> str:
  task = item.meta.get("task") or item.meta["split"]
  needs_image = bench in ("tiny_general_open", "tiny_vision_open", "mle_bench")
  if p is None:
    return "4"
  if blank and needs_image:
    return majority[(bench, task)]
  if bench == "mle_bench":
    right = rng.random() < p
    return item.answer if right else str(rng.choice([c for c in LETTERS[:len(item.options)] if c != item.answer]))
  gold = item.answer[0]
  if rng.random() < p:
    return gold
  return str(rng.choice([v for v in VOCAB[task] if v != gold]))


def _group(item: VQAItem) -> str:
  if "fact_in_sft" in item.meta:
    return "fact_in_sft" if item.meta["fact_in_sft"] else "fact_in_text"
  return item.meta.get("task") or item.meta["split"]


def _evaluate(out: EvalOutput, items: dict, shares: dict, size: str, noise: dict, blank: bool, majority: dict, rng):
  primary = {}
  for bench, its in items.items():
    b = registry.BENCHMARKS[bench]
    scored = []
    for it in its:
      p = _probability(_group(it), shares, size, noise[_group(it)])
      scored.append((it, b.score(it, _answer(bench, it, p, blank, majority, rng), "paper")))
    metrics = b.aggregate(scored)
    out.finish(bench, {"synthetic": bench, "blank": blank}, metrics, suite="vqa", category=b.category,
               primary=b.primary, n=len(scored))
    primary[bench] = metrics[b.primary]
  for metric, (value, count) in registry.summarize(primary).items():
    out.finish(f"vqa:{metric}", {"benchmarks": sorted(primary)}, {metric: value}, suite="vqa",
               category=metric if metric in registry.CATEGORIES else None, primary=metric, n=count)


def runs_spec() -> list[dict]:
  """The synthetic study's runs: name, mixture, shares, size, seed (module docstring)."""
  runs = []
  for cat in ("reasoning", "visual"):
    for pct in (0, 25, 50, 75, 100):
      for seed in (0, 1):
        runs.append(dict(run=f"sweep_{cat}_{pct}_s_s{seed}", mixture=f"sweep:{cat}:{pct}", size="s", seed=seed,
                         shares={cat: pct / 100, "other": 1 - pct / 100}))
  for size in ("s", "m"):
    for seed in range(4):
      runs.append(dict(run=f"balanced_{size}_s{seed}", mixture="balanced", size=size, seed=seed,
                       shares={"reasoning": 0.4, "visual": 0.2, "other": 0.4}))
  return runs


def write_synthetic_tiny_study(study_dir, *, seed: int = 0, seed_sd: float = 0.02, blank: bool = True) -> epath.Path:
  """Writes the synthetic tiny study (module docstring) under ``study_dir``; returns it."""
  root = epath.Path(study_dir)
  rng = np.random.default_rng(seed)
  items = _items(rng)
  majority = {}
  for bench, its in items.items():
    for task in BENCHES[bench]:
      golds = [it.answer if bench == "mle_bench" else it.answer[0] for it in its
               if (it.meta.get("task") or it.meta["split"]) == task]
      majority[(bench, task)] = collections.Counter(golds).most_common(1)[0][0]
  groups = ("colour", "shape", "count", "relation", "size", "fact_in_sft", "fact_in_text", "word", "number", "small",
            "medium", "large")
  for spec in runs_spec():
    run_dir = root / "runs" / spec["run"]
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps({"study": "tiny_synthetic", **spec, "tokens": 512000,
                                                  "encoder": "tiny_siglip", "sft": "full", "blind": False}, indent=1))
    noise = {g: rng.normal(0, seed_sd) for g in groups}   # the run's own (seed) deviation, shared by both evals
    for images in (("real", "blank") if blank else ("real",)):
      folder = run_dir / "sft" / ("eval_blank" if images == "blank" else "eval") / f"step_{STEP}"
      out = EvalOutput(folder, run=spec["run"], stage="sft", step=STEP, checkpoint=str(run_dir / "sft"),
                       fields={"images": "blank"} if images == "blank" else None)
      _evaluate(out, items, spec["shares"], spec["size"], noise, images == "blank", majority, rng)
  return root


def expected_baselines(seed: int = 0) -> dict[str, dict[str, float]]:
  """{type: {"chance", "majority"}} of the synthetic items, worked out here independently of the scorers."""
  items = _items(np.random.default_rng(seed))
  out = {}
  for bench, its in items.items():
    for it in its:
      out.setdefault(_group(it), []).append((bench, it))
  result = {}
  task_majority = {}
  for bench, its in items.items():
    for task in BENCHES[bench]:
      golds = [(it.answer if bench == "mle_bench" else it.answer[0]) for it in its
               if (it.meta.get("task") or it.meta["split"]) == task]
      task_majority[(bench, task)] = (collections.Counter(golds).most_common(1)[0][0], len(set(golds)))
  for group, pairs in out.items():   # each item keeps its own task's majority answer (the fact groups too)
    chance, hits = [], []
    for bench, it in pairs:
      task = it.meta.get("task") or it.meta["split"]
      top, n_gold = task_majority[(bench, task)]
      n_opt = len(it.options) or it.meta.get("n_options", 0)
      chance.append(1 / n_opt if n_opt else 1 / n_gold)
      hits.append((it.answer if bench == "mle_bench" else it.answer[0]) == top)
    result[group] = {"chance": 100 * float(np.mean(chance)), "majority": 100 * float(np.mean(hits))}
  return result
