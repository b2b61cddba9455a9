"""One tokenizer interface over SentencePiece, tiktoken BPE ranks, HF tokenizer.json and raw bytes.

  tok = load_tokenizer("gs://b/tokenizer.model")   # or "path/tokenizer.json", "gpt2.tiktoken", "bytes"
  tok.encode("Hello", add_bos=True) -> [bos, ...];  tok.decode(ids) -> str;  tok.vocab_size

Every tokenizer has ``name``, ``vocab_size`` (all ids, special tokens included, are below it),
``bos_id``, ``eos_id`` (None when the format has none), ``pad_id`` (the format's pad token, else eos,
else 0: padding is masked by the model, so any valid id works). ``encode`` treats text that looks
like a special token (``<|endoftext|>``) as plain text, so raw corpora cannot inject control ids.
``decode`` drops special/control tokens.

``load_tokenizer`` picks the format: ``bytes`` -> bytes; ``*.json`` -> HF tokenizers; a file whose
first line is ``<base64> <rank>`` -> tiktoken (Llama-3's ``tokenizer.model`` gets Llama-3's split
regex and its 256 specials when it has 128,000 ranks; other rank files, e.g. GPT-2's, get the
GPT-2 regex and ``<|endoftext|>`` = n_ranks); anything else is tried as a SentencePiece model.
``train_tokenizer`` trains a SentencePiece BPE or an HF byte-level BPE whose round trips are exact.
"""

from __future__ import annotations

import abc
import base64
import binascii
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence

from etils import epath

GPT2_PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PAT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
              r"\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_N_RANKS = 128_000
_LLAMA3_NAMED = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                 "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|step_id|>", "<|start_header_id|>",
                 "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>", "<|image|>"]
_TIKTOKEN_LINE = re.compile(rb"^[A-Za-z0-9+/]+=* \d+\r?$")


def llama3_special_tokens(n_ranks: int = LLAMA3_N_RANKS) -> dict[str, int]:
  """Llama-3's 256 special tokens (``<|begin_of_text|>`` = n_ranks, ...), as in llama_models."""
  names = _LLAMA3_NAMED + [f"<|reserved_special_token_{2 + i}|>" for i in range(256 - len(_LLAMA3_NAMED))]
  return {t: n_ranks + i for i, t in enumerate(names)}


class Tokenizer(abc.ABC):
  """Text <-> ids. Subclasses set name, vocab_size, bos_id, eos_id, pad_id and the three methods."""
  name: str
  vocab_size: int
  bos_id: int | None
  eos_id: int | None
  pad_id: int

  @abc.abstractmethod
  def _encode(self, text: str) -> list[int]:
    """Ids of ``text`` without bos/eos."""

  @abc.abstractmethod
  def decode(self, ids: Sequence[int]) -> str:
    """Text of ``ids``; special/control tokens dropped."""

  def _encode_many(self, texts: list[str]) -> list[list[int]]:
    return [self._encode(t) for t in texts]

  def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
    return self._wrap(self._encode(text), add_bos, add_eos)

  def encode_batch(self, texts: Iterable[str], add_bos: bool = False, add_eos: bool = False) -> list[list[int]]:
    return [self._wrap(ids, add_bos, add_eos) for ids in self._encode_many(list(texts))]

  def _wrap(self, ids: list[int], add_bos: bool, add_eos: bool) -> list[int]:
    if add_bos:
      if self.bos_id is None:
        raise ValueError(f"tokenizer {self.name} has no bos token; use add_bos=False")
      ids = [self.bos_id] + ids
    if add_eos:
      if self.eos_id is None:
        raise ValueError(f"tokenizer {self.name} has no eos token; use add_eos=False")
      ids = ids + [self.eos_id]
    return ids

  def __repr__(self) -> str:
    return (f"{type(self).__name__}(name={self.name!r}, vocab_size={self.vocab_size}, bos_id={self.bos_id}, "
            f"eos_id={self.eos_id}, pad_id={self.pad_id})")


class ByteTokenizer(Tokenizer):
  """UTF-8 bytes as ids 0-255, then bos=256, eos=257, pad=258 (vocab 259). For tiny demos."""

  def __init__(self):
    self.name, self.vocab_size, self.bos_id, self.eos_id, self.pad_id = "bytes", 259, 256, 257, 258

  def _encode(self, text: str) -> list[int]:
    return list(text.encode("utf-8"))

  def decode(self, ids: Sequence[int]) -> str:
    return bytes(int(i) for i in ids if 0 <= int(i) < 256).decode("utf-8", errors="replace")


