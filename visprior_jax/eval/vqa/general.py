"""The paper's "General" benchmarks: GQA, MME, MMBench (EN dev) and SEED (image).

Every benchmark reads the local snapshot of its Hugging Face dataset as published (see ``base``)
and builds Cambrian-1's prompt (``cambrian-mllm/cambrian`` ``eval/eval/<bench>/<bench>_eval.py``),
because the paper says it follows Cambrian-1's evaluation suite. The suffix
(Cambrian's ``--question_extension``) is joined with a newline, as Cambrian does; the runner puts
the image tag before the text and applies the chat template. Scores are on 0-100.

GQA (``gqa``, folder ``gqa``, ``lmms-lab/GQA``)
  Files: ``testdev_balanced_instructions/testdev-*.parquet`` (id, imageId, question, answer,
  fullAnswer, types, ...) and ``testdev_balanced_images/testdev-*.parquet`` (id, image); ``read``
  joins the question's ``imageId`` to the image row's ``id`` (a question whose image is absent is
  BadRow "missing image"). Prompt: ``question + "\\n" + suffix``, suffix "Answer the question using
  a single word or phrase.", 128 new tokens (Cambrian). Score: Cambrian's exact match
  ``pred.lower().rstrip('.') == gt.lower()``; we also strip surrounding whitespace on both sides
  first (Cambrian strips the decoded output when it writes it, so this only makes the rule
  independent of whether the runner already stripped). lmms-eval's ``exact_match`` additionally
  ignores all punctuation; we do not. Metric ``accuracy`` (primary).

MME (``mme``, folder ``mme``, ``lmms-lab/MME`` split test)
  Rows: question_id (the image file, e.g. ``code_reasoning/0020.png``, shared by the 2 questions
  of an image), question (ending in " Please answer yes or no."), answer (Yes/No), category, image.
  Item ids are ``<question_id>#<k>`` (k = 0, 1: order of appearance). Prompt: the question AS IS
  + "\\n" + "Answer the question using a single word or phrase." - Cambrian keeps MME's own
  " Please answer yes or no." (lmms-eval removes it when it adds its post-prompt); we follow
  Cambrian. 32 new tokens (Cambrian). Score: ``vqa_metrics.mme_parse_yes_no`` (lmms-eval's
  ``parse_pred_ans``: yes/no, y/n, or "yes"/"no" within the first 4 characters) against the gold.
  Cambrian's rule (lowercase, rstrip ".", exact yes/no) agrees on clean outputs and is stricter on
  "Yes, there is ...". Aggregate with ``vqa_metrics.mme_scores``: per subtask acc, acc+ (both
  questions of an image right) and score = acc + acc+ (max 200), images grouped by
  (category, question_id) - NOT Cambrian's file-order parity hack.
  ``perception`` = sum over the 10 perception subtasks (max 2000), ``cognition`` = sum over the 4
  cognition ones (max 800). Primary ``perception_100`` = perception / 20, i.e. MME-P on 0-100:
  THIS /20 SCALING IS OUR ASSUMPTION. The paper averages MME with 0-100 benchmarks (its General
  average of 46.92 is impossible with raw MME-P) but never says how it rescales. With a partial run
  (``limit``) the sums cover only the subtasks present.
  Also reported: ``accuracy`` (per question) and ``score/<subtask>``, ``acc/<subtask>``,
  ``acc_plus/<subtask>``.

MMBench (``mmbench``, folder ``mmbench``, Cambrian's ``lmms-lab/MMBench_EN`` split dev)
  Rows: index, question, hint, A-D (an absent option is the string "nan" or null), answer
  (letter), category, l2-category (``L2-category`` in ``lmms-lab/MMBench``), source, image, ...
  Also reads ``lmms-lab/MMBench`` (lmms-eval): its ``en/dev-*.parquet`` is preferred when the
  folder holds that repo, so the ``cn`` config is never mixed in. Prompt (Cambrian):
  ``[hint + "\\n"] + question + " Options:" + "\\nA. ..."`` over the present options, then
  "\\n" + "Answer with the option's letter from the given choices directly.", 512 new tokens. A
  hint that is "nan", null or empty is left out (Cambrian tests only "nan"). Options must be a
  prefix A, B[, C[, D]] (a gap is BadRow "malformed options"); a gold letter outside them is
  BadRow "answer not among options".
  Circular evaluation. The dev split holds each question several times with rotated options.
  Cambrian groups rows by ``question + image hash + source`` (within a category); lmms-eval /
  VLMEvalKit by ``index % 1e6`` (copies carry index k*1e6 + i). We put two rows in one group when
  EITHER key matches (union-find), which is right for both releases: the content key
  (category, question, sha1 of the encoded image bytes, source) finds copies whatever the index
  scheme, and the index key finds them even if a copy's image were re-encoded (Cambrian hashes
  the decoded pixels; we hash the stored bytes to avoid decoding every image at load time).
  Primary ``circular_accuracy`` (a group counts only if every copy is right; the Cambrian table
  column); also ``accuracy`` (per row, "vanilla"), ``groups`` and ``circular_accuracy/<category>``.
  Parsing: ``base.parse_mc`` with the selected parser (default the paper's three-tier parser);
  Cambrian uses ``extract_mcq_answer`` (parser "cambrian"), lmms-eval a GPT judge after its own
  option / text rules (not reproduced).

SEED (``seed``, folder ``seed``, ``lmms-lab/SEED-Bench`` split test)
  Rows: question, choice_a..choice_d, answer (letter), data_type ("image"/"video"),
  question_type_id, question_id, image (a LIST of images: 1 for image items, several frames for
  video items). Only image items belong to SEED-Image: ``read`` drops rows whose data_type is not
  "image" (or, without a data_type, that hold more than one image - Cambrian's test) before they
  reach ``to_item`` and logs how many it dropped; dropping them there (not as BadRow) keeps
  ``on_error="raise"`` usable on the full release. Prompt (Cambrian): ``question + " Options:" +
  "\\nA. ..." ... "\\nD. ..."`` + "\\n" + letter suffix, 512 new tokens. Primary ``accuracy``;
  also ``accuracy/<question_type_id>``. lmms-eval instead takes the first character of the output
  (parser "lmms" is the closest of ours); Cambrian uses ``extract_mcq_answer`` with rstrip(".").
"""

