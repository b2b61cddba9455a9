"""Vision-Centric VQA benchmarks (RealWorldQA, BLINK, CV-Bench COCO / ADE / Omni3D) and MMVP: loaders on
format-exact fixtures, exact prompts, hand-checked scores and aggregates, layout errors and bad rows."""

import json
import shutil

import pytest

import fixtures_vqa_vision as fx
from visprior_jax.eval.vqa import base, vision

LETTER = "Answer with the option's letter from the given choices directly."
BLINK_SUFFIX = "Please answer directly with only the letter of the correct option and nothing else."


def load(bench, folder, **kw):
  stats = base.ReadStats()
  items = base.load_items(bench, folder, stats=stats, **kw)
  return items, stats


def by_id(items):
  return {i.id: i for i in items}


def check(bench, item, prediction, parser, score, parsed="skip"):
  rec = bench.score(item, prediction, parser)
  json.dumps(rec)
  assert rec["score"] == score, (prediction, parser, rec)
  if parsed != "skip":
    assert rec["parsed"] == parsed, (prediction, parser, rec)
  return rec


def fake(item, score):
  return item, {"score": float(score)}


@pytest.fixture
def rwqa(tmp_path):
  fx.write_realworldqa(tmp_path / "realworldqa")
  return tmp_path / "realworldqa"


@pytest.fixture
def blink(tmp_path):
  fx.write_blink(tmp_path / "blink")
  return tmp_path / "blink"


@pytest.fixture
def cvb(tmp_path):
  for name in ("coco", "ade", "omni3d"):   # three writers, one shared folder: writing twice is harmless
    fx.WRITERS[name](tmp_path / "cv_bench")
  return tmp_path / "cv_bench"


@pytest.fixture
def mmvp(tmp_path):
  fx.write_mmvp(tmp_path / "mmvp")
  return tmp_path / "mmvp"


def test_benchmark_table():
  names = {b.name: b for b in vision.BENCHMARKS}
  assert list(names) == ["realworldqa", "blink", "coco", "ade", "omni3d", "mmvp"]
  assert set(fx.WRITERS) == set(names)
  for name in ("realworldqa", "blink", "coco", "ade", "omni3d"):
    assert names[name].category == "Vision-Centric" and names[name].paper and names[name].primary == "accuracy"
  assert names["mmvp"].category is None and not names["mmvp"].paper and names["mmvp"].primary == "pair_accuracy"
  assert {names[n].folder for n in ("coco", "ade", "omni3d")} == {"cv_bench"}
  assert (names["realworldqa"].suffix, names["realworldqa"].max_new_tokens) == ("", 512)
  assert (names["blink"].suffix, names["blink"].max_new_tokens, names["blink"].max_images) == (BLINK_SUFFIX, 32, 4)
  for n in ("coco", "ade", "omni3d", "mmvp"):
    assert (names[n].suffix, names[n].max_new_tokens) == (LETTER, 512)


def test_unknown_parser(rwqa):
  items, _ = load(vision.realworldqa, rwqa)
  for bench, item in ((vision.realworldqa, items[0]), (vision.realworldqa, items[2])):
    with pytest.raises(ValueError, match="unknown parser"):
      bench.score(item, "A", "gpt")


# ---------------------------------------------------------------------------------------------
# RealWorldQA


def test_realworldqa_options_regex():
  assert vision.realworldqa_options("Q?\n\nA. Left\nB. Straight\nC. Right\n\nPlease answer.") == (
      "Left", "Straight", "Right")
  assert vision.realworldqa_options("Q?\n(A) one\n(B) two\nD. four") == ("one", "two")   # stops at the gap
  assert vision.realworldqa_options("Q?\nA) x \nB) y\nC) z") == ("x", "y", "z")
  assert vision.realworldqa_options("Q?\nA. only one") == ()
  assert vision.realworldqa_options("Is it A. or B.?") == ()                               # not at a line start
  assert vision.realworldqa_options("Q\nA. first\nA. again\nB. second") == ("first", "second")


