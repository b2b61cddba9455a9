"""Language benchmark loaders and scoring (visprior_jax.eval.lm_tasks).

Fixtures are tiny files in each task's published format (parquet with the HF column types, or the
original jsonl/json/raw files). Expected prompts are hand-written from the lm-eval-harness rules.
"""

import functools
import json
import math
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from visprior_jax.data.tokenizers import ByteTokenizer
from visprior_jax.eval import lm, lm_tasks
from visprior_jax.models import functional, presets

TOK = ByteTokenizer()
STR = pa.string()
STRS = pa.list_(STR)
CHOICES = pa.struct([("text", STRS), ("label", STRS)])


@functools.lru_cache(maxsize=None)
def _model():
  cfg = presets.get("llama3_tiny", init_std=0.2, dtype="float32")
  return cfg, functional.init_params(cfg, seed=7)


def _parquet(path, schema, rows):
  path.parent.mkdir(parents=True, exist_ok=True)
  pq.write_table(pa.Table.from_pylist(rows, schema=pa.schema(schema)), path)
  return path


def _jsonl(path, rows):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
  return path


def _load(name, path, **kw):
  items, stats = lm_tasks.load_task(name, path, **kw)
  assert stats["n"] == len(items)
  return items, stats


# ---------------------------------------------------------------------------------------------
# Task table


def test_task_table():
  assert list(lm_tasks.TASKS) == ["wikitext", "lambada", "piqa", "hellaswag", "winogrande", "arc_easy",
                                  "arc_challenge", "copa", "sciq", "openbookqa", "boolq"]
  primary = {n: s.primary for n, s in lm_tasks.TASKS.items()}
  assert primary == {"wikitext": "word_perplexity", "lambada": "perplexity", "piqa": "acc", "hellaswag": "acc_norm",
                     "winogrande": "acc", "arc_easy": "acc", "arc_challenge": "acc_norm", "copa": "acc",
                     "sciq": "acc", "openbookqa": "acc_norm", "boolq": "acc"}
  kinds = {n: s.kind for n, s in lm_tasks.TASKS.items()}
  assert kinds["wikitext"] == "perplexity" and kinds["lambada"] == "lambada" and kinds["winogrande"] == "partial"
  assert all(kinds[n] == "multiple_choice" for n in lm_tasks.TASKS if n not in ("wikitext", "lambada", "winogrande"))
  with pytest.raises(ValueError, match="unknown language task 'mmlu'"):
    lm_tasks.load_task("mmlu", "/nonexistent")


# ---------------------------------------------------------------------------------------------
# Formats and prompts, per task


PIQA_SCHEMA = [("goal", STR), ("sol1", STR), ("sol2", STR), ("label", pa.int64())]


def test_piqa_parquet(tmp_path):
  _parquet(tmp_path / "plain_text" / "validation" / "0000.parquet", PIQA_SCHEMA,
           [{"goal": "How do I open a jar?", "sol1": "Twist the lid.", "sol2": "Hit it with a hammer.", "label": 0}])
  _parquet(tmp_path / "plain_text" / "train" / "0000.parquet", PIQA_SCHEMA,
           [{"goal": "train row", "sol1": "a", "sol2": "b", "label": 1}])
  items, stats = _load("piqa", tmp_path)
  assert items == [{"context": "Question: How do I open a jar?\nAnswer:",
                    "choices": [" Twist the lid.", " Hit it with a hammer."], "gold": 0}]
  assert stats == {"n": 1, "n_skipped": 0, "skipped_examples": []}


def test_piqa_original_with_labels_file(tmp_path):
  _jsonl(tmp_path / "valid.jsonl", [
      {"id": "a", "goal": "Dry wet shoes", "sol1": "Stuff them with newspaper.", "sol2": "Put them in an oven."},
      {"id": "b", "goal": "Cut bread", "sol1": "Use a spoon.", "sol2": "Use a bread knife."}])
  (tmp_path / "valid-labels.lst").write_text("0\n1\n")
  items, _ = _load("piqa", tmp_path)
  assert items == [
      {"context": "Question: Dry wet shoes\nAnswer:", "choices": [" Stuff them with newspaper.",
                                                                  " Put them in an oven."], "gold": 0},
      {"context": "Question: Cut bread\nAnswer:", "choices": [" Use a spoon.", " Use a bread knife."], "gold": 1}]
  assert _load("piqa", tmp_path / "valid.jsonl")[0] == items           # a direct file path
  (tmp_path / "valid-labels.lst").write_text("0\n")                    # second record has no label line
  items, stats = _load("piqa", tmp_path)
  assert len(items) == 1 and stats["n_skipped"] == 1
  assert stats["skipped_examples"][0].startswith(f"{tmp_path / 'valid.jsonl'}:2 ")
  (tmp_path / "valid-labels.lst").unlink()
  with pytest.raises(ValueError, match="valid-labels.lst is not next to it"):
    lm_tasks.load_task("piqa", tmp_path)


