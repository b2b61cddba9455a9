"""What the one trainer trains: a language model (pre-training), the multimodal model (alignment,
blind SFT, SFT) or the contrastive image-text encoder (the encoder stage). A task gives the
parameter tree, its logical axes, a fresh init, the logits of a batch (or its own ``loss``, see
step.py), FLOPs for MFU, the checkpoint description and where its first parameters come from.

The multimodal parameters are one tree ``{"vision", "projector", "llm"}``. Which parts train is the
optimizer's ``optim.trainable`` regex (alignment: ``projector/.*``; SFT: ``(projector|llm)/.*``);
frozen parts get no optimizer state and are never changed. The vision encoder is always frozen:
its features enter the LLM behind ``stop_gradient``. It comes from ``init_vision_from``: a
big_vision ``.npz``, an HF vision model, or a run of this project that holds a ViT under
``vision`` (the encoder stage's export or workdir, or another multimodal run); see ``_load_vision``.

The encoder stage (:class:`ContrastiveEncoder`, chosen by ``config.stage == "encoder"``) trains a
SigLIP-style two-tower model, parameters ``{"vision", "text", "vision_proj", "text_proj", "t",
"b"}``: ``vision`` a ViT (models/vit.py, big_vision names, so the tree loads as an MLLM's encoder
unchanged), ``text`` a small Llama used as a causal encoder (``config.model``), linear projections
of both pooled outputs to ``contrastive.embed_dim``, and SigLIP's scalars. The stage is keyed on
``stage`` rather than on a separate text-tower section because the trainer and its validation
already treat ``config.model`` as the Llama the run trains (heads vs tensor size, seq_len vs
max_seq_len, tokenizer vs vocab): making the text tower ``config.model`` reuses all of that.
"""

from __future__ import annotations

import dataclasses
import logging
import math

import jax
import jax.numpy as jnp

from visprior_jax.checkpoint.params import (CheckpointMismatch, check_shapes, load_params, load_tree, locate_params,
                                            restore_target, save_params)
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


POOLINGS = ("last", "mean")


