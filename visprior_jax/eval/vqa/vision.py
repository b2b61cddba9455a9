"""Vision-Centric benchmarks (RealWorldQA, BLINK, CV-Bench COCO / ADE / Omni3D) and the extra MMVP.

Facts come from the Cambrian ``eval/eval/<bench>/`` scripts and
lmms-eval's task utils; nothing is copied. Prompts follow Cambrian (the paper followed Cambrian-1); the
default multiple-choice parser is the paper's three-tier parser (``base.parse_mc(..., "paper")``); the
``lmms`` and ``cambrian`` parsers reproduce the reference rules where they differ (listed per benchmark).

Reading: HF parquet snapshots through ``base.iter_parquet``; split files are found by ``base.parquet_files``.

RealWorldQA (``realworldqa``, Vision-Centric, folder ``realworldqa``)
  Layout: ``lmms-lab/RealWorldQA`` snapshot, ``data/test-0000k-of-0000n.parquet`` with columns ``image``
  (HF Image), ``question`` (the instruction is already inside), ``answer`` (a letter for multiple choice,
  short text otherwise). Ids are the 0-based row ordinal over the split's files (the set has no id column).
  Prompt: the question as is; Cambrian declares a suffix but never appends it, so ``suffix=""``; a non-empty
  suffix (the judge's) is appended after a newline. ``max_new_tokens`` 512.
  Options: the multiple-choice items list their options inside the question, one per line. They are
  extracted with ``^[ \\t]*\\(?([A-Z])[.)][ \\t]+(\\S.*?)[ \\t]*$`` (multi-line; "A. text", "A) text",
  "(A) text"), keeping the first line per letter and the run A, B, C, ... up to the first missing letter.
  An item is multiple choice when its gold is one capital letter among the extracted letters (at least two);
  otherwise it is an open item (a letter gold without listed options is scored as open, which for such an
  item is exactly Cambrian's rule anyway).
  Scoring. Multiple choice: ``parse_mc`` with the selected parser (lmms-eval really uses its own
  ``extract_mcq_answer`` priority extractor for RealWorldQA; ``lmms`` here is the shared start-of-output
  letter rule, an approximation). Open items, parsers ``paper`` and ``cambrian``: Cambrian's rule
  (``realworldqa_test.py``): lowercase and strip; for each of "answer is", "answer is:", "answer:" in that
  order, if present keep the text after its last occurrence; strip, rstrip("."); first whitespace token;
  equal to the lowercased gold (the gold is also stripped here; an empty output is wrong, where Cambrian
  would crash). Open items, parser ``lmms``: ``pred.lower().strip().rstrip('.') == gold.lower()``.
  With parser ``cambrian`` the multiple-choice items also use Cambrian's first-token rule (its script
  treats every item the same way): "B." -> b (right), "(B)" -> "(b)" (wrong).
  Metrics: ``accuracy`` (primary), ``accuracy_mc``, ``accuracy_open``.

BLINK (``blink``, Vision-Centric, folder ``blink``)
  Layout: ``BLINK-Benchmark/BLINK`` snapshot, one config folder per task, ``<Task>/val-00000-of-00001.parquet``
  (``<Task>/val/0000.parquet`` also works); columns ``idx``, ``question``, ``sub_task``, ``image_1`` ..
  ``image_4`` (HF Image, null when unused), ``choices`` (list), ``answer`` ("(A)"), ``prompt`` (question and
  "(A) ..." options pre-formatted), ``explanation``. Only the ``val`` split has answers. Only Cambrian's six
  pooled tasks are read: Counting, IQ_Test, Object_Localization, Relative_Depth, Relative_Reflectance,
  Spatial_Relation; other task folders are ignored. Decision: a folder with none of the six is a ValueError
  naming the folder and the layout; a folder with only some of them is ALSO a ValueError listing the missing
  configs, because a pooled accuracy over a subset is silently not the paper's number.
  Ids: ``idx`` when it is a string (the current release: "val_Counting_1"), else "<Task>/<idx>".
  Prompt (Cambrian ``blink_eval.py``): dataset ``prompt`` + "\\n" + "Please answer directly with only the
  letter of the correct option and nothing else."; ``max_new_tokens`` 32. Images: every non-null
  ``image_k`` in order (``max_images`` 4); the six tasks are single-image in the release, and Cambrian only
  ever sends ``image_1``. Gold letter = ``answer[1]``.
  Scoring: ``paper`` and ``lmms`` through ``parse_mc`` (``lmms`` = lmms-eval 0.7.3 BLINK: start-of-output
  letter restricted to the item's letters). ``cambrian`` is BLINK's own rule (``blink_test.py``), not the
  shared letter extractor: the text before the first ".", lowercased and stripped, its first
  space-separated token, "(" / ")" stripped, equal to the lowercased gold letter ("(b) two" -> b, "B." -> b,
  "Answer: B" -> wrong).
  Metrics: ``accuracy`` pooled over the six tasks (primary, as Cambrian), ``accuracy_<Task>`` per task.

CV-Bench by image source: ``coco``, ``ade``, ``omni3d`` (Vision-Centric, one shared folder ``cv_bench``)
  Layout: ``nyu-visionx/CV-Bench`` snapshot. The current release has ``test_2d.parquet`` (configs ``2D``;
  sources COCO and ADE20K) and ``test_3d.parquet`` (``3D``; Omni3D); the older one a single ``test.parquet``
  (config ``default``); ``refs/convert/parquet`` copies (``default/test/0000.parquet``, ``2D/test/...``)
  are recognised too. The ``default`` files are read when present, else the ``2D`` files (COCO, ADE) or the
  ``3D`` files (Omni3D). Columns used: ``idx``, ``type``, ``task``, ``source`` (COCO / ADE20K / Omni3D,
  compared case-insensitively), ``prompt`` (pre-formatted with "(A) ..." options), ``choices``, ``answer``
  ("(A)"), ``question``, ``image``; rows of the other sources are skipped; a folder with no row of the
  benchmark's source is a ValueError. Ids: ``idx``.
  Prompt (Cambrian ``coco_eval.py`` etc.): dataset ``prompt`` + "\\n" + "Answer with the option's letter
  from the given choices directly."; ``max_new_tokens`` 512.
  Scoring: ``paper`` / ``lmms`` via ``parse_mc``. lmms-eval's CV-Bench regex accepts ANY capital at the
  start ("There are 2" -> "T"); ``parse_mc(..., "lmms")`` restricts it to the item's letters, which gives
  None instead of a wrong letter: the score is the same. ``cambrian``: the shared ``extract_mcq_answer``
  (``vqa_metrics.parse_choice_cambrian``) with rstrip "." for COCO / ADE and ".:," for Omni3D, as the
  scripts do (one known difference: Cambrian cuts at "answer is", "answer is:", "answer:" one after the
  other, so "The answer is: B" leaves ": b" and is wrong there; the shared function cuts after the phrase
  that ends last and reads B). Cambrian's Omni script also accepts an answer equal to the gold option text,
  but it compares the extractor's one-character output, so that branch can only fire for one-character
  options; it is not reproduced. (The paper parser's tier 2 accepts exact option texts for every source.)
  Metrics: ``accuracy`` per source (primary: the paper reports COCO, ADE and Omni3D separately) and
  ``accuracy_<task>`` (Count, Relation, Depth, Distance). CV-Bench's official overall
  ½·[(ADE + COCO)/2 + Omni3D] is NOT one of the paper's 16 numbers; :func:`cv_bench_overall` computes it
  (with CV-Bench-2D = mean(ADE, COCO), 3D = Omni3D) from the three accuracies for reference.

MMVP (``mmvp``, extra: category None, ``paper=False``, folder ``mmvp``)
  Layouts: (1) the original ``MMVP/MMVP`` release: ``Questions.csv`` (header ``Index,Question,Options,
  Correct Answer``; some copies spell the first header cell "lndex"; columns are read by position) and
  ``MMVP Images/<Index>.jpg``; rows are named ``Questions.csv:<line>``; a row without 4 cells (trailing
  empty cells ignored) is a bad row.
  (2) lmms-eval's ``lmms-lab-eval/MMVP`` parquet (``data/train-*.parquet``, columns ``Index``,
  ``Question``, ``Options``, ``Correct Answer``, ``image``), read when there is no ``Questions.csv``.
  Options look like "(a) Open (b) Closed"; Correct Answer like "(a)". Gold letters are upper-case A / B.
  Ground truth: the CSV carries the original answers (what Cambrian-1 scored); lmms-eval's parquet has
  indices 99/100 and 279/280 swapped back (99 -> (b), 100 -> (a), 279 -> (b), 280 -> (a); lmms-eval issue
  #1018, MMVP issue #30) and lmms-eval also applies that table in code. Here the gold is whatever the file
  says, and ``meta["corrected_answer"]`` holds lmms-eval's corrected letter, scored alongside
  (``*_corrected`` metrics), so both conventions are reported from one run.
  Prompt (Cambrian ``mmvp_eval.py``, as in the published script): question + " Options:" + "\\nA. <a>" +
  "\\nB. <b>" + "\\n" + letter suffix; ``max_new_tokens`` 512. Note: a reading of the script may give the options as
  "(a) ... (b) ..."; the script actually rewrites them to "A." / "B." (its "(b)" line is commented out),
  so the model sees capital letters, which is what the paper parser reads.
  Scoring: ``paper``: before the three-tier parser, a prediction that is only a lower-case letter ("a",
  "(b)", "a.") and any parenthesised lower-case option marker "(a)" / "(b)" are upper-cased, since the
  dataset's own markers are lower case (the paper parser reads upper-case letters only; its text tiers then
  cover "(a) Open" anyway). ``lmms``: lmms-eval's MMVP cascade (case-insensitive; only A/B): whole output
  a letter; leading letter followed by "." or space; "answer is X"; "option X"; any stand-alone A/B; else
  the first character if it is a or b ("Blue" -> B, a quirk kept). ``cambrian``: ``mmvp_test.py``: lowercase,
  the same "answer is" cuts as RealWorldQA, strip, rstrip(".:,"), lstrip("("), rstrip(")"); right if the
  rest equals the gold letter or the gold option text (lowercased).
  Pairs: items with Index 2k-1 and 2k (1-based) form pair k (lmms-eval ``(Index-1)//2``; Cambrian pairs by
  file order, which is the same for the full file). ``pair_accuracy`` (primary) counts a pair when both
  its items are right, over the pairs with both items loaded (a pair missing an item is left out);
  ``accuracy`` is per question; ``pair_accuracy_corrected`` / ``accuracy_corrected`` use the corrected
  ground truth.
"""

