"""A checkpoint loaded for evaluation: the task (language model or MLLM), sharded params, the
tokenizer, and where it came from (run, stage, step).

  model = load_eval_model("runs/3b/sft", mesh={"fsdp": -1}, tokenizer="")   # "" = the run's own
  model.generate([ids, ...], max_new_tokens=16, images=(B, I, H, W, 3) or None)

The checkpoint is an export (``model.json`` + ``params/``), a training workdir (its latest step)
or one step folder; a training checkpoint also gives the step and the training config (stage,
tokenizer, image preprocessing). Params are placed with the training rules on the eval mesh, so
a 13B model is evaluated sharded exactly as it trained.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import jax
import numpy as np
from etils import epath

from visprior_jax.checkpoint.params import absolute, load_tree, locate_params
from visprior_jax.data.tokenizers import Tokenizer, load_tokenizer
from visprior_jax.eval import generate as generate_lib
from visprior_jax.models import vit
from visprior_jax.models.llama import LlamaConfig
from visprior_jax.models.mllm import MLLMConfig
from visprior_jax.parallel.mesh import make_mesh
from visprior_jax.parallel.rules import Rules, param_shardings
from visprior_jax.train.tasks import LanguageModel, MultimodalModel


@dataclasses.dataclass
class EvalModel:
  task: Any                 # LanguageModel | MultimodalModel
  params: Any
  rules: Rules
  tokenizer: Tokenizer
  path: str
  run: str
  stage: str
  step: int | None
  train_config: dict        # the training run's config ({} for an export)

  @property
  def multimodal(self) -> bool:
    return isinstance(self.task, MultimodalModel)

  @property
  def llm(self) -> LlamaConfig:
    return self.task.llm

  @property
  def llm_params(self):
    return self.params["llm"] if self.multimodal else self.params

  @property
  def image_preprocessing(self) -> tuple[str, int]:
    """(family, resolution) the run's images were preprocessed with."""
    data = self.train_config.get("data", {})
    res = self.task.vision.image_size
    return data.get("family", "clip"), int(data.get("resolution", res) or res)

  @functools.cached_property
  def _features(self):
    return jax.jit(self.task.image_features)

  def generate(self, prompts, max_new_tokens: int, *, images=None, stop_tokens=None, temperature: float = 0.0,
               seed: int = 42, pad_multiple: int = 1, batch_size: int = 0):
    """Generated ids per prompt; ``images`` (B, I, H, W, 3) float32 preprocessed, or None. ``batch_size``:
    greedy decoding fills fewer prompts up to this many with copies of the first (prompt and images), so a
    benchmark's short last batch runs the programs its full batches compiled; the copies stop when the
    first row does and their outputs are dropped (greedy rows are decoded independently; sampled ones are
    not filled: their random draws depend on the batch)."""
    n = len(prompts)
    if temperature == 0 and n < batch_size:
      prompts = list(prompts) + [prompts[0]] * (batch_size - n)
      if images is not None:
        images = np.concatenate([images, np.repeat(images[:1], batch_size - n, axis=0)])
    stop = stop_tokens if stop_tokens is not None else [t for t in (self.tokenizer.eos_id,) if t is not None]
    if self.multimodal:
      cfg, params = self.task.mllm, {"projector": self.params["projector"], "llm": self.params["llm"]}
      feats = None
      if images is not None and images.shape[1] > 0:
        with jax.set_mesh(self.rules.mesh):
          feats = np.asarray(self._features(self.params["vision"], np.asarray(images, np.float32)))
    else:
      cfg, params, feats = self.task.cfg, self.params, None
    return generate_lib.generate(cfg, params, prompts, max_new_tokens, stop_tokens=stop, temperature=temperature,
                                 seed=seed, pad_id=self.tokenizer.pad_id, image_features=feats, rules=self.rules,
                                 pad_multiple=pad_multiple)[:n]


def checkpoint_meta(path) -> tuple[int | None, dict]:
  """(step, training config) of a training workdir/step; (None, {}) for an export."""
  item, _ = locate_params(path)
  meta = item.parent / "meta" / "metadata"
  if not meta.exists():
    return None, {}
  meta = json.loads(meta.read_text())
  return meta.get("step"), meta.get("config", {})


def task_from_description(description: dict):
  if "contrastive" in description or description.get("stage") == "encoder":
    raise ValueError("this checkpoint is an image-text encoder (the contrastive encoder stage), not a language "
                     "model or MLLM; evaluate the MLLM built on it (its align/sft run: config.init_vision_from)")
  llm = LlamaConfig.from_dict(description.get("model", description))
  if "vision" not in description:
    return LanguageModel(llm)
  v = dict(description["vision"])
  layer = v.pop("feature_layer", -1)
  mllm = MLLMConfig(llm=llm, **{"vision_dim": v["width"], **description["mllm"]})
  return MultimodalModel(mllm, vit.ViTConfig.from_dict(v), layer)


def _run_name(path: epath.Path) -> str:
  parts = path.parts
  if "checkpoints" in parts:
    return parts[parts.index("checkpoints") - 1]
  return path.name


def load_eval_model(path, *, mesh: dict | None = None, rules: dict | None = None, tokenizer: str = "",
                    run: str = "", language_only: bool = False, dtype: str = "") -> EvalModel:
  """Loads ``path`` for evaluation (see the module docstring). ``language_only``: load just the LLM
  of a multimodal checkpoint (for the language evals); ``dtype`` overrides the compute dtype."""
  path = absolute(path)
  _, description = locate_params(path)
  step, train_config = checkpoint_meta(path)
  if dtype:
    description = dict(description, model={**description.get("model", description), "dtype": dtype})
  task = task_from_description(description)
  mesh_ = make_mesh(mesh or {"data": -1})
  rules_ = Rules(mesh_, rules or {})
  abstract, logical = task.abstract_params(), task.logical_axes()
  if language_only and isinstance(task, MultimodalModel):
    full = load_tree(path, abstract, param_shardings(rules_, abstract, logical))
    task, params = LanguageModel(task.llm), full["llm"]
  else:
    params = load_tree(path, abstract, param_shardings(rules_, abstract, logical))
  tok_spec = tokenizer or train_config.get("data", {}).get("tokenizer", "")
  if not tok_spec:
    raise ValueError(f"{path}: the checkpoint does not name its tokenizer; set --config.tokenizer")
  return EvalModel(task=task, params=params, rules=rules_, tokenizer=load_tokenizer(tok_spec), path=str(path),
                   run=run or _run_name(path), stage=train_config.get("stage", "export" if step is None else "pretrain"),
                   step=step, train_config=train_config)
