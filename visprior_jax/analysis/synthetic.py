"""A synthetic study directory with known effects, for tests, notebooks and trying the analysis.

``write_synthetic_study(dir)`` writes what the study runner writes -- ``<run>/run.json`` and
``<run>/<stage>/eval/step_<N>/metrics.jsonl`` with the records ``eval.results.EvalOutput.finish``
writes (same fields; written in one go, as EvalOutput rewrites the file per benchmark) -- for about
60 runs whose scores follow known laws, so each analysis can be checked against the truth:

  scaling       single:web_crawl, 3 sizes x 6 token budgets: level = c_size - 20 (tokens / 1M)^-0.5
  mixtures      mix0 / mix6 / mix10, 3 seeds, small run-to-run noise: mix6 = mix0 + 1.0 (an effect the
                bootstrap should call significant), mix10 = mix0 + 0.1 (one it should not, barring chance),
                with language evals (mix6 slightly better ppl)
  sweeps        sweep:reasoning (peak at 75%) and sweep:visual (peak at 25%), 2 seeds each share
  grid          four grid:<rea>:<vis> cells
  single        single:code, single:math with MLE-Bench by object size
  blind / SFT   mix6 with blind SFT, and perception_50 / perception_0 SFT variants
  categories    two latent factors per run: perception (General, OCR & Chart) and reasoning
                (Knowledge, Vision-Centric), so the Spearman clusters are the paper's two groups

Per-benchmark primary values are written for the 16 benchmarks, and the category / overall means
with ``eval.vqa.registry.summarize``, as the VQA runner does. Everything is a function of ``seed``.
"""

from __future__ import annotations

import json

import numpy as np
from etils import epath

from visprior_jax.eval.vqa import registry

SIZES = {"llama3_tiny": 1_000_000, "llama3_small": 4_000_000, "llama3_cpu": 16_000_000}
_BASE = {"General": 30.0, "Knowledge": 25.0, "OCR & Chart": 10.0, "Vision-Centric": 40.0}


class _Writer:
  """Collects one eval folder's records (EvalOutput.finish's fields) and writes metrics.jsonl once."""

  def __init__(self, folder: epath.Path, run: str, stage: str, step: int):
    self.folder, self.key, self.records = folder, dict(run=run, stage=stage, step=step,
                                                       checkpoint=str(folder.parent.parent)), []

  def finish(self, benchmark, metrics, *, suite, primary, category=None, n=100):
    for name, value in metrics.items():
      self.records.append(dict(self.key, suite=suite, benchmark=benchmark, category=category, metric=name,
                               value=float(value), primary=name == primary, n=n, n_skipped=0, settings="synthetic",
                               time="2026-01-01T00:00:00Z"))

  def close(self):
    self.folder.mkdir(parents=True, exist_ok=True)
    (self.folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in self.records))


def _write_run(root: epath.Path, spec: dict, scores: dict, rng, lm: dict | None = None, extra: dict | None = None):
  run_dir = root / spec["run"]
  run_dir.mkdir(parents=True, exist_ok=True)
  (run_dir / "run.json").write_text(json.dumps(spec, indent=1))
  if lm:
    out = _Writer(run_dir / "pretrain" / "eval" / "step_1000", spec["run"], "pretrain", 1000)
    for key, value in lm.items():
      out.finish(f"lm:{key}", {key: value}, suite="lm", primary=key, n=10)
    out.close()
  for step, shift in ((100, -2.0), (200, 0.0)):   # an earlier SFT step the store's latest() must drop
    out = _Writer(run_dir / "sft" / "eval" / f"step_{step}", spec["run"], "sft", step)
    primary = {}
    for name in registry.PAPER16:
      cat = registry.BENCHMARKS[name].category
      primary[name] = float(scores[cat] + shift + rng.normal(0, 0.05))
      out.finish(name, {"accuracy": primary[name]}, suite="vqa", category=cat, primary="accuracy")
    for metric, (value, count) in registry.summarize(primary).items():
      out.finish(f"vqa:{metric}", {metric: value}, suite="vqa", primary=metric, n=count,
                 category=metric if metric in registry.CATEGORIES else None)
    for bench, (metrics, primary_name) in (extra or {}).items():
      out.finish(bench, metrics, suite=bench.split(":")[0], primary=primary_name)
    out.close()