from __future__ import annotations

import collections
import csv
import io
import re
from collections.abc import Iterator, Mapping, Sequence

from etils import epath

from visprior_jax.eval import vqa_metrics
from visprior_jax.eval.vqa.base import (LETTERS, PARSERS, BadRow, Benchmark, VQAItem, accuracy, field, glob_files,
                                        image_ref, iter_parquet, join_suffix, mc_score, parquet_files, parse_mc)

__all__ = ["BENCHMARKS", "BLINK_SUFFIX", "BLINK_TASKS", "CV_BENCH_SOURCES", "LETTER_SUFFIX", "MMVP_CORRECTIONS",
           "blink", "cambrian_blink_letter", "cambrian_first_token", "cv_bench_overall", "lmms_mmvp_letter",
           "mmvp", "realworldqa", "realworldqa_options"]

LETTER_SUFFIX = "Answer with the option's letter from the given choices directly."
BLINK_SUFFIX = "Please answer directly with only the letter of the correct option and nothing else."
BLINK_TASKS = ("Counting", "IQ_Test", "Object_Localization", "Relative_Depth", "Relative_Reflectance",
               "Spatial_Relation")
CV_BENCH_SOURCES = {"coco": "COCO", "ade": "ADE20K", "omni3d": "Omni3D"}
# lmms-eval's corrected MMVP ground truth (1-based Index -> letter); all other items keep the file's answer.
MMVP_CORRECTIONS = {99: "B", 100: "A", 279: "B", 280: "A"}


