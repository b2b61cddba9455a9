"""The tiny study's four benchmarks for the end-to-end eval tests, written by the world's own writer.

``WRITERS[name](folder)`` writes ``folder/data.jsonl`` + ``images/`` (+ ``scenes.jsonl``) with 2 items per
task (4 for tiny_general, tiny_knowledge and tiny_ocr, 6 for tiny_vision); the output is a function of
the seed alone, so writing twice overwrites the same files. MLE-Bench's fixture is in fixtures_vqa_ocr.
"""

from __future__ import annotations

from visprior_jax.study import world


def _writer(name: str):
  def write(folder, n_per_task: int = 2, seed: int = 0) -> dict:
    return world.write_benchmark(name, folder, n_per_task, seed)
  return write


WRITERS = {name: _writer(name) for name in ("tiny_general", "tiny_knowledge", "tiny_ocr", "tiny_vision")}
