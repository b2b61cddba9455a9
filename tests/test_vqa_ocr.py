"""OCR & Chart benchmarks (TextVQA, ChartQA, OCRBench), DocVQA and MLE-Bench on hand-made fixtures."""

import pytest

import fixtures_vqa_ocr as fx
from visprior_jax.eval.vqa import mle_bench, ocr
from visprior_jax.eval.vqa.base import ReadStats, VQAItem, load_items

BENCHES = {b.name: b for b in ocr.BENCHMARKS + mle_bench.BENCHMARKS}
PNG = b"\x89PNG\r\n\x1a\n"


def load(tmp_path, name, **kw):
  bench = BENCHES[name]
  folder = tmp_path / bench.folder
  fx.WRITERS[name](folder, **kw)
  stats = ReadStats()
  items = load_items(bench, folder, stats=stats)
  return bench, folder, items, stats


def by_id(items):
  return {it.id: it for it in items}


def close(a, b, tol=1e-9):
  return abs(a - b) <= tol


def test_registry_and_writers():
  assert set(BENCHES) == {"textvqa", "textvqa_no_ocr", "chartqa", "ocrbench", "docvqa", "mle_bench"}
  assert set(fx.WRITERS) == set(BENCHES)
  paper = {n for n, b in BENCHES.items() if b.paper}
  assert paper == {"textvqa", "chartqa", "ocrbench"}
  assert all(BENCHES[n].category == "OCR & Chart" for n in paper)
  assert all(BENCHES[n].category is None for n in set(BENCHES) - paper)
  assert {n: BENCHES[n].max_new_tokens for n in BENCHES} == {
      "textvqa": 512, "textvqa_no_ocr": 512, "chartqa": 128, "ocrbench": 512, "docvqa": 128, "mle_bench": 16}
  assert {n: BENCHES[n].primary for n in BENCHES} == {
      "textvqa": "accuracy", "textvqa_no_ocr": "accuracy", "chartqa": "relaxed_overall", "ocrbench": "accuracy",
      "docvqa": "anls", "mle_bench": "overall"}


# ---------------------------------------------------------------------------------------------
# TextVQA


def test_textvqa_items_and_prompts(tmp_path):
  bench, _, items, stats = load(tmp_path, "textvqa")
  assert stats.read == 4 and stats.total_skipped == 0
  it = by_id(items)
  assert list(it) == ["34602", "34603", "34604", "34605"]
  first = it["34602"]
  assert first.images[0].startswith(PNG) and first.answer[:5] == ["coca cola"] * 4 + ["coke"]
  assert first.meta["ocr_tokens"] == ["Coca-Cola", "ZERO"] and first.where.endswith(":row 0")
  assert bench.prompt(first, bench.suffix) == (
      "what brand is the drink?\nReference OCR tokens: Coca-Cola, ZERO\n"
      "Answer the question using a single word or phrase.")
  # No OCR tokens: Cambrian keeps the bare label line.
  assert bench.prompt(it["34604"], bench.suffix) == (
      "what does the sign say?\nReference OCR tokens:\nAnswer the question using a single word or phrase.")
  assert bench.prompt(it["34604"], "") == "what does the sign say?\nReference OCR tokens:"
  assert bench.prompt(it["34602"], "Explain.").endswith("ZERO\nExplain.")
  # lmms-eval variant: capitalize() lower-cases the rest, no OCR tokens; same items.
  nocr = BENCHES["textvqa_no_ocr"]
  assert [i.id for i in load_items(nocr, tmp_path / nocr.folder)] == list(it)
  assert nocr.prompt(it["34605"], nocr.suffix) == (
      "Who is the band on the poster?\nAnswer the question using a single word or phrase.")