def _all_parquet(root: epath.Path) -> list[epath.Path]:
  """Every ``*.parquet`` under ``root``, sorted."""
  return glob_files(root, "**/*.parquet")


def _check_parser(parser: str) -> None:
  if parser not in PARSERS:
    raise ValueError(f"unknown parser {parser!r}; choose one of {PARSERS}")


def _paren_letter(value, n_options: int) -> str:
  """The gold letter of an "(A)"-style answer among ``n_options`` options, else BadRow."""
  m = re.fullmatch(r"\s*\(?([A-Z])\)?\s*", value) if isinstance(value, str) else None
  if m is None or m.group(1) not in LETTERS[:n_options]:
    raise BadRow("answer not among options", f"answer {value!r} with {n_options} options")
  return m.group(1)


def _choices(row: Mapping, name: str = "choices") -> tuple[str, ...]:
  value = row.get(name)
  if not isinstance(value, (list, tuple)) or len(value) < 2 or not all(isinstance(c, str) for c in value):
    raise BadRow("missing field", f"{name!r} absent or malformed")
  return tuple(value)


def _cambrian_cut(text: str) -> str:
  """Cambrian's answer-phrase cut: lowercase, strip, then for "answer is", "answer is:", "answer:" in this
  order, keep what follows the last occurrence when the phrase occurs."""
  s = text.lower().strip()
  for phrase in ("answer is", "answer is:", "answer:"):
    if phrase in s:
      s = s.split(phrase)[-1]
  return s


