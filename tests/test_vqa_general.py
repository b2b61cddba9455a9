"""General (GQA, MME, MMBench, SEED) and Knowledge (ScienceQA-IMG, MMMU, AI2D, MathVista) benchmarks on
format-exact fixtures: loaders, exact prompts, hand-checked scores and aggregates, layout and row errors."""

import re

import pytest

import fixtures_vqa_general as fx
from visprior_jax.eval.vqa import general, knowledge
from visprior_jax.eval.vqa.base import ReadStats, load_items

BENCH = {b.name: b for b in general.BENCHMARKS + knowledge.BENCHMARKS}
PNG = b"\x89PNG"


def _load(name, folder, **kw):
  stats = ReadStats()
  items = load_items(BENCH[name], folder, stats=stats, **kw)
  return items, stats


@pytest.fixture
def root(tmp_path):
  return tmp_path


def _written(root, name, **kw):
  folder = root / BENCH[name].folder
  fx.WRITERS[name](folder) if not kw else getattr(fx, f"write_{name}")(folder, **kw)
  return folder


def _score(name, item, prediction, parser="paper"):
  return BENCH[name].score(item, prediction, parser)


# ------------------------------------------------------------------ registry-facing attributes

def test_benchmarks_attributes():
  assert [b.name for b in general.BENCHMARKS] == ["gqa", "mme", "mmbench", "seed"]
  assert [b.name for b in knowledge.BENCHMARKS] == ["scienceqa", "mmmu", "ai2d", "mathvista"]
  assert {b.category for b in general.BENCHMARKS} == {"General"}
  assert {b.category for b in knowledge.BENCHMARKS} == {"Knowledge"}
  expect = {"gqa": (128, "accuracy"), "mme": (32, "perception_100"), "mmbench": (512, "circular_accuracy"),
            "seed": (512, "accuracy"), "scienceqa": (512, "accuracy"), "mmmu": (512, "accuracy"),
            "ai2d": (512, "accuracy"), "mathvista": (512, "accuracy")}
  for name, (tokens, primary) in expect.items():
    b = BENCH[name]
    assert (b.max_new_tokens, b.primary, b.paper, b.max_images, b.folder) == (tokens, primary, True, 1, name)
  assert BENCH["gqa"].suffix == BENCH["mme"].suffix == "Answer the question using a single word or phrase."
  assert BENCH["mmbench"].suffix == "Answer with the option's letter from the given choices directly."
  assert BENCH["scienceqa"].suffix == ("Please answer directly with only the letter of the correct option and "
                                       "nothing else.")
  assert BENCH["mathvista"].suffix == "First show your reasoning process and then give the final answer."


def test_writers_twice_harmless(root):
  for name in BENCH:
    _written(root, name)
    first = [it.id for it in _load(name, root / name)[0]]
    _written(root, name)
    assert [it.id for it in _load(name, root / name)[0]] == first


# ------------------------------------------------------------------ GQA

def test_gqa_loader_prompt(root):
  items, stats = _load("gqa", _written(root, "gqa"))
  assert [it.id for it in items] == ["201307251", "201640614", "202225914", "202225915"]
  assert [it.answer for it in items] == ["no", "woman", "white", "left"]
  assert all(it.images[0].startswith(PNG) for it in items)
  assert items[0].images == items[1].images != items[2].images      # joined on imageId
  assert items[2].meta["imageId"] == "n235859" and stats.total_skipped == 0
  assert BENCH["gqa"].prompt(items[0], BENCH["gqa"].suffix) == (
      "Is it overcast?\nAnswer the question using a single word or phrase.")
  assert BENCH["gqa"].prompt(items[0], "") == "Is it overcast?"


@pytest.mark.parametrize("k,prediction,score", [
    (0, "No.", 1.0), (0, " no \n", 1.0), (0, "No, it is clear.", 0.0), (0, "NO..", 1.0),
    (1, "Woman", 1.0), (1, "a woman", 0.0), (1, "woman!", 0.0),     # no punctuation / article stripping (Cambrian)
    (3, "Left.", 1.0), (3, "left side", 0.0),
])
def test_gqa_score(root, k, prediction, score):
  items, _ = _load("gqa", _written(root, "gqa"))
  assert _score("gqa", items[k], prediction)["score"] == score


