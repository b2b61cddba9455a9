"""The embedded tiny study: the paper's question asked of a procedural visual world on one CPU, through the
same code paths as a 13B run (docs/study.md "The tiny study" has the design, what was measured and why).

  visprior study run --config=configs/study/tiny.py --workdir=runs/tiny_study        # make demo (<= 20 min)
  visprior study run --config=configs/study/tiny.py:full --workdir=runs/tiny_full    # make demo-full (longer)
  visprior study run --config=configs/study/tiny.py:quick --workdir=/tmp/tiny         # every stage, minimal (CI)

Setup (once per study): the world's caption, instruction and evaluation sets (visprior_jax/study/world/),
the pre-training text pools (configs/data/tiny_world.py: four world generators + real code and prose),
and a SigLIP-style image encoder trained on the captions (configs/encoder.py:tiny), frozen afterwards.

Runs: two one-factor sweeps through one centre mixture, a reasoning-share sweep and a visual-text-share
sweep (each point a run; the centre twice, with two seeds), plus some sweep points at a second model size.
Every run pre-trains a Llama on its mixture, aligns (projector + LLM) to the frozen encoder on captions,
instruction-tunes, and is evaluated on the synthetic suite (tiny_general / tiny_knowledge / tiny_ocr /
tiny_vision, one per paper category, and MLE-style existence at three object sizes) twice: with its images
and with every image a uniform gray one (the no-image baseline). The option questions are asked open
(``vqa.benchmarks=tiny_open``: no options, exact match on the answer; eval/vqa/tiny.py says why) and
MLE-Bench in its released multiple-choice form. Nothing in the mixtures, the world or the budgets is tuned
towards the paper's findings; each choice is measured in docs/study.md.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # sibling config modules
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from visprior_jax.study import spec  # noqa: E402

# Pre-training mixtures: shares of the three kinds of text over configs/data/tiny_world.py's pools. The
# reasoning share is split evenly over code, arithmetic, counting and syllogisms (the paper's reasoning =
# code + math + science text), the visual share is the descriptions of the visual world, the rest is prose.
# Two one-factor sweeps through one centre: every point of a sweep is a run, so each of the paper's questions
# gets one fitted estimate from many runs instead of 2-vs-2 comparisons. DESIGNS[variant] = (reasoning %
# values with visual held at the centre's, visual % values with reasoning held at the centre's, the centre,
# the sweep points also trained at size m).
DESIGNS = {
    "": ((0, 25, 50, 75), (0, 10, 30, 60), (25, 10), ("r25", "r75")),
    "full": ((0, 15, 30, 45, 60, 75), (0, 5, 10, 20, 40, 60), (30, 10), ("r15", "r45", "r75", "v40")),
    "quick": ((0, 30), (), (30, 10), ()),
}


def shares(reasoning_pct: float, visual_pct: float) -> dict:
  r, v = reasoning_pct / 100, visual_pct / 100
  return dict(docs=round(1 - r - v, 6), code=r / 4, arithmetic=r / 4, counting=r / 4, syllogism=r / 4,
              visual_world=v)


def sweep_runs(variant: str = "") -> dict:
  """name -> (mixture label as analysis/tables.py parses it, reasoning %, visual %, seed). The centre is in
  both sweeps: its two runs use two seeds, which also measures seed noise directly."""
  reasoning, visual, (rc, vc), _ = DESIGNS[variant]
  out = {f"r{r}": (f"sweep:reasoning:{r}", r, vc, 0) for r in reasoning}
  out.update({f"v{v}": (f"sweep:visual:{v}", rc, v, 1 if v == vc else 0) for v in visual})
  return out


SIZES = {  # two tiny Llamas (0.36M and 0.73M parameters with the 2048-id BPE)
    "s": dict(embed_dim=64, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=16, mlp_dim=192),
    "m": dict(embed_dim=96, num_layers=3, num_heads=4, num_kv_heads=2, head_dim=24, mlp_dim=288),
}
VOCAB = 2056            # the 2048-id BPE + headroom; the last id is the image placeholder (never emitted)
SEQ = 128
PRETRAIN_BATCH = 32
P_MC = 0.25             # share of option questions asked multiple-choice in the instructions (the rest open)
SFT_LR = 2e-3           # the paper's 4e-5 is for billions of parameters; a 0.4M-parameter LLM barely moves at it
ALIGN_LR = 3e-3
PACK = 2                # align / SFT: two chats per row of 128 ids (a chat is ~60 ids): half the steps for the same data
# SFT: every instruction weighs the same (data.loss_weighting="example"); with the token mean the long
# describe / worked answers drown the one-word ones (docs/study.md "Choices made to fit the budget").
# Alignment trains the LLM with the projector (the paper freezes the LLM): at 0.7M parameters a frozen LLM
# does not learn to read the projected image (docs/study.md: caption loss with the true vs another image).


def _model(size: str) -> dict:
  return {f"model.{k}": v for k, v in dict(SIZES[size], vocab_size=VOCAB, max_seq_len=256).items()}


def get_config(arg: str = ""):
  if arg not in DESIGNS:
    raise ValueError(f"configs/study/tiny.py:{arg}: use no argument, :full or :quick")
  sweep = sweep_runs(arg)
  plan = [(f"{name}_s", "s", label, shares(r, v), seed) for name, (label, r, v, seed) in sweep.items()]
  plan += [(f"{name}_m", "m", sweep[name][0], shares(*sweep[name][1:3]), sweep[name][3]) for name in DESIGNS[arg][3]]
  return study("tiny" + (f"_{arg}" if arg else ""), plan, arg)


def blend_study(name: str, blends: dict, sizes=("s", "m"), seeds=(0, 1)) -> ml_collections.ConfigDict:
  """The tiny study over given source blends ({blend name: source weights}) x sizes x seeds, runs named
  ``<blend>_<size>_s<seed>``: how the mixture optimizer's proposals are re-run (visprior mix propose)."""
  plan = [(f"{b}_{size}_s{seed}", size, b, dict(w), seed) for size in sizes for b, w in blends.items() for seed in seeds]
  return study(name, plan, "")


