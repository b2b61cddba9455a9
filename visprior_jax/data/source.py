"""``make_source(config.data, ...)``: the trainer's one door to every data source.

  data.kind = "mixture"     prepared ArrayRecord shards mixed by a recipe (``text_pipeline``)
  data.kind = "multimodal"  image-text instructions or captions (``multimodal``)
  data.kind = "contrastive" (image, caption) pairs for the contrastive encoder (``contrastive``)
  data.kind = "markov"      a random Markov chain (``synthetic``; benchmarks and tests)
  data.kind = "text_bytes"  bytes of a local text file (``synthetic``)

Every source has ``vocab_size``, ``batch(step, process_index, process_count)``, ``state(step)`` and
``check_state(state)``; a batch is a function of (seed, step).
"""

from __future__ import annotations

import logging


def make_source(data_cfg, batch_size: int, seq_len: int, seed: int, model_vocab: int):
  kind = data_cfg.kind
  if kind == "mixture":
    from visprior_jax.data.text_pipeline import make_text_source
    return make_text_source(data_cfg, batch_size, seq_len, seed)
  if kind == "multimodal":
    from visprior_jax.data.multimodal import make_multimodal_source
    return make_multimodal_source(data_cfg, batch_size, seq_len, seed)
  if kind == "contrastive":
    from visprior_jax.data.contrastive import make_contrastive_source
    return make_contrastive_source(data_cfg, batch_size, seq_len, seed)
  from visprior_jax.data.synthetic import MarkovTokens, TextBytes
  if kind == "markov":
    return MarkovTokens(data_cfg.get("vocab_size") or model_vocab, batch_size, seq_len, seed)
  if kind == "text_bytes":
    return TextBytes(batch_size, seq_len, seed, data_cfg.get("path", ""))
  raise ValueError(f"data.kind={kind!r} is not one of mixture, multimodal, contrastive, markov, text_bytes")


def refuse_state_changes(changes: list[str], allowed: bool, flag: str, note: str = "") -> None:
  """A source's ``check_state`` verdict: nothing changed; changed but allowed by ``flag`` (warn);
  or a one-line refusal naming every change and the flag that would allow it."""
  if not changes:
    return
  message = "; ".join(changes)
  if allowed:
    logging.warning("resuming with changed data (allowed by %s): %s", flag, message)
    return
  raise ValueError(f"cannot resume: the checkpoint's data state differs from this run: {message}. "
                   f"Set {flag}=True to resume anyway{note}.")
