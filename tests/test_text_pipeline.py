"""Prepared ArrayRecord shards and the token-mixture pipeline: resumable preparation, exact token
shares, batch = f(seed, step), disjoint per-process rows, correct packing, guarded resume."""

import json
import pathlib
import random
import string
from types import SimpleNamespace

import numpy as np
import pytest

from visprior_jax.data.prepare import prepare_source
from visprior_jax.data.text_pipeline import MixtureSource, make_text_source


class ByteTokenizer:
  """Stand-in for data/tokenizers.py: UTF-8 bytes, EOS = 256."""
  name, vocab_size, eos_id = "bytes", 257, 256

  def __init__(self):
    self.calls = 0

  def encode(self, text):
    self.calls += 1
    return list(text.encode())


def _docs(n, lo, hi, alphabet, seed, empties=()):
  rng = random.Random(seed)
  out = []
  for i in range(n):
    text = "" if i in empties else "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))
    out.append({"text": text, "source": "t", "id": str(i)})
  return out


# Three sources with very different document lengths, told apart by their alphabets.
SOURCES = {"short": (400, 3, 30, string.ascii_lowercase), "mid": (80, 100, 400, string.digits),
           "long": (12, 1500, 4000, string.ascii_uppercase)}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  root = tmp_path_factory.mktemp("prepared")
  for i, (name, (n, lo, hi, alphabet)) in enumerate(SOURCES.items()):
    prepare_source(_docs(n, lo, hi, alphabet, seed=i), ByteTokenizer(), root, name, docs_per_shard=64, progress=False)
  prepare_source(_docs(6, 20, 60, "xyz", seed=9), ByteTokenizer(), root, "tiny", docs_per_shard=4, progress=False)
  # A labelled source: documents of 2500 tokens cut into 1024-token segments with hand-written labels.
  prepare_source(_docs(10, 2499, 2499, "!#$%&", seed=7), ByteTokenizer(), root, "lab", docs_per_shard=4,
                 progress=False)
  cycle = [["math_reasoning"], ["visual_concept"], ["code_reasoning", "visual_attribute"], ["none"],
           ["visual_relationship"], None]  # None: an unparseable classifier answer
  rows, c = [], 0
  for shard, n_docs in ((0, 4), (1, 4), (2, 2)):
    for record in range(n_docs):
      for seg, start in enumerate((0, 1024, 2048)):
        row = {"shard": f"shard-{shard:05d}.array_record", "record": record, "segment": seg, "start": start,
               "end": min(start + 1024, 2500), "labels": cycle[c % len(cycle)]}
        if row["labels"] is None:
          del row["labels"]
          row["unparseable"] = True
        rows.append(row)
        c += 1
  (root / "lab" / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  return root


def _read_source(root, name):
  from array_record.python import array_record_module
  manifest = json.loads((root / name / "manifest.json").read_text())
  docs = []
  for s in manifest["shards"]:
    reader = array_record_module.ArrayRecordReader(str(root / name / s["name"]))
    docs += [np.frombuffer(r, "<u4") for r in reader.read_all()]
  return manifest, docs


def test_prepare_is_deterministic_resumable_and_counts_empties(tmp_path):
  docs = _docs(50, 1, 80, string.ascii_letters + " é", seed=0, empties={3, 17, 40})
  docs[17]["text"] = "  \n "  # whitespace only is empty too
  one = prepare_source(docs, ByteTokenizer(), tmp_path / "w0", "s", docs_per_shard=8, workers=0, progress=False)
  two = prepare_source(docs, ByteTokenizer(), tmp_path / "w2", "s", docs_per_shard=8, workers=2, progress=False,
                       tokenizer_factory=ByteTokenizer, chunk_docs=3)
  three = prepare_source(docs, ByteTokenizer(), tmp_path / "w3", "s", docs_per_shard=8, workers=3, progress=False)
  assert one == two == three  # same bytes and checksums for any number of workers
  assert (one["documents"], one["skipped_empty"], one["input_documents"], len(one["shards"])) == (47, 3, 50, 7)
  manifest, read = _read_source(tmp_path / "w0", "s")
  expected = [list(d["text"].encode()) + [256] for d in docs if d["text"].strip()]
  assert [r.tolist() for r in read] == expected
  assert manifest["tokens"] == sum(map(len, expected)) and manifest["tokenizer"]["vocab_size"] == 257

  # Resume: delete one shard; only that one is tokenized and written again.
  src = tmp_path / "w0" / "s"
  mtimes = {p: p.stat().st_mtime_ns for p in src.glob("shard-*.array_record")}
  (src / "shard-00003.array_record").unlink()
  tok = ByteTokenizer()
  again = prepare_source(docs, tok, tmp_path / "w0", "s", docs_per_shard=8, workers=0, progress=False)
  assert again == one
  assert tok.calls == sum(1 for d in docs[24:32] if d["text"].strip())
  for p, t in mtimes.items():
    if p.name != "shard-00003.array_record":
      assert p.stat().st_mtime_ns == t
  # Changed input for a shard: rewritten. Another tokenizer in the same directory: refused.
  docs[0]["text"] = "changed"
  assert prepare_source(docs, ByteTokenizer(), tmp_path / "w0", "s", docs_per_shard=8, progress=False)["shards"][0] \
      != one["shards"][0]
  other = ByteTokenizer()
  other.name = "bytes-v2"
  with pytest.raises(ValueError, match="was prepared with"):
    prepare_source(docs, other, tmp_path / "w0", "s", docs_per_shard=8, progress=False)


def _check_rows(src, info):
  """Independent checks: packing fields, and each packed piece is the span's real tokens."""
  seg, pos, mask = info["segment_ids"], info["positions"], info["loss_mask"]
  tokens = np.concatenate([info["inputs"], info["targets"][:, -1:]], axis=1)
  np.testing.assert_array_equal(info["inputs"][:, 1:], info["targets"][:, :-1])
  starts = np.concatenate([np.ones((seg.shape[0], 1), bool), np.diff(seg, axis=1) > 0], axis=1)
  assert (seg[:, 0] == 1).all() and (np.diff(seg, axis=1) >= 0).all() and (np.diff(seg, axis=1) <= 1).all()
  assert (pos[starts] == 0).all() and (pos[:, 1:][~starts[:, 1:]] == pos[:, :-1][~starts[:, 1:]] + 1).all()
  # loss_mask is 0 exactly where the target (position j + 1) begins the next piece.
  expected = np.ones_like(mask)
  expected[:, :-1] = (seg[:, 1:] == seg[:, :-1])
  np.testing.assert_array_equal(mask, expected)
  docs = {}
  for r in range(seg.shape[0]):
    ids = np.concatenate([seg[r], [seg[r, -1]]])  # the extra target token belongs to the last piece
    for s in np.unique(ids):
      cols = np.flatnonzero(ids == s)
      stream, span = info["stream_ids"][r, cols[0]], info["span_ids"][r, cols[0]]
      assert (info["stream_ids"][r, cols] == stream).all() and (info["span_ids"][r, cols] == span).all()
      table = src.span_table(stream)
      name = src.streams[stream].source
      if name not in docs:
        docs[name] = _read_source(pathlib.Path(src.sources[name].dir).parent, name)[1]
      shard_offsets = np.cumsum([0] + [len(x) for x in src.sources[name].lengths])
      doc = docs[name][shard_offsets[table["shard"][span]] + table["record"][span]]
      span_tokens = doc[table["start"][span]:table["start"][span] + table["length"][span]].astype(np.int64)
      piece = tokens[r, cols]
      hits = [i for i in range(len(span_tokens) - len(piece) + 1) if (span_tokens[i:i + len(piece)] == piece).all()]
      assert hits, f"row {r} piece {s} is not a substring of its span"


def _shares(src, steps, **kw):
  counts = np.zeros(len(src.streams))
  for step in steps:
    info = src.batch_info(step, **kw)
    counts += np.bincount(info["stream_ids"].ravel(), minlength=len(src.streams))
  return counts / counts.sum()


@pytest.mark.parametrize("block_tokens", [0, 1000])
def test_token_shares_match_the_recipe(prepared, block_tokens):
  recipe = [{"source": "short", "weight": 0.5}, {"source": "mid", "weight": 0.3}, {"source": "long", "weight": 0.2}]
  src = MixtureSource(prepared, recipe, batch_size=8, seq_len=255, seed=3, block_tokens=block_tokens,
                      shuffle_window=1)
  assert src.vocab_size == 257
  shares = _shares(src, range(40))
  np.testing.assert_allclose(shares, [0.5, 0.3, 0.2], atol=0.01)
  if not block_tokens:  # one block = one global batch: every batch has the exact quotas
    info = src.batch_info(7)
    assert np.bincount(info["stream_ids"].ravel()).tolist() == src.quotas
  # The alphabets tell the sources apart independently of the provenance arrays.
  info = src.batch_info(5)
  tokens = np.concatenate([info["inputs"], info["targets"][:, -1:]], axis=1)
  for i, (_, _, _, alphabet) in enumerate(SOURCES.values()):
    sel = (info["stream_ids"] == i) & (tokens != 256)
    assert set(bytes(tokens[sel].astype(np.uint8)).decode()) <= set(alphabet)
  _check_rows(src, info)
  if not block_tokens:  # Documents longer than a row are split across rows: some row is one piece of "long".
    rows = [src.batch_info(s) for s in range(4)]
    assert any((r["segment_ids"][j] == 1).all() and (r["stream_ids"][j] == 2).all() for r in rows for j in range(8))


def test_row_shuffle_permutes_rows_within_windows_and_keeps_shares(prepared):
  recipe = [{"source": "short", "weight": 0.5}, {"source": "mid", "weight": 0.3}, {"source": "long", "weight": 0.2}]
  plain = MixtureSource(prepared, recipe, batch_size=8, seq_len=255, seed=3, shuffle_window=1)
  shuffled = MixtureSource(prepared, recipe, batch_size=8, seq_len=255, seed=3, shuffle_window=4)
  def rows(src, steps):
    return sorted(tuple(row) for s in steps for row in src.batch(s)["inputs"].tolist())
  assert rows(plain, range(4)) == rows(shuffled, range(4))          # the same rows, within a window
  assert rows(plain, range(4, 8)) == rows(shuffled, range(4, 8))
  assert not np.array_equal(plain.batch(0)["inputs"], shuffled.batch(0)["inputs"])
  np.testing.assert_allclose(_shares(shuffled, range(40)), [0.5, 0.3, 0.2], atol=0.01)
  with pytest.raises(ValueError, match="shuffle_window"):
    shuffled.check_state(plain.state(3))


def test_labelled_streams_filter_segments_and_keep_shares(prepared):
  recipe = [{"source": "lab", "require": ["reasoning"], "weight": 0.4},
            {"source": "lab", "require": ["visual"], "exclude": ["reasoning"], "weight": 0.35},
            {"source": "short", "weight": 0.25}]
  src = MixtureSource(prepared, recipe, batch_size=4, seq_len=511, seed=0, shuffle_window=1)
  lab = [json.loads(line) for line in (prepared / "lab" / "labels.jsonl").read_text().splitlines()]
  by_key = {(int(r["shard"][6:11]), r["record"], r["start"]): set(r["labels"]) for r in lab if "labels" in r}
  reasoning, visual = {"math_reasoning", "code_reasoning", "science_reasoning"}, {"visual_concept",
                                                                                  "visual_attribute",
                                                                                  "visual_relationship"}
  for i, ok in ((0, lambda ls: ls & reasoning), (1, lambda ls: ls & visual and not ls & reasoning)):
    t = src.span_table(i)
    keys = list(zip(t["shard"].tolist(), t["record"].tolist(), t["start"].tolist()))
    assert keys and all(ok(by_key[k]) for k in keys)
    assert len(keys) == sum(1 for ls in by_key.values() if ok(ls))
  assert (src.span_table(0)["length"] <= 1024).all()
  np.testing.assert_allclose(_shares(src, range(30)), [0.4, 0.35, 0.25], atol=0.01)
  _check_rows(src, src.batch_info(3))
  with pytest.raises(ValueError, match="unknown label"):
    MixtureSource(prepared, [{"source": "lab", "require": ["maths"], "weight": 1.0}], batch_size=4, seq_len=511)


def test_named_sweep_recipe_resolves_against_the_labelled_pool(prepared):
  src = make_text_source({"prepared_dir": str(prepared), "recipe": "sweep:visual:25", "shuffle_window": 1}, 4, 511, 0)
  assert [(str(s), w) for s, w in zip(src.streams, src.weights)] == [("lab[+visual]", 0.25), ("lab[-visual]", 0.75)]
  np.testing.assert_allclose(_shares(src, range(20)), [0.25, 0.75], atol=0.01)


MIX = [{"source": "short", "weight": 0.5}, {"source": "long", "weight": 0.3}, {"source": "tiny", "weight": 0.2}]


def test_resume_reproduces_the_uninterrupted_run(prepared):
  run = MixtureSource(prepared, MIX, batch_size=4, seq_len=127, seed=42)
  uninterrupted = [run.batch(s) for s in range(8)]
  state = json.loads(json.dumps(run.state(5)))  # what the checkpoint holds
  resumed = make_text_source(SimpleNamespace(prepared_dir=str(prepared), recipe=MIX), 4, 127, 42)
  resumed.check_state(state)
  prefetching = MixtureSource(prepared, MIX, batch_size=4, seq_len=127, seed=42, prefetch=2)
  for s in range(state["next_step"], 8):
    for other in (resumed.batch(s), prefetching.batch(s)):
      for k, v in uninterrupted[s].items():
        np.testing.assert_array_equal(other[k], v)
  assert set(uninterrupted[0]) == {"inputs", "targets", "segment_ids", "positions", "loss_mask"}
  assert uninterrupted[0]["inputs"].shape == (4, 127) and uninterrupted[0]["inputs"].dtype == np.int32
  assert not np.array_equal(uninterrupted[0]["inputs"], uninterrupted[1]["inputs"])
  other_seed = MixtureSource(prepared, MIX, batch_size=4, seq_len=127, seed=43)
  assert not np.array_equal(other_seed.batch(0)["inputs"], uninterrupted[0]["inputs"])
  ds = run.as_grain_dataset(start_step=5)
  np.testing.assert_array_equal(ds[1]["inputs"], uninterrupted[6]["inputs"])


def test_processes_read_disjoint_rows_and_cover_a_small_source(prepared):
  src = MixtureSource(prepared, MIX, batch_size=4, seq_len=127, seed=1, shuffle_window=1)
  tiny = src.span_table(2)
  seen = np.zeros(len(tiny["length"]), np.int64)
  steps = -(-src._totals[2] // src.quotas[2])  # enough steps for one epoch of "tiny"
  for step in range(steps):
    whole = src.batch_info(step)
    parts = [src.batch_info(step, process_index=p, process_count=2) for p in range(2)]
    for k in whole:
      np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), whole[k])
    for p in parts:
      seen += np.bincount(p["span_ids"][p["stream_ids"] == 2], minlength=len(seen))
  assert (seen >= tiny["length"]).all() and seen.sum() == steps * src.quotas[2]
  with pytest.raises(ValueError, match="not divisible by the 3 processes"):
    src.batch(0, 0, 3)


