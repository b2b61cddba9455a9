"""Baselines beside a benchmark's per-task accuracies: what answering without looking would score, and
how varied the model's answers are. Used by the tiny benchmarks (``tiny.py``) and MLE-Bench
(``mle_bench.py``), whose tasks (question types) are small enough that a model can answer a whole
type with one constant.

Every item is reduced to a :class:`Row`: its task, its gold answers (normalised texts, or the gold
letter for letter-scored questions), its option count (0 for open questions without options) and the
key of its prediction (the normalised prediction, or the parsed letter; None when unknown, e.g. a
prediction written before the key was recorded). Then, per task t:

  chance     expected accuracy of a uniform guess: per item 1 / len(options) when it has options
             (also the option questions asked open, whose rows still carry them), else
             1 / (number of distinct gold answers of task t); the mean over the items, 0-100
  majority   accuracy of always giving task t's most common gold answer (counted once per item; ties:
             the first seen): % of items whose gold answers include it
  distinct   number of distinct prediction keys
  top_share  % of items given the most common prediction key
  items      number of items

Any other group of items (e.g. tiny_knowledge's ``fact_in_sft`` split, or the whole benchmark) gets the
mean of its items' chance and majority values, each item keeping its own task's guess and majority
answer (a model can tell the question type, not the split), and its own distinct / top_share / items.
``distinct`` and ``top_share`` are left out for a group with an unknown prediction key.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["KINDS", "Row", "baselines"]

KINDS = ("chance", "majority", "distinct", "top_share", "items")


@dataclasses.dataclass(frozen=True)
class Row:
  task: str
  gold: tuple[str, ...]          # normalised gold answers (or the gold letter)
  n_options: int = 0             # 0: an open question without options
  pred: str | None = None        # the prediction's key; None: unknown


def _per_task(rows: Sequence[Row]) -> dict[str, tuple[int, str | None]]:
  """{task: (number of distinct gold answers, most common gold answer)}."""
  out = {}
  for task in dict.fromkeys(r.task for r in rows):
    counts = collections.Counter(g for r in rows if r.task == task for g in dict.fromkeys(r.gold))
    out[task] = (len(counts), counts.most_common(1)[0][0] if counts else None)
  return out


def _item_values(row: Row, task: tuple[int, str | None]) -> tuple[float, float]:
  n_gold, top = task
  chance = 1.0 / row.n_options if row.n_options else (1.0 / n_gold if n_gold else 0.0)
  return chance, float(top is not None and top in row.gold)


def _group(rows: Sequence[Row], tasks: Mapping[str, tuple[int, str | None]]) -> dict[str, float]:
  values = [_item_values(r, tasks[r.task]) for r in rows]
  n = len(rows)
  out = {"chance": 100.0 * sum(c for c, _ in values) / n, "majority": 100.0 * sum(m for _, m in values) / n,
         "items": float(n)}
  if all(r.pred is not None for r in rows):
    counts = collections.Counter(r.pred for r in rows)
    out["distinct"] = float(len(counts))
    out["top_share"] = 100.0 * counts.most_common(1)[0][1] / n
  return out


def baselines(rows: Sequence[Row], groups: Mapping[str, Iterable[int]] | None = None,
              overall: str | None = "") -> dict[str, float]:
  """The baseline metrics of ``rows``: ``<kind>/<task>`` per task, ``<kind>/<group>`` per extra group
  (``groups``: name -> row indices) and, unless ``overall`` is None, chance and majority over all rows
  as ``chance`` / ``majority`` (``overall=""``) or ``chance/<overall>`` / ``majority/<overall>``."""
  rows = list(rows)
  if not rows:
    return {}
  tasks = _per_task(rows)
  named: dict[str, list[Row]] = {t: [r for r in rows if r.task == t] for t in tasks}
  for name, idx in (groups or {}).items():
    members = [rows[i] for i in idx]
    if members:
      named[name] = members
  out: dict[str, float] = {}
  for name in sorted(named):
    for kind, value in _group(named[name], tasks).items():
      out[f"{kind}/{name}"] = value
  if overall is not None:
    whole = _group(rows, tasks)
    for kind in ("chance", "majority"):
      out[f"{kind}/{overall}" if overall else kind] = whole[kind]
  return out
