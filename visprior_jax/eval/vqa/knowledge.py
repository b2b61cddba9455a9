"""The paper's "Knowledge" benchmarks: ScienceQA-IMG, MMMU (val), AI2D and MathVista (testmini).

Layouts are the Hugging Face snapshots as published (``base``); prompts are Cambrian-1's
(``cambrian-mllm/cambrian`` ``eval/eval/<bench>/<bench>_eval.py``) since the
paper follows Cambrian-1; the suffix is joined with a newline as Cambrian does. Multiple choice is
scored with ``base.parse_mc`` and the selected parser (default: the paper's three-tier parser,
the paper's App. D). Scores are on 0-100.

ScienceQA-IMG (``scienceqa``, folder ``scienceqa``)
  Cambrian reads ``derek-thomas/ScienceQA`` test (4,241 rows, ``data/test-*.parquet``) and reports
  ``multimodal_acc`` over the rows with an image; lmms-eval reads ``lmms-lab/ScienceQA`` config
  ``ScienceQA-IMG`` test (``ScienceQA-IMG/test-*.parquet``, the 2,017 image rows). Both layouts
  have the same fields: image, question, choices (list), answer (int index), hint, task, grade,
  subject, topic, category, skill, lecture, solution. ``read`` prefers the ScienceQA-IMG config
  when present and otherwise takes every ``test`` file; rows whose image is null (text-only
  questions) are left out in ``read`` (logged, not BadRow, so ``on_error="raise"`` works on the
  derek-thomas release) - so ``accuracy`` IS Cambrian's ``multimodal_acc``. An image struct
  without bytes or path is BadRow "missing image". Ids: ``<file>:<row>``.
  Prompt (Cambrian): ``[hint + " "] + question + "\\nA. ..."`` + "\\n" + "Please answer directly
  with only the letter of the correct option and nothing else.", 512 new tokens (an empty hint is
  left out, as Cambrian does). Cambrian's scoring: the normalised output equals the option text,
  or the text before the first "." equals the letter; the paper parser's tiers 1-2 cover both.

MMMU (``mmmu``, folder ``mmmu``, ``lmms-lab/MMMU`` split validation, 900 questions)
  Rows: id (``validation_<Subject>_<n>``), question (with ``<image k>`` tags), options (a STRING
  holding a Python list; parsed with ``ast.literal_eval``, failure = BadRow "malformed options"),
  answer (a letter for multiple choice; text, or the string repr of a list of accepted texts, for
  open questions), question_type ("multiple-choice" / "open"), image_1..image_7. Items carry
  every present image in order; Cambrian feeds only image_1 (``max_images=1``) and requires it
  (absent image_1 = BadRow "missing image").
  Prompt (Cambrian): multiple choice ``question + " Options:" + "\\nA. ..."`` + "\\n" + the letter
  suffix; open ``question`` + "\\n" + "Answer the question using a single word or phrase."; then
  every ``<image k>`` tag is deleted from the whole text and it is stripped. ``suffix`` semantics:
  the benchmark's default suffix (the letter one) stands for Cambrian's per-type pair; any other
  suffix (e.g. the judge's) is used for both types. 512 new tokens. (Cambrian splits options with
  a quote regex that breaks on apostrophes; ``literal_eval`` does not.)
  Scoring. Multiple choice: ``parse_mc`` (the paper parser by default; lmms-eval uses MMMU's own
  parser with a RANDOM letter when nothing parses - not reproduced). Open questions: MMMU's
  official rule (``parse_open_response`` + ``eval_open``, as in lmms-eval) is the score:
    * the response is stripped, trailing "." removed, lowercased and split on newlines (the
      official regex also splits at ". " before a capital, which cannot fire after lowercasing);
      in each piece the shortest tail after one of "could be ", "so ", "is ", "thus ",
      "therefore ", "final ", "answer ", "result " (and "=" in the last piece) is a key answer;
      no key answer -> the whole response;
    * the candidates are the key answers plus every number in them (with-commas, scientific and
      plain patterns); each is normalised: a number (commas removed) -> float rounded to 2
      decimals, else lowercased text, a 1-character text padded as " x" / "x ";
    * the gold (each entry of a list gold) is normalised the same way; correct if a float
      candidate equals a float gold, or a text gold is a SUBSTRING of a text candidate.
  Cambrian's variant (text after the last "answer is"/"answer:", rstrip ".", exact match or both
  numbers within 5 %) is recorded as ``cambrian`` in each open item's record, not scored.
  Primary ``accuracy`` (instance level); also ``accuracy/<Subject>`` (subject from the id, e.g.
  ``Art_Theory``; Cambrian's ``id.split('_')[1]`` would give "Art"), ``accuracy/multiple-choice``
  and ``accuracy/open``.

AI2D (``ai2d``, folder ``ai2d``, ``lmms-lab/ai2d`` split test)
  Rows: question, options (list), answer (the option index as a STRING "0".."3"), image. Gold
  letter = LETTERS[int(answer)] (BadRow "answer not among options" otherwise). Prompt (Cambrian):
  ``question + "\\nA. ..."`` + "\\n" + letter suffix, 512 new tokens. Primary ``accuracy``.

MathVista (``mathvista``, folder ``mathvista``, ``AI4Math/MathVista`` split testmini, 1,000)
  Rows: pid, question, query (the question with MathVista's hint and choices built in), choices
  (list or null), answer, question_type ("multi_choice" / "free_form"), answer_type ("text" /
  "integer" / "float" / "list"), precision, unit, metadata, decoded_image (the image; ``image`` is
  a relative path string, used only if that file exists in the folder). For multiple choice the
  gold letter is the position of ``answer`` in ``choices`` (BadRow "answer not among options").
  Prompt (Cambrian): ``query`` + "\\n" + suffix, where the suffix depends on the type: "First show
  your reasoning process and then give the final answer." (multi_choice) or "Answer the question
  using a single word or phrase." (free_form). ``suffix`` semantics: the benchmark's default (the
  multi_choice sentence) stands for that pair; any other suffix is used for every item. 512 new
  tokens.
  Scoring - MathVista's direct path only. Its official pipeline sends any output that does not
  parse directly to a GPT model for answer extraction; we have no offline oracle for that step,
  so it is not used (numbers can differ from the official, GPT-extracted ones, mostly lower):
    * multi_choice: the output equal to an option text; else ``parse_mc`` with the selected
      parser; else the first "(X)" with X an option letter (MathVista's normaliser). The letter
      becomes its option text, compared with the gold text as strings (MathVista ``safe_equal``).
      MathVista's final "most similar option by edit distance" fallback is NOT applied (it turns
      every unparsable output into a guess);
    * integer: the last number in the output -> ``str(int(float(x)))``; float: the last number
      rounded to ``precision`` decimals -> ``str``; both compared as strings with the gold
      (``safe_equal``); list: the last "[...]" in the output (else the whole output), compared
      with the gold after removing whitespace; anything else: lowercased, stripped, trailing "."
      removed, equality.
  Cambrian's own test compares the lowercased output with the gold
  letter and its ``split('.')[0]`` branch for multiple choice never runs ("multiple-choice" vs
  "multi_choice"), so with the CoT suffix nearly every multiple-choice answer fails; we fix that
  by parsing the letter. Primary ``accuracy``; also ``accuracy/multi_choice`` and
  ``accuracy/free_form``.
"""

