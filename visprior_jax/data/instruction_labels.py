"""The SFT-data ablation (PAPER.md 3.5): label image instructions perception / reasoning / others
with a vision-language model, then build the 100% / 50% / 0% variants of one category.

  labels = label_instructions(samples, {"base_url": "http://gpu:8000/v1",
                                        "model": "Qwen/Qwen2.5-VL-7B-Instruct"}, "sft_labels.jsonl")
  variants = removal_variants(samples, labels, "perception")   # {1.0: [...], 0.5: [...], 0.0: [...]}

Serve the VLM with any OpenAI-compatible server (``vllm serve Qwen/Qwen2.5-VL-7B-Instruct``). Each
request is one user message: a text part (``configs/data/instruction_label_prompt.txt``, with the
sample's user turns, ``<image>`` tags removed, in place of ``{question}``) followed by one
``image_url`` part per image (up to ``max_images``) as a base64 data URL; images whose longer side
exceeds ``max_image_side`` are downscaled and re-encoded as JPEG. Transport, retries with backoff,
re-asks on unreadable answers, concurrency and the SQLite answer cache are ``EndpointBackend``'s
(the cache key covers model, prompt, question and image bytes); the API key comes from the
environment variable named by ``api_key_env`` and is never logged.

Only samples with images are labelled (the paper classifies Cambrian's text-image pairs); text-only
samples are never removed. An answer must name exactly one category; otherwise the sample is
``unparseable`` (kept in every variant, counted). A sample whose image cannot be read is skipped and
counted (or raises with ``on_error="raise"``). Results are appended to ``out_path`` as JSON lines
``{"id", "label"}`` per batch; a rerun skips ids already there.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence

import numpy as np
from etils import epath

from visprior_jax.data.label_backends import FAILED, UNPARSEABLE, EndpointBackend, EndpointConfig
from visprior_jax.data.multimodal import IMAGE_TAG, Sample, load_image
from visprior_jax.data.sources import ReadStats, _BadRecord

log = logging.getLogger(__name__)

CATEGORIES = ("perception", "reasoning", "others")
DEFAULT_PROMPT = epath.Path(__file__).resolve().parents[2] / "configs" / "data" / "instruction_label_prompt.txt"
_WORD = re.compile(r"\b(perception|perceptual|reasoning|others?)\b", re.I)
_CANON = {"perception": "perception", "perceptual": "perception", "reasoning": "reasoning", "other": "others",
          "others": "others"}


def parse_instruction_label(text) -> list[str] | None:
  """``["perception"|"reasoning"|"others"]`` if the answer names exactly one category, else None."""
  if not isinstance(text, str):
    return None
  if "</think>" in text:
    text = text.rsplit("</think>", 1)[1]
  elif "<think>" in text:
    return None
  found = {_CANON[m.lower()] for m in _WORD.findall(text)}
  return [found.pop()] if len(found) == 1 else None


@dataclasses.dataclass(frozen=True)
class LabelItem:
  question: str
  images: tuple = ()   # (mime type, encoded bytes) per image


class InstructionLabeller(EndpointBackend):
  """EndpointBackend whose items are (question, images) and whose answers are one category."""

  name = "instruction_endpoint"

  def _content(self, item: LabelItem) -> list:
    prompt = self.prompt.replace("{question}", item.question) if "{question}" in self.prompt else (
        f"{self.prompt}\n\n{item.question}")
    parts = [{"type": "text", "text": prompt}]
    for mime, data in item.images:
      url = f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
      parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts

  def _parse(self, answer: str) -> list[str] | None:
    return parse_instruction_label(answer)

  def cache_key(self, item: LabelItem) -> str:
    h = hashlib.sha256()
    for part in (self.cfg.model.encode(), self.prompt.encode(), item.question.encode("utf-8", "surrogatepass"),
                 *(hashlib.sha256(data).digest() for _, data in item.images)):
      h.update(len(part).to_bytes(8, "little") + part)
    return h.hexdigest()


_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}


def _encoded(ref, max_side: int) -> tuple[str, bytes]:
  """(mime, bytes) of one image, downscaled and re-encoded as JPEG when larger than max_side."""
  from PIL import Image
  data = bytes(ref) if isinstance(ref, (bytes, bytearray)) else None
  if data is None:
    try:
      data = epath.Path(ref).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
      raise _BadRecord("missing image", str(ref)) from None
  img = load_image(data)  # raises _BadRecord("corrupt image") when it does not decode
  fmt = Image.open(io.BytesIO(data)).format
  if (max_side and max(img.size) > max_side) or fmt not in _MIME:
    img.thumbnail((max_side or max(img.size), max_side or max(img.size)), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return "image/jpeg", buf.getvalue()
  return _MIME[fmt], data


def label_item(sample: Sample, max_images: int = 4, max_image_side: int = 1024,
               max_question_chars: int = 4000) -> LabelItem:
  question = "\n".join(t.replace(IMAGE_TAG + "\n", "").replace(IMAGE_TAG, "").strip()
                       for r, t in sample.turns if r == "user")
  images = tuple(_encoded(ref, max_image_side) for ref in sample.images[:max_images])
  return LabelItem(question[:max_question_chars], images)


_EXTRA = {"max_images": 4, "max_image_side": 1024, "max_question_chars": 4000, "on_error": "skip"}


def make_labeller(cfg: Mapping | None = None) -> InstructionLabeller:
  """An InstructionLabeller from EndpointConfig fields; defaults for a 7B VLM and this prompt."""
  cfg = {"model": "Qwen/Qwen2.5-VL-7B-Instruct", "prompt_path": str(DEFAULT_PROMPT), "max_tokens": 16,
         "enable_thinking": None, **{k: v for k, v in dict(cfg or {}).items() if k not in _EXTRA}}
  if not cfg.get("prompt_path"):
    cfg["prompt_path"] = str(DEFAULT_PROMPT)
  return InstructionLabeller(EndpointConfig.from_mapping(cfg))


def label_instructions(samples: Sequence[Sample], cfg: Mapping | None = None, out_path=None, *,
                       labeller: InstructionLabeller | None = None, stats: ReadStats | None = None,
                       progress: bool = True) -> dict[str, str]:
  """{sample id: category or "unparseable"} for every image sample (see module docstring).

  Transport failures (after retries) are left out and not written, so a rerun asks again."""
  cfg = dict(cfg or {})
  extra = {k: cfg.get(k, v) for k, v in _EXTRA.items()}
  stats = stats if stats is not None else ReadStats()
  batch_size = int(cfg.get("batch_size", 128))
  done: dict[str, str] = {}
  if out_path and os.path.exists(out_path):
    with open(out_path) as f:
      for line in f:
        if line.strip():
          row = json.loads(line)
          done[str(row["id"])] = row["label"]
  todo = [s for s in samples if s.images and s.id not in done]
  own = labeller is None
  labeller = labeller or make_labeller(cfg)
  bar = None
  if progress:
    from tqdm import tqdm
    bar = tqdm(total=len(todo), desc="instruction labels", unit="sample")
  try:
    for start in range(0, len(todo), batch_size):
      chunk, items = [], []
      for s in todo[start:start + batch_size]:
        try:
          items.append(label_item(s, extra["max_images"], extra["max_image_side"], extra["max_question_chars"]))
          chunk.append(s)
        except _BadRecord as e:
          if extra["on_error"] == "raise":
            raise ValueError(f"{s.where} id={s.id}: {e.reason} ({e.detail})") from None
          stats.skip(f"{s.where} id={s.id}", e.reason, e.detail)
      results = labeller.label(items) if items else []
      rows = []
      for s, res in zip(chunk, results):
        if res is FAILED:
          stats.skip(f"{s.where} id={s.id}", "endpoint failed")
          continue
        label = UNPARSEABLE if res == UNPARSEABLE else res[0]
        done[s.id] = label
        stats.read += 1
        rows.append({"id": s.id, "label": label})
      if out_path and rows:
        with open(out_path, "a") as f:
          f.writelines(json.dumps(r) + "\n" for r in rows)
      if bar is not None:
        bar.update(len(todo[start:start + batch_size]))
  finally:
    if bar is not None:
      bar.close()
    if own:
      labeller.close()
  if stats.total_skipped:
    log.warning("instruction labels: %s", stats.summary())
  return done


def removal_variants(samples: Sequence, labels: Mapping[str, str], category: str,
                     fractions: Sequence[float] = (1.0, 0.5, 0.0), seed: int = 42) -> dict[float, list]:
  """{fraction KEPT of ``category``: samples}; everything not labelled ``category`` is always kept.

  The paper's ablation keeps perception (or reasoning) data at 100% / 50% / 0% with the others
  unchanged. Which samples go is a seeded permutation of the category's samples, so the variants
  are nested (the 0.5 variant's kept samples are a subset of the 1.0 variant's) and input order is
  preserved. ``samples`` are :class:`Sample` or mappings with an "id"."""
  if category not in CATEGORIES:
    raise ValueError(f"category {category!r} is not one of {CATEGORIES}")
  ids = [s["id"] if isinstance(s, Mapping) else s.id for s in samples]
  members = [i for i, sid in enumerate(ids) if labels.get(str(sid)) == category]
  key = int.from_bytes(hashlib.sha256(category.encode()).digest()[:8], "little")
  order = np.random.default_rng([seed % 2**63, key]).permutation(len(members))
  out = {}
  for f in fractions:
    if not 0.0 <= float(f) <= 1.0:
      raise ValueError(f"fraction {f} must be in [0, 1] (the share of {category} samples kept)")
    n_drop = len(members) - int(round(float(f) * len(members)))
    drop = {members[j] for j in order[:n_drop]}
    out[float(f)] = [s for i, s in enumerate(samples) if i not in drop]
  return out