HS_ROW1 = {"ind": 24, "activity_label": "Removing ice from car",
           "ctx_a": "Then, the man writes over the snow covering the window of a car, and a woman wearing winter "
                    "clothes smiles.",
           "ctx_b": "then",
           "endings": [", the man adds wax to the windshield and cuts it.", ", a person board a ski lift.",
                       ", the man puts on a christmas coat.", ", the man continues removing the snow on his car."]}
HS_ROW2 = {"ind": 7, "activity_label": "Personal Care and Style",
           "ctx_a": "[header] How to dye your hair [title] Choose a color.", "ctx_b": "pick a SHADE close to yours.",
           "endings": ["[step] Wash your hair first.", "  Use bleach [substeps] sparingly.  ", "Ask a friend.",
                       "Skip it."]}
HS_EXPECTED = [
    {"context": "Removing ice from car: Then, the man writes over the snow covering the window of a car, and a "
                "woman wearing winter clothes smiles. Then",
     "choices": [" , the man adds wax to the windshield and cuts it.", " , a person board a ski lift.",
                 " , the man puts on a christmas coat.", " , the man continues removing the snow on his car."],
     "gold": 3},
    {"context": "Personal Care and Style: How to dye your hair. Choose a color. Pick a shade close to yours.",
     "choices": ["  Wash your hair first.", " Use bleach sparingly.", " Ask a friend.", " Skip it."], "gold": 0}]
HS_SCHEMA = [("ind", pa.int32()), ("activity_label", STR), ("ctx_a", STR), ("ctx_b", STR), ("ctx", STR),
             ("endings", STRS), ("source_id", STR), ("split", STR), ("split_type", STR), ("label", STR)]


def _hs(row, label):
  return dict(row, ctx=row["ctx_a"] + " " + row["ctx_b"], source_id="x", split="val", split_type="indomain",
              label=label)


def test_hellaswag_parquet_and_original(tmp_path):
  _parquet(tmp_path / "hf" / "data" / "validation-00000-of-00001.parquet", HS_SCHEMA,
           [_hs(HS_ROW1, "3"), _hs(HS_ROW2, "0")])
  items, _ = _load("hellaswag", tmp_path / "hf")
  assert items == HS_EXPECTED
  _jsonl(tmp_path / "orig" / "hellaswag_val.jsonl", [_hs(HS_ROW1, 3), _hs(HS_ROW2, 0)])
  assert _load("hellaswag", tmp_path / "orig")[0] == HS_EXPECTED
  assert lm_tasks.hellaswag_clean(" a [title] b  [x]c ") == "a. b c"


def test_winogrande_parquet_and_original(tmp_path):
  schema = [("sentence", STR), ("option1", STR), ("option2", STR), ("answer", STR)]
  _parquet(tmp_path / "hf" / "winogrande_xl" / "validation-00000-of-00001.parquet", schema, [
      {"sentence": "Sarah was a much better surgeon than Maria so _ always got the harder cases.",
       "option1": "Sarah", "option2": "Maria", "answer": "1"}])
  _parquet(tmp_path / "hf" / "winogrande_xs" / "validation-00000-of-00001.parquet", schema, [
      {"sentence": "decoy _ row", "option1": "a", "option2": "b", "answer": "2"}])
  items, _ = _load("winogrande", tmp_path / "hf")
  assert items == [{"contexts": ["Sarah was a much better surgeon than Maria so Sarah",
                                 "Sarah was a much better surgeon than Maria so Maria"],
                    "continuation": " always got the harder cases.", "gold": 0}]
  _jsonl(tmp_path / "orig" / "dev.jsonl", [
      {"qID": "q1", "sentence": "The trophy doesn't fit into the brown suitcase because the _ is too small.",
       "option1": "trophy", "option2": "suitcase", "answer": "2"}])
  items, _ = _load("winogrande", tmp_path / "orig")
  assert items == [{"contexts": ["The trophy doesn't fit into the brown suitcase because the trophy",
                                 "The trophy doesn't fit into the brown suitcase because the suitcase"],
                    "continuation": " is too small.", "gold": 1}]


