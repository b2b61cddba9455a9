"""What every VQA benchmark provides, and the readers for the published (Hugging Face) layouts.

A benchmark is a :class:`Benchmark`: how to read its local folder, how a row becomes a
:class:`VQAItem`, the prompt, the generation length, the per-item score and the aggregate. The
runner (``visprior_jax.eval.vqa_runner``) owns everything else: images, chat template, batching,
generation, predictions files, results records and resume.

Data layout. ``--config.data_root=DIR`` holds one folder per benchmark (``Benchmark.folder``),
each a local snapshot of the benchmark's dataset repo as published, e.g.::

  huggingface-cli download lmms-lab/textvqa --repo-type dataset --local-dir DIR/textvqa

so ``DIR/textvqa/data/validation-00000-of-00003.parquet``. :func:`parquet_files` finds a split's
files in any of the layouts the hub uses (``data/<split>-*.parquet``, ``<config>/<split>-*.parquet``,
``<config>/<split>/*.parquet``, ``<split>.parquet``); a folder without them is a one-line
ValueError naming the folder and the expected layout. Images in parquet are the HF ``Image``
struct ``{"bytes", "path"}`` (:func:`image_ref`).

Bad rows. ``Benchmark.to_item`` raises :class:`BadRow` (reason, detail) for a row it cannot use;
:func:`load_items` then skips and counts it (``on_error="skip"``, the default) or raises one
ValueError naming the file and row (``on_error="raise"``). Rows are named ``<file>:row <i>``
(0-based within the file) or ``<file>:<line>`` for JSON lines (1-based).

Scores are on a 0-100 scale. ``aggregate`` returns every metric of the benchmark with the
``primary`` one (the value the paper's table uses) among them.
"""

from __future__ import annotations

import collections
import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from etils import epath

from visprior_jax.data.sources import ReadStats
from visprior_jax.data.sources import _BadRecord as BadRow
from visprior_jax.data.sources import _glob as glob_files  # "**" works on local paths (epath's glob refuses it)
from visprior_jax.eval import vqa_metrics

__all__ = ["BadRow", "Benchmark", "CATEGORIES", "LETTERS", "LETTER_SUFFIX", "PARSERS", "ReadStats", "SHORT_ANSWER",
           "VQAItem", "accuracy", "accuracy_by_group", "field", "format_options", "glob_files", "image_ref",
           "iter_jsonl", "iter_parquet", "join_suffix", "load_items", "mc_score", "options_block", "parquet_files",
           "parse_mc", "row_id", "text_field"]

CATEGORIES = ("General", "Knowledge", "OCR & Chart", "Vision-Centric")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
PARSERS = ("paper", "lmms", "cambrian")
SHORT_ANSWER = "Answer the question using a single word or phrase."
LETTER_SUFFIX = "Answer with the option's letter from the given choices directly."


@dataclasses.dataclass(frozen=True)
class VQAItem:
  id: str                                   # unique within the benchmark (the dataset's own id when it has one)
  question: str                             # the question as the dataset gives it (prompt() builds the prompt)
  images: tuple = ()                        # image refs in order: encoded bytes or a path string
  options: tuple = ()                       # multiple choice: option texts in letter order A, B, ...
  answer: Any = None                        # gold: a letter for multiple choice; a string or list of strings
  meta: Mapping = dataclasses.field(default_factory=dict)   # benchmark-specific fields (category, hint, ...)
  where: str = ""                           # "<file>:row <i>"