def cambrian_first_token(prediction: str) -> str | None:
  """Cambrian's RealWorldQA extraction: the phrase cut, strip, rstrip("."), first whitespace token."""
  parts = _cambrian_cut(prediction).strip().rstrip(".").split()
  return parts[0] if parts else None


def _mc_record(letter: str | None, gold: str) -> dict:
  return {"score": float(letter is not None and letter == gold), "parsed": letter}


def _per_key(scored, key: str, prefix: str = "accuracy_") -> dict:
  groups = collections.defaultdict(list)
  for item, rec in scored:
    groups[item.meta[key]].append((item, rec))
  return {prefix + str(k): accuracy(v)["accuracy"] for k, v in groups.items()}


# ---------------------------------------------------------------------------------------------
# RealWorldQA

_RWQA_OPTION = re.compile(r"^[ \t]*\(?([A-Z])[.)][ \t]+(\S.*?)[ \t]*$", re.M)


def realworldqa_options(question: str) -> tuple[str, ...]:
  """Option texts listed in a RealWorldQA question, in letter order (empty when fewer than two)."""
  found: dict[str, str] = {}
  for m in _RWQA_OPTION.finditer(question):
    found.setdefault(m.group(1), m.group(2))
  options = []
  for letter in LETTERS:
    if letter not in found:
      break
    options.append(found[letter])
  return tuple(options) if len(options) >= 2 else ()


def _rwqa_read(folder) -> Iterator[tuple[str, dict]]:
  files = parquet_files(folder, "test")
  for n, (where, row) in enumerate(iter_parquet(files, required=["question", "answer", "image"])):
    yield where, dict(row, _index=n)


def _rwqa_to_item(row: Mapping, where: str, folder) -> VQAItem:
  question = field(row, "question", str)
  answer = field(row, "answer", str).strip()
  if not answer:
    raise BadRow("missing field", "'answer' is empty")
  image = image_ref(row.get("image"), folder)
  options = realworldqa_options(question)
  is_mc = bool(re.fullmatch(r"[A-Z]", answer)) and answer in LETTERS[:len(options)]
  return VQAItem(id=str(row["_index"]), question=question, images=(image,), options=options if is_mc else (),
                 answer=answer, meta={"kind": "mc" if is_mc else "open"})