ARC_SCHEMA = [("id", STR), ("question", STR), ("choices", CHOICES), ("answerKey", STR)]


def test_arc_parquet_configs(tmp_path):
  _parquet(tmp_path / "ARC-Easy" / "test-00000-of-00001.parquet", ARC_SCHEMA, [
      {"id": "e1", "question": "Which gas do plants absorb?",
       "choices": {"text": ["oxygen", "carbon dioxide", "helium"], "label": ["A", "B", "C"]}, "answerKey": "B"}])
  _parquet(tmp_path / "ARC-Challenge" / "test-00000-of-00001.parquet", ARC_SCHEMA, [
      {"id": "c1", "question": "Which is a mammal?",
       "choices": {"text": ["shark", "trout", "eel", "whale"], "label": ["1", "2", "3", "4"]}, "answerKey": "4"}])
  _parquet(tmp_path / "ARC-Easy" / "validation-00000-of-00001.parquet", ARC_SCHEMA, [
      {"id": "v1", "question": "dev?", "choices": {"text": ["x", "y"], "label": ["A", "B"]}, "answerKey": "A"}])
  assert _load("arc_easy", tmp_path)[0] == [{"context": "Question: Which gas do plants absorb?\nAnswer:",
                                             "choices": [" oxygen", " carbon dioxide", " helium"], "gold": 1}]
  assert _load("arc_challenge", tmp_path)[0] == [{"context": "Question: Which is a mammal?\nAnswer:",
                                                  "choices": [" shark", " trout", " eel", " whale"], "gold": 3}]
  assert _load("arc_easy", tmp_path, split="validation")[0][0]["context"] == "Question: dev?\nAnswer:"


def test_arc_original_jsonl(tmp_path):
  _jsonl(tmp_path / "ARC-V1-Feb2018-2" / "ARC-Easy" / "ARC-Easy-Test.jsonl", [
      {"id": "x", "question": {"stem": "What melts ice?", "choices": [{"text": "heat", "label": "A"},
                                                                      {"text": "cold", "label": "B"}]},
       "answerKey": "A"},
      {"id": "y", "question": {"stem": "Pick 3", "choices": [{"text": "one", "label": "1"},
                                                             {"text": "three", "label": "3"}]}, "answerKey": "3"}])
  assert _load("arc_easy", tmp_path)[0] == [
      {"context": "Question: What melts ice?\nAnswer:", "choices": [" heat", " cold"], "gold": 0},
      {"context": "Question: Pick 3\nAnswer:", "choices": [" one", " three"], "gold": 1}]
  with pytest.raises(ValueError, match="no test data for task arc_challenge"):
    lm_tasks.load_task("arc_challenge", tmp_path)


COPA_SCHEMA = [("premise", STR), ("choice1", STR), ("choice2", STR), ("question", STR), ("idx", pa.int32()),
               ("label", pa.int64())]
COPA_ROWS = [{"premise": "The man turned on the faucet.", "choice1": "The toilet filled with water.",
              "choice2": "Water flowed from the spout.", "question": "effect", "idx": 0, "label": 1},
             {"premise": "My body cast a shadow over the grass. ", "choice1": "The sun was rising.",
              "choice2": "The grass was cut.", "question": "cause", "idx": 1, "label": 0}]
COPA_EXPECTED = [{"context": "The man turned on the faucet therefore",
                  "choices": [" the toilet filled with water.", " water flowed from the spout."], "gold": 1},
                 {"context": "My body cast a shadow over the grass because",
                  "choices": [" the sun was rising.", " the grass was cut."], "gold": 0}]


def test_copa_parquet_and_superglue_jsonl(tmp_path):
  _parquet(tmp_path / "hf" / "copa" / "validation-00000-of-00001.parquet", COPA_SCHEMA, COPA_ROWS)
  _parquet(tmp_path / "hf" / "boolq" / "validation-00000-of-00001.parquet",
           [("question", STR), ("passage", STR), ("idx", pa.int32()), ("label", pa.int64())],
           [{"question": "q", "passage": "p", "idx": 0, "label": 1}])
  assert _load("copa", tmp_path / "hf")[0] == COPA_EXPECTED
  _jsonl(tmp_path / "COPA" / "val.jsonl", COPA_ROWS)
  assert _load("copa", tmp_path / "COPA")[0] == COPA_EXPECTED


