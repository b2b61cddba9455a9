"""(image, caption) pairs for the contrastive encoder stage (``data.kind = "contrastive"``).

The pairs come from the multimodal readers (``multimodal.read_samples``, normally kind
``captions``): a sample contributes its one image and its caption (the text of its assistant
turns, ``<image>`` tags removed). A sample with no image or several is skipped and counted, since a
pair needs exactly one of each.

:class:`ContrastiveSource` is a :class:`~visprior_jax.data.multimodal.MultimodalSource` with other
rows, so it keeps that class's guarantees rather than restating them: row ``k`` of the run holds
sample ``permutation(seed, epoch)[k % N]`` (a fresh shuffle per epoch), process ``p`` of ``P``
builds rows ``[p*B/P, (p+1)*B/P)``, ``workers=N`` builds batches in grain worker processes, the
image preprocessing is ``preprocess(image, family, resolution)`` (SigLIP: resize, [-1, 1]), and
the checkpointed state is the step plus a fingerprint that a resumed run must match. A batch::

  images     (rows, res, res, 3) float32
  text       (rows, seq_len) int32     [bos] caption [eos], right-padded with pad_id; captions
                                       longer than seq_len lose their tail, never the eos
  text_mask  (rows, seq_len) int32     1 on real tokens (also usable as segment ids)

An image that fails to decode at batch time leaves its row empty (zero pixels, zero mask), which
the loss leaves out, and is counted in ``stats`` (or raises with ``on_error="raise"``).

Decisions: eos is appended by default because the text tower pools the last real token (a
causal Llama sees the whole caption only there); bos is off by default (nothing reads it).
Captions are re-tokenized per batch: they are short and this keeps the source picklable and
memory flat.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from visprior_jax.data.multimodal import IMAGE_TAG, MultimodalSource, Sample, preprocess, read_samples
from visprior_jax.data.packing import process_rows
from visprior_jax.data.source import refuse_state_changes
from visprior_jax.data.sources import ReadStats, _BadRecord

log = logging.getLogger(__name__)


def caption_text(sample: Sample) -> str:
  """The caption of a pair: its assistant turns' text, image tags removed."""
  return " ".join(t.replace(IMAGE_TAG, "").strip() for r, t in sample.turns if r == "assistant").strip()