def test_realworldqa_loader(rwqa):
  items, stats = load(vision.realworldqa, rwqa)
  assert stats.read == 6 and stats.total_skipped == 0
  assert [i.id for i in items] == ["0", "1", "2", "3", "4", "5"]
  assert [i.meta["kind"] for i in items] == ["mc", "mc", "open", "open", "mc", "open"]
  assert items[0].options == ("Left", "Straight", "Right") and items[0].answer == "C"
  assert items[1].options == ("car", "race car", "truck", "bus") and items[1].answer == "B"
  assert items[2].options == () and items[2].answer == "2"
  assert items[5].options == () and items[5].answer == "B"      # a letter gold without listed options: open
  assert all(len(i.images) == 1 and isinstance(i.images[0], bytes) for i in items)
  assert items[3].where.endswith("test-00001-of-00002.parquet:row 0")


def test_realworldqa_prompt(rwqa):
  items, _ = load(vision.realworldqa, rwqa)
  q = ("In which direction is the front wheel of the car on the right side facing?\n\nA. Left\nB. Straight\n"
       "C. Right\n\nPlease answer directly with only the letter of the correct option and nothing else.")
  assert vision.realworldqa.prompt(items[0], vision.realworldqa.suffix) == q
  assert vision.realworldqa.prompt(items[2], "") == (
      "How many pedestrians are crossing the road?\nPlease answer directly with a single word or number.")
  assert vision.realworldqa.prompt(items[0], "Explain your reasoning.") == q + "\nExplain your reasoning."


def test_realworldqa_score(rwqa):
  b = vision.realworldqa
  it = by_id(load(b, rwqa)[0])
  mc, cars, two, green, letter_open = it["0"], it["1"], it["2"], it["3"], it["5"]
  # Multiple choice, paper parser: letter tiers, exact option text, longest substring.
  check(b, mc, "C", "paper", 1.0, "C")
  check(b, mc, "The answer is C.", "paper", 1.0, "C")
  check(b, mc, "Right", "paper", 1.0, "C")
  check(b, mc, "right.", "paper", 1.0, "C")
  check(b, mc, "B", "paper", 0.0, "B")
  check(b, mc, "I cannot tell", "paper", 0.0, None)
  check(b, cars, "It is a race car", "paper", 1.0, "B")
  check(b, cars, "car", "paper", 0.0, "A")
  # Cambrian: first token after the answer-phrase cut, for every item.
  check(b, mc, "C.", "cambrian", 1.0, "C")
  check(b, mc, "(C)", "cambrian", 0.0, None)
  check(b, mc, "The answer is: C", "cambrian", 0.0, None)    # "answer is" cut first leaves ": c"
  check(b, mc, "The answer is C", "cambrian", 1.0, "C")
  # lmms-style letter at the start, restricted to the item's letters.
  check(b, mc, "C) Right", "lmms", 1.0, "C")
  check(b, mc, "Right", "lmms", 0.0, None)
  # Open items: Cambrian's rule for paper / cambrian, lmms-eval's whole-string rule for lmms.
  check(b, two, "2", "paper", 1.0, "2")
  check(b, two, "2.", "paper", 1.0, "2")
  check(b, two, "The answer is 2 pedestrians.", "paper", 1.0, "2")
  check(b, two, "Two", "paper", 0.0, "two")
  check(b, two, "", "paper", 0.0, None)
  check(b, two, "The answer is 2 pedestrians.", "cambrian", 1.0, "2")
  check(b, two, "2.", "lmms", 1.0, "2")
  check(b, two, " 2 ", "lmms", 1.0, "2")
  check(b, two, "The answer is 2", "lmms", 0.0)
  check(b, green, "Green.", "paper", 1.0, "green")
  check(b, green, "Green light", "paper", 1.0, "green")
  check(b, green, "Green light", "lmms", 0.0)
  check(b, letter_open, "B", "paper", 1.0, "b")


def test_realworldqa_aggregate(rwqa):
  items = load(vision.realworldqa, rwqa)[0]
  scored = [fake(i, s) for i, s in zip(items, [1, 0, 1, 1, 0, 0])]
  out = vision.realworldqa.aggregate(scored)
  assert out["accuracy"] == pytest.approx(50.0) and out["primary"] == out["accuracy"]
  assert out["accuracy_mc"] == pytest.approx(100 / 3)      # items 0, 1, 4
  assert out["accuracy_open"] == pytest.approx(200 / 3)    # items 2, 3, 5
  assert vision.realworldqa.aggregate([])["accuracy"] == 0.0


