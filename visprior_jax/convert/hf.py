"""Llama parameters <-> HF transformers ``LlamaForCausalLM`` checkpoints (``save_pretrained`` layout).

An HF checkpoint is a local directory with ``config.json`` and either ``model.safetensors`` or
shards ``model-0000i-of-0000n.safetensors`` listed in ``model.safetensors.index.json``. HF keeps
one 2-D ``(out, in)`` matrix per layer and projection; we stack layers on axis 0 and split heads
(the layout is in ``models/llama.py``). Both sides use the rotate-half RoPE convention, so the
mapping is transposes and reshapes only: no permutation, no arithmetic, and HF -> native -> HF
gives back identical bytes. Tensors keep their dtype (float32 stays float32, bfloat16 stays
bfloat16 via ml_dtypes).

torch and transformers are needed only by :func:`verify` (they are in the test extra); everything
else reads and writes safetensors with numpy.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file
from tqdm import tqdm

from visprior_jax.checkpoint.params import load_params, save_params
from visprior_jax.models.llama import LlamaConfig

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
LLAMA3_KEYS = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
# Buffers that older transformers versions wrote next to the weights; they are recomputed, not loaded.
HARMLESS_SUFFIXES = ("rotary_emb.inv_freq",)
# The conversion commands fail when fp32 logits differ from transformers' by more than this.
VERIFY_TOLERANCE = 1e-3


# ---------------------------------------------------------------------------------------- config


def _required(hf: dict, key: str):
  if hf.get(key) is None:
    raise ValueError(f"HF config.json lacks {key!r}")
  return hf[key]


def config_from_hf(hf: dict) -> LlamaConfig:
  """Our LlamaConfig for an HF Llama config.json (transformers 4 or 5 rope format)."""
  if hf.get("model_type") != "llama" or hf.get("architectures", ["LlamaForCausalLM"]) != ["LlamaForCausalLM"]:
    raise ValueError(f"not a LlamaForCausalLM config: model_type={hf.get('model_type')!r} "
                     f"architectures={hf.get('architectures')!r}")
  for key, supported in (("attention_bias", False), ("mlp_bias", False), ("hidden_act", "silu"), ("pretraining_tp", 1)):
    if hf.get(key, supported) != supported:
      raise ValueError(f"unsupported HF Llama config {key}={hf[key]!r}; only {supported!r} is supported")
  # transformers 4 writes rope_theta + rope_scaling; transformers 5 folds both into rope_parameters.
  rope = {**(hf.get("rope_scaling") or {}), **(hf.get("rope_parameters") or {})}
  rope_type = rope.get("rope_type", rope.get("type", "default"))
  if rope_type == "default":
    scaling = None
  elif rope_type == "llama3":
    missing = [k for k in LLAMA3_KEYS if k not in rope]
    if missing:
      raise ValueError(f"llama3 rope scaling in config.json lacks {missing}")
    scaling = {k: float(rope[k]) for k in LLAMA3_KEYS[:3]}
    scaling["original_max_position_embeddings"] = int(rope["original_max_position_embeddings"])
  else:
    raise ValueError(f"unsupported rope_type {rope_type!r}; only 'default' and 'llama3' are supported")
  hidden, heads = _required(hf, "hidden_size"), _required(hf, "num_attention_heads")
  return LlamaConfig(
      vocab_size=_required(hf, "vocab_size"),
      embed_dim=hidden,
      num_layers=_required(hf, "num_hidden_layers"),
      num_heads=heads,
      num_kv_heads=hf.get("num_key_value_heads") or heads,
      head_dim=hf.get("head_dim") or hidden // heads,
      mlp_dim=_required(hf, "intermediate_size"),
      max_seq_len=hf.get("max_position_embeddings", 2048),
      rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
      rope_scaling=scaling,
      norm_eps=hf.get("rms_norm_eps", 1e-6),
      tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
      init_std=hf.get("initializer_range", 0.02),
  )


def config_to_hf(cfg: LlamaConfig) -> dict:
  """An HF config.json dict for ``cfg`` (rope in the transformers-4 form, which transformers 5 reads too)."""
  if cfg.logits_soft_cap:
    raise ValueError(f"HF Llama has no logits soft cap; this model has logits_soft_cap={cfg.logits_soft_cap}")
  scaling = None
  if cfg.rope_scaling is not None:
    scaling = {"rope_type": "llama3", **{k: cfg.rope_scaling[k] for k in LLAMA3_KEYS}}
  return {
      "architectures": ["LlamaForCausalLM"],
      "model_type": "llama",
      "vocab_size": cfg.vocab_size,
      "hidden_size": cfg.embed_dim,
      "intermediate_size": cfg.mlp_dim,
      "num_hidden_layers": cfg.num_layers,
      "num_attention_heads": cfg.num_heads,
      "num_key_value_heads": cfg.num_kv_heads,
      "head_dim": cfg.head_dim,
      "hidden_act": "silu",
      "rms_norm_eps": cfg.norm_eps,
      "max_position_embeddings": cfg.max_seq_len,
      "rope_theta": cfg.rope_theta,
      "rope_scaling": scaling,
      "tie_word_embeddings": cfg.tie_embeddings,
      "attention_bias": False,
      "attention_dropout": 0.0,
      "mlp_bias": False,
      "initializer_range": cfg.init_std,
      "dtype": cfg.param_dtype,
      "torch_dtype": cfg.param_dtype,
  }


# ---------------------------------------------------------------------------------------- tensors


def _tensor_table(cfg: LlamaConfig) -> list[tuple[str, str, tuple, tuple, bool]]:
  """(HF name, our path, HF shape, our shape, per_layer) in HF's state_dict order.

  HF name and our path hold ``{i}``/nothing for per-layer tensors: ours are stacked on axis 0.
  Conversion is ``ours = hf.T.reshape(our_shape)`` and ``hf = ours.reshape(hf_shape[::-1]).T``
  for every tensor but the embedding, which has the same (vocab, embed) layout on both sides.
  """
  d, h, k, hd, m, v = cfg.embed_dim, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.mlp_dim, cfg.vocab_size
  layer = "model.layers.{i}."
  table = [
      ("model.embed_tokens.weight", "embed/embedding", (v, d), (v, d), False),
      (layer + "self_attn.q_proj.weight", "blocks/attn/wq", (h * hd, d), (d, h, hd), True),
      (layer + "self_attn.k_proj.weight", "blocks/attn/wk", (k * hd, d), (d, k, hd), True),
      (layer + "self_attn.v_proj.weight", "blocks/attn/wv", (k * hd, d), (d, k, hd), True),
      (layer + "self_attn.o_proj.weight", "blocks/attn/wo", (d, h * hd), (h, hd, d), True),
      (layer + "mlp.gate_proj.weight", "blocks/mlp/w_gate", (m, d), (d, m), True),
      (layer + "mlp.up_proj.weight", "blocks/mlp/w_up", (m, d), (d, m), True),
      (layer + "mlp.down_proj.weight", "blocks/mlp/w_down", (d, m), (m, d), True),
      (layer + "input_layernorm.weight", "blocks/attn_norm/scale", (d,), (d,), True),
      (layer + "post_attention_layernorm.weight", "blocks/mlp_norm/scale", (d,), (d,), True),
      ("model.norm.weight", "final_norm/scale", (d,), (d,), False),
  ]
  if not cfg.tie_embeddings:
    table.append(("lm_head.weight", "lm_head/kernel", (v, d), (d, v), False))
  return table


def _hf_names(cfg: LlamaConfig, name: str, per_layer: bool) -> list[str]:
  return [name.format(i=i) for i in range(cfg.num_layers)] if per_layer else [name]


def _get(tensors: dict, name: str, shape: tuple) -> np.ndarray:
  if name not in tensors:
    raise ValueError(f"HF checkpoint lacks tensor {name} (expected shape {shape})")
  if tuple(tensors[name].shape) != shape:
    raise ValueError(f"HF tensor {name} has shape {tuple(tensors[name].shape)} but the config needs {shape}")
  return tensors[name]


def _check_extras(cfg: LlamaConfig, tensors: dict) -> None:
  """Fails on tensors the conversion would drop, unless they are recomputed buffers."""
  known = {n for name, _, _, _, per_layer in _tensor_table(cfg) for n in _hf_names(cfg, name, per_layer)}
  extra = sorted(n for n in tensors.keys() - known if not n.endswith(HARMLESS_SUFFIXES))
  if cfg.tie_embeddings and "lm_head.weight" in extra:
    if not np.array_equal(tensors["lm_head.weight"], tensors.get("model.embed_tokens.weight")):
      raise ValueError("config.json ties embeddings but lm_head.weight differs from model.embed_tokens.weight")
    extra.remove("lm_head.weight")
  if extra:
    raise ValueError(f"HF checkpoint has {len(extra)} tensors this Llama does not use, e.g. {extra[:3]}")


def params_from_hf_state(cfg: LlamaConfig, tensors: dict[str, np.ndarray]) -> dict:
  """Our nested params dict from an HF state dict (numpy arrays, dtypes kept)."""
  _check_extras(cfg, tensors)
  params: dict = {}
  for name, path, hf_shape, our_shape, per_layer in _tensor_table(cfg):
    arrays = [_get(tensors, n, hf_shape) for n in _hf_names(cfg, name, per_layer)]
    if path == "embed/embedding":
      value = arrays[0]
    elif per_layer:
      value = np.stack([a.T.reshape(our_shape) for a in arrays])
    else:
      value = np.ascontiguousarray(arrays[0].T.reshape(our_shape))
    *parents, leaf = path.split("/")
    node = params
    for key in parents:
      node = node.setdefault(key, {})
    node[leaf] = value
  return params


def _flatten(tree: dict, prefix: str = "") -> dict[str, object]:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flatten(value, f"{prefix}{key}/"))
    else:
      out[f"{prefix}{key}"] = value
  return out


def params_to_hf_state(cfg: LlamaConfig, params: dict) -> dict[str, np.ndarray]:
  """An HF state dict (contiguous numpy arrays, HF's order) from our params; tied models omit lm_head."""
  flat = _flatten(params)
  table = _tensor_table(cfg)
  extra = sorted(flat.keys() - {path for _, path, _, _, _ in table})
  if extra:
    raise ValueError(f"params hold {extra[0]}, which this config's Llama does not have")
  state = {}
  for name, path, hf_shape, our_shape, per_layer in table:
    want = ((cfg.num_layers,) if per_layer else ()) + our_shape
    if path not in flat:
      raise ValueError(f"params lack {path} (expected shape {want})")
    value = np.asarray(flat[path])
    if value.shape != want:
      raise ValueError(f"parameter {path} has shape {value.shape} but the config needs {want}")
    if path == "embed/embedding":
      state[name] = np.ascontiguousarray(value)
      continue
    for i, n in enumerate(_hf_names(cfg, name, per_layer)):
      layer_value = value[i] if per_layer else value
      state[n] = np.ascontiguousarray(layer_value.reshape(hf_shape[::-1]).T)
  return state


# ---------------------------------------------------------------------------------------- files


def _read_tensors(path: pathlib.Path) -> dict[str, np.ndarray]:
  """Every tensor of a single-file or sharded checkpoint (single file first, as transformers does)."""
  if (path / SINGLE_FILE).exists():
    files = [SINGLE_FILE]
  elif (path / INDEX_FILE).exists():
    files = sorted(set(json.loads((path / INDEX_FILE).read_text())["weight_map"].values()))
  else:
    raise FileNotFoundError(f"{path} holds neither {SINGLE_FILE} nor {INDEX_FILE}")
  tensors = {}
  for file in tqdm(files, desc="reading shards", disable=len(files) < 2):
    # safe_open + get_tensor (not load_file/get_tensors) is what returns bfloat16 as ml_dtypes.
    with safe_open(path / file, framework="numpy") as f:
      for key in f.keys():
        tensors[key] = f.get_tensor(key)
  return tensors


def load_hf(path) -> tuple[LlamaConfig, dict]:
  """(cfg, params) from a ``save_pretrained`` directory; params are numpy arrays in the file's dtype."""
  path = pathlib.Path(path)
  if not (path / "config.json").exists():
    raise FileNotFoundError(f"{path} has no config.json; is it a save_pretrained directory?")
  cfg = config_from_hf(json.loads((path / "config.json").read_text()))
  params = params_from_hf_state(cfg, _read_tensors(path))
  return dataclasses.replace(cfg, param_dtype=str(params["embed"]["embedding"].dtype)), params


def _shards(state: dict[str, np.ndarray], max_bytes: int) -> list[dict[str, np.ndarray]]:
  """Greedy split in state order; a tensor larger than max_bytes gets a shard of its own."""
  shards, size = [{}], 0
  for name, value in state.items():
    if shards[-1] and size + value.nbytes > max_bytes:
      shards, size = shards + [{}], 0
    shards[-1][name] = value
    size += value.nbytes
  return shards


def save_hf(cfg: LlamaConfig, params: dict, path, max_shard_bytes: int = 5 * 10**9) -> pathlib.Path:
  """Writes config.json and safetensors (one file, or shards + index) as ``save_pretrained`` does."""
  path = pathlib.Path(path)
  path.mkdir(parents=True, exist_ok=True)
  stale = sorted(p.name for p in path.glob("model*.safetensors*"))
  if stale:  # transformers would pick up a stale model.safetensors before a new index: refuse.
    raise FileExistsError(f"{path} already holds {stale[0]}; write the HF checkpoint to a new directory")
  state = params_to_hf_state(cfg, params)
  hf_config = config_to_hf(cfg)
  hf_config["dtype"] = hf_config["torch_dtype"] = str(state["model.embed_tokens.weight"].dtype)
  (path / "config.json").write_text(json.dumps(hf_config, indent=2, sort_keys=True) + "\n")
  shards = _shards(state, max_shard_bytes)
  if len(shards) == 1:
    save_file(state, path / SINGLE_FILE, metadata={"format": "pt"})
    return path
  weight_map = {}
  for i, shard in enumerate(tqdm(shards, desc="writing shards")):
    file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
    save_file(shard, path / file, metadata={"format": "pt"})
    weight_map.update(dict.fromkeys(shard, file))
  index = {"metadata": {"total_parameters": sum(int(v.size) for v in state.values()),
                        "total_size": sum(int(v.nbytes) for v in state.values())},
           "weight_map": dict(sorted(weight_map.items()))}
  (path / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
  return path


# ---------------------------------------------------------------------------------------- checks


def verify(cfg: LlamaConfig, params: dict, hf_path, tokens) -> float:
  """max |logits - transformers' logits| on ``tokens`` (B,T), both in float32."""
  try:
    import torch
    import transformers
  except ImportError as e:
    raise ImportError("verify needs torch and transformers; install the test extra: pip install -e '.[test]'") from e
  import jax
  import jax.numpy as jnp

  from visprior_jax.models import functional

  tokens = np.asarray(tokens, dtype=np.int64)
  model = transformers.LlamaForCausalLM.from_pretrained(str(hf_path), dtype=torch.float32,
                                                        attn_implementation="eager")
  with torch.no_grad():
    want = model.eval()(torch.from_numpy(tokens)).logits.numpy()
  cfg32 = dataclasses.replace(cfg, dtype="float32", param_dtype="float32")
  params32 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
  with jax.default_matmul_precision("highest"):
    got = jax.jit(lambda p, t: functional.apply(cfg32, p, t))(params32, jnp.asarray(tokens, jnp.int32))
  return float(np.max(np.abs(np.asarray(got) - want)))


def _verify_or_fail(cfg: LlamaConfig, params: dict, hf_path) -> float:
  """verify() on 2 fixed random sequences of up to 64 tokens; fails above VERIFY_TOLERANCE."""
  tokens = np.random.default_rng(0).integers(0, cfg.vocab_size, (2, min(64, cfg.max_seq_len)))
  delta = verify(cfg, params, hf_path, tokens)
  if not delta <= VERIFY_TOLERANCE:
    raise ValueError(f"converted model disagrees with transformers: max |dlogits| = {delta:.3g} > {VERIFY_TOLERANCE}")
  return delta


def hf_to_native(hf_dir, out_dir, verify: bool = False) -> float | None:
  """HF checkpoint -> parameter export; returns max |dlogits| vs transformers when ``verify``."""
  cfg, params = load_hf(hf_dir)
  save_params(out_dir, cfg, params)
  return _verify_or_fail(cfg, params, hf_dir) if verify else None


def native_to_hf(native_dir, out_dir, verify: bool = False, max_shard_bytes: int = 5 * 10**9) -> float | None:
  """Parameter export (or training workdir) -> HF checkpoint; returns max |dlogits| when ``verify``."""
  cfg, params = load_params(native_dir)
  save_hf(cfg, params, out_dir, max_shard_bytes)
  return _verify_or_fail(cfg, params, out_dir) if verify else None
