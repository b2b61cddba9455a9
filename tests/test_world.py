"""The tiny study's world: determinism, ground truth checked against the rendered pixels, held-out
combinations, the text generators' arithmetic, the ``world`` source kind, and the synthetic suite read
back through the real benchmark loaders with gold answers recomputed from the scenes."""

import collections
import dataclasses
import hashlib
import json
import pathlib
import re

import numpy as np
import pytest

from visprior_jax.data import instruction_labels, multimodal, sources
from visprior_jax.data.label_backends import LexicalBackend
from visprior_jax.eval.vqa import mle_bench, registry, tiny
from visprior_jax.eval.vqa.base import LETTERS, load_items
from visprior_jax.study import world as W

EQUATION = re.compile(r"(\d+) ([-+*/]) (\d+) = (\d+)")
PLAIN = W.WorldConfig(p_texture=0.0)


def _tree_digest(root: pathlib.Path) -> dict:
  return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(root.rglob("*")) if p.is_file()}


def _rows(path):
  return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines()]


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
  root = tmp_path_factory.mktemp("suite")
  return root, W.write_eval_suite(root, 4, seed=3)


# ------------------------------------------------------------------------------------ determinism


def test_same_seed_same_bytes_and_different_seeds_differ(tmp_path, suite):
  root, manifest = suite
  W.write_eval_suite(tmp_path / "again", 4, seed=3)
  assert _tree_digest(tmp_path / "again") == _tree_digest(root)
  W.write_eval_suite(tmp_path / "other", 4, seed=4)
  for name in W.EVAL_TASKS:
    assert (tmp_path / "other" / name / "data.jsonl").read_bytes() != (root / name / "data.jsonl").read_bytes()
  a = W.write_captions(tmp_path / "c1", 12, seed=0)
  W.write_captions(tmp_path / "c2", 12, seed=0)
  W.write_captions(tmp_path / "c3", 12, seed=1)
  assert _tree_digest(tmp_path / "c1") == _tree_digest(tmp_path / "c2") != _tree_digest(tmp_path / "c3")
  assert a["n"] == 12
  for g in W.GENERATORS:
    first = list(W.generate_documents(g, 5, seed=0))
    assert first == list(W.generate_documents(g, 5, seed=0))
    assert [d["text"] for d in first] != [d["text"] for d in W.generate_documents(g, 5, seed=1)]
    # document i depends only on (seed, i): a longer run starts with the same documents
    assert list(W.generate_documents(g, 8, seed=0))[:5] == first


def test_eval_scenes_come_from_other_streams_than_training(tmp_path, suite):
  root, _ = suite
  W.write_captions(tmp_path / "cap", 30, seed=3)
  W.write_instructions(tmp_path / "sft", 30, seed=3)
  train = set(_tree_digest(tmp_path / "cap" / "images").values()) | set(_tree_digest(tmp_path / "sft" / "images")
                                                                        .values())
  evals = {h for name in W.EVAL_TASKS for h in _tree_digest(root / name / "images").values()}
  assert train and evals and not train & evals


# ------------------------------------------------------------------------------------ ground truth


def _alpha(img: np.ndarray, bg: float, rgb) -> np.ndarray:
  """Per-pixel coverage of one flat-coloured object over a flat gray background, from the pixels alone
  (box downsampling blends linearly: pixel = bg + alpha * (rgb - bg))."""
  d = np.asarray(rgb, float) - bg
  return np.clip(((img.astype(float) - bg) @ d) / (d @ d), 0.0, 1.0)


def test_mle_levels_hold_and_fractions_match_the_pixels():
  for level, (lo, hi) in W.MLE_LEVELS.items():
    for i in range(12):
      rng = W.stream(0, "test-mle", level, i)
      img, scene = W.render(W.sample_mle_scene(rng, level, PLAIN), PLAIN)
      target = scene.objects[scene.target]
      assert lo <= target.fraction < hi, (level, target)
      assert len({o.shape for o in scene.objects}) <= 3                      # three absent shapes remain
      if len(scene.objects) == 1:                                             # measured from pixels, independently
        est = _alpha(np.asarray(img), scene.level, target.rgb).mean()
        assert est == pytest.approx(target.fraction, abs=0.004)


