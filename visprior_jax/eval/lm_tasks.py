"""The paper's language benchmarks (arXiv §2.2) from local files, formatted as lm-eval-harness does.

  items, stats = load_task("piqa", "/data/piqa")          # stats: {"n", "n_skipped", "skipped_examples"}
  res = evaluate_task("piqa", cfg, params, tok, "/data/piqa", limit=100)   # {"acc", "acc_norm", ...}
  summary({"piqa": res, ...})                              # {"t_acc", "ppl", "missing", ...}

Tasks (``TASKS``): name, kind, default split, primary metric; the published data it reads.

  wikitext       perplexity       test        word_perplexity
      EleutherAI/wikitext_document_level (config wikitext-2-raw-v1, field ``page``) or WikiText-2's
      raw ``wiki.test.raw``
  lambada        lambada          test        perplexity (acc reported too)
      EleutherAI/lambada_openai: ``lambada_test.jsonl`` or parquet config default (else en); field ``text``
  piqa           multiple_choice  validation  acc
      parquet (goal, sol1, sol2, label) or the original ``valid.jsonl`` + ``valid-labels.lst``
  hellaswag      multiple_choice  validation  acc_norm
      Rowan/hellaswag parquet (label a string) or the original ``hellaswag_val.jsonl`` (label an int)
  winogrande     partial          validation  acc
      allenai/winogrande config winogrande_xl, or the original ``dev.jsonl``
  arc_easy       multiple_choice  test        acc
      allenai/ai2_arc config ARC-Easy, or the original ``ARC-Easy-Test.jsonl``
  arc_challenge  multiple_choice  test        acc_norm
      allenai/ai2_arc config ARC-Challenge, or the original ``ARC-Challenge-Test.jsonl``
  copa           multiple_choice  validation  acc
      super_glue (or aps/super_glue) config copa, or SuperGLUE's ``val.jsonl``
  sciq           multiple_choice  test        acc
      allenai/sciq, or the original ``test.json`` (a JSON array)
  openbookqa     multiple_choice  test        acc_norm
      allenai/openbookqa config main, or the original ``Data/Main/test.jsonl``
  boolq          multiple_choice  validation  acc
      super_glue config boolq, or the original ``dev.jsonl`` (answer: bool) or SuperGLUE's ``val.jsonl``

Primary metrics follow the Mamba / GLA tables: acc_norm for HellaSwag, ARC-Challenge and OpenBookQA,
acc elsewhere; wikitext word perplexity; LAMBADA perplexity (its accuracy is reported too).

Finding files. ``path`` is a data file or a local snapshot folder of the dataset repo (e.g.
``huggingface-cli download <repo> --repo-type dataset --local-dir DIR``). In a folder the first hit
wins, in this order: for each of the task's config folders (e.g. ``ARC-Easy``), then ``data/``, then
the folder itself: ``<split>-*.parquet`` / ``<split>.parquet`` / ``*-<split>.parquet``, then
``<split>/*.parquet``, then ``<split>.jsonl``; then the task's original file name for the split,
searched recursively (hidden folders such as ``.cache`` are ignored; two files of that name are
ambiguous -> ValueError). Several parquet shards are read in sorted order. Nothing found ->
a one-line ValueError naming the folder and the expected layout. A direct path is read by suffix:
``.parquet``, ``.jsonl``, ``.json`` (a JSON array) and, for wikitext, any other suffix as a raw
WikiText file; the split is then not checked. PIQA's original jsonl takes its labels from the
sibling ``<stem>-labels.lst`` (one 0/1 per line, line i labelling record i) unless its records
carry a ``label``.

Prompts (lm-eval-harness tasks ``wikitext``, ``lambada_openai``, ``piqa``, ``hellaswag``,
``winogrande``, ``arc_easy``/``arc_challenge``, ``copa``, ``sciq``, ``openbookqa``, ``boolq``; each
choice below already includes the harness's target delimiter, a leading space):
  * piqa: ``"Question: {goal}\\nAnswer:"``; choices ``" "+sol1``, ``" "+sol2``.
  * hellaswag: ``clean(activity_label + ": " + ctx_a + " " + ctx_b.capitalize())``; choices
    ``" " + clean(ending)``; clean = strip, ``" [title]"`` -> ``". "``, drop ``[...]`` tags, then
    one pass of double space -> single space.
  * winogrande (``partial`` kind): the first ``_`` splits the sentence; contexts
    ``sentence[:i] + option`` for both options, one shared continuation ``" " + sentence[i+1:].strip()``;
    the option whose context gives the continuation the higher log-likelihood wins (acc only).
    Items: ``{"contexts", "continuation", "gold"}``.
  * arc: ``"Question: {question}\\nAnswer:"``; choices ``" "+text``; gold = index of answerKey
    in the choice labels (labels may be "A".."E" or "1".."5").
  * copa: ``premise.strip()`` minus its last character + ``" because"`` (cause) / ``" therefore"``
    (effect); choices ``" " + choice[0].lower() + choice[1:]``.
  * sciq: ``"{support.lstrip()}\\nQuestion: {question}\\nAnswer:"``; choices distractor1..3 then
    correct_answer, gold 3.
  * openbookqa: context = question_stem; choices ``" "+text``; gold as for ARC (answerKey stripped).
  * boolq: ``"{passage}\\nQuestion: {question}?\\nAnswer:"``; choices ``" no"``, ``" yes"``; gold = label.
  * lambada: items are the ``text`` strings; context = all but the last space-separated word,
    target = " " + last word (``eval.lm.split_last_word``, which first drops trailing whitespace
    that the harness would keep; LAMBADA texts have none).
  * wikitext: items are the published ``page`` strings. Scoring applies the harness's
    ``wikitext_detokenizer`` (``wikitext_detokenize`` here) and rolls disjoint ``max_len`` windows
    over each document (``eval.lm.rolling_windows``), while words and bytes are counted on the raw
    page, as the harness does: word_perplexity = exp(NLL / words), words = ``len(re.split(r"\\s+", page))``.
  A raw ``wiki.test.raw`` is cut into documents the way the ``wikitext_document_level`` dataset
  script does: a line whose stripped text is ``= Title =`` (one ``=`` each side; ``= = Sub = =`` is
  a section, not a document) starts a new document, the heading line included; lines are joined
  with "\\n"; whitespace-only documents are dropped.

Malformed rows (missing or mistyped fields, a label out of range, no ``_`` in a Winogrande
sentence, an unknown COPA question, invalid JSON, an empty text) are skipped and counted
(``on_error="skip"``, the default; ``n_skipped`` and up to 5 ``"file:row reason"`` examples) or raise
a one-line ValueError ``"file:row: reason"`` (``on_error="raise"``). Row numbers are 1-based: the
line number in a jsonl file, the element in a JSON array, the row in a parquet file, the first
line of a document in a raw WikiText file. ``limit`` keeps the first N valid items.

Results of ``evaluate_task``: multiple choice -> acc, acc_norm (``eval.lm.multiple_choice``;
predictions {index, gold, pred, pred_norm}); winogrande -> acc (predictions {index, gold, pred,
loglikelihoods}); lambada -> acc (whole last word greedy), perplexity = exp(-mean last-word logprob)
(predictions {index, target, logprob, greedy}); wikitext -> word_perplexity, byte_perplexity,
bits_per_byte, token_perplexity, nll, tokens, words, bytes (predictions per document {index, nll,
tokens, words, bytes}). Every result also has task, split, primary, n, n_skipped, skipped_examples.
A task with no valid rows left -> ValueError (nothing to score).

``summary``: ``t_acc`` is the unweighted mean of the primary metrics of the paper's 8 accuracy
tasks (PIQA, HellaSwag, WinoGrande, ARC, COPA, SciQ, OpenBookQA, BoolQ). The paper says "ARC"
without saying which; we count ARC as ONE task whose value is the mean of arc_easy's acc and
arc_challenge's acc_norm (each as reported by Mamba/GLA). ``ppl`` is the mean of wikitext
word_perplexity and LAMBADA perplexity (``eval.lm.summarize``). Only tasks present are averaged
(with one ARC half, ARC is that half; with one perplexity, ppl is that one); ``missing`` lists
the absent task names. Accuracies are fractions (Table 3's "avg acc" style), not percentages.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import re
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from visprior_jax.eval import lm

KINDS = ("perplexity", "lambada", "multiple_choice", "partial")
ON_ERROR = ("skip", "raise")
ACC_TASKS = ("piqa", "hellaswag", "winogrande", "arc", "copa", "sciq", "openbookqa", "boolq")
ARC_PARTS = ("arc_easy", "arc_challenge")
MAX_SKIPPED_EXAMPLES = 5


class _RowError(Exception):
  """A malformed row; the message is the reason (the caller adds file and row)."""


@dataclasses.dataclass(frozen=True, eq=False)
class TaskSpec:
  """One benchmark: how it is scored and where its published files live."""
  name: str
  kind: str                     # one of KINDS
  split: str                    # default split (HF split name)
  primary: str                  # the reported metric (Mamba/GLA tables)
  dataset: str                  # the published dataset (documentation and error messages)
  configs: tuple[str, ...] = ()  # HF config folders to look in, in order
  originals: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # split -> file names
  convert: Callable[[dict], Any] | None = dataclasses.field(default=None, repr=False)


# ---------------------------------------------------------------------------------------------
# Row checks


def _text(row: Mapping, key: str) -> str:
  value = row.get(key)
  if not isinstance(value, str):
    raise _RowError(f"field {key!r} is {'missing' if value is None else type(value).__name__}, not a string")
  return value


def _texts(row: Mapping, key: str, min_len: int = 2) -> list[str]:
  value = row.get(key)
  if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
    raise _RowError(f"field {key!r} is not a list of strings")
  if len(value) < min_len:
    raise _RowError(f"field {key!r} has {len(value)} entries, need at least {min_len}")
  return value


def _label(value, n: int, key: str = "label") -> int:
  """An int (or a string of digits) in [0, n)."""
  if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
    value = int(value.strip())
  if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n:
    raise _RowError(f"field {key!r} is {value!r}, not a label in 0..{n - 1}")
  return value


def _choice_index(labels: list[str], key) -> int:
  if not isinstance(key, str) or key.strip() not in labels:
    raise _RowError(f"answerKey {key!r} is not one of the choice labels {labels}")
  return labels.index(key.strip())


# ---------------------------------------------------------------------------------------------
# Row -> item, per task


def _wikitext_row(row: Mapping) -> str:
  page = _text(row, "page")
  if not page.strip():
    raise _RowError("empty page")
  return page


def _lambada_row(row: Mapping) -> str:
  text = _text(row, "text")
  if not text.strip():
    raise _RowError("empty text")
  return text


def _piqa_row(row: Mapping) -> dict:
  goal, sol1, sol2 = _text(row, "goal"), _text(row, "sol1"), _text(row, "sol2")
  return {"context": f"Question: {goal}\nAnswer:", "choices": [" " + sol1, " " + sol2],
          "gold": _label(row.get("label"), 2)}


def hellaswag_clean(text: str) -> str:
  """lm-eval-harness hellaswag ``preprocess``: WikiHow bracket artifacts out, spaces tidied."""
  text = text.strip().replace(" [title]", ". ")
  return re.sub(r"\[.*?\]", "", text).replace("  ", " ")


def _hellaswag_row(row: Mapping) -> dict:
  ctx = _text(row, "ctx_a") + " " + _text(row, "ctx_b").capitalize()
  endings = _texts(row, "endings")
  return {"context": hellaswag_clean(_text(row, "activity_label") + ": " + ctx),
          "choices": [" " + hellaswag_clean(e) for e in endings], "gold": _label(row.get("label"), len(endings))}


def _winogrande_row(row: Mapping) -> dict:
  sentence = _text(row, "sentence")
  if "_" not in sentence:
    raise _RowError("sentence has no '_' blank")
  i = sentence.index("_")
  options = [_text(row, "option1"), _text(row, "option2")]
  answer = row.get("answer")
  if isinstance(answer, bool) or str(answer).strip() not in ("1", "2"):
    raise _RowError(f"field 'answer' is {answer!r}, not '1' or '2'")
  return {"contexts": [sentence[:i] + o for o in options], "continuation": " " + sentence[i + 1:].strip(),
          "gold": int(str(answer).strip()) - 1}


def _question_choices(row: Mapping, stem_key: str) -> tuple[str, list[str], int]:
  """(stem, choice texts, gold) from an HF ai2_arc / openbookqa row or an original ARC/OBQA record."""
  question = row.get("question")
  if isinstance(question, dict):                 # original release: question {stem, choices [{text, label}]}
    stem, choices = _text(question, "stem"), question.get("choices")
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
      raise _RowError("field 'question.choices' is not a list of {text, label} objects")
    texts = [_text(c, "text") for c in choices]
    labels = [_text(c, "label") for c in choices]
  else:                                          # HF: choices {text: [...], label: [...]}
    stem, choices = _text(row, stem_key), row.get("choices")
    if not isinstance(choices, dict):
      raise _RowError("field 'choices' is not a {text, label} struct")
    texts, labels = _texts(choices, "text"), _texts(choices, "label")
  if len(texts) != len(labels) or len(texts) < 2:
    raise _RowError(f"{len(texts)} choice texts but {len(labels)} labels")
  return stem, texts, _choice_index(labels, row.get("answerKey"))


def _arc_row(row: Mapping) -> dict:
  stem, texts, gold = _question_choices(row, "question")
  return {"context": f"Question: {stem}\nAnswer:", "choices": [" " + t for t in texts], "gold": gold}


def _openbookqa_row(row: Mapping) -> dict:
  stem, texts, gold = _question_choices(row, "question_stem")
  return {"context": stem, "choices": [" " + t for t in texts], "gold": gold}


def _copa_row(row: Mapping) -> dict:
  premise = _text(row, "premise").strip()
  if not premise:
    raise _RowError("empty premise")
  connector = {"cause": " because", "effect": " therefore"}.get(row.get("question"))
  if connector is None:
    raise _RowError(f"field 'question' is {row.get('question')!r}, not 'cause' or 'effect'")
  choices = [_text(row, "choice1"), _text(row, "choice2")]
  if not all(choices):
    raise _RowError("empty choice")
  return {"context": premise[:-1] + connector, "choices": [" " + c[0].lower() + c[1:] for c in choices],
          "gold": _label(row.get("label"), 2)}


def _sciq_row(row: Mapping) -> dict:
  answers = [_text(row, k) for k in ("distractor1", "distractor2", "distractor3", "correct_answer")]
  return {"context": f"{_text(row, 'support').lstrip()}\nQuestion: {_text(row, 'question')}\nAnswer:",
          "choices": [" " + a for a in answers], "gold": 3}


def _boolq_row(row: Mapping) -> dict:
  key = "label" if "label" in row else "answer"   # HF / SuperGLUE: label; original BoolQ: answer (bool)
  value = row.get(key)
  gold = int(value) if isinstance(value, bool) else _label(value, 2, key)
  return {"context": f"{_text(row, 'passage')}\nQuestion: {_text(row, 'question')}?\nAnswer:",
          "choices": [" no", " yes"], "gold": gold}


def _arc_originals(config: str) -> dict[str, tuple[str, ...]]:
  return {"test": (f"{config}-Test.jsonl",), "validation": (f"{config}-Dev.jsonl",),
          "train": (f"{config}-Train.jsonl",)}


TASKS: dict[str, TaskSpec] = {s.name: s for s in [
    TaskSpec("wikitext", "perplexity", "test", "word_perplexity", "EleutherAI/wikitext_document_level",
             ("wikitext-2-raw-v1",),
             {"test": ("wiki.test.raw",), "validation": ("wiki.valid.raw",), "train": ("wiki.train.raw",)},
             _wikitext_row),
    TaskSpec("lambada", "lambada", "test", "perplexity", "EleutherAI/lambada_openai", ("default", "en"),
             {"test": ("lambada_test.jsonl",)}, _lambada_row),
    TaskSpec("piqa", "multiple_choice", "validation", "acc", "ybisk/piqa", ("plain_text", "default"),
             {"validation": ("valid.jsonl",), "train": ("train.jsonl",)}, _piqa_row),
    TaskSpec("hellaswag", "multiple_choice", "validation", "acc_norm", "Rowan/hellaswag", ("default",),
             {"validation": ("hellaswag_val.jsonl",), "train": ("hellaswag_train.jsonl",)}, _hellaswag_row),
    TaskSpec("winogrande", "partial", "validation", "acc", "allenai/winogrande", ("winogrande_xl",),
             {"validation": ("dev.jsonl",), "train": ("train_xl.jsonl",)}, _winogrande_row),
    TaskSpec("arc_easy", "multiple_choice", "test", "acc", "allenai/ai2_arc", ("ARC-Easy",),
             _arc_originals("ARC-Easy"), _arc_row),
    TaskSpec("arc_challenge", "multiple_choice", "test", "acc_norm", "allenai/ai2_arc", ("ARC-Challenge",),
             _arc_originals("ARC-Challenge"), _arc_row),
    TaskSpec("copa", "multiple_choice", "validation", "acc", "super_glue", ("copa",),
             {"validation": ("val.jsonl",), "train": ("train.jsonl",)}, _copa_row),
    TaskSpec("sciq", "multiple_choice", "test", "acc", "allenai/sciq", ("default",),
             {"test": ("test.json",), "validation": ("valid.json",), "train": ("train.json",)}, _sciq_row),
    TaskSpec("openbookqa", "multiple_choice", "test", "acc_norm", "allenai/openbookqa", ("main",),
             {"test": ("test.jsonl",), "validation": ("dev.jsonl",), "train": ("train.jsonl",)}, _openbookqa_row),
    TaskSpec("boolq", "multiple_choice", "validation", "acc", "super_glue", ("boolq",),
             {"validation": ("dev.jsonl", "val.jsonl"), "train": ("train.jsonl",)}, _boolq_row),
]}


def get_task(name: str) -> TaskSpec:
  if name not in TASKS:
    raise ValueError(f"unknown language task {name!r}; known: {', '.join(TASKS)}")
  return TASKS[name]


# ---------------------------------------------------------------------------------------------
# WikiText


# lm-eval-harness ``wikitext_detokenizer``, step by step: (regex?, pattern, replacement), applied in
# order. The second step's pattern contains literal slashes, so it never fires on WikiText; it is
# kept for parity.
_WIKITEXT_STEPS: tuple[tuple[bool, str, str], ...] = (
    (False, "s '", "s'"), (True, r"/' [0-9]/", "/'[0-9]/"),
    (False, " @-@ ", "-"), (False, " @,@ ", ","), (False, " @.@ ", "."),
    (False, " : ", ": "), (False, " ; ", "; "), (False, " . ", ". "), (False, " ! ", "! "), (False, " ? ", "? "),
    (False, " , ", ", "),
    (True, r"\(\s*([^\)]*?)\s*\)", r"(\1)"), (True, r"\[\s*([^\]]*?)\s*\]", r"[\1]"),
    (True, r"{\s*([^}]*?)\s*}", r"{\1}"), (True, r"\"\s*([^\"]*?)\s*\"", r'"\1"'),
    (True, r"'\s*([^']*?)\s*'", r"'\1'"),
    (False, "= = = =", "===="), (False, "= = =", "==="), (False, "= =", "=="),
    (False, " \N{DEGREE SIGN} ", "\N{DEGREE SIGN}"), (False, " \n", "\n"), (False, "\n ", "\n"),
    (False, " N ", " 1 "), (False, " 's", "'s"),
)


def wikitext_detokenize(page: str) -> str:
  """The text the harness scores for a WikiText page (its ``wikitext_detokenizer``)."""
  for is_regex, pattern, replacement in _WIKITEXT_STEPS:
    page = re.sub(pattern, replacement, page) if is_regex else page.replace(pattern, replacement)
  return page


_TOP_HEADING = re.compile(r"= (?!=).*(?<!=) =")


def split_wikitext_documents(raw: str) -> list[tuple[int, str]]:
  """A raw WikiText file -> [(first line number, document)]; see the module docstring."""
  docs, lines, start = [], [], 1
  for lineno, line in enumerate(raw.split("\n"), 1):
    if _TOP_HEADING.fullmatch(line.strip()):
      if "\n".join(lines).strip():
        docs.append((start, "\n".join(lines)))
      lines, start = [], lineno
    lines.append(line)
  if "\n".join(lines).strip():
    docs.append((start, "\n".join(lines)))
  return docs


# ---------------------------------------------------------------------------------------------
# Files


def _visible(root: pathlib.Path, p: pathlib.Path) -> bool:
  return not any(part.startswith(".") for part in p.relative_to(root).parts)


def _layout(spec: TaskSpec, split: str) -> str:
  configs = ", ".join(spec.configs)
  names = " or ".join(spec.originals.get(split, ())) or "none for this split"
  return (f"<config>/{split}-*.parquet or <config>/{split}/*.parquet with <config> one of {configs}, or "
          f"data/{split}-*.parquet, or {split}-*.parquet (HF {spec.dataset}); or an original file ({names})")


def find_files(name: str, path: str | pathlib.Path, split: str | None = None) -> list[pathlib.Path]:
  """The data files ``load_task`` reads for task ``name`` (see the module docstring for the search)."""
  spec = get_task(name)
  split = split or spec.split
  root = pathlib.Path(path)
  if root.is_file():
    return [root]
  if not root.is_dir():
    raise ValueError(f"{root}: no such file or folder (task {name})")
  for d in [root / c for c in spec.configs] + [root / "data", root]:
    if not d.is_dir():
      continue
    for patterns in ((f"{split}-*.parquet", f"{split}.parquet", f"*-{split}.parquet"), (f"{split}/*.parquet",),
                     (f"{split}.jsonl",)):
      files = sorted({p for pat in patterns for p in d.glob(pat) if p.is_file()})
      if files:
        return files
  for original in spec.originals.get(split, ()):
    hits = sorted(p for p in root.rglob(original) if p.is_file() and _visible(root, p))
    if len(hits) > 1:
      raise ValueError(f"{root}: {len(hits)} files named {original} ({', '.join(map(str, hits[:3]))}); "
                       "point path at one of them")
    if hits:
      return hits
  raise ValueError(f"{root}: no {split} data for task {name}; expected {_layout(spec, split)}")


def _records(file: pathlib.Path) -> Iterator[tuple[int, Any]]:
  """(1-based row number, row dict or _RowError) for a parquet, jsonl or JSON-array file."""
  suffix = file.suffix.lower()
  if suffix == ".parquet":
    import pyarrow.parquet as pq
    n = 0
    for batch in pq.ParquetFile(file).iter_batches(batch_size=1024):
      for row in batch.to_pylist():
        n += 1
        yield n, row
  elif suffix == ".jsonl":
    with open(file, encoding="utf-8") as f:
      for lineno, line in enumerate(f, 1):
        if line.strip():
          try:
            yield lineno, json.loads(line)
          except json.JSONDecodeError as e:
            yield lineno, _RowError(f"invalid JSON ({e.msg})")
  elif suffix == ".json":
    try:
      data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
      raise ValueError(f"{file}: invalid JSON at line {e.lineno} ({e.msg})") from None
    if not isinstance(data, list):
      raise ValueError(f"{file}: expected a JSON array of records, got a {type(data).__name__}")
    yield from enumerate(data, 1)
  else:
    raise ValueError(f"{file}: unsupported file type {file.suffix!r} (expected .parquet, .jsonl or .json)")


def _piqa_labels(file: pathlib.Path) -> list[str] | None:
  labels = file.with_name(file.stem + "-labels.lst")
  return labels.read_text(encoding="utf-8").splitlines() if labels.is_file() else None


def _task_records(spec: TaskSpec, file: pathlib.Path) -> Iterator[tuple[int, Any]]:
  if spec.name == "wikitext" and file.suffix.lower() not in (".parquet", ".jsonl", ".json"):
    for lineno, doc in split_wikitext_documents(file.read_text(encoding="utf-8")):
      yield lineno, {"page": doc}
    return
  records = _records(file)
  if spec.name != "piqa" or file.suffix.lower() != ".jsonl":
    yield from records
    return
  labels = _piqa_labels(file)
  for i, (rowno, row) in enumerate(records):
    if isinstance(row, dict) and "label" not in row:
      if labels is None:
        raise ValueError(f"{file}: records have no 'label' and {file.stem}-labels.lst is not next to it")
      row = dict(row, label=labels[i].strip() if i < len(labels) else None)
    yield rowno, row


def load_task(name: str, path: str | pathlib.Path, split: str | None = None, limit: int | None = None,
              on_error: str = "skip") -> tuple[list, dict]:
  """(items, stats): items ready for scoring (see the module docstring), stats = {"n", "n_skipped",
  "skipped_examples"}; ``limit`` keeps the first N valid items."""
  spec = get_task(name)
  if on_error not in ON_ERROR:
    raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
  if limit is not None and limit < 1:
    raise ValueError(f"limit must be a positive number of items, got {limit}")
  items, examples, n_skipped = [], [], 0
  for file in find_files(name, path, split):
    for rowno, row in _task_records(spec, file):
      try:
        if isinstance(row, _RowError):
          raise row
        if not isinstance(row, dict):
          raise _RowError(f"a {type(row).__name__}, not a record object")
        item = spec.convert(row)
      except _RowError as e:
        if on_error == "raise":
          raise ValueError(f"{file}:{rowno}: {e}") from None
        n_skipped += 1
        if len(examples) < MAX_SKIPPED_EXAMPLES:
          examples.append(f"{file}:{rowno} {e}")
        continue
      items.append(item)
      if limit is not None and len(items) >= limit:
        return items, {"n": len(items), "n_skipped": n_skipped, "skipped_examples": examples}
  return items, {"n": len(items), "n_skipped": n_skipped, "skipped_examples": examples}


# ---------------------------------------------------------------------------------------------
# Scoring


def _score_wikitext(cfg, params, tokenizer, pages: Sequence[str], batch_size: int, max_len: int | None) -> dict:
  max_len = int(max_len or cfg.max_seq_len)
  prefix = tokenizer.bos_id if tokenizer.bos_id is not None else tokenizer.eos_id
  if prefix is None:
    raise ValueError("perplexity needs a bos or eos token to start each document")
  requests, owner, docs = [], [], []
  for d, page in enumerate(pages):
    ids = [prefix] + tokenizer.encode(wikitext_detokenize(page))
    for a, start, end in lm.rolling_windows(len(ids) - 1, max_len):
      requests.append((ids[a:start], ids[start:end]))
      owner.append(d)
    docs.append({"index": d, "nll": 0.0, "tokens": len(ids) - 1, "words": len(re.split(r"\s+", page)),
                 "bytes": len(page.encode("utf-8"))})
  for d, (logprob, _) in zip(owner, lm.score_token_requests(cfg, params, requests, batch_size, max_len)):
    docs[d]["nll"] -= logprob
  nll = sum(doc["nll"] for doc in docs)
  tokens, words, nbytes = (sum(doc[k] for doc in docs) for k in ("tokens", "words", "bytes"))
  return {"word_perplexity": math.exp(nll / words), "byte_perplexity": math.exp(nll / nbytes),
          "bits_per_byte": nll / nbytes / math.log(2), "token_perplexity": math.exp(nll / max(tokens, 1)),
          "nll": nll, "tokens": tokens, "words": words, "bytes": nbytes, "predictions": docs}


def _score_lambada(cfg, params, tokenizer, texts: Sequence[str], batch_size: int, max_len: int | None) -> dict:
  pairs = [lm.split_last_word(t) for t in texts]
  scores = lm.loglikelihoods(cfg, params, tokenizer, pairs, batch_size, max_len)
  preds = [{"index": i, "target": target, "logprob": lp, "greedy": greedy}
           for i, ((_, target), (lp, greedy)) in enumerate(zip(pairs, scores))]
  return {"acc": float(np.mean([g for _, g in scores])),
          "perplexity": math.exp(-float(np.mean([s for s, _ in scores]))), "predictions": preds}


def _score_partial(cfg, params, tokenizer, items: Sequence[dict], batch_size: int, max_len: int | None) -> dict:
  requests = [(ctx, it["continuation"]) for it in items for ctx in it["contexts"]]
  scores = iter(lm.loglikelihoods(cfg, params, tokenizer, requests, batch_size, max_len))
  preds, correct = [], 0
  for i, it in enumerate(items):
    lls = [next(scores)[0] for _ in it["contexts"]]
    pred = int(np.argmax(lls))
    correct += pred == it["gold"]
    preds.append({"index": i, "gold": it["gold"], "pred": pred, "loglikelihoods": lls})
  return {"acc": correct / len(items), "predictions": preds}


def _score_multiple_choice(cfg, params, tokenizer, items: Sequence[dict], batch_size: int,
                           max_len: int | None) -> dict:
  res = lm.multiple_choice(cfg, params, tokenizer, items, batch_size, max_len)
  preds = [{"index": i, "gold": it["gold"], "pred": p, "pred_norm": pn}
           for i, (it, p, pn) in enumerate(zip(items, res["preds"], res["preds_norm"]))]
  return {"acc": res["acc"], "acc_norm": res["acc_norm"], "predictions": preds}


_SCORERS = {"perplexity": _score_wikitext, "lambada": _score_lambada, "partial": _score_partial,
            "multiple_choice": _score_multiple_choice}


def evaluate_task(name: str, cfg, params, tokenizer, path: str | pathlib.Path, *, split: str | None = None,
                  limit: int | None = None, on_error: str = "skip", batch_size: int = 16,
                  max_len: int | None = None) -> dict:
  """Load and score one task: its metrics, "n" (items scored), "n_skipped", "skipped_examples",
  "primary" (the reported metric's name), "task", "split" and per-item "predictions"."""
  spec = get_task(name)
  items, stats = load_task(name, path, split, limit, on_error)
  if not items:
    examples = "; ".join(stats["skipped_examples"][:2])
    raise ValueError(f"task {name}: no valid items in {path} ({stats['n_skipped']} skipped{': ' if examples else ''}"
                     f"{examples})")
  res = _SCORERS[spec.kind](cfg, params, tokenizer, items, batch_size, max_len)
  predictions = res.pop("predictions")
  return {"task": name, "split": split or spec.split, **res, "primary": spec.primary, **stats,
          "predictions": predictions}


def summary(results: Mapping[str, Mapping]) -> dict:
  """The paper's t_acc and ppl over the tasks present (see the module docstring)."""
  unknown = sorted(set(results) - set(TASKS))
  if unknown:
    raise ValueError(f"unknown task results {unknown}; known: {', '.join(TASKS)}")

  def primary(name: str) -> float:
    metric = TASKS[name].primary
    if metric not in results[name]:
      raise ValueError(f"result for {name} has no {metric!r} (its primary metric)")
    return float(results[name][metric])

  accs = {}
  for name in ACC_TASKS:
    if name == "arc":
      parts = [primary(p) for p in ARC_PARTS if p in results]
      if parts:
        accs["arc"] = float(np.mean(parts))
    elif name in results:
      accs[name] = primary(name)
  wiki = primary("wikitext") if "wikitext" in results else None
  lamb = primary("lambada") if "lambada" in results else None
  ppls = [p for p in (wiki, lamb) if p is not None]
  out = lm.summarize(accs, *(ppls if len(ppls) == 2 else (math.nan, math.nan)))
  if len(ppls) < 2:
    out["ppl"] = ppls[0] if ppls else math.nan
  return {"t_acc": out["t_acc"], "ppl": out["ppl"], "task_accs": accs, "n_acc_tasks": len(accs),
          "arc_parts": {p: primary(p) for p in ARC_PARTS if p in results},
          "wikitext_word_perplexity": wiki, "lambada_perplexity": lamb,
          "lambada_acc": float(results["lambada"]["acc"]) if "lambada" in results and "acc" in results["lambada"]
          else None,
          "missing": [n for n in TASKS if n not in results]}
