"""Whole-config validation before anything compiles: each problem is one line saying what to change."""

from __future__ import annotations

import math

from visprior_jax.models.llama import LlamaConfig
from visprior_jax.parallel import mesh as mesh_lib
from visprior_jax.parallel.rules import DEFAULT_RULES, _as_tuple


class ConfigError(ValueError):
  pass


def model_config(config) -> LlamaConfig:
  try:
    return LlamaConfig.from_dict(config.model.to_dict())
  except (TypeError, ValueError) as e:
    raise ConfigError(f"model: {e}") from None


def validate(config, num_devices: int, granules: int = 1) -> dict[str, int]:
  """Checks mesh, batch and model divisibility; returns the resolved mesh shape (ICI x DCN per axis).
  ``granules``: TPU slices (or processes) the devices span, for ``config.dcn_mesh``."""
  try:
    dcn = config.get("dcn_mesh")
    ici, dcn_shape = mesh_lib.resolve_hybrid(config.mesh.to_dict(), dcn.to_dict() if dcn else None, num_devices,
                                             granules)
    shape = {a: ici[a] * dcn_shape[a] for a in mesh_lib.AXES}
  except mesh_lib.MeshError as e:
    raise ConfigError(str(e)) from None
  cfg = model_config(config)
  rules = {**DEFAULT_RULES, **config.get("rules", {}).to_dict()}
  dp = math.prod(shape[a] for a in _as_tuple(rules["act_batch"]))
  tr = config.train
  if tr.batch_size % tr.grad_accum:
    raise ConfigError(f"train.batch_size={tr.batch_size} is not divisible by train.grad_accum={tr.grad_accum}")
  micro = tr.batch_size // tr.grad_accum
  if micro % dp:
    raise ConfigError(f"the micro-batch of {micro} sequences (train.batch_size={tr.batch_size} / grad_accum="
                      f"{tr.grad_accum}) is not divisible by the data-parallel size {dp} "
                      f"(mesh {' x '.join(f'{a}={shape[a]}' for a in _as_tuple(rules['act_batch']))}); "
                      f"use a multiple of {dp}")
  tensor = math.prod(shape[a] for a in _as_tuple(rules["heads"]))
  if cfg.num_heads % tensor:
    raise ConfigError(f"model.num_heads={cfg.num_heads} is not divisible by the tensor-parallel size {tensor}; "
                      f"change mesh.tensor")
  mlp_tensor = math.prod(shape[a] for a in _as_tuple(rules["mlp"]))
  if cfg.mlp_dim % mlp_tensor:
    raise ConfigError(f"model.mlp_dim={cfg.mlp_dim} is not divisible by the tensor-parallel size {mlp_tensor}")
  if tr.seq_len > cfg.max_seq_len:
    raise ConfigError(f"train.seq_len={tr.seq_len} exceeds model.max_seq_len={cfg.max_seq_len}")
  if cfg.attention == "splash" and tr.seq_len % 128:
    raise ConfigError(f"attention=splash needs train.seq_len to be a multiple of 128, got {tr.seq_len}")
  if tr.steps <= 0:
    raise ConfigError(f"train.steps={tr.steps} must be positive")
  return shape


def check_vocab(source_vocab: int, cfg: LlamaConfig) -> None:
  if source_vocab > cfg.vocab_size:
    raise ConfigError(f"the data's tokenizer has {source_vocab} tokens but model.vocab_size={cfg.vocab_size}; "
                      f"raise model.vocab_size to at least {source_vocab}")
