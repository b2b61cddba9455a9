"""Baselines beside the per-task accuracies (eval/vqa/baselines.py) of the tiny benchmarks and MLE-Bench,
on small hand-made benchmarks whose chance, majority, distinct and top_share values are worked by hand."""

import json

import pytest
from PIL import Image

from visprior_jax.eval.vqa import baselines, mle_bench, tiny
from visprior_jax.eval.vqa.base import load_items


def _write(folder, rows, image_key="image"):
  (folder / "images").mkdir(parents=True)
  for r in rows:
    Image.new("RGB", (8, 8), (200, 10, 10)).save(folder / r[image_key])
  (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _score(bench, folder, predictions):
  items = load_items(bench, folder, on_error="raise")
  scored = [(it, bench.score(it, predictions[it.id], "paper")) for it in items]
  return bench.aggregate(scored)


def _mc(i, task, options, answer, **kw):
  return dict(id=f"{task}-{i}", image=f"images/{task}-{i}.png", question=f"q {task} {i}?", options=options,
              answer=answer, answer_text=options["ABCD".index(answer)], task=task, held_out=False, **kw)


@pytest.fixture
def knowledge(tmp_path):
  """tiny_knowledge, 4 corners items (4 options) and 2 colour_fact items (2 options), 3 facts taught in SFT.

  corners gold: 4, 4, 3, 0 -> majority answer "4" (2 of 4), 3 distinct golds; colour_fact gold: snow, plum."""
  c4 = ["3", "4", "5", "0"]
  rows = [_mc(0, "corners", c4, "B", fact_in_sft=True), _mc(1, "corners", c4, "B", fact_in_sft=False),
          _mc(2, "corners", c4, "A", fact_in_sft=True), _mc(3, "corners", c4, "D", fact_in_sft=False),
          _mc(0, "colour_fact", ["snow", "plum"], "A", fact_in_sft=True),
          _mc(1, "colour_fact", ["snow", "plum"], "B", fact_in_sft=False)]
  _write(tmp_path / "tiny_knowledge", rows)
  return tmp_path / "tiny_knowledge"


def test_open_asked_option_questions(knowledge):
  # the model says "3" to every corners question (right once) and "Snow." to both colour facts (right once)
  preds = {"corners-0": "3", "corners-1": "3", "corners-2": "3", "corners-3": "3",
           "colour_fact-0": "Snow.", "colour_fact-1": "snow"}
  m = _score(tiny.TINY_KNOWLEDGE_OPEN, knowledge, preds)
  assert m["accuracy/corners"] == 25.0 and m["accuracy/colour_fact"] == 50.0 and m["accuracy"] == pytest.approx(100 / 3)
  # corners: 4 options each -> chance 25; "4" is right on 2 of 4 -> majority 50; one answer given 4 times
  assert (m["chance/corners"], m["majority/corners"], m["distinct/corners"], m["top_share/corners"],
          m["items/corners"]) == (25.0, 50.0, 1.0, 100.0, 4.0)
  # colour_fact: 2 options -> chance 50; "snow" (first of the tie) right on 1 of 2; "Snow." normalises to "snow"
  assert (m["chance/colour_fact"], m["majority/colour_fact"], m["distinct/colour_fact"],
          m["top_share/colour_fact"]) == (50.0, 50.0, 1.0, 100.0)
  # fact split: taught = corners-0, corners-2, colour_fact-0: chance (1/4 + 1/4 + 1/2) / 3; each item keeps its
  # task's majority answer: corners-0 "4" yes, corners-2 no, colour_fact-0 "snow" yes -> 2 of 3
  assert m["chance/fact_in_sft"] == pytest.approx(100 / 3) and m["majority/fact_in_sft"] == pytest.approx(200 / 3)
  assert m["distinct/fact_in_sft"] == 2.0 and m["top_share/fact_in_sft"] == pytest.approx(200 / 3)
  # text only = corners-1 ("4" yes), corners-3 (no), colour_fact-1 (plum: no)
  assert m["majority/fact_in_text"] == pytest.approx(100 / 3) and m["items/fact_in_text"] == 3.0
  # whole benchmark: item means
  assert m["chance"] == pytest.approx(100 * (4 * 0.25 + 2 * 0.5) / 6) and m["majority"] == pytest.approx(50.0)
  # the accuracy metrics are the ones the records always had
  assert m["accuracy/fact_in_sft"] == pytest.approx(200 / 3) and m["accuracy/fact_in_text"] == 0.0


def test_letter_scored_questions(knowledge):
  # letters: corners gold B, B, A, D -> majority letter B right on 2 of 4; an unparsable answer counts as its text
  preds = {"corners-0": "B", "corners-1": "A", "corners-2": "B", "corners-3": "zz",
           "colour_fact-0": "A", "colour_fact-1": "A"}
  m = _score(tiny.TINY_KNOWLEDGE, knowledge, preds)
  assert m["majority/corners"] == 50.0 and m["distinct/corners"] == 3.0 and m["top_share/corners"] == 50.0
  assert m["majority/colour_fact"] == 50.0 and m["distinct/colour_fact"] == 1.0


def test_ocr_chance_is_one_over_the_distinct_answers(tmp_path):
  rows = [dict(id=f"w{i}", image=f"images/w{i}.png", question="What word is written in the image?", answers=[a],
               task="word") for i, a in enumerate(["cat", "Cat", "dog", "sun", "cat"])]
  _write(tmp_path / "tiny_ocr", rows)
  m = _score(tiny.TINY_OCR, tmp_path / "tiny_ocr", {"w0": "cat", "w1": "dog", "w2": "dog", "w3": "cat", "w4": "cat"})
  # normalised golds: cat x3, dog, sun -> 3 distinct: chance 1/3; "cat" right on 3 of 5
  assert m["chance/word"] == pytest.approx(100 / 3) and m["majority/word"] == 60.0
  assert m["distinct/word"] == 2.0 and m["top_share/word"] == 60.0 and m["accuracy/word"] == 60.0


def test_mle_bench_baselines_per_split(tmp_path):
  ch = ["cat", "dog", "sun", "cup"]
  rows = [dict(file_name=f"images/{i}.png", question="Which of the following appears in this image?", choices=ch,
               answer=a, sub_task=s)
          for i, (a, s) in enumerate([("cat", "existence_0-30"), ("cat", "existence_0-30"), ("dog", "existence_0-30"),
                                      ("sun", "existence_60-100"), ("cup", "existence_60-100")])]
  _write(tmp_path / "mle_bench", rows, image_key="file_name")
  preds = {"images/0.png": "A", "images/1.png": "B", "images/2.png": "B", "images/3.png": "A", "images/4.png": "A"}
  m = _score(mle_bench.MLE_BENCH, tmp_path / "mle_bench", preds)
  # small: gold A, A, B -> majority A 2/3; predictions A, B, B -> 2 distinct, top B 2/3
  assert m["chance/small"] == 25.0 and m["majority/small"] == pytest.approx(200 / 3)
  assert m["distinct/small"] == 2.0 and m["top_share/small"] == pytest.approx(200 / 3) and m["items/small"] == 3.0
  # large: gold C, D -> majority 50 (a tie: the first seen); one answer, A
  assert m["majority/large"] == 50.0 and m["top_share/large"] == 100.0
  assert m["chance/overall"] == 25.0 and m["majority/overall"] == pytest.approx(60.0)
  assert m["overall"] == pytest.approx(100 * 2 / 5) and "medium" not in m and "majority/medium" not in m


def test_unknown_prediction_keys_leave_the_spread_out():
  rows = [baselines.Row("t", ("a",), 0, None), baselines.Row("t", ("b",), 0, "a")]
  out = baselines.baselines(rows)
  assert out == {"chance/t": 50.0, "majority/t": 50.0, "items/t": 2.0, "chance": 50.0, "majority": 50.0}
  assert baselines.baselines([]) == {}
