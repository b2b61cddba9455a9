"""Segment labels: which reasoning / visual categories a piece of pre-training text carries.

The paper (section 3.3, App. B; PAPER.md 2.1-2.2) splits every document into 1024-token segments and
has a 32B LLM (Qwen3-32B) tag each one, multi-label, with six categories. Table 4 reports, per source,
the share of segments carrying each label; the mixture code turns those shares into reasoning% and
visual% of a recipe. This module does the same over the prepared shards:

  segment_bounds(n)        consecutive [start, end) token spans of ``segment_tokens`` (last one shorter)
  label_source(dir, tok, backend)   label every segment of one source, appending rows to labels.jsonl
  label_rates(prepared_dir)         {source: {label: fraction of segments}} (six labels + the unions)
  label_report / format_label_report   the Table-4-style table
  label_command / label_report_command  what ``visprior data label`` / ``label-report`` call

Files. Shards are ``<prepared_dir>/<source>/shard-XXXXX.array_record``, one document per record,
token ids as little-endian uint32. Labels live next to them in ``<source>/labels.jsonl``, one row
per segment, appended as batches finish::

  {"shard": "shard-00000.array_record", "record": 7, "segment": 0, "start": 0, "end": 1024,
   "labels": ["math_reasoning", "science_reasoning"]}        # ["none"] when nothing applies
  {"shard": ..., "record": ..., "segment": 1, "start": 1024, "end": 1301, "unparseable": true}

A rerun skips segments that already have a row, so an interrupted run resumes where it stopped
(``retry_unparseable=True`` also re-asks the unparseable ones; the last row for a segment wins).
A half-written last line from a killed run is skipped and counted, never appended onto.

Backends (``label_backends.make_backend(cfg)``, ``cfg.backend`` = ``"endpoint"`` or ``"lexical"``):

- :class:`EndpointBackend`: any OpenAI-compatible ``POST {base_url}/chat/completions`` server
  (vLLM, SGLang), standard library only. Concurrent requests, retries with exponential backoff and
  jitter on connection errors / 408 / 429 / 5xx, re-asks on unparseable answers, and an on-disk
  SQLite cache keyed by sha256(model, prompt, segment text) so reruns never re-query. The API key is
  read from the environment variable *named* in ``api_key_env``; it is never logged or written.
  See ``configs/data/label_endpoint.py``.
- :class:`LexicalBackend`: keyword / regex densities with fixed thresholds. It is a ROUGH PROXY
  for smoke tests and for users without a GPU server: it sees words, not meaning (a novel that
  mentions "proof" is not math reasoning; a paragraph about colour theory may be science, not
  visual). Its rates will not match the paper's Table 4; use the endpoint for real numbers.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
from typing import Iterable, Mapping, Sequence

import numpy as np
from etils import epath

from visprior_jax.data.label_backends import CATEGORIES, FAILED, NONE, UNPARSEABLE, Backend, make_backend

log = logging.getLogger(__name__)

GROUPS = {"reasoning": CATEGORIES[:3], "visual": CATEGORIES[3:]}   # unions, computed, never stored
REPORT_COLUMNS = CATEGORIES[:3] + ("reasoning",) + CATEGORIES[3:] + ("visual",)   # Table 4's order
LABELS_FILE = "labels.jsonl"
SHARD_GLOB = "shard-*.array_record"


# ----------------------------------------------------------------------------------------------
# Segments and rows


def segment_bounds(n_tokens: int, segment_tokens: int = 1024) -> list[tuple[int, int]]:
  """Consecutive [start, end) spans; the last may be shorter; a short document is one segment."""
  if segment_tokens <= 0:
    raise ValueError(f"segment_tokens must be positive, got {segment_tokens}")
  return [(s, min(s + segment_tokens, n_tokens)) for s in range(0, n_tokens, segment_tokens)]


def group_labels(labels: Iterable[str]) -> set[str]:
  """The labels plus the unions they imply ({"math_reasoning"} -> also "reasoning")."""
  out = set(labels)
  out.update(g for g, members in GROUPS.items() if out.intersection(members))
  return out


def read_label_rows(path, counters: collections.Counter | None = None) -> dict[tuple[str, int, int], dict]:
  """labels.jsonl -> {(shard, record, segment): row}; the last row for a segment wins.

  Lines that are not a JSON object with the key fields (e.g. half-written by a killed run) are
  skipped and counted in ``counters["corrupt_rows"]``.
  """
  path = epath.Path(path)
  rows: dict[tuple[str, int, int], dict] = {}
  if not path.exists():
    return rows
  with path.open("r") as f:
    for lineno, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
        key = (str(row["shard"]), int(row["record"]), int(row["segment"]))
      except (ValueError, KeyError, TypeError):
        log.warning("%s:%d: skipping a corrupt label row", path, lineno)
        if counters is not None:
          counters["corrupt_rows"] += 1
        continue
      rows[key] = row
  return rows


# ----------------------------------------------------------------------------------------------
# Labelling a source


@dataclasses.dataclass
class LabelStats:
  source: str
  documents: int = 0
  segments: int = 0           # segments seen this run (including already-labelled ones)
  already_labelled: int = 0   # skipped because labels.jsonl has them
  labelled: int = 0           # rows written with labels this run
  unparseable: int = 0        # rows written as unparseable this run
  failed: int = 0             # no answer (endpoint errors): not written, retried by the next run
  empty_documents: int = 0
  bad_records: int = 0        # records that are not whole uint32 arrays: skipped
  decode_errors: int = 0      # segments the tokenizer could not decode: skipped
  corrupt_rows: int = 0       # unreadable lines in an existing labels.jsonl: ignored
  per_label: dict[str, int] = dataclasses.field(default_factory=dict)
  backend: dict[str, int] = dataclasses.field(default_factory=dict)

  def summary(self) -> str:
    labels = ", ".join(f"{k} {v}" for k, v in sorted(self.per_label.items()))
    skipped = {k: getattr(self, k) for k in ("failed", "empty_documents", "bad_records", "decode_errors",
                                             "corrupt_rows") if getattr(self, k)}
    return (f"{self.source}: {self.labelled} labelled, {self.unparseable} unparseable, "
            f"{self.already_labelled} already labelled of {self.segments} segments in {self.documents} "
            f"documents; labels: {labels or '-'}" + (f"; skipped/failed: {skipped}" if skipped else ""))


def _segments(source_dir: epath.Path, segment_tokens: int, stats: LabelStats):
  """Yields (shard name, record, segment, start, end, tokens) over all shards, in order."""
  from array_record.python.array_record_data_source import ArrayRecordDataSource
  shards = sorted(source_dir.glob(SHARD_GLOB))
  if not shards:
    raise FileNotFoundError(f"no {SHARD_GLOB} files in {source_dir}; run `visprior data prepare` first")
  for shard in shards:
    ds = ArrayRecordDataSource([os.fspath(shard)])
    try:
      for record in range(len(ds)):
        stats.documents += 1
        raw = ds[record]
        if len(raw) % 4:
          stats.bad_records += 1
          log.warning("%s record %d: %d bytes is not a whole uint32 array; skipped", shard.name, record, len(raw))
          continue
        tokens = np.frombuffer(raw, "<u4")
        if tokens.size == 0:
          stats.empty_documents += 1
          continue
        for seg, (start, end) in enumerate(segment_bounds(tokens.size, segment_tokens)):
          yield shard.name, record, seg, start, end, tokens[start:end]
    finally:
      if hasattr(ds, "__exit__"):
        ds.__exit__(None, None, None)


def _open_append(path: epath.Path):
  """Opens labels.jsonl for appending, first ending a half-written last line so no row is glued on."""
  needs_newline = False
  if path.exists():
    with path.open("rb") as f:
      f.seek(0, os.SEEK_END)
      if f.tell():
        f.seek(-1, os.SEEK_END)
        needs_newline = f.read(1) != b"\n"
  f = path.open("a")
  if needs_newline:
    f.write("\n")
  return f


def label_source(source_dir, tokenizer, backend: Backend, *, segment_tokens: int = 1024,
                 limit: int | None = None, progress: bool = True,
                 retry_unparseable: bool = False, batch_size: int | None = None) -> LabelStats:
  """Labels every not-yet-labelled segment of one prepared source; appends to labels.jsonl.

  ``tokenizer``: anything with ``decode(ids) -> str``. ``limit``: label at most this many new
  segments, then stop (a later call continues). ``batch_size``: segments handed to the backend
  at once (default: the backend's ``cfg.batch_size``, else 256); rows are appended per batch.
  """
  from tqdm.auto import tqdm
  source_dir = epath.Path(source_dir)
  stats = LabelStats(source=source_dir.name)
  counters: collections.Counter = collections.Counter()
  out_path = source_dir / LABELS_FILE
  existing = read_label_rows(out_path, counters)
  stats.corrupt_rows = counters["corrupt_rows"]
  done = {k: (r.get("start"), r.get("end")) for k, r in existing.items()
          if not (retry_unparseable and r.get("unparseable"))}
  del existing
  batch_size = batch_size or getattr(getattr(backend, "cfg", None), "batch_size", 256)
  per_label: collections.Counter = collections.Counter()
  pending: list[tuple[dict, str]] = []

  def flush(f):
    results = backend.label([text for _, text in pending])
    for (row, _), result in zip(pending, results):
      if result is FAILED:
        stats.failed += 1
        continue
      if result == UNPARSEABLE:
        row["unparseable"] = True
        stats.unparseable += 1
      else:
        row["labels"] = list(result)
        per_label.update(result)
        stats.labelled += 1
      f.write(json.dumps(row) + "\n")
    f.flush()
    pending.clear()

  n_shards = len(list(source_dir.glob(SHARD_GLOB)))
  bar = tqdm(desc=f"label {source_dir.name}", unit="seg", total=limit, disable=not progress,
             dynamic_ncols=True)
  with _open_append(out_path) as f:
    try:
      for shard, record, seg, start, end, tokens in _segments(source_dir, segment_tokens, stats):
        stats.segments += 1
        key = (shard, record, seg)
        if key in done:
          if done[key] != (start, end):
            raise ValueError(
                f"{out_path}: {shard} record {record} segment {seg} was labelled as tokens {done[key]}, "
                f"now {(start, end)}; it was written with another segment_tokens (now {segment_tokens})")
          stats.already_labelled += 1
          continue
        if limit is not None and stats.labelled + stats.unparseable + stats.failed + len(pending) >= limit:
          break
        try:
          text = tokenizer.decode([int(t) for t in tokens])
        except Exception as e:  # any tokenizer's failure: skip and count, the run goes on
          stats.decode_errors += 1
          log.warning("%s record %d segment %d: decode failed (%s); skipped", shard, record, seg, e)
          continue
        pending.append((dict(shard=shard, record=record, segment=seg, start=start, end=end), text))
        if len(pending) >= batch_size:
          n = len(pending)
          flush(f)
          bar.update(n)
          bar.set_postfix(docs=stats.documents, shards=n_shards, unparseable=stats.unparseable,
                          failed=stats.failed, refresh=False)
      if pending:
        n = len(pending)
        flush(f)
        bar.update(n)
    finally:
      bar.close()
  stats.per_label = dict(per_label)
  stats.backend = backend.stats()
  if stats.failed and stats.failed == stats.labelled + stats.unparseable + stats.failed:
    log.error("%s: every request failed; is the endpoint up? (%s)", stats.source, stats.backend)
  return stats


# ----------------------------------------------------------------------------------------------
# Report (Table 4)


@dataclasses.dataclass
class LabelReport:
  rates: dict[str, dict[str, float]]   # source -> column -> fraction of readable segments
  segments: dict[str, int]             # source -> readable segments
  unparseable: dict[str, int]          # source -> unparseable segments (not in the denominator)


def _sources_with_labels(prepared_dir: epath.Path) -> list[str]:
  return sorted(p.parent.name for p in prepared_dir.glob(f"*/{LABELS_FILE}"))


def label_report(prepared_dir, sources: Sequence[str] | None = None, *, weight: str = "segments") -> LabelReport:
  """Per source: share of segments carrying each label and each union (reasoning, visual).

  ``weight="tokens"`` weights segments by their token count instead of counting them. Unparseable
  segments are left out of the denominator and reported separately; the last row per segment wins.
  """
  if weight not in ("segments", "tokens"):
    raise ValueError(f"weight must be 'segments' or 'tokens', got {weight!r}")
  prepared_dir = epath.Path(prepared_dir)
  sources = list(sources) if sources else _sources_with_labels(prepared_dir)
  report = LabelReport({}, {}, {})
  for source in sources:
    path = prepared_dir / source / LABELS_FILE
    if not path.exists():
      raise FileNotFoundError(f"{path} does not exist; run `visprior data label` for {source} first")
    counts: collections.Counter = collections.Counter()
    total, n, bad = 0.0, 0, 0
    for row in read_label_rows(path).values():
      if row.get("unparseable") or not isinstance(row.get("labels"), list):
        bad += 1
        continue
      w = float(row["end"] - row["start"]) if weight == "tokens" else 1.0
      total += w
      n += 1
      for label in group_labels(row["labels"]) | ({NONE} if NONE in row["labels"] else set()):
        counts[label] += w
    report.rates[source] = {c: (counts[c] / total if total else 0.0) for c in REPORT_COLUMNS + (NONE,)}
    report.segments[source] = n
    report.unparseable[source] = bad
  return report


def label_rates(prepared_dir, sources: Sequence[str] | None = None, *,
                weight: str = "segments") -> dict[str, dict[str, float]]:
  """{source: {label: fraction}} for the six labels, "reasoning", "visual" and "none"."""
  return label_report(prepared_dir, sources, weight=weight).rates


def format_label_report(report: LabelReport) -> str:
  """Table 4's layout: % of segments per source; then segment and unparseable counts."""
  short = {"code_reasoning": "code", "math_reasoning": "math", "science_reasoning": "science",
           "reasoning": "reas.comb", "visual_concept": "v.concept", "visual_attribute": "v.attrib",
           "visual_relationship": "v.relation", "visual": "vis.comb"}
  width = max([len("source")] + [len(s) for s in report.rates])
  header = f"{'source':<{width}} " + " ".join(f"{short[c]:>10}" for c in REPORT_COLUMNS) + \
           f" {'segments':>10} {'unparse.':>9}"
  lines = [header, "-" * len(header)]
  for source, rates in report.rates.items():
    lines.append(f"{source:<{width}} " + " ".join(f"{100 * rates[c]:>10.1f}" for c in REPORT_COLUMNS) +
                 f" {report.segments[source]:>10d} {report.unparseable[source]:>9d}")
  return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Commands (called by the CLI)


def _source_dirs(prepared_dir: epath.Path, sources: Sequence[str] | None) -> list[epath.Path]:
  if sources:
    dirs = [prepared_dir / s for s in sources]
    missing = [os.fspath(d) for d in dirs if not d.is_dir()]
    if missing:
      raise FileNotFoundError(f"no prepared source directory {missing}")
    return dirs
  dirs = sorted({p.parent for p in prepared_dir.glob(f"*/{SHARD_GLOB}")}, key=lambda p: p.name)
  if not dirs:
    raise FileNotFoundError(f"no prepared sources (*/{SHARD_GLOB}) under {prepared_dir}")
  return dirs


def label_command(prepared_dir, sources: Sequence[str] | None, backend_cfg: Mapping, tokenizer, *,
                  segment_tokens: int | None = None, limit: int | None = None, progress: bool = True,
                  retry_unparseable: bool = False) -> list[LabelStats]:
  """Labels each source (all under ``prepared_dir`` when ``sources`` is empty); prints summaries.

  ``backend_cfg``: e.g. ``configs/data/label_endpoint.py``'s ConfigDict. An endpoint cache_path
  left empty becomes ``<prepared_dir>/label_cache.sqlite``. ``segment_tokens`` defaults to
  ``backend_cfg.segment_tokens`` or 1024. ``limit`` applies per source.
  """
  prepared_dir = epath.Path(prepared_dir)
  cfg = dict(backend_cfg.to_dict() if hasattr(backend_cfg, "to_dict") else backend_cfg)
  segment_tokens = segment_tokens or int(cfg.pop("segment_tokens", 1024) or 1024)
  cfg.pop("segment_tokens", None)
  if cfg.get("backend", "endpoint") == "endpoint" and not cfg.get("cache_path"):
    cfg["cache_path"] = os.fspath(prepared_dir / "label_cache.sqlite")
  dirs = _source_dirs(prepared_dir, sources)
  backend = make_backend(cfg)
  all_stats = []
  try:
    for d in dirs:
      stats = label_source(d, tokenizer, backend, segment_tokens=segment_tokens, limit=limit,
                           progress=progress, retry_unparseable=retry_unparseable)
      print(stats.summary(), flush=True)
      all_stats.append(stats)
  finally:
    backend.close()
  return all_stats


def label_report_command(prepared_dir, sources: Sequence[str] | None = None, *, weight: str = "segments",
                         output: str | None = None) -> LabelReport:
  """Prints the Table-4-style report; with ``output``, also writes it as JSON there."""
  report = label_report(prepared_dir, sources, weight=weight)
  print(format_label_report(report), flush=True)
  if output:
    epath.Path(output).write_text(json.dumps(dataclasses.asdict(report), indent=1, sort_keys=True))
  return report