def test_textvqa_score_and_aggregate(tmp_path):
  bench, _, items, _ = load(tmp_path, "textvqa")
  it = by_id(items)
  cases = [("34602", "Coca-Cola.", 1.0), ("34602", "coke", 0.9), ("34602", "Pepsi", 0.9), ("34602", "sprite", 0.0),
           ("34603", "Two.", 1.0), ("34604", "Stop", 0.3), ("34604", "yield", 1.0), ("34605", "Beatles", 1.0)]
  for qid, pred, want in cases:
    for parser in ("paper", "lmms", "cambrian"):
      assert close(bench.score(it[qid], pred, parser)["score"], want), (qid, pred, parser)
  assert bench.score(it["34602"], "Coca-Cola.", "paper")["normalized"] == "coca cola"
  with pytest.raises(ValueError, match="unknown parser"):
    bench.score(it["34602"], "coke", "bogus")
  preds = {"34602": "coke", "34603": "Two.", "34604": "stop", "34605": "The Rolling Stones"}
  scored = [(it[q], bench.score(it[q], p, "paper")) for q, p in preds.items()]
  agg = bench.aggregate(scored)
  assert agg.keys() == {"accuracy"} and close(agg["accuracy"], 100 * 2.2 / 4)


# ---------------------------------------------------------------------------------------------
# ChartQA


def test_chartqa_items_prompt_score_aggregate(tmp_path):
  bench, _, items, _ = load(tmp_path, "chartqa")
  assert [i.id for i in items] == ["0", "1", "2", "3", "4"]
  assert [i.meta["type"] for i in items] == ["human_test"] * 2 + ["augmented_test"] * 3
  assert items[0].answer == "10" and items[0].images[0].startswith(PNG)
  assert bench.prompt(items[0], bench.suffix) == (
      "What is the value of Japan in 2019?\nAnswer the question using a single number or phrase.")
  # (item, prediction, Cambrian rule (paper default), lmms-eval rule)
  cases = [(0, "10.4", 1, 1), (0, "10.6", 0, 0), (0, "10.", 1, 1), (1, "yes", 1, 1), (1, "Yes.", 0, 0),
           (2, "12%", 0, 1), (2, "0.1199", 1, 1), (3, "0.0", 1, 0), (3, "0", 1, 1), (3, "0.01", 0, 0),
           (4, "brazil", 1, 1), (4, "Brazil.", 0, 0)]
  for i, pred, camb, lmms in cases:
    assert bench.score(items[i], pred, "paper")["score"] == camb, (i, pred)
    assert bench.score(items[i], pred, "cambrian")["score"] == camb, (i, pred)
    assert bench.score(items[i], pred, "lmms")["score"] == lmms, (i, pred)
  assert bench.score(items[2], "12%", "lmms")["style"] == "lmms"
  preds = ["10.4", "yes", "12%", "0.0", "Brazil."]
  agg = bench.aggregate([(it, bench.score(it, p, "paper")) for it, p in zip(items, preds)])
  assert agg.keys() == {"relaxed_overall", "human", "augmented"}
  # augmented: "0.0" right, "12%" and "Brazil." wrong (Cambrian rule)
  assert close(agg["relaxed_overall"], 60.0) and close(agg["human"], 100.0) and close(agg["augmented"], 100 / 3)
  agg = bench.aggregate([(it, bench.score(it, p, "lmms")) for it, p in zip(items, preds)])
  assert close(agg["relaxed_overall"], 60.0) and close(agg["augmented"], 100 / 3)     # 12% right, 0.0 wrong
  # A split absent from the run is absent from the result.
  assert bench.aggregate([(items[0], {"score": 1.0})]) == {"relaxed_overall": 100.0, "human": 100.0}


# ---------------------------------------------------------------------------------------------
# OCRBench


def test_ocrbench_items_prompt_score_aggregate(tmp_path):
  bench, _, items, _ = load(tmp_path, "ocrbench")
  assert [i.id for i in items] == ["0", "1", "2", "3", "4"]
  assert items[1].answer == ["hello world", "hello-world"]
  assert items[2].meta == {"question_type": ocr.HME_TYPE, "dataset": "HME100k"}
  assert bench.prompt(items[0], bench.suffix) == "what is written in the image?\nGive the short answer directly."
  cases = [(0, "The word is centre.", 1, 1), (0, "CENTER", 0, 0), (1, "HELLO-WORLD", 1, 1), (1, "helloworld", 0, 0),
           (1, "It says:\nhello world", 1, 1), (2, "$\\frac{a}{b}$", 1, 1), (2, "\\frac{A}{B}", 0, 0),
           (3, "12.50", 0, 0), (3, "Total: $12.50", 1, 1), (4, "\uff21\uff22\uff23", 0, 1)]
  for i, pred, paper, lmms in cases:
    assert bench.score(items[i], pred, "paper")["score"] == paper, (i, pred)
    assert bench.score(items[i], pred, "lmms")["score"] == lmms, (i, pred)
  preds = ["centre", "hello world!", "\\frac{a}{b}", "12.50", "abd"]
  agg = bench.aggregate([(it, bench.score(it, p)) for it, p in zip(items, preds)])
  assert agg == {"accuracy": 60.0, "Regular Text Recognition": 50.0, "Scene Text-centric VQA": 100.0,
                 ocr.HME_TYPE: 100.0, "Doc-oriented VQA": 0.0}


