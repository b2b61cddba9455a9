"""Tokenizers on real published files (GPT-2, Mistral SentencePiece, Llama-3) and trained ones."""

import json
import os
import sys

import pytest

from visprior_jax.data import tokenizers

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
import fetch_tokenizer_files  # noqa: E402

FOX = "The quick brown fox jumps over the lazy dog."
HARD = "  Indented code:\n\tif x == 1:\n\t\treturn 'caf\u00e9'  # \u65e5\u672c\u8a9e \U0001f600\n\n<|endoftext|> end  "


def _real_file(name):
  try:
    return fetch_tokenizer_files.fetch(name)
  except fetch_tokenizer_files.RegistryUnreachable as e:
    if os.environ.get("CI"):  # CI has registry access: these real-format checks must run there
      raise
    pytest.skip(f"package registry unreachable: {e}")


def test_gpt2_ranks_from_whisper_sdist_give_standard_gpt2_ids():
  tok = tokenizers.load_tokenizer(_real_file("gpt2"))
  assert isinstance(tok, tokenizers.TiktokenTokenizer)
  assert tok.encode(FOX) == [464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13]
  assert (tok.vocab_size, tok.bos_id, tok.eos_id, tok.pad_id) == (50257, 50256, 50256, 50256)
  assert tok.encode(FOX, add_eos=True)[-1] == 50256
  # Special-token text in a corpus is plain text, never the control id.
  assert 50256 not in tok.encode("<|endoftext|>")
  assert tok.decode(tok.encode(HARD)) == HARD
  assert tok.encode_batch([FOX, HARD], add_bos=True) == [tok.encode(FOX, add_bos=True), tok.encode(HARD, add_bos=True)]


def test_mistral_sentencepiece_model_loads_and_round_trips():
  tok = tokenizers.load_tokenizer(_real_file("mistral_sp"))
  assert isinstance(tok, tokenizers.SentencePieceTokenizer)
  assert (tok.vocab_size, tok.bos_id, tok.eos_id) == (32000, 1, 2)
  ids = tok.encode(FOX, add_bos=True, add_eos=True)
  assert ids[0] == 1 and ids[-1] == 2 and all(0 <= i < tok.vocab_size for i in ids)
  assert tok.decode(ids) == FOX
  text = "caf\u00e9 \u65e5\u672c\u8a9e, 12345 tokens"
  assert tok.decode(tok.encode(text)) == text
  assert tok.encode_batch([FOX, text]) == [tok.encode(FOX), tok.encode(text)]


def test_llama3_tokenizer_model_gives_llama3_ids():
  tok = tokenizers.load_tokenizer(_real_file("llama3"))
  assert tok.encode(FOX) == [791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13]
  assert tok.encode(FOX, add_bos=True)[0] == 128000
  assert (tok.vocab_size, tok.bos_id, tok.eos_id, tok.pad_id) == (128256, 128000, 128001, 128004)
  assert tok.decode(tok.encode(HARD, add_bos=True, add_eos=True)) == HARD


def test_tiktoken_caller_overrides_and_bad_rank_file(tmp_path):
  path = _real_file("gpt2")
  tok = tokenizers.load_tokenizer(path, special_tokens={"<|endoftext|>": 50256, "<|pad|>": 50257}, pad="<|pad|>",
                                  pat_str=tokenizers.GPT2_PAT)
  assert (tok.vocab_size, tok.pad_id) == (50258, 50257)
  bad = tmp_path / "bad.tiktoken"
  bad.write_bytes(b"IQ== 0\nIg== 1\nnot base64!! x\n")
  with pytest.raises(ValueError, match=r"bad.tiktoken:3: not a tiktoken rank line"):
    tokenizers.load_tokenizer(str(bad))


def test_byte_tokenizer():
  tok = tokenizers.load_tokenizer("bytes")
  assert (tok.vocab_size, tok.bos_id, tok.eos_id, tok.pad_id) == (259, 256, 257, 258)
  ids = tok.encode("h\u00e9", add_bos=True, add_eos=True)
  assert ids == [256, 104, 195, 169, 257] and tok.decode(ids) == "h\u00e9"
  assert tok.decode(tok.encode(HARD)) == HARD


def test_unrecognized_and_missing_files_are_one_line_errors(tmp_path):
  junk = tmp_path / "tokenizer.model"
  junk.write_bytes(b"\x00\x01 definitely not a tokenizer")
  with pytest.raises(ValueError, match=r"unrecognized tokenizer file \(expected an HF tokenizer.json"):
    tokenizers.load_tokenizer(str(junk))
  with pytest.raises(ValueError, match="does not exist"):
    tokenizers.load_tokenizer(str(tmp_path / "nope.model"))
  notjson = tmp_path / "tokenizer.json"
  notjson.write_text(json.dumps({"hello": 1}))
  with pytest.raises(ValueError, match="not an HF tokenizer.json"):
    tokenizers.load_tokenizer(str(notjson))


def _corpus():
  from pydoc_data.topics import topics
  return [topics[k] for k in sorted(topics)[:40]]


@pytest.mark.parametrize("kind,name", [("sentencepiece", "sp.model"), ("bpe", "tokenizer.json")])
def test_trained_tokenizers_round_trip_exactly(tmp_path, kind, name):
  out = tmp_path / name
  tok = tokenizers.train_tokenizer(_corpus(), 600, kind, str(out))
  again = tokenizers.load_tokenizer(str(out))
  assert type(again) is type(tok) and again.vocab_size == tok.vocab_size <= 600
  assert tok.bos_id is not None and tok.eos_id is not None and tok.pad_id is not None
  for text in [FOX, HARD, _corpus()[0]]:
    ids = again.encode(text, add_bos=True, add_eos=True)
    assert all(0 <= i < again.vocab_size for i in ids)
    assert again.decode(ids) == text
  # Merges were learned: common prose compresses below one token per byte.
  assert len(again.encode(_corpus()[1])) < 0.6 * len(_corpus()[1].encode())


def test_train_tokenizer_command_reads_a_sources_spec(tmp_path):
  docs = tmp_path / "docs.jsonl"
  docs.write_text("".join(json.dumps({"text": t}) + "\n" for t in _corpus()) + "{broken\n")
  summary = tokenizers.train_tokenizer_command({"kind": "jsonl", "paths": [str(docs)]}, 400, "bpe",
                                               str(tmp_path / "out" / "tokenizer.json"))
  assert summary["read"] == 40 and summary["skipped"] == {"malformed JSON": 1}
  assert summary["vocab_size"] == 400 and summary["bos_id"] == 1
  tok = tokenizers.load_tokenizer(summary["out"])
  assert tok.decode(tok.encode(HARD)) == HARD
  with pytest.raises(ValueError, match="is not 'sentencepiece' or 'bpe'"):
    tokenizers.train_tokenizer(["x"], 1000, "wordpiece", str(tmp_path / "w.json"))