def study(name: str, plan, variant: str = "") -> ml_collections.ConfigDict:
  """The study of ``plan``: (run, size, mixture label, source weights, seed) per run; ``variant`` sets the
  budgets ("" the demo's, "full", "quick")."""
  quick, full = variant == "quick", variant == "full"
  # Steps x batch: few steps of larger batches, since at this size a step costs mostly fixed overhead.
  n = dict(captions=300 if quick else 6000, sft=200 if quick else 6000, eval=4 if quick else 300 if full else 100,
           encoder_steps=20 if quick else 300, pretrain_steps=10 if quick else 125, align_steps=5 if quick else 100,
           sft_steps=5 if quick else 400)
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
      # the text tower reads whole captions (the study's BPE, <= 64 ids; bytes cut them at the first object)
      spec.step("encoder", "encoder", config="configs/encoder.py:tiny", needs=["world/captions", "data"],
                overrides={"data.captions": "{root}/world/captions/captions.jsonl",
                           "data.image_root": "{root}/world/captions", "data.tokenizer": tok,
                           "model.vocab_size": VOCAB, "model.max_seq_len": 64, "train.seq_len": 64,
                           "train.steps": n["encoder_steps"], "optim.lr": 2e-3}),
  ]
  import encoder as encoder_config  # configs/encoder.py
  vision = dict(encoder_config.vision_section("tiny").to_dict(), feature_layer=-1)
  # seq 128 holds two chats (16 image tokens + the longest chat: 95 / 109 ids; pack overflow is counted)
  mm = {"init_vision_from": "{root}/encoder", "vision": vision, "mllm.tokens_per_image": 16,
        "data.tokens_per_image": 16, "mllm.image_token_id": VOCAB - 1, "data.image_token_id": VOCAB - 1,
        "data.family": "siglip", "data.resolution": 64, "data.tokenizer": tok, "train.seq_len": 128,
        "data.pack": PACK, "data.max_images": 1}
  evaluation = {"vqa.data_root": "{root}/world/eval", "vqa.benchmarks": "tiny_open", "vqa.max_new_tokens": 6,
                "vqa.batch_size": 64, "tokenizer": tok, "progress": False}
  runs = {}
  for run, size, label, mixture, seed in plan:
    recipe = [dict(source=k, weight=v) for k, v in mixture.items() if v > 0]
    pre = ("configs/pretrain.py:llama3_tiny", {
        **_model(size), "seed": seed, "data.kind": "mixture", "data.prepared_dir": "{root}/data",
        "data.recipe": recipe, "train.steps": n["pretrain_steps"], "train.batch_size": PRETRAIN_BATCH, "train.seq_len": SEQ,
        "optim.lr": 3e-3, "optim.warmup_steps": max(1, n["pretrain_steps"] // 10), "checkpoint.every": 10**6})
    align = ("configs/align.py:tiny", {**_model(size), **mm, "seed": seed, "train.steps": n["align_steps"],
                                       "train.batch_size": 16, "optim.lr": ALIGN_LR,
                                       "optim.trainable": "(projector|llm)/.*",
                                       "data.sources": [{"kind": "captions",
                                                         "paths": ["{root}/world/captions/captions.jsonl"],
                                                         "image_root": "{root}/world/captions"}]})
    sft = ("configs/sft.py:tiny", {**_model(size), **mm, "seed": seed, "train.steps": n["sft_steps"],
                                   "train.batch_size": 16, "optim.lr": SFT_LR, "data.loss_weighting": "example",
                                   "data.sources": [{"kind": "instructions",
                                                     "paths": ["{root}/world/sft/instructions.json"],
                                                     "image_root": "{root}/world/sft"}]})
    # the no-image baseline: the same model with every image a uniform gray one (eval vqa.images=blank)
    blank = {"eval_blank": {"suite": "vqa", "checkpoint": "sft", **evaluation, "vqa.images": "blank"}}
    steps += spec.standard_run(run, pretrain=pre, align=align, sft=sft, eval_suite="vqa", eval=evaluation,
                               extra_eval=blank, needs=["data", "encoder", "world/sft", "world/eval"])
    runs[run] = dict(size=size, tokens=n["pretrain_steps"] * PRETRAIN_BATCH * SEQ, mixture=label, seed=seed,
                     shares=mixture, encoder="tiny_siglip", sft="full", blind=False)
  evals = [s["name"] for s in steps if s["stage"] == "eval"]
  steps.append(spec.python_step("report", "visprior_jax.analysis.report:study_report",
                                dict(study_dir="{root}", paper=True, n_boot=200 if quick else 1000), needs=evals))
  c = ml_collections.ConfigDict()
  c.name = name
  c.paths = ml_collections.ConfigDict()
  c.steps = steps
  c.runs = runs
  return c
