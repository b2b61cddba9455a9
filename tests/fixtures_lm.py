"""Writes every language task in its original release format under ``root/<task>`` (a few rows each),
the layout ``visprior eval lm`` reads (configs/eval.py: lm.data_root)."""

import json
import pathlib


def _jsonl(path: pathlib.Path, rows):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _arc(prefix: str):
  return [{"id": f"{prefix}{i}", "answerKey": key,
           "question": {"stem": stem, "choices": [{"text": t, "label": lab} for t, lab in zip(texts, "ABCD")]}}
          for i, (stem, texts, key) in enumerate([
              ("Which is a liquid?", ["rock", "water", "wood", "iron"], "B"),
              ("What do plants need to grow?", ["sunlight", "plastic", "glass", "noise"], "A"),
              ("Which is hottest?", ["ice", "snow", "fire", "rain"], "C")])]


def write_all(root) -> None:
  root = pathlib.Path(root)
  (root / "wikitext").mkdir(parents=True, exist_ok=True)
  (root / "wikitext" / "wiki.test.raw").write_text(
      " \n = Alpha = \n \n Alpha is the first letter of the Greek alphabet . \n \n = = Use = = \n \n"
      " It is used in science . \n \n = Beta = \n \n Beta is the second letter . \n \n")
  _jsonl(root / "lambada" / "lambada_test.jsonl", [
      {"text": "She opened the door and saw her old friend standing in the rain"},
      {"text": "The cat climbed up the tree and could not get down"},
      {"text": "He poured the coffee into a cup"}])
  _jsonl(root / "piqa" / "valid.jsonl", [
      {"id": "p0", "goal": "Dry wet shoes", "sol1": "Stuff them with newspaper.", "sol2": "Put them in an oven."},
      {"id": "p1", "goal": "Cut bread", "sol1": "Use a spoon.", "sol2": "Use a bread knife."}])
  (root / "piqa" / "valid-labels.lst").write_text("0\n1\n")
  _jsonl(root / "hellaswag" / "hellaswag_val.jsonl", [
      {"ind": 1, "activity_label": "Cooking", "ctx_a": "A man cracks eggs into a bowl.", "ctx_b": "he",
       "endings": ["whisks them.", "eats the bowl.", "drives away.", "sings loudly."], "label": 0},
      {"ind": 2, "activity_label": "Running", "ctx_a": "A woman ties her shoes.", "ctx_b": "she",
       "endings": ["flies.", "starts jogging.", "melts.", "sleeps."], "label": 1}])
  _jsonl(root / "winogrande" / "dev.jsonl", [
      {"qID": "w0", "sentence": "The trophy did not fit in the suitcase because the _ was too big.",
       "option1": "trophy", "option2": "suitcase", "answer": "1"},
      {"qID": "w1", "sentence": "Sam gave Tom a gift because _ was kind.", "option1": "Sam", "option2": "Tom",
       "answer": "1"}])
  _jsonl(root / "arc_easy" / "ARC-Easy-Test.jsonl", _arc("e"))
  _jsonl(root / "arc_challenge" / "ARC-Challenge-Test.jsonl", _arc("c"))
  _jsonl(root / "copa" / "val.jsonl", [
      {"premise": "The man turned on the faucet.", "choice1": "The toilet filled with water.",
       "choice2": "Water flowed from the spout.", "question": "effect", "label": 1, "idx": 0},
      {"premise": "My body cast a shadow over the grass.", "choice1": "The sun was rising.",
       "choice2": "The grass was cut.", "question": "cause", "label": 0, "idx": 1}])
  (root / "sciq").mkdir(parents=True, exist_ok=True)
  (root / "sciq" / "test.json").write_text(json.dumps([
      {"question": "What gas do plants absorb?", "distractor1": "oxygen", "distractor2": "helium",
       "distractor3": "neon", "correct_answer": "carbon dioxide", "support": "Plants absorb carbon dioxide."},
      {"question": "What is frozen water?", "distractor1": "steam", "distractor2": "sand", "distractor3": "oil",
       "correct_answer": "ice", "support": ""}]))
  _jsonl(root / "openbookqa" / "test.jsonl", [
      {"id": "o0", "answerKey": "A", "question": {"stem": "The sun is a", "choices": [
          {"text": "star", "label": "A"}, {"text": "planet", "label": "B"}, {"text": "moon", "label": "C"},
          {"text": "comet", "label": "D"}]}}])
  _jsonl(root / "boolq" / "dev.jsonl", [
      {"question": "is the sky blue", "title": "Sky", "answer": True, "passage": "The sky appears blue by day."},
      {"question": "do fish fly", "title": "Fish", "answer": False, "passage": "Fish swim in water."}])