def test_resume_with_changed_mixture_is_refused(prepared):
  run = MixtureSource(prepared, MIX, batch_size=4, seq_len=127, seed=42)
  state = run.state(10)
  changed = [dict(m, weight=w) for m, w in zip(MIX, (0.4, 0.4, 0.2))]
  with pytest.raises(ValueError, match=r"mixture \[short=0.5, long=0.3, tiny=0.2\] -> \[short=0.4, long=0.4"):
    MixtureSource(prepared, changed, batch_size=4, seq_len=127, seed=42).check_state(state)
  with pytest.raises(ValueError, match="seed 42 -> 7.*seq_len 127 -> 63"):
    MixtureSource(prepared, MIX, batch_size=4, seq_len=63, seed=7).check_state(state)
  with pytest.raises(ValueError, match="data kind 'MarkovTokens'"):
    run.check_state({"kind": "MarkovTokens", "seed": 42, "next_step": 3})
  MixtureSource(prepared, changed, batch_size=4, seq_len=127, seed=42, allow_mixture_change=True).check_state(state)


def test_bad_input_names_the_file(prepared, tmp_path):
  import shutil
  root = tmp_path / "p"
  shutil.copytree(prepared / "tiny", root / "tiny")
  shutil.copytree(prepared / "lab", root / "lab")
  recipe = [{"source": "tiny", "weight": 1.0}]
  shard = root / "tiny" / "shard-00000.array_record"
  data = shard.read_bytes()
  shard.write_bytes(data[:len(data) - 100])
  with pytest.raises(ValueError, match=r"shard-00000\.array_record.*truncated or corrupt"):
    MixtureSource(root, recipe, batch_size=2, seq_len=31)
  corrupt = bytearray(data)
  corrupt[80:400] = b"\x07" * 320  # inside the records, the footer stays intact
  shard.write_bytes(bytes(corrupt))
  src = MixtureSource(root, recipe, batch_size=2, seq_len=31)
  with pytest.raises(ValueError, match=r"shard-00000\.array_record"):
    for step in range(20):
      src.batch(step)
  labels = root / "lab" / "labels.jsonl"
  labels.write_text(labels.read_text() + '{"shard": "shard-00000.array_record", "record": 0, "labels": []}\n')
  with pytest.raises(ValueError, match=r"labels\.jsonl:31: bad label row"):
    MixtureSource(root, [{"source": "lab", "require": ["math_reasoning"], "weight": 1.0}], batch_size=2, seq_len=31)
  with pytest.raises(FileNotFoundError, match="manifest.json not found"):
    MixtureSource(root, [{"source": "nope", "weight": 1.0}], batch_size=2, seq_len=31)


def test_worker_processes_give_the_same_batches(prepared):
  plain = MixtureSource(prepared, MIX, batch_size=4, seq_len=127, seed=42)
  workers = MixtureSource(prepared, MIX, batch_size=4, seq_len=127, seed=42, workers=2)
  for step in (0, 1, 2, 7, 8):   # 2 -> 7 is a jump: the worker iterator restarts at step 7
    got, want = workers.batch(step), plain.batch(step)
    for k in want:
      np.testing.assert_array_equal(got[k], want[k])