@dataclasses.dataclass(frozen=True)
class ContrastiveEncoder:
  """SigLIP-style image-text training (the encoder stage; module docstring for the tree).

  For a batch of n pairs with L2-normalised image and text embeddings x_i, y_j::

    L = -(1/n) * sum_i sum_j log sigmoid(z_ij * (t * x_i . y_j + b)),   z_ij = 1 if i == j else -1

  with t = exp(t') and b learned (big_vision's init: t' = log 10, b = -10, so the n^2 - n negatives
  start near zero loss and the n positives dominate). Pairs whose row is empty (an image that
  failed to decode: ``text_mask`` all 0) drop out of both sums and of n.

  Image tower: ``vision`` (a ViT; ``pool_type`` must pool: map/gap/tok) -> ``vision_proj``. Text
  tower: ``text`` (a Llama's blocks and final norm, no unembedding; use ``tie_embeddings=True`` so
  it has no unused ``lm_head``) over right-padded tokens -> pooled -> ``text_proj``. ``pooling``:
  ``last`` (the last real token, which under causal attention has seen the whole caption; the
  data appends eos there) or ``mean`` (over real tokens). Padding never reaches a real token:
  right-padding plus causal attention, and ``text_mask`` is also the segment id.

  MFU counts both towers' matmuls (``flops_per_token``), not the n x n similarity (2 n e per pair).
  """
  vision: vit.ViTConfig
  text: LlamaConfig
  embed_dim: int = 64
  temperature_init: float = 10.0
  bias_init: float = -10.0
  pooling: str = "last"

  def __post_init__(self):
    if self.vision.pool_type == "none":
      raise ValueError("the encoder stage needs a pooled image embedding: vision.pool_type map, gap or tok")
    if self.vision.num_classes:
      raise ValueError("vision.num_classes must be 0 in the encoder stage: vision_proj is the image projection")
    if self.pooling not in POOLINGS:
      raise ValueError(f"contrastive.pooling={self.pooling!r} is not one of {POOLINGS}")

  @property
  def llm(self) -> LlamaConfig:
    """The Llama the trainer validates and checks the tokenizer against: the text tower."""
    return self.text

  def _proj(self, key, din: int):
    kernel = jax.random.normal(key, (din, self.embed_dim), jnp.float32) * din ** -0.5
    return {"kernel": kernel, "bias": jnp.zeros((self.embed_dim,), jnp.float32)}

  def init_params(self, seed: int):
    kv, kt = jax.random.split(jax.random.key(seed + 2))
    return {"vision": vit.init_params(self.vision, seed + 1), "text": functional.init_params(self.text, seed),
            "vision_proj": self._proj(kv, self.vision.width), "text_proj": self._proj(kt, self.text.embed_dim),
            "t": jnp.full((1,), math.log(self.temperature_init), jnp.float32),
            "b": jnp.full((1,), self.bias_init, jnp.float32)}

  def abstract_params(self):
    return jax.eval_shape(lambda: self.init_params(0))

  def logical_axes(self):
    def proj(axis):
      return {"kernel": (axis, None), "bias": (None,)}
    return {"vision": vit.logical_axes(self.vision), "text": functional.logical_axes(self.text),
            "vision_proj": proj("vision_embed"), "text_proj": proj("embed"), "t": (None,), "b": (None,)}

  @staticmethod
  def _normalise(z, proj):
    z = z.astype(jnp.float32) @ proj["kernel"] + proj["bias"]
    return z * jax.lax.rsqrt(jnp.sum(z * z, axis=-1, keepdims=True) + 1e-12)

  def image_embeddings(self, params, images):
    """(n, H, W, 3) -> (n, embed_dim), unit norm."""
    pooled = vit.apply(self.vision, params["vision"], images)["pooled"]
    return self._normalise(pooled, params["vision_proj"])

  def text_embeddings(self, params, text, text_mask):
    """(n, T) ids and mask -> (n, embed_dim), unit norm."""
    model = functional.bind(self.text, params["text"])
    mask = text_mask.astype(jnp.int32)
    positions = jnp.broadcast_to(jnp.arange(text.shape[1]), text.shape)
    # The decoder without its unembedding (Llama exposes no public hidden-state call).
    hidden = model.final_norm(model._run_blocks(model.embed_tokens(text), positions, mask)).astype(jnp.float32)
    lengths = jnp.sum(mask, axis=1)
    if self.pooling == "last":
      pooled = jnp.take_along_axis(hidden, jnp.maximum(lengths - 1, 0)[:, None, None], axis=1)[:, 0]
    else:
      pooled = jnp.sum(hidden * mask[..., None], axis=1) / jnp.maximum(lengths, 1)[:, None]
    return self._normalise(pooled, params["text_proj"])

  def pair_logits(self, params, batch):
    """(n, n) float32: ``t * x_i . y_j + b`` for image i and text j."""
    x = self.image_embeddings(params, batch["images"])
    y = self.text_embeddings(params, batch["text"], batch["text_mask"])
    return jnp.exp(params["t"][0]) * (x @ y.T) + params["b"][0]

  def loss(self, params, batch):
    """(summed sigmoid loss, aux) for step.py. aux: ``ce_sum`` (the sum; it is a binary
    cross-entropy over all pairs), ``tokens`` (n, the valid pairs) and per-pair sums logged as
    means: ``i2t_accuracy`` / ``t2i_accuracy`` (the top-scoring text for an image, or image for a
    text, carries the same caption as the true partner: duplicate captions count as hits),
    ``temperature`` and ``bias``."""
    logits = self.pair_logits(params, batch)
    n = logits.shape[0]
    valid = (jnp.sum(batch["text_mask"], axis=1) > 0).astype(jnp.float32)
    pairs = valid[:, None] * valid[None, :]
    labels = 2.0 * jnp.eye(n, dtype=jnp.float32) - 1.0
    total = jnp.sum(-jax.nn.log_sigmoid(labels * logits) * pairs)
    count = jnp.sum(valid)
    text = batch["text"]
    same = jnp.all(text[:, None, :] == text[None, :, :], axis=-1)
    scores = jnp.where(pairs > 0, logits, -jnp.inf)
    rows = jnp.arange(n)
    i2t = same[rows, jnp.argmax(scores, axis=1)].astype(jnp.float32)
    t2i = same[jnp.argmax(scores, axis=0), rows].astype(jnp.float32)
    aux = dict(ce_sum=total, tokens=count, i2t_accuracy=jnp.sum(valid * i2t), t2i_accuracy=jnp.sum(valid * t2i),
               temperature=jnp.exp(params["t"][0]) * count, bias=params["b"][0] * count)
    return total, aux

  def param_count(self) -> int:
    return sum(x.size for x in jax.tree.leaves(self.abstract_params()))

  def flops_per_token(self, seq_len: int) -> flops_lib.FlopsPerToken:
    """Training FLOPs per pair / ``seq_len``, so that the trainer's tokens/s (batch x seq_len per
    step) times this is pair FLOP/s. Approximate: both towers' matmuls incl. the projections, the
    ViT's attention in full, the text tower's causal attention at half the map (full beside it)."""
    c, t = self.vision, self.text
    n, w = c.grid ** 2 + c.num_prefix, c.width
    mlp = (3 if c.mlp_type == "swiglu" else 2) * w * c.mlp_dim
    image = 2 * c.grid ** 2 * c.patch_size ** 2 * 3 * w + c.depth * (2 * n * (4 * w * w + mlp) + 4 * n * n * w)
    if c.pool_type == "map":   # one probe query: q/out on it, k/v over n tokens, its MLP
      image += 2 * (2 * w * w + 2 * n * w * w) + 4 * n * w + 4 * w * c.mlp_dim
    image += 2 * w * self.embed_dim
    d, hd = t.embed_dim, t.head_dim
    dense = 2 * seq_len * t.num_layers * (2 * d * hd * (t.num_heads + t.num_kv_heads) + 3 * d * t.mlp_dim)
    attn = t.num_layers * 4 * seq_len * seq_len * t.num_heads * hd
    text = dense + 2 * d * self.embed_dim
    return flops_lib.FlopsPerToken(causal=3 * (image + text + attn / 2) / seq_len,
                                   full_attention=3 * (image + text + attn) / seq_len)

  def description(self) -> dict:
    extra = {k: getattr(self, k) for k in ("embed_dim", "temperature_init", "bias_init", "pooling")}
    return {"stage": "encoder", "model": self.text.to_dict(), "vision": self.vision.to_dict(), "contrastive": extra}

  def export(self, directory, params):
    """``model.json`` (this description) + ``params/`` (the whole tree): ``init_vision_from`` takes
    the ``vision`` subtree from it, or from the run's workdir."""
    save_params(directory, self.description(), params)

  def initial_params(self, config, shardings):
    """``init_from``: a previous encoder run (everything). ``init_vision_from``: the image tower
    only (any source ``_load_vision`` reads), the rest fresh. Neither: None (fresh)."""
    if config.get("init_from"):
      return load_tree(config.init_from, self.abstract_params(), shardings)
    if not config.get("init_vision_from"):
      return None
    params = jax.jit(lambda: self.init_params(config.seed), out_shardings=shardings)()
    params["vision"] = jax.device_put(_load_vision(config.init_vision_from, self.vision), shardings["vision"])
    return params


