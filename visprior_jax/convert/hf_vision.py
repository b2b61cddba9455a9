"""HF transformers vision encoders -> ViT params (``models/vit.py``, big_vision names).

Supported: ``SiglipVisionModel`` (and the vision tower of ``SiglipModel``), ``CLIPVisionModel``
(and ``CLIPModel``'s; MetaCLIP checkpoints are CLIP checkpoints), ``Dinov2Model``,
``Dinov2WithRegistersModel`` and ``ViTMAEModel`` (the encoder; its fixed sincos position table is
loaded as ``pos_embedding``). Input: the ``config.json`` dict and a ``{name: np.ndarray}`` state
dict, or a local directory holding both (``model.safetensors`` or shards). Layer names of both
transformers 4 (``attention.attention.query``, ``intermediate.dense``, ``mlp.weights_in``) and
transformers 5 (``attention.q_proj``, ``mlp.fc1``, ``mlp.gate_proj``) are accepted. Every tensor
must be used, except HF's unused ``mask_token`` and ``position_ids`` buffers.

Linear weights are (out, in) in torch; kernels here are (in, out) with heads split out, so the
mapping is transposes and reshapes only.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, Mapping

import numpy as np
from safetensors import safe_open

from visprior_jax.checkpoint.params import CheckpointMismatch
from visprior_jax.convert.big_vision import check_params
from visprior_jax.models import vit

Params = dict[str, Any]
ACTS = {"gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh", "gelu_fast": "gelu_tanh",
        "gelu": "gelu", "quick_gelu": "quick_gelu"}
IGNORED = ("embeddings.mask_token", "embeddings.position_ids")
FAMILIES = {"siglip_vision_model": "siglip", "siglip": "siglip", "clip_vision_model": "clip",
            "clip": "clip", "dinov2": "dinov2", "dinov2_with_registers": "dinov2", "vit_mae": "mae"}


def _family(hf: dict) -> str:
  kind = hf.get("model_type")
  if kind not in FAMILIES:
    raise ValueError(f"unsupported vision model_type {kind!r}; supported: {sorted(FAMILIES)}")
  return FAMILIES[kind]


def _act(hf: dict, default: str) -> str:
  name = hf.get("hidden_act", default)
  if name not in ACTS:
    raise ValueError(f"unsupported hidden_act {name!r}; supported: {sorted(ACTS)}")
  return ACTS[name]


def dinov2_mlp_dim(width: int, mlp_ratio: float, swiglu: bool) -> int:
  hidden = int(width * mlp_ratio)
  return (int(hidden * 2 / 3) + 7) // 8 * 8 if swiglu else hidden


def config_from_hf(hf: dict, **overrides) -> vit.ViTConfig:
  """Our ViTConfig for an HF vision config.json (a full CLIP/SigLIP config uses its vision_config)."""
  family = _family(hf)
  if hf.get("model_type") in ("siglip", "clip"):
    hf = {"model_type": hf["model_type"] + "_vision_model", **hf["vision_config"]}
  if hf.get("num_channels", 3) != 3:
    raise ValueError(f"num_channels={hf['num_channels']}; only RGB (3) is supported")
  if not hf.get("qkv_bias", True):
    raise ValueError("qkv_bias=False is not supported")
  width, heads = hf["hidden_size"], hf["num_attention_heads"]
  common = dict(width=width, depth=hf["num_hidden_layers"], num_heads=heads,
                patch_size=hf["patch_size"], image_size=hf["image_size"])
  if family == "siglip":
    cfg = vit.ViTConfig(**common, mlp_dim=hf["intermediate_size"], act=_act(hf, "gelu_pytorch_tanh"),
                        norm_eps=hf.get("layer_norm_eps", 1e-6),
                        pool_type="map" if hf.get("vision_use_head", True) else "none")
  elif family == "clip":
    cfg = vit.ViTConfig(**common, mlp_dim=hf["intermediate_size"], act=_act(hf, "quick_gelu"),
                        norm_eps=hf.get("layer_norm_eps", 1e-5), pool_type="tok", class_token=True,
                        pre_norm=True, final_norm="pooled", patch_bias=False)
  elif family == "dinov2":
    swiglu = bool(hf.get("use_swiglu_ffn", False))
    cfg = vit.ViTConfig(**common, mlp_dim=dinov2_mlp_dim(width, hf.get("mlp_ratio", 4), swiglu),
                        mlp_type="swiglu" if swiglu else "mlp", act=_act(hf, "gelu"),
                        norm_eps=hf.get("layer_norm_eps", 1e-6), pool_type="tok", class_token=True,
                        num_registers=hf.get("num_register_tokens", 0), layer_scale=True)
  else:
    cfg = vit.ViTConfig(**common, mlp_dim=hf["intermediate_size"], act=_act(hf, "gelu"),
                        norm_eps=hf.get("layer_norm_eps", 1e-12), pool_type="none", class_token=True)
  return vit.ViTConfig.from_dict({**cfg.to_dict(), **overrides}) if overrides else cfg


class _State:
  """Name lookup over a state dict that remembers what it used."""

  def __init__(self, state: Mapping[str, Any]):
    keys = list(state)
    for prefix in ("vision_model.", "dinov2.", "vit."):
      if any(k.startswith(prefix) for k in keys):
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        break
    self.state = {k: np.asarray(v) for k, v in state.items()}
    self.used: set[str] = set()

  def has(self, name: str) -> bool:
    return name in self.state

  def get(self, *names: str) -> np.ndarray:
    for name in names:
      if name in self.state:
        self.used.add(name)
        return self.state[name]
    raise CheckpointMismatch(f"HF state dict lacks {names[0]!r} (also tried {list(names[1:])})")

  def first(self, prefixes, names) -> str:
    """The first ``prefix + name`` (``name`` a module, ``.weight`` appended) that exists."""
    for p in prefixes:
      for n in names:
        if f"{p}{n}.weight" in self.state or f"{p}{n}" in self.state:
          return f"{p}{n}"
    raise CheckpointMismatch(f"HF state dict has none of {[p + n for p in prefixes for n in names]}")

  def unused(self) -> list[str]:
    return sorted(k for k in set(self.state) - self.used if not k.endswith(IGNORED))


def _dense(s: _State, name: str) -> dict:
  return {"kernel": s.get(f"{name}.weight").T, "bias": s.get(f"{name}.bias")}


def _ln(s: _State, name: str) -> dict:
  return {"scale": s.get(f"{name}.weight"), "bias": s.get(f"{name}.bias")}


def _attention(cfg: vit.ViTConfig, q, k, v, o) -> dict:
  """q/k/v/o: (weight (out,in), bias) pairs -> big_vision's MultiHeadDotProductAttention."""
  d, h, hd = cfg.width, cfg.num_heads, cfg.head_dim
  out = {name: {"kernel": w.T.reshape(d, h, hd), "bias": b.reshape(h, hd)}
         for name, (w, b) in (("query", q), ("key", k), ("value", v))}
  out["out"] = {"kernel": o[0].T.reshape(h, hd, d), "bias": o[1]}
  return out