@dataclasses.dataclass(frozen=True)
class Benchmark:
  name: str
  category: str | None                      # one of CATEGORIES; None for benchmarks outside the paper's 16
  folder: str                               # sub-folder of data_root holding the published files
  source: str                               # the dataset id / release the loader reads (documentation)
  read: Callable[[epath.Path], Iterator[tuple[str, Mapping]]]   # folder -> (where, row); layout errors raise
  to_item: Callable[[Mapping, str, epath.Path], VQAItem]       # (row, where, folder) -> item; BadRow to skip
  prompt: Callable[[VQAItem, str], str]     # (item, suffix) -> the user's text (without image tags)
  suffix: str                               # the default instruction suffix (the judge replaces it)
  max_new_tokens: int
  score: Callable[[VQAItem, str, str], dict]  # (item, prediction, parser) -> {"score": 0..1, ...} (JSON-able)
  aggregate: Callable[[Sequence[tuple[VQAItem, dict]]], dict]   # scored (item, record) pairs -> {metric: value}
  primary: str = "accuracy"
  paper: bool = True                        # one of the paper's 16
  max_images: int = 1                       # images given to the model (Cambrian: the first one)


# ---------------------------------------------------------------------------------------------
# Reading the published layouts


def parquet_files(root, split: str, config: str | None = None) -> list[epath.Path]:
  """The parquet files of ``split`` (and ``config``) under a local HF dataset snapshot ``root``."""
  root = epath.Path(root)
  if not root.exists():
    raise FileNotFoundError(f"{root}: benchmark folder not found")
  if root.is_file():
    return [root]
  found = []
  for f in glob_files(root, "**/*.parquet"):
    rel = f.relative_to(root).parts
    stem = f.name[:-len(".parquet")]
    in_split = stem == split or stem.startswith(split + "-") or (len(rel) > 1 and rel[-2] == split)
    in_config = config is None or config in rel[:-1] or stem.startswith(config + "-" + split)
    if in_split and in_config:
      found.append(f)
  if not found:
    where = f"{config}/" if config else "data/"
    raise ValueError(f"{root}: no parquet files for split {split!r}" + (f" of config {config!r}" if config else "")
                     + f"; expected the Hugging Face dataset layout, e.g. {where}{split}-00000-of-00001.parquet")
  return found


def iter_parquet(files: Sequence[epath.Path], columns: Sequence[str] | None = None,
                 required: Sequence[str] = ()) -> Iterator[tuple[str, dict]]:
  """(``<file>:row <i>``, row dict) for every row; a file missing a ``required`` column is a ValueError."""
  import pyarrow.parquet as pq
  for f in files:
    with f.open("rb") as fh:
      pf = pq.ParquetFile(fh)
      names = set(pf.schema_arrow.names)
      missing = [c for c in required if c not in names]
      if missing:
        raise ValueError(f"{f}: missing column(s) {missing} (has {sorted(names)}); is this the right benchmark folder?")
      cols = None if columns is None else [c for c in columns if c in names]
      i = 0
      for batch in pf.iter_batches(batch_size=256, columns=cols):
        for row in batch.to_pylist():
          yield f"{f}:row {i}", row
          i += 1


def iter_jsonl(path: epath.Path) -> Iterator[tuple[str, Any]]:
  """(``<file>:<line>``, parsed object) per non-empty line; malformed JSON yields a BadRow object instead."""
  with epath.Path(path).open() as fh:
    for n, line in enumerate(fh, 1):
      if not line.strip():
        continue
      try:
        yield f"{path}:{n}", json.loads(line)
      except json.JSONDecodeError as e:
        yield f"{path}:{n}", BadRow("malformed JSON", str(e)[:80])


def image_ref(value, root: epath.Path | None = None):
  """An image reference the runner can load: HF ``Image`` struct {"bytes", "path"} (bytes win), raw
  bytes, or a path (relative paths are joined to ``root``). Nothing there -> BadRow("missing image")."""
  if isinstance(value, Mapping):
    if value.get("bytes"):
      return bytes(value["bytes"])
    value = value.get("path")
  if isinstance(value, (bytes, bytearray)) and value:
    return bytes(value)
  if isinstance(value, str) and value:
    p = epath.Path(value)
    return str(p if (p.is_absolute() or root is None or "://" in value) else epath.Path(root) / value)
  raise BadRow("missing image", "no image in the row")