# ---------------------------------------------------------------------------------------------
# DocVQA


def test_docvqa_items_prompt_score_aggregate(tmp_path):
  bench, _, items, _ = load(tmp_path, "docvqa")
  it = by_id(items)
  assert list(it) == ["49153", "24580", "57349"]
  assert it["49153"].answer == ["Hello World", "hello world inc."] and it["49153"].meta["docId"] == 14465
  assert bench.prompt(it["24580"], bench.suffix) == "What is the code?\nGive the short answer directly."
  assert close(bench.score(it["49153"], "hello  world")["score"], 1.0)
  assert close(bench.score(it["24580"], "abc")["score"], 2 / 3)
  assert bench.score(it["24580"], "xyz")["score"] == 0.0          # below the 0.5 threshold
  # Raw-length quirk: DocVQA definition (default) 1 - 1/4; lmms-eval divides by the raw length 7.
  assert close(bench.score(it["57349"], "abce   ", "paper")["score"], 0.75)
  assert close(bench.score(it["57349"], "abce   ", "lmms")["score"], 1 - 1 / 7)
  preds = {"49153": "Hello World", "24580": "abc", "57349": "abce"}
  agg = bench.aggregate([(it[q], bench.score(it[q], p)) for q, p in preds.items()])
  assert agg.keys() == {"anls"} and close(agg["anls"], 100 * (1 + 2 / 3 + 0.75) / 3)


# ---------------------------------------------------------------------------------------------
# Layout errors and bad rows (parquet benchmarks)


@pytest.mark.parametrize("name,other", [("textvqa", None), ("textvqa", "chartqa"), ("chartqa", "ocrbench"),
                                        ("ocrbench", "chartqa"), ("docvqa", "textvqa"), ("chartqa", "docvqa")])
def test_wrong_layout(tmp_path, name, other):
  folder = tmp_path / "elsewhere"
  folder.mkdir()
  if other:
    fx.WRITERS[other](folder)
  with pytest.raises(ValueError, match=str(folder)):
    load_items(BENCHES[name], folder)


BAD_ROWS = {
    "textvqa": ([fx.textvqa_row(5, 1, "q?", None, ["x"]), fx.textvqa_row(6, 2, "q?", ["a"] * 10, ["x"], image=False),
                 fx.textvqa_row(7, 3, "q?", [], [])], ["missing field", "missing image", "no answers"]),
    "chartqa": ([fx.chartqa_row(5, "human_test", "q?", None), fx.chartqa_row(6, "human_test", "q?", "1", image=False),
                 fx.chartqa_row(7, "augmented_test", None, "1")], ["missing field", "missing image", "missing field"]),
    "ocrbench": ([fx.ocrbench_row(5, "d", "q?", "t", []), fx.ocrbench_row(6, "d", "q?", "t", ["a"], image=False),
                  fx.ocrbench_row(7, "d", "q?", None, ["a"])], ["no answers", "missing image", "missing field"]),
    "docvqa": ([fx.docvqa_row(5, "1", "q?", None), fx.docvqa_row(6, "2", "q?", ["a"], image=False),
                fx.docvqa_row(7, "49153", "q?", ["a"])], ["missing field", "missing image", "duplicate id"]),
}