def test_realworldqa_layout_errors(tmp_path, blink):
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match=str(tmp_path / "empty")):
    load(vision.realworldqa, tmp_path / "empty")
  with pytest.raises(ValueError, match="missing column"):   # BLINK's Counting/test-*.parquet has no "image"
    load(vision.realworldqa, blink)


def test_realworldqa_bad_rows(tmp_path):
  rows = fx.realworldqa_rows()
  rows[1]["answer"] = None
  rows[4]["image"] = None
  fx.write_realworldqa(tmp_path, rows)
  items, stats = load(vision.realworldqa, tmp_path)
  assert [i.id for i in items] == ["0", "2", "3", "5"]
  assert stats.skipped == {"missing field": 1, "missing image": 1}
  with pytest.raises(ValueError, match=r"test-00000-of-00002\.parquet:row 1: missing field"):
    load(vision.realworldqa, tmp_path, on_error="raise")


# ---------------------------------------------------------------------------------------------
# BLINK


def test_blink_loader(blink):
  items, stats = load(vision.blink, blink)
  assert stats.read == 7 and stats.total_skipped == 0      # Art_Style and the test split are not read
  assert [i.id for i in items] == ["val_Counting_1", "val_Counting_2", "val_IQ_Test_1", "val_Object_Localization_1",
                                   "val_Relative_Depth_1", "val_Relative_Reflectance_1", "val_Spatial_Relation_1"]
  assert [i.meta["task"] for i in items][2:] == list(vision.BLINK_TASKS)[1:]
  it = by_id(items)
  assert it["val_Counting_1"].options == ("0", "3", "2", "1") and it["val_Counting_1"].answer == "B"
  assert it["val_Relative_Reflectance_1"].answer == "C" and it["val_IQ_Test_1"].answer == "D"
  assert all(len(i.images) == 1 for i in items)


def test_blink_prompt(blink):
  item = load(vision.blink, blink)[0][0]
  assert vision.blink.prompt(item, vision.blink.suffix) == (
      "How many blue floats are there?\nSelect from the following choices.\n(A) 0\n(B) 3\n(C) 2\n(D) 1\n"
      "Please answer directly with only the letter of the correct option and nothing else.")


def test_blink_all_images(tmp_path):
  rows = fx.blink_rows()
  rows["IQ_Test"][0]["image_2"] = fx.hf_image("black")
  rows["IQ_Test"][0]["image_3"] = fx.hf_image("cyan")
  fx.write_blink(tmp_path, rows)
  item = by_id(load(vision.blink, tmp_path)[0])["val_IQ_Test_1"]
  assert item.images == (fx.image_bytes("blue"), fx.image_bytes("black"), fx.image_bytes("cyan"))


def test_blink_score(blink):
  b = vision.blink
  it = by_id(load(b, blink)[0])
  count, depth = it["val_Counting_1"], it["val_Relative_Depth_1"]
  check(b, count, "B", "paper", 1.0, "B")
  check(b, count, "(B)", "paper", 1.0, "B")
  check(b, count, "3", "paper", 1.0, "B")
  check(b, count, "There are 3 floats.", "paper", 1.0, "B")
  check(b, count, "C", "paper", 0.0, "C")
  check(b, count, "There are 3", "lmms", 0.0, None)         # lmms: start-of-output letter only ("T" is invalid)
  check(b, count, "B", "lmms", 1.0, "B")
  check(b, count, "B. 3", "cambrian", 1.0, "B")
  check(b, count, "(b) 3", "cambrian", 1.0, "B")
  check(b, count, "b", "cambrian", 1.0, "B")
  check(b, count, "Answer: B", "cambrian", 0.0, None)
  check(b, depth, "point B is closer", "paper", 1.0, "B")
  check(b, depth, "point B is closer", "cambrian", 0.0, None)
  assert vision.cambrian_blink_letter("(C) two") == "C" and vision.cambrian_blink_letter("") is None


def test_blink_aggregate(blink):
  items = load(vision.blink, blink)[0]
  out = vision.blink.aggregate([fake(i, s) for i, s in zip(items, [1, 0, 1, 1, 0, 0, 1])])
  assert out["accuracy"] == pytest.approx(400 / 7) and out["primary"] == out["accuracy"]
  assert out["accuracy_Counting"] == 50.0 and out["accuracy_IQ_Test"] == 100.0
  assert out["accuracy_Object_Localization"] == 100.0 and out["accuracy_Relative_Depth"] == 0.0
  assert out["accuracy_Relative_Reflectance"] == 0.0 and out["accuracy_Spatial_Relation"] == 100.0