SCIQ_SCHEMA = [("question", STR), ("distractor3", STR), ("distractor1", STR), ("distractor2", STR),
               ("correct_answer", STR), ("support", STR)]
SCIQ_ROWS = [{"question": "What is the least dangerous radioactive decay?", "distractor3": "zeta decay",
              "distractor1": "beta decay", "distractor2": "gamma decay", "correct_answer": "alpha decay",
              "support": "  All radioactive decay is dangerous. "},
             {"question": "Who proposed evolution?", "distractor3": "Newton", "distractor1": "Kepler",
              "distractor2": "Bohr", "correct_answer": "Darwin", "support": ""}]
SCIQ_EXPECTED = [
    {"context": "All radioactive decay is dangerous. \nQuestion: What is the least dangerous radioactive decay?\n"
                "Answer:", "choices": [" beta decay", " gamma decay", " zeta decay", " alpha decay"], "gold": 3},
    {"context": "\nQuestion: Who proposed evolution?\nAnswer:", "choices": [" Kepler", " Bohr", " Newton", " Darwin"],
     "gold": 3}]


def test_sciq_parquet_and_original_json(tmp_path):
  _parquet(tmp_path / "hf" / "data" / "test-00000-of-00001.parquet", SCIQ_SCHEMA, SCIQ_ROWS)
  assert _load("sciq", tmp_path / "hf")[0] == SCIQ_EXPECTED
  (tmp_path / "orig").mkdir()
  (tmp_path / "orig" / "test.json").write_text(json.dumps(SCIQ_ROWS))
  assert _load("sciq", tmp_path / "orig")[0] == SCIQ_EXPECTED


def test_openbookqa_parquet_and_original(tmp_path):
  schema = [("id", STR), ("question_stem", STR), ("choices", CHOICES), ("answerKey", STR)]
  _parquet(tmp_path / "hf" / "main" / "test-00000-of-00001.parquet", schema, [
      {"id": "7-980", "question_stem": "The sun is responsible for",
       "choices": {"text": ["puppies learning new tricks", "plants sprouting, blooming and wilting"],
                   "label": ["A", "B"]}, "answerKey": "B"}])
  _parquet(tmp_path / "hf" / "additional" / "test-00000-of-00001.parquet", schema, [
      {"id": "d", "question_stem": "decoy", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "A"}])
  assert _load("openbookqa", tmp_path / "hf")[0] == [
      {"context": "The sun is responsible for",
       "choices": [" puppies learning new tricks", " plants sprouting, blooming and wilting"], "gold": 1}]
  _jsonl(tmp_path / "OpenBookQA-V1-Sep2018" / "Data" / "Main" / "test.jsonl", [
      {"id": "8-343", "question": {"stem": "A person wants to start saving money so that they can afford a nice "
                                           "vacation. They should",
                                   "choices": [{"text": "make more phone calls", "label": "A"},
                                               {"text": "quit eating lunch out", "label": "B"}]},
       "answerKey": "B"}])
  assert _load("openbookqa", tmp_path / "OpenBookQA-V1-Sep2018")[0] == [
      {"context": "A person wants to start saving money so that they can afford a nice vacation. They should",
       "choices": [" make more phone calls", " quit eating lunch out"], "gold": 1}]