def test_gqa_aggregate_and_missing_image(root):
  items, _ = _load("gqa", _written(root, "gqa"))
  scored = [(it, _score("gqa", it, p)) for it, p in zip(items, ["no", "man", "White", "left."])]
  assert BENCH["gqa"].aggregate(scored) == {"accuracy": 75.0}
  folder = _written(root, "gqa", images=fx.GQA_IMAGES[:1])          # image n235859 absent
  items, stats = _load("gqa", folder)
  assert len(items) == 2 and stats.skipped == {"missing image": 2}


# ------------------------------------------------------------------ MME

def test_mme_loader_prompt(root):
  items, _ = _load("mme", _written(root, "mme"))
  assert [it.id for it in items[:2]] == ["existence/000000000139.jpg#0", "existence/000000000139.jpg#1"]
  assert [it.answer for it in items] == ["Yes", "No"] * 3
  assert items[4].meta == {"question_id": "code_reasoning/0020.png", "category": "code_reasoning"}
  assert BENCH["mme"].prompt(items[0], BENCH["mme"].suffix) == (
      "Is there a tv in this image? Please answer yes or no.\nAnswer the question using a single word or phrase.")


@pytest.mark.parametrize("k,prediction,parsed,score", [
    (0, "Yes", "yes", 1.0), (0, "yes, there is a tv.", "yes", 1.0), (0, "Y", "yes", 1.0),
    (1, "No.", "no", 1.0), (1, "There is no dog.", "other", 0.0), (1, "Yes", "yes", 0.0),
])
def test_mme_score(root, k, prediction, parsed, score):
  items, _ = _load("mme", _written(root, "mme"))
  assert _score("mme", items[k], prediction) == {"score": score, "parsed": parsed}


def test_mme_aggregate(root):
  items, _ = _load("mme", _written(root, "mme"))
  preds = ["Yes", "No", "Yes", "Yes", "Yes", "No"]        # existence 2/2, count 1/2, code_reasoning 2/2
  scored = [(it, _score("mme", it, p)) for it, p in zip(items, preds)]
  # interleave the order: grouping is by question_id, not by file order
  scored = [scored[i] for i in (0, 2, 4, 1, 3, 5)]
  agg = BENCH["mme"].aggregate(scored)
  assert agg["score/existence"] == 200.0
  assert (agg["acc/count"], agg["acc_plus/count"], agg["score/count"]) == (50.0, 0.0, 50.0)
  assert agg["perception"] == 250.0 and agg["cognition"] == 200.0
  assert agg["perception_100"] == 12.5
  assert agg["accuracy"] == pytest.approx(500 / 6)


def test_mme_bad_answer(root):
  rows = fx.MME_ROWS + [dict(fx.MME_ROWS[0], answer="Maybe")]
  items, stats = _load("mme", _written(root, "mme", rows=rows))
  assert len(items) == 6 and stats.skipped == {"answer not yes/no": 1}


# ------------------------------------------------------------------ MMBench

def test_mmbench_loader_prompt_groups(root):
  items, _ = _load("mmbench", _written(root, "mmbench"))
  assert [it.id for it in items] == ["0", "1000000", "2000000", "5", "6", "7"]
  assert [len(it.options) for it in items] == [4, 4, 4, 2, 2, 3]
  assert [it.answer for it in items] == ["A", "D", "C", "B", "A", "A"]
  assert items[0].meta["hint"] is None and items[3].meta["hint"] == "The image shows one shape."
  assert items[0].meta["l2_category"] == "fine-grained_perception"
  assert [it.meta["index_group"] for it in items] == [0, 0, 0, 5, 6, 7]
  assert sorted(map(sorted, general.circular_groups(items))) == [[0, 1, 2], [3, 4], [5]]
  b = BENCH["mmbench"]
  assert b.prompt(items[3], b.suffix) == (
      "The image shows one shape.\nWhich shape is shown? Options:\nA. circle\nB. square\n"
      "Answer with the option's letter from the given choices directly.")
  assert b.prompt(items[5], b.suffix) == (
      "How many objects are there? Options:\nA. 1\nB. 2\nC. 3\n"
      "Answer with the option's letter from the given choices directly.")