def test_blink_layout_errors(tmp_path, blink, rwqa):
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match=str(tmp_path / "empty") + ".*none of the BLINK tasks"):
    load(vision.blink, tmp_path / "empty")
  with pytest.raises(ValueError, match="none of the BLINK tasks"):
    load(vision.blink, rwqa)
  shutil.rmtree(blink / "IQ_Test")
  with pytest.raises(ValueError, match=r"\['IQ_Test'\] missing"):
    load(vision.blink, blink)


def test_blink_bad_rows(tmp_path):
  rows = fx.blink_rows()
  rows["Spatial_Relation"][0]["answer"] = "(C)"       # two choices
  rows["Counting"][1]["image_1"] = None
  fx.write_blink(tmp_path, rows)
  items, stats = load(vision.blink, tmp_path)
  assert len(items) == 5 and stats.skipped == {"answer not among options": 1, "missing image": 1}
  with pytest.raises(ValueError, match=r"Counting/val-00000-of-00001\.parquet:row 1: missing image"):
    load(vision.blink, tmp_path, on_error="raise")


# ---------------------------------------------------------------------------------------------
# CV-Bench


def test_cv_bench_loader(cvb):
  coco, stats = load(vision.coco, cvb)
  assert [i.id for i in coco] == ["2", "3", "4"] and stats.total_skipped == 0
  assert [i.answer for i in coco] == ["D", "B", "A"]
  assert coco[0].options == ("0", "1", "2", "3", "4") and coco[0].meta["task"] == "Count"
  assert coco[0].question == "How many cars are in the image?"
  ade = load(vision.ade, cvb)[0]
  assert [(i.id, i.answer, i.meta["source"]) for i in ade] == [("0", "C", "ADE20K"), ("1", "A", "ADE20K")]
  omni = load(vision.omni3d, cvb)[0]
  assert [(i.id, i.options, i.answer) for i in omni] == [
      ("1438", ("lamp", "chair"), "B"), ("1439", ("table", "shelves"), "A"), ("2038", ("bed", "nightstand"), "B")]
  assert all(isinstance(i.images[0], bytes) for i in coco + ade + omni)


def test_cv_bench_default_layout(tmp_path, cvb):
  fx.write_cv_bench_default(tmp_path / "old")
  for bench in (vision.coco, vision.ade, vision.omni3d):
    old = [(i.id, i.options, i.answer) for i in load(bench, tmp_path / "old")[0]]
    assert old == [(i.id, i.options, i.answer) for i in load(bench, cvb)[0]]
  fx.write_cv_bench_default(cvb)               # both layouts present: only the default config is read
  items, stats = load(vision.coco, cvb)
  assert len(items) == 3 and stats.total_skipped == 0 and all(i.where.startswith(str(cvb / "test.parquet"))
                                                               for i in items)


def test_cv_bench_prompt(cvb):
  item = load(vision.omni3d, cvb)[0][0]
  assert vision.omni3d.prompt(item, vision.omni3d.suffix) == (
      "Which object is closer to the camera taking this photo, the lamp (highlighted by a red box) or the chair "
      "(highlighted by a blue box)? Select from the following choices.\n(A) lamp\n(B) chair\n"
      "Answer with the option's letter from the given choices directly.")


def test_cv_bench_score(cvb):
  cars = by_id(load(vision.coco, cvb)[0])["2"]
  lamp = by_id(load(vision.omni3d, cvb)[0])["1438"]
  b, o = vision.coco, vision.omni3d
  check(b, cars, "3", "paper", 1.0, "D")
  check(b, cars, "(D)", "paper", 1.0, "D")
  check(b, cars, "There are 3 cars.", "paper", 1.0, "D")
  check(b, cars, "There are 3 cars.", "lmms", 0.0, None)   # lmms-eval reads "T": wrong either way
  check(b, cars, "D", "lmms", 1.0, "D")
  check(b, cars, "The answer is (D).", "cambrian", 1.0, "D")
  check(b, cars, "D.", "cambrian", 1.0, "D")
  check(o, lamp, "chair", "paper", 1.0, "B")
  check(o, lamp, "The chair is closer.", "paper", 1.0, "B")
  check(o, lamp, "The lamp is closer than the chair.", "paper", 1.0, "B")   # tier 3: the longest text wins
  check(o, lamp, "chair", "cambrian", 0.0, "C")             # Cambrian keeps the first character
  check(o, lamp, "B:", "cambrian", 1.0, "B")