class SentencePieceTokenizer(Tokenizer):
  """A SentencePiece ``.model`` (protobuf) file."""

  def __init__(self, path: str | epath.Path | None = None, *, model_proto: bytes | None = None):
    import sentencepiece as spm
    proto = model_proto if model_proto is not None else epath.Path(path).read_bytes()
    self.sp = spm.SentencePieceProcessor()
    try:
      self.sp.LoadFromSerializedProto(proto)
    except (RuntimeError, OSError) as e:
      raise ValueError(f"{path}: not a SentencePiece model ({str(e).splitlines()[0]})") from None
    self.name = str(path) if path is not None else "sentencepiece"
    self.vocab_size = self.sp.get_piece_size()
    self.bos_id = _opt(self.sp.bos_id())
    self.eos_id = _opt(self.sp.eos_id())
    self.pad_id = _first_valid(_opt(self.sp.pad_id()), self.eos_id)

  def _encode(self, text: str) -> list[int]:
    return self.sp.encode(text)

  def _encode_many(self, texts: list[str]) -> list[list[int]]:
    return self.sp.encode(texts)

  def decode(self, ids: Sequence[int]) -> str:
    return self.sp.decode([int(i) for i in ids])


class TiktokenTokenizer(Tokenizer):
  """A tiktoken BPE rank file (``<base64 token> <rank>`` per line), e.g. GPT-2's or Llama-3's."""

  def __init__(self, path: str | epath.Path, *, pat_str: str | None = None,
               special_tokens: Mapping[str, int] | None = None, bos: str | None = None, eos: str | None = None,
               pad: str | None = None):
    import tiktoken
    ranks = load_tiktoken_ranks(path)
    n = len(ranks)
    llama3 = n == LLAMA3_N_RANKS
    if special_tokens is None:
      special_tokens = llama3_special_tokens(n) if llama3 else {"<|endoftext|>": n}
    special_tokens = dict(special_tokens)
    if pat_str is None:
      pat_str = LLAMA3_PAT if llama3 else GPT2_PAT
    default_bos, default_eos, default_pad = (
        ("<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>") if llama3 else
        ("<|endoftext|>", "<|endoftext|>", None))
    self.enc = tiktoken.Encoding(name=epath.Path(path).name, pat_str=pat_str, mergeable_ranks=ranks,
                                 special_tokens=special_tokens)
    self.name = str(path)
    self.vocab_size = max([n - 1, *special_tokens.values()]) + 1
    self.bos_id = special_tokens.get(bos or default_bos)
    self.eos_id = special_tokens.get(eos or default_eos)
    self.pad_id = _first_valid(special_tokens.get(pad or default_pad or ""), self.eos_id)
    self._special_ids = set(special_tokens.values())

  def _encode(self, text: str) -> list[int]:
    return self.enc.encode_ordinary(text)

  def _encode_many(self, texts: list[str]) -> list[list[int]]:
    return self.enc.encode_ordinary_batch(texts)

  def decode(self, ids: Sequence[int]) -> str:
    return self.enc.decode([int(i) for i in ids if int(i) not in self._special_ids])


class HFTokenizer(Tokenizer):
  """An HF ``tokenizer.json``; bos/eos/pad come from a sibling ``tokenizer_config.json`` if present,
  else from the usual token names (``<s>``, ``</s>``, ``<pad>``, ``<|begin_of_text|>``, ...)."""

  BOS = ("<|begin_of_text|>", "<s>", "<bos>", "<|endoftext|>")
  EOS = ("<|end_of_text|>", "</s>", "<eos>", "<|endoftext|>")
  PAD = ("<pad>", "<|pad|>", "[PAD]", "<|finetune_right_pad_id|>")

  def __init__(self, path: str | epath.Path, *, bos: str | None = None, eos: str | None = None,
               pad: str | None = None):
    import tokenizers
    path = epath.Path(path)
    try:
      self.tok = tokenizers.Tokenizer.from_str(path.read_text())
    except Exception as e:  # tokenizers raises a bare Exception for malformed files
      raise ValueError(f"{path}: not an HF tokenizer.json ({str(e).splitlines()[0][:200]})") from None
    config = path.parent / "tokenizer_config.json"
    names = json.loads(config.read_text()) if config.exists() else {}
    vocab = self.tok.get_vocab(with_added_tokens=True)
    self.name = str(path)
    self.vocab_size = max(vocab.values()) + 1
    self.bos_id = self._find(vocab, bos or _token_name(names.get("bos_token")), self.BOS)
    self.eos_id = self._find(vocab, eos or _token_name(names.get("eos_token")), self.EOS)
    self.pad_id = _first_valid(self._find(vocab, pad or _token_name(names.get("pad_token")), self.PAD), self.eos_id)

  @staticmethod
  def _find(vocab: Mapping[str, int], named: str | None, candidates: Sequence[str]) -> int | None:
    if named is not None:
      if named not in vocab:
        raise ValueError(f"special token {named!r} is not in the tokenizer's vocabulary")
      return vocab[named]
    return next((vocab[c] for c in candidates if c in vocab), None)

  def _encode(self, text: str) -> list[int]:
    return self.tok.encode(text, add_special_tokens=False).ids

  def _encode_many(self, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]

  def decode(self, ids: Sequence[int]) -> str:
    return self.tok.decode([int(i) for i in ids], skip_special_tokens=True)


def _opt(i: int) -> int | None:
  return None if i is None or i < 0 else i


def _first_valid(*ids: int | None) -> int:
  return next((i for i in ids if i is not None), 0)