from __future__ import annotations

import ast
import logging
import math
import re
from collections.abc import Iterator, Mapping, Sequence

from etils import epath

from visprior_jax.eval.vqa.base import (LETTER_SUFFIX, LETTERS, SHORT_ANSWER, BadRow, Benchmark, VQAItem, accuracy,
                                        accuracy_by_group, field, image_ref, iter_parquet, join_suffix, mc_score,
                                        options_block, parquet_files, parse_mc, row_id, text_field)

__all__ = ["AI2D", "BENCHMARKS", "MATHVISTA", "MMMU", "SCIENCEQA", "mathvista_normalize", "mmmu_eval_open",
           "mmmu_parse_open"]

SQA_SUFFIX = "Please answer directly with only the letter of the correct option and nothing else."
MATHVISTA_MC_SUFFIX = "First show your reasoning process and then give the final answer."


def _str_list(row: Mapping, name: str, min_len: int = 2) -> tuple[str, ...]:
  value = row.get(name)
  if not isinstance(value, (list, tuple)) or len(value) < min_len or not all(isinstance(v, str) for v in value):
    raise BadRow("malformed options", f"{name!r} is not a list of >= {min_len} strings")
  return tuple(value)


# ---------------------------------------------------------------------------------------------
# ScienceQA-IMG


