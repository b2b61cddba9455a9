"""Evaluation outputs: per-sample predictions and metrics records, keyed by run and checkpoint.

One output folder per evaluated checkpoint (default ``<checkpoint>/eval/step_<N>``)::

  metrics.jsonl                 one record per (benchmark, metric), the rows the study's results store reads
  predictions/<benchmark>.jsonl one line per scored item, appended as batches finish
  done/<benchmark>.json         written last, atomically: the benchmark is finished

A metrics record::

  {"run": "3b_mix2", "stage": "sft", "step": 1200, "checkpoint": "/abs/path", "suite": "vqa",
   "benchmark": "textvqa", "category": "OCR & Chart", "metric": "accuracy", "value": 41.3,
   "primary": true, "n": 5000, "n_skipped": 0, "settings": "<hash>", "time": "2026-11-22T15:04:05Z"}

An evaluation with the images blanked (``vqa.images=blank``) writes the same records with one more
field, ``"images": "blank"``, into its own folder (``<checkpoint>/eval_blank/step_<N>``); records
without the field are real-image ones.

``value`` is on the benchmark's own scale (VQA scores 0-100, language accuracies 0-1 as lm-eval
reports them, perplexities as is). Resume: a benchmark with a ``done`` marker whose settings hash
matches is not run again; an unfinished one continues from the items already in its predictions
file (a torn last line from a crash is ignored). Changed settings (parser, prompt, limit, ...) make
the old predictions stale: they are moved aside to ``<benchmark>.jsonl.stale`` and the benchmark is
redone.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from etils import epath

from visprior_jax.data.sources import _glob as glob_files


def settings_hash(settings: Mapping[str, Any]) -> str:
  return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _file_name(benchmark: str) -> str:
  return benchmark.replace("/", "_").replace(":", "_").replace(" ", "_").replace("&", "and")


def _jsonable(value):
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


class EvalOutput:
  """The output folder of one checkpoint's evaluation (see the module docstring)."""

  def __init__(self, directory, *, run: str, stage: str, step: int | None, checkpoint: str,
               fields: Mapping[str, Any] | None = None):
    """``fields``: more key fields every record carries (e.g. ``{"images": "blank"}``)."""
    self.dir = epath.Path(directory)
    self.key = dict(run=run, stage=stage, step=step, checkpoint=checkpoint, **(fields or {}))
    (self.dir / "predictions").mkdir(parents=True, exist_ok=True)
    (self.dir / "done").mkdir(parents=True, exist_ok=True)

  # -- resume

  def _done_path(self, benchmark: str) -> epath.Path:
    return self.dir / "done" / f"{_file_name(benchmark)}.json"

  def _pred_path(self, benchmark: str) -> epath.Path:
    return self.dir / "predictions" / f"{_file_name(benchmark)}.jsonl"

  def finished(self, benchmark: str, settings: Mapping) -> dict | None:
    """The stored summary of a finished benchmark run with these settings (else None)."""
    path = self._done_path(benchmark)
    if not path.exists():
      return None
    done = json.loads(path.read_text())
    return done if done.get("settings") == settings_hash(settings) else None

  def predictions(self, benchmark: str, settings: Mapping) -> dict[str, dict]:
    """Predictions already written for ``benchmark`` under these settings, by item id."""
    path = self._pred_path(benchmark)
    if not path.exists():
      return {}
    rows, h = {}, settings_hash(settings)
    stale = False
    with path.open() as fh:
      for line in fh:
        try:
          row = json.loads(line)
        except json.JSONDecodeError:
          continue  # a torn last line after a crash
        if row.get("settings") != h:
          stale = True
          break
        rows[row["id"]] = row
    if stale:
      path.replace(str(path) + ".stale")
      self._done_path(benchmark).unlink(missing_ok=True)
      return {}
    return rows

  # -- writing

  def append_predictions(self, benchmark: str, settings: Mapping, rows: Iterable[dict]) -> None:
    h = settings_hash(settings)
    with self._pred_path(benchmark).open("a") as fh:
      for row in rows:
        fh.write(json.dumps({**row, "settings": h}, default=str) + "\n")
      fh.flush()

  def write_predictions(self, benchmark: str, settings: Mapping, rows: Iterable[dict]) -> None:
    """Replaces the benchmark's predictions (suites that score all items in one call)."""
    self._pred_path(benchmark).unlink(missing_ok=True)
    self.append_predictions(benchmark, settings, rows)

  def finish(self, benchmark: str, settings: Mapping, metrics: Mapping[str, float], *, suite: str,
             category: str | None = None, primary: str | None = None, n: int = 0, n_skipped: int = 0,
             extra: Mapping | None = None) -> list[dict]:
    """Appends the benchmark's metrics records, then marks it done. Returns the records."""
    h, now = settings_hash(settings), _now()
    records = [dict(self.key, suite=suite, benchmark=benchmark, category=category, metric=name,
                    value=_jsonable(float(value)), primary=name == primary, n=int(n), n_skipped=int(n_skipped),
                    settings=h, time=now)
               for name, value in metrics.items() if isinstance(value, (int, float)) and not isinstance(value, bool)]
    self._replace_records(benchmark, records)
    done = dict(benchmark=benchmark, settings=h, suite=suite, category=category, primary=primary, n=n,
                n_skipped=n_skipped, metrics={k: _jsonable(v) for k, v in metrics.items()}, **(extra or {}))
    tmp = self._done_path(benchmark).with_suffix(".tmp")
    tmp.write_text(json.dumps(done, indent=1, default=str))
    tmp.replace(self._done_path(benchmark))
    return records

  def _replace_records(self, benchmark: str, records: list[dict]) -> None:
    """Rewrites metrics.jsonl without ``benchmark``'s old records, plus the new ones (atomic rename)."""
    path = self.dir / "metrics.jsonl"
    keep = [r for r in self.records() if r["benchmark"] != benchmark]
    tmp = self.dir / "metrics.jsonl.tmp"
    tmp.write_text("".join(json.dumps(r) + "\n" for r in keep + records))
    tmp.replace(path)

  def records(self) -> list[dict]:
    path = self.dir / "metrics.jsonl"
    if not path.exists():
      return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_records(paths: Iterable) -> list[dict]:
  """All metrics records under the given eval folders or metrics.jsonl files (for notebooks)."""
  out = []
  for p in paths:
    p = epath.Path(p)
    files = [p] if p.name.endswith(".jsonl") else glob_files(p, "**/metrics.jsonl")
    for f in files:
      out += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
  return out
