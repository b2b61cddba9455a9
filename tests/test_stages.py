"""pretrain -> align -> blind SFT -> SFT, chained by workdir, with tiny sizes on CPU.

Images are solid colour squares; captions and instructions name the colour. Each stage must lower
its loss, train exactly the parts its config names, keep the rest bit-identical, and hold no
optimizer state for frozen parameters.
"""

import json

import jax
import numpy as np
import pytest
from conftest import REPO

from visprior_jax.checkpoint.params import load_tree
from visprior_jax.train.tasks import make_task
from visprior_jax.train.trainer import train

COLORS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 230), "yellow": (230, 220, 40)}


def _load(name, arg):
  import importlib.util
  spec = importlib.util.spec_from_file_location(name, f"{REPO}/configs/{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  from PIL import Image
  root = tmp_path_factory.mktemp("mm")
  (root / "img").mkdir()
  captions, instructions = [], []
  for i, (name, rgb) in enumerate(COLORS.items()):
    for j in range(4):
      path = f"img/{name}{j}.png"
      Image.new("RGB", (40 + 4 * j, 36), rgb).save(root / path)
      captions.append({"id": f"c{i}{j}", "image": path, "caption": f"a {name} square"})
      instructions.append({"id": f"q{i}{j}", "image": path, "conversations": [
          {"from": "human", "value": "<image>\nWhat colour is it?"}, {"from": "gpt", "value": name}]})
  instructions.append({"id": "text-only", "conversations": [
      {"from": "human", "value": "Say hi."}, {"from": "gpt", "value": "hi"}]})
  (root / "captions.jsonl").write_text("\n".join(json.dumps(c) for c in captions))
  (root / "instructions.json").write_text(json.dumps(instructions))
  return root


def _mm_config(name, arg, data, workdir_key, **init):
  c = _load(name, arg)
  c.data.tokenizer = "bytes"
  kind, path = ("captions", "captions.jsonl") if name == "align" else ("instructions", "instructions.json")
  c.data.sources = [{"kind": kind, "paths": [str(data / path)], "image_root": str(data)}]
  c.train.update(steps=24, batch_size=8, seq_len=64, log_every=4)
  c.checkpoint.update(every=12, export=False)
  c.metrics.tensorboard = False
  c.mesh.update(data=2, fsdp=-1)
  for k, v in init.items():
    c[k] = v
  return c


def _params(workdir, config):
  return load_tree(workdir, make_task(config).abstract_params())


def _same(a, b):
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _falls(result):
  losses = [result.losses[s] for s in sorted(result.losses)]
  return np.mean(losses[-4:]) < np.mean(losses[:4])


def test_chained_stages(tmp_path, data):
  pre = _load("pretrain", "llama3_tiny")
  pre.train.update(steps=10, batch_size=8, seq_len=64)
  pre.mesh.update(data=2, fsdp=-1)
  pre.checkpoint.export = True
  pre.metrics.update(tensorboard=False, mfu=False)
  train(pre, tmp_path / "pretrain")

  align = _mm_config("align", "tiny", data, "align", init_llm_from=str(tmp_path / "pretrain"))
  result = train(align, tmp_path / "align")
  assert _falls(result), result.losses
  aligned = _params(tmp_path / "align", align)
  start = jax.jit(lambda: make_task(align).init_params(align.seed))()
  pretrained = load_tree(tmp_path / "pretrain" / "export", make_task(pre).abstract_params())
  assert _same(aligned["llm"], pretrained)               # frozen: bit-identical to the pre-trained LLM
  assert _same(aligned["vision"], start["vision"])        # frozen encoder
  assert not _same(aligned["projector"], start["projector"])
  # No optimizer state for frozen parameters: Adam moments exist for the projector only.
  from visprior_jax.train.setup import build_step
  setup = build_step(align)
  moments = [x for x in jax.tree.leaves(setup.abstract_opt_state) if getattr(x, "ndim", 0) > 0]
  n_projector = len(jax.tree.leaves(start["projector"]))
  assert len(moments) == 2 * n_projector
  # Every part is sharded by the same rules table (here data=2 x fsdp=4 on 8 devices).
  P = jax.sharding.PartitionSpec
  mlp = setup.param_shardings["vision"]["Transformer"]["encoderblock_0"]["MlpBlock_0"]["Dense_0"]["kernel"]
  assert mlp.spec == P("fsdp", None) and mlp.mesh.shape["fsdp"] == 4
  assert setup.param_shardings["projector"]["fc2"]["kernel"].spec == P(None, "fsdp")
  assert setup.param_shardings["llm"]["blocks"]["mlp"]["w_up"].spec == P(None, "fsdp", None)

  blind = _mm_config("sft", "tiny,blind", data, "blind", init_from=str(tmp_path / "align"))
  result = train(blind, tmp_path / "blind")
  assert _falls(result), result.losses
  after_blind = _params(tmp_path / "blind", blind)
  assert _same(after_blind["vision"], aligned["vision"])
  assert not _same(after_blind["llm"], aligned["llm"])

  sft = _mm_config("sft", "tiny", data, "sft", init_from=str(tmp_path / "blind"))
  result = train(sft, tmp_path / "sft")
  assert _falls(result), result.losses
  final = _params(tmp_path / "sft", sft)
  assert _same(final["vision"], aligned["vision"])
  assert not _same(final["projector"], after_blind["projector"])
  # A multimodal stage resumes exactly too (masked optimizer state, image batches).
  import shutil
  shutil.copytree(tmp_path / "sft", tmp_path / "sft_resumed")
  shutil.rmtree(tmp_path / "sft_resumed" / "checkpoints" / "24")
  resumed = train(sft, tmp_path / "sft_resumed")
  assert {s: resumed.losses[s] for s in range(13, 25)} == {s: result.losses[s] for s in range(13, 25)}


def test_stage_configs_carry_the_paper_hyperparameters():
  align, sft, blind = _load("align", "llama3_7b"), _load("sft", "llama3_7b"), _load("sft", "llama3_7b,blind")
  assert (align.optim.lr, align.optim.warmup_ratio, align.optim.schedule, align.train.batch_size) == (
      1e-3, 0.06, "cosine", 512)
  assert align.optim.trainable == "projector/.*"
  assert (sft.optim.lr, sft.optim.warmup_ratio, sft.optim.schedule, sft.train.batch_size) == (4e-5, 0.03, "cosine", 512)
  assert sft.optim.trainable == "(projector|llm)/.*" and not sft.data.blind and blind.data.blind
  assert align.mllm.tokens_per_image == 576 and align.mllm.projector == "mlp2x_gelu"
  assert (align.vision.width, align.vision.patch_size, align.vision.feature_layer) == (768, 16, -2)
  assert align.train.epochs == sft.train.epochs == 1.0


def test_epochs_set_the_number_of_steps(tmp_path, data):
  c = _mm_config("align", "tiny", data, "align")
  c.train.update(epochs=2.0, batch_size=8)   # 16 captions -> 2 steps per epoch
  assert train(c, tmp_path / "run").step == 4
