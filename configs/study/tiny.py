"""The embedded tiny study (TINY_STUDY.md): the paper's question asked of a procedural visual world on
one CPU, through the same code paths as a 13B run.

  visprior study run --config=configs/study/tiny.py --workdir=runs/tiny_study          # the full toy study
  visprior study run --config=configs/study/tiny.py:quick --workdir=/tmp/tiny           # every stage, minimal

Setup (once per study): the world's caption, instruction and evaluation sets (visprior_jax/study/world/),
the pre-training text pools (configs/data/tiny_world.py: four world generators + real code and prose),
and a SigLIP-style image encoder trained on the captions (configs/encoder.py:tiny), frozen afterwards.

Runs: every mixture x size x seed pre-trains a Llama on the mixture, aligns a projector to the frozen
encoder on captions, instruction-tunes on a small instruction set, and is evaluated on the synthetic
suite (tiny_general / tiny_knowledge / tiny_ocr / tiny_vision, one per paper category, and MLE-style
existence at three object sizes), scored by the real benchmark code. The option questions are asked open
(``vqa.benchmarks=tiny_open``: no options, exact match on the answer; eval/vqa/tiny.py says why) and
MLE-Bench in its released multiple-choice form. Mixtures are source weights over
the pools; their names say what they lean towards, nothing in them is tuned towards the paper's findings.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # sibling config modules
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from visprior_jax.study import spec  # noqa: E402

# Source weights over configs/data/tiny_world.py's pools (PAPER.md 2: reasoning = code + math + science
# text, visual = descriptions of the visual world, the rest general prose).
MIXTURES = {
    "language": dict(docs=0.45, code=0.15, visual_world=0.1, arithmetic=0.1, counting=0.1, syllogism=0.1),
    "reasoning": dict(docs=0.1, code=0.25, visual_world=0.05, arithmetic=0.2, counting=0.2, syllogism=0.2),
    "visual": dict(docs=0.1, code=0.1, visual_world=0.6, arithmetic=0.07, counting=0.06, syllogism=0.07),
    "balanced": dict(docs=0.2, code=0.2, visual_world=0.15, arithmetic=0.15, counting=0.15, syllogism=0.15),
}
SIZES = {  # two tiny Llamas (0.36M and 0.73M parameters with the 2048-id BPE)
    "s": dict(embed_dim=64, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=16, mlp_dim=192),
    "m": dict(embed_dim=96, num_layers=3, num_heads=4, num_kv_heads=2, head_dim=24, mlp_dim=288),
}
VOCAB = 2056            # the 2048-id BPE + headroom; the last id is the image placeholder (never emitted)
SEQ = 128
PRETRAIN_BATCH = 32
P_MC = 0.25             # share of option questions asked multiple-choice in the instructions (the rest open)
SFT_LR = 1e-3           # the paper's 4e-5 is for billions of parameters; a 0.4M-parameter LLM barely moves at it
# SFT: every instruction weighs the same (data.loss_weighting="example"); with the token mean the long
# describe / worked answers drown the one-word ones (docs/study.md "Choices made to fit the budget").


def _model(size: str) -> dict:
  return {f"model.{k}": v for k, v in dict(SIZES[size], vocab_size=VOCAB, max_seq_len=256).items()}


def get_config(arg: str = ""):
  quick = arg == "quick"
  if arg not in ("", "quick"):
    raise ValueError("configs/study/tiny.py: use no argument or :quick")
  # Steps x batch: few steps of larger batches, since at this size a step costs mostly fixed overhead.
  n = dict(captions=300 if quick else 3000, sft=200 if quick else 1500, eval=4 if quick else 40,
           encoder_steps=20 if quick else 250, pretrain_steps=10 if quick else 125, align_steps=5 if quick else 40,
           sft_steps=5 if quick else 200)
  mixtures = ("language", "reasoning") if quick else tuple(MIXTURES)
  sizes = ("s",) if quick else tuple(SIZES)
  seeds = (0,) if quick else (0, 1)
  tok = "{root}/data/tokenizer.json"
  world = "visprior_jax.study.world:"
  steps = [
      spec.python_step("world/captions", world + "write_captions",
                       dict(out_dir="{root}/world/captions", n=n["captions"], seed=0)),
      spec.python_step("world/sft", world + "write_instructions",
                       dict(out_dir="{root}/world/sft", n=n["sft"], seed=1, p_mc=P_MC)),
      spec.python_step("world/eval", world + "write_eval_suite",
                       dict(out_root="{root}/world/eval", n_per_task=n["eval"], seed=2)),
      spec.data_step("data", "configs/data/tiny_world.py" + (":quick" if quick else ""),
                     {"out_dir": "{root}/data", "tokenizer": tok}),
      spec.step("encoder", "encoder", config="configs/encoder.py:tiny", needs=["world/captions"],
                overrides={"data.captions": "{root}/world/captions/captions.jsonl",
                           "data.image_root": "{root}/world/captions", "train.steps": n["encoder_steps"],
                           "metrics.tensorboard": False, "metrics.mfu": False}),
  ]
  import encoder as encoder_config  # configs/encoder.py
  vision = dict(encoder_config.vision_section("tiny").to_dict(), feature_layer=-1)
  # seq 128 holds every caption and instruction whole (16 image tokens + the longest chat: 95 / 109 ids)
  mm = {"init_vision_from": "{root}/encoder", "vision": vision, "mllm.tokens_per_image": 16,
        "data.tokens_per_image": 16, "mllm.image_token_id": VOCAB - 1, "data.image_token_id": VOCAB - 1,
        "data.family": "siglip", "data.resolution": 64, "data.tokenizer": tok, "train.seq_len": 128,
        "metrics.tensorboard": False, "metrics.mfu": False}
  runs = {}
  for size in sizes:
    for mix in mixtures:
      for seed in seeds:
        run = f"{mix}_{size}_s{seed}"
        recipe = [dict(source=k, weight=v) for k, v in MIXTURES[mix].items()]
        pre = ("configs/pretrain.py:llama3_tiny", {
            **_model(size), "seed": seed, "data.kind": "mixture", "data.prepared_dir": "{root}/data",
            "data.recipe": recipe, "train.steps": n["pretrain_steps"], "train.batch_size": PRETRAIN_BATCH, "train.seq_len": SEQ,
            "optim.lr": 3e-3, "optim.warmup_steps": max(1, n["pretrain_steps"] // 10), "checkpoint.every": 10**6,
            "metrics.tensorboard": False, "metrics.mfu": False})
        align = ("configs/align.py:tiny", {**_model(size), **mm, "seed": seed, "train.steps": n["align_steps"],
                                           "train.batch_size": 16,
                                           "data.sources": [{"kind": "captions",
                                                             "paths": ["{root}/world/captions/captions.jsonl"],
                                                             "image_root": "{root}/world/captions"}]})
        sft = ("configs/sft.py:tiny", {**_model(size), **mm, "seed": seed, "train.steps": n["sft_steps"],
                                       "train.batch_size": 16, "optim.lr": SFT_LR, "data.loss_weighting": "example",
                                       "data.sources": [{"kind": "instructions",
                                                         "paths": ["{root}/world/sft/instructions.json"],
                                                         "image_root": "{root}/world/sft"}]})
        steps += spec.standard_run(run, pretrain=pre, align=align, sft=sft, eval_suite="vqa",
                                   eval={"vqa.data_root": "{root}/world/eval", "vqa.benchmarks": "tiny_open",
                                         "vqa.max_new_tokens": 8, "tokenizer": tok, "progress": False},
                                   needs=["data", "encoder", "world/sft", "world/eval"])
        runs[run] = dict(size=size, tokens=n["pretrain_steps"] * PRETRAIN_BATCH * SEQ, mixture=mix, seed=seed,
                         shares=dict(MIXTURES[mix]), encoder="tiny_siglip", sft="full", blind=False)
  evals = [s["name"] for s in steps if s["stage"] == "eval"]
  steps.append(spec.python_step("report", "visprior_jax.analysis.report:study_report",
                                dict(study_dir="{root}", paper=True, n_boot=200 if quick else 1000), needs=evals))
  c = ml_collections.ConfigDict()
  c.name = "tiny_quick" if quick else "tiny"
  c.paths = ml_collections.ConfigDict()
  c.steps = steps
  c.runs = runs
  return c