def _rwqa_prompt(item: VQAItem, suffix: str = "") -> str:
  return join_suffix(item.question, suffix)


def _rwqa_score(item: VQAItem, prediction: str, parser: str = "paper") -> dict:
  _check_parser(parser)
  mc = item.meta["kind"] == "mc"
  if parser == "cambrian" or (parser == "paper" and not mc):
    token = cambrian_first_token(prediction)
    if mc:
      letter = token.upper() if token is not None and len(token) == 1 and token.isalpha() else None
      return _mc_record(letter, item.answer)
    return {"score": float(token is not None and token == item.answer.lower()), "parsed": token}
  if mc:
    return mc_score(item, prediction, parser)
  norm = prediction.lower().strip().rstrip(".")
  return {"score": float(norm == item.answer.lower()), "parsed": norm}


def _rwqa_aggregate(scored: Sequence[tuple[VQAItem, dict]]) -> dict:
  out = accuracy(scored)
  for kind in ("mc", "open"):
    part = [(i, r) for i, r in scored if i.meta["kind"] == kind]
    if part:
      out[f"accuracy_{kind}"] = accuracy(part)["accuracy"]
  out["primary"] = out["accuracy"]
  return out


realworldqa = Benchmark(
    name="realworldqa", category="Vision-Centric", folder="realworldqa", source="lmms-lab/RealWorldQA (test)",
    read=_rwqa_read, to_item=_rwqa_to_item, prompt=_rwqa_prompt, suffix="", max_new_tokens=512,
    score=_rwqa_score, aggregate=_rwqa_aggregate)


# ---------------------------------------------------------------------------------------------
# BLINK


def _blink_read(folder) -> Iterator[tuple[str, dict]]:
  root = epath.Path(folder)
  if not root.exists():
    raise FileNotFoundError(f"{root}: benchmark folder not found")
  found, missing = {}, []
  for task in BLINK_TASKS:
    try:
      found[task] = parquet_files(root, "val", task)
    except ValueError:
      missing.append(task)
  if not found:
    raise ValueError(f"{root}: none of the BLINK tasks {list(BLINK_TASKS)} found; expected the "
                     "BLINK-Benchmark/BLINK layout <Task>/val-00000-of-00001.parquet")
  if missing:
    raise ValueError(f"{root}: BLINK task config(s) {missing} missing (no <Task>/val-*.parquet); the paper's "
                     f"BLINK pools all of {list(BLINK_TASKS)}")
  for task in BLINK_TASKS:
    for where, row in iter_parquet(found[task], required=["idx", "prompt", "choices", "answer", "image_1"]):
      yield where, dict(row, _task=task)


def _blink_to_item(row: Mapping, where: str, folder) -> VQAItem:
  task = row["_task"]
  prompt = field(row, "prompt", str)
  choices = _choices(row)
  gold = _paren_letter(row.get("answer"), len(choices))
  if row.get("image_1") is None:
    raise BadRow("missing image", "image_1 is null")
  images = tuple(image_ref(row[f"image_{k}"], folder) for k in range(1, 5) if row.get(f"image_{k}") is not None)
  idx = field(row, "idx")
  return VQAItem(id=idx if isinstance(idx, str) else f"{task}/{idx}", question=row.get("question") or prompt,
                 images=images, options=choices, answer=gold,
                 meta={"task": task, "sub_task": row.get("sub_task"), "prompt": prompt})


def _prompt_field(item: VQAItem, suffix: str) -> str:
  return join_suffix(item.meta["prompt"], suffix)


def cambrian_blink_letter(prediction: str) -> str | None:
  """Cambrian's BLINK rule: text before the first ".", lowercased and stripped, first space-separated token,
  "(" / ")" stripped; an upper-case letter when that is one letter, else None."""
  token = prediction.split(".")[0].lower().strip().split(" ")[0].lstrip("(").rstrip(")")
  return token.upper() if len(token) == 1 and "a" <= token <= "z" else None