def _sqa_read(folder: epath.Path) -> Iterator[tuple[str, Mapping]]:
  try:
    files = parquet_files(folder, "test", "ScienceQA-IMG")   # lmms-lab/ScienceQA
  except ValueError:
    files = parquet_files(folder, "test")                    # derek-thomas/ScienceQA or lmms-lab/ScienceQA-IMG
  text_only = 0
  for where, row in iter_parquet(files, required=["question", "choices", "answer", "hint", "image"]):
    if row.get("image") is None:
      text_only += 1
      continue
    yield where, row
  if text_only:
    logging.info("scienceqa: %d text-only questions left out (ScienceQA-IMG = questions with an image)", text_only)


def _sqa_item(row: Mapping, where: str, folder: epath.Path) -> VQAItem:
  question = text_field(row, "question")
  options = _str_list(row, "choices")
  answer = row.get("answer")
  if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(options):
    raise BadRow("answer not among options", repr(answer)[:40])
  image = image_ref(row.get("image"), folder)
  hint = row.get("hint")
  return VQAItem(id=row_id(where), question=question, images=(image,), options=options, answer=LETTERS[answer],
                 meta={"hint": hint if isinstance(hint, str) and hint else None, "subject": row.get("subject"),
                       "grade": row.get("grade"), "category": row.get("category")})


def _sqa_prompt(item: VQAItem, suffix: str = SQA_SUFFIX) -> str:
  hint = item.meta.get("hint")
  return join_suffix((f"{hint} " if hint else "") + item.question + options_block(item.options), suffix)


def _sqa_aggregate(scored: Sequence[tuple[VQAItem, dict]]) -> dict:
  out = accuracy(scored)
  for subject, acc in sorted(accuracy_by_group(scored, lambda it: str(it.meta.get("subject"))).items()):
    out[f"accuracy/{subject}"] = acc
  return out


SCIENCEQA = Benchmark(
    name="scienceqa", category="Knowledge", folder="scienceqa",
    source="lmms-lab/ScienceQA config ScienceQA-IMG (split test) or derek-thomas/ScienceQA (split test, image rows)",
    read=_sqa_read, to_item=_sqa_item, prompt=_sqa_prompt, suffix=SQA_SUFFIX, max_new_tokens=512, score=mc_score,
    aggregate=_sqa_aggregate)


# ---------------------------------------------------------------------------------------------
# MMMU

_IMAGE_TAG = re.compile(r"<image \d+>")
_SUBJECT = re.compile(r"^[^_]+_(.+)_\d+$")
_KEY_INDICATORS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")
_TRIVIAL = {":", ",", ".", "!", "?", ";", "'"}
# MMMU's three number shapes: thousands with commas, scientific notation, plain (not followed by an
# exponent, a comma or a digit).
_NUM_COMMAS = re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b")
_NUM_SCI = re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+")
_NUM_PLAIN = re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])")


def _mmmu_number(text: str) -> float | None:
  try:
    return float(text.replace(",", ""))
  except ValueError:
    return None


def _mmmu_normalize(text: str) -> list:
  """MMMU ``normalize_str``: a number -> [float rounded to 2]; text -> [lower] (1 char: [" x", "x "])."""
  text = text.strip()
  number = _mmmu_number(text)
  if number is not None:
    return [round(number, 2)]
  text = text.lower()
  return [" " + text, text + " "] if len(text) == 1 else [text]


def _mmmu_numbers(text: str) -> list[str]:
  return _NUM_COMMAS.findall(text) + _NUM_SCI.findall(text) + _NUM_PLAIN.findall(text)