class ContrastiveSource(MultimodalSource):
  """Pairs -> ``images``/``text``/``text_mask`` batches; ``batch(step, p, P)`` = f(seed, step)."""

  def __init__(self, samples: Sequence[Sample], tokenizer, *, batch_size: int, seq_len: int, seed: int = 42,
               family: str = "siglip", resolution: int | None = None, add_bos: bool = False, add_eos: bool = True,
               on_error: str = "skip", workers: int = 0, allow_data_change: bool = False, group: int = 1):
    if int(group) < 1:
      raise ValueError(f"data.group={group}: use 1 (no groups) or more")
    self.group = int(group)
    stats, pairs = ReadStats(), []
    for s in samples:
      reason = ("not one image" if len(s.images) != 1 else "empty caption" if not caption_text(s) else None)
      if reason is None:
        pairs.append(s)
      elif on_error == "raise":
        raise ValueError(f"{s.where} id={s.id}: {reason} ({len(s.images)} images)")
      else:
        stats.skip(f"{s.where} id={s.id}", reason, f"{len(s.images)} images")
    if not pairs:
      raise ValueError(f"the contrastive source has no (image, caption) pairs; {stats.summary()}")
    super().__init__(pairs, tokenizer, batch_size=batch_size, seq_len=seq_len, seed=seed, family=family,
                     resolution=resolution, max_images=1, tokens_per_image=1, on_error=on_error, workers=workers,
                     allow_data_change=allow_data_change)
    self.stats = stats
    self.vocab_size = int(self.tokenizer.vocab_size)   # no image placeholder id in this stage
    self.add_bos, self.add_eos = bool(add_bos), bool(add_eos)
    for name, wanted, token in (("bos", add_bos, self.tokenizer.bos_id), ("eos", add_eos, self.tokenizer.eos_id)):
      if wanted and token is None:
        raise ValueError(f"tokenizer {self.tokenizer.name} has no {name} token; set data.add_{name}=False")
    if seq_len < int(self.add_bos) + int(self.add_eos) + 1:
      raise ValueError(f"seq_len={seq_len} leaves no room for caption tokens")

  def sample_index(self, row: int) -> int:
    """``group=g > 1``: the pairs in file order form groups of ``g`` (hard negatives written side by side,
    e.g. the world's shape twins); the groups are shuffled per epoch and a group's members fill
    consecutive rows, so they share a batch when ``g`` divides the batch size."""
    if self.group == 1:
      return super().sample_index(row)
    n_groups = len(self.samples) // self.group
    if n_groups == 0:
      raise ValueError(f"data.group={self.group} but only {len(self.samples)} pairs")
    epoch, pos = divmod(int(row) // self.group, n_groups)
    if ("group", epoch) not in self._perm_cache:
      self._perm_cache[("group", epoch)] = np.random.default_rng([self.seed % 2**63, 6, epoch]).permutation(n_groups)
    return int(self._perm_cache[("group", epoch)][pos]) * self.group + int(row) % self.group

  def text_ids(self, sample: Sample) -> list[int]:
    """The caption's ids, at most ``seq_len`` of them, eos (when added) kept last."""
    tok = self.tokenizer
    body = tok.encode(caption_text(sample))[:self.seq_len - int(self.add_bos) - int(self.add_eos)]
    return [tok.bos_id] * self.add_bos + body + [tok.eos_id] * self.add_eos

  def _compute(self, step: int, process_index: int = 0, process_count: int = 1) -> dict[str, np.ndarray]:
    rows = process_rows(self.batch_size, process_index, process_count)
    R, T, res = len(rows), self.seq_len, self.resolution
    images = np.zeros((R, res, res, 3), np.float32)
    text = np.full((R, T), self.tokenizer.pad_id, np.int32)
    mask = np.zeros((R, T), np.int32)
    for r, row in enumerate(rows):
      sample = self.samples[self.sample_index(step * self.batch_size + row)]
      try:
        pixels = preprocess(sample.images[0], self.family, res)
      except _BadRecord as e:
        self.skip_bad_record(sample, e, "its row is left empty")
        continue
      ids = self.text_ids(sample)
      images[r], text[r, :len(ids)], mask[r, :len(ids)] = pixels, ids, 1
    return dict(images=images, text=text, text_mask=mask)

  # ---- checkpoint state

  def fingerprint(self) -> dict:
    return {"seed": self.seed, "seq_len": self.seq_len, "batch_size": self.batch_size, "family": self.family,
            "resolution": self.resolution, "tokenizer": repr(self.tokenizer), "add_bos": self.add_bos,
            "add_eos": self.add_eos, "samples": len(self.samples), "data_sha256": self.digest,
            **({"group": self.group} if self.group != 1 else {})}

  def state(self, step: int) -> dict:
    return {"kind": "contrastive", "next_step": int(step), **self.fingerprint()}

  def check_state(self, state: dict) -> None:
    changes = [f"{k} {state.get(k)!r} -> {v!r}" for k, v in self.fingerprint().items() if state.get(k) != v]
    if state.get("kind") != "contrastive":
      changes.insert(0, f"data kind {state.get('kind')!r} -> 'contrastive'")
    refuse_state_changes(changes, self.allow_data_change, "data.allow_data_change")


def make_contrastive_source(data_cfg, batch_size: int, seq_len: int, seed: int) -> ContrastiveSource:
  """``data.kind="contrastive"``: the pairs of ``data.sources`` (read_samples specs, concatenated in
  order) and/or ``data.captions`` (comma-separated caption files/globs, kind ``captions``, with
  ``data.image_root``: the command-line shorthand), tokenized by ``data.tokenizer``; optional
  ``family``, ``resolution``, ``add_bos``, ``add_eos``, ``workers``, ``on_error``,
  ``allow_data_change``, ``group`` (hard-negative groups of consecutive pairs kept in one batch)."""
  def get(k, d=None):
    return data_cfg.get(k, d) if hasattr(data_cfg, "get") else getattr(data_cfg, k, d)
  on_error = get("on_error") or "skip"
  specs = [dict(s.to_dict() if hasattr(s, "to_dict") else s) for s in (get("sources") or [])]
  if get("captions"):
    specs.append({"kind": "captions", "paths": [p.strip() for p in str(get("captions")).split(",") if p.strip()],
                  "image_root": get("image_root") or ""})
  if not specs or not get("tokenizer"):
    raise ValueError("data.kind='contrastive' needs data.tokenizer and caption files: data.captions=PATH[,PATH] "
                     "(with data.image_root) or data.sources (reader specs)")
  samples = []
  for spec in specs:
    spec.setdefault("on_error", on_error)
    stats = ReadStats()
    samples.extend(read_samples(spec, stats))
    log.info("contrastive source %s: %s", spec.get("source") or spec.get("kind"), stats.summary())
  return ContrastiveSource(samples, str(get("tokenizer")), batch_size=batch_size, seq_len=seq_len, seed=seed,
                           family=get("family") or "siglip", resolution=get("resolution"),
                           add_bos=bool(get("add_bos", False)), add_eos=bool(get("add_eos", True)),
                           on_error=on_error, workers=int(get("workers", 0) or 0),
                           allow_data_change=bool(get("allow_data_change", False)), group=int(1 if get("group") is None else get("group")))