@pytest.mark.parametrize("name", sorted(BAD_ROWS))
def test_bad_rows_skipped_or_raised(tmp_path, name):
  rows, reasons = BAD_ROWS[name]
  good = {"textvqa": 4, "chartqa": 5, "ocrbench": 5, "docvqa": 3}[name]
  bench, folder, items, stats = load(tmp_path, name, extra_rows=rows)
  assert len(items) == good and stats.read == good
  assert dict(stats.skipped) == {r: reasons.count(r) for r in reasons}
  assert f".parquet:row {good}: {reasons[0]}" in stats.examples[0]
  with pytest.raises(ValueError, match=rf"^{name}: .*\.parquet:row {good}: {reasons[0]}"):
    load_items(bench, folder, on_error="raise")


def test_writing_twice_is_harmless(tmp_path):
  for name in ("textvqa", "chartqa", "ocrbench", "docvqa", "mle_bench"):
    bench = BENCHES[name]
    fx.WRITERS[name](tmp_path / bench.folder)
    first = load_items(bench, tmp_path / bench.folder)
    fx.WRITERS[name](tmp_path / bench.folder)
    assert [i.id for i in load_items(bench, tmp_path / bench.folder)] == [i.id for i in first]


# ---------------------------------------------------------------------------------------------
# MLE-Bench


def test_mle_items_and_prompt(tmp_path):
  bench, folder, items, stats = load(tmp_path, "mle_bench")
  assert stats.read == 6 and stats.total_skipped == 0
  assert [i.answer for i in items] == ["C", "B", "A", "D", "C", "A"]   # "Sea": case-insensitive fallback
  assert [i.meta["split"] for i in items] == ["small", "small", "medium", "medium", "large", "large"]
  first = items[0]
  assert first.id == "images/000001.jpg" and first.options == ("curtain", "television", "cabinet", "mirror")
  assert first.images == (str(folder / "images" / "000001.jpg"),) and first.where.endswith("data.jsonl:1")
  assert first.meta["sub_task"] == "existence_0-30"
  assert bench.prompt(first, bench.suffix) == (
      "Which of the following appears in this image?\nA. curtain\nB. television\nC. cabinet\nD. mirror\n"
      "Answer with the option's letter from the given choices directly.")


@pytest.mark.parametrize("where", ["metadata.jsonl", "train/metadata.jsonl", "data/data.jsonl"])
def test_mle_metadata_locations(tmp_path, where):
  fx.write_mle_bench(tmp_path / "mle", metadata_name=where)
  items = load_items(mle_bench.MLE_BENCH, tmp_path / "mle")
  assert len(items) == 6 and items[0].where == f"{tmp_path / 'mle' / where}:1"
  assert items[0].images[0] == str((tmp_path / "mle" / where).parent / "images" / "000001.jpg")


def test_mle_wrong_layout(tmp_path):
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match=rf"{tmp_path / 'empty'}: no MLE-Bench metadata.*data\.jsonl"):
    load_items(mle_bench.MLE_BENCH, tmp_path / "empty")
  fx.write_chartqa(tmp_path / "chart")
  with pytest.raises(ValueError, match=str(tmp_path / "chart")):
    load_items(mle_bench.MLE_BENCH, tmp_path / "chart")
  with pytest.raises(FileNotFoundError):
    load_items(mle_bench.MLE_BENCH, tmp_path / "absent")


def test_mle_bad_rows(tmp_path):
  extra = [fx.mle_row("images/000007.jpg", 0, ["a", "b", "c", "d"], "piano", "existence_0-30"),
           fx.mle_row("images/000008.jpg", 0, ["a", "b", "c", "d"], "a", "existence_100-200"),
           '{"file_name": ',
           fx.mle_row("images/000010.jpg", 0, ["a", "b", "c", "d"], "b", "existence_30-60"),
           {k: v for k, v in fx.mle_row("images/000011.jpg", 0, ["a", "b"], "a", "existence_30-60").items()
            if k != "question"},
           fx.mle_row("images/000012.jpg", 0, "abcd", "a", "existence_30-60"),
           '["not", "an", "object"]']
  folder = tmp_path / "mle_bench"
  fx.write_mle_bench(folder, extra_rows=extra)
  (folder / "images" / "000010.jpg").unlink()
  stats = ReadStats()
  items = load_items(mle_bench.MLE_BENCH, folder, stats=stats)
  assert len(items) == 6
  assert dict(stats.skipped) == {"answer not among options": 1, "unknown sub_task": 1, "malformed JSON": 1,
                                 "missing image": 1, "missing field": 2, "malformed row": 1}
  assert stats.examples[0].startswith(f"{folder / 'data.jsonl'}:7: answer not among options")
  with pytest.raises(ValueError, match=r"^mle_bench: .*data\.jsonl:7: answer not among options"):
    load_items(mle_bench.MLE_BENCH, folder, on_error="raise")


