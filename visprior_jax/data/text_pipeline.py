"""Mixtures of prepared text sources, packed into rows; a batch is a pure function of (seed, step).

Satisfies the trainer's data interface (see ``source.py``): ``vocab_size``,
``batch(step, process_index, process_count)``, ``state(step)``, ``check_state(state)``.

How a batch is made (everything below is random access; nothing is iterated from the start):

1. **Index.** Each stream (``source`` + label ``require``/``exclude``) is a table of spans
   ``(shard, record, start, length)``: whole documents for a stream without label filters, the
   1024-token segments of ``labels.jsonl`` that ``Stream.matches`` otherwise (union labels
   ``reasoning``/``visual`` added; unparseable rows are in no labelled stream). Lengths come
   from the shards' ``.lengths.npy`` files, so nothing is read to build the index.
2. **Per-stream token sequence.** Stream ``i`` is an infinite token sequence: epoch ``e`` is its
   spans in the order ``permutation(seed, stream, e)``, epochs concatenated. Token offset ``t``
   maps to a span by binary search in the epoch's cumulative lengths.
3. **Block-deterministic mixing in tokens** (Levanter-style). The mixture is cut into blocks of
   ``block_tokens`` tokens (default: one global batch, ``batch_size * (seq_len + 1)``). Stream
   ``i`` gets exactly ``q_i`` tokens of every block (largest-remainder apportionment of the
   weights), namely tokens ``[b*q_i, (b+1)*q_i)`` of its own sequence: a run of spans whose first
   and last ones may be partial. Block ``b``'s pieces from all streams are shuffled with
   ``(seed, b)`` and concatenated. With the default block size every global batch holds exactly
   the recipe's token shares (to 1 token in ``block_tokens``). Keep ``q_i`` well above the
   stream's document length: each stream's run is cut at both ends of every block.
4. **Packing.** Packed row ``j`` is the mixture's tokens ``[j*(seq_len+1), (j+1)*(seq_len+1))``
   (concatenate then split); a span that crosses a row boundary continues in the next row.
   Global row ``k = step * batch_size + r`` is packed row ``shuffle(k)``: rows are permuted within
   windows of ``shuffle_window`` batches (seeded), so a batch holds rows from many documents
   rather than a few long documents laid across consecutive rows (token shares are then exact
   per window instead of per batch; ``shuffle_window=1`` keeps the per-batch guarantee). ``segment_ids`` number the pieces in a row from 1,
   ``positions`` restart per piece, ``loss_mask`` is 0 where the target is in the next piece.
5. **Hosts.** Process ``p`` of ``P`` builds rows ``[p*B/P, (p+1)*B/P)`` and reads only their
   spans; the row sets are disjoint and together equal the one-process batch.

Resuming therefore needs only the step. ``state(step)`` stores it with a fingerprint (seed,
seq_len, batch_size, block_tokens, tokenizer, streams and weights, the prepared data's
checksums); ``check_state`` refuses a checkpoint whose fingerprint differs, saying what changed,
unless ``allow_mixture_change=True``.

Prefetch: ``prefetch=N`` computes the next N steps in a background thread while the trainer
runs the current one (default 0: everything in the calling thread). ``workers=N`` instead builds
batches in N grain worker processes (``as_grain_dataset`` -> ``mp_prefetch``), read in step order;
a non-consecutive step restarts them at that step. Either way the batch is ``f(seed, step)``.

Limits: paths are local (ArrayRecord readers, ``open``); an epoch's permutation is held in memory
(8 bytes per span, cached for recent epochs).
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import json
import logging
import math
import os
import threading
from typing import Mapping

import numpy as np
from array_record.python import array_record_module

from visprior_jax.data import mixtures
from visprior_jax.data.mixtures import Stream
from visprior_jax.data.packing import pack_rows, process_rows
from visprior_jax.data.source import refuse_state_changes
from visprior_jax.data.workers import StepWorkers, grain_dataset


def _field(obj, name, default=None):
  if isinstance(obj, Mapping) or hasattr(obj, "keys") and hasattr(obj, "get") and not hasattr(obj, name):
    return obj.get(name, default)
  return getattr(obj, name, default)


def resolve_streams(recipe, prepared_dir=None, pool=None) -> list[tuple[Stream, float]]:
  """``[(Stream, weight)]`` from a recipe: a list of {source, require, exclude, weight} mappings,
  ``(stream, weight)`` pairs (a stream: a ``mixtures.Stream``, an object with
  ``.source/.require/.exclude``, or a source name), or a recipe name for ``mixtures.get_recipe``.
  Sweeps and grid cells resolve against the pool: ``pool`` sources (default: every source under
  ``prepared_dir`` with a labels.jsonl), their manifest token counts and ``labels.label_rates``."""
  if isinstance(recipe, str):
    named = mixtures.get_recipe(recipe)
    if isinstance(named, mixtures.SourceMix):
      recipe = named.resolve()
    else:
      if prepared_dir is None:
        raise ValueError(f"recipe {recipe!r} resolves against the prepared pool: pass prepared_dir")
      from visprior_jax.data import labels as labels_lib
      root = os.fspath(prepared_dir)
      pool = list(pool) if pool else sorted(d for d in os.listdir(root)
                                            if os.path.exists(os.path.join(root, d, "labels.jsonl")))
      if not pool:
        raise ValueError(f"recipe {recipe!r} needs labelled sources; no labels.jsonl under {root}")
      pool_tokens = {}
      for name in pool:
        with open(os.path.join(root, name, "manifest.json")) as f:
          pool_tokens[name] = json.load(f)["tokens"]
      recipe = named.resolve(pool_tokens, labels_lib.label_rates(root, pool))
  out = []
  for item in recipe:
    if isinstance(item, (tuple, list)) and len(item) == 2:
      stream, weight = item
    else:
      stream, weight = item, _field(item, "weight")
    if weight is None:
      raise ValueError(f"recipe entry {item!r} has no weight")
    if isinstance(stream, str):
      stream = {"source": stream}
    if not isinstance(stream, mixtures.Stream):
      stream = mixtures.Stream(str(_field(stream, "source")), frozenset(_field(stream, "require", ()) or ()),
                               frozenset(_field(stream, "exclude", ()) or ()))
    out.append((stream, float(weight)))
  if not out:
    raise ValueError("the recipe has no streams")
  return out


def apportion(weights: list[float], total: int) -> list[int]:
  """Integers summing to ``total`` in proportion to ``weights`` (largest remainder, ties by index)."""
  exact = [w * total for w in weights]
  q = [math.floor(x) for x in exact]
  for i in sorted(range(len(q)), key=lambda i: (q[i] - exact[i], i))[:total - sum(q)]:
    q[i] += 1
  return q


def _key_int(text: str) -> int:
  return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


class _PreparedSource:
  """One prepared source: its manifest, document lengths, labels and shard readers."""

  def __init__(self, directory: str, verify_checksums: bool = False):
    self.dir = directory
    path = os.path.join(directory, "manifest.json")
    try:
      with open(path) as f:
        self.manifest = json.load(f)
    except FileNotFoundError:
      raise FileNotFoundError(f"{path} not found: prepare the source first (data/prepare.py)") from None
    except json.JSONDecodeError as e:
      raise ValueError(f"{path} is not valid JSON: {e}") from None
    self.shards = [os.path.join(directory, s["name"]) for s in self.manifest["shards"]]
    self._local = threading.local()
    self.shard_index = {}
    for k, s in enumerate(self.manifest["shards"]):
      for alias in (k, s["name"], s["name"].removesuffix(".array_record")):
        self.shard_index[alias] = k
    self.lengths = []
    for k, s in enumerate(self.manifest["shards"]):
      self._check_shard(k, s, verify_checksums)
      self.lengths.append(self._lengths(k, s))
    self.digest = hashlib.sha256("".join(s["sha256"] for s in self.manifest["shards"]).encode()).hexdigest()
    self._labels = None

  def __getstate__(self):
    return {k: v for k, v in self.__dict__.items() if k != "_local"}

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._local = threading.local()

  def _check_shard(self, k: int, s: dict, verify: bool) -> None:
    path = self.shards[k]
    if not os.path.exists(path):
      raise FileNotFoundError(f"{path} is listed in the manifest but missing: re-run prepare")
    try:
      reader = array_record_module.ArrayRecordReader(path, "readahead_buffer_size:0")
      n = reader.num_records()
      reader.close()
    except Exception as e:
      raise ValueError(f"{path} is truncated or corrupt ({e}); delete it and re-run prepare") from None
    if n != s["documents"]:
      raise ValueError(f"{path} holds {n} records but its manifest says {s['documents']}: the file is "
                       f"truncated or corrupt; delete it and re-run prepare")
    if verify:
      h = hashlib.sha256()
      with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
          h.update(block)
      if h.hexdigest() != s["sha256"]:
        raise ValueError(f"{path}: sha256 {h.hexdigest()} does not match the manifest's {s['sha256']}")

  def _lengths(self, k: int, s: dict) -> np.ndarray:
    path = os.path.join(self.dir, s.get("lengths") or s["name"].removesuffix(".array_record") + ".lengths.npy")
    if os.path.exists(path):
      lengths = np.load(path, allow_pickle=False).astype(np.int64)
    else:  # shards written elsewhere: read them once
      lengths = np.asarray([len(r) // 4 for r in self._reader(k).read_all()], np.int64)
    if len(lengths) != s["documents"] or lengths.sum() != s["tokens"]:
      raise ValueError(f"{path}: {len(lengths)} documents / {lengths.sum()} tokens, but the manifest says "
                       f"{s['documents']} / {s['tokens']} for {self.shards[k]}")
    return lengths

  def document_spans(self) -> tuple[np.ndarray, ...]:
    shard = np.concatenate([np.full(len(x), k, np.int64) for k, x in enumerate(self.lengths)] + [np.zeros(0, np.int64)])
    record = np.concatenate([np.arange(len(x), dtype=np.int64) for x in self.lengths] + [np.zeros(0, np.int64)])
    length = np.concatenate(self.lengths + [np.zeros(0, np.int64)])
    return shard, record, np.zeros_like(length), length

  def labels(self):
    """(shard, record, start, end, label sets, sha256) of labels.jsonl, parsed once."""
    if self._labels is None:
      path = os.path.join(self.dir, "labels.jsonl")
      if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: a stream with require/exclude needs the source's segment labels")
      rows, sets, unlabelled = [], [], 0
      with open(path, "rb") as f:
        data = f.read()
      for line_no, line in enumerate(data.decode().splitlines(), 1):
        if not line.strip():
          continue
        try:
          row = json.loads(line)
          k = self.shard_index[row["shard"]]
          rec, start, end = int(row["record"]), int(row["start"]), int(row["end"])
          labels = row.get("labels")
          if row.get("unparseable") or not isinstance(labels, list):
            unlabelled += 1  # the classifier gave no usable answer: in no labelled stream
            continue
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
          raise ValueError(f"{path}:{line_no}: bad label row ({type(e).__name__}: {e}): {line[:200]}") from None
        if not (0 <= rec < len(self.lengths[k]) and 0 <= start < end <= self.lengths[k][rec]):
          raise ValueError(f"{path}:{line_no}: segment {row['shard']} record {rec} [{start}, {end}) is outside "
                           f"the document ({len(self.lengths[k])} records)")
        rows.append((k, rec, start, end))
        sets.append(frozenset(labels))
      if unlabelled:
        logging.warning("%s: %d segments have no usable labels (unparseable); no labelled stream includes them",
                        path, unlabelled)
      arr = np.asarray(rows, np.int64).reshape(-1, 4)
      self._labels = (arr, sets, hashlib.sha256(data).hexdigest())
    return self._labels

  def _reader(self, k: int):
    readers = self._local.__dict__.setdefault("readers", {})
    if k not in readers:
      readers[k] = array_record_module.ArrayRecordReader(self.shards[k], "readahead_buffer_size:0")
    return readers[k]

  def read(self, k: int, records: list[int]) -> dict[int, np.ndarray]:
    try:
      raw = self._reader(k).read(records)
    except Exception as e:
      raise ValueError(f"{self.shards[k]}: cannot read records {records[:8]}: {e}") from None
    out = {}
    for rec, data in zip(records, raw):
      if len(data) != 4 * self.lengths[k][rec]:
        raise ValueError(f"{self.shards[k]} record {rec}: {len(data)} bytes, expected "
                         f"{4 * self.lengths[k][rec]} ({self.lengths[k][rec]} uint32 tokens)")
      out[rec] = np.frombuffer(data, "<u4")
    return out


class MixtureSource:
  """A token mixture over prepared sources; see the module docstring."""

  def __init__(self, prepared_dir: str, streams, batch_size: int, seq_len: int, seed: int = 42, *,
               block_tokens: int = 0, prefetch: int = 0, allow_mixture_change: bool = False,
               verify_checksums: bool = False, pool=None, shuffle_window: int = 64, workers: int = 0):
    self.batch_size, self.seq_len, self.seed = int(batch_size), int(seq_len), int(seed)
    if shuffle_window < 1:
      raise ValueError(f"shuffle_window={shuffle_window} must be >= 1 (batches)")
    self.shuffle_window = int(shuffle_window)
    self.allow_mixture_change = allow_mixture_change
    self.row_tokens = self.seq_len + 1
    self.block_tokens = int(block_tokens) or self.batch_size * self.row_tokens
    streams = resolve_streams(streams, prepared_dir, pool)
    self.streams = [s for s, _ in streams]
    weights = [w for _, w in streams]
    if len(set(self.streams)) != len(self.streams):
      raise ValueError(f"the recipe lists a stream twice: {[str(s) for s in self.streams]}")
    if any(not (w > 0 and math.isfinite(w)) for w in weights):
      raise ValueError(f"recipe weights must be positive and finite, got {weights}")
    self.weights = [w / sum(weights) for w in weights]
    self.quotas = apportion(self.weights, self.block_tokens)
    if min(self.quotas) < 1:
      small = [str(s) for s, q in zip(self.streams, self.quotas) if q < 1]
      raise ValueError(f"streams {small} get no tokens in a block of {self.block_tokens}: raise data.block_tokens")

    self.sources: dict[str, _PreparedSource] = {}
    for s in self.streams:
      if s.source not in self.sources:
        self.sources[s.source] = _PreparedSource(os.path.join(os.fspath(prepared_dir), s.source), verify_checksums)
    toks = {name: src.manifest["tokenizer"] for name, src in self.sources.items()}
    if len({(t["name"], t["vocab_size"]) for t in toks.values()}) != 1:
      raise ValueError(f"sources were prepared with different tokenizers: {toks}")
    self.tokenizer = next(iter(toks.values()))
    self.vocab_size = int(self.tokenizer["vocab_size"])

    self._spans, self._digests = [], []
    for s in self.streams:
      spans, digest = self._stream_spans(s)
      if len(spans[0]) == 0:
        raise ValueError(f"stream {s} has no spans in {self.sources[s.source].dir}")
      self._spans.append(spans)
      self._digests.append(digest)
    self._totals = [int(sp[3].sum()) for sp in self._spans]
    self._keys = [_key_int(str(s)) for s in self.streams]
    self.prefetch, self.workers = int(prefetch), int(workers)
    self._init_runtime()

  def _init_runtime(self):
    self._epoch = functools.lru_cache(maxsize=64)(self._epoch_uncached)
    self._block = functools.lru_cache(maxsize=256)(self._block_uncached)  # a shuffled batch spans many blocks
    self._window_perm = functools.lru_cache(maxsize=4)(self._window_perm_uncached)
    self._pool = concurrent.futures.ThreadPoolExecutor(1) if self.prefetch > 0 else None
    self._futures: dict[tuple, concurrent.futures.Future] = {}
    self._workers = StepWorkers(self.workers)

  _RUNTIME = ("_epoch", "_block", "_window_perm", "_pool", "_futures", "_workers")

  def __getstate__(self):  # for grain worker processes: caches, threads and iterators are rebuilt there
    return {k: v for k, v in self.__dict__.items() if k not in self._RUNTIME}

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._init_runtime()

  # ---- index -------------------------------------------------------------------------------

  def _stream_spans(self, s: Stream):
    src = self.sources[s.source]
    if not (s.require or s.exclude):
      return src.document_spans(), src.digest
    rows, sets, labels_sha = src.labels()
    keep = np.asarray([s.matches(ls) for ls in sets], bool).reshape(-1)
    rows = rows[keep]
    rows = rows[np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0]))]
    return (rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3] - rows[:, 2]), src.digest + ":" + labels_sha

  def span_table(self, stream: int) -> dict[str, np.ndarray]:
    """The stream's spans: shard, record, start, length (index = the span id in ``batch_info``)."""
    return dict(zip(("shard", "record", "start", "length"), self._spans[stream]))

  def _epoch_uncached(self, i: int, epoch: int):
    lengths = self._spans[i][3]
    perm = np.random.default_rng([self.seed % 2**63, 1, self._keys[i], epoch]).permutation(len(lengths))
    return perm, np.cumsum(lengths[perm])

  def _stream_pieces(self, i: int, t0: int, t1: int):
    """Spans and in-span [lo, hi) covering tokens [t0, t1) of stream i's infinite sequence."""
    lengths, total = self._spans[i][3], self._totals[i]
    spans, los, his = [], [], []
    t = t0
    while t < t1:
      epoch, off = divmod(t, total)
      perm, cum = self._epoch(i, epoch)
      end = min(total, off + t1 - t)
      j = np.arange(np.searchsorted(cum, off, "right"), np.searchsorted(cum, end - 1, "right") + 1)
      span = perm[j]
      start = cum[j] - lengths[span]
      spans.append(span)
      los.append(np.maximum(off - start, 0))
      his.append(np.minimum(end - start, lengths[span]))
      t += end - off
    return np.concatenate(spans), np.concatenate(los), np.concatenate(his)

  def _block_uncached(self, b: int):
    parts = [self._stream_pieces(i, b * q, (b + 1) * q) for i, q in enumerate(self.quotas)]
    stream = np.concatenate([np.full(len(p[0]), i, np.int64) for i, p in enumerate(parts)])
    span, lo, hi = (np.concatenate([p[x] for p in parts]) for x in range(3))
    order = np.random.default_rng([self.seed % 2**63, 2, b]).permutation(len(stream))
    stream, span, lo, hi = stream[order], span[order], lo[order], hi[order]
    cum = np.cumsum(hi - lo)
    assert cum[-1] == self.block_tokens, (cum[-1], self.block_tokens)
    return stream, span, lo, hi, cum

  # ---- rows --------------------------------------------------------------------------------

  def _row_pieces(self, k: int) -> list[tuple[int, int, int, int]]:
    """(stream, span, lo, hi) pieces making global row k, in order."""
    n, size = self.row_tokens, self.block_tokens
    g0, g1 = k * n, (k + 1) * n
    pieces = []
    for b in range(g0 // size, (g1 - 1) // size + 1):
      stream, span, lo, hi, cum = self._block(b)
      a, z = max(g0 - b * size, 0), min(g1 - b * size, size)
      for j in range(int(np.searchsorted(cum, a, "right")), int(np.searchsorted(cum, z - 1, "right")) + 1):
        piece_lo, piece_len = int(lo[j]), int(hi[j] - lo[j])
        start = int(cum[j]) - piece_len  # the piece's offset in the block
        pieces.append((int(stream[j]), int(span[j]), piece_lo + max(a - start, 0),
                       piece_lo + min(z - start, piece_len)))
    return pieces

  def _packed_row(self, k: int) -> int:
    """The packed row that global row k reads: a seeded permutation within its window."""
    if self.shuffle_window == 1:
      return k
    size = self.shuffle_window * self.batch_size
    window, offset = divmod(k, size)
    return window * size + int(self._window_perm(window)[offset])

  def _window_perm_uncached(self, window: int) -> np.ndarray:
    return np.random.default_rng([self.seed % 2**63, 3, window]).permutation(self.shuffle_window * self.batch_size)

  def batch_info(self, step: int, process_index: int = 0, process_count: int = 1) -> dict[str, np.ndarray]:
    """The batch plus per-token provenance of the (rows, seq_len + 1) packed tokens:
    ``stream_ids`` (recipe index) and ``span_ids`` (row in ``span_table``)."""
    rows = [step * self.batch_size + r for r in process_rows(self.batch_size, process_index, process_count)]
    all_pieces = [self._row_pieces(self._packed_row(k)) for k in rows]
    need: dict[tuple[str, int], set] = {}
    for pieces in all_pieces:
      for i, span, _, _ in pieces:
        need.setdefault((self.streams[i].source, int(self._spans[i][0][span])), set()).add(int(self._spans[i][1][span]))
    docs = {(name, k): self.sources[name].read(k, sorted(recs)) for (name, k), recs in sorted(need.items())}
    shape = (len(rows), self.row_tokens)
    tokens, piece_ids = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    stream_ids, span_ids = np.zeros(shape, np.int32), np.zeros(shape, np.int64)
    for r, pieces in enumerate(all_pieces):
      c = 0
      for p, (i, span, lo, hi) in enumerate(pieces):
        shard, record, start = (int(x[span]) for x in self._spans[i][:3])
        doc = docs[(self.streams[i].source, shard)][record]
        tokens[r, c:c + hi - lo] = doc[start + lo:start + hi]
        piece_ids[r, c:c + hi - lo], stream_ids[r, c:c + hi - lo], span_ids[r, c:c + hi - lo] = p, i, span
        c += hi - lo
      assert c == self.row_tokens, (c, self.row_tokens)
    out = pack_rows(piece_ids, tokens)
    out.update(stream_ids=stream_ids, span_ids=span_ids)
    return out

  def _compute(self, step: int, process_index: int, process_count: int) -> dict[str, np.ndarray]:
    out = self.batch_info(step, process_index, process_count)
    del out["stream_ids"], out["span_ids"]
    return out

  def batch(self, step: int, process_index: int = 0, process_count: int = 1) -> dict[str, np.ndarray]:
    if self.workers > 0:
      return self._workers.batch(self, step, process_index, process_count)
    if self._pool is None:
      return self._compute(step, process_index, process_count)
    key = (step, process_index, process_count)
    future = self._futures.pop(key, None)
    for stale in [k for k in self._futures if k[1:] != key[1:] or k[0] <= step]:
      self._futures.pop(stale).cancel()
    for s in range(step + 1, step + 1 + self.prefetch):
      if (s, *key[1:]) not in self._futures:
        self._futures[(s, *key[1:])] = self._pool.submit(self._compute, s, process_index, process_count)
    return future.result() if future is not None else self._compute(step, process_index, process_count)

  def as_grain_dataset(self, process_index: int = 0, process_count: int = 1, start_step: int = 0,
                       num_steps: int = 2**40):
    """``grain.MapDataset`` whose element ``j`` is ``batch(start_step + j)`` for this process."""
    return grain_dataset(self, process_index, process_count, start_step, num_steps)

  # ---- checkpoint state ------------------------------------------------------------------

  def fingerprint(self) -> dict:
    return {
        "seed": self.seed, "seq_len": self.seq_len, "batch_size": self.batch_size,
        "block_tokens": self.block_tokens, "shuffle_window": self.shuffle_window, "tokenizer": self.tokenizer,
        "streams": [{"stream": str(s), "weight": w, "spans": len(sp[0]), "tokens": t, "data_sha256": d}
                    for s, w, sp, t, d in zip(self.streams, self.weights, self._spans, self._totals, self._digests)],
    }

  def state(self, step: int) -> dict:
    return {"kind": "mixture", "next_step": int(step), **self.fingerprint()}

  def check_state(self, state: dict) -> None:
    mine = self.fingerprint()
    changes = []
    if state.get("kind") != "mixture":
      changes.append(f"data kind {state.get('kind')!r} -> 'mixture'")
    for key in ("seed", "seq_len", "batch_size", "block_tokens", "shuffle_window", "tokenizer"):
      if state.get(key) != mine[key]:
        changes.append(f"{key} {state.get(key)!r} -> {mine[key]!r}")
    old, new = state.get("streams") or [], mine["streams"]
    mix = lambda ss: ", ".join(f"{s['stream']}={s['weight']:.6g}" for s in ss)  # noqa: E731
    if [(s.get("stream"), s.get("weight")) for s in old] != [(s["stream"], s["weight"]) for s in new]:
      changes.append(f"mixture [{mix(old)}] -> [{mix(new)}]")
    else:
      for a, b in zip(old, new):
        if (a.get("spans"), a.get("tokens"), a.get("data_sha256")) != (b["spans"], b["tokens"], b["data_sha256"]):
          changes.append(f"prepared data of stream {b['stream']} ({a.get('spans')} spans, {a.get('tokens')} tokens "
                         f"-> {b['spans']} spans, {b['tokens']} tokens, or its checksums)")
    refuse_state_changes(changes, self.allow_mixture_change, "data.allow_mixture_change",
                         " (batches from the resumed step on follow the new settings)")


def _cfg(data_cfg, name, default=None):
  value = data_cfg.get(name, default) if hasattr(data_cfg, "get") else getattr(data_cfg, name, default)
  return default if value is None else value


def make_text_source(data_cfg, batch_size: int, seq_len: int, seed: int) -> MixtureSource:
  """``data.kind="mixture"``: ``data.prepared_dir``, ``data.recipe`` (a name for
  ``mixtures.get_recipe`` or a list of {source, require, exclude, weight}), and optional
  ``block_tokens`` (0 = one global batch), ``shuffle_window``, ``prefetch`` (a thread),
  ``workers`` (grain worker processes; 0 = none), ``allow_mixture_change``,
  ``verify_checksums``, ``pool`` (sources a sweep/grid recipe resolves against; default: every
  labelled source under prepared_dir)."""
  prepared_dir, recipe = _cfg(data_cfg, "prepared_dir"), _cfg(data_cfg, "recipe")
  if not prepared_dir or not recipe:
    raise ValueError("data.kind='mixture' needs data.prepared_dir and data.recipe")
  return MixtureSource(prepared_dir, recipe, batch_size, seq_len, seed,
                       block_tokens=int(_cfg(data_cfg, "block_tokens", 0)), prefetch=int(_cfg(data_cfg, "prefetch", 0)),
                       shuffle_window=int(_cfg(data_cfg, "shuffle_window", 64)),
                       workers=int(_cfg(data_cfg, "workers", 0)),
                       allow_mixture_change=bool(_cfg(data_cfg, "allow_mixture_change", False)),
                       verify_checksums=bool(_cfg(data_cfg, "verify_checksums", False)),
                       pool=_cfg(data_cfg, "pool") or None)
