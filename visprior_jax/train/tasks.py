"""What the one trainer trains: a language model (pre-training) or the multimodal model (alignment,
blind SFT, SFT). A task gives the parameter tree, its logical axes, a fresh init, the logits of a
batch, FLOPs for MFU, the checkpoint description and where its first parameters come from.

The multimodal parameters are one tree ``{"vision", "projector", "llm"}``. Which parts train is the
optimizer's ``optim.trainable`` regex (alignment: ``projector/.*``; SFT: ``(projector|llm)/.*``);
frozen parts get no optimizer state and are never changed. The vision encoder is always frozen:
its features enter the LLM behind ``stop_gradient``.
"""

from __future__ import annotations

import dataclasses

import jax

from visprior_jax.checkpoint.params import load_params, load_tree, save_params
from visprior_jax.models import flops as flops_lib
from visprior_jax.models import functional, pure, vit
from visprior_jax.models.llama import LlamaConfig
from visprior_jax.models.mllm import MLLMConfig, MultimodalLlama


@dataclasses.dataclass(frozen=True)
class LanguageModel:
  cfg: LlamaConfig

  @property
  def llm(self) -> LlamaConfig:
    return self.cfg

  def abstract_params(self):
    return functional.abstract_params(self.cfg)

  def logical_axes(self):
    return functional.logical_axes(self.cfg)

  def init_params(self, seed: int):
    return functional.init_params(self.cfg, seed)

  def logits(self, params, batch):
    return functional.apply(self.cfg, params, batch["inputs"], batch["positions"], batch["segment_ids"])

  def param_count(self) -> int:
    return flops_lib.param_count(self.cfg)

  def flops_per_token(self, seq_len: int) -> flops_lib.FlopsPerToken:
    return flops_lib.training_flops_per_token(self.cfg, seq_len)

  def description(self) -> dict:
    return {"model": self.cfg.to_dict()}

  def export(self, directory, params):
    save_params(directory, self.cfg, params)

  def initial_params(self, config, shardings):
    """Parameters named by ``config.init_from`` (None: initialise fresh)."""
    if not config.get("init_from"):
      return None
    return load_params(config.init_from, shardings, self.cfg)[1]


@dataclasses.dataclass(frozen=True)
class MultimodalModel:
  mllm: MLLMConfig
  vision: vit.ViTConfig
  feature_layer: int = -1

  @property
  def llm(self) -> LlamaConfig:
    return self.mllm.llm

  def abstract_params(self):
    return {"vision": vit.abstract_params(self.vision), **pure.abstract_params(MultimodalLlama, self.mllm)}

  def logical_axes(self):
    return {"vision": vit.logical_axes(self.vision), **pure.logical_axes(MultimodalLlama, self.mllm)}

  def init_params(self, seed: int):
    return {"vision": vit.init_params(self.vision, seed + 1), **pure.init_params(MultimodalLlama, self.mllm, seed)}

  def image_features(self, vision_params, images):
    """(B, I, H, W, 3) -> (B, I, tokens_per_image, vision width)."""
    b, i = images.shape[:2]
    feats = vit.features(self.vision, vision_params, images.reshape(b * i, *images.shape[2:]),
                         layer=self.feature_layer, num_tokens=self.mllm.tokens_per_image)
    return feats.reshape(b, i, *feats.shape[1:])

  def logits(self, params, batch):
    images = batch.get("images")
    feats = None if images is None else self.image_features(params["vision"], images)
    model = pure.bind(MultimodalLlama, self.mllm, {"projector": params["projector"], "llm": params["llm"]})
    return model(batch["inputs"], feats, batch["positions"], batch["segment_ids"])

  def param_count(self) -> int:
    return sum(x.size for x in jax.tree.leaves(self.abstract_params()))

  def flops_per_token(self, seq_len: int) -> flops_lib.FlopsPerToken:
    """The LLM's training FLOPs per sequence token (image slots included); the frozen encoder's
    forward pass and the projector are not counted, so MFU here is the LLM's."""
    return flops_lib.training_flops_per_token(self.llm, seq_len)

  def description(self) -> dict:
    mllm = {k: v for k, v in dataclasses.asdict(self.mllm).items() if k != "llm"}
    return {"model": self.llm.to_dict(), "vision": {**self.vision.to_dict(), "feature_layer": self.feature_layer},
            "mllm": mllm}

  def export(self, directory, params):
    save_params(directory, self.description(), params)

  def initial_params(self, config, shardings):
    """``init_from``: a previous multimodal stage (all parts). Otherwise the LLM from
    ``init_llm_from`` (a pre-training export or workdir), the encoder from ``init_vision_from``
    (big_vision ``.npz[:img]`` or an HF vision model dir; empty: random, for tests) and a fresh
    projector."""
    if config.get("init_from"):
      return load_tree(config.init_from, self.abstract_params(), shardings)
    if not config.get("init_llm_from"):
      return None
    params = jax.jit(lambda: self.init_params(config.seed), out_shardings=shardings)()
    params["llm"] = load_tree(config.init_llm_from, functional.abstract_params(self.llm), shardings["llm"])
    if config.get("init_vision_from"):
      params["vision"] = jax.device_put(_load_vision(config.init_vision_from, self.vision), shardings["vision"])
    return params


def _load_vision(path: str, cfg: vit.ViTConfig):
  if ".npz" in path:
    from visprior_jax.convert import big_vision
    return big_vision.load_vit(path, cfg)
  from visprior_jax.convert import hf_vision
  loaded_cfg, params = hf_vision.load_hf(path)
  if loaded_cfg != cfg:
    raise ValueError(f"{path}: the HF vision config {loaded_cfg} differs from vision config {cfg}")
  return params


def make_task(config):
  """The task a config describes: multimodal when it has a ``vision`` section."""
  from visprior_jax.train.validate import model_config
  llm = model_config(config)
  if "vision" not in config:
    return LanguageModel(llm)
  v = config.vision.to_dict()
  layer = v.pop("feature_layer", -1)
  mcfg = MLLMConfig(llm=llm, vision_dim=v["width"], **config.mllm.to_dict())
  return MultimodalModel(mcfg, vit.ViTConfig.from_dict(v), layer)