def _blink_score(item: VQAItem, prediction: str, parser: str = "paper") -> dict:
  _check_parser(parser)
  if parser == "cambrian":
    return _mc_record(cambrian_blink_letter(prediction), item.answer)
  return mc_score(item, prediction, parser)


def _blink_aggregate(scored: Sequence[tuple[VQAItem, dict]]) -> dict:
  out = accuracy(scored)
  out.update(_per_key(scored, "task"))
  out["primary"] = out["accuracy"]
  return out


blink = Benchmark(
    name="blink", category="Vision-Centric", folder="blink",
    source="BLINK-Benchmark/BLINK (val; " + ", ".join(BLINK_TASKS) + ")",
    read=_blink_read, to_item=_blink_to_item, prompt=_prompt_field, suffix=BLINK_SUFFIX, max_new_tokens=32,
    score=_blink_score, aggregate=_blink_aggregate, max_images=4)


# ---------------------------------------------------------------------------------------------
# CV-Bench (COCO, ADE, Omni3D)


def _cv_bench_files(folder, kind: str) -> list[epath.Path]:
  """The ``default`` config's files when present, else those of ``kind`` ("2D" or "3D")."""
  root = epath.Path(folder)
  if not root.exists():
    raise FileNotFoundError(f"{root}: benchmark folder not found")
  default, by_kind = [], {"2D": [], "3D": []}
  for f in _all_parquet(root):
    dirs = f.relative_to(root).parts[:-1]
    stem = f.name[:-len(".parquet")].lower()
    if "2D" in dirs or stem.startswith("test_2d"):
      by_kind["2D"].append(f)
    elif "3D" in dirs or stem.startswith("test_3d"):
      by_kind["3D"].append(f)
    elif stem == "test" or stem.startswith("test-") or ("default" in dirs and "test" in dirs):
      default.append(f)
  if default or by_kind[kind]:
    return default or by_kind[kind]
  raise ValueError(f"{root}: no CV-Bench parquet files for {kind}; expected the nyu-visionx/CV-Bench layout "
                   f"test_{kind.lower()}.parquet (or the older test.parquet)")


def _cv_bench_reader(source: str):
  kind = "3D" if source == "Omni3D" else "2D"

  def read(folder) -> Iterator[tuple[str, dict]]:
    files = _cv_bench_files(folder, kind)
    n = 0
    for where, row in iter_parquet(files, required=["idx", "source", "prompt", "choices", "answer", "image"]):
      if str(row.get("source") or "").lower() == source.lower():
        n += 1
        yield where, row
    if not n:
      raise ValueError(f"{epath.Path(folder)}: no CV-Bench rows with source {source!r} in "
                       f"{[str(f) for f in files]}")
  return read


def _cv_bench_to_item(row: Mapping, where: str, folder) -> VQAItem:
  prompt = field(row, "prompt", str)
  choices = _choices(row)
  gold = _paren_letter(row.get("answer"), len(choices))
  image = image_ref(row.get("image"), folder)
  meta = {"prompt": prompt, "source": row.get("source"), "task": row.get("task"), "type": row.get("type")}
  return VQAItem(id=str(field(row, "idx")), question=row.get("question") or prompt, images=(image,),
                 options=choices, answer=gold, meta=meta)


def _cv_bench_scorer(source: str):
  rstrip = "." if source in ("COCO", "ADE20K") else ".:,"

  def score(item: VQAItem, prediction: str, parser: str = "paper") -> dict:
    _check_parser(parser)
    if parser == "cambrian":
      return _mc_record(vqa_metrics.parse_choice_cambrian(prediction, rstrip_chars=rstrip), item.answer)
    return mc_score(item, prediction, parser)
  return score


def _cv_bench_aggregate(scored: Sequence[tuple[VQAItem, dict]]) -> dict:
  out = accuracy(scored)
  out.update(_per_key(scored, "task"))
  out["primary"] = out["accuracy"]
  return out