def test_boolq_parquet_and_originals(tmp_path):
  _parquet(tmp_path / "hf" / "boolq" / "validation-00000-of-00001.parquet",
           [("question", STR), ("passage", STR), ("idx", pa.int32()), ("label", pa.int64())],
           [{"question": "does ethanol take more energy to make than it produces",
             "passage": "Ethanol fuel -- All biomass goes through at least some of these steps.", "idx": 0,
             "label": 0}])
  assert _load("boolq", tmp_path / "hf")[0] == [
      {"context": "Ethanol fuel -- All biomass goes through at least some of these steps.\nQuestion: does ethanol "
                  "take more energy to make than it produces?\nAnswer:", "choices": [" no", " yes"], "gold": 0}]
  _jsonl(tmp_path / "orig" / "dev.jsonl", [
      {"question": "is the sky blue", "title": "Sky", "answer": True, "passage": "The sky is blue."},
      {"question": "is fire cold", "title": "Fire", "answer": False, "passage": "Fire is hot."}])
  assert _load("boolq", tmp_path / "orig")[0] == [
      {"context": "The sky is blue.\nQuestion: is the sky blue?\nAnswer:", "choices": [" no", " yes"], "gold": 1},
      {"context": "Fire is hot.\nQuestion: is fire cold?\nAnswer:", "choices": [" no", " yes"], "gold": 0}]
  _jsonl(tmp_path / "BoolQ" / "val.jsonl", [{"question": "q", "passage": "p", "idx": 0, "label": True}])
  assert _load("boolq", tmp_path / "BoolQ")[0][0]["gold"] == 1


def test_lambada_jsonl_and_parquet(tmp_path):
  _jsonl(tmp_path / "orig" / "data" / "lambada_test.jsonl", [{"text": "he opened the door and saw the cat"},
                                                             {"text": "she said hello"}])
  _jsonl(tmp_path / "orig" / "data" / "lambada_test_de.jsonl", [{"text": "er sah die Katze"}])
  assert _load("lambada", tmp_path / "orig")[0] == ["he opened the door and saw the cat", "she said hello"]
  _parquet(tmp_path / "hf" / "default" / "test-00000-of-00001.parquet", [("text", STR)], [{"text": "a b c"}])
  _parquet(tmp_path / "hf" / "de" / "test-00000-of-00001.parquet", [("text", STR)], [{"text": "x y z"}])
  assert _load("lambada", tmp_path / "hf")[0] == ["a b c"]
  _parquet(tmp_path / "hf_en" / "en" / "test-00000-of-00001.parquet", [("text", STR)], [{"text": "d e f"}])
  assert _load("lambada", tmp_path / "hf_en")[0] == ["d e f"]


WIKI_RAW = (" \n = Alpha = \n \n Alpha is a letter . \n \n = = History = = \n \n It was used @-@ widely . \n \n"
            " = Beta = \n \n Beta follows . \n")
WIKI_DOCS = [" = Alpha = \n \n Alpha is a letter . \n \n = = History = = \n \n It was used @-@ widely . \n ",
             " = Beta = \n \n Beta follows . \n"]


def test_wikitext_raw_and_parquet(tmp_path):
  (tmp_path / "wikitext-2-raw").mkdir()
  (tmp_path / "wikitext-2-raw" / "wiki.test.raw").write_text(WIKI_RAW)
  items, stats = _load("wikitext", tmp_path)
  assert items == WIKI_DOCS and stats["n_skipped"] == 0
  assert lm_tasks.split_wikitext_documents(WIKI_RAW) == [(2, WIKI_DOCS[0]), (10, WIKI_DOCS[1])]
  _parquet(tmp_path / "hf" / "wikitext-2-raw-v1" / "test-00000-of-00001.parquet", [("page", STR)],
           [{"page": d} for d in WIKI_DOCS])
  _parquet(tmp_path / "hf" / "wikitext-103-raw-v1" / "test-00000-of-00001.parquet", [("page", STR)],
           [{"page": " = Decoy = \n"}])
  assert _load("wikitext", tmp_path / "hf")[0] == WIKI_DOCS


def test_wikitext_detokenize():
  page = (" = = History = = \n It was used @-@ widely , in 1 @,@ 000 places ( see below ) . \n"
          " The players ' hats cost 3 @.@ 5 N dollars . \n")
  assert lm_tasks.wikitext_detokenize(page) == (" == History ==\nIt was used-widely, in 1,000 places (see below).\n"
                                                "The players' hats cost 3.5 1 dollars.\n")
  assert lm_tasks.wikitext_detokenize('He said " hi there " at 5 \N{DEGREE SIGN} C') == 'He said "hi there" at 5°C'


# ---------------------------------------------------------------------------------------------
# Errors, skipping, limit


