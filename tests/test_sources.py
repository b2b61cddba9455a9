"""Raw text readers on files written here in the real formats, including bad input."""

import gzip
import json

import pytest

from visprior_jax.data import sources


def _jsonl_bytes(n, start=0):
  return b"".join(json.dumps({"text": f"doc {i} caf\u00e9", "uid": f"u{i}"}).encode() + b"\n"
                  for i in range(start, start + n))


def _texts(docs):
  return [d["text"] for d in docs]


def test_jsonl_plain_gz_zst_and_globs(tmp_path):
  import zstandard
  (tmp_path / "a.jsonl").write_bytes(_jsonl_bytes(3))
  (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(_jsonl_bytes(3, 3)))
  # Two zstd frames back to back: readers must continue across frames.
  z = zstandard.ZstdCompressor()
  (tmp_path / "c.jsonl.zst").write_bytes(z.compress(_jsonl_bytes(2, 6)) + z.compress(_jsonl_bytes(2, 8)))
  stats = sources.ReadStats()
  docs = list(sources.read_documents({"kind": "jsonl", "paths": [str(tmp_path / "*.jsonl*")], "source": "web"},
                                     stats))
  assert _texts(docs) == [f"doc {i} caf\u00e9" for i in range(10)]
  assert {d["source"] for d in docs} == {"web"}
  assert docs[0]["id"] == f"{tmp_path / 'a.jsonl'}:1" and docs[4]["id"] == f"{tmp_path / 'b.jsonl.gz'}:2"
  assert (stats.read, stats.files, stats.total_skipped) == (10, 3, 0)
  # A directory uses the kind's default pattern; id_field and limit apply.
  docs = list(sources.read_documents({"kind": "jsonl", "paths": [str(tmp_path)], "id_field": "uid", "limit": 4}))
  assert [d["id"] for d in docs] == ["u0", "u1", "u2", "u3"]
  # Multi-member gzip (concatenated .gz files) is read through.
  (tmp_path / "m.jsonl.gz").write_bytes(gzip.compress(_jsonl_bytes(1)) + gzip.compress(_jsonl_bytes(1, 1)))
  assert len(list(sources.read_documents({"kind": "jsonl", "paths": [str(tmp_path / "m.jsonl.gz")]}))) == 2


