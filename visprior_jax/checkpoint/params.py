"""Parameter checkpoints: save, check, load. Sits below ``train`` and ``eval``.

A parameter export is a directory holding ``model.json`` (the :class:`LlamaConfig`) and ``params/``
(an orbax PyTree checkpoint of the pure params dict). Training workdirs hold the same ``params``
item at every saved step (``checkpoints/<step>/params``) with the config in ``meta``;
:func:`load_params` and :func:`load_model` accept either.

Every restore first compares the stored shapes with the model's and fails on the first difference,
naming the parameter and both shapes, instead of failing deep inside orbax or silently.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from visprior_jax.models import functional
from visprior_jax.models.llama import LlamaConfig


class CheckpointMismatch(ValueError):
  pass


def absolute(path) -> epath.Path:
  """Local paths made absolute (orbax requires it); URLs such as gs://... pass through."""
  path = str(path)
  return epath.Path(path if "://" in path else os.path.abspath(path))


def _key(k) -> str:
  # DictKey.key, SequenceKey.idx, GetAttrKey.name (namedtuple optimizer states, which orbax
  # stores, and reports in its metadata, as dicts keyed by field name).
  for attr in ("key", "idx", "name"):
    if hasattr(k, attr):
      return str(getattr(k, attr))
  return str(k)


def _flat(tree) -> dict[str, Any]:
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    out["/".join(_key(k) for k in path)] = leaf
  return out


def check_shapes(expected: Any, stored: Any, where: str) -> None:
  """Raises CheckpointMismatch on the first parameter whose presence or shape differs."""
  exp, got = _flat(expected), _flat(stored)
  for name in sorted(exp.keys() | got.keys()):
    if name not in got:
      raise CheckpointMismatch(f"{where}: parameter {name} {tuple(exp[name].shape)} is missing from the checkpoint")
    if name not in exp:
      raise CheckpointMismatch(f"{where}: checkpoint has parameter {name} {tuple(got[name].shape)} that the model lacks")
    if tuple(exp[name].shape) != tuple(got[name].shape):
      raise CheckpointMismatch(f"{where}: parameter {name} has shape {tuple(got[name].shape)} in the checkpoint "
                               f"but {tuple(exp[name].shape)} in the model")


def restore_target(abstract: Any, shardings: Any | None) -> Any:
  """ShapeDtypeStructs with shardings (default: everything on the first device)."""
  if shardings is None:
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    shardings = jax.tree.map(lambda _: device, abstract)
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)


def save_params(directory, cfg: LlamaConfig | dict, params) -> epath.Path:
  """Writes a parameter export (model.json + params/) and waits for it to be complete.

  ``cfg``: the Llama config, or a description dict (multimodal: {"model", "vision", "mllm"})."""
  directory = absolute(directory)
  directory.mkdir(parents=True, exist_ok=True)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(directory / "params", params, force=True)
    ckptr.wait_until_finished()
  description = cfg if isinstance(cfg, dict) else cfg.to_dict()
  (directory / "model.json").write_text(json.dumps(description, indent=1))
  return directory


def locate_params(path) -> tuple[epath.Path, dict]:
  """(params item dir, model description) for an export dir, a training workdir or a step dir.

  The description is ``model.json`` of an export or the ``meta`` of a training checkpoint: a
  Llama config dict for language models; multimodal runs add ``vision`` and ``mllm`` entries.
  """
  path = absolute(path)
  if (path / "model.json").exists():
    return path / "params", json.loads((path / "model.json").read_text())
  if (path / "checkpoints").exists():
    steps = sorted(int(p.name) for p in (path / "checkpoints").iterdir() if p.name.isdigit())
    if not steps:
      raise FileNotFoundError(f"{path}/checkpoints holds no complete checkpoint")
    path = path / "checkpoints" / str(steps[-1])
  meta = path / "meta" / "metadata"
  if (path / "params").exists() and meta.exists():
    meta = json.loads(meta.read_text())
    return path / "params", {"model": meta["model"], **{k: meta[k] for k in ("vision", "mllm") if k in meta}}
  raise FileNotFoundError(f"{path} is neither a parameter export (model.json) nor a training workdir/step")


def _locate(path) -> tuple[epath.Path, LlamaConfig]:
  item, description = locate_params(path)
  return item, LlamaConfig.from_dict(description.get("model", description))


def load_tree(path, abstract, shardings: Any | None = None):
  """Restores the params of an export/workdir/step onto ``abstract``'s shapes (checked first)."""
  item, _ = locate_params(path)
  with ocp.StandardCheckpointer() as ckptr:
    check_shapes(abstract, ckptr.metadata(item).item_metadata.tree, str(item))
    return ckptr.restore(item, restore_target(abstract, shardings))


def load_params(path, shardings: Any | None = None, cfg: LlamaConfig | None = None):
  """(cfg, params) of a Llama from an export, workdir or step dir; params placed per ``shardings``."""
  _, stored_cfg = _locate(path)
  cfg = cfg or stored_cfg
  return cfg, load_tree(path, functional.abstract_params(cfg), shardings)


class LoadedModel:
  """A checkpoint ready for notebooks: ``model(tokens) -> logits`` (jitted)."""

  def __init__(self, cfg: LlamaConfig, params):
    self.cfg, self.params = cfg, params
    self._apply = jax.jit(lambda p, t, pos, seg: functional.apply(cfg, p, t, pos, seg))

  def __call__(self, tokens, positions=None, segment_ids=None):
    tokens = np.asarray(tokens, dtype=np.int32)
    if tokens.ndim == 1:
      return self(tokens[None], positions, segment_ids)[0]
    return self._apply(self.params, tokens, positions, segment_ids)


def load_model(path, **overrides) -> LoadedModel:
  """Loads a checkpoint for inference; ``overrides`` change compute options (e.g. dtype="bfloat16")."""
  _, stored = _locate(path)
  cfg = LlamaConfig.from_dict({**stored.to_dict(), **overrides}) if overrides else stored
  cfg, params = load_params(path, cfg=cfg)
  return LoadedModel(cfg, params)