def test_wrong_layout_names_folder(tmp_path):
  (tmp_path / "README.md").write_text("# a dataset card")
  _parquet(tmp_path / "ARC-Easy" / "train-00000-of-00001.parquet", ARC_SCHEMA, [])
  for name in ("arc_easy", "piqa", "wikitext"):
    with pytest.raises(ValueError) as e:
      lm_tasks.load_task(name, tmp_path)
    msg = str(e.value)
    assert str(tmp_path) in msg and "expected" in msg and "\n" not in msg
  with pytest.raises(ValueError, match="no such file or folder"):
    lm_tasks.load_task("piqa", tmp_path / "missing")


def test_ambiguous_original_files(tmp_path):
  for sub in ("a", "b"):
    _jsonl(tmp_path / sub / "dev.jsonl", [{"sentence": "x _ y", "option1": "a", "option2": "b", "answer": "1"}])
  with pytest.raises(ValueError, match="2 files named dev.jsonl"):
    lm_tasks.load_task("winogrande", tmp_path)


def test_malformed_rows_skipped_or_raised(tmp_path):
  f = _parquet(tmp_path / "data" / "validation-00000-of-00001.parquet", HS_SCHEMA,
               [_hs(HS_ROW1, "3"), _hs(HS_ROW1, ""), dict(_hs(HS_ROW2, "0"), endings=None), _hs(HS_ROW2, "7"),
                _hs(HS_ROW2, "0")])
  items, stats = lm_tasks.load_task("hellaswag", tmp_path)
  assert items == HS_EXPECTED and stats["n"] == 2 and stats["n_skipped"] == 3
  assert [s.split(" ")[0] for s in stats["skipped_examples"]] == [f"{f}:2", f"{f}:3", f"{f}:4"]
  assert "label" in stats["skipped_examples"][0] and "endings" in stats["skipped_examples"][1]
  with pytest.raises(ValueError) as e:
    lm_tasks.load_task("hellaswag", tmp_path, on_error="raise")
  assert str(e.value).startswith(f"{f}:2: ") and "\n" not in str(e.value)
  with pytest.raises(ValueError, match="on_error"):
    lm_tasks.load_task("hellaswag", tmp_path, on_error="ignore")


def test_malformed_jsonl_lines(tmp_path):
  f = _jsonl(tmp_path / "dev.jsonl", [
      {"sentence": "A _ b.", "option1": "x", "option2": "y", "answer": "1"},
      "{not json",
      {"sentence": "no blank here", "option1": "x", "option2": "y", "answer": "1"},
      {"sentence": "A _ b.", "option1": "x", "answer": "2"},
      {"sentence": "A _ b.", "option1": "x", "option2": "y", "answer": "3"},
      "[1, 2]",
      {"sentence": "C _ d.", "option1": "x", "option2": "y", "answer": "2"}])
  items, stats = lm_tasks.load_task("winogrande", tmp_path)
  assert [it["gold"] for it in items] == [0, 1] and stats["n_skipped"] == 5
  assert [s.split(" ")[0] for s in stats["skipped_examples"]] == [f"{f}:{i}" for i in (2, 3, 4, 5, 6)]
  assert "sentence has no '_' blank" in stats["skipped_examples"][1]
  with pytest.raises(ValueError, match=re.escape(f"{f}:2: invalid JSON")):
    lm_tasks.load_task("winogrande", f, on_error="raise")
  assert len(lm_tasks.load_task("winogrande", f, on_error="raise", limit=1)[0]) == 1   # stops before line 2


