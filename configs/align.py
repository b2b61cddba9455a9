"""Stage 1, visual alignment: only the projector trains (PAPER.md 3.2: LR 1e-3, 6% warm-up, cosine,
batch 512, one epoch over the captions).

  visprior align --config=configs/align.py:llama3_3b --workdir=runs/3b/align \\
      --config.init_llm_from=runs/3b/pretrain --config.init_vision_from=metaclip_b16.npz:img \\
      --config.data.tokenizer=tokenizer.model
  (list caption files in a Python config: c.data.sources = [{"kind": "captions", "paths": [...],
   "image_root": ...}])

Arg: an LLM preset (default llama3_3b) or ``tiny`` (CPU tests).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # sibling config modules

import multimodal  # noqa: E402  (configs/multimodal.py)


def get_config(arg: str = "llama3_3b"):
  c = multimodal.base(arg, "align")
  c.optim.update(lr=1e-3, warmup_ratio=0.06, trainable="projector/.*")
  return c