@pytest.mark.parametrize("k,prediction,parser,letter,score", [
    (0, "A", "paper", "A", 1.0),
    (1, "The answer is (D).", "paper", "D", 1.0),
    (1, "blue", "paper", "D", 1.0),                  # tier 2: option text
    (1, "blue", "cambrian", "B", 0.0),               # Cambrian: first character
    (3, "There is a square.", "paper", "B", 1.0),    # tier 3: option text "square" inside the output
    (3, "There is a square.", "lmms", None, 0.0),    # lmms rule: "T" is not one of the item's letters
])
def test_mmbench_score(root, k, prediction, parser, letter, score):
  items, _ = _load("mmbench", _written(root, "mmbench"))
  assert _score("mmbench", items[k], prediction, parser) == {"score": score, "parsed": letter}


def test_mmbench_aggregate(root):
  items, _ = _load("mmbench", _written(root, "mmbench"))
  preds = ["A", "D", "C", "B", "B", "A"]            # group 2's second copy wrong
  agg = BENCH["mmbench"].aggregate([(it, _score("mmbench", it, p)) for it, p in zip(items, preds)])
  assert agg["accuracy"] == pytest.approx(500 / 6)
  assert agg["circular_accuracy"] == pytest.approx(200 / 3)
  assert agg["groups"] == 3
  assert (agg["circular_accuracy/color_recognition"], agg["circular_accuracy/shape"],
          agg["circular_accuracy/count"]) == (100.0, 0.0, 100.0)


def test_mmbench_lmms_layout_index_grouping(root):
  """lmms-lab/MMBench: en/ and cn/ configs, string index, L2-category; copies whose images were
  re-encoded (different bytes) are still grouped through index % 1e6."""
  import pyarrow as pa
  schema = pa.schema([f if f.name != "l2-category" else pa.field("L2-category", pa.string())
                      for f in fx.MMBENCH_SCHEMA]).set(0, pa.field("index", pa.string()))
  rows = []
  for i, r in enumerate(fx.MMBENCH_ROWS[:3]):
    r = dict(r, index=str(r["index"]), image=fx.img((0, 0, 250 - i)))
    r["L2-category"] = r.pop("l2-category")
    rows.append(r)
  folder = root / "mmbench"
  fx._write(folder / "en" / "dev-00000-of-00001.parquet", rows, schema)
  fx._write(folder / "cn" / "dev-00000-of-00001.parquet", [dict(rows[0], index="99", question="天空")], schema)
  items, _ = _load("mmbench", folder)
  assert [it.id for it in items] == ["0", "1000000", "2000000"]           # cn not mixed in
  assert len({it.meta["content_key"] for it in items}) == 3                # images differ ...
  assert general.circular_groups(items) == [[0, 1, 2]]                     # ... the index still groups them
  assert items[0].meta["l2_category"] == "fine-grained_perception"


def test_mmbench_bad_options(root):
  gap = fx._mmb(8, "q?", "nan", ["x", "y", "nan", "z"], "A", fx.RED)
  wrong = fx._mmb(9, "q?", "nan", ["x", "y"], "C", fx.RED)
  items, stats = _load("mmbench", _written(root, "mmbench", rows=fx.MMBENCH_ROWS + [gap, wrong]))
  assert len(items) == 6 and stats.skipped == {"malformed options": 1, "answer not among options": 1}


# ------------------------------------------------------------------ SEED

def test_seed_loader_prompt(root):
  folder = _written(root, "seed")
  items, stats = _load("seed", folder, on_error="raise")   # the video row is left out in read, never raised
  assert [it.id for it in items] == ["101669", "101670", "101671"] and stats.total_skipped == 0
  assert items[1].options == ("green", "red", "blue", "white") and items[1].answer == "B"
  assert len(items[0].images) == 1 and items[0].images[0].startswith(PNG)
  b = BENCH["seed"]
  assert b.prompt(items[0], b.suffix) == (
      "How many towels are in the image? Options:\nA. One\nB. Two\nC. Three\nD. Four\n"
      "Answer with the option's letter from the given choices directly.")
  assert general._seed_is_image({"image": [1, 2]}) is False and general._seed_is_image({"image": [1]}) is True