def test_jsonl_bad_lines_are_skipped_and_counted_with_file_and_line(tmp_path):
  path = tmp_path / "bad.jsonl"
  path.write_bytes(b'{"text": "good one"}\n'
                   b'{"text": "broken\n'                 # line 2: malformed JSON
                   b'{"text": "caf\xe9 latin-1"}\n'       # line 3: invalid UTF-8
                   b'{"text": "   "}\n'                   # line 4: empty text
                   b'{"body": "no text field"}\n'        # line 5: missing field
                   b'\n'                                 # line 6: blank, ignored
                   b'[1, 2]\n'                           # line 7: not an object
                   b'{"text": 7}\n'                      # line 8: not a string
                   b'{"text": "good two"}')              # line 9: no trailing newline
  stats = sources.ReadStats()
  docs = list(sources.read_documents({"kind": "jsonl", "paths": [str(path)]}, stats))
  assert _texts(docs) == ["good one", "good two"] and docs[1]["id"] == f"{path}:9"
  assert stats.read == 2 and stats.total_skipped == 6
  assert stats.skipped == {"malformed JSON": 1, "invalid UTF-8": 1, "empty text": 1, "missing text field": 1,
                           "not a JSON object": 1, "text is not a string": 1}
  assert stats.examples[0].startswith(f"{path}:2: malformed JSON")
  assert stats.examples[1].startswith(f"{path}:3: invalid UTF-8")
  assert "6 skipped" in stats.summary()
  with pytest.raises(ValueError, match=rf"^{path}:2: malformed JSON"):
    list(sources.read_documents({"kind": "jsonl", "paths": [str(path)], "on_error": "raise"}))
  assert sources.read_stats({"kind": "jsonl", "paths": [str(path)]}).to_dict()["read"] == 2


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_truncated_compressed_jsonl_keeps_earlier_lines_and_counts_the_cut(tmp_path, suffix):
  import zstandard
  data = _jsonl_bytes(5000)
  packed = gzip.compress(data) if suffix == ".gz" else zstandard.ZstdCompressor().compress(data)
  (tmp_path / f"cut.jsonl{suffix}").write_bytes(packed[: len(packed) * 2 // 3])
  (tmp_path / f"whole.jsonl{suffix}").write_bytes(packed)
  stats = sources.ReadStats()
  docs = list(sources.read_documents({"kind": "jsonl", "paths": [str(tmp_path / f"*{suffix}")]}, stats))
  cut = len(docs) - 5000
  assert 0 <= cut < 5000 and stats.skipped == {"truncated or corrupt compressed stream": 1}
  assert stats.examples[0].startswith(f"{tmp_path / f'cut.jsonl{suffix}'}:{cut + 1}: truncated")
  assert _texts(docs[:cut]) == [f"doc {i} caf\u00e9" for i in range(cut)]  # nothing after the cut is invented
  with pytest.raises(ValueError, match=rf"cut.jsonl\{suffix}:{cut + 1}: truncated or corrupt compressed stream"):
    list(sources.read_documents({"kind": "jsonl", "paths": [str(tmp_path / f"cut.jsonl{suffix}")],
                                 "on_error": "raise"}))


def test_parquet_row_groups_nulls_and_truncation(tmp_path):
  import pyarrow as pa
  import pyarrow.parquet as pq
  texts = [f"row {i}" for i in range(25)]
  texts[7] = None
  texts[11] = ""
  table = pa.table({"content": texts, "key": list(range(25))})
  pq.write_table(table, tmp_path / "a.parquet", row_group_size=10)
  assert pq.ParquetFile(tmp_path / "a.parquet").num_row_groups == 3
  stats = sources.ReadStats()
  spec = {"kind": "parquet", "paths": [str(tmp_path / "a.parquet")], "text_field": "content", "id_field": "key"}
  docs = list(sources.read_documents(spec, stats))
  assert len(docs) == 23 and docs[0] == {"text": "row 0", "source": "parquet", "id": "0"}
  assert docs[-1]["id"] == "24"
  assert stats.skipped == {"text is not a string": 1, "empty text": 1}
  assert stats.examples[0].startswith(f"{tmp_path / 'a.parquet'}:7:")
  # Default ids are file:row; a missing column is a per-file error.
  docs = list(sources.read_documents({**spec, "id_field": None}))
  assert docs[1]["id"] == f"{tmp_path / 'a.parquet'}:1"
  stats = sources.read_stats({**spec, "text_field": "body"})
  assert stats.skipped == {"missing column": 1}
  # A truncated Parquet file (footer gone) is skipped with its name, or raises.
  data = (tmp_path / "a.parquet").read_bytes()
  (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
  stats = sources.read_stats({**spec, "paths": [str(tmp_path / "cut.parquet")]})
  assert stats.read == 0 and stats.skipped == {"truncated or corrupt Parquet file": 1}
  assert stats.examples[0].startswith(f"{tmp_path / 'cut.parquet'}:0: truncated")
  with pytest.raises(ValueError, match=r"cut.parquet:0: truncated or corrupt Parquet file"):
    list(sources.read_documents({**spec, "paths": [str(tmp_path / "cut.parquet")], "on_error": "raise"}))


def test_text_folder_one_file_per_document(tmp_path):
  (tmp_path / "sub").mkdir()
  (tmp_path / "a.txt").write_text("first document\nwith two lines\n")
  (tmp_path / "sub" / "b.txt").write_text("second document")
  (tmp_path / "sub" / "c.md").write_text("not matched by the default pattern")
  (tmp_path / "sub" / "empty.txt").write_text("\n\n")
  (tmp_path / "sub" / "latin1.txt").write_bytes(b"caf\xe9")
  stats = sources.ReadStats()
  docs = list(sources.read_documents({"kind": "text", "paths": [str(tmp_path)], "source": "books"}, stats))
  assert docs == [{"text": "first document\nwith two lines\n", "source": "books", "id": str(tmp_path / "a.txt")},
                  {"text": "second document", "source": "books", "id": str(tmp_path / "sub" / "b.txt")}]
  assert stats.skipped == {"empty text": 1, "invalid UTF-8": 1} and stats.files == 4
  docs = list(sources.read_documents({"kind": "text", "paths": [str(tmp_path)], "pattern": "**/*.md"}))
  assert _texts(docs) == ["not matched by the default pattern"]


def test_array_record_json_records(tmp_path):
  from array_record.python import array_record_module
  path = tmp_path / "docs.array_record"
  writer = array_record_module.ArrayRecordWriter(str(path), "group_size:1")
  for i in range(1500):
    writer.write(json.dumps({"text": f"record {i}"}).encode())
  writer.write(b"{not json")
  writer.write(b'{"text": "\xff"}')
  writer.close()
  stats = sources.ReadStats()
  docs = list(sources.read_documents({"kind": "array_record", "paths": [str(path)]}, stats))
  assert len(docs) == 1500 and docs[1234] == {"text": "record 1234", "source": "array_record", "id": f"{path}:1234"}
  assert stats.skipped == {"malformed JSON": 1, "invalid UTF-8": 1}
  assert stats.examples[0].startswith(f"{path}:1500: malformed JSON")
  data = path.read_bytes()
  (tmp_path / "cut.array_record").write_bytes(data[: len(data) // 2])
  stats = sources.read_stats({"kind": "array_record", "paths": [str(tmp_path / "cut.array_record")]})
  assert stats.read == 0 and stats.skipped == {"truncated or corrupt ArrayRecord file": 1}


def test_builtin_offline_sources():
  stats = sources.ReadStats()
  topics = list(sources.read_documents({"kind": "pydoc_topics"}, stats))
  assert len(topics) > 50 and stats.total_skipped == 0
  assert {d["source"] for d in topics} == {"pydoc_topics"} and len({d["id"] for d in topics}) == len(topics)
  assert any("assert" in d["text"] for d in topics)
  code = list(sources.read_documents({"kind": "python_stdlib", "limit": 20}))
  assert len(code) == 20 and all(d["id"].startswith("python_stdlib:") and d["id"].endswith(".py") for d in code)
  assert any("def " in d["text"] or "import " in d["text"] for d in code)


def test_tfds_reader_through_data_source(tmp_path):
  """A TFDS dataset prepared as ArrayRecord (no TensorFlow) read back through tfds.data_source."""
  tfds = pytest.importorskip("tensorflow_datasets", reason="tensorflow_datasets is an optional extra")
  with pytest.raises(ValueError, match="needs 'name'"):
    list(sources.read_documents({"kind": "tfds"}))

  class TinyText(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({"text": tfds.features.Text()}))

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples()}

    def _generate_examples(self):
      for i in range(6):
        yield i, {"text": "" if i == 3 else f"document number {i} \u00e9"}

  TinyText(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
  stats = sources.ReadStats()
  docs = list(sources.read_documents({"kind": "tfds", "name": "tiny_text:1.0.0", "data_dir": str(tmp_path),
                                      "source": "tiny"}, stats))
  assert sorted(d["text"] for d in docs) == [f"document number {i} \u00e9" for i in (0, 1, 2, 4, 5)]
  assert {d["source"] for d in docs} == {"tiny"} and stats.skipped["empty text"] == 1


def test_spec_errors_are_one_line():
  with pytest.raises(ValueError, match="source kind 'csv' is not one of"):
    sources.read_documents({"kind": "csv", "paths": ["x"]})  # checked before iteration starts
  with pytest.raises(ValueError, match=r"unknown source spec key\(s\) \['text_feild'\]"):
    list(sources.read_documents({"kind": "jsonl", "paths": ["x"], "text_feild": "body"}))
  with pytest.raises(ValueError, match="on_error='ignore'"):
    list(sources.read_documents({"kind": "jsonl", "paths": ["x"], "on_error": "ignore"}))
  with pytest.raises(ValueError, match="needs 'paths'"):
    list(sources.read_documents({"kind": "parquet"}))
  with pytest.raises(ValueError, match="no files match '/nonexistent/\\*.jsonl'"):
    list(sources.read_documents({"kind": "jsonl", "paths": ["/nonexistent/*.jsonl"]}))
  if not __import__("importlib").util.find_spec("tensorflow_datasets"):
    with pytest.raises(ValueError, match="kind=tfds needs tensorflow_datasets"):
      list(sources.read_documents({"kind": "tfds", "name": "x"}))
