"""Deterministic token sources for the trainer until the real text pipeline plugs in.

The trainer's data interface (``visprior_jax.data.source.make_source`` builds one) is narrow on purpose:

  source.vocab_size                      tokens the source emits (must fit the model's vocab)
  source.batch(step, process_index, process_count) -> dict of numpy arrays for this process's rows
  source.state(step) -> dict             JSON state saved with each checkpoint
  source.check_state(state)              raises if a checkpoint's data state cannot be resumed

A batch is a pure function of (seed, step): rows are drawn from ``np.random.default_rng((seed,
step, row))``, so a resumed or re-sharded run sees exactly the batches an uninterrupted one would.
Batches hold ``inputs``, ``targets``, ``segment_ids`` (document ids, 0 = padding), ``positions``
(restarting per document) and ``loss_mask`` (0 where the target belongs to another document).

- :class:`MarkovTokens`: documents from a fixed random sparse Markov chain; learnable, so loss
  falls toward the chain's entropy. Document lengths vary, which exercises packing.
- :class:`TextBytes`: a local UTF-8 text file (or the Python standard library's ``pydoc_data``
  topics when no path is given), split into documents at blank-line runs, tokenized to bytes
  (ids 0-255), packed into rows at random offsets.
"""

from __future__ import annotations

import numpy as np

from etils import epath

from visprior_jax.data.packing import pack_rows, process_rows


class _Source:
  def __init__(self, batch_size: int, seq_len: int, seed: int):
    self.batch_size, self.seq_len, self.seed = batch_size, seq_len, seed

  def batch(self, step: int, process_index: int = 0, process_count: int = 1) -> dict[str, np.ndarray]:
    rows = [self._row(np.random.default_rng((self.seed, step, r)))
            for r in process_rows(self.batch_size, process_index, process_count)]
    return pack_rows(np.stack([d for d, _ in rows]), np.stack([t for _, t in rows]))

  def state(self, step: int) -> dict:
    return {"kind": type(self).__name__, "seed": self.seed, "next_step": step}

  def check_state(self, state: dict) -> None:
    if state.get("kind") != type(self).__name__ or state.get("seed") != self.seed:
      raise ValueError(f"checkpoint data state {state} does not match this run's source "
                       f"{type(self).__name__}(seed={self.seed})")


class MarkovTokens(_Source):
  """Documents from a random Markov chain: each token has ``branching`` likely successors."""

  def __init__(self, vocab_size: int, batch_size: int, seq_len: int, seed: int = 42,
               branching: int = 4, mean_doc_len: int = 96):
    super().__init__(batch_size, seq_len, seed)
    self.vocab_size, self.mean_doc_len = vocab_size, mean_doc_len
    rng = np.random.default_rng((seed, 2**31 - 1))
    self._next = rng.integers(0, vocab_size, size=(vocab_size, branching))
    self._probs = rng.dirichlet(np.ones(branching) * 0.5, size=vocab_size).cumsum(axis=1)

  def _row(self, rng):
    n = self.seq_len + 1
    tokens, docs = np.empty(n, np.int64), np.empty(n, np.int64)
    doc, i = 0, 0
    while i < n:
      length = min(n - i, 1 + rng.geometric(1.0 / self.mean_doc_len))
      tok = rng.integers(self.vocab_size)
      u = rng.random(length)
      for j in range(length):
        tokens[i + j], docs[i + j] = tok, doc
        tok = self._next[tok, np.searchsorted(self._probs[tok], u[j])]
      doc, i = doc + 1, i + length
    return docs, tokens


class TextBytes(_Source):
  """Byte-level tokens of a local text file, documents split at blank lines."""

  vocab_size = 256

  def __init__(self, batch_size: int, seq_len: int, seed: int = 42, path: str = ""):
    super().__init__(batch_size, seq_len, seed)
    if path:
      text = epath.Path(path).read_text()
    else:
      from pydoc_data import topics
      text = "\n\n".join(topics.topics.values())
    docs = [d.strip().encode() for d in text.split("\n\n") if d.strip()]
    if sum(len(d) for d in docs) < 2 * (seq_len + 1):
      raise ValueError(f"text source {path or 'pydoc_data'} is too short for seq_len={seq_len}")
    self._tokens = np.frombuffer(b"".join(docs), np.uint8).astype(np.int64)
    self._docs = np.repeat(np.arange(len(docs)), [len(d) for d in docs])

  def _row(self, rng):
    start = rng.integers(0, len(self._tokens) - self.seq_len - 1)
    sl = slice(start, start + self.seq_len + 1)
    return self._docs[sl], self._tokens[sl]