def _load_vision(path: str, cfg: vit.ViTConfig):
  """The ViT params for ``cfg`` from a big_vision ``.npz[:img]``, a run of this project (an export,
  workdir or step dir whose description has ``vision``: the encoder stage or a multimodal run) or
  an HF vision model directory (anything else)."""
  if ".npz" in path:
    from visprior_jax.convert import big_vision
    return big_vision.load_vit(path, cfg)
  try:
    item, description = locate_params(path)
  except FileNotFoundError:
    item = None
  if item is not None:
    return _load_native_vision(path, item, description, cfg)
  from visprior_jax.convert import hf_vision
  loaded_cfg, params = hf_vision.load_hf(path)
  if loaded_cfg != cfg:
    raise ValueError(f"{path}: the HF vision config {loaded_cfg} differs from vision config {cfg}")
  return params


# How a ViT is pooled or headed, and its compute dtype, belong to the run using it: the MLLM reads
# patch features and never the pooling head. Every other field must match the checkpoint's.
_VISION_FREE_FIELDS = ("pool_type", "num_classes", "dtype")
_VISION_HEADS = ("MAPHead_0", "head")


def _load_native_vision(path: str, item, description: dict, cfg: vit.ViTConfig):
  """The ``vision`` subtree of a native run, restored alone (an MLLM's LLM is never read).

  Pooling heads the checkpoint has and ``cfg`` lacks are dropped; ones ``cfg`` has and the
  checkpoint lacks start fresh (the MLLM does not use them)."""
  import orbax.checkpoint as ocp
  if "vision" not in description:
    raise CheckpointMismatch(f"{path}: this checkpoint has no vision tower; init_vision_from takes the encoder "
                             f"stage's export or workdir, a multimodal run, a big_vision .npz or an HF vision model")
  stored_cfg = vit.ViTConfig.from_dict({k: v for k, v in description["vision"].items() if k != "feature_layer"})
  diffs = [f"{f.name}={getattr(stored_cfg, f.name)!r} there, {getattr(cfg, f.name)!r} in config.vision"
           for f in dataclasses.fields(cfg)
           if f.name not in _VISION_FREE_FIELDS and getattr(stored_cfg, f.name) != getattr(cfg, f.name)]
  if diffs:
    raise CheckpointMismatch(f"{path}: its vision tower differs from config.vision: {'; '.join(diffs)}")
  want, stored = vit.abstract_params(cfg), vit.abstract_params(stored_cfg)
  keys = [k for k in want if k in stored]
  with ocp.StandardCheckpointer() as ckptr:
    on_disk = ckptr.metadata(item).item_metadata.tree
  if "vision" not in on_disk:
    raise CheckpointMismatch(f"{item}: the description names a vision tower but no parameter is under vision/")
  check_shapes({k: want[k] for k in keys}, {k: on_disk["vision"].get(k, {}) for k in keys}, f"{item}/vision")
  target = {"vision": restore_target({k: want[k] for k in keys}, None)}
  with ocp.PyTreeCheckpointer() as ckptr:
    params = ckptr.restore(item, args=ocp.args.PyTreeRestore(
        item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target), partial_restore=True))["vision"]
  fresh = [k for k in want if k not in stored]
  if fresh:
    logging.warning("%s: %s not in the checkpoint; initialised fresh (unused by MLLM features)", path, fresh)
    init = jax.jit(lambda: vit.init_params(cfg, 0))()
    params.update({k: init[k] for k in fresh})
  return params


def make_task(config):
  """The task a config describes: the contrastive encoder when ``stage == "encoder"``
  (``model`` is its text tower, ``vision`` its image tower, ``contrastive`` the rest), else
  multimodal when it has a ``vision`` section, else the language model."""
  from visprior_jax.train.validate import ConfigError, model_config
  llm = model_config(config)
  if config.get("stage") == "encoder":
    v = config.vision.to_dict()
    v.pop("feature_layer", None)
    vision, extra, data = vit.ViTConfig.from_dict(v), config.get("contrastive"), config.get("data")
    res = data.get("resolution") if data is not None else None
    if res and int(res) != vision.image_size:
      raise ConfigError(f"data.resolution={res} but vision.image_size={vision.image_size}: the image tower's "
                        f"position embeddings are sized for vision.image_size; set both the same")
    return ContrastiveEncoder(vision, llm, **(extra.to_dict() if extra else {}))
  if "vision" not in config:
    return LanguageModel(llm)
  v = config.vision.to_dict()
  layer = v.pop("feature_layer", -1)
  mcfg = MLLMConfig(llm=llm, vision_dim=v["width"], **config.mllm.to_dict())
  return MultimodalModel(mcfg, vit.ViTConfig.from_dict(v), layer)