def test_cv_bench_aggregate_and_overall(cvb):
  coco = load(vision.coco, cvb)[0]
  out = vision.coco.aggregate([fake(i, s) for i, s in zip(coco, [1, 0, 1])])
  assert out["accuracy"] == pytest.approx(200 / 3) and out["primary"] == out["accuracy"]
  assert out["accuracy_Count"] == 100.0 and out["accuracy_Relation"] == 0.0
  assert vision.cv_bench_overall(coco=60.0, ade=70.0, omni3d=50.0) == {
      "cv_bench_2d": 65.0, "cv_bench_3d": 50.0, "cv_bench_overall": 57.5}


def test_cv_bench_layout_errors(tmp_path, rwqa):
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match=str(tmp_path / "empty") + ".*no CV-Bench parquet files"):
    load(vision.coco, tmp_path / "empty")
  with pytest.raises(ValueError, match="missing column"):   # RealWorldQA's data/test-*.parquet
    load(vision.ade, rwqa)
  rows = fx.cv_bench_rows()
  fx.write_parquet(tmp_path / "only2d" / "test_2d.parquet", rows["2D"], fx.CV_BENCH_SCHEMA)
  with pytest.raises(ValueError, match="test_3d.parquet"):
    load(vision.omni3d, tmp_path / "only2d")
  fx.write_cv_bench(tmp_path / "nococo", {"2D": rows["2D"][:2], "3D": rows["3D"]})
  with pytest.raises(ValueError, match="no CV-Bench rows with source 'COCO'"):
    load(vision.coco, tmp_path / "nococo")


def test_cv_bench_bad_rows(tmp_path):
  rows = fx.cv_bench_rows()
  rows["2D"][2]["prompt"] = None
  rows["3D"][0]["image"] = {"bytes": None, "path": None}
  rows["3D"][1]["answer"] = "(C)"
  fx.write_cv_bench(tmp_path, rows)
  items, stats = load(vision.coco, tmp_path)
  assert [i.id for i in items] == ["3", "4"] and stats.skipped == {"missing field": 1}
  items, stats = load(vision.omni3d, tmp_path)
  assert [i.id for i in items] == ["2038"] and stats.skipped == {"missing image": 1, "answer not among options": 1}
  with pytest.raises(ValueError, match=r"test_2d\.parquet:row 2: missing field"):
    load(vision.coco, tmp_path, on_error="raise")


# ---------------------------------------------------------------------------------------------
# MMVP


def test_mmvp_loader(mmvp):
  items, stats = load(vision.mmvp, mmvp)
  assert stats.read == 6 and stats.total_skipped == 0
  assert [i.id for i in items] == ["1", "2", "3", "4", "99", "100"]
  assert [i.answer for i in items] == ["A", "B", "B", "A", "A", "B"]              # as in Questions.csv
  assert [i.meta["corrected_answer"] for i in items] == ["A", "B", "B", "A", "B", "A"]
  assert [i.meta["pair"] for i in items] == [0, 0, 1, 1, 49, 49]
  assert items[2].options == ("Left", "Right")
  assert items[0].images == (str(mmvp / "MMVP Images" / "1.jpg"),)
  assert items[0].where == f"{mmvp / 'Questions.csv'}:2"


def test_mmvp_other_layouts(tmp_path):
  fx.write_mmvp(tmp_path / "typo", header=["lndex", "Question", "Options", "Correct Answer"])
  assert len(load(vision.mmvp, tmp_path / "typo")[0]) == 6
  fx.write_mmvp_parquet(tmp_path / "lmms")
  items = load(vision.mmvp, tmp_path / "lmms")[0]
  assert [i.answer for i in items] == ["A", "B", "B", "A", "B", "A"]              # corrected at source
  assert [i.meta["corrected_answer"] for i in items] == [i.answer for i in items]
  assert items[0].images == (fx.image_bytes("red"),) and items[0].options == ("Open", "Closed")