def _scores(rng, level: float, reasoning_shift: float = 0.0, perception_shift: float = 0.0,
            factor_sd: float = 1.0) -> dict:
  p, r = rng.normal(0, factor_sd), rng.normal(0, factor_sd)     # the run's two latent factors
  out = {}
  for cat, base in _BASE.items():
    factor = p + perception_shift if cat in ("General", "OCR & Chart") else r + reasoning_shift
    out[cat] = base + level + factor + rng.normal(0, 0.3)
  return out


def write_synthetic_study(study_dir, *, seed: int = 0, study: str = "synthetic") -> epath.Path:
  """Writes the synthetic study (see the module docstring) under ``study_dir``; returns it."""
  root = epath.Path(study_dir)
  root.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(seed)

  def spec(run, size, tokens, mixture, shares, seed_, sft="full", blind=False, encoder="vit_tiny"):
    return dict(study=study, run=run, size=size, params=SIZES[size], tokens=int(tokens), mixture=mixture,
                shares=shares, encoder=encoder, seed=seed_, sft=sft, blind=blind)

  # scaling: c_size - 20 x^-0.5 on top of the category bases
  for size, c in zip(SIZES, (0.0, 3.0, 6.0)):
    for tokens in (2.5e6, 5e6, 10e6, 20e6, 40e6, 80e6):
      level = c - 20.0 * (tokens / 1e6) ** -0.5
      name = f"{size}_{tokens / 1e6:g}m_web_crawl_s1"
      _write_run(root, spec(name, size, tokens, "single:web_crawl", {"web_crawl": 1.0}, 1),
                 _scores(rng, level), rng)
  # mixtures with seeds and language evals
  for mix, dv, ppl in (("mix0", 0.0, 20.0), ("mix6", 1.0, 19.8), ("mix10", 0.1, 20.6)):
    for s in (1, 2, 3):
      _write_run(root, spec(f"small_20m_{mix}_s{s}", "llama3_small", 20e6, mix, {"web_crawl": 0.4, "code": 0.35}, s),
                 _scores(rng, 2.0 + dv, factor_sd=0.2), rng,
                 lm={"t_acc": 0.40 - 0.002 * (ppl - 20) + rng.normal(0, 0.002), "ppl": ppl + rng.normal(0, 0.05)})
  for s in (1, 2):
    _write_run(root, spec(f"small_20m_mix6_blind_s{s}", "llama3_small", 20e6, "mix6", {"web_crawl": 0.4}, s,
                          sft="blind", blind=True), _scores(rng, 3.5), rng)
  for variant, drop in (("perception_50", 0.5), ("perception_0", 1.5)):
    _write_run(root, spec(f"small_20m_mix6_{variant}_s1", "llama3_small", 20e6, "mix6", {"web_crawl": 0.4}, 1,
                          sft=variant), _scores(rng, 3.0, perception_shift=-drop), rng)
  # category sweeps: quadratic in the share, peaks at 75% (reasoning) and 25% (visual)
  for cat, peak in (("reasoning", 75), ("visual", 25)):
    for pct in (0, 25, 50, 75, 100):
      level = 2.0 - 3.0 * ((pct - peak) / 100) ** 2 * 4
      for s in (1, 2):
        extra = {"judge:reasoning_quality": ({"logical_soundness": 5 + pct / 20 + rng.normal(0, 0.3),
                                              "reasoning_depth": 10 + pct / 2}, "logical_soundness"),
                 "alignment:mnn": ({"mnn": 0.05 + 0.001 * (1 - ((pct - 60) / 60) ** 2)}, "mnn")}
        _write_run(root, spec(f"small_20m_sweep_{cat}_{pct}_s{s}", "llama3_small", 20e6, f"sweep:{cat}:{pct}",
                              {cat: pct / 100}, s), _scores(rng, level), rng, extra=extra)
  # grid cells and single sources with MLE-Bench
  for rea, vis in ((50, 10), (50, 20), (70, 10), (70, 20)):
    _write_run(root, spec(f"small_20m_grid_{rea}_{vis}_s1", "llama3_small", 20e6, f"grid:{rea}:{vis}",
                          {"reasoning": rea / 100, "visual": vis / 100}, 1), _scores(rng, 2.0 + rea / 100), rng)
  for src, base in (("code", 30.0), ("math", 28.0)):
    mle = {"small": base + 1, "medium": base, "large": base - 1}
    mle["overall"] = (mle["small"] * 732 + mle["medium"] * 698 + mle["large"] * 431) / 1861
    _write_run(root, spec(f"small_20m_{src}_s1", "llama3_small", 20e6, f"single:{src}", {src: 1.0}, 1),
               _scores(rng, 2.0), rng, extra={"mle_bench": (mle, "overall")})
  return root