def test_seed_score_aggregate(root):
  items, _ = _load("seed", _written(root, "seed"))
  assert _score("seed", items[0], "A. One") == {"score": 1.0, "parsed": "A"}
  assert _score("seed", items[1], "red") == {"score": 1.0, "parsed": "B"}
  assert _score("seed", items[2], "The car is parked.") == {"score": 0.0, "parsed": None}
  assert _score("seed", items[2], "The car is parked.", "lmms") == {"score": 0.0, "parsed": None}  # "T" not valid
  scored = [(it, _score("seed", it, p)) for it, p in zip(items, ["A", "B", "D"])]
  agg = BENCH["seed"].aggregate(scored)
  assert agg["accuracy"] == pytest.approx(200 / 3)
  assert (agg["accuracy/5"], agg["accuracy/1"], agg["accuracy/4"]) == (100.0, 100.0, 0.0)


def test_seed_bad_rows(root):
  rows = fx.SEED_ROWS + [fx._seed("x1", "q?", ["a", "b", "c", "d"], "E", 1, [fx.img()]),
                         fx._seed("x2", "q?", ["a", "b", "c", "d"], "A", 1, [])]
  items, stats = _load("seed", _written(root, "seed", rows=rows))
  assert len(items) == 3 and stats.skipped == {"answer not among options": 1, "missing image": 1}


# ------------------------------------------------------------------ ScienceQA-IMG

SQA_PROMPT_1 = ("Ducks live near water. The feet of the duck are adapted for swimming. Which animal's feet are also "
                "adapted for swimming?\nA. duck\nB. cat\n"
                "Please answer directly with only the letter of the correct option and nothing else.")


def test_scienceqa_loader_prompt(root):
  items, _ = _load("scienceqa", _written(root, "scienceqa"))
  assert [it.id for it in items] == ["test-00000-of-00001.parquet:0", "test-00000-of-00001.parquet:1",
                                     "test-00000-of-00001.parquet:2"]
  assert [it.answer for it in items] == ["A", "A", "A"] and items[2].options == ("40°C", "40°F", "40 K")
  b = BENCH["scienceqa"]
  assert b.prompt(items[1], b.suffix) == SQA_PROMPT_1
  assert b.prompt(items[0], b.suffix) == (
      "Which of these states is farthest north?\nA. West Virginia\nB. Louisiana\nC. Arizona\nD. Oklahoma\n"
      "Please answer directly with only the letter of the correct option and nothing else.")


def test_scienceqa_derek_layout_and_configs(root):
  text_only = fx._sqa("Which word is a noun?", ["run", "dog"], 1, image=None)
  folder = root / "scienceqa"
  fx.write_scienceqa(folder, rows=fx.SQA_ROWS[:2] + [text_only], layout="derek")
  items, stats = _load("scienceqa", folder, on_error="raise")     # text-only rows are not errors
  assert len(items) == 2 and stats.total_skipped == 0
  assert items[1].id == "test-00000-of-00001-f0e719df791966ff.parquet:1"
  # lmms-lab/ScienceQA with both configs: only ScienceQA-IMG is read
  folder2 = root / "both"
  fx.write_scienceqa(folder2)
  fx._write(folder2 / "ScienceQA-FULL" / "test-00000-of-00001.parquet", fx.SQA_ROWS + [text_only], fx.SQA_SCHEMA)
  assert len(_load("scienceqa", folder2)[0]) == 3


def test_scienceqa_score_aggregate(root):
  items, _ = _load("scienceqa", _written(root, "scienceqa"))
  assert _score("scienceqa", items[1], "A")["score"] == 1.0
  assert _score("scienceqa", items[1], "duck.") == {"score": 1.0, "parsed": "A"}
  assert _score("scienceqa", items[1], "B. cat") == {"score": 0.0, "parsed": "B"}
  assert _score("scienceqa", items[2], "40°F") == {"score": 0.0, "parsed": "B"}
  scored = [(it, _score("scienceqa", it, p)) for it, p in zip(items, ["A", "B", "A"])]
  agg = BENCH["scienceqa"].aggregate(scored)
  assert agg["accuracy"] == pytest.approx(200 / 3)
  assert (agg["accuracy/social science"], agg["accuracy/natural science"]) == (100.0, 50.0)


def test_scienceqa_bad_rows(root):
  rows = fx.SQA_ROWS + [fx._sqa("q?", ["a", "b"], 5, image=fx.img()), fx._sqa("q?", ["a", "b"], 0, image=fx.NO_IMAGE)]
  items, stats = _load("scienceqa", _written(root, "scienceqa", rows=rows))
  assert len(items) == 3 and stats.skipped == {"answer not among options": 1, "missing image": 1}


