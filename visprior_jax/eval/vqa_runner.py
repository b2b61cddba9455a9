"""Runs VQA benchmarks on an MLLM checkpoint: items -> prompts -> batched greedy generation -> scores.

For each benchmark (``eval.vqa.registry``): load the items from ``data_root/<folder>`` (bad rows
skipped and counted, or an error naming the file and row, per ``on_error``), build each prompt in
the training chat template with the image tag(s) first (:func:`data.multimodal.encode_prompt`),
preprocess the item's first ``max_images`` images the way the run's images were preprocessed,
generate (temperature 0 and seed 42 by default: the paper's setting; stop at the end-of-turn
token), score with the benchmark's rule and the selected multiple-choice parser, write every
prediction as it is made, then the metrics records (``eval.results``). With ``images="blank"`` every
image is replaced by a uniform mid-gray image of its size before preprocessing: the same pipeline with
no visual information (what a model scores from the question alone). A missing or corrupt
image skips its item (counted; ``on_error="raise"``: an error naming the item's file and row).
Items are batched by image count, prompts padded to a multiple of 64 tokens and (greedy decoding) a short
last batch filled up to the batch size (``EvalModel.generate``), so only a few shapes compile.

An interrupted run resumes: finished benchmarks are not redone and an unfinished one continues
after its last written prediction.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Sequence

import numpy as np
import tqdm
from etils import epath

from visprior_jax.data import multimodal as mm
from visprior_jax.data.sources import ReadStats
from visprior_jax.data.sources import _BadRecord
from visprior_jax.eval.results import EvalOutput
from visprior_jax.eval.vqa import registry
from visprior_jax.eval.vqa.base import Benchmark, VQAItem, load_items

log = logging.getLogger(__name__)
IMAGES = ("real", "blank")
BLANK_RGB = (128, 128, 128)


@dataclasses.dataclass(frozen=True)
class VQASettings:
  parser: str = "paper"          # paper | lmms | cambrian (multiple-choice answer parsing)
  batch_size: int = 8
  max_new_tokens: int = 0        # 0: each benchmark's own (Cambrian's values)
  max_images: int = 1            # images per item given to the model (Cambrian: the first)
  limit: int = 0                 # 0: all items
  on_error: str = "skip"         # skip | raise (bad rows and images)
  temperature: float = 0.0
  seed: int = 42
  suffix: str | None = None      # None: each benchmark's instruction; else this one (e.g. the judge's)
  suite: str = "vqa"             # records' suite; also separates predictions of different prompt styles
  images: str = "real"           # real | blank (every image replaced by a uniform mid-gray one of its size)

  def __post_init__(self):
    if self.images not in IMAGES:
      raise ValueError(f"vqa.images must be one of {IMAGES}, not {self.images!r}")

  def for_benchmark(self, bench: Benchmark) -> dict:
    """The settings that determine a benchmark's predictions (their hash keys resume). ``images`` enters
    only when blank, so real-image predictions made before the setting existed still resume."""
    s = dict(benchmark=bench.name, parser=self.parser, max_new_tokens=self.max_new_tokens or bench.max_new_tokens,
             max_images=min(self.max_images, bench.max_images), limit=self.limit, temperature=self.temperature,
             seed=self.seed, suffix=bench.suffix if self.suffix is None else self.suffix, suite=self.suite)
    return s if self.images == "real" else {**s, "images": self.images}


def _prompt_ids(model, text: str, n_images: int) -> list[int]:
  if not model.multimodal:
    n_images = 0
  mcfg = model.task.mllm if model.multimodal else None
  return mm.encode_prompt(model.tokenizer, text, n_images=n_images,
                          tokens_per_image=mcfg.tokens_per_image if mcfg else 0,
                          image_token_id=mcfg.image_token_id if mcfg else -1)


def blank_image(image):
  """A uniform mid-gray RGB image of ``image``'s size (the ``images="blank"`` stand-in)."""
  from PIL import Image
  return Image.new("RGB", image.size, BLANK_RGB)


def _images(model, item: VQAItem, k: int, images: str = "real") -> np.ndarray:
  family, res = model.image_preprocessing
  if not k:
    return np.zeros((0, res, res, 3), np.float32)
  loaded = [mm.load_image(ref) for ref in item.images[:k]]   # loaded either way: a bad image is skipped alike
  if images == "blank":
    loaded = [blank_image(im) for im in loaded]
  return np.stack([mm.preprocess(im, family, res) for im in loaded])