def _mmmu_key_answers(response: str) -> list[str]:
  response = response.strip().strip(".").lower()
  pieces = response.split("\n")
  keys = []
  for n, piece in enumerate(pieces):
    indicators = _KEY_INDICATORS + (("=",) if n == len(pieces) - 1 else ())
    best = None
    for ind in indicators:
      if ind in piece:
        tail = piece.split(ind)[-1].strip()
        if not best or len(tail) < len(best):
          best = tail
    if best and best.strip() not in _TRIVIAL:
      keys.append(best)
  return keys or [response]


def mmmu_parse_open(response: str) -> list:
  """MMMU ``parse_open_response``: the normalised candidate answers (floats and strings)."""
  keys = _mmmu_key_answers(response)
  candidates = list(keys)
  for key in keys:
    candidates.extend(_mmmu_numbers(key))
  out = []
  for c in candidates:
    out.extend(_mmmu_normalize(c))
  return list(dict.fromkeys(out))


def mmmu_eval_open(golds: str | Sequence[str], candidates: Sequence) -> bool:
  """MMMU ``eval_open``: a float candidate equal to a float gold, or a text gold inside a text candidate."""
  golds = [golds] if isinstance(golds, str) else list(golds)
  norm = [g for gold in golds for g in _mmmu_normalize(str(gold))]
  for cand in candidates:
    if isinstance(cand, str):
      if any(isinstance(g, str) and g in cand for g in norm):
        return True
    elif cand in norm:
      return True
  return False


def _cambrian_open(prediction: str, golds: Sequence[str]) -> bool:
  """Cambrian's open-answer test: text after the answer phrase, rstrip '.', exact or numbers within 5 %."""
  text = prediction.lower().strip()
  for phrase in ("answer is", "answer is:", "answer:"):
    if phrase in text:
      text = text.split(phrase)[-1]
  text = text.strip().rstrip(".")
  for gold in golds:
    g = str(gold).lower()
    if text == g:
      return True
    try:
      p, t = float(text), float(g)
    except ValueError:
      continue
    if abs(t - p) <= abs(p) * 0.05:     # Cambrian passes (gt, pred) to relaxed_accuracy(pred, gt)
      return True
  return False


def _mmmu_literal_list(text: str):
  text = text.strip()
  if not text.startswith("["):
    return None
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError, MemoryError, RecursionError):
    return None
  return [str(v) for v in value] if isinstance(value, (list, tuple)) and value else None


