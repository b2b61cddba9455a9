"""Raw text sources: every reader yields documents as ``{"text": str, "source": str, "id": str}``.

One entry point, driven by a plain mapping (a config section or a mixture entry)::

  read_documents({"kind": "jsonl", "paths": ["gs://b/web/*.jsonl.zst"], "source": "web"})

Spec keys:
  kind        jsonl (plain, .gz, .zst) | parquet | text (one file = one document) |
              array_record (records are UTF-8 JSON objects) | tfds | python_stdlib | pydoc_topics |
              world (the tiny study's generated text: visprior_jax/study/world/)
  paths       list of files, directories or globs (etils.epath, so gs:// works); a directory is
              searched with ``pattern`` (default per kind, e.g. ``**/*.txt``)
  source      name stamped on every document (default: the kind)
  text_field  field/column holding the text (default "text")
  id_field    field/column holding the id (default: ``<file>:<line>`` or ``<file>:<row>``)
  on_error    "skip" (default: skip bad records, count them in ReadStats) | "raise" (ValueError)
  limit       stop after this many documents
  name, split, data_dir   for kind=tfds (``tfds.data_source``; no TensorFlow needed)
  generator, n_docs, seed for kind=world: visual_world | arithmetic | counting | syllogism, how many
              documents (default 1000), seed (default 0); ids are ``world/<generator>/<seed>/<i>``

Bad input (malformed JSON, invalid UTF-8, empty or missing text, a truncated .gz/.zst, Parquet or
ArrayRecord file) is skipped and counted by reason with ``file:line`` examples, or raises a
ValueError naming the file and line. A path that matches no file is always an error.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import re
import sysconfig
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from etils import epath

KINDS = ("jsonl", "parquet", "text", "array_record", "tfds", "python_stdlib", "pydoc_topics", "world")
SPEC_KEYS = {"kind", "paths", "source", "text_field", "id_field", "on_error", "limit", "pattern", "name",
             "split", "data_dir", "generator", "n_docs", "seed"}
DEFAULT_PATTERN = {"jsonl": "**/*.jsonl*", "parquet": "**/*.parquet", "text": "**/*.txt",
                   "array_record": "**/*.array_record*"}
_CHUNK = 1 << 20
_GLOB_CHARS = set("*?[")
_log = logging.getLogger(__name__)


@dataclasses.dataclass
class ReadStats:
  """Documents read and skipped (by reason), with the first few ``file:line: reason`` examples."""
  read: int = 0
  skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  examples: list[str] = dataclasses.field(default_factory=list)
  files: int = 0
  max_examples: int = 10

  @property
  def total_skipped(self) -> int:
    return sum(self.skipped.values())

  def skip(self, where: str, reason: str, detail: str = "") -> None:
    self.skipped[reason] += 1
    if len(self.examples) < self.max_examples:
      self.examples.append(f"{where}: {reason}" + (f" ({detail})" if detail else ""))

  def summary(self) -> str:
    reasons = ", ".join(f"{r}: {n}" for r, n in self.skipped.most_common())
    return f"{self.read} documents read from {self.files} files, {self.total_skipped} skipped" + (
        f" ({reasons}); first: {self.examples[0]}" if self.examples else "")

  def to_dict(self) -> dict[str, Any]:
    return {"read": self.read, "files": self.files, "skipped": dict(self.skipped), "examples": list(self.examples)}


class _BadRecord(Exception):
  """One record cannot be used: ``reason`` is the counted category, ``detail`` the specifics."""

  def __init__(self, reason: str, detail: str = ""):
    super().__init__(reason)
    self.reason, self.detail = reason, detail


class _BadFile(_BadRecord):
  """The rest of the file cannot be read (truncated or corrupt); records before it were yielded.

  ``where`` is the line/row at which reading broke off (None when unknown).
  """
  where: int | None = None


# ---------------------------------------------------------------------------------------------
# Paths


def expand_paths(paths: Iterable[str | epath.Path] | str, pattern: str = "**/*") -> list[epath.Path]:
  """Files named by ``paths`` (files, directories searched with ``pattern``, or globs), in order."""
  if isinstance(paths, (str, epath.Path)):
    paths = [paths]
  out = []
  for p in paths:
    s = str(p)
    if _GLOB_CHARS & set(s):
      parts = s.split("/")
      first = next(i for i, part in enumerate(parts) if _GLOB_CHARS & set(part))
      base = epath.Path("/".join(parts[:first]) or ".")
      matches = _glob(base, "/".join(parts[first:]))
    else:
      path = epath.Path(p)
      if path.is_dir():
        matches = _glob(path, pattern)
      else:
        matches = [path] if path.exists() else []
    if not matches:
      raise ValueError(f"no files match {s!r}" + (f" (searched for {pattern})" if not _GLOB_CHARS & set(s) else ""))
    out.extend(matches)
  return out


def _glob(base: epath.Path, pattern: str) -> list[epath.Path]:
  """Sorted files under ``base`` matching ``pattern``; ``**`` matches any number of directories."""
  if "**" not in pattern:
    return sorted(m for m in base.glob(pattern) if m.is_file())
  regex = re.compile(_glob_regex(pattern))
  found = []
  for root, _, files in base.walk():  # epath's glob refuses "**" (it could mean many GCS calls)
    for name in files:
      path = root / name
      if regex.fullmatch(path.relative_to(base).as_posix()):
        found.append(path)
  return sorted(found)


def _glob_regex(pattern: str) -> str:
  """Regex for a relative posix path: ``*`` and ``?`` within a name, ``**/`` for any directories."""
  parts = pattern.split("/")
  out = []
  for i, part in enumerate(parts):
    if part == "**":
      out.append("(?:[^/]+/)*")
    else:
      out.append(re.escape(part).replace(r"\*", "[^/]*").replace(r"\?", "[^/]") + ("/" if i < len(parts) - 1 else ""))
  return "".join(out)


# ---------------------------------------------------------------------------------------------
# Byte streams and lines (gzip and zstd through decompress objects so truncation is detected)


def _chunks(path: epath.Path) -> Iterator[bytes]:
  """Decompressed bytes of ``path``; raises _BadFile if a .gz/.zst stream is truncated or corrupt."""
  name = path.name
  with path.open("rb") as f:
    raw = iter(lambda: f.read(_CHUNK), b"")
    if name.endswith(".gz"):
      yield from _decompress(raw, lambda: zlib.decompressobj(wbits=31), (zlib.error,))
    elif name.endswith(".zst") or name.endswith(".zstd"):
      import zstandard
      yield from _decompress(raw, lambda: zstandard.ZstdDecompressor().decompressobj(), (zstandard.ZstdError,))
    else:
      yield from raw


def _decompress(raw: Iterator[bytes], new, errors: tuple) -> Iterator[bytes]:
  """Multi-member/multi-frame streaming decompression with an explicit end-of-stream check."""
  d, pending = new(), False
  for data in raw:
    while data:
      try:
        out = d.decompress(data)
      except errors as e:
        raise _BadFile("truncated or corrupt compressed stream", str(e)) from None
      pending = True
      if out:
        yield out
      if d.eof:  # a member/frame ended; anything after it starts the next one
        data, d, pending = d.unused_data, new(), False
      else:
        data = b""
  if pending and not d.eof:
    raise _BadFile("truncated or corrupt compressed stream", "ended before the end-of-stream marker")


def _lines(path: epath.Path) -> Iterator[tuple[int, bytes]]:
  """(1-based line number, line bytes without newline), skipping blank lines."""
  buf, lineno = b"", 0
  try:
    for chunk in _chunks(path):
      buf += chunk
      *full, buf = buf.split(b"\n")
      for line in full:
        lineno += 1
        if line.strip():
          yield lineno, line
  except _BadFile as e:
    e.where = lineno + 1  # the line that was cut off
    raise
  if buf.strip():
    yield lineno + 1, buf


# ---------------------------------------------------------------------------------------------
# Record -> document


def _decode(data: bytes) -> str:
  try:
    return data.decode("utf-8")
  except UnicodeDecodeError as e:
    raise _BadRecord("invalid UTF-8", f"byte {e.start}") from None


def _json_object(data: bytes) -> dict:
  try:
    obj = json.loads(_decode(data))
  except json.JSONDecodeError as e:
    raise _BadRecord("malformed JSON", e.msg) from None
  if not isinstance(obj, dict):
    raise _BadRecord("not a JSON object", type(obj).__name__)
  return obj


def _document(record: Mapping, where: str, spec: Mapping) -> dict[str, str]:
  field, id_field = spec.get("text_field", "text"), spec.get("id_field")
  if field not in record:
    raise _BadRecord("missing text field", repr(field))
  text = record[field]
  if isinstance(text, bytes):
    text = _decode(text)
  if not isinstance(text, str):
    raise _BadRecord("text is not a string", type(text).__name__)
  if not text.strip():
    raise _BadRecord("empty text")
  if id_field is None:
    doc_id = where
  elif record.get(id_field) is None:
    raise _BadRecord("missing id field", repr(id_field))
  else:
    doc_id = record[id_field]
    doc_id = _decode(doc_id) if isinstance(doc_id, bytes) else str(doc_id)
  return {"text": text, "source": spec.get("source") or spec["kind"], "id": doc_id}


# ---------------------------------------------------------------------------------------------
# Readers: each yields (where, record-or-_BadRecord) so one loop applies on_error and stats.


def _jsonl(path: epath.Path, spec: Mapping) -> Iterator[tuple[str, Any]]:
  for lineno, line in _lines(path):
    try:
      yield f"{path}:{lineno}", _json_object(line)
    except _BadRecord as e:
      yield f"{path}:{lineno}", e


def _parquet(path: epath.Path, spec: Mapping) -> Iterator[tuple[str, Any]]:
  import pyarrow as pa
  import pyarrow.parquet as pq
  columns = [c for c in (spec.get("text_field", "text"), spec.get("id_field")) if c]
  row = 0
  with path.open("rb") as f:
    try:
      pf = pq.ParquetFile(f)
      missing = [c for c in columns if c not in pf.schema_arrow.names]
      if missing:
        raise _BadFile("missing column", f"{missing[0]!r} not in {pf.schema_arrow.names}")
      for group in range(pf.num_row_groups):  # one row group in memory at a time
        table = pf.read_row_group(group, columns=columns)
        for record in table.to_pylist():
          yield f"{path}:{row}", record
          row += 1
    except (pa.ArrowException, OSError) as e:
      bad = _BadFile("truncated or corrupt Parquet file", str(e).splitlines()[0])
      bad.where = row
      raise bad from None


def _text(path: epath.Path, spec: Mapping) -> Iterator[tuple[str, Any]]:
  try:
    yield str(path), {"text": _decode(path.read_bytes())}
  except _BadRecord as e:
    yield f"{path}:1", e


def _array_record(path: epath.Path, spec: Mapping) -> Iterator[tuple[str, Any]]:
  from array_record.python import array_record_module
  reader, i, closed = array_record_module.ArrayRecordReader(str(path)), 0, False
  try:
    if not reader.ok():
      raise RuntimeError("file footer is unreadable")
    n = reader.num_records()
    for start in range(0, n, 1024):
      for i, data in enumerate(reader.read(start, min(n, start + 1024)), start):
        try:
          yield f"{path}:{i}", _json_object(data)
        except _BadRecord as e:
          yield f"{path}:{i}", e
  except RuntimeError as e:  # the C++ reader reports corruption as RuntimeError
    detail, closed = str(e), True
    try:
      reader.close()  # closing a failed reader raises its real error message
    except RuntimeError as close_error:
      detail = str(close_error)
    bad = _BadFile("truncated or corrupt ArrayRecord file", detail.splitlines()[0][:200])
    bad.where = i
    raise bad from None
  finally:
    if not closed:  # also when the consumer stops early (limit)
      reader.close()


_FILE_READERS = {"jsonl": _jsonl, "parquet": _parquet, "text": _text, "array_record": _array_record}


def _tfds(spec: Mapping) -> Iterator[tuple[str, Any]]:
  try:
    import tensorflow_datasets as tfds
  except ImportError:
    raise ValueError("kind=tfds needs tensorflow_datasets (pip install tensorflow-datasets; no TensorFlow "
                     "needed)") from None
  if not spec.get("name"):
    raise ValueError("kind=tfds needs 'name' (the TFDS dataset name, e.g. 'wikipedia/20230601.en')")
  split = spec.get("split", "train")
  ds = tfds.data_source(spec["name"], split=split, data_dir=spec.get("data_dir"))
  for i in range(len(ds)):
    yield f"{spec['name']}/{split}:{i}", ds[i]


def _python_stdlib(spec: Mapping) -> Iterator[tuple[str, Any]]:
  """The standard library's .py files (code documents), sorted; site-packages excluded."""
  root = epath.Path(sysconfig.get_paths()["stdlib"])
  for path in _glob(root, "**/*.py"):
    rel = path.relative_to(root).as_posix()
    if "site-packages" in rel or "dist-packages" in rel:
      continue
    try:
      yield f"python_stdlib:{rel}", {"text": _decode(path.read_bytes())}
    except _BadRecord as e:
      yield f"python_stdlib:{rel}", e