# ------------------------------------------------------------------ MMMU

def test_mmmu_loader_prompt(root):
  items, _ = _load("mmmu", _written(root, "mmmu"))
  assert [it.id for it in items] == ["validation_Art_Theory_1", "validation_Accounting_2", "validation_Math_3",
                                     "validation_Physics_4", "validation_History_5"]
  assert items[1].options == ("It's a balance sheet", "It is an income statement", "It is a cash flow statement")
  assert [it.answer for it in items] == ["B", "A", "5", ("3.5", "3.50"), "Paris"]
  assert [len(it.images) for it in items] == [1, 2, 1, 1, 1]
  assert [it.meta["subject"] for it in items] == ["Art_Theory", "Accounting", "Math", "Physics", "History"]
  b = BENCH["mmmu"]
  assert b.prompt(items[0], b.suffix) == (
      "Which artist painted this work? Options:\nA. Claude Monet\nB. Vincent van Gogh\nC. Pablo Picasso\n"
      "D. Henri Matisse\nAnswer with the option's letter from the given choices directly.")
  assert b.prompt(items[1], b.suffix).startswith("Which statement about  and  is right? Options:\nA. It's a balance")
  assert b.prompt(items[2], b.suffix) == "What is the value of x?\nAnswer the question using a single word or phrase."
  assert b.prompt(items[2], "Explain your answer.") == "What is the value of x?\nExplain your answer."
  assert b.prompt(items[0], "").endswith("D. Henri Matisse")


@pytest.mark.parametrize("response,expected", [
    ("5", [5.0]),
    ("The answer is 5.", [5.0]),                         # shortest tail after "is " / "answer "
    ("x = 3.50", [3.5]),                                 # "=" in the last piece
    ("Paris", ["paris"]),
    ("a", [" a", "a "]),                                 # 1-character text padded
    ("1,000 apples", ["1,000 apples", 1000.0, 0.0]),     # MMMU's plain pattern also finds "000"
    ("first line\nso it is 7", [7.0]),
])
def test_mmmu_parse_open(response, expected):
  assert knowledge.mmmu_parse_open(response) == expected


@pytest.mark.parametrize("gold,response,correct", [
    ("5", "5", True), ("5", "15", False), ("5", "5.001", True),          # floats rounded to 2 decimals
    (["3.5", "3.50"], "The period is 3.5 s", True),
    ("Paris", "It was signed in Paris, France", True), ("Paris", "London", False),
    ("paris", "comparison", True),                                        # official substring quirk
    ("A", "a", True), ("A", "abc", False),
])
def test_mmmu_eval_open(gold, response, correct):
  assert knowledge.mmmu_eval_open(gold, knowledge.mmmu_parse_open(response)) is correct


def test_mmmu_score_aggregate(root):
  items, _ = _load("mmmu", _written(root, "mmmu"))
  assert _score("mmmu", items[0], "B") == {"score": 1.0, "parsed": "B"}
  assert _score("mmmu", items[0], "Vincent van Gogh") == {"score": 1.0, "parsed": "B"}
  assert _score("mmmu", items[0], "I think it is (C)") == {"score": 0.0, "parsed": "C"}
  rec = _score("mmmu", items[2], "The answer is 5.2")
  assert rec == {"score": 0.0, "parsed": [5.2], "cambrian": 1.0}     # Cambrian: within 5 % of the prediction
  assert _score("mmmu", items[3], "3.50")["score"] == 1.0
  assert _score("mmmu", items[4], "paris")["cambrian"] == 1.0
  preds = ["B", "C", "5", "4", "The treaty was signed in Paris."]
  agg = BENCH["mmmu"].aggregate([(it, _score("mmmu", it, p)) for it, p in zip(items, preds)])
  assert agg["accuracy"] == 60.0
  assert (agg["accuracy/multiple-choice"], agg["accuracy/open"]) == (50.0, pytest.approx(200 / 3))
  assert (agg["accuracy/Art_Theory"], agg["accuracy/Accounting"], agg["accuracy/Physics"]) == (100.0, 0.0, 0.0)