def test_ordinary_scenes_sizes_positions_and_no_overlap():
  counts = collections.Counter()
  for i in range(80):
    rng = W.stream(0, "test-scene", i)
    requested = W.sample_scene(rng, PLAIN, text_kind="")
    img, scene = W.render(requested, PLAIN)
    pix = np.asarray(img)
    assert 1 <= len(scene.objects) <= 5
    assert len({o.combo for o in scene.objects}) == len(scene.objects)
    assert len({(o.row, o.col) for o in scene.objects}) == len(scene.objects)
    for before, o in zip(requested.objects, scene.objects):
      # measured share within tolerance of the requested one, inside the band of its size word
      assert o.fraction == pytest.approx(before.fraction, rel=0.15, abs=0.002)
      lo, hi = W.SIZE_BANDS[before.size]
      assert lo * 0.8 - 0.002 <= o.fraction <= hi * 1.2, (before, o)
      assert o.size == before.size
      counts[o.size] += 1
      # nothing overlaps: coverage measured from the pixels inside the object's own neighbourhood
      x0, x1 = int(max(0, o.cx - o.radius - 1)), int(min(64, o.cx + o.radius + 2))
      y0, y1 = int(max(0, o.cy - o.radius - 1)), int(min(64, o.cy + o.radius + 2))
      est = _alpha(pix[y0:y1, x0:x1], scene.level, o.rgb).sum() / 64 ** 2
      assert est == pytest.approx(o.fraction, abs=0.003)
    for a in scene.objects:
      for b in scene.objects:
        if a.col < b.col:
          assert a.cx < b.cx and "to the left of" in W.relations(a, b)
        if a.row < b.row:
          assert a.cy < b.cy and "above" in W.relations(a, b)
  assert all(counts[s] > 0 for s in W.SIZE_BANDS)


def test_rendered_text_is_there_and_inside_its_row():
  for i in range(20):
    rng = W.stream(0, "test-ocr", i)
    scene = W.sample_scene(rng, PLAIN, text_kind=("word", "number")[i % 2])
    img, scene = W.render(scene, PLAIN)
    bare, _ = W.render(dataclasses.replace(scene, text=""), PLAIN)
    assert scene.text and (scene.text in W.WORDS or scene.text.isdigit())
    x0, y0, x1, y1 = scene.text_box
    band = (scene.text_row * 64 / 3, (scene.text_row + 1) * 64 / 3)
    assert band[0] <= y0 < y1 <= band[1] and 0 <= x0 < x1 <= 64
    diff = np.abs(np.asarray(img, int) - np.asarray(bare, int)).sum(-1)
    ys, xs = np.nonzero(diff)
    assert len(ys) > 10                                                     # ink was drawn...
    assert ys.min() >= int(y0) - 1 and ys.max() <= y1 and xs.min() >= int(x0) - 1 and xs.max() <= x1   # ...only there
    ink = 15 if scene.level > 128 else 245
    assert np.abs(np.asarray(img, int)[ys, xs] - ink).min() < 40            # some pixels are (nearly) pure ink
    for o in scene.objects:                                                 # objects keep clear of the text
      assert o.cy + o.radius <= y0 + 1 or o.cy - o.radius >= y1 - 1


# ------------------------------------------------------------------------------------ held out


def test_held_out_combinations_never_reach_training_data(tmp_path):
  cfg = W.DEFAULT
  names = [f"{c} {s}" for s, c in cfg.held_out]
  cap = W.write_captions(tmp_path / "cap", 150, seed=0)
  sft = W.write_instructions(tmp_path / "sft", 200, seed=0)
  for folder in (tmp_path / "cap", tmp_path / "sft"):
    for row in _rows(folder / "scenes.jsonl"):
      assert not {(o["shape"], o["colour"]) for o in row["scene"]["objects"]} & set(cfg.held_out), row["id"]
  texts = [r["caption"] for r in _rows(cap["captions"])]
  entries = json.loads(pathlib.Path(sft["instructions"]).read_text())
  texts += [t["value"] for e in entries for t in e["conversations"]]
  assert not [t for t in texts if any(n in t for n in names)]
  # only the SFT subsets of the facts are taught
  for e in entries:
    q = e["conversations"][0]["value"]
    m = re.match(r"How many corners does an? (\w+) have\?", q)
    if m:
      assert m.group(1) in cfg.sft_fact_shapes
    m = re.match(r"What colour is (.+)\?\n", q)
    if m and "image" not in e:
      assert m.group(1) in {W.COLOUR_THINGS[c][1] for c in cfg.sft_fact_colours}
  # the language prior covers everything: pre-training text does mention held-out combinations
  text = " ".join(d["text"] for d in W.generate_documents("visual_world", 200, 0))
  assert all(n in text for n in names)