def run_benchmark(model, bench: Benchmark, folder, out: EvalOutput, settings: VQASettings,
                  progress: bool = True) -> dict:
  """Evaluates one benchmark (resuming) and returns its done-summary (metrics, n, n_skipped, ...)."""
  s = settings.for_benchmark(bench)
  name = bench.name if settings.suite == "vqa" else f"{settings.suite}:{bench.name}"
  done = out.finished(name, s)
  if done is not None:
    return done
  stats = ReadStats()
  items = load_items(bench, folder, on_error=settings.on_error, limit=settings.limit or None, stats=stats)
  have = out.predictions(name, s)
  todo = [it for it in items if it.id not in have]
  suffix = s["suffix"]
  groups: dict[int, list[VQAItem]] = {}
  for it in todo:
    k = min(len(it.images), s["max_images"]) if model.multimodal else 0
    groups.setdefault(k, []).append(it)
  bar = tqdm.tqdm(total=len(items), initial=len(items) - len(todo), desc=name, unit="item", disable=not progress,
                  file=sys.stderr, leave=False)
  for k, group in sorted(groups.items()):
    for start in range(0, len(group), settings.batch_size):
      batch, images, prompts = [], [], []
      for it in group[start:start + settings.batch_size]:
        try:
          images.append(_images(model, it, k, settings.images))
        except _BadRecord as e:
          if settings.on_error == "raise":
            raise ValueError(f"{bench.name}: {it.where}: {e.reason} ({e.detail})") from None
          stats.skip(it.where, e.reason, e.detail)
          continue
        text = bench.prompt(it, suffix)
        batch.append(it)
        prompts.append((text, _prompt_ids(model, text, k)))
      if not batch:
        continue
      ids = model.generate([p for _, p in prompts], s["max_new_tokens"], images=np.stack(images) if k else None,
                           temperature=settings.temperature, seed=settings.seed, pad_multiple=64,
                           batch_size=settings.batch_size)
      rows = []
      for it, (text, _), out_ids in zip(batch, prompts, ids):
        prediction = model.tokenizer.decode(out_ids)
        record = bench.score(it, prediction, settings.parser)
        rows.append(dict(id=it.id, where=it.where, prompt=text, prediction=prediction, answer=it.answer,
                         record=record))
        have[it.id] = rows[-1]
      out.append_predictions(name, s, rows)
      bar.update(len(batch))
  bar.close()
  scored = [(it, have[it.id]["record"]) for it in items if it.id in have]
  metrics = bench.aggregate(scored)
  if settings.on_error == "skip" and stats.examples:
    log.warning("%s: %d item(s) skipped: %s", bench.name, stats.total_skipped, "; ".join(stats.examples[:3]))
  out.finish(name, s, metrics, suite=settings.suite, category=bench.category, primary=bench.primary, n=len(scored),
             n_skipped=stats.total_skipped, extra=dict(skipped=dict(stats.skipped), skipped_examples=stats.examples))
  return out.finished(name, s)


def run_vqa(model, names: Sequence[str], data_root, out: EvalOutput, settings: VQASettings = VQASettings(),
            progress: bool = True, missing: str = "error") -> dict[str, dict]:
  """Runs the named benchmarks and writes the category / overall records; returns summaries by name.

  ``missing``: a benchmark whose folder is absent is an error (default) or skipped ("skip")."""
  if not model.multimodal:
    raise ValueError(f"{model.path} is a language model; VQA needs a multimodal (align/sft) checkpoint")
  data_root = epath.Path(data_root)
  results = {}
  for n in registry.resolve(names):
    bench = registry.BENCHMARKS[n]
    folder = data_root / bench.folder
    if not folder.exists():
      if missing == "skip":
        log.warning("%s: folder %s not found; skipped", n, folder)
        continue
      raise FileNotFoundError(f"{n}: benchmark folder {folder} not found (set vqa.missing=skip to leave it out)")
    results[n] = run_benchmark(model, bench, folder, out, settings, progress)
    m = results[n]["metrics"]
    print(f"{settings.suite} {n:12s} {bench.primary} {m.get(bench.primary, float('nan')):.2f}  "
          f"(n={results[n]['n']}, skipped={results[n]['n_skipped']})", file=sys.stderr)
  if settings.suite == "vqa":
    summary = registry.summarize({n: r["metrics"].get(registry.BENCHMARKS[n].primary) for n, r in results.items()})
    for metric, (value, count) in summary.items():
      out.finish(f"vqa:{metric}", {"benchmarks": sorted(results)}, {metric: value}, suite="vqa",
                 category=metric if metric in registry.CATEGORIES else None, primary=metric, n=count)
    if summary:
      print("vqa summary   " + "  ".join(f"{k} {v:.2f} ({c})" for k, (v, c) in summary.items()), file=sys.stderr)
  return results
