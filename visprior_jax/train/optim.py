"""Optimizer, learning-rate schedule and parameter masks.

Paper defaults (PAPER.md 1.1): AdamW, peak LR 3e-4, 1024 linear warm-up steps, cosine decay. What
the paper leaves open (betas, eps, weight decay, clipping, final LR) is configurable; defaults
are the common Llama-3 choices (b1 0.9, b2 0.95, eps 1e-8, wd 0.1, clip 1.0, final LR 10% of peak).

``optim.trainable`` is a regex over parameter paths (``blocks/attn/wq``); parameters that do not
match are frozen (no update, no optimizer moments). Weight decay skips norm scales.
"""

from __future__ import annotations

import re

import jax
import optax


def schedule(cfg, total_steps: int) -> optax.Schedule:
  """Linear warm-up (``warmup_steps``, or ``warmup_ratio`` of the run when set) then the decay."""
  ratio = cfg.get("warmup_ratio", 0.0) if hasattr(cfg, "get") else 0.0
  warmup = min(int(round(ratio * total_steps)) if ratio else cfg.warmup_steps, total_steps)
  if cfg.schedule == "constant":
    return optax.join_schedules([optax.linear_schedule(0.0, cfg.lr, warmup), optax.constant_schedule(cfg.lr)],
                                [warmup])
  if cfg.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(0.0, cfg.lr, warmup, max(total_steps, warmup + 1),
                                              end_value=cfg.lr * cfg.min_lr_ratio)
  if cfg.schedule == "linear":
    return optax.join_schedules([optax.linear_schedule(0.0, cfg.lr, warmup),
                                 optax.linear_schedule(cfg.lr, cfg.lr * cfg.min_lr_ratio, total_steps - warmup)],
                                [warmup])
  raise ValueError(f"optim.schedule={cfg.schedule!r} is not one of constant, cosine, linear")


def _paths(params):
  return jax.tree_util.tree_map_with_path(
      lambda path, _: "/".join(str(getattr(k, "key", k)) for k in path), params)


def trainable_mask(params, pattern: str):
  regex = re.compile(pattern)
  mask = jax.tree.map(lambda p: bool(regex.fullmatch(p) or regex.match(p)), _paths(params))
  if not any(jax.tree.leaves(mask)):
    raise ValueError(f"optim.trainable={pattern!r} matches no parameter")
  return mask


def make_optimizer(cfg, params, total_steps: int) -> optax.GradientTransformation:
  """AdamW with warm-up + decay, global-norm clipping and the trainable/decay masks."""
  decay_mask = jax.tree.map(lambda p: not p.endswith("scale"), _paths(params))
  adamw = optax.adamw(schedule(cfg, total_steps), b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                      weight_decay=cfg.weight_decay, mask=decay_mask)
  tx = optax.chain(optax.clip_by_global_norm(cfg.clip_norm), adamw) if cfg.clip_norm else adamw
  labels = jax.tree.map(lambda t: "train" if t else "freeze", trainable_mask(params, cfg.trainable))
  if all(l == "train" for l in jax.tree.leaves(labels)):
    return tx
  return optax.multi_transform({"train": tx, "freeze": optax.set_to_zero()}, labels)
