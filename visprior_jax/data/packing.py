"""Packed rows: documents laid end to end in fixed-length rows, with the trainer's masking fields,
and which rows of a global batch each process builds."""

from __future__ import annotations

import numpy as np


def pack_rows(doc_ids: np.ndarray, tokens: np.ndarray) -> dict[str, np.ndarray]:
  """(rows, T+1) token and document-id arrays -> the batch dict with shifted targets."""
  inputs, targets = tokens[:, :-1], tokens[:, 1:]
  seg_in, seg_tg = doc_ids[:, :-1], doc_ids[:, 1:]
  # Renumber documents per row from 1 and restart positions at each document start.
  starts = np.concatenate([np.ones((seg_in.shape[0], 1), bool), seg_in[:, 1:] != seg_in[:, :-1]], axis=1)
  segment_ids = np.cumsum(starts, axis=1).astype(np.int32)
  idx = np.arange(seg_in.shape[1])[None, :]
  last_start = np.maximum.accumulate(np.where(starts, idx, 0), axis=1)
  return dict(inputs=inputs.astype(np.int32), targets=targets.astype(np.int32), segment_ids=segment_ids,
              positions=(idx - last_start).astype(np.int32),
              loss_mask=(seg_in == seg_tg).astype(np.float32))


def process_rows(batch_size: int, process_index: int, process_count: int) -> range:
  """Rows [p*B/P, (p+1)*B/P) of the global batch: disjoint per process, together the whole batch."""
  if batch_size % process_count:
    raise ValueError(f"batch_size={batch_size} is not divisible by the {process_count} processes")
  per = batch_size // process_count
  return range(process_index * per, (process_index + 1) * per)
