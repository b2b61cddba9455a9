"""MLE-Bench (Multi-Level Existence Bench), the paper's own perception benchmark (its §4.1, App. E).

Release: Hugging Face dataset ``JunlinHan/Multi-Level_Existence_Bench`` (CC-BY-NC-4.0), folder
``mle_bench``; 1,861 images, one 4-choice question each, single split ``train``. The repo is an
``imagefolder`` dataset::

  mle_bench/data.jsonl            one JSON object per line (also accepted: metadata.jsonl, and either
  mle_bench/images/...            name under data/ or train/)

  {"file_name": "images/000123.jpg",       image path relative to the jsonl's folder
   "question": "Which of the following appears in this image?",
   "choices": ["curtain", "television", "cabinet", "mirror"],
   "answer": "cabinet", "answer_text": "cabinet",          the correct option TEXT
   "sub_task": "existence_0-30"}                           | existence_30-60 | existence_60-100

``sub_task`` is the target's share of the image pixels: small 0–30 % (732 items), medium 30–60 % (698),
large 60–100 % (431). A folder without the jsonl is a ValueError naming the folder and this layout.
Bad rows (skipped and counted by ``load_items``): malformed JSON, a missing field, an ``answer`` not
among the ``choices`` (matched exactly, else case-insensitively after stripping, as lmms-eval's
``_answer_to_letter`` does), an unknown ``sub_task``, an image file that is not there. The item id is
``file_name`` (one question per image).

Prompt: lmms-eval's (PR #1228), the only published one: ``question.strip() + "\\nA. c1\\nB. c2\\nC. c3\\nD. c4"``
+ ``"\\nAnswer with the option's letter from the given choices directly."``; max_new_tokens 16, greedy. The
gold letter is the index of ``answer`` in ``choices``.

Scoring (per ``parser``):
  * "paper" (default): the paper's three-tier parser (``base.parse_mc``), as for every MC benchmark.
  * "lmms": lmms-eval's own MLE-Bench letter rule (``parse_letter_lmms``), not the CV-Bench start-of-output
    rule ``base.parse_mc`` uses for "lmms" elsewhere; tried in order, first hit wins, case-insensitive:
      1. anywhere: "the answer is[:|-] X" or "answer: X" / "answer - X" (X optionally in "(" or "[");
      2. anywhere: "option X";
      3. at the start (after optional "(" / "["): X followed by ")", "]", ".", ":" or whitespace;
      4. the whole (stripped) output is one letter.
    X is A–D in either case; there is no word boundary after X, so "The answer is dog" reads D and
    "a cat" reads A (quirks kept). No option-text fallback ("cabinet" is wrong here, C for the paper).
  * "cambrian": Cambrian's ``extract_mcq_answer`` (Cambrian has no MLE-Bench script).
Aggregate: ``small``, ``medium``, ``large`` accuracies (with their baselines ``chance/<split>``,
``majority/<split>`` = always the split's most common gold letter, ``distinct/<split>`` and
``top_share/<split>`` over the parsed letters (an unparsed output counts as its normalised text),
``items/<split>``; and ``chance/overall``, ``majority/overall`` over all items: ``baselines.py``);
``overall`` (primary) = the SAMPLE-WEIGHTED (micro) accuracy over all items, the paper's Table 5 "weighted
overall accuracy" (gpt-5: 73.63 / 90.69 / 86.31 on 732 / 698 / 431 items -> 82.97); ``macro`` = the
unweighted mean of the splits present (lmms-eval's ``average``, 83.54 for gpt-5; lmms-eval's docstring
calls it the paper's metric, which the paper contradicts).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence

from etils import epath

from visprior_jax.eval import vqa_metrics
from visprior_jax.eval.vqa import baselines
from visprior_jax.eval.vqa.base import (LETTERS, PARSERS, BadRow, Benchmark, VQAItem, field, format_options,
                                        iter_jsonl, parse_mc)

__all__ = ["BENCHMARKS", "MLE_BENCH", "SPLITS", "SUB_TASKS", "macro_accuracy", "parse_letter_lmms",
           "weighted_accuracy"]

SUB_TASKS = {"existence_0-30": "small", "existence_30-60": "medium", "existence_60-100": "large"}
SPLITS = ("small", "medium", "large")
LETTER_SUFFIX = "Answer with the option's letter from the given choices directly."
METADATA_CANDIDATES = ("data.jsonl", "metadata.jsonl", "data/data.jsonl", "data/metadata.jsonl", "train/data.jsonl",
                       "train/metadata.jsonl")


# ---------------------------------------------------------------------------------------------
# Reading


def metadata_file(folder) -> epath.Path:
  """The imagefolder metadata jsonl under ``folder`` (see ``METADATA_CANDIDATES``), or ValueError."""
  folder = epath.Path(folder)
  if not folder.exists():
    raise FileNotFoundError(f"{folder}: benchmark folder not found")
  if folder.is_file():
    return folder
  for rel in METADATA_CANDIDATES:
    if (folder / rel).is_file():
      return folder / rel
  raise ValueError(f"{folder}: no MLE-Bench metadata ({', '.join(METADATA_CANDIDATES)}); expected the "
                   "JunlinHan/Multi-Level_Existence_Bench imagefolder layout: data.jsonl with file_name, question, "
                   "choices, answer, sub_task per line, beside the image files")


def _read(folder: epath.Path) -> Iterator[tuple[str, object]]:
  path = metadata_file(folder)
  for where, row in iter_jsonl(path):
    if isinstance(row, dict):
      row["_dir"] = str(path.parent)
    yield where, row


def _gold_index(choices: Sequence[str], answer: str) -> int:
  if answer in choices:
    return list(choices).index(answer)
  folded = [c.strip().lower() for c in choices]
  if answer.strip().lower() in folded:
    return folded.index(answer.strip().lower())
  raise BadRow("answer not among options", f"{answer!r} not in {list(choices)}")


def _to_item(row: Mapping, where: str, folder: epath.Path) -> VQAItem:
  if not isinstance(row, Mapping):
    raise BadRow("malformed row", f"expected a JSON object, got {type(row).__name__}")
  question = field(row, "question", str)
  choices = field(row, "choices", (list, tuple))
  if not 2 <= len(choices) <= len(LETTERS) or not all(isinstance(c, str) and c for c in choices):
    raise BadRow("missing field", "'choices' is not a list of option strings")
  answer = field(row, "answer", str)
  gold = _gold_index(choices, answer)
  sub_task = field(row, "sub_task", str)
  if sub_task not in SUB_TASKS:
    raise BadRow("unknown sub_task", f"{sub_task!r} not in {sorted(SUB_TASKS)}")
  file_name = field(row, "file_name", str)
  image = epath.Path(row.get("_dir") or folder) / file_name
  if not file_name or not image.is_file():
    raise BadRow("missing image", str(image))
  return VQAItem(id=file_name, question=question, images=(str(image),), options=tuple(choices),
                 answer=LETTERS[gold], meta={"sub_task": sub_task, "split": SUB_TASKS[sub_task]})


# ---------------------------------------------------------------------------------------------
# Prompt and scoring


def prompt(item: VQAItem, suffix: str = LETTER_SUFFIX) -> str:
  text = item.question.strip() + "\n" + format_options(item.options)
  return f"{text}\n{suffix}" if suffix else text


_ANSWER_IS = re.compile(r"(?:the\s+answer\s+is\s*[:\-]?|answer\s*[:\-])\s*[(\[]?([a-d])", re.IGNORECASE)
_OPTION = re.compile(r"option\s+([a-d])", re.IGNORECASE)
_LEADING = re.compile(r"[(\[]*([a-d])[)\].:\s]", re.IGNORECASE)


def parse_letter_lmms(prediction: str) -> str | None:
  """lmms-eval's MLE-Bench letter rule (module docstring): "A".."D" or None."""
  text = (prediction or "").strip()
  for m in (_ANSWER_IS.search(text), _OPTION.search(text), _LEADING.match(text)):
    if m:
      return m.group(1).upper()
  if len(text) == 1 and text.upper() in "ABCD":
    return text.upper()
  return None