def _token_name(value) -> str | None:
  return value.get("content") if isinstance(value, dict) else value


def load_tiktoken_ranks(path: str | epath.Path) -> dict[bytes, int]:
  """``{token bytes: rank}`` from a tiktoken rank file, with a file:line error for a bad line."""
  ranks = {}
  for lineno, line in enumerate(epath.Path(path).read_bytes().splitlines(), 1):
    if not line.strip():
      continue
    try:
      token, rank = line.split()
      ranks[base64.b64decode(token, validate=True)] = int(rank)
    except (ValueError, binascii.Error):
      raise ValueError(f"{path}:{lineno}: not a tiktoken rank line '<base64> <rank>': {line[:60]!r}") from None
  return ranks


def _looks_like_tiktoken(path: epath.Path) -> bool:
  with path.open("rb") as f:
    head = f.read(512)
  return bool(_TIKTOKEN_LINE.match(head.split(b"\n", 1)[0]))


def load_tokenizer(spec: str | epath.Path, **kwargs) -> Tokenizer:
  """A tokenizer from ``"bytes"`` or a file path (see module docstring); kwargs go to its class."""
  if str(spec) == "bytes":
    return ByteTokenizer()
  path = epath.Path(spec)
  if not path.exists():
    raise ValueError(f"tokenizer file {spec} does not exist (or use 'bytes')")
  if path.name.endswith(".json"):
    return HFTokenizer(path, **kwargs)
  if _looks_like_tiktoken(path):
    return TiktokenTokenizer(path, **kwargs)
  try:
    return SentencePieceTokenizer(path, **kwargs)
  except ValueError:
    raise ValueError(f"{spec}: unrecognized tokenizer file (expected an HF tokenizer.json, a tiktoken rank "
                     "file or a SentencePiece .model)") from None


# ---------------------------------------------------------------------------------------------
# Training


def _sentencepiece_lines(texts: Iterable[str], max_len: int) -> Iterable[str]:
  """Documents split into lines (newline kept) and cut to ``max_len`` chars for the trainer."""
  for text in texts:
    for line in text.splitlines(keepends=True):
      for i in range(0, len(line), max_len):
        yield line[i:i + max_len]


def train_tokenizer(texts: Iterable[str], vocab_size: int, kind: str, out_path: str | epath.Path) -> Tokenizer:
  """Train a tokenizer on ``texts`` and write it to ``out_path``; returns it loaded from there.

  ``sentencepiece``: BPE with byte fallback, identity normalization, whitespace kept as is
  (unk 0, bos 1, eos 2, pad 3). ``bpe``: HF byte-level BPE (<pad> 0, <s> 1, </s> 2), a tokenizer.json.
  Both decode(encode(text)) == text exactly. A small corpus may give fewer than ``vocab_size`` ids.
  """
  out = epath.Path(out_path)
  if vocab_size < 260 + (kind == "sentencepiece") * 4:
    raise ValueError(f"vocab_size={vocab_size} is too small; byte-level tokenizers need at least 264")
  if kind == "sentencepiece":
    import sentencepiece as spm
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_sentencepiece_lines(texts, 4096)), model_writer=model, vocab_size=vocab_size,
        model_type="bpe", byte_fallback=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
        add_dummy_prefix=False, allow_whitespace_only_pieces=True, split_digits=True, character_coverage=0.9995,
        hard_vocab_limit=False, unk_id=0, bos_id=1, eos_id=2, pad_id=3, max_sentence_length=1 << 14,
        input_sentence_size=2_000_000, shuffle_input_sentence=True, minloglevel=2)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(model.getvalue())
    return SentencePieceTokenizer(out)
  if kind == "bpe":
    import tokenizers
    from tokenizers import decoders, models, pre_tokenizers, trainers
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(tok.to_str())
    return HFTokenizer(out)
  raise ValueError(f"tokenizer kind {kind!r} is not 'sentencepiece' or 'bpe'")


def train_tokenizer_command(corpus_spec: Mapping, vocab_size: int, kind: str, out: str | epath.Path) -> dict:
  """``visprior data train-tokenizer``: train on a sources spec; returns a summary dict for printing."""
  from tqdm import tqdm

  from visprior_jax.data import sources
  stats = sources.ReadStats()
  docs = sources.read_documents(corpus_spec, stats)  # checks the spec before any training starts
  texts = (d["text"] for d in tqdm(docs, desc="train-tokenizer", unit=" docs", mininterval=2))
  try:
    tok = train_tokenizer(texts, vocab_size, kind, out)
  except RuntimeError:  # the trainers' own message for an empty corpus is obscure
    if stats.read == 0:
      raise ValueError(f"no documents to train on: {stats.summary()}") from None
    raise
  if stats.read == 0:
    raise ValueError(f"no documents to train on: {stats.summary()}")
  return {"out": str(out), "kind": kind, "vocab_size": tok.vocab_size, "requested_vocab_size": vocab_size,
          "bos_id": tok.bos_id, "eos_id": tok.eos_id, "pad_id": tok.pad_id, **stats.to_dict()}
