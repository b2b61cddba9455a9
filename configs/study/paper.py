"""Shared builder for the paper's studies (configs/study/<experiment>.py import it).

Every paper run is pretrain -> align -> SFT -> eval (VQA) plus the language evals of the pre-trained
LLM, at the paper's settings (PAPER.md 1-4): batches of 1024 x 2048 tokens (steps = tokens / 2^21),
alignment on image-caption pairs (projector only), SFT on instructions (projector + LLM), MetaCLIP-B/16
features. Data locations are the study config's ``paths`` section, set on the command line:

  visprior study run --config=configs/study/table2_mixtures.py --workdir=gs://b/studies/table2 \\
      --config.paths.prepared_dir=gs://b/data/pool --config.paths.tokenizer=gs://b/tok.model \\
      --config.paths.align_data=gs://b/cambrian/align_1m --config.paths.sft_data=gs://b/cambrian/sft_3.5m \\
      --config.paths.image_root=gs://b/cambrian/images --config.paths.vision_init=gs://b/metaclip_b16 \\
      --config.paths.vqa_root=gs://b/eval/vqa --config.paths.lm_root=gs://b/eval/lm
"""

import ml_collections

from visprior_jax.study import spec

TOKENS_PER_STEP = 1024 * 2048
B = 10**9


def paths() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      prepared_dir="",   # `visprior data prepare` output: the labelled source pool (PAPER.md 1.4, 2.2)
      tokenizer="",      # the pool's tokenizer file (~32k vocabulary)
      align_data="",     # image-caption pairs (JSONL/Parquet; data/multimodal.py "captions")
      sft_data="",       # visual instructions (LLaVA/Cambrian JSON; "instructions")
      sft_ablations="",  # folder of `visprior data label-instructions --ablate` variants (Fig. 6)
      image_root="",     # folder the caption/instruction image paths are relative to
      vision_init="",    # MetaCLIP-B/16 (HF dir or big_vision .npz); encoder studies override it
      vqa_root="",       # one folder per VQA benchmark (docs/evaluation.md)
      lm_root="",        # one folder per language task
  ))


def run(name: str, preset: str, recipe, tokens: int, *, vision_init: str = "{paths.vision_init}",
        sft_data: str = "{paths.sft_data}", blind: bool = False, align_epochs: float = 1.0,
        llm_from: str = "") -> list[dict]:
  """The steps of one paper run (pretrain, align, [blind SFT,] SFT, VQA eval, language eval).
  ``llm_from``: another run of the study whose pre-trained LLM this run adapts (no pre-training here)."""
  pre = ("configs/pretrain.py:" + preset, {"data.kind": "mixture", "data.prepared_dir": "{paths.prepared_dir}",
                                           "data.recipe": recipe, "train.steps": max(1, tokens // TOKENS_PER_STEP)})
  data = {"data.tokenizer": "{paths.tokenizer}"}
  align = ("configs/align.py:" + preset, {**data, "init_vision_from": vision_init, "train.epochs": align_epochs,
                                          "data.sources": [{"kind": "captions", "paths": ["{paths.align_data}"],
                                                            "image_root": "{paths.image_root}"}]})
  sft_sources = [{"kind": "instructions", "paths": [sft_data], "image_root": "{paths.image_root}"}]
  sft = ("configs/sft.py:" + preset, {**data, "data.sources": sft_sources})
  extra = {"eval_lm": {"suite": "lm", "checkpoint": "pretrain", "tokenizer": "{paths.tokenizer}",
                       "lm.data_root": "{paths.lm_root}"}}
  needs = []
  if llm_from:
    pre, extra, needs = None, {}, [f"{llm_from}/pretrain"]
    align[1]["init_llm_from"] = "{root}/runs/" + llm_from + "/pretrain"
  steps = spec.standard_run(
      name, pretrain=pre, align=align, sft=sft, needs=needs,
      eval={"vqa.data_root": "{paths.vqa_root}", "vqa.benchmarks": "paper16,mle_bench"}, eval_suite="vqa",
      extra_eval=extra)
  if blind:  # PAPER.md 3.6: the same instructions without images, between alignment and SFT
    base = "{root}/runs/" + name
    blind_step = spec.step(f"{name}/blind", "sft", run=name, config=f"configs/sft.py:{preset},blind",
                           overrides={**data, "data.sources": sft_sources, "init_from": base + "/align"},
                           needs=[f"{name}/align"])
    for st in steps:
      if st["name"] == f"{name}/sft":
        st["overrides"]["init_from"] = base + "/blind"
        st["needs"] = [f"{name}/blind"]
    steps.insert(next(i for i, s in enumerate(steps) if s["name"] == f"{name}/sft"), blind_step)
  return steps


def study(name: str, runs: dict[str, dict]) -> ml_collections.ConfigDict:
  """runs: {run name: dict(preset, recipe, tokens, meta..., [vision_init, sft_data, blind])}."""
  steps, meta = [], {}
  for run_name, r in runs.items():
    r = dict(r)
    preset, recipe, tokens = r.pop("preset"), r.pop("recipe"), r.pop("tokens")
    kw = {k: r.pop(k) for k in ("vision_init", "sft_data", "blind", "llm_from") if k in r}
    steps += run(run_name, preset, recipe, tokens, **kw)
    meta[run_name] = dict(size=preset, tokens=tokens, mixture=recipe if isinstance(recipe, str) else "custom",
                          blind=kw.get("blind", False), seed=42, **r)
  c = ml_collections.ConfigDict()
  c.name = name
  c.paths = paths()
  c.steps = steps
  c.runs = meta
  return c