def _pydoc_topics(spec: Mapping) -> Iterator[tuple[str, Any]]:
  """Python's reference-manual topics (``pydoc_data.topics``): English technical prose."""
  from pydoc_data.topics import topics
  for key in sorted(topics):
    yield f"pydoc_topics:{key}", {"text": topics[key]}


def _world(spec: Mapping) -> Iterator[tuple[str, Any]]:
  """The tiny study's procedural text. The one import from ``data`` into ``study``, done lazily: the world
  package imports nothing from this one, so the layering stays acyclic."""
  from visprior_jax.study import world
  for doc in world.generate_documents(spec.get("generator", "visual_world"), int(spec.get("n_docs", 1000)),
                                      int(spec.get("seed", 0))):
    yield doc["id"], {"text": doc["text"]}


_BUILTIN = {"tfds": _tfds, "python_stdlib": _python_stdlib, "pydoc_topics": _pydoc_topics, "world": _world}


# ---------------------------------------------------------------------------------------------
# Entry points


def check_spec(spec: Mapping) -> dict:
  """The spec as a plain dict with defaults, or a one-line ValueError saying what to fix."""
  spec = dict(spec.to_dict() if hasattr(spec, "to_dict") else spec)
  unknown = sorted(set(spec) - SPEC_KEYS)
  if unknown:
    raise ValueError(f"unknown source spec key(s) {unknown}; allowed: {sorted(SPEC_KEYS)}")
  if spec.get("kind") not in KINDS:
    raise ValueError(f"source kind {spec.get('kind')!r} is not one of {list(KINDS)}")
  spec.setdefault("on_error", "skip")
  if spec["on_error"] not in ("skip", "raise"):
    raise ValueError(f"on_error={spec['on_error']!r}; use 'skip' or 'raise'")
  if spec["kind"] in _FILE_READERS and not spec.get("paths"):
    raise ValueError(f"kind={spec['kind']} needs 'paths' (files, directories or globs)")
  if spec.get("limit") is not None and int(spec["limit"]) < 0:
    raise ValueError(f"limit={spec['limit']} must be >= 0")
  if spec["kind"] == "world":
    from visprior_jax.study import world
    world.check_generator(spec.get("generator", "visual_world"))
  return spec


