"""big_vision ``.npz`` checkpoints <-> ViT params (``models/vit.py`` keeps big_vision's names).

A released checkpoint is a flat NumPy archive whose keys are ``/``-joined parameter paths under a
``params/`` root (``params/img/Transformer/encoderblock_0/MultiHeadDotProductAttention_0/query/kernel``).
As in big_vision's ``load_params``, a sub-tree is chosen with a colon after the file name:
``gs://big_vision/siglip/webli_en_so400m_384_58765454.npz:img`` loads the image tower only.

Loading mirrors ``big_vision.models.vit.load``: the scan layout (one ``Transformer/encoderblock``
with a leading layer axis) is unstacked into ``encoderblock_{i}``; ``pos_embedding`` is resampled
bilinearly (corner-aligned, as ``scipy.ndimage.zoom(order=1)``) when the grid differs;
``dont_load`` regexes take those parameters from a fresh init (e.g. ``head/.*``). Every other
difference is an error naming the first mismatching parameter and both shapes. Archives are read
with ``np.load(allow_pickle=False)``: nothing is ever unpickled.
"""

from __future__ import annotations

import io
import re
from typing import Any, Iterable

import numpy as np
from etils import epath

from visprior_jax.checkpoint.params import CheckpointMismatch
from visprior_jax.models import vit

Params = dict[str, Any]
ROOTS = ("params", "opt/target")


def split_spec(spec: str) -> tuple[str, str]:
  """``"dir/file.npz:img"`` -> (``"dir/file.npz"``, ``"img"``); the colon of ``gs://`` is kept."""
  spec = str(spec)
  scheme, sep, rest = spec.rpartition("://")
  head = scheme + sep
  path, colon, sub = rest.partition(":") if ":" in rest else (rest, "", "")
  return head + path, sub


def flatten(tree: Params, prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in tree.items():
    key = f"{prefix}/{k}" if prefix else str(k)
    if isinstance(v, dict):
      out.update(flatten(v, key))
    else:
      out[key] = v
  return out


def unflatten(flat: dict[str, Any]) -> Params:
  tree: Params = {}
  for key, value in flat.items():
    *parents, leaf = key.split("/")
    node = tree
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return tree


def read_npz(spec: str) -> Params:
  """The nested tree of a big_vision ``.npz`` (``params`` root stripped, ``:sub/tree`` applied)."""
  path, sub = split_spec(spec)
  data = epath.Path(path).read_bytes()
  with np.load(io.BytesIO(data), allow_pickle=False) as archive:
    flat = {k: archive[k] for k in archive.files}
  tree = unflatten(flat)
  for root in ROOTS:
    node = tree
    for part in root.split("/"):
      node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
      tree = node
      break
  for part in filter(None, sub.split("/")):
    if not isinstance(tree, dict) or part not in tree:
      have = sorted(tree) if isinstance(tree, dict) else []
      raise CheckpointMismatch(f"{path} has no sub-tree {sub!r} (at {part!r}; top-level keys: {have})")
    tree = tree[part]
  return tree


def save_npz(params: Params, path, prefix: str = "params/img") -> None:
  """Writes params as a flat big_vision-style archive (keys ``{prefix}/embedding/kernel`` ...)."""
  flat = {f"{prefix}/{k}" if prefix else k: np.asarray(v) for k, v in flatten(params).items()}
  buf = io.BytesIO()
  np.savez(buf, **flat)
  epath.Path(str(path)).write_bytes(buf.getvalue())


def unscan(tree: Params) -> Params:
  """big_vision's scan layout (``Transformer/encoderblock`` stacked on axis 0) -> loop layout."""
  enc = tree.get("Transformer")
  if not isinstance(enc, dict) or "encoderblock" not in enc:
    return tree
  stacked = flatten(enc["encoderblock"])
  depth = {v.shape[0] for v in stacked.values()}
  if len(depth) != 1:
    raise CheckpointMismatch(f"scanned encoderblock has inconsistent layer axes {sorted(depth)}")
  enc = {k: v for k, v in enc.items() if k != "encoderblock"}
  for i in range(depth.pop()):
    enc[f"encoderblock_{i}"] = unflatten({k: v[i] for k, v in stacked.items()})
  return {**tree, "Transformer": enc}


def check_params(params: Params, cfg: vit.ViTConfig, what: str = "checkpoint") -> None:
  """Fails on the first parameter whose presence or shape differs from the model's."""
  want = flatten(vit.abstract_params(cfg))
  have = flatten(params)
  for key in sorted(want):
    if key not in have:
      raise CheckpointMismatch(f"{what} lacks parameter {key} (model shape {tuple(want[key].shape)})")
    if tuple(np.shape(have[key])) != tuple(want[key].shape):
      raise CheckpointMismatch(f"{what} parameter {key} has shape {tuple(np.shape(have[key]))}, "
                               f"the model expects {tuple(want[key].shape)}")
  extra = sorted(set(have) - set(want))
  if extra:
    raise CheckpointMismatch(f"{what} has parameters the model does not: {extra[:5]}"
                             f"{' ...' if len(extra) > 5 else ''} (wrong variant/pool_type/num_classes?)")


def _matches(key: str, patterns: Iterable[str]) -> bool:
  return any(re.fullmatch(p, key) for p in patterns)


def load_vit(spec: str, cfg: vit.ViTConfig, *, dont_load: Iterable[str] = (), seed: int = 42,
             resample: bool = True, dtype: str | None = None) -> Params:
  """ViT params from a big_vision ``.npz`` (``"file.npz:img"`` for a two-tower checkpoint)."""
  tree = read_npz(spec)
  if "embedding" not in tree and "img" in tree:
    raise CheckpointMismatch(f"{spec} holds a two-tower model; load its image tower with '{spec}:img'")
  tree = unscan(tree)
  flat = flatten(tree)
  want = flatten(vit.abstract_params(cfg))
  dont_load = tuple(dont_load)
  if dont_load:
    fresh = flatten(vit.init_params(cfg, seed))
    flat = {k: v for k, v in flat.items() if not _matches(k, dont_load)}
    flat.update({k: np.asarray(v) for k, v in fresh.items() if _matches(k, dont_load)})
  pos = flat.get("pos_embedding")
  if resample and pos is not None and "pos_embedding" in want and pos.shape != want["pos_embedding"].shape:
    prefix = int(cfg.class_token and cfg.cls_posemb)
    if pos.shape[0] == 1 and pos.shape[2] == cfg.width:
      flat["pos_embedding"] = np.asarray(vit.resample_posemb(pos, cfg.grid, prefix))
  params = unflatten(flat)
  check_params(params, cfg, what=str(spec))
  if dtype is not None:
    params = unflatten({k: np.asarray(v).astype(dtype) for k, v in flatten(params).items()})
  return params