from __future__ import annotations

import collections
import hashlib
import logging
from collections.abc import Iterator, Mapping, Sequence

from etils import epath

from visprior_jax.eval import vqa_metrics
from visprior_jax.eval.vqa.base import (LETTER_SUFFIX, LETTERS, SHORT_ANSWER, BadRow, Benchmark, VQAItem, accuracy,
                                        accuracy_by_group, field, image_ref, iter_parquet, join_suffix, mc_score,
                                        options_block, parquet_files, text_field)

__all__ = ["BENCHMARKS", "GQA", "MMBENCH", "MME", "SEED", "circular_groups", "gqa_normalize"]

# ---------------------------------------------------------------------------------------------
# Small pieces


def _absent(value) -> bool:
  """MMBench's markers of a missing hint / option: null, "" or the pandas "nan" string."""
  return value is None or (isinstance(value, str) and value.strip() in ("", "nan"))


def _question_prompt(item: VQAItem, suffix: str = SHORT_ANSWER) -> str:
  """GQA and MME (Cambrian): the question, a newline, the suffix."""
  return join_suffix(item.question, suffix)


# ---------------------------------------------------------------------------------------------
# GQA


def _gqa_read(folder: epath.Path) -> Iterator[tuple[str, Mapping]]:
  q_files = parquet_files(folder, "testdev", "testdev_balanced_instructions")
  i_files = parquet_files(folder, "testdev", "testdev_balanced_images")
  images = {}
  for _, row in iter_parquet(i_files, required=["id", "image"]):
    images[str(row["id"])] = row["image"]
  for where, row in iter_parquet(q_files, required=["id", "imageId", "question", "answer"]):
    row["image"] = images.get(str(row.get("imageId")))
    yield where, row


def _gqa_item(row: Mapping, where: str, folder: epath.Path) -> VQAItem:
  question, answer = text_field(row, "question"), text_field(row, "answer")
  image = image_ref(row.get("image"), folder)
  return VQAItem(id=str(field(row, "id")), question=question, images=(image,), answer=answer,
                 meta={"imageId": str(field(row, "imageId")), "fullAnswer": row.get("fullAnswer")})


def gqa_normalize(text: str) -> str:
  """Cambrian's GQA comparison form: stripped, lowercased, trailing periods removed."""
  return text.strip().lower().rstrip(".").strip()


def _gqa_score(item: VQAItem, prediction: str, parser: str = "paper") -> dict:
  del parser
  pred = gqa_normalize(prediction)
  return {"score": float(pred == item.answer.strip().lower()), "parsed": pred}


GQA = Benchmark(
    name="gqa", category="General", folder="gqa",
    source="lmms-lab/GQA testdev_balanced_instructions + testdev_balanced_images (split testdev)",
    read=_gqa_read, to_item=_gqa_item, prompt=_question_prompt,
    suffix=SHORT_ANSWER, max_new_tokens=128, score=_gqa_score, aggregate=accuracy)


