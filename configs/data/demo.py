"""Data config for the embedded demo: offline text that ships with Python, a small trained BPE.

  visprior data prepare --config=configs/data/demo.py
  visprior data label --config=configs/data/label_endpoint.py:lexical --prepared=runs/data/demo
  visprior data label-report --prepared=runs/data/demo

Sources (no downloads): ``code`` = the Python standard library's .py files (a sample of them), and
``docs`` = ``pydoc_data.topics`` (the Python reference's technical prose). The tokenizer is a
byte-level BPE with 1024 ids trained on the same text the first time ``prepare`` runs; later runs
reuse it. Takes well under a minute on one CPU.
"""

import ml_collections


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  del arg
  c = ml_collections.ConfigDict()
  c.out_dir = "runs/data/demo"
  # A tokenizer file (SentencePiece .model, tiktoken ranks, HF tokenizer.json) or "bytes"; when
  # ``train_vocab_size`` > 0 and the file is missing, one is trained on the sources first.
  c.tokenizer = "runs/data/demo/tokenizer.json"
  c.train_vocab_size = 1024
  c.train_kind = "bpe"
  c.docs_per_shard = 200
  c.workers = 2
  c.sources = ml_collections.ConfigDict({
      "code": {"kind": "python_stdlib", "limit": 600},
      "docs": {"kind": "pydoc_topics"},
  })
  return c