def field(row: Mapping, name: str, kinds=None):
  """``row[name]``, or BadRow("missing field") when absent / None (or not of ``kinds``)."""
  value = row.get(name)
  if value is None or (kinds is not None and not isinstance(value, kinds)):
    raise BadRow("missing field", f"{name!r} absent or malformed")
  return value


def text_field(row: Mapping, name: str) -> str:
  return field(row, name, str)


def row_id(where: str) -> str:
  """A stable id for datasets without one: ``<file name>:<row>`` from ``<path>:row <i>``."""
  path, _, row = where.rpartition(":row ")
  return f"{epath.Path(path).name}:{row}" if path else where


def load_items(bench: Benchmark, root, *, on_error: str = "skip", limit: int | None = None,
               stats: ReadStats | None = None) -> list[VQAItem]:
  """The benchmark's items from ``root`` (its folder); bad rows skipped and counted in ``stats``
  or raised (``on_error="raise"``) as one ValueError naming the file and row."""
  if on_error not in ("skip", "raise"):
    raise ValueError(f"on_error must be skip or raise, got {on_error!r}")
  root = epath.Path(root)
  stats = stats if stats is not None else ReadStats()
  items, seen = [], set()
  for where, row in bench.read(root):
    try:
      if isinstance(row, BadRow):
        raise row
      item = bench.to_item(row, where, root)
      if item.id in seen:
        raise BadRow("duplicate id", item.id)
      seen.add(item.id)
    except BadRow as e:
      if on_error == "raise":
        raise ValueError(f"{bench.name}: {where}: {e.reason}" + (f" ({e.detail})" if e.detail else "")) from None
      stats.skip(where, e.reason, e.detail)
      continue
    items.append(dataclasses.replace(item, where=item.where or where))
    stats.read += 1
    if limit is not None and len(items) >= limit:
      break
  return items


# ---------------------------------------------------------------------------------------------
# Shared prompt and scoring pieces


def format_options(options: Sequence[str], template: str = "{letter}. {text}", sep: str = "\n") -> str:
  return sep.join(template.format(letter=LETTERS[i], text=o) for i, o in enumerate(options))


def options_block(options: Sequence[str]) -> str:
  """Cambrian's option lines: "\nA. text" per option."""
  return "\n" + format_options(options) if options else ""


def join_suffix(text: str, suffix: str) -> str:
  """Cambrian's question extension: appended after a newline (the text alone when the suffix is empty)."""
  return f"{text}\n{suffix}" if suffix else text


def parse_mc(prediction: str, options: Sequence[str], parser: str = "paper") -> str | None:
  """A letter or None. ``paper``: the three-tier parser (default); ``lmms``: lmms-eval's start-of-output
  letter rule restricted to the item's letters; ``cambrian``: Cambrian's ``extract_mcq_answer``."""
  if parser == "paper":
    return vqa_metrics.parse_choice_paper(prediction, list(options))
  if parser == "lmms":
    return vqa_metrics.parse_choice_lmms(prediction, LETTERS[:len(options)])
  if parser == "cambrian":
    return vqa_metrics.parse_choice_cambrian(prediction)
  raise ValueError(f"unknown parser {parser!r}; choose one of {PARSERS}")


def mc_score(item: VQAItem, prediction: str, parser: str = "paper") -> dict:
  """Multiple choice: {"score": 1.0 if the parsed letter is the gold letter, "parsed": letter or None}."""
  letter = parse_mc(prediction, item.options, parser)
  return {"score": float(letter is not None and letter == item.answer), "parsed": letter}


def accuracy(scored: Sequence[tuple[VQAItem, dict]]) -> dict:
  """{"accuracy": 100 x mean score} (0 when nothing was scored)."""
  n = len(scored)
  return {"accuracy": 100.0 * sum(r["score"] for _, r in scored) / n if n else 0.0}


def accuracy_by_group(scored, key) -> dict:
  """{group: accuracy 0-100} for ``key(item)``."""
  groups = collections.defaultdict(list)
  for item, rec in scored:
    groups[key(item)].append(rec["score"])
  return {g: 100.0 * sum(v) / len(v) for g, v in groups.items()}
