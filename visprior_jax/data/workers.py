"""Step-indexed batch sources served by grain worker processes.

A source whose batch is a pure function of (step, process) exposes ``_compute(step, pi, pc)``.
:func:`grain_dataset` wraps it as a ``grain.MapDataset`` over steps (the source is pickled into
each worker and rebuilds its caches there); :class:`StepWorkers` reads consecutive steps from
``mp_prefetch`` workers and restarts them at the requested step after a jump (resume, another
process split), so the batches are exactly the in-process ones.
"""

from __future__ import annotations


class _BatchOf:
  """Picklable step -> batch function for grain workers."""

  def __init__(self, source, process_index: int, process_count: int):
    self.source, self.process_index, self.process_count = source, process_index, process_count

  def __call__(self, step):
    return self.source._compute(int(step), self.process_index, self.process_count)


def grain_dataset(source, process_index: int = 0, process_count: int = 1, start_step: int = 0,
                  num_steps: int = 2**40):
  """``grain.MapDataset`` whose element ``j`` is the source's batch ``start_step + j``."""
  import grain
  return grain.MapDataset.range(start_step, start_step + num_steps).map(
      _BatchOf(source, process_index, process_count))


class StepWorkers:
  """Batches of consecutive steps from ``num_workers`` grain worker processes."""

  def __init__(self, num_workers: int):
    self.num_workers = num_workers
    self._iter, self._next = None, None

  def batch(self, source, step: int, process_index: int, process_count: int):
    key = (step, process_index, process_count)
    if self._iter is None or self._next != key:
      import grain
      ds = grain_dataset(source, process_index, process_count, start_step=step).to_iter_dataset()
      self._iter = iter(ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=self.num_workers)))
    out = next(self._iter)
    self._next = (step + 1, process_index, process_count)
    return out