def cv_bench_overall(coco: float, ade: float, omni3d: float) -> dict:
  """CV-Bench's official aggregate from the three per-source accuracies (not a number of the paper):
  2D = mean(ADE, COCO), 3D = Omni3D, overall = mean(2D, 3D)."""
  two_d = (ade + coco) / 2.0
  return {"cv_bench_2d": two_d, "cv_bench_3d": float(omni3d), "cv_bench_overall": (two_d + omni3d) / 2.0}


def _cv_bench(name: str) -> Benchmark:
  source = CV_BENCH_SOURCES[name]
  return Benchmark(
      name=name, category="Vision-Centric", folder="cv_bench", source=f"nyu-visionx/CV-Bench (test, source={source})",
      read=_cv_bench_reader(source), to_item=_cv_bench_to_item, prompt=_prompt_field, suffix=LETTER_SUFFIX,
      max_new_tokens=512, score=_cv_bench_scorer(source), aggregate=_cv_bench_aggregate)


coco, ade, omni3d = _cv_bench("coco"), _cv_bench("ade"), _cv_bench("omni3d")


# ---------------------------------------------------------------------------------------------
# MMVP

_MMVP_COLUMNS = ("Index", "Question", "Options", "Correct Answer")
_MMVP_OPTIONS = re.compile(r"\s*\(a\)\s*(.*?)\s*\(b\)\s*(.*?)\s*", re.I | re.S)
_MMVP_ANSWER = re.compile(r"\s*\(?([ab])\)?(?:[\s.].*)?", re.I | re.S)


def _mmvp_csv(path: epath.Path) -> Iterator[tuple[str, object]]:
  reader = csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline=""))
  header = next(reader, None)
  if not header or header[0].strip() not in ("Index", "lndex") or len(header) < 4:
    raise ValueError(f"{path}: expected the MMVP header {','.join(_MMVP_COLUMNS)}, got {header!r}")
  for cells in reader:
    where = f"{path}:{reader.line_num}"
    if not cells or not any(c.strip() for c in cells):
      continue
    while len(cells) > 4 and not cells[-1].strip():
      cells = cells[:-1]
    if len(cells) != 4:
      yield where, BadRow("malformed row", f"{len(cells)} cells, expected 4")
      continue
    yield where, dict(zip(_MMVP_COLUMNS, cells), _layout="csv")


def _mmvp_read(folder) -> Iterator[tuple[str, object]]:
  root = epath.Path(folder)
  if not root.exists():
    raise FileNotFoundError(f"{root}: benchmark folder not found")
  if (root / "Questions.csv").exists():
    yield from _mmvp_csv(root / "Questions.csv")
    return
  try:
    files = parquet_files(root, "train")
  except ValueError:
    raise ValueError(f"{root}: no MMVP data; expected Questions.csv + 'MMVP Images/<Index>.jpg' (MMVP/MMVP) "
                     "or data/train-00000-of-00001.parquet (lmms-lab-eval/MMVP)") from None
  yield from iter_parquet(files, required=list(_MMVP_COLUMNS) + ["image"])


