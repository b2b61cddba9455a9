"""The embedded study's four tiny benchmarks, one per paper category, over the procedural shape world.

``visprior_jax.study.world.write_eval_suite`` writes them (with MLE-Bench in its released layout, scored
by ``mle_bench.py``); nothing here imports the world, so any tool that writes this layout works:

  tiny_<name>/data.jsonl    one JSON object per line
  tiny_<name>/images/...    the images, paths relative to the jsonl's folder

  multiple choice:  {"id": "colour-00012", "image": "images/colour-00012.png",
                     "question": "What colour is the star in the image?",
                     "options": ["red", "blue", "green", "white"], "answer": "B",   a letter, or an option's text
                     "answer_text": "blue", "task": "colour", "held_out": false, ["fact_in_sft": true]}
  open (tiny_ocr):  {"id", "image", "question": "What word is written in the image?", "answers": ["cat"],
                     "task": "word", "held_out": false}

  benchmark       category         tasks
  tiny_general    General          colour, shape (attributes of an object named by its shape or colour)
  tiny_knowledge  Knowledge        corners (of the shape in the image), colour_fact (which thing has its
                                   colour): facts the instructions teach only for some shapes and colours
                                   (``fact_in_sft``); the rest is stated only in the pre-training text
  tiny_ocr        OCR & Chart      word, number (read the rendered word / number)
  tiny_vision     Vision-Centric   count, relation (left/right, above/below), size (which is larger)

``tiny_general_open``, ``tiny_knowledge_open``, ``tiny_vision_open``: the same items (same folders) asked
open, without options, scored like tiny_ocr against the correct option's text (group ``tiny_open``, the
tiny study's default; see the note at their definition).

None is one of the paper's 16 (``paper=False``), so the paper's category and overall means
(``registry.summarize``) never include them; each carries its paper category so the study's analysis
can group them the same way.

Prompts are Cambrian's, as for the real benchmarks: the question, the options as ``A. text`` lines and
"Answer with the option's letter from the given choices directly." (MC), or the question and "Answer
the question using a single word or phrase." (open, TextVQA's instruction); 16 new tokens (MLE-Bench's
limit; every answer is a letter, a word or a number). The world's instructions use the same two
prompt forms, so the format is in distribution after SFT.

Scoring. MC: ``base.mc_score`` with the selected parser (default the paper's three-tier parser).
OCR: EXACT match after the EvalAI answer normalisation (``vqa_metrics.normalize_vqa_answer``:
lowercase, punctuation and articles dropped, number words up to ten as digits) against any of the
answers - not OCRBench's substring rule, which would credit an output listing many words; the
substring score is recorded beside it (``substring_accuracy``). The parser setting does not apply to OCR.

Aggregate: ``accuracy`` (primary, micro over items), ``accuracy/<task>``, ``accuracy/held_out`` and
``accuracy/seen`` (items whose target is / is not a held-out (shape, colour) combination) when both
occur, and for tiny_knowledge ``accuracy/fact_in_sft`` and ``accuracy/fact_in_text``. Beside them the
baselines (``baselines.py``): per task ``chance/<task>``, ``majority/<task>`` (always the task's most
common gold answer: its text when asked open, its letter when asked with letters), ``distinct/<task>``
and ``top_share/<task>`` (how many different answers the model gives, and the share of its most common
one), ``items/<task>``; the same five for ``fact_in_sft`` / ``fact_in_text``; ``chance`` and ``majority``
over the whole benchmark. Each item's score record keeps ``pred``, its normalised prediction (the key
of the spread metrics; letter-scored items use the parsed letter).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from etils import epath

from visprior_jax.eval import vqa_metrics
from visprior_jax.eval.vqa import baselines
from visprior_jax.eval.vqa.base import (LETTERS, PARSERS, BadRow, Benchmark, VQAItem, field, format_options,
                                        iter_jsonl, mc_score)

__all__ = ["BENCHMARKS", "LETTER_SUFFIX", "SHORT_SUFFIX", "TASKS", "baseline_metrics", "ocr_score"]

LETTER_SUFFIX = "Answer with the option's letter from the given choices directly."
SHORT_SUFFIX = "Answer the question using a single word or phrase."
TASKS = {"tiny_general": ("colour", "shape"), "tiny_knowledge": ("corners", "colour_fact"),
         "tiny_ocr": ("word", "number"), "tiny_vision": ("count", "relation", "size")}
SOURCE = "procedural shape world (visprior_jax.study.world.write_eval_suite)"


def _read(folder: epath.Path) -> Iterator[tuple[str, object]]:
  folder = epath.Path(folder)
  if not folder.exists():
    raise FileNotFoundError(f"{folder}: benchmark folder not found")
  path = folder if folder.is_file() else folder / "data.jsonl"
  if not path.is_file():
    raise ValueError(f"{folder}: no data.jsonl; expected the tiny benchmark layout (visprior_jax/eval/vqa/tiny.py): "
                     "data.jsonl with id, image, question, options + answer (or answers) per line, beside images/")
  for where, row in iter_jsonl(path):
    if isinstance(row, dict):
      row["_dir"] = str(path.parent)
    yield where, row


def _common(row, where: str, folder: epath.Path) -> tuple[str, str, str, dict]:
  if not isinstance(row, Mapping):
    raise BadRow("malformed row", f"expected a JSON object, got {type(row).__name__}")
  question = field(row, "question", str)
  rel = field(row, "image", str)
  image = epath.Path(row.get("_dir") or folder) / rel
  if not rel or not image.is_file():
    raise BadRow("missing image", str(image))
  meta = {"task": str(row.get("task", "")), "held_out": bool(row.get("held_out", False))}
  if "fact_in_sft" in row:
    meta["fact_in_sft"] = bool(row["fact_in_sft"])
  return str(row.get("id") or rel), question, str(image), meta


def _mc_item(row, where: str, folder: epath.Path) -> VQAItem:
  item_id, question, image, meta = _common(row, where, folder)
  options = field(row, "options", (list, tuple))
  if not 2 <= len(options) <= len(LETTERS) or not all(isinstance(o, str) and o for o in options):
    raise BadRow("missing field", "'options' is not a list of option strings")
  answer = field(row, "answer", str).strip()
  if answer not in LETTERS[:len(options)]:
    if answer not in options:
      raise BadRow("answer not among options", f"{answer!r} for {len(options)} options {list(options)}")
    answer = LETTERS[list(options).index(answer)]
  return VQAItem(id=item_id, question=question, images=(image,), options=tuple(options), answer=answer, meta=meta)


def _open_item(row, where: str, folder: epath.Path) -> VQAItem:
  item_id, question, image, meta = _common(row, where, folder)
  answers = row.get("answers", [row["answer"]] if isinstance(row.get("answer"), str) else None)
  if not isinstance(answers, (list, tuple)) or not answers or not all(isinstance(a, str) and a.strip()
                                                                       for a in answers):
    raise BadRow("missing field", "'answers' is not a non-empty list of strings")
  return VQAItem(id=item_id, question=question, images=(image,), answer=list(answers), meta=meta)


def mc_prompt(item: VQAItem, suffix: str = LETTER_SUFFIX) -> str:
  text = item.question.strip() + "\n" + format_options(item.options)
  return f"{text}\n{suffix}" if suffix else text


def open_prompt(item: VQAItem, suffix: str = SHORT_SUFFIX) -> str:
  return f"{item.question.strip()}\n{suffix}" if suffix else item.question.strip()


def _mc_score(item: VQAItem, prediction: str, parser: str = "paper") -> dict:
  if parser not in PARSERS:
    raise ValueError(f"unknown parser {parser!r}; choose one of {PARSERS}")
  return {**mc_score(item, prediction or "", parser), "task": item.meta["task"],
          "pred": vqa_metrics.normalize_vqa_answer(prediction or "")}


def ocr_score(item: VQAItem, prediction: str, parser: str = "paper") -> dict:
  """Exact match after EvalAI normalisation (primary) and OCRBench's substring rule (recorded)."""
  del parser
  pred = vqa_metrics.normalize_vqa_answer(prediction or "")
  exact = any(pred == vqa_metrics.normalize_vqa_answer(a) for a in item.answer)
  return {"score": float(exact), "substring": float(vqa_metrics.ocrbench_correct(prediction or "", item.answer)),
          "task": item.meta["task"], "pred": pred}