def test_mmmu_bad_rows(root):
  rows = fx.MMMU_ROWS + [
      fx._mmmu("validation_Art_6", "q?", "['a', 'b'", "A", "multiple-choice"),
      fx._mmmu("validation_Art_7", "q?", "['a', 'b']", "C", "multiple-choice"),
      fx._mmmu("validation_Art_8", "q?", "['a', 'b']", "A", "multiple-choice", images=0),
  ]
  items, stats = _load("mmmu", _written(root, "mmmu", rows=rows))
  assert len(items) == 5
  assert stats.skipped == {"malformed options": 1, "answer not among options": 1, "missing image": 1}


# ------------------------------------------------------------------ AI2D

def test_ai2d(root):
  items, _ = _load("ai2d", _written(root, "ai2d"))
  assert [it.answer for it in items] == ["B", "D", "A"]
  b = BENCH["ai2d"]
  assert b.prompt(items[1], b.suffix) == (
      "What is the stage shown by label E?\nA. egg\nB. larva\nC. pupa\nD. adult\n"
      "Answer with the option's letter from the given choices directly.")
  # options "c", "D", "b", "a": a bare "D" is read as the LETTER D (tier 1 before option text), gold is B
  assert _score("ai2d", items[0], "D") == {"score": 0.0, "parsed": "D"}
  assert _score("ai2d", items[0], "B") == {"score": 1.0, "parsed": "B"}
  assert _score("ai2d", items[1], "adult") == {"score": 1.0, "parsed": "D"}
  scored = [(it, _score("ai2d", it, p)) for it, p in zip(items, ["B", "C", "A"])]
  assert BENCH["ai2d"].aggregate(scored) == {"accuracy": pytest.approx(200 / 3)}
  rows = fx.AI2D_ROWS + [dict(fx.AI2D_ROWS[0], answer="4"), dict(fx.AI2D_ROWS[0], answer="b"),
                         dict(fx.AI2D_ROWS[0], image=fx.NO_IMAGE)]
  items, stats = _load("ai2d", _written(root, "ai2d", rows=rows))
  assert len(items) == 3 and stats.skipped == {"answer not among options": 2, "missing image": 1}


# ------------------------------------------------------------------ MathVista

def test_mathvista_loader_prompt(root):
  items, _ = _load("mathvista", _written(root, "mathvista"))
  assert [it.id for it in items] == ["1", "2", "3", "4", "5"]
  assert items[0].answer == "B" and items[0].options == ("3/11", "8/11", "6/11", "3/5")
  assert [it.meta["precision"] for it in items] == [None, None, 1, 2, None]
  b = BENCH["mathvista"]
  assert b.prompt(items[0], b.suffix).endswith(
      "(C) 6/11\n(D) 3/5\nFirst show your reasoning process and then give the final answer.")
  assert b.prompt(items[1], b.suffix) == (
      "Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at "
      "the end.\nQuestion: Which number is missing?\nAnswer the question using a single word or phrase.")
  assert b.prompt(items[1], "Explain.").endswith("Which number is missing?\nExplain.")
  assert b.prompt(items[0], "Explain.").endswith("(D) 3/5\nExplain.")


@pytest.mark.parametrize("k,prediction,parsed,score", [
    (0, "8/11", "8/11", 1.0),
    (0, "The blue part is 8 of 11 cells, so the answer is B.", "8/11", 1.0),
    (0, "Comparing (b) with the rest", "8/11", 1.0),      # MathVista "(x)" rule after the parser
    (0, "I pick (C)", "6/11", 0.0),
    (0, "no idea", None, 0.0),                            # no edit-distance guess
    (1, "14", "14", 1.0), (1, "The missing number is 14.", "14", 1.0), (1, "14.0", "14", 1.0),
    (1, "15", "15", 0.0), (1, "fourteen", None, 0.0),
    (2, "0.6", "0.6", 1.0), (2, "0.64", "0.6", 1.0), (2, "1", "1.0", 0.0),
    (3, "$1.45", "1.45", 1.0), (3, "1.449", "1.45", 1.0), (3, "1,001.2", "1001.2", 0.0),
    (4, "[2007, 2008]", "[2007,2008]", 1.0), (4, "It peaks between [2007,2008].", "[2007,2008]", 1.0),
    (4, "2007 and 2008", "2007and2008", 0.0),
])
def test_mathvista_score(root, k, prediction, parsed, score):
  items, _ = _load("mathvista", _written(root, "mathvista"))
  assert _score("mathvista", items[k], prediction) == {"score": score, "parsed": parsed}