def test_instructions_read_as_llava_with_labels_for_the_ablation(tmp_path):
  out = W.write_instructions(tmp_path, 120, seed=1)
  stats = sources.ReadStats()
  samples = list(multimodal.read_samples({**out["spec"], "check_images": "decode", "on_error": "raise"}, stats))
  assert len(samples) == 120 and stats.total_skipped == 0
  labels = {r["id"]: r["label"] for r in _rows(out["labels"])}
  assert set(labels) == {s.id for s in samples}
  assert set(labels.values()) == {"perception", "reasoning", "others", "text"}
  for s in samples:
    assert s.id.split("-")[2] == labels[s.id]
    assert bool(s.images) == (labels[s.id] != "text")
  variants = instruction_labels.removal_variants(samples, labels, "perception")
  kept = [s.id for s in variants[0.0]]
  assert not [k for k in kept if labels[k] == "perception"]
  assert len(kept) == sum(v != "perception" for v in labels.values())
  caps = W.write_captions(tmp_path / "cap", 10, seed=1)
  pairs = list(multimodal.read_samples({**caps["spec"], "check_images": "decode", "on_error": "raise"}))
  assert len(pairs) == 10 and all(p.turns[1][1].endswith(".") for p in pairs)


# ------------------------------------------------------------------------------------ text


def test_text_generators_arithmetic_is_correct_and_reads_as_its_category():
  ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}
  lexical = LexicalBackend()
  shares = {}
  for g in W.GENERATORS:
    docs = [d["text"] for d in W.generate_documents(g, 150, seed=7)]
    n_eq = 0
    for doc in docs:
      for a, op, b, c in EQUATION.findall(doc):
        assert ops[op](int(a), int(b)) == int(c), (g, a, op, b, c)
        n_eq += 1
      if g in ("arithmetic", "counting"):
        for block in doc.split("\n\nProblem ")[1:]:
          eqs = EQUATION.findall(block)
          answer = re.search(r"Answer: (\d+)\.$", block)
          assert eqs and answer and eqs[-1][3] == answer.group(1), block
    assert (n_eq > 0) == (g != "visual_world")
    labs = lexical.label(docs)
    shares[g] = {c: sum(c in ls for ls in labs) / len(docs) for c in {x for ls in labs for x in ls}}
  assert shares["arithmetic"]["math_reasoning"] > 0.9 and shares["counting"]["math_reasoning"] > 0.9
  assert shares["syllogism"]["science_reasoning"] > 0.7
  assert shares["visual_world"]["visual_attribute"] > 0.9 and shares["visual_world"]["visual_relationship"] > 0.5
  assert shares["arithmetic"].get("code_reasoning", 0) < 0.1


def test_world_source_kind_reads_the_generators():
  docs = list(sources.read_documents({"kind": "world", "generator": "syllogism", "n_docs": 4, "seed": 2,
                                      "source": "syl"}))
  assert [d["id"] for d in docs] == [f"world/syllogism/2/{i}" for i in range(4)]
  assert {d["source"] for d in docs} == {"syl"}
  assert [d["text"] for d in docs] == [d["text"] for d in W.generate_documents("syllogism", 4, 2)]
  assert len(list(sources.read_documents({"kind": "world", "n_docs": 10, "limit": 3}))) == 3
  with pytest.raises(ValueError, match="world generator 'poems' is not one of"):
    sources.read_documents({"kind": "world", "generator": "poems"})


# ------------------------------------------------------------------------------------ the suite