def test_mmvp_prompt(mmvp):
  item = load(vision.mmvp, mmvp)[0][0]
  assert vision.mmvp.prompt(item, vision.mmvp.suffix) == (
      "Are the butterfly's wings closer to being open or closed? Options:\nA. Open\nB. Closed\n"
      "Answer with the option's letter from the given choices directly.")


def test_mmvp_score(mmvp):
  b = vision.mmvp
  it = by_id(load(b, mmvp)[0])
  wings, tusks = it["1"], it["99"]
  for pred in ("A", "a", "(a)", "a.", "(a) Open", "Open", "The answer is (a)."):
    check(b, wings, pred, "paper", 1.0, "A")
  check(b, wings, "B", "paper", 0.0, "B")
  check(b, wings, "closed", "paper", 0.0, "B")
  check(b, wings, "a", "lmms", 1.0, "A")
  check(b, wings, "The answer is A", "lmms", 1.0, "A")
  check(b, wings, "A dog", "lmms", 1.0, "A")
  check(b, wings, "Blue", "lmms", 0.0, "B")            # lmms-eval's first-character fallback
  check(b, wings, "None", "lmms", 0.0, None)
  check(b, wings, "a", "cambrian", 1.0, "A")
  check(b, wings, "Open", "cambrian", 1.0, "A")
  check(b, wings, "The answer is (a).", "cambrian", 1.0, "A")
  check(b, wings, "A. Open", "cambrian", 0.0, None)
  rec = check(b, tusks, "B", "paper", 0.0, "B")
  assert rec["score_corrected"] == 1.0
  assert b.score(tusks, "A", "paper")["score_corrected"] == 0.0


def test_mmvp_aggregate(mmvp):
  b = vision.mmvp
  items = load(b, mmvp)[0]
  preds = ["A", "B", "B", "B", "B", "A"]     # pair 0 right; pair 1 half; pair 49 right only with corrected gold
  scored = [(i, b.score(i, p, "paper")) for i, p in zip(items, preds)]
  out = b.aggregate(scored)
  assert out["pair_accuracy"] == pytest.approx(100 / 3) and out["primary"] == out["pair_accuracy"]
  assert out["accuracy"] == pytest.approx(50.0)
  assert out["pair_accuracy_corrected"] == pytest.approx(200 / 3)
  assert out["accuracy_corrected"] == pytest.approx(500 / 6)
  partial = [s for s in scored if s[0].id != "4"]   # pair 1 incomplete: left out of the pair metric
  assert b.aggregate(partial)["pair_accuracy"] == pytest.approx(50.0)
  assert b.aggregate([])["pair_accuracy"] == 0.0


def test_mmvp_layout_errors(tmp_path, rwqa):
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match=str(tmp_path / "empty") + ".*no MMVP data"):
    load(vision.mmvp, tmp_path / "empty")
  with pytest.raises(ValueError, match="no MMVP data"):     # RealWorldQA has a test split, not train
    load(vision.mmvp, rwqa)
  fx.write_mmvp(tmp_path / "hdr", header=["id", "q", "o", "a"])
  with pytest.raises(ValueError, match="Questions.csv: expected the MMVP header"):
    load(vision.mmvp, tmp_path / "hdr")


def test_mmvp_bad_rows(tmp_path):
  rows = fx.mmvp_rows() + [["5", "Is it open?", "(a) Open (b) Closed"], ["6", "Is it open?", "Open or closed", "(a)"]]
  fx.write_mmvp(tmp_path, rows)
  (tmp_path / "MMVP Images" / "3.jpg").unlink()
  items, stats = load(vision.mmvp, tmp_path)
  assert [i.id for i in items] == ["1", "2", "4", "99", "100"]
  assert stats.skipped == {"malformed row": 1, "malformed options": 1, "missing image": 1}
  with pytest.raises(ValueError, match=r"Questions\.csv:4: missing image"):
    load(vision.mmvp, tmp_path, on_error="raise")
  (tmp_path / "MMVP Images" / "3.jpg").write_bytes(fx.image_bytes("red", "JPEG"))
  with pytest.raises(ValueError, match=r"Questions\.csv:8: malformed row"):
    load(vision.mmvp, tmp_path, on_error="raise")
