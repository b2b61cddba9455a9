"""OCR & Chart benchmarks (TextVQA, ChartQA, OCRBench) and DocVQA.

Every benchmark reads the local snapshot of its Hugging Face dataset repo (``huggingface-cli download
<id> --repo-type dataset --local-dir DATA_ROOT/<folder>``); images are the embedded HF ``Image`` column.
Prompts and generation lengths are Cambrian's ``eval/eval/<bench>/<bench>_eval.py``, since
the paper "follows Cambrian-1"; the question extension (``suffix``) is appended after a newline, as
Cambrian's ``qs += f"\\n{question_extension}"``. Scoring uses ``visprior_jax.eval.vqa_metrics``.

The ``parser`` argument of ``score`` (the runner's MC parser setting: paper / lmms / cambrian) also selects
the reference variant of these free-form rules, so a ``parser="lmms"`` run reproduces lmms-eval's
numbers: "paper" and "cambrian" score the Cambrian way (the paper followed Cambrian), "lmms" the lmms-eval
way. Where the two agree the setting changes nothing.

textvqa (OCR & Chart) — ``lmms-lab/textvqa``, folder ``textvqa``, ``data/validation-*.parquet`` (5,000):
  columns image_id, question_id (int32), question, question_tokens, image, image_width, image_height,
  flickr_original_url, flickr_300k_url, answers (10 strings), image_classes, set_name, ocr_tokens (list).
  Prompt (Cambrian): ``question + "\\nReference OCR tokens: t1, t2, ..." + "\\n" + suffix`` with suffix
  "Answer the question using a single word or phrase.", max_new_tokens 512. Cambrian writes the label and
  then `` t1`` / ``, t2`` per token, so an item WITHOUT OCR tokens keeps the bare label line
  ``"...?\\nReference OCR tokens:\\nAnswer ..."``; we reproduce that byte for byte rather than dropping the
  line (the paper's numbers came from these prompts). A row whose ocr_tokens is missing (None) is a
  BadRow, for both variants, so the two variants always score the same items.
  Score: VQA soft accuracy (EvalAI normalisation of prediction and answers, mean over the 10 leave-one-out
  subsets of min(1, #matches / 3)) — identical in Cambrian (M4C evaluator) and lmms-eval, so ``parser``
  has no effect. Primary ``accuracy``.
textvqa_no_ocr (extra, paper=False) — the same files and score with lmms-eval's default prompt
  (``ocr: false``): ``question.capitalize() + "\\n" + suffix``. Note Python's ``capitalize`` also
  LOWER-CASES the rest of the question ("what does the BUS say?" -> "What does the bus say?"); kept, as
  lmms-eval does it. (lmms-eval's optional OCR line is "\\nReference OCR token: ..." — singular — which we
  do not offer.) lmms-eval sets no max_new_tokens for TextVQA (model default); we keep Cambrian's 512. A
  second registered benchmark instead of a module-level switch: no global state, both can run in one
  job, and results files name the variant.
chartqa (OCR & Chart) — ``lmms-lab/ChartQA``, folder ``chartqa``, ``data/test-*.parquet`` (2,500): columns
  type ("human_test" / "augmented_test"), question, answer (string), image. No id column: the id is the
  row's position in the split (files in name order). Prompt ``question + "\\n" + suffix``, suffix "Answer
  the question using a single number or phrase.", max_new_tokens 128 (Cambrian; lmms-eval asks "Answer
  the question with a single word." with 16 tokens).
  Score: ``chartqa_relaxed_correct``. Default (parser paper / cambrian): Cambrian's rule,
  ``style="cambrian"``: lowercase; when both parse as float, |p - t| <= 0.05 |t| (a zero target needs
  p == 0); otherwise exact equality; no "%" handling ("12%" vs "0.12" is wrong). parser="lmms": lmms-eval
  ``relaxed_correctness`` (a trailing "%" divides by 100, so "12%" vs "0.12" is right; the numeric test
  only for a non-zero target, so "0.0" vs "0" is wrong). Cambrian is the default because the paper's
  numbers came from Cambrian's scripts. Metrics: ``relaxed_overall`` (primary, mean over all items),
  ``human`` and ``augmented`` (per ``type``; a split absent from the run is absent from the result).
ocrbench (OCR & Chart) — ``echo840/OCRBench``, folder ``ocrbench``, ``data/test-*.parquet`` (1,000): columns
  dataset, question, question_type, answer (LIST of strings), image; id = row position. Prompt
  ``question + "\\n" + suffix``, suffix "Give the short answer directly.", max_new_tokens 512 (Cambrian;
  lmms-eval: question only, 128 tokens).
  Score: ``ocrbench_correct``: some ground truth is a SUBSTRING of the prediction (Cambrian's CLI
  default); lowercased and stripped, newlines -> spaces; for question_type "Handwritten Mathematical
  Expression Recognition" (HME100k) all spaces removed and case kept. Full-width ASCII folding
  (``fold_fullwidth``) is newer lmms-eval behaviour Cambrian lacks: off by default, on for parser="lmms".
  Metrics: ``accuracy`` (primary) = % correct of the items scored, i.e. #correct / 1000 x 100 on the full
  set (Cambrian's ``total_accuracy``; lmms-eval reports the same count / 1000), plus one accuracy per
  question_type under the question_type's own name (as Cambrian's per-category table).
docvqa (extra, category None, paper=False; Cambrian-1 comparability) — ``lmms-lab/DocVQA`` config
  ``DocVQA``, folder ``docvqa``, ``DocVQA/validation-*.parquet`` (5,349): columns questionId (string),
  question, question_types, image, docId, ucsf_document_id, ucsf_document_page_no, answers (list),
  data_split. (Test answers are hidden; Cambrian only wrote a submission file, so validation it is.)
  Prompt ``question + "\\n" + suffix``, suffix "Give the short answer directly." (Cambrian; lmms-eval
  "Answer the question using a single word or phrase." with 32 tokens), max_new_tokens 128.
  Score: ANLS, threshold 0.5 (``vqa_metrics.anls``). Default (paper / cambrian): ``raw_lengths=False``,
  the DocVQA definition (normalised strings for distance AND length; Cambrian-1's DocVQA numbers come
  from the official server); parser="lmms": ``raw_lengths=True``, lmms-eval's quirk of dividing by the
  RAW string lengths (so stray spaces or case padding raise the score). Primary ``anls``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from etils import epath

from visprior_jax.eval import vqa_metrics
from visprior_jax.eval.vqa.base import (PARSERS, BadRow, Benchmark, VQAItem, accuracy, field, image_ref,
                                        iter_parquet, join_suffix, parquet_files)

__all__ = ["BENCHMARKS", "CHARTQA", "DOCVQA", "OCRBENCH", "TEXTVQA", "TEXTVQA_NO_OCR", "HME_TYPE"]

HME_TYPE = "Handwritten Mathematical Expression Recognition"
SHORT_ANSWER = "Answer the question using a single word or phrase."
CHART_ANSWER = "Answer the question using a single number or phrase."
DIRECT_ANSWER = "Give the short answer directly."
CHARTQA_SPLITS = {"human_test": "human", "augmented_test": "augmented"}


# ---------------------------------------------------------------------------------------------
# Shared pieces


def _reference_style(parser: str) -> str:
  """The free-form scoring variant a parser setting selects: "lmms" or "cambrian" (paper follows Cambrian)."""
  if parser not in PARSERS:
    raise ValueError(f"unknown parser {parser!r}; choose one of {PARSERS}")
  return "lmms" if parser == "lmms" else "cambrian"


def _strings(row: Mapping, name: str) -> list[str]:
  """A non-empty list of strings (the ground-truth answers) or BadRow."""
  values = field(row, name, (list, tuple))
  if not values or not all(isinstance(v, str) for v in values):
    raise BadRow("no answers" if not values else "missing field", f"{name!r} empty or not strings")
  return list(values)


def _numbered(rows: Iterator[tuple[str, dict]]) -> Iterator[tuple[str, dict]]:
  """Adds ``_index`` (position within the split, over files in name order) for datasets without ids."""
  for n, (where, row) in enumerate(rows):
    row["_index"] = n
    yield where, row


def _group_accuracy(scored: Sequence[tuple[VQAItem, dict]], key: str) -> dict[str, float]:
  groups: dict[str, list[float]] = {}
  for item, record in scored:
    groups.setdefault(str(item.meta.get(key)), []).append(record["score"])
  return {g: 100.0 * sum(s) / len(s) for g, s in groups.items()}


# ---------------------------------------------------------------------------------------------
# TextVQA


def _textvqa_read(folder: epath.Path) -> Iterator[tuple[str, dict]]:
  files = parquet_files(folder, "validation")
  return iter_parquet(files, columns=["question_id", "question", "answers", "ocr_tokens", "image", "image_id"],
                      required=["question_id", "question", "answers", "ocr_tokens", "image"])


def _textvqa_item(row: Mapping, where: str, folder: epath.Path) -> VQAItem:
  qid = field(row, "question_id")
  question = field(row, "question", str)
  answers = _strings(row, "answers")
  tokens = field(row, "ocr_tokens", (list, tuple))
  image = image_ref(row.get("image"), folder)
  return VQAItem(id=str(qid), question=question, images=(image,), answer=answers,
                 meta={"ocr_tokens": [str(t) for t in tokens], "image_id": row.get("image_id")})


def textvqa_prompt(item: VQAItem, suffix: str = SHORT_ANSWER) -> str:
  """Cambrian: question, the "Reference OCR tokens:" line (bare when there are none), the suffix."""
  tokens = item.meta.get("ocr_tokens") or []
  ocr = "\nReference OCR tokens:" + (" " + ", ".join(tokens) if tokens else "")
  return join_suffix(item.question + ocr, suffix)


def textvqa_no_ocr_prompt(item: VQAItem, suffix: str = SHORT_ANSWER) -> str:
  """lmms-eval's default: ``question.capitalize()`` (rest lower-cased) and the suffix, no OCR tokens."""
  return join_suffix(item.question.capitalize(), suffix)