def test_mathvista_aggregate_and_rows(root):
  folder = _written(root, "mathvista")
  items, _ = _load("mathvista", folder)
  preds = ["B", "14", "0.7", "1.45", "[2007, 2008]"]
  agg = BENCH["mathvista"].aggregate([(it, _score("mathvista", it, p)) for it, p in zip(items, preds)])
  assert agg == {"accuracy": 80.0, "accuracy/multi_choice": 100.0, "accuracy/free_form": 75.0}
  on_disk = dict(fx.MATHVISTA_ROWS[1], pid="7", decoded_image=fx.NO_IMAGE, image="images/7.jpg")
  rows = fx.MATHVISTA_ROWS + [dict(fx.MATHVISTA_ROWS[1], pid="6", decoded_image=fx.NO_IMAGE), on_disk,
                              dict(fx.MATHVISTA_ROWS[0], pid="8", answer="9/11")]
  fx.write_mathvista(folder, rows=rows)
  (folder / "images").mkdir()
  (folder / "images" / "7.jpg").write_bytes(fx.png())
  items, stats = _load("mathvista", folder)
  assert [it.id for it in items] == ["1", "2", "3", "4", "5", "7"]
  assert items[-1].images[0] == str(folder / "images" / "7.jpg")
  assert stats.skipped == {"missing image": 1, "answer not among options": 1}


# ------------------------------------------------------------------ layouts and malformed rows (all eight)

OTHER = {"gqa": "mme", "mme": "gqa", "mmbench": "seed", "seed": "mme", "scienceqa": "ai2d", "mmmu": "mathvista",
         "ai2d": "mme", "mathvista": "ai2d"}


@pytest.mark.parametrize("name", list(OTHER))
def test_wrong_layout(root, name):
  empty = root / "empty"
  empty.mkdir()
  with pytest.raises(ValueError, match=re.escape(str(empty))):
    _load(name, empty)
  other = _written(root, OTHER[name])
  with pytest.raises(ValueError, match=re.escape(str(other))):
    _load(name, other)


def _malformed(name):
  """The default rows plus one whose question is null (appended last)."""
  rows = getattr(fx, {"scienceqa": "SQA_ROWS", "mathvista": "MATHVISTA_ROWS"}.get(name, f"{name.upper()}_ROWS"))
  bad = dict(rows[0], question=None, query=None) if name == "mathvista" else dict(rows[0], question=None)
  if name == "mmbench":
    bad["index"] = 99
  return rows + [bad], len(rows)


@pytest.mark.parametrize("name", list(OTHER))
def test_malformed_row(root, name):
  rows, n = _malformed(name)
  folder = _written(root, name, rows=rows)
  items, stats = _load(name, folder)
  expected = n - (1 if name == "seed" else 0)           # SEED's video row is not an item
  assert len(items) == expected and stats.skipped == {"missing field": 1}
  with pytest.raises(ValueError, match=rf"{name}: .*\.parquet:row {n}: missing field"):
    _load(name, folder, on_error="raise")


@pytest.mark.parametrize("name", ["gqa", "mme", "mmbench", "seed", "scienceqa", "mmmu", "ai2d", "mathvista"])
def test_missing_image(root, name):
  key = {"mmmu": "image_1", "mathvista": "decoded_image", "seed": "image"}.get(name, "image")
  value = [fx.NO_IMAGE] if name == "seed" else fx.NO_IMAGE
  if name == "gqa":
    folder = _written(root, "gqa", images=[fx.GQA_IMAGES[0], {"id": "n235859", "image": fx.NO_IMAGE}])
    expected_skips = 2
  else:
    rows, n = _malformed(name)
    rows = rows[:-1] + [dict(rows[0], **{key: value})]
    if name == "mmbench":
      rows[-1]["index"] = 99
    if name == "mmmu":
      rows[-1]["id"] = "validation_Art_99"
    if name == "mathvista":
      rows[-1]["pid"] = "99"
    folder = _written(root, name, rows=rows)
    expected_skips = 1
  _, stats = _load(name, folder)
  assert stats.skipped == {"missing image": expected_skips}
