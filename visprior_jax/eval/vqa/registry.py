"""Every VQA benchmark by name, the named sets, and the paper's category and overall means.

Sets (``--config.vqa.benchmarks``, comma-separated names and/or set names):
  paper16   the study's 16 (the paper's §2.2): General GQA, MME, MMBench, SEED; Knowledge
            ScienceQA-IMG, MMMU, AI2D, MathVista; OCR & Chart TextVQA, ChartQA, OCRBench;
            Vision-Centric RealWorldQA, BLINK, CV-Bench COCO, ADE, Omni3D
  cambrian  paper16 + DocVQA and MMVP (Cambrian-1 comparability)
  tiny      the embedded study's synthetic suite: tiny_general, tiny_knowledge, tiny_ocr, tiny_vision
            (``tiny.py``) and MLE-Bench in its released layout (``study/world/writers.py`` writes all five)
  tiny_open the same with tiny_general / tiny_knowledge / tiny_vision asked open (``*_open``; the tiny study)
  all       every registered benchmark, MLE-Bench and the tiny ones included

Summary (:func:`summarize`, the paper's §2.2): each category's score is the unweighted mean of its
benchmarks' primary metrics; ``overall`` is the unweighted mean over the 16 benchmarks (not the
mean of the 4 category means: Table 3's overall 37.32 = (4·46.92 + 4·28.35 + 3·21.49 + 5·46.31)/16);
``perception`` (General + OCR & Chart) and ``reasoning`` (Knowledge + Vision-Centric) are the
paper's §3.5 grouping, also unweighted over benchmarks. MME enters through its 0-100 primary metric
(Perception / 20, an assumption: see ``general.py``). Means over a partial set are reported with
the number of benchmarks they cover (records' ``n``); ``overall`` is only written when all 16 are present.
Runs without any of the 16 (the tiny study's synthetic suite) get the same means over their own
categorised benchmarks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from visprior_jax.eval.vqa import general, knowledge, mle_bench, ocr, tiny, vision
from visprior_jax.eval.vqa.base import CATEGORIES, Benchmark

BENCHMARKS: dict[str, Benchmark] = {b.name: b for m in (general, knowledge, ocr, vision, mle_bench, tiny)
                                    for b in m.BENCHMARKS}
PAPER16 = ("gqa", "mme", "mmbench", "seed", "scienceqa", "mmmu", "ai2d", "mathvista", "textvqa", "chartqa",
           "ocrbench", "realworldqa", "blink", "coco", "ade", "omni3d")
SETS = {"paper16": PAPER16, "cambrian": PAPER16 + ("docvqa", "mmvp"),
        "tiny": ("tiny_general", "tiny_knowledge", "tiny_ocr", "tiny_vision", "mle_bench"),
        "tiny_open": ("tiny_general_open", "tiny_knowledge_open", "tiny_ocr", "tiny_vision_open", "mle_bench"),
        "all": tuple(BENCHMARKS)}
PERCEPTION = ("General", "OCR & Chart")
REASONING = ("Knowledge", "Vision-Centric")


def resolve(names: str | Sequence[str]) -> list[str]:
  """Benchmark names from a comma-separated string or list of names and set names (order kept)."""
  if isinstance(names, str):
    names = [n.strip() for n in names.split(",") if n.strip()]
  out: list[str] = []
  for name in names:
    expanded = SETS.get(name, (name,))
    for n in expanded:
      if n not in BENCHMARKS:
        raise ValueError(f"unknown VQA benchmark {n!r}; known: {', '.join(BENCHMARKS)}; sets: {', '.join(SETS)}")
      if n not in out:
        out.append(n)
  return out


def _mean(values):
  return sum(values) / len(values) if values else None


def summarize(primary: Mapping[str, float], universe: Sequence[str] | None = None) -> dict[str, tuple[float, int]]:
  """{benchmark: primary value} -> {metric: (value, number of benchmarks)} for the category means,
  perception / reasoning means and (when every benchmark of the universe is present) the overall mean.

  ``universe``: the benchmarks the means are over; default the paper's 16 when any of them is present,
  else the categorised benchmarks given (e.g. the tiny study's four ``tiny_*``)."""
  if universe is None:
    universe = PAPER16 if any(k in PAPER16 for k in primary) else \
        tuple(k for k in primary if k in BENCHMARKS and BENCHMARKS[k].category)
  scores = {k: v for k, v in primary.items() if k in universe and v is not None}
  out: dict[str, tuple[float, int]] = {}
  by_cat = {c: [v for k, v in scores.items() if BENCHMARKS[k].category == c] for c in CATEGORIES}
  for cat, values in by_cat.items():
    if values:
      out[cat] = (_mean(values), len(values))
  for name, cats in (("perception", PERCEPTION), ("reasoning", REASONING)):
    values = [v for c in cats for v in by_cat[c]]
    if values:
      out[name] = (_mean(values), len(values))
  if scores and len(scores) == len(universe):
    out["overall"] = (_mean(list(scores.values())), len(scores))
  return out