def textvqa_score(item: VQAItem, prediction: str, parser: str = "paper") -> dict:
  _reference_style(parser)   # validates; Cambrian and lmms-eval score TextVQA identically
  prediction = prediction or ""
  return {"score": vqa_metrics.vqa_soft_accuracy(prediction, item.answer),
          "normalized": vqa_metrics.normalize_vqa_answer(prediction)}


TEXTVQA = Benchmark(
    name="textvqa", category="OCR & Chart", folder="textvqa", source="lmms-lab/textvqa (validation)",
    read=_textvqa_read, to_item=_textvqa_item, prompt=textvqa_prompt, suffix=SHORT_ANSWER, max_new_tokens=512,
    score=textvqa_score, aggregate=accuracy, primary="accuracy")

TEXTVQA_NO_OCR = Benchmark(
    name="textvqa_no_ocr", category=None, folder="textvqa", source="lmms-lab/textvqa (validation)",
    read=_textvqa_read, to_item=_textvqa_item, prompt=textvqa_no_ocr_prompt, suffix=SHORT_ANSWER,
    max_new_tokens=512, score=textvqa_score, aggregate=accuracy, primary="accuracy", paper=False)


# ---------------------------------------------------------------------------------------------
# ChartQA


def _chartqa_read(folder: epath.Path) -> Iterator[tuple[str, dict]]:
  return _numbered(iter_parquet(parquet_files(folder, "test"), required=["type", "question", "answer", "image"]))