def _pair(s: _State, name: str):
  return s.get(f"{name}.weight"), s.get(f"{name}.bias")


def _block(s: _State, cfg: vit.ViTConfig, i: int) -> dict:
  prefixes = (f"encoder.layers.{i}.", f"encoder.layer.{i}.", f"layers.{i}.")
  f = lambda *names: s.first(prefixes, names)  # noqa: E731
  attn = [f(f"self_attn.{x}_proj", f"attention.{x}_proj", f"attention.attention.{n}")
          for x, n in (("q", "query"), ("k", "key"), ("v", "value"))]
  out_name = f("self_attn.out_proj", "attention.o_proj", "attention.output.dense")
  block = {
      "LayerNorm_0": _ln(s, f("layer_norm1", "norm1", "layernorm_before")),
      "MultiHeadDotProductAttention_0": _attention(cfg, *[_pair(s, n) for n in attn], _pair(s, out_name)),
      "LayerNorm_1": _ln(s, f("layer_norm2", "norm2", "layernorm_after")),
  }
  if cfg.mlp_type == "swiglu":
    if _has_any(s, prefixes, "mlp.weights_in"):  # transformers 4 packs gate and up
      w, b = _pair(s, f("mlp.weights_in"))
      m = w.shape[0] // 2  # x1, x2 = chunk(2): silu(x1) * x2
      mlp = {"Dense_0": {"kernel": w[:m].T, "bias": b[:m]}, "Dense_2": {"kernel": w[m:].T, "bias": b[m:]},
             "Dense_1": _dense(s, f("mlp.weights_out"))}
    else:
      mlp = {"Dense_0": _dense(s, f("mlp.gate_proj")), "Dense_2": _dense(s, f("mlp.up_proj")),
             "Dense_1": _dense(s, f("mlp.down_proj"))}
  else:
    mlp = {"Dense_0": _dense(s, f("mlp.fc1", "intermediate.dense")),
           "Dense_1": _dense(s, f("mlp.fc2", "output.dense"))}
  block["MlpBlock_0"] = mlp
  if cfg.layer_scale:
    block["LayerScale_0"] = {"scale": s.get(f("layer_scale1.lambda1"))}
    block["LayerScale_1"] = {"scale": s.get(f("layer_scale2.lambda1"))}
  return block


