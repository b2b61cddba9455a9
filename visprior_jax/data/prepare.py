"""Tokenize a document stream into ArrayRecord shards: parallel, deterministic, resumable.

Layout written under ``<out_dir>/<source>/``::

  shard-00000.array_record    one record per document: token ids as little-endian uint32
                              (``np.frombuffer(record, "<u4")``), EOS appended by default
  shard-00000.lengths.npy     the documents' token counts (uint32), so the pipeline can index a
                              source without reading it
  shard-00000.json            the finished shard's record (counts, sha256, input hash); written last
  manifest.json               documents, tokens, skipped_empty, shards [{name, documents, tokens,
                              sha256, ...}], tokenizer {name, vocab_size, eos_id}

Shard ``k`` holds input documents ``[k * docs_per_shard, (k + 1) * docs_per_shard)`` minus the
empty ones (skipped and counted), so the output is a function of the input order alone: worker
processes tokenize chunks, the parent writes shards in input order, and the bytes (and sha256
sums) are the same for any number of workers. Every file is written under a temporary name and
renamed, the shard's ``.json`` last; a rerun skips shards whose ``.json`` and ``.array_record``
exist, match (sha256) and were made from the same input texts, so an interrupted run resumes
where it stopped and a deleted or stale shard is rewritten.

The tokenizer is duck-typed: ``encode(text) -> list[int]``, ``eos_id``, ``vocab_size``, ``name``.
Worker processes (``workers > 1``) build their own copy with ``tokenizer_factory()`` (a
picklable callable, e.g. ``functools.partial(tokenizers.load_tokenizer, spec)``), or receive the
pickled tokenizer object when no factory is given. Workers are started with ``spawn`` (safe next
to JAX's threads); the factory must be importable by module path.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import json
import multiprocessing
import os
import re
from typing import Any, Callable, Iterable, Iterator

import numpy as np
from array_record.python import array_record_module
from tqdm.auto import tqdm

SHARD = "shard-{:05d}"
MANIFEST = "manifest.json"

_worker_tokenizer = None
_worker_append_eos = True


def _init_worker(tokenizer_factory, tokenizer, append_eos: bool) -> None:
  global _worker_tokenizer, _worker_append_eos
  _worker_tokenizer = tokenizer_factory() if tokenizer_factory is not None else tokenizer
  _worker_append_eos = append_eos


def _encode_chunk(texts: list[str]) -> list[np.ndarray | None]:
  """Token arrays (uint32) for ``texts``; None for an empty document. Uses the tokenizer's
  ``encode_batch`` when it has one (fast tokenizers batch internally)."""
  tok = _worker_tokenizer
  keep = [i for i, t in enumerate(texts) if t.strip()]
  kept = [texts[i] for i in keep]
  encoded = tok.encode_batch(kept) if hasattr(tok, "encode_batch") else [tok.encode(t) for t in kept]
  out: list[np.ndarray | None] = [None] * len(texts)
  for i, ids in zip(keep, encoded):
    out[i] = _to_array(tok, ids, _worker_append_eos)
  return out


def _to_array(tokenizer, ids, append_eos: bool) -> np.ndarray | None:
  ids = list(ids)
  if not ids:
    return None
  if append_eos:
    ids.append(tokenizer.eos_id)
  arr = np.asarray(ids, dtype=np.int64)
  if arr.min() < 0 or arr.max() >= tokenizer.vocab_size:
    bad = int(arr[(arr < 0) | (arr >= tokenizer.vocab_size)][0])
    raise ValueError(f"tokenizer {tokenizer.name!r} produced id {bad} outside [0, {tokenizer.vocab_size})")
  return arr.astype("<u4")


def _sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _texts_sha256(texts: list[str]) -> str:
  h = hashlib.sha256()
  for t in texts:
    b = t.encode("utf-8", "surrogatepass")
    h.update(len(b).to_bytes(8, "little"))
    h.update(b)
  return h.hexdigest()


def _write_json(path: str, obj: Any) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=1)
  os.replace(tmp, path)


def _text_of(doc: Any, index: int) -> str:
  if isinstance(doc, str):
    return doc
  try:
    text = doc["text"]
  except (KeyError, TypeError):
    raise ValueError(f"document #{index} (id={_get(doc, 'id')!r}) has no 'text' field") from None
  if not isinstance(text, str):
    raise ValueError(f"document #{index} (id={_get(doc, 'id')!r}): 'text' is {type(text).__name__}, not str")
  return text


def _get(doc, key):
  try:
    return doc[key]
  except Exception:
    return None


def _shard_chunks(docs: Iterable[dict], docs_per_shard: int) -> Iterator[tuple[int, list[str]]]:
  it = iter(docs)
  for k in itertools.count():
    chunk = list(itertools.islice(it, docs_per_shard))
    if not chunk:
      return
    yield k, [_text_of(d, k * docs_per_shard + i) for i, d in enumerate(chunk)]


class _Inline:
  """The pool interface run in this process (workers <= 1)."""

  class _Done:
    def __init__(self, value):
      self._value = value

    def get(self):
      return self._value

  def apply_async(self, fn, args):
    return self._Done(fn(*args))

  def close(self):
    pass

  def join(self):
    pass

  def terminate(self):
    pass


def prepare_source(docs: Iterable[dict], tokenizer, out_dir: str, source: str, *, docs_per_shard: int = 10_000,
                   workers: int = 0, append_eos: bool = True, progress: bool = True,
                   tokenizer_factory: Callable[[], Any] | None = None, chunk_docs: int = 256,
                   mp_context: str = "spawn") -> dict:
  """Tokenizes ``docs`` ({"text", ...} dicts or strings) into ``<out_dir>/<source>/`` shards.

  Returns the manifest (also written to ``manifest.json``). ``workers`` > 1 tokenizes in that many
  processes; the output bytes do not depend on it. Reruns skip finished shards.
  """
  if docs_per_shard < 1:
    raise ValueError(f"docs_per_shard={docs_per_shard} must be >= 1")
  if append_eos and tokenizer.eos_id is None:
    raise ValueError(f"tokenizer {tokenizer.name!r} has no eos_id; pass append_eos=False")
  src_dir = os.path.join(os.fspath(out_dir), source)
  os.makedirs(src_dir, exist_ok=True)
  tok_info = {"name": str(tokenizer.name), "vocab_size": int(tokenizer.vocab_size),
              "eos_id": None if tokenizer.eos_id is None else int(tokenizer.eos_id)}
  settings = {"tokenizer": tok_info, "append_eos": bool(append_eos), "docs_per_shard": int(docs_per_shard)}

  if workers > 1:
    ctx = multiprocessing.get_context(mp_context)
    pool = ctx.Pool(workers, initializer=_init_worker,
                    initargs=(tokenizer_factory, None if tokenizer_factory else tokenizer, append_eos))
  else:
    _init_worker(None, tokenizer, append_eos)
    pool = _Inline()

  shards: list[dict] = []
  pending: collections.deque = collections.deque()
  max_pending = max(2, workers + 1)
  bar = tqdm(desc=f"prepare {source}", unit="doc", total=len(docs) if hasattr(docs, "__len__") else None,
             disable=not progress, dynamic_ncols=True)
  stats = {"written": 0, "reused": 0, "tokens": 0}

  def finish_oldest():
    k, texts_hash, n_in, parts = pending.popleft()
    arrays = [a for part in parts for a in part.get()]
    shards.append(_write_shard(src_dir, k, arrays, texts_hash, n_in, settings))
    stats["written"] += 1
    stats["tokens"] += shards[-1]["tokens"]
    bar.update(n_in)
    bar.set_postfix(tokens=stats["tokens"], shards=len(shards), reused=stats["reused"], refresh=False)

  try:
    for k, texts in _shard_chunks(docs, docs_per_shard):
      texts_hash = _texts_sha256(texts)
      done = _finished_shard(src_dir, k, texts_hash, settings)
      if done is not None:
        while pending:  # keep shards in order
          finish_oldest()
        shards.append(done)
        stats["reused"] += 1
        stats["tokens"] += done["tokens"]
        bar.update(len(texts))
        continue
      parts = [pool.apply_async(_encode_chunk, (texts[i:i + chunk_docs],)) for i in range(0, len(texts), chunk_docs)]
      pending.append((k, texts_hash, len(texts), parts))
      while len(pending) >= max_pending:
        finish_oldest()
    while pending:
      finish_oldest()
    pool.close()
    pool.join()
  except BaseException:
    pool.terminate()
    raise
  finally:
    bar.close()

  stale = sorted(f for f in os.listdir(src_dir)
                 if (m := re.fullmatch(r"shard-(\d+)\.array_record", f)) and int(m.group(1)) >= len(shards))
  manifest = {
      "source": source,
      "format": "array_record; one document per record; token ids as little-endian uint32",
      **settings,
      "input_documents": sum(s["input_documents"] for s in shards),
      "documents": sum(s["documents"] for s in shards),
      "tokens": sum(s["tokens"] for s in shards),
      "skipped_empty": sum(s["skipped_empty"] for s in shards),
      "shards": shards,
  }
  if stale:
    manifest["stale_files_not_listed"] = stale
  _write_json(os.path.join(src_dir, MANIFEST), manifest)
  return manifest


def _write_shard(src_dir: str, k: int, arrays: list, texts_hash: str, n_in: int, settings: dict) -> dict:
  name = SHARD.format(k)
  base = os.path.join(src_dir, name)
  kept = [a for a in arrays if a is not None]
  tmp = base + ".array_record.tmp"
  writer = array_record_module.ArrayRecordWriter(tmp, "group_size:1")
  try:
    for a in kept:
      writer.write(a.tobytes())
  finally:
    writer.close()
  os.replace(tmp, base + ".array_record")
  lengths = np.asarray([len(a) for a in kept], dtype=np.uint32)
  with open(base + ".lengths.npy.tmp", "wb") as f:
    np.save(f, lengths, allow_pickle=False)
  os.replace(base + ".lengths.npy.tmp", base + ".lengths.npy")
  record = {"name": name + ".array_record", "documents": len(kept), "tokens": int(lengths.sum(dtype=np.int64)),
            "sha256": _sha256(base + ".array_record"), "lengths": name + ".lengths.npy",
            "input_documents": n_in, "skipped_empty": n_in - len(kept), "input_sha256": texts_hash, **settings}
  _write_json(base + ".json", record)
  return _public(record)


def _public(record: dict) -> dict:
  return {k: v for k, v in record.items() if k not in ("tokenizer", "append_eos", "docs_per_shard")}


def _finished_shard(src_dir: str, k: int, texts_hash: str, settings: dict) -> dict | None:
  """The shard's record if it was finished from the same inputs and settings, else None."""
  base = os.path.join(src_dir, SHARD.format(k))
  try:
    with open(base + ".json") as f:
      record = json.load(f)
  except FileNotFoundError:
    return None
  if any(record.get(key) != value for key, value in settings.items()):
    old = {key: record.get(key) for key in settings}
    raise ValueError(f"{base}.json was prepared with {old}, not {settings}; "
                     f"use a fresh output directory or delete {src_dir}")
  if record.get("input_sha256") != texts_hash:
    return None  # the input changed: rewrite
  if not (os.path.exists(base + ".array_record") and os.path.exists(base + ".lengths.npy")):
    return None
  if _sha256(base + ".array_record") != record["sha256"]:
    return None
  return _public(record)