def _mean(values: Sequence[float]) -> float:
  return 100.0 * sum(values) / len(values) if values else 0.0


def aggregate(scored: Sequence[tuple[VQAItem, dict]]) -> dict:
  out = {"accuracy": _mean([r["score"] for _, r in scored])}
  for task in sorted({it.meta["task"] for it, _ in scored}):
    out[f"accuracy/{task}"] = _mean([r["score"] for it, r in scored if it.meta["task"] == task])
  held = [r["score"] for it, r in scored if it.meta.get("held_out")]
  seen = [r["score"] for it, r in scored if not it.meta.get("held_out")]
  if held and seen:
    out["accuracy/held_out"], out["accuracy/seen"] = _mean(held), _mean(seen)
  if any("fact_in_sft" in it.meta for it, _ in scored):
    out["accuracy/fact_in_sft"] = _mean([r["score"] for it, r in scored if it.meta.get("fact_in_sft")])
    out["accuracy/fact_in_text"] = _mean([r["score"] for it, r in scored if it.meta.get("fact_in_sft") is False])
  if scored and all("substring" in r for _, r in scored):
    out["substring_accuracy"] = _mean([r["substring"] for _, r in scored])
  return {**out, **baseline_metrics(scored)}


def _baseline_row(item: VQAItem, record: Mapping) -> baselines.Row:
  pred = record.get("pred")
  if item.options:    # letter-scored: the gold letter; the parsed letter, else the (marked) normalised text
    parsed = record.get("parsed")
    key = parsed if parsed is not None else (None if pred is None else "?" + pred)
    return baselines.Row(item.meta["task"], (item.answer,), len(item.options), key)
  gold = tuple(dict.fromkeys(vqa_metrics.normalize_vqa_answer(a) for a in item.answer))
  return baselines.Row(item.meta["task"], gold, int(item.meta.get("n_options", 0)), pred)