LMMS_LETTERS = [("The answer is B", "B"), ("answer: c", "C"), ("Answer - (d)", "D"), ("The answer is: [A]", "A"),
                ("the answer is dog", "D"), ("Option b is right", "B"), ("(C) cabinet", "C"), ("[A]", "A"),
                ("B.", "B"), ("c: mirror", "C"), ("A", "A"), (" a ", "A"), ("a cat", "A"), ("cabinet", None),
                ("Dog", None), ("E", None), ("E.", None), ("", None), ("There are 2", None), ("D\n", "D")]


@pytest.mark.parametrize("text,want", LMMS_LETTERS)
def test_mle_lmms_letter_rule(text, want):
  assert mle_bench.parse_letter_lmms(text) == want


def test_mle_score(tmp_path):
  _, _, items, _ = load(tmp_path, "mle_bench")
  cabinet, race_car, _, sheep, _, _ = items
  s = mle_bench.score
  assert s(cabinet, "cabinet") == {"score": 1.0, "parsed": "C", "split": "small", "pred": "cabinet"}  # paper tier 2
  assert s(cabinet, "cabinet", "lmms") == {"score": 0.0, "parsed": None, "split": "small",
                                           "pred": "cabinet"}                              # no text fallback
  assert s(cabinet, "C", "lmms")["score"] == 1.0 and s(cabinet, "The answer is C.", "cambrian")["score"] == 1.0
  assert s(race_car, "I see a race car")["parsed"] == "B"                                  # longest option text
  assert s(race_car, "I see a race car", "lmms")["parsed"] is None
  assert s(sheep, "The answer is dog", "lmms")["score"] == 1.0                             # lmms quirk: "d"og
  assert s(sheep, "a sheep", "lmms")["parsed"] == "A" and s(sheep, "a sheep")["parsed"] == "D"
  with pytest.raises(ValueError, match="unknown parser"):
    s(sheep, "D", "bogus")


def _mle_items(split, n):
  return [VQAItem(id=f"{split}{i}", question="q", options=("a", "b", "c", "d"), answer="A",
                  meta={"split": split, "sub_task": ""}) for i in range(n)]


def test_mle_aggregate_weighting():
  small, medium = _mle_items("small", 3), _mle_items("medium", 1)
  scored = [(it, {"score": float(i == 0)}) for i, it in enumerate(small)] + [(medium[0], {"score": 1.0})]
  agg = mle_bench.aggregate(scored)
  assert {k for k in agg if "/" not in k} == {"small", "medium", "overall", "macro"}   # large absent from this run
  assert "items/small" in agg and "items/large" not in agg           # baselines (test_vqa_baselines.py)
  assert close(agg["small"], 100 / 3) and agg["medium"] == 100.0
  assert close(agg["overall"], 50.0) and close(agg["macro"], 200 / 3)
  assert mle_bench.aggregate([]) == {"overall": 0.0, "macro": 0.0}


def test_mle_paper_table5_gpt5():
  # Paper Table 5, gpt-5: 73.63 / 90.69 / 86.31 on 732 / 698 / 431 items -> weighted overall 82.97 (macro 83.54).
  accs, counts = {"small": 73.63, "medium": 90.69, "large": 86.31}, {"small": 732, "medium": 698, "large": 431}
  assert round(mle_bench.weighted_accuracy(accs, counts), 2) == 82.97
  assert round(mle_bench.macro_accuracy(accs), 2) == 83.54
  scored = []
  for split, right in (("small", 539), ("medium", 633), ("large", 372)):   # the nearest integer counts
    scored += [(it, {"score": float(i < right)}) for i, it in enumerate(_mle_items(split, counts[split]))]
  agg = mle_bench.aggregate(scored)
  assert {k: round(v, 2) for k, v in agg.items() if "/" not in k} == {"small": 73.63, "medium": 90.69, "large": 86.31,
                                                      "overall": 82.97, "macro": 83.54}
