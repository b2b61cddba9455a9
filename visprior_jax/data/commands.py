"""What the ``visprior data ...`` commands run: sources -> tokenizer -> shards -> labels -> report.

A data config (``configs/data/<name>.py``) names the output directory, the tokenizer and the sources
(each a :func:`visprior_jax.data.sources.read_documents` spec keyed by source name).
"""

from __future__ import annotations

import functools
import os
from typing import Any, Mapping

from visprior_jax.data import sources as sources_lib
from visprior_jax.data import tokenizers
from visprior_jax.data.prepare import prepare_source


def _specs(cfg) -> dict[str, dict]:
  specs = {}
  for name, spec in cfg.sources.items():
    spec = dict(spec.to_dict() if hasattr(spec, "to_dict") else spec)
    spec.setdefault("source", name)
    specs[name] = spec
  if not specs:
    raise ValueError("the data config lists no sources")
  return specs


def ensure_tokenizer(cfg, retrain: bool = False) -> tokenizers.Tokenizer:
  """Loads ``cfg.tokenizer``, training it on all sources first if it is missing (or ``retrain``)."""
  spec = cfg.tokenizer
  if spec != "bytes" and cfg.get("train_vocab_size", 0) and (retrain or not os.path.exists(spec)):
    os.makedirs(os.path.dirname(os.path.abspath(spec)), exist_ok=True)
    texts = (d["text"] for s in _specs(cfg).values() for d in sources_lib.read_documents(s))
    tokenizers.train_tokenizer(texts, cfg.train_vocab_size, cfg.get("train_kind", "bpe"), spec)
    print(f"trained a {cfg.get('train_kind', 'bpe')} tokenizer with {cfg.train_vocab_size} ids: {spec}")
  return tokenizers.load_tokenizer(spec)


def prepare_command(cfg) -> dict[str, Any]:
  """Tokenizes every source of the data config into ArrayRecord shards; returns the manifests."""
  tok = ensure_tokenizer(cfg)
  manifests = {}
  for name, spec in _specs(cfg).items():
    stats = sources_lib.ReadStats()
    docs = sources_lib.read_documents(spec, stats)
    manifests[name] = prepare_source(
        docs, tok, cfg.out_dir, name, docs_per_shard=cfg.docs_per_shard, workers=cfg.get("workers", 0),
        tokenizer_factory=functools.partial(tokenizers.load_tokenizer, cfg.tokenizer))
    print(f"{name}: {manifests[name]['documents']} documents, {manifests[name]['tokens']:,} tokens, "
          f"{len(manifests[name]['shards'])} shards; read: {stats.summary()}")
  return manifests


def train_tokenizer_command(cfg) -> Mapping:
  """Trains ``cfg.tokenizer`` on all sources of the data config (overwriting it)."""
  if not cfg.get("train_vocab_size", 0):
    raise ValueError("set train_vocab_size in the data config to train a tokenizer")
  tok = ensure_tokenizer(cfg, retrain=True)
  return {"out": cfg.tokenizer, "vocab_size": tok.vocab_size}


def _manifest_tokenizer(prepared_dir, sources) -> str:
  """The tokenizer spec recorded in the first source's manifest (its name is the path it loaded)."""
  import json
  names = sources or sorted(d for d in os.listdir(prepared_dir)
                            if os.path.exists(os.path.join(prepared_dir, d, "manifest.json")))
  if not names:
    raise FileNotFoundError(f"{prepared_dir} holds no prepared source (no */manifest.json)")
  with open(os.path.join(prepared_dir, names[0], "manifest.json")) as f:
    return json.load(f)["tokenizer"]["name"]


def label_command(prepared_dir, sources, backend_cfg, tokenizer_spec=None, limit=None):
  """Labels the segments of prepared sources with the configured backend (resumable)."""
  from visprior_jax.data import labels
  tok = tokenizers.load_tokenizer(tokenizer_spec or _manifest_tokenizer(prepared_dir, sources))
  return labels.label_command(prepared_dir, sources, backend_cfg, tok, limit=limit)


def label_report_command(prepared_dir, sources=None, out=None):
  from visprior_jax.data import labels
  if not os.path.isdir(prepared_dir):
    raise FileNotFoundError(f"{prepared_dir} is not a directory of prepared sources")
  if not sources and not any(os.path.exists(os.path.join(prepared_dir, d, labels.LABELS_FILE))
                             for d in os.listdir(prepared_dir)):
    raise FileNotFoundError(f"no {labels.LABELS_FILE} under {prepared_dir}; run `visprior data label` first")
  return labels.label_report_command(prepared_dir, sources, output=out)


def label_instructions_command(cfg, src, image_root, out, ablate=None, dst=None):
  """Labels the image instructions of ``src`` (LLaVA JSON/JSONL); with ``ablate``, writes the
  100/50/0% removal variants of that category as instruction files under ``dst``."""
  import collections
  import json

  from visprior_jax.data import instruction_labels, multimodal
  cfg = dict(cfg.to_dict() if hasattr(cfg, "to_dict") else cfg)
  if not cfg.get("cache_path"):
    cfg["cache_path"] = os.path.splitext(out)[0] + ".cache.sqlite"
  samples = list(multimodal.read_samples({"kind": "instructions", "paths": [src], "image_root": image_root}))
  labels = instruction_labels.label_instructions(samples, cfg, out)
  print(f"{len(labels)} image instructions labelled: {dict(collections.Counter(labels.values()))} -> {out}")
  if not ablate:
    return labels
  if not dst:
    raise ValueError("--ablate needs --dst (where the variants go)")
  with open(src) as f:
    text = f.read()
  entries = json.loads(text) if text.lstrip().startswith("[") else [json.loads(l) for l in text.splitlines() if l.strip()]
  by_id = {str(e.get("id")): e for e in entries}
  os.makedirs(dst, exist_ok=True)
  stem = os.path.splitext(os.path.basename(src))[0]
  for keep, kept in instruction_labels.removal_variants(samples, labels, ablate).items():
    path = os.path.join(dst, f"{stem}.{ablate}_keep{round(100 * keep)}.json")
    with open(path, "w") as f:
      json.dump([by_id[s.id] for s in kept if s.id in by_id], f)
    print(f"{ablate} kept {100 * keep:.0f}%: {len(kept)} instructions -> {path}")
  return labels