def baseline_metrics(scored: Sequence[tuple[VQAItem, dict]]) -> dict:
  """Per task ``chance/<task>``, ``majority/<task>``, ``distinct/<task>``, ``top_share/<task>``,
  ``items/<task>`` (``baselines``), the same for tiny_knowledge's ``fact_in_sft`` / ``fact_in_text``
  split, and ``chance`` / ``majority`` over the whole benchmark."""
  rows = [_baseline_row(it, r) for it, r in scored]
  groups = {}
  if any("fact_in_sft" in it.meta for it, _ in scored):
    groups["fact_in_sft"] = [i for i, (it, _) in enumerate(scored) if it.meta.get("fact_in_sft")]
    groups["fact_in_text"] = [i for i, (it, _) in enumerate(scored) if it.meta.get("fact_in_sft") is False]
  return baselines.baselines(rows, groups)


def _mc(name: str, category: str) -> Benchmark:
  return Benchmark(name=name, category=category, folder=name, source=SOURCE, read=_read, to_item=_mc_item,
                   prompt=mc_prompt, suffix=LETTER_SUFFIX, max_new_tokens=16, score=_mc_score, aggregate=aggregate,
                   primary="accuracy", paper=False)


TINY_GENERAL = _mc("tiny_general", "General")
TINY_KNOWLEDGE = _mc("tiny_knowledge", "Knowledge")
TINY_VISION = _mc("tiny_vision", "Vision-Centric")
TINY_OCR = Benchmark(name="tiny_ocr", category="OCR & Chart", folder="tiny_ocr", source=SOURCE, read=_read,
                     to_item=_open_item, prompt=open_prompt, suffix=SHORT_SUFFIX, max_new_tokens=16, score=ocr_score,
                     aggregate=aggregate, primary="accuracy", paper=False)



def _open_from_mc(row, where: str, folder: epath.Path) -> VQAItem:
  """An MC row asked open: the answer is the correct option's text (``answer_text``, else the option the
  letter names)."""
  item = _mc_item(row, where, folder)
  text = row.get("answer_text") or item.options[LETTERS.index(item.answer)]
  return VQAItem(id=item.id, question=item.question, images=item.images, answer=[str(text)],
                 meta={**item.meta, "n_options": len(item.options)})


def _open(name: str, category: str) -> Benchmark:
  return Benchmark(name=f"{name}_open", category=category, folder=name, source=SOURCE, read=_read,
                   to_item=_open_from_mc, prompt=open_prompt, suffix=SHORT_SUFFIX, max_new_tokens=16,
                   score=ocr_score, aggregate=aggregate, primary="accuracy", paper=False)


# The same items asked open (no options; exact match on the option text). The tiny study scores its
# models this way: at 0.4-1.4M parameters and a few hundred SFT steps the letter format itself is out of
# reach (measured: 300 steps x 16 colour questions in MC form keep the loss at ln 4 per answer, chance,
# while the same questions asked open are learned within 100 steps), which would hide every effect of
# pre-training behind the answer format.
TINY_GENERAL_OPEN = _open("tiny_general", "General")
TINY_KNOWLEDGE_OPEN = _open("tiny_knowledge", "Knowledge")
TINY_VISION_OPEN = _open("tiny_vision", "Vision-Centric")

BENCHMARKS: list[Benchmark] = [TINY_GENERAL, TINY_KNOWLEDGE, TINY_OCR, TINY_VISION, TINY_GENERAL_OPEN,
                               TINY_KNOWLEDGE_OPEN, TINY_VISION_OPEN]
