"""The encoder stage: a SigLIP-style image-text model trained once on (image, caption) pairs, whose
image tower then serves, frozen, as the MLLM's vision encoder (TINY_STUDY.md stage 2).

  visprior encoder --config=configs/encoder.py:tiny --workdir=runs/tiny/encoder \\
      --config.data.captions=runs/world/captions.jsonl --config.data.image_root=runs/world
  visprior align --config=configs/align.py:... --config.init_vision_from=runs/tiny/encoder ...
      (the align config's ``vision`` must be this run's ``vision``, e.g. ``vision_section("tiny")``;
       pool_type and num_classes may differ: the MLLM reads patch features, not the pooled output)

Expect (tiny, 6 solid colours x 4 images, batch 32, lr 3e-3, 40 steps; tests/test_encoder.py): the
loss starts near 10 (each positive pair at about t cos - 10 with t = 10, b = -10), falls within
twenty steps and flattens near 2.6, because a batch holds several identical captions, which the
sigmoid loss counts as negatives (as SigLIP does) and no model can tell apart; ``i2t_accuracy`` /
``t2i_accuracy`` (a hit: the best match carries the true caption) climb from about 1/6 to 1.

Arg: ``tiny`` (64 x 64 images, patch 8, width 64, 3 blocks, MAP head; a 2-layer 64-wide Llama
text tower over byte tokens; batch 64, 300 steps) or a big_vision variant such as ``B/16`` (a
224-px SigLIP image tower with a 12-layer text tower of the same width, 64 tokens, batch 32768
as SigLIP; set train.steps and the data for the run).

Model: ``model`` is the text tower (a Llama the trainer validates as usual; ``tie_embeddings`` so
there is no unused unembedding), ``vision`` the image tower, ``contrastive`` the shared embedding
size, SigLIP's initial temperature (t = exp(t'), t' = log 10) and bias (-10), and the text pooling.
Optimiser: AdamW with linear warm-up (10%) and cosine decay to 0, as the other stages. Weight decay
is small (1e-4): optim.py decays every parameter except norm scales, t' and b included, and at
this rate that pull on them is negligible.
"""

import os
import sys

import ml_collections

from visprior_jax.models import vit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # sibling config modules

import pretrain  # noqa: E402  (configs/pretrain.py)


def vision_section(arg: str = "tiny") -> ml_collections.ConfigDict:
  """The image tower of ``get_config(arg)``: what an align/SFT config's ``vision`` must match."""
  if arg == "tiny":
    cfg = vit.siglip_config("mu/8", image_size=64, width=64, depth=3, mlp_dim=256, num_heads=4)
  else:
    cfg = vit.siglip_config(arg, image_size=224)
  return ml_collections.ConfigDict(cfg.to_dict())


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
  tiny = arg == "tiny"
  c = pretrain.base("llama3_tiny")
  c.stage = "encoder"
  c.init_vision_from = ""   # optional: start the image tower from a .npz / HF dir / earlier run
  c.vision = vision_section(arg)
  if tiny:
    c.model.update(vocab_size=259, max_seq_len=32, tie_embeddings=True)   # byte tokens, short captions
    embed_dim, batch, seq_len, steps = 64, 64, 32, 300
  else:
    width, heads = c.vision.width, c.vision.num_heads
    c.model.update(vocab_size=32000, max_seq_len=64, num_layers=12, embed_dim=width, num_heads=heads,
                   num_kv_heads=heads, head_dim=width // heads, mlp_dim=4 * width, tie_embeddings=True)
    embed_dim, batch, seq_len, steps = width, 32768, 64, 10000
  c.contrastive = ml_collections.ConfigDict(dict(embed_dim=embed_dim, temperature_init=10.0, bias_init=-10.0,
                                                 pooling="last"))
  c.data = ml_collections.ConfigDict(dict(
      kind="contrastive", tokenizer="bytes" if tiny else "", captions="", image_root="", family="siglip",
      resolution=c.vision.image_size, add_bos=False, add_eos=True, workers=0, on_error="skip", group=1,
      allow_data_change=False))
  c.data.sources = []      # read_samples specs, in Python configs: {"kind": "captions", "paths": [...], ...}
  c.train.update(steps=steps, epochs=0.0, batch_size=batch, seq_len=seq_len, log_every=25 if tiny else 100)
  c.optim.update(lr=1e-3, warmup_steps=0, warmup_ratio=0.1, schedule="cosine", min_lr_ratio=0.0, weight_decay=1e-4)
  c.checkpoint.every = 100 if tiny else 1000
  return c