def _mmvp_to_item(row: Mapping, where: str, folder) -> VQAItem:
  try:
    index = int(str(field(row, "Index")).strip())
  except ValueError:
    raise BadRow("missing field", f"Index {row.get('Index')!r} is not an integer") from None
  question = field(row, "Question", str)
  m = _MMVP_OPTIONS.fullmatch(field(row, "Options", str))
  if m is None or not m.group(1) or not m.group(2):
    raise BadRow("malformed options", repr(row.get("Options"))[:80])
  options = (m.group(1), m.group(2))
  a = _MMVP_ANSWER.fullmatch(field(row, "Correct Answer", str))
  if a is None:
    raise BadRow("answer not among options", repr(row.get("Correct Answer"))[:80])
  gold = a.group(1).upper()
  if row.get("_layout") == "csv":
    path = epath.Path(folder) / "MMVP Images" / f"{index}.jpg"
    if not path.exists():
      raise BadRow("missing image", str(path))
    image = str(path)
  else:
    image = image_ref(row.get("image"), folder)
  meta = {"index": index, "pair": (index - 1) // 2, "corrected_answer": MMVP_CORRECTIONS.get(index, gold)}
  return VQAItem(id=str(index), question=question, images=(image,), options=options, answer=gold, meta=meta)


def _mmvp_prompt(item: VQAItem, suffix: str) -> str:
  a, b = item.options
  return join_suffix(f"{item.question} Options:\nA. {a}\nB. {b}", suffix)


_LONE_LOWER = re.compile(r"\(?([a-z])\)?[.:)]?")
_PAREN_LOWER = re.compile(r"\(([a-z])\)")


def _upper_option_markers(prediction: str) -> str:
  """For the paper parser on MMVP: a lone lower-case letter and "(a)"-style markers become upper case."""
  text = prediction.strip()
  m = _LONE_LOWER.fullmatch(text)
  if m:
    return text.upper()
  return _PAREN_LOWER.sub(lambda mm: f"({mm.group(1).upper()})", text)


_LMMS_MMVP = (re.compile(r"^\s*\(?([AB])\)?\.?\s*$", re.I), re.compile(r"^\s*\(?([AB])\)?[.\s]", re.I),
              re.compile(r"answer\s+is\s+\(?([AB])\)?", re.I), re.compile(r"option\s+\(?([AB])\)?", re.I),
              re.compile(r"\(?([AB])\)?(?:\s|$)", re.I))


def lmms_mmvp_letter(prediction: str) -> str | None:
  """lmms-eval's MMVP letter cascade (see the module docstring); None when nothing matches."""
  text = prediction.strip()
  for pattern in _LMMS_MMVP:
    m = pattern.search(text)
    if m:
      return m.group(1).upper()
  if text and text[0].upper() in "AB":
    return text[0].upper()
  return None


def _cambrian_mmvp_letter(prediction: str, options: Sequence[str]) -> str | None:
  s = _cambrian_cut(prediction).strip().rstrip(".:,").lstrip("(").rstrip(")")
  if s in ("a", "b"):
    return s.upper()
  for i, option in enumerate(options):
    if s == option.lower():
      return LETTERS[i]
  return None


def _mmvp_score(item: VQAItem, prediction: str, parser: str = "paper") -> dict:
  _check_parser(parser)
  if parser == "paper":
    letter = parse_mc(_upper_option_markers(prediction), item.options, "paper")
  elif parser == "lmms":
    letter = lmms_mmvp_letter(prediction)
  else:
    letter = _cambrian_mmvp_letter(prediction, item.options)
  rec = _mc_record(letter, item.answer)
  rec["score_corrected"] = float(letter is not None and letter == item.meta["corrected_answer"])
  return rec


def _pair_accuracy(scored, key: str) -> float:
  pairs = collections.defaultdict(list)
  for item, rec in scored:
    pairs[item.meta["pair"]].append(rec[key])
  complete = [v for v in pairs.values() if len(v) == 2]
  return 100.0 * sum(all(s == 1.0 for s in v) for v in complete) / len(complete) if complete else 0.0


def _mmvp_aggregate(scored: Sequence[tuple[VQAItem, dict]]) -> dict:
  n = len(scored)
  out = {"pair_accuracy": _pair_accuracy(scored, "score"),
         "accuracy": accuracy(scored)["accuracy"],
         "pair_accuracy_corrected": _pair_accuracy(scored, "score_corrected"),
         "accuracy_corrected": 100.0 * sum(r["score_corrected"] for _, r in scored) / n if n else 0.0}
  out["primary"] = out["pair_accuracy"]
  return out


mmvp = Benchmark(
    name="mmvp", category=None, folder="mmvp",
    source="MMVP/MMVP (Questions.csv + MMVP Images/) or lmms-lab-eval/MMVP (train)",
    read=_mmvp_read, to_item=_mmvp_to_item, prompt=_mmvp_prompt, suffix=LETTER_SUFFIX, max_new_tokens=512,
    score=_mmvp_score, aggregate=_mmvp_aggregate, primary="pair_accuracy", paper=False)


BENCHMARKS: list[Benchmark] = [realworldqa, blink, coco, ade, omni3d, mmvp]