def _chartqa_item(row: Mapping, where: str, folder: epath.Path) -> VQAItem:
  question = field(row, "question", str)
  answer = field(row, "answer", str)
  image = image_ref(row.get("image"), folder)
  return VQAItem(id=str(row["_index"]), question=question, images=(image,), answer=answer,
                 meta={"type": row.get("type")})


def _plain_prompt(item: VQAItem, suffix: str) -> str:
  return join_suffix(item.question, suffix)


def chartqa_score(item: VQAItem, prediction: str, parser: str = "paper") -> dict:
  style = _reference_style(parser)
  ok = vqa_metrics.chartqa_relaxed_correct(prediction or "", item.answer, style=style)
  return {"score": float(ok), "style": style}


def chartqa_aggregate(scored: Sequence[tuple[VQAItem, dict]]) -> dict:
  out = {"relaxed_overall": accuracy(scored)["accuracy"]}
  for split, value in sorted(_group_accuracy(scored, "type").items()):
    if split in CHARTQA_SPLITS:
      out[CHARTQA_SPLITS[split]] = value
  return out


CHARTQA = Benchmark(
    name="chartqa", category="OCR & Chart", folder="chartqa", source="lmms-lab/ChartQA (test)",
    read=_chartqa_read, to_item=_chartqa_item, prompt=_plain_prompt, suffix=CHART_ANSWER, max_new_tokens=128,
    score=chartqa_score, aggregate=chartqa_aggregate, primary="relaxed_overall")