def _mmmu_item(row: Mapping, where: str, folder: epath.Path) -> VQAItem:
  qid, question, qtype = text_field(row, "id"), text_field(row, "question"), text_field(row, "question_type")
  answer = text_field(row, "answer").strip()
  subject = _SUBJECT.match(qid)
  meta = {"question_type": qtype, "subject": subject.group(1) if subject else "unknown"}
  options: tuple = ()
  if qtype == "multiple-choice":
    try:
      parsed = ast.literal_eval(text_field(row, "options"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
      raise BadRow("malformed options", "options is not a Python list literal") from None
    if not isinstance(parsed, (list, tuple)) or len(parsed) < 2:
      raise BadRow("malformed options", "options is not a list of >= 2 entries")
    options = tuple(str(o) for o in parsed)
    accepted = _mmmu_literal_list(answer) or [answer]
    accepted = [a.strip().upper() for a in accepted]
    if not all(a in LETTERS[:len(options)] for a in accepted):
      raise BadRow("answer not among options", repr(answer)[:40])
    gold = accepted[0]
    meta["accepted"] = accepted
  elif qtype == "open":
    golds = _mmmu_literal_list(answer)
    gold = tuple(golds) if golds else answer
  else:
    raise BadRow("unknown question type", repr(qtype)[:40])
  first = row.get("image_1")
  if first is None:
    raise BadRow("missing image", "no image_1")
  images = [image_ref(first, folder)]
  for k in range(2, 8):
    try:
      if row.get(f"image_{k}") is not None:
        images.append(image_ref(row[f"image_{k}"], folder))
    except BadRow:
      pass
  return VQAItem(id=qid, question=question, images=tuple(images), options=options, answer=gold, meta=meta)


def _mmmu_prompt(item: VQAItem, suffix: str = LETTER_SUFFIX) -> str:
  if item.meta["question_type"] == "multiple-choice":
    text = join_suffix(item.question + " Options:" + options_block(item.options), suffix)
  else:
    text = join_suffix(item.question, SHORT_ANSWER if suffix == LETTER_SUFFIX else suffix)
  return _IMAGE_TAG.sub("", text).strip()


def _json_safe(value):
  return value if isinstance(value, str) or math.isfinite(value) else str(value)


def _mmmu_score(item: VQAItem, prediction: str, parser: str = "paper") -> dict:
  if item.meta["question_type"] == "multiple-choice":
    letter = parse_mc(prediction, item.options, parser)
    return {"score": float(letter is not None and letter in item.meta.get("accepted", [item.answer])),
            "parsed": letter}
  golds = [item.answer] if isinstance(item.answer, str) else list(item.answer)
  candidates = mmmu_parse_open(prediction)
  return {"score": float(mmmu_eval_open(golds, candidates)), "parsed": [_json_safe(c) for c in candidates],
          "cambrian": float(_cambrian_open(prediction, golds))}


def _mmmu_aggregate(scored: Sequence[tuple[VQAItem, dict]]) -> dict:
  out = accuracy(scored)
  for key in (lambda it: it.meta["question_type"], lambda it: it.meta["subject"]):
    for group, acc in sorted(accuracy_by_group(scored, key).items()):
      out[f"accuracy/{group}"] = acc
  return out


MMMU = Benchmark(
    name="mmmu", category="Knowledge", folder="mmmu", source="lmms-lab/MMMU (split validation)",
    read=lambda folder: iter_parquet(parquet_files(folder, "validation"),
                                     required=["id", "question", "options", "answer", "question_type", "image_1"]),
    to_item=_mmmu_item, prompt=_mmmu_prompt, suffix=LETTER_SUFFIX, max_new_tokens=512, score=_mmmu_score,
    aggregate=_mmmu_aggregate)


# ---------------------------------------------------------------------------------------------
# AI2D


def _ai2d_item(row: Mapping, where: str, folder: epath.Path) -> VQAItem:
  question = text_field(row, "question")
  options = _str_list(row, "options")
  answer = str(field(row, "answer")).strip()
  if not answer.isdigit() or int(answer) >= len(options):
    raise BadRow("answer not among options", repr(row.get("answer"))[:40])
  image = image_ref(row.get("image"), folder)
  return VQAItem(id=row_id(where), question=question, images=(image,), options=options,
                 answer=LETTERS[int(answer)])


def _ai2d_prompt(item: VQAItem, suffix: str = LETTER_SUFFIX) -> str:
  return join_suffix(item.question + options_block(item.options), suffix)


AI2D = Benchmark(
    name="ai2d", category="Knowledge", folder="ai2d", source="lmms-lab/ai2d (split test)",
    read=lambda folder: iter_parquet(parquet_files(folder, "test"),
                                     required=["question", "options", "answer", "image"]),
    to_item=_ai2d_item, prompt=_ai2d_prompt, suffix=LETTER_SUFFIX, max_new_tokens=512, score=mc_score,
    aggregate=accuracy)


# ---------------------------------------------------------------------------------------------
# MathVista

_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")
_LIST = re.compile(r"\[[^\[\]]*\]")
_PAREN_LETTER = re.compile(r"\(([A-Za-z])\)")


def _mathvista_item(row: Mapping, where: str, folder: epath.Path) -> VQAItem:
  pid, query, qtype = str(field(row, "pid")), text_field(row, "query"), text_field(row, "question_type")
  answer = str(field(row, "answer")).strip()
  answer_type = str(row.get("answer_type") or "text")
  precision = row.get("precision")
  meta = {"question_type": qtype, "answer_type": answer_type, "answer_text": answer, "unit": row.get("unit"),
          "precision": None if precision is None or (isinstance(precision, float) and math.isnan(precision))
          else int(precision),
          "question": row.get("question"), "category": (row.get("metadata") or {}).get("category")}
  options: tuple = ()
  gold = answer
  if qtype == "multi_choice":
    options = _str_list(row, "choices")
    stripped = [o.strip() for o in options]
    if answer not in stripped:
      raise BadRow("answer not among options", repr(answer)[:40])
    gold = LETTERS[stripped.index(answer)]
  elif qtype != "free_form":
    raise BadRow("unknown question type", repr(qtype)[:40])
  decoded = row.get("decoded_image")
  if (isinstance(decoded, Mapping) and decoded.get("bytes")) or (isinstance(decoded, (bytes, bytearray)) and decoded):
    image = image_ref(decoded, folder)
  else:
    path = row.get("image")
    if not (isinstance(path, str) and path and (epath.Path(folder) / path).exists()):
      raise BadRow("missing image", "no decoded_image bytes and no image file")
    image = image_ref(path, folder)
  return VQAItem(id=pid, question=query, images=(image,), options=options, answer=gold, meta=meta)


def _mathvista_prompt(item: VQAItem, suffix: str = MATHVISTA_MC_SUFFIX) -> str:
  if suffix == MATHVISTA_MC_SUFFIX and item.meta["question_type"] != "multi_choice":
    suffix = SHORT_ANSWER
  return join_suffix(item.question, suffix)


def mathvista_normalize(prediction: str, item: VQAItem, parser: str = "paper") -> str | None:
  """The prediction in the gold's form (option text, number string, list string) or None."""
  text = prediction.strip()
  meta = item.meta
  if meta["question_type"] == "multi_choice":
    if text in item.options:
      return text
    letter = parse_mc(prediction, item.options, parser)
    if letter is None:
      m = _PAREN_LETTER.search(text)
      if m and m.group(1).upper() in LETTERS[:len(item.options)]:
        letter = m.group(1).upper()
    return None if letter is None else item.options[LETTERS.index(letter)]
  kind = meta["answer_type"]
  if kind in ("integer", "float"):
    numbers = _NUMBER.findall(text)
    if not numbers:
      return None
    value = float(numbers[-1].replace(",", ""))
    if kind == "integer":
      return str(int(value))
    return str(round(value, meta["precision"]) if meta["precision"] is not None else value)
  if kind == "list":
    lists = _LIST.findall(text)
    return re.sub(r"\s+", "", lists[-1] if lists else text)
  return text.lower().rstrip(".").strip()


def _mathvista_score(item: VQAItem, prediction: str, parser: str = "paper") -> dict:
  norm = mathvista_normalize(prediction, item, parser)
  gold = item.meta["answer_text"]
  if item.meta["question_type"] == "free_form":
    if item.meta["answer_type"] == "list":
      gold = re.sub(r"\s+", "", gold)
    elif item.meta["answer_type"] not in ("integer", "float"):
      gold = gold.lower().rstrip(".").strip()
  return {"score": float(norm is not None and str(norm).strip() == str(gold).strip()), "parsed": norm}


def _mathvista_aggregate(scored: Sequence[tuple[VQAItem, dict]]) -> dict:
  out = accuracy(scored)
  for qtype, acc in sorted(accuracy_by_group(scored, lambda it: it.meta["question_type"]).items()):
    out[f"accuracy/{qtype}"] = acc
  return out


MATHVISTA = Benchmark(
    name="mathvista", category="Knowledge", folder="mathvista", source="AI4Math/MathVista (split testmini)",
    read=lambda folder: iter_parquet(parquet_files(folder, "testmini"),
                                     required=["pid", "query", "question_type", "answer", "decoded_image"]),
    to_item=_mathvista_item, prompt=_mathvista_prompt, suffix=MATHVISTA_MC_SUFFIX, max_new_tokens=512,
    score=_mathvista_score, aggregate=_mathvista_aggregate)


BENCHMARKS: list[Benchmark] = [SCIENCEQA, MMMU, AI2D, MATHVISTA]