def _records(spec: dict, stats: ReadStats) -> Iterator[tuple[str, Any]]:
  kind = spec["kind"]
  if kind in _BUILTIN:
    stats.files += 1
    yield from _BUILTIN[kind](spec)
    return
  for path in expand_paths(spec["paths"], spec.get("pattern") or DEFAULT_PATTERN[kind]):
    stats.files += 1
    try:
      yield from _FILE_READERS[kind](path, spec)
    except _BadFile as e:
      yield (str(path) if e.where is None else f"{path}:{e.where}"), e


def read_documents(spec: Mapping, stats: ReadStats | None = None) -> Iterator[dict[str, str]]:
  """Documents from the source ``spec`` (see module docstring); counts into ``stats`` if given.

  The spec is checked here, before the first document is asked for.
  """
  spec = check_spec(spec)
  return _read(spec, stats if stats is not None else ReadStats())


def _read(spec: dict, stats: ReadStats) -> Iterator[dict[str, str]]:
  limit = spec.get("limit")
  if limit is not None and int(limit) == 0:
    return
  for where, record in _records(spec, stats):
    try:
      if isinstance(record, _BadRecord):
        raise record
      doc = _document(record, where, spec)
    except _BadRecord as e:
      if spec["on_error"] == "raise":
        raise ValueError(f"{where}: {e.reason}" + (f" ({e.detail})" if e.detail else "")) from None
      stats.skip(where, e.reason, e.detail)
      continue
    stats.read += 1
    yield doc
    if limit is not None and stats.read >= int(limit):
      break
  if stats.total_skipped:
    _log.warning("source %s: %s", spec.get("source") or spec["kind"], stats.summary())


def read_stats(spec: Mapping) -> ReadStats:
  """Read the whole source and return only its statistics (documents read, skipped by reason)."""
  stats = ReadStats()
  for _ in read_documents(spec, stats):
    pass
  return stats
