"""Stage 2, visual instruction tuning: projector and LLM train, the encoder stays frozen (PAPER.md
3.3: LR 4e-5, 3% warm-up, cosine, batch 512, one epoch). ``blind``: the same instructions with the
images withheld, run as a stage before SFT (PAPER.md 3.6).

  visprior sft --config=configs/sft.py:llama3_3b --workdir=runs/3b/sft --config.init_from=runs/3b/align \\
      --config.data.tokenizer=tokenizer.model
  visprior sft --config=configs/sft.py:llama3_3b,blind --workdir=runs/3b/blind --config.init_from=runs/3b/align

Arg: ``<preset>[,blind]``; preset an LLM preset (default llama3_3b) or ``tiny``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # sibling config modules

import multimodal  # noqa: E402  (configs/multimodal.py)


def get_config(arg: str = "llama3_3b"):
  preset, _, mode = arg.partition(",")
  if mode not in ("", "blind"):
    raise ValueError(f"unknown sft mode {mode!r}: use <preset> or <preset>,blind")
  c = multimodal.base(preset, "sft")
  c.init_from = ""           # the alignment (or blind SFT) run this stage starts from
  c.optim.update(lr=4e-5, warmup_ratio=0.03, trainable="(projector|llm)/.*")
  c.data.blind = mode == "blind"
  return c