# ---------------------------------------------------------------------------------------------
# OCRBench


def _ocrbench_read(folder: epath.Path) -> Iterator[tuple[str, dict]]:
  return _numbered(iter_parquet(parquet_files(folder, "test"),
                                required=["dataset", "question", "question_type", "answer", "image"]))


def _ocrbench_item(row: Mapping, where: str, folder: epath.Path) -> VQAItem:
  question = field(row, "question", str)
  answers = _strings(row, "answer")
  qtype = field(row, "question_type", str)
  image = image_ref(row.get("image"), folder)
  return VQAItem(id=str(row["_index"]), question=question, images=(image,), answer=answers,
                 meta={"question_type": qtype, "dataset": row.get("dataset")})


def ocrbench_score(item: VQAItem, prediction: str, parser: str = "paper") -> dict:
  style = _reference_style(parser)
  ok = vqa_metrics.ocrbench_correct(prediction or "", item.answer,
                                    handwritten_math=item.meta.get("question_type") == HME_TYPE,
                                    fold_fullwidth=style == "lmms")
  return {"score": float(ok)}


def ocrbench_aggregate(scored: Sequence[tuple[VQAItem, dict]]) -> dict:
  out = accuracy(scored)
  for qtype, value in sorted(_group_accuracy(scored, "question_type").items()):
    out[qtype] = value
  return out


OCRBENCH = Benchmark(
    name="ocrbench", category="OCR & Chart", folder="ocrbench", source="echo840/OCRBench (test)",
    read=_ocrbench_read, to_item=_ocrbench_item, prompt=_plain_prompt, suffix=DIRECT_ANSWER, max_new_tokens=512,
    score=ocrbench_score, aggregate=ocrbench_aggregate, primary="accuracy")


# ---------------------------------------------------------------------------------------------
# DocVQA


def _docvqa_read(folder: epath.Path) -> Iterator[tuple[str, dict]]:
  files = parquet_files(folder, "validation", "DocVQA")
  return iter_parquet(files, columns=["questionId", "question", "question_types", "answers", "image", "docId",
                                      "ucsf_document_id", "ucsf_document_page_no"],
                      required=["questionId", "question", "answers", "image"])


def _docvqa_item(row: Mapping, where: str, folder: epath.Path) -> VQAItem:
  qid = field(row, "questionId")
  question = field(row, "question", str)
  answers = _strings(row, "answers")
  image = image_ref(row.get("image"), folder)
  return VQAItem(id=str(qid), question=question, images=(image,), answer=answers,
                 meta={"question_types": list(row.get("question_types") or []), "docId": row.get("docId")})


def docvqa_score(item: VQAItem, prediction: str, parser: str = "paper") -> dict:
  style = _reference_style(parser)
  return {"score": vqa_metrics.anls(prediction or "", item.answer, threshold=0.5, raw_lengths=style == "lmms")}


def docvqa_aggregate(scored: Sequence[tuple[VQAItem, dict]]) -> dict:
  return {"anls": accuracy(scored)["accuracy"]}


DOCVQA = Benchmark(
    name="docvqa", category=None, folder="docvqa", source="lmms-lab/DocVQA config DocVQA (validation)",
    read=_docvqa_read, to_item=_docvqa_item, prompt=_plain_prompt, suffix=DIRECT_ANSWER, max_new_tokens=128,
    score=docvqa_score, aggregate=docvqa_aggregate, primary="anls", paper=False)


BENCHMARKS: list[Benchmark] = [TEXTVQA, CHARTQA, OCRBENCH, TEXTVQA_NO_OCR, DOCVQA]