# ---------------------------------------------------------------------------------------------
# MME


def _mme_read(folder: epath.Path) -> Iterator[tuple[str, Mapping]]:
  seen = collections.Counter()
  for where, row in iter_parquet(parquet_files(folder, "test"),
                                 required=["question_id", "question", "answer", "category", "image"]):
    qid = row.get("question_id")
    row["_occurrence"] = seen[qid]
    seen[qid] += 1
    yield where, row


def _mme_item(row: Mapping, where: str, folder: epath.Path) -> VQAItem:
  qid, question, category = text_field(row, "question_id"), text_field(row, "question"), text_field(row, "category")
  answer = text_field(row, "answer").strip()
  if answer.lower() not in ("yes", "no"):
    raise BadRow("answer not yes/no", repr(answer)[:40])
  image = image_ref(row.get("image"), folder)
  return VQAItem(id=f"{qid}#{row.get('_occurrence', 0)}", question=question, images=(image,), answer=answer,
                 meta={"question_id": qid, "category": category})


def _mme_score(item: VQAItem, prediction: str, parser: str = "paper") -> dict:
  del parser
  parsed = vqa_metrics.mme_parse_yes_no(prediction)
  return {"score": float(parsed == item.answer.lower()), "parsed": parsed}


def _mme_aggregate(scored: Sequence[tuple[VQAItem, dict]]) -> dict:
  records = [{"category": it.meta["category"], "question_id": it.meta["question_id"], "correct": rec["score"] == 1.0}
             for it, rec in scored]
  per = vqa_metrics.mme_scores(records)
  perception = vqa_metrics.mme_total(per, vqa_metrics.MME_PERCEPTION)
  cognition = vqa_metrics.mme_total(per, vqa_metrics.MME_COGNITION)
  out = {"perception_100": perception / 20.0, "perception": perception, "cognition": cognition,
         **accuracy(scored)}
  for cat in sorted(per):
    out[f"score/{cat}"] = per[cat]["score"]
    out[f"acc/{cat}"] = per[cat]["acc"]
    out[f"acc_plus/{cat}"] = per[cat]["acc_plus"]
  return out


MME = Benchmark(
    name="mme", category="General", folder="mme", source="lmms-lab/MME (split test)",
    read=_mme_read, to_item=_mme_item, prompt=_question_prompt,
    suffix=SHORT_ANSWER, max_new_tokens=32, score=_mme_score, aggregate=_mme_aggregate, primary="perception_100")


# ---------------------------------------------------------------------------------------------
# MMBench


def _mmbench_read(folder: epath.Path) -> Iterator[tuple[str, Mapping]]:
  try:
    files = parquet_files(folder, "dev", "en")          # lmms-lab/MMBench (configs en, cn, cc)
  except ValueError:
    files = parquet_files(folder, "dev")                # lmms-lab/MMBench_EN (data/dev-*)
  yield from iter_parquet(files, required=["index", "question", "hint", "A", "B", "answer", "category", "image",
                                           "source"])


def _digest(image) -> str:
  data = image if isinstance(image, bytes) else str(image).encode()
  return hashlib.sha1(data).hexdigest()[:16]


def _mmbench_item(row: Mapping, where: str, folder: epath.Path) -> VQAItem:
  index, question = field(row, "index"), text_field(row, "question")
  category = text_field(row, "category")
  options = []
  for i, letter in enumerate("ABCD"):
    value = row.get(letter)
    if _absent(value):
      if any(not _absent(row.get(later)) for later in "ABCD"[i + 1:]):
        raise BadRow("malformed options", f"option {letter} missing but a later one present")
      break
    options.append(str(value))
  if len(options) < 2:
    raise BadRow("malformed options", f"{len(options)} option(s)")
  answer = str(row.get("answer") or "").strip().upper()
  if answer not in LETTERS[:len(options)]:
    raise BadRow("answer not among options", repr(row.get("answer"))[:40])
  image = image_ref(row.get("image"), folder)
  hint = row.get("hint")
  source = str(row.get("source") or "")
  try:
    index_group = int(index) % 1_000_000
  except (TypeError, ValueError):
    index_group = None
  return VQAItem(id=str(index), question=question, images=(image,), options=tuple(options), answer=answer,
                 meta={"hint": None if _absent(hint) else str(hint), "category": category,
                       "l2_category": row.get("l2-category", row.get("L2-category")), "source": source,
                       "content_key": f"{category}|{question}|{_digest(image)}|{source}",
                       "index_group": index_group})


def _mmbench_prompt(item: VQAItem, suffix: str = LETTER_SUFFIX) -> str:
  hint = item.meta.get("hint")
  text = (f"{hint}\n" if hint else "") + item.question + " Options:" + options_block(item.options)
  return join_suffix(text, suffix)