def _has_any(s: _State, prefixes, name) -> bool:
  return any(s.has(f"{p}{name}.weight") for p in prefixes)


def _map_head(s: _State, cfg: vit.ViTConfig) -> dict:
  w, b = s.get("head.attention.in_proj_weight"), s.get("head.attention.in_proj_bias")
  d = cfg.width
  qkv = [(w[j * d:(j + 1) * d], b[j * d:(j + 1) * d]) for j in range(3)]
  return {"probe": s.get("head.probe"),
          "MultiHeadDotProductAttention_0": _attention(cfg, *qkv, _pair(s, "head.attention.out_proj")),
          "LayerNorm_0": _ln(s, "head.layernorm"),
          "MlpBlock_0": {"Dense_0": _dense(s, "head.mlp.fc1"), "Dense_1": _dense(s, "head.mlp.fc2")}}


def params_from_hf(state: Mapping[str, Any], cfg: vit.ViTConfig, dtype: str = "float32") -> Params:
  """ViT params from an HF vision state dict (torch tensors: pass ``{k: v.numpy()}``)."""
  s = _State(state)
  patch = s.first(("embeddings.",), ("patch_embedding", "patch_embeddings.projection"))
  params: Params = {"embedding": {"kernel": s.get(f"{patch}.weight").transpose(2, 3, 1, 0)}}
  if cfg.patch_bias:
    params["embedding"]["bias"] = s.get(f"{patch}.bias")
  if cfg.class_token:
    params["cls"] = s.get("embeddings.class_embedding", "embeddings.cls_token").reshape(1, 1, cfg.width)
  if cfg.num_registers:
    params["reg"] = s.get("embeddings.register_tokens")
  pos = s.get("embeddings.position_embedding.weight", "embeddings.position_embeddings")
  params["pos_embedding"] = pos.reshape(1, -1, cfg.width)
  if cfg.pre_norm:
    params["pre_norm"] = _ln(s, "pre_layrnorm")
  encoder = {f"encoderblock_{i}": _block(s, cfg, i) for i in range(cfg.depth)}
  encoder["encoder_norm"] = _ln(s, s.first(("",), ("post_layernorm", "layernorm")))
  params["Transformer"] = encoder
  if cfg.pool_type == "map":
    params["MAPHead_0"] = _map_head(s, cfg)
  unused = s.unused()
  if unused:
    raise CheckpointMismatch(f"HF state dict has tensors the model does not use: {unused[:5]}"
                             f"{' ...' if len(unused) > 5 else ''}")
  params = _cast(params, dtype)
  check_params(params, cfg, what="HF checkpoint")
  return params


def _cast(tree, dtype):
  if isinstance(tree, dict):
    return {k: _cast(v, dtype) for k, v in tree.items()}
  return np.ascontiguousarray(np.asarray(tree).astype(dtype))


def read_safetensors(directory) -> dict[str, np.ndarray]:
  files = sorted(pathlib.Path(directory).glob("*.safetensors"))
  if not files:
    raise FileNotFoundError(f"no *.safetensors in {directory}")
  state = {}
  for file in files:
    with safe_open(str(file), framework="numpy") as f:
      for key in f.keys():
        state[key] = f.get_tensor(key)
  return state


def load_hf(directory, dtype: str = "float32", **overrides) -> tuple[vit.ViTConfig, Params]:
  """(config, params) from a local HF ``save_pretrained`` directory of a supported vision model."""
  directory = pathlib.Path(directory)
  hf = json.loads((directory / "config.json").read_text())
  cfg = config_from_hf(hf, **overrides)
  return cfg, params_from_hf(read_safetensors(directory), cfg, dtype)
