"""Writers: the captions, instructions and evaluation suite the tiny study trains and evaluates on.

``write_captions`` (captions JSONL for ``data/multimodal.py`` kind "captions"), ``write_instructions``
(LLaVA JSON, prompts in the benchmarks' two forms, + ``labels.jsonl`` with perception / reasoning /
others / text per sample, the format ``data/instruction_labels.removal_variants`` reads),
``write_eval_suite`` (MLE-Bench in its released layout plus the four ``tiny_*`` benchmarks of
``eval/vqa/tiny.py``). About 3-5 ms per image on one CPU core.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from collections.abc import Mapping, Sequence

from PIL import Image

from visprior_jax.study.world.questions import ask, format_question, text_question
from visprior_jax.study.world.render import AREA, render
from visprior_jax.study.world.sampling import MLE_LEVELS, allowed_combos, sample_mle_scene, sample_scene
from visprior_jax.study.world.scene import COLOURS, SHAPES, WORLD_VERSION, Scene, WorldConfig, as_config, stream
from visprior_jax.study.world.text import caption

# ---------------------------------------------------------------------------------------------
# Instructions (SFT) and captions (alignment)

SFT_TASKS = {"perception": ("colour", "shape", "existence", "ocr"),
             "reasoning": ("count", "relation", "size", "corners", "colour_fact"),
             "others": ("describe",), "text": ("fact_corners", "fact_colour", "arithmetic", "syllogism")}
DEFAULT_MIX = {"perception": 0.35, "reasoning": 0.35, "others": 0.1, "text": 0.2}


def _scene_for(task: str, rng: random.Random, config: WorldConfig, *, held_out: bool = False,
               force: tuple | None = None, n_objects: int | None = None) -> Scene:
  if task == "existence" or (task in ("colour", "shape", "corners", "colour_fact", "describe")
                             and rng.random() < config.p_big):
    return sample_mle_scene(rng, rng.choice(list(MLE_LEVELS)), config, force=force, held_out=held_out)
  if task in ("ocr", "word", "number"):
    kind = task if task != "ocr" else rng.choice(("word", "number"))
    return sample_scene(rng, config, n_objects=rng.randint(0, 3) if n_objects is None else n_objects, force=force,
                        held_out=held_out, text_kind=kind)
  if task in ("relation", "size") and n_objects is None:
    n_objects = rng.randint(2, config.max_objects)
  return sample_scene(rng, config, n_objects=n_objects, force=force, held_out=held_out,
                      text_kind="" if task == "count" else None)


def _count_scene(rng: random.Random, config: WorldConfig, *, force: tuple | None = None,
                 held_out: bool = False) -> tuple[Scene, str]:
  """A scene for a counting question whose answer (1..max_objects) is drawn first: (scene, shape counted or ""
  for all shapes). A forced (held-out) combination is one of the objects counted."""
  n = rng.randint(1, config.max_objects)
  if rng.random() < 0.5:
    return sample_scene(rng, config, n_objects=n, force=force, held_out=held_out, text_kind=""), ""
  shape = force[0] if force else rng.choice(SHAPES)
  colours = [c for c in COLOURS if (held_out or (shape, c) not in config.held_out) and (not force or c != force[1])]
  combos = ([tuple(force)] if force else []) + [(shape, c) for c in rng.sample(colours, n - (1 if force else 0))]
  n_objects = n + rng.randint(0, config.max_objects - n)
  return sample_scene(rng, config, n_objects=n_objects, force=combos, held_out=held_out, text_kind="",
                      avoid_shapes=(shape,)), shape


def _save(img: Image.Image, path: str) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  img.save(path, format="PNG")


def _write_jsonl(path: str, rows: Sequence[Mapping]) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path + ".tmp", "w") as f:
    f.writelines(json.dumps(r) + "\n" for r in rows)
  os.replace(path + ".tmp", path)


def _held_out_objects(scene: Scene, config: WorldConfig) -> bool:
  return any(o.combo in config.held_out for o in scene.objects)


def write_instructions(out_dir, n: int, seed: int, *, config=None, mix: Mapping | None = None,
                       p_mc: float = 0.6) -> dict:
  """``n`` instructions (LLaVA JSON ``instructions.json``, images under ``images/``) mixing perception,
  reasoning, others (descriptions) and text-only samples (``mix``: shares by label, DEFAULT_MIX); options
  questions are multiple choice with probability ``p_mc``, else short answers. ``labels.jsonl`` holds
  ``{"id", "label", "task"}`` per sample (label: perception | reasoning | others | text), the format
  ``data.instruction_labels.removal_variants`` takes; the label is also in the id
  (``sft-<i>-<label>-<task>``). Held-out combinations never appear; facts only for the SFT subsets."""
  config = as_config(config)
  out_dir = str(out_dir)
  mix = dict(DEFAULT_MIX, **dict(mix or {}))
  if set(mix) - set(SFT_TASKS) or min(mix.values()) < 0 or sum(mix.values()) <= 0:
    raise ValueError(f"mix {mix} must give non-negative shares to {sorted(SFT_TASKS)}")
  entries, labels, scenes = [], [], []
  for i in range(int(n)):
    rng = stream(seed, "sft", i)
    label = rng.choices(list(mix), weights=list(mix.values()))[0]
    task = rng.choice(SFT_TASKS[label])
    sid = f"sft-{i:06d}-{label}-{task}"
    if label == "text":
      prompt, reply = text_question(task, rng, config, p_mc)
      entries.append({"id": sid, "conversations": [{"from": "human", "value": prompt},
                                                    {"from": "gpt", "value": reply}]})
    else:
      for _ in range(100):
        scene, count_shape = _count_scene(rng, config) if task == "count" else (_scene_for(task, rng, config), None)
        img, scene = render(scene, config)
        q = ask(task, scene, rng, shapes=config.sft_fact_shapes, colours=config.sft_fact_colours,
                count_shape=count_shape)
        if q is not None:
          break
      else:
        raise RuntimeError(f"no scene supported {task!r} in 100 tries (seed {seed}, sample {i})")
      assert not _held_out_objects(scene, config)
      prompt, reply = format_question(q, q["task"] not in ("ocr", "describe") and rng.random() < p_mc)
      _save(img, os.path.join(out_dir, "images", f"{sid}.png"))
      entries.append({"id": sid, "image": f"images/{sid}.png", "conversations": [
          {"from": "human", "value": "<image>\n" + prompt}, {"from": "gpt", "value": reply}]})
      scenes.append({"id": sid, "scene": scene.to_dict()})
    labels.append({"id": sid, "label": label, "task": task})
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, "instructions.json")
  with open(path + ".tmp", "w") as f:
    f.write("[\n" + ",\n".join(json.dumps(e) for e in entries) + "\n]\n")
  os.replace(path + ".tmp", path)
  _write_jsonl(os.path.join(out_dir, "labels.jsonl"), labels)
  _write_jsonl(os.path.join(out_dir, "scenes.jsonl"), scenes)
  counts: dict[str, int] = {}
  for row in labels:
    counts[row["label"]] = counts.get(row["label"], 0) + 1
  spec = {"kind": "instructions", "paths": [path], "image_root": out_dir}
  return {"instructions": path, "labels": os.path.join(out_dir, "labels.jsonl"), "image_root": out_dir,
          "n": len(entries), "by_label": counts, "spec": spec}


def shape_twin(scene: Scene, rng: random.Random, config: WorldConfig = None, held_out: bool = False) -> Scene:
  """The scene with one object's shape changed (same colour, place and area): a hard negative for a
  contrastive encoder, whose captions otherwise tell apart by colour and place alone."""
  config = as_config(config)
  i = rng.randrange(len(scene.objects))
  o = scene.objects[i]
  taken = {x.combo for x in scene.objects}
  shapes = [s for s in SHAPES if s != o.shape and (s, o.colour) not in taken
            and (held_out or (s, o.colour) not in config.held_out)]
  new = rng.choice(shapes)
  twin = dataclasses.replace(o, shape=new, radius=o.radius * (AREA[o.shape] / AREA[new]) ** 0.5)
  return dataclasses.replace(scene, objects=scene.objects[:i] + (twin,) + scene.objects[i + 1:])


def write_captions(out_dir, n: int, seed: int, split: str = "train", *, config=None, twins: float = 0.0) -> dict:
  """``n`` (image, caption) pairs: ``captions.jsonl`` rows ``{"id", "image", "caption"}`` (images under
  ``images/``) for ``data/multimodal.py`` kind "captions", and ``scenes.jsonl``. ``split="train"`` never shows a
  held-out combination; any other split name is its own stream and may. ``twins``: the share of row pairs
  (2j, 2j+1) whose second scene is the first's ``shape_twin`` (read with the contrastive source's
  ``data.group=2`` so both land in one batch); 0 = every scene drawn on its own."""
  config = as_config(config)
  out_dir = str(out_dir)
  held = split != "train"
  rows, scenes = [], []
  previous = None
  for i in range(int(n)):
    rng = stream(seed, "captions", split, i)
    if twins and i % 2 == 1 and previous is not None and previous.objects and rng.random() < twins:
      scene = shape_twin(previous, rng, config, held)
    elif rng.random() < config.p_big:
      scene = sample_mle_scene(rng, rng.choice(list(MLE_LEVELS)), config, held_out=held)
    else:
      scene = sample_scene(rng, config, held_out=held)
    previous = scene
    img, scene = render(scene, config)
    sid = f"{split}-{i:06d}"
    _save(img, os.path.join(out_dir, "images", f"{sid}.png"))
    rows.append({"id": sid, "image": f"images/{sid}.png", "caption": caption(scene, rng)})
    scenes.append({"id": sid, "scene": scene.to_dict()})
  path = os.path.join(out_dir, "captions.jsonl")
  _write_jsonl(path, rows)
  _write_jsonl(os.path.join(out_dir, "scenes.jsonl"), scenes)
  return {"captions": path, "image_root": out_dir, "n": len(rows),
          "spec": {"kind": "captions", "paths": [path], "image_root": out_dir}}


# ---------------------------------------------------------------------------------------------
# The evaluation suite

EVAL_TASKS = {"tiny_general": ("colour", "shape"), "tiny_knowledge": ("corners", "colour_fact"),
              "tiny_ocr": ("word", "number"), "tiny_vision": ("count", "relation", "size"),
              "mle_bench": tuple(MLE_LEVELS)}


def _eval_item(bench: str, task: str, i: int, seed: int, config: WorldConfig):
  rng = stream(seed, "eval", bench, task, i)
  # exactly floor(n * p) held-out items per task, spread evenly by index (not a coin per item: suites are small)
  p = config.p_held_out_eval
  held = bench != "tiny_ocr" and bool(config.held_out) and int((i + 1) * p) > int(i * p)
  force = rng.choice(config.held_out) if held else None
  if force is None and (bench == "mle_bench" or task in ("colour", "shape", "corners", "colour_fact")):
    force = rng.choice(allowed_combos(config))     # the target drawn first: answers balanced by construction
  for _ in range(200):
    count_shape = None
    if bench == "mle_bench":
      scene = sample_mle_scene(rng, task, config, force=force)
    elif task == "count":
      scene, count_shape = _count_scene(rng, config, force=force)
    else:
      n_objects = rng.randint(1, 4) if task in ("colour", "shape", "corners", "colour_fact") else None
      scene = dataclasses.replace(_scene_for(task, rng, config, force=force, n_objects=n_objects), target=-1)
    img, scene = render(scene, config)
    target = scene.target if bench == "mle_bench" else (0 if force and task != "count" else None)
    q = ask("ocr" if bench == "tiny_ocr" else "existence" if bench == "mle_bench" else task, scene, rng, target=target,
            count_shape=count_shape)
    if q is None:
      continue
    if bench == "mle_bench":
      lo, hi = MLE_LEVELS[task]
      if not lo <= scene.objects[scene.target].fraction < hi:
        continue
    return img, scene, q, held
  raise RuntimeError(f"no scene supported {bench}/{task} in 200 tries (seed {seed}, item {i})")


def write_benchmark(name: str, folder, n_per_task: int, seed: int, *, config=None) -> dict:
  """One benchmark of the suite into ``folder``: ``data.jsonl`` + ``images/`` + ``scenes.jsonl``; returns counts."""
  config = as_config(config)
  if name not in EVAL_TASKS:
    raise ValueError(f"unknown world benchmark {name!r}; one of {sorted(EVAL_TASKS)}")
  folder = str(folder)
  rows, scenes = [], []
  for task in EVAL_TASKS[name]:
    for i in range(int(n_per_task)):
      img, scene, q, held = _eval_item(name, task, i, seed, config)
      sid = f"{task}-{i:05d}"
      image = f"images/{sid}.png"
      _save(img, os.path.join(folder, image))
      if name == "mle_bench":   # the released imagefolder fields, nothing else
        rows.append({"file_name": image, "question": q["question"], "choices": q["options"],
                     "answer": q["answer_text"], "answer_text": q["answer_text"], "sub_task": task})
      elif name == "tiny_ocr":
        rows.append({"id": sid, "image": image, "question": q["question"], "answers": [q["answer"]], "task": task,
                     "held_out": False})
      else:
        row = {"id": sid, "image": image, "question": q["question"], "options": q["options"], "answer": q["answer"],
               "answer_text": q["answer_text"], "task": task, "held_out": held}
        if name == "tiny_knowledge":
          o = scene.objects[q["target"]]
          row["fact_in_sft"] = o.shape in config.sft_fact_shapes if task == "corners" else \
              o.colour in config.sft_fact_colours
        rows.append(row)
      scenes.append({"id": image if name == "mle_bench" else sid, "target": q["target"], "held_out": held,
                     "scene": scene.to_dict()})
  _write_jsonl(os.path.join(folder, "data.jsonl"), rows)
  _write_jsonl(os.path.join(folder, "scenes.jsonl"), scenes)
  return {"n": len(rows), "tasks": {t: int(n_per_task) for t in EVAL_TASKS[name]},
          "held_out": sum(s["held_out"] for s in scenes)}


def write_eval_suite(out_root, n_per_task: int, seed: int, *, config=None,
                     benchmarks: Sequence[str] = tuple(EVAL_TASKS)) -> dict:
  """The synthetic suite under ``out_root`` (a VQA ``data_root``): ``mle_bench/`` in MLE-Bench's released
  layout and ``tiny_general``, ``tiny_knowledge``, ``tiny_ocr``, ``tiny_vision`` (``eval/vqa/tiny.py``);
  ``n_per_task`` items per task (sub_task); ``suite.json`` records what was written."""
  config = as_config(config)
  out_root = str(out_root)
  manifest = {"world_version": WORLD_VERSION, "seed": int(seed), "n_per_task": int(n_per_task),
              "held_out": [list(c) for c in config.held_out], "config": dataclasses.asdict(config), "benchmarks": {}}
  for name in benchmarks:
    manifest["benchmarks"][name] = write_benchmark(name, os.path.join(out_root, name), n_per_task, seed,
                                                   config=config)
  with open(os.path.join(out_root, "suite.json"), "w") as f:
    json.dump(manifest, f, indent=1)
  return manifest