def score(item: VQAItem, prediction: str, parser: str = "paper") -> dict:
  if parser not in PARSERS:
    raise ValueError(f"unknown parser {parser!r}; choose one of {PARSERS}")
  prediction = prediction or ""
  letter = parse_letter_lmms(prediction) if parser == "lmms" else parse_mc(prediction, item.options, parser)
  if letter is not None and letter not in LETTERS[:len(item.options)]:
    letter = None
  return {"score": float(letter is not None and letter == item.answer), "parsed": letter,
          "split": item.meta["split"], "pred": vqa_metrics.normalize_vqa_answer(prediction)}


def weighted_accuracy(accuracies: Mapping[str, float], counts: Mapping[str, int]) -> float:
  """Sample-weighted (micro) overall from per-split accuracies and item counts (the paper's Table 5)."""
  total = sum(counts[k] for k in accuracies)
  return sum(accuracies[k] * counts[k] for k in accuracies) / total if total else 0.0


def macro_accuracy(accuracies: Mapping[str, float]) -> float:
  """Unweighted mean over the splits present (lmms-eval's ``average``)."""
  return sum(accuracies.values()) / len(accuracies) if accuracies else 0.0


def aggregate(scored: Sequence[tuple[VQAItem, dict]]) -> dict:
  per: dict[str, list[float]] = {}
  for item, record in scored:
    per.setdefault(item.meta["split"], []).append(record["score"])
  accs = {s: 100.0 * sum(per[s]) / len(per[s]) for s in SPLITS if per.get(s)}
  counts = {s: len(per[s]) for s in accs}
  return {**accs, "overall": weighted_accuracy(accs, counts), "macro": macro_accuracy(accs),
          **baselines.baselines([_baseline_row(it, r) for it, r in scored], overall="overall")}


def _baseline_row(item: VQAItem, record: Mapping) -> baselines.Row:
  parsed, pred = record.get("parsed"), record.get("pred")
  key = parsed if parsed is not None else (None if pred is None else "?" + pred)
  return baselines.Row(item.meta["split"], (item.answer,), len(item.options), key)


MLE_BENCH = Benchmark(
    name="mle_bench", category=None, folder="mle_bench", source="JunlinHan/Multi-Level_Existence_Bench (train)",
    read=_read, to_item=_to_item, prompt=prompt, suffix=LETTER_SUFFIX, max_new_tokens=16, score=score,
    aggregate=aggregate, primary="overall", paper=False)

BENCHMARKS: list[Benchmark] = [MLE_BENCH]