def circular_groups(items: Sequence[VQAItem]) -> list[list[int]]:
  """Positions of ``items`` grouped into circular copies: two items are copies when they share the
  content key (category, question, image digest, source; Cambrian) OR ``index % 1e6`` (lmms-eval)."""
  parent = list(range(len(items)))

  def find(i):
    while parent[i] != i:
      parent[i] = parent[parent[i]]
      i = parent[i]
    return i

  first: dict = {}
  for i, item in enumerate(items):
    for key in (("content", item.meta.get("content_key")), ("index", item.meta.get("index_group"))):
      if key[1] is None:
        continue
      j = first.setdefault(key, i)
      parent[find(i)] = find(j)
  groups = collections.defaultdict(list)
  for i in range(len(items)):
    groups[find(i)].append(i)
  return list(groups.values())


def _mmbench_aggregate(scored: Sequence[tuple[VQAItem, dict]]) -> dict:
  items = [it for it, _ in scored]
  groups = circular_groups(items)
  ok = [all(scored[i][1]["score"] == 1.0 for i in g) for g in groups]
  out = {"circular_accuracy": 100.0 * sum(ok) / len(ok) if ok else 0.0, "groups": float(len(groups)),
         **accuracy(scored)}
  per_cat = collections.defaultdict(list)
  for g, good in zip(groups, ok):
    per_cat[items[g[0]].meta["category"]].append(good)
  for cat in sorted(per_cat):
    out[f"circular_accuracy/{cat}"] = 100.0 * sum(per_cat[cat]) / len(per_cat[cat])
  return out


MMBENCH = Benchmark(
    name="mmbench", category="General", folder="mmbench",
    source="lmms-lab/MMBench_EN (split dev; Cambrian) or lmms-lab/MMBench config en (split dev)",
    read=_mmbench_read, to_item=_mmbench_item, prompt=_mmbench_prompt, suffix=LETTER_SUFFIX, max_new_tokens=512,
    score=mc_score, aggregate=_mmbench_aggregate, primary="circular_accuracy")


# ---------------------------------------------------------------------------------------------
# SEED (image)


def _seed_is_image(row: Mapping) -> bool:
  kind = row.get("data_type")
  if kind is not None:
    return str(kind).lower() == "image"
  images = row.get("image")
  return not (isinstance(images, (list, tuple)) and len(images) > 1)


def _seed_read(folder: epath.Path) -> Iterator[tuple[str, Mapping]]:
  dropped = 0
  for where, row in iter_parquet(parquet_files(folder, "test"),
                                 required=["question", "choice_a", "choice_b", "choice_c", "choice_d", "answer",
                                           "question_id", "image"]):
    if not _seed_is_image(row):
      dropped += 1
      continue
    yield where, row
  if dropped:
    logging.info("seed: %d video items left out (SEED-Image uses image items only)", dropped)


def _seed_item(row: Mapping, where: str, folder: epath.Path) -> VQAItem:
  question = text_field(row, "question")
  options = tuple(text_field(row, f"choice_{c}") for c in "abcd")
  answer = text_field(row, "answer").strip().upper()
  if answer not in LETTERS[:4]:
    raise BadRow("answer not among options", repr(row.get("answer"))[:40])
  images = row.get("image")
  if isinstance(images, Mapping) or isinstance(images, (bytes, str)):
    images = [images]
  if not images:
    raise BadRow("missing image", "empty image list")
  image = image_ref(images[0], folder)
  return VQAItem(id=str(field(row, "question_id")), question=question, images=(image,), options=options,
                 answer=answer, meta={"question_type_id": row.get("question_type_id"),
                                      "data_type": row.get("data_type")})


def _seed_prompt(item: VQAItem, suffix: str = LETTER_SUFFIX) -> str:
  return join_suffix(item.question + " Options:" + options_block(item.options), suffix)


def _seed_aggregate(scored: Sequence[tuple[VQAItem, dict]]) -> dict:
  out = accuracy(scored)
  for qt, acc in sorted(accuracy_by_group(scored, lambda it: str(it.meta.get("question_type_id"))).items()):
    out[f"accuracy/{qt}"] = acc
  return out


SEED = Benchmark(
    name="seed", category="General", folder="seed", source="lmms-lab/SEED-Bench (split test, image items)",
    read=_seed_read, to_item=_seed_item, prompt=_seed_prompt, suffix=LETTER_SUFFIX, max_new_tokens=512,
    score=mc_score, aggregate=_seed_aggregate)


BENCHMARKS: list[Benchmark] = [GQA, MME, MMBENCH, SEED]