def _gold_from_scene(name: str, row: dict, scene: dict, target: int) -> str:
  """The correct option text (or OCR answer) recomputed from the ground truth, not from the question maker."""
  objs = scene["objects"]
  q = row["question"]
  if name == "mle_bench":
    return objs[scene["target"]]["shape"]
  if name == "tiny_ocr":
    return scene["text"]
  o = objs[target]
  task = row["task"]
  if task == "colour":
    assert sum(x["shape"] == o["shape"] for x in objs) == 1 and o["shape"] in q
    return o["colour"]
  if task == "shape":
    assert sum(x["colour"] == o["colour"] for x in objs) == 1 and o["colour"] in q
    return o["shape"]
  if task == "corners":
    return str({"circle": 0, "triangle": 3, "square": 4, "diamond": 4, "hexagon": 6, "star": 10}[o["shape"]])
  if task == "colour_fact":
    return W.COLOUR_THINGS[o["colour"]][0]
  if task == "count":
    kind = re.match(r"How many (\w+)s are there in the image\?$", q).group(1)
    return str(len(objs) if kind == "shape" else sum(x["shape"] == kind for x in objs))
  m = (re.match(r"Is the (.+) to the left or to the right of the (.+)\?$", q) or
       re.match(r"Is the (.+) above or below the (.+)\?$", q) or
       re.match(r"Which is larger in the image, the (.+) or the (.+)\?$", q))
  refs = m.groups()

  def resolve(ref):     # "colour shape", or a shape that only one object has
    hits = [x for x in objs if f"{x['colour']} {x['shape']}" == ref or x["shape"] == ref]
    assert len(hits) == 1, (ref, objs)
    return hits[0]
  a, b = map(resolve, refs)
  if task == "relation":
    if "left" in q:
      return "left" if a["cx"] < b["cx"] else "right"
    return "above" if a["cy"] < b["cy"] else "below"
  assert task == "size" and max(a["fraction"], b["fraction"]) >= 1.5 * min(a["fraction"], b["fraction"])
  return refs[0] if a["fraction"] > b["fraction"] else refs[1]


def test_suite_loads_through_the_real_loaders_with_correct_gold(suite):
  root, manifest = suite
  expected = {"tiny_general": 8, "tiny_knowledge": 8, "tiny_ocr": 8, "tiny_vision": 12, "mle_bench": 12}
  assert {k: v["n"] for k, v in manifest["benchmarks"].items()} == expected
  assert registry.resolve("tiny") == list(expected)[:4] + ["mle_bench"]
  for name, n in expected.items():
    bench = registry.BENCHMARKS[name]
    items = load_items(bench, root / bench.folder, on_error="raise")
    assert len(items) == n
    rows, scenes = _rows(root / name / "data.jsonl"), _rows(root / name / "scenes.jsonl")
    for it, row, sc in zip(items, rows, scenes):
      gold = _gold_from_scene(name, row, sc["scene"], sc["target"])
      if name == "tiny_ocr":
        assert it.answer == [gold]
      else:
        assert it.options[LETTERS.index(it.answer)] == gold, (name, row, sc)
        assert len(set(it.options)) == len(it.options)
      if name == "mle_bench":
        present = {o["shape"] for o in sc["scene"]["objects"]}
        assert set(it.options) - {gold} <= set(W.SHAPES) - present and len(it.options) == 4
        lo, hi = W.MLE_LEVELS[it.meta["sub_task"]]
        assert lo <= sc["scene"]["objects"][sc["target"]]["fraction"] < hi
      elif name != "tiny_ocr":
        target = sc["scene"]["objects"][sc["target"]] if sc["target"] >= 0 else None
        if row["held_out"] and row["task"] != "count":
          assert (target["shape"], target["colour"]) in W.DEFAULT.held_out
        elif target is not None:
          assert (target["shape"], target["colour"]) not in W.DEFAULT.held_out
  assert sum(v["held_out"] for v in manifest["benchmarks"].values()) > 0


def test_an_oracle_scores_100_and_wrong_answers_0(suite):
  root, _ = suite
  for name in registry.SETS["tiny"]:
    bench = registry.BENCHMARKS[name]
    items = load_items(bench, root / bench.folder)
    for parser in ("paper", "lmms", "cambrian"):
      right = [(it, bench.score(it, it.answer if isinstance(it.answer, str) else it.answer[0], parser))
               for it in items]
      metrics = bench.aggregate(right)
      assert metrics[bench.primary] == 100.0
      assert all(v == 100.0 for k, v in metrics.items() if k.startswith("accuracy") or k in ("small", "large"))
    if items[0].options:
      wrong = [(it, bench.score(it, next(L for L in LETTERS[:len(it.options)] if L != it.answer), "paper"))
               for it in items]
    else:
      wrong = [(it, bench.score(it, "xyz", "paper")) for it in items]
    assert bench.aggregate(wrong)[bench.primary] == 0.0