def test_bad_answer_keys_and_labels(tmp_path):
  _parquet(tmp_path / "ARC-Easy" / "test-00000-of-00001.parquet", ARC_SCHEMA, [
      {"id": "1", "question": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "C"},
      {"id": "2", "question": "q", "choices": {"text": ["a", "b"], "label": ["A"]}, "answerKey": "A"},
      {"id": "3", "question": None, "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "A"}])
  items, stats = lm_tasks.load_task("arc_easy", tmp_path)
  assert items == [] and stats["n_skipped"] == 3
  assert "answerKey 'C'" in stats["skipped_examples"][0]
  _jsonl(tmp_path / "val.jsonl", [dict(COPA_ROWS[0], question="why"), dict(COPA_ROWS[0], label=2),
                                  dict(COPA_ROWS[0], label=True), dict(COPA_ROWS[0], premise=" "),
                                  dict(COPA_ROWS[0], label="\N{SUPERSCRIPT ONE}"), dict(COPA_ROWS[0], label="1")])
  items, stats = lm_tasks.load_task("copa", tmp_path / "val.jsonl")
  assert [it["gold"] for it in items] == [1] and stats["n_skipped"] == 5


def test_limit(tmp_path):
  _parquet(tmp_path / "data" / "test-00000-of-00002.parquet", SCIQ_SCHEMA, SCIQ_ROWS[:1])
  _parquet(tmp_path / "data" / "test-00001-of-00002.parquet", SCIQ_SCHEMA, SCIQ_ROWS[1:])
  assert _load("sciq", tmp_path)[0] == SCIQ_EXPECTED                  # shards read in order
  assert _load("sciq", tmp_path, limit=1)[0] == SCIQ_EXPECTED[:1]
  with pytest.raises(ValueError, match="limit"):
    lm_tasks.load_task("sciq", tmp_path, limit=0)


# ---------------------------------------------------------------------------------------------
# Scoring on a tiny random Llama


def test_evaluate_multiple_choice_matches_lm(tmp_path):
  cfg, params = _model()
  _parquet(tmp_path / "data" / "validation-00000-of-00001.parquet", PIQA_SCHEMA, [
      {"goal": "open a jar", "sol1": "twist the lid", "sol2": "hit it", "label": 0},
      {"goal": "cut bread", "sol1": "spoon", "sol2": "use a knife", "label": 1},
      {"goal": "dry shoes", "sol1": "newspaper", "sol2": "oven", "label": 1},
      {"goal": None, "sol1": "x", "sol2": "y", "label": 0}])
  res = lm_tasks.evaluate_task("piqa", cfg, params, TOK, tmp_path, batch_size=4, max_len=64)
  items, _ = lm_tasks.load_task("piqa", tmp_path)
  ref = lm.multiple_choice(cfg, params, TOK, items, batch_size=4, max_len=64)
  assert res["acc"] == pytest.approx(ref["acc"]) and res["acc_norm"] == pytest.approx(ref["acc_norm"])
  assert [p["pred"] for p in res["predictions"]] == ref["preds"]
  assert [p["pred_norm"] for p in res["predictions"]] == ref["preds_norm"]
  assert [p["gold"] for p in res["predictions"]] == [0, 1, 1] and [p["index"] for p in res["predictions"]] == [0, 1, 2]
  assert res["n"] == 3 and res["n_skipped"] == 1 and res["primary"] == "acc" and res["split"] == "validation"


def test_evaluate_winogrande_partial_scoring(tmp_path):
  cfg, params = _model()
  rows = [{"sentence": "The cat chased the dog so _ ran away.", "option1": "the cat", "option2": "the dog",
           "answer": "2"},
          {"sentence": "Ann gave Bo a gift because _ was kind.", "option1": "Ann", "option2": "Bo", "answer": "1"},
          {"sentence": "_ is red.", "option1": "The sky", "option2": "Blood", "answer": "2"}]
  _jsonl(tmp_path / "dev.jsonl", rows)
  res = lm_tasks.evaluate_task("winogrande", cfg, params, TOK, tmp_path, batch_size=4, max_len=64)
  correct = 0
  for i, row in enumerate(rows):
    cut = row["sentence"].index("_")
    cont = " " + row["sentence"][cut + 1:].strip()
    (ll1, _), = lm.loglikelihoods(cfg, params, TOK, [(row["sentence"][:cut] + row["option1"], cont)], 1, 64)
    (ll2, _), = lm.loglikelihoods(cfg, params, TOK, [(row["sentence"][:cut] + row["option2"], cont)], 1, 64)
    winner = 0 if ll1 >= ll2 else 1
    pred = res["predictions"][i]
    assert pred["pred"] == winner and pred["gold"] == int(row["answer"]) - 1
    assert pred["loglikelihoods"] == pytest.approx([ll1, ll2], rel=1e-5)
    correct += winner == int(row["answer"]) - 1
  assert res["acc"] == pytest.approx(correct / 3) and "acc_norm" not in res and res["n"] == 3


def test_evaluate_wikitext_and_lambada(tmp_path):
  cfg, params = _model()
  (tmp_path / "wiki.test.raw").write_text(WIKI_RAW)
  res = lm_tasks.evaluate_task("wikitext", cfg, params, TOK, tmp_path, batch_size=4, max_len=32)
  ref = lm.perplexity(cfg, params, TOK, [lm_tasks.wikitext_detokenize(d) for d in WIKI_DOCS], max_len=32,
                      batch_size=4)
  words = sum(len(re.split(r"\s+", d)) for d in WIKI_DOCS)        # raw pages, as the harness counts
  assert res["nll"] == pytest.approx(ref["nll"], rel=1e-5) and res["tokens"] == ref["tokens"]
  assert res["words"] == words and res["bytes"] == sum(len(d.encode()) for d in WIKI_DOCS)
  assert res["word_perplexity"] == pytest.approx(math.exp(ref["nll"] / words), rel=1e-5)
  assert sum(p["nll"] for p in res["predictions"]) == pytest.approx(res["nll"])
  assert res["primary"] == "word_perplexity" and res["n"] == 2

  texts = ["he opened the door and saw the cat", "she said hello", "one two"]
  _jsonl(tmp_path / "lambada_test.jsonl", [{"text": t} for t in texts])
  res = lm_tasks.evaluate_task("lambada", cfg, params, TOK, tmp_path, batch_size=4, max_len=64)
  ref = lm.lambada(cfg, params, TOK, texts, batch_size=4, max_len=64)
  assert res["acc"] == pytest.approx(ref["acc"]) and res["perplexity"] == pytest.approx(ref["perplexity"], rel=1e-5)
  assert [p["target"] for p in res["predictions"]] == [" cat", " hello", " two"]
  assert res["primary"] == "perplexity"


def test_evaluate_without_valid_items(tmp_path):
  _jsonl(tmp_path / "dev.jsonl", [{"sentence": "no blank", "option1": "a", "option2": "b", "answer": "1"}])
  cfg, params = _model()
  with pytest.raises(ValueError, match="no valid items .*1 skipped"):
    lm_tasks.evaluate_task("winogrande", cfg, params, TOK, tmp_path)


# ---------------------------------------------------------------------------------------------
# Summary


RESULTS = {"piqa": {"acc": 0.7, "acc_norm": 0.1}, "hellaswag": {"acc": 0.3, "acc_norm": 0.4},
           "winogrande": {"acc": 0.5}, "arc_easy": {"acc": 0.6, "acc_norm": 0.0},
           "arc_challenge": {"acc": 0.0, "acc_norm": 0.3}, "copa": {"acc": 0.8}, "sciq": {"acc": 0.9},
           "openbookqa": {"acc": 0.0, "acc_norm": 0.2}, "boolq": {"acc": 0.6},
           "wikitext": {"word_perplexity": 20.0}, "lambada": {"perplexity": 10.0, "acc": 0.4}}


def test_summary_full():
  s = lm_tasks.summary(RESULTS)
  assert s["task_accs"]["arc"] == pytest.approx(0.45)                 # (arc_easy acc + arc_challenge acc_norm) / 2
  assert s["t_acc"] == pytest.approx((0.7 + 0.4 + 0.5 + 0.45 + 0.8 + 0.9 + 0.2 + 0.6) / 8)
  assert s["ppl"] == pytest.approx(15.0) and s["lambada_acc"] == 0.4
  assert s["missing"] == [] and s["n_acc_tasks"] == 8
  assert list(s["task_accs"]) == ["piqa", "hellaswag", "winogrande", "arc", "copa", "sciq", "openbookqa", "boolq"]


def test_summary_partial_and_empty():
  partial = {k: v for k, v in RESULTS.items() if k not in ("arc_challenge", "lambada", "boolq")}
  s = lm_tasks.summary(partial)
  assert s["task_accs"]["arc"] == pytest.approx(0.6)
  assert s["t_acc"] == pytest.approx((0.7 + 0.4 + 0.5 + 0.6 + 0.8 + 0.9 + 0.2) / 7)
  assert s["ppl"] == 20.0 and s["lambada_acc"] is None
  assert s["missing"] == ["lambada", "arc_challenge", "boolq"]
  empty = lm_tasks.summary({})
  assert math.isnan(empty["t_acc"]) and math.isnan(empty["ppl"]) and empty["missing"] == list(lm_tasks.TASKS)
  with pytest.raises(ValueError, match="primary metric"):
    lm_tasks.summary({"hellaswag": {"acc": 0.5}})
  with pytest.raises(ValueError, match="unknown task"):
    lm_tasks.summary({"mmlu": {"acc": 0.5}})
  assert np.isfinite(lm_tasks.summary({"wikitext": {"word_perplexity": 3.0}})["ppl"])
