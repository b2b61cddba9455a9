"""Shared pieces of the multimodal stage configs (configs/align.py, configs/sft.py).

The paper's MLLM (PAPER.md 3.1): a MetaCLIP-B/16 encoder (features of the penultimate layer,
resized to 576 tokens), a 2-layer GELU MLP projector and the pre-trained LLM. ``tiny`` is a CPU
test size: a 2-layer ViT on 32-px images with 4 tokens per image and a 512-id LLM.
"""

import ml_collections

from visprior_jax.models import vit

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # sibling config modules

import pretrain  # noqa: E402  (configs/pretrain.py)


def base(arg: str, stage: str) -> ml_collections.ConfigDict:
  tiny = arg == "tiny"
  c = pretrain.base("llama3_tiny" if tiny else (arg or "llama3_3b"))
  c.stage = stage
  c.init_llm_from = ""      # the pre-training run (workdir or export) the LLM starts from
  c.init_vision_from = ""   # big_vision ".npz[:img]" or an HF vision model dir; "" = random (tests)
  if tiny:
    v = vit.ViTConfig(width=32, depth=2, mlp_dim=64, num_heads=4, patch_size=8, image_size=32, pool_type="none",
                      act="quick_gelu", class_token=True, pre_norm=True, final_norm="pooled").to_dict()
    tokens, family, resolution = 4, "clip", 32
  else:
    v = vit.clip_config("B/16", 224).to_dict()   # MetaCLIP-B/16 has the CLIP ViT-B/16 architecture
    tokens, family, resolution = 576, "clip", 224
  c.vision = ml_collections.ConfigDict({**v, "feature_layer": -2})
  image_token_id = c.model.vocab_size - 1  # reserved: the tokenizer must never emit it for text
  c.mllm = ml_collections.ConfigDict(dict(tokens_per_image=tokens, image_token_id=image_token_id,
                                          projector="mlp2x_gelu"))
  c.data = ml_collections.ConfigDict(dict(
      kind="multimodal", tokenizer="", family=family, resolution=resolution, max_images=1,
      tokens_per_image=tokens, image_token_id=image_token_id, blind=False, workers=0, on_error="skip",
      allow_data_change=False,
      loss_weighting="token",    # "example": every sample weighs the same whatever its answer length
      pack=1))                   # samples per row (each its own segment): short chats stop paying for padding
  c.data.sources = []        # read_samples specs: {"kind": "captions"|"instructions", "paths": [...], ...}
  c.train.update(batch_size=512, seq_len=2048, epochs=1.0, log_every=10)   # one epoch (PAPER.md 3.2-3.3)
  c.optim.schedule = "cosine"
  c.optim.min_lr_ratio = 0.0
  c.optim.warmup_steps = 0
  c.optim.weight_decay = 0.0
  c.checkpoint.every = 500
  if tiny:
    c.train.update(batch_size=8, seq_len=64, epochs=0.0, steps=20, log_every=5)
    c.checkpoint.every = 10
    c.metrics.mfu = False
  return c