def test_tiny_prompts_match_the_instruction_format_and_ocr_rules(suite):
  root, _ = suite
  rng = W.stream(0, "test-prompt")
  img, scene = W.render(W.sample_scene(rng, n_objects=3, text_kind="word"))
  for task in ("colour", "ocr"):
    q = W.ask(task, scene, rng)
    bench = registry.BENCHMARKS["tiny_general" if task == "colour" else "tiny_ocr"]
    item = bench.to_item({"id": "x", "image": "images/colour-00000.png", "question": q["question"],
                          "options": q["options"], "answer": q["answer"], "answers": [q["answer"]],
                          "_dir": str(root / "tiny_general")}, "x:1", root / "tiny_general")
    assert bench.prompt(item, bench.suffix) == W.format_question(q, multiple_choice=True)[0]
  item = load_items(tiny.TINY_OCR, root / "tiny_ocr")[0]
  word = item.answer[0]
  assert tiny.ocr_score(item, f" {word.upper()}.")["score"] == 1.0
  rec = tiny.ocr_score(item, f"The text says {word}")
  assert rec["score"] == 0.0 and rec["substring"] == 1.0
  scored = [(item, tiny.ocr_score(item, word)), (item, tiny.ocr_score(item, f"it is {word}"))]
  assert tiny.aggregate(scored)["accuracy"] == 50.0 and tiny.aggregate(scored)["substring_accuracy"] == 100.0
  # mle_bench rows carry exactly the released fields
  row = _rows(root / "mle_bench" / "data.jsonl")[0]
  assert set(row) == {"file_name", "question", "choices", "answer", "answer_text", "sub_task"}
  assert row["question"] in W.MLE_QUESTIONS and mle_bench.SUB_TASKS[row["sub_task"]]


def test_config_from_a_mapping_as_a_study_step_passes_it(tmp_path):
  cfg = W.as_config({"held_out": [["star", "red"]], "p_held_out_eval": 0.5, "sft_fact_shapes": ["circle"]})
  assert cfg.held_out == (("star", "red"),) and cfg.sft_fact_shapes == ("circle",)
  out = W.write_benchmark("tiny_general", tmp_path, 4, seed=0, config={"held_out": [["star", "red"]],
                                                                       "p_held_out_eval": 0.5})
  assert out["held_out"] == 4                                    # exactly half of each task's 4 items
  held = [r for r in _rows(tmp_path / "scenes.jsonl") if r["held_out"]]
  assert all(r["scene"]["objects"][r["target"]]["shape"] == "star" and
             r["scene"]["objects"][r["target"]]["colour"] == "red" for r in held)
  with pytest.raises(ValueError, match="unknown world config field"):
    W.as_config({"colours": 3})
  with pytest.raises(ValueError, match="is not a .shape, colour. of this world"):
    W.as_config({"held_out": [["cube", "red"]]})


def test_shape_twins_differ_in_one_shape_and_never_show_a_held_out_combination(tmp_path):
  cap = W.write_captions(tmp_path / "cap", 40, seed=0, twins=1.0)
  scenes = [r["scene"]["objects"] for r in _rows(tmp_path / "cap" / "scenes.jsonl")]
  for a, b in zip(scenes[0::2], scenes[1::2]):
    assert len(a) == len(b)
    changed = [(x, y) for x, y in zip(a, b) if x["shape"] != y["shape"]]
    assert len(changed) == 1
    x, y = changed[0]
    assert (x["colour"], x["row"], x["col"]) == (y["colour"], y["row"], y["col"])
    assert not {(o["shape"], o["colour"]) for o in b} & set(W.DEFAULT.held_out)
  assert len(_rows(cap["captions"])) == 40
  # twins=0 keeps the earlier captions byte for byte
  W.write_captions(tmp_path / "plain", 6, seed=0)
  W.write_captions(tmp_path / "plain0", 6, seed=0, twins=0.0)
  assert (tmp_path / "plain" / "captions.jsonl").read_bytes() == (tmp_path / "plain0" / "captions.jsonl").read_bytes()
