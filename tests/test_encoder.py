"""The encoder stage: SigLIP's sigmoid loss through the one trainer, on a tiny colour world.

Images are solid colour squares (several sizes per colour); the caption names the colour. The
loss must equal a direct NumPy computation of SigLIP's formula, reach both towers and the two
scalars, fall in training, retrieve captions well above chance, resume exactly, and leave an image
tower that an alignment run loads through ``init_vision_from``.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO, subprocess_env

from visprior_jax.checkpoint.params import CheckpointMismatch, load_tree, save_params
from visprior_jax.data.contrastive import ContrastiveSource, make_contrastive_source
from visprior_jax.data.multimodal import preprocess
from visprior_jax.train.step import summed_loss
from visprior_jax.train.tasks import ContrastiveEncoder, _load_vision, make_task
from visprior_jax.train.trainer import train
from visprior_jax.train.validate import ConfigError

COLORS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 230), "yellow": (230, 220, 40),
          "purple": (140, 40, 180), "white": (245, 245, 245)}
STEPS = 40


def _load(name, arg):
  import importlib.util
  spec = importlib.util.spec_from_file_location(f"{name}_config", f"{REPO}/configs/{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg is not None else module


@pytest.fixture(scope="module")
def world(tmp_path_factory):
  from PIL import Image
  root = tmp_path_factory.mktemp("colours")
  (root / "img").mkdir()
  rows = []
  for name, rgb in COLORS.items():
    for j in range(4):
      path = f"img/{name}{j}.png"
      Image.new("RGB", (48 + 8 * j, 40 + 4 * j), rgb).save(root / path)
      rows.append({"id": f"{name}{j}", "image": path, "caption": f"a {name} image"})
  (root / "captions.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
  return root


def _config(world, **train):
  c = _load("encoder", "tiny")
  c.data.update(captions=str(world / "captions.jsonl"), image_root=str(world))
  c.train.update(steps=STEPS, batch_size=32, log_every=10, **train)
  c.optim.lr = 3e-3
  c.checkpoint.update(every=20)
  c.metrics.update(tensorboard=False, mfu=False)
  c.mesh.update(data=2, fsdp=-1)
  return c


def _numpy_sigmoid_loss(x, y, t_prime, b, valid):
  """SigLIP: L = -(1/n) sum_i sum_j log sigmoid(z_ij (t x_i.y_j + b)), z = +1 on i == j, else -1."""
  x, y = np.asarray(x, np.float64)[valid], np.asarray(y, np.float64)[valid]
  logits = np.exp(t_prime) * x @ y.T + b
  z = 2 * np.eye(len(x)) - 1
  return np.sum(np.logaddexp(0.0, -z * logits)) / len(x)   # -log sigmoid(u) = log(1 + e^-u)


def _batch(task, n=6, seed=0):
  rng = np.random.default_rng(seed)
  T = 16
  lengths = rng.integers(3, T + 1, n)
  text = rng.integers(0, 256, (n, T)).astype(np.int32)
  mask = (np.arange(T)[None] < lengths[:, None]).astype(np.int32)
  text = np.where(mask > 0, text, 258).astype(np.int32)
  images = rng.uniform(-1, 1, (n, 64, 64, 3)).astype(np.float32)
  return dict(images=images, text=text, text_mask=mask)


def _random_params(task, seed=0):
  """Parameters of the right shapes without compiling an initialiser (RNG compiles slowly on CPU)."""
  rng = np.random.default_rng(seed)
  def leaf(path, a):
    name = jax.tree_util.keystr(path)
    return (np.ones if "scale" in name else lambda s: rng.normal(0, 0.1, s))(a.shape).astype(np.float32)
  return jax.tree_util.tree_map_with_path(leaf, task.abstract_params())


def test_sigmoid_loss_equals_numpy_and_reaches_every_part(world):
  task = make_task(_config(world))
  assert isinstance(task, ContrastiveEncoder)
  # t' = 1.3, b = -2.5: off SigLIP's init, so the check covers both.
  params = dict(_random_params(task), t=np.array([1.3], np.float32), b=np.array([-2.5], np.float32))
  batch = _batch(task)
  batch["text_mask"][4] = 0       # an empty row (an undecodable image) is left out of both sums
  repadded = np.where(batch["text_mask"] > 0, batch["text"], 7)   # other pad ids

  @jax.jit
  def run(params, batch, repadded):
    x = task.image_embeddings(params, batch["images"])
    y = task.text_embeddings(params, batch["text"], batch["text_mask"])
    grads = jax.grad(lambda p: summed_loss(task, p, batch, z_loss=0.0)[0])(params)   # the trainer's entry
    return task.loss(params, batch), x, y, task.text_embeddings(params, repadded, batch["text_mask"]), grads

  (total, aux), x, y, y_repadded, grads = run(params, batch, repadded)
  valid = batch["text_mask"].sum(1) > 0
  expected = _numpy_sigmoid_loss(x, y, 1.3, -2.5, valid)
  assert float(aux["tokens"]) == 5
  np.testing.assert_allclose(float(total) / 5, expected, rtol=1e-5)
  np.testing.assert_allclose(float(aux["temperature"]) / 5, np.exp(1.3), rtol=1e-6)
  np.testing.assert_allclose(float(aux["bias"]) / 5, -2.5, rtol=1e-6)
  # Last-token pooling never reads padding: the valid rows' text embeddings ignore the pad ids.
  np.testing.assert_array_equal(np.asarray(y)[valid], np.asarray(y_repadded)[valid])

  norms = {k: float(jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree.leaves(v)))) for k, v in grads.items()}
  assert set(norms) == {"vision", "text", "vision_proj", "text_proj", "t", "b"}
  assert all(v > 0 for v in norms.values()), norms
  for part, leaf in (("vision", ("Transformer", "encoderblock_0", "MlpBlock_0", "Dense_1", "kernel")),
                     ("vision", ("MAPHead_0", "probe")), ("vision", ("embedding", "kernel")),
                     ("text", ("embed", "embedding")), ("text", ("blocks", "attn", "wq"))):
    g = grads[part]
    for k in leaf:
      g = g[k]
    assert float(jnp.abs(g).max()) > 0, (part, leaf)


def test_source_batches_are_deterministic_and_sharded(world):
  c = _config(world)
  src = make_contrastive_source(c.data, 8, 16, seed=3)
  assert isinstance(src, ContrastiveSource) and src.vocab_size == 259 and len(src.samples) == 24
  b = src.batch(5)
  assert b["images"].shape == (8, 64, 64, 3) and b["images"].dtype == np.float32
  assert b["text"].shape == b["text_mask"].shape == (8, 16) and b["text"].dtype == np.int32
  assert -1.0 <= b["images"].min() and b["images"].max() <= 1.0
  lengths = b["text_mask"].sum(1)
  assert np.all(b["text"][np.arange(8), lengths - 1] == 257)            # eos last; the rest is padding
  assert np.all(b["text"][b["text_mask"] == 0] == 258)
  again = make_contrastive_source(c.data, 8, 16, seed=3)
  halves = [again.batch(5, p, 2) for p in range(2)]
  for k in b:
    np.testing.assert_array_equal(b[k], np.concatenate([h[k] for h in halves]))
  assert not np.array_equal(src.batch(6)["text"], b["text"])
  src.check_state(again.state(5))
  import pickle   # what grain workers (data.workers > 0) receive
  np.testing.assert_array_equal(pickle.loads(pickle.dumps(src)).batch(5)["text"], b["text"])
  other = make_contrastive_source(c.data, 8, 16, seed=4)
  with pytest.raises(ValueError, match="seed 3 -> 4"):
    other.check_state(src.state(5))
  c.data.resolution = 32     # the image tower's position grid is for 64 px: refused before anything compiles
  with pytest.raises(ConfigError, match="data.resolution=32 but vision.image_size=64"):
    make_task(c)


# The training run is the CLI's (`visprior encoder`), started once as a user would; the tests below
# read its workdir, resume it in-process and align from it. Its overrides are _config()'s.
CLI_OVERRIDES = ["--config.train.steps=40", "--config.train.batch_size=32", "--config.train.log_every=10",
                 "--config.optim.lr=0.003", "--config.checkpoint.every=20", "--config.metrics.tensorboard=False",
                 "--config.metrics.peak_tflops=1.0", "--config.mesh.data=2", "--config.mesh.fsdp=-1"]


def _visprior(*args, timeout=300):
  exe = os.path.join(os.path.dirname(sys.executable), "visprior")
  return subprocess.run([exe, *args], cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                        timeout=timeout)


@pytest.fixture(scope="module")
def trained(world, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("encoder") / "run"
  proc = _visprior("encoder", "--config=configs/encoder.py:tiny", f"--workdir={workdir}",
                   f"--config.data.captions={world / 'captions.jsonl'}", f"--config.data.image_root={world}",
                   *CLI_OVERRIDES)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return workdir, proc, {r["step"]: r for r in rows}


def test_cli_training_lowers_the_loss_and_retrieves_colours(trained, world):
  workdir, proc, rows = trained
  assert f"finished at step {STEPS}" in proc.stdout, proc.stdout
  losses = [rows[s]["loss"] for s in range(1, STEPS + 1)]
  assert 5 < losses[0] < 15            # SigLIP's init: each positive pair sits near logit t cos - 10
  assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5]), losses
  last = rows[STEPS]
  assert {"i2t_accuracy", "t2i_accuracy", "temperature", "bias"} <= set(last) and last["mfu"] > 0
  description = json.loads((workdir / "export" / "model.json").read_text())
  assert description["stage"] == "encoder" and description["vision"]["pool_type"] == "map"

  # Retrieval on the six colours (an image of each against the six captions): chance is 1/6.
  config = _config(world)
  task = make_task(config)
  params = load_tree(workdir / "export", task.abstract_params())
  src = make_contrastive_source(config.data, 8, config.train.seq_len, seed=0)
  picks = [next(s for s in src.samples if s.id == f"{name}1") for name in COLORS]
  images = np.stack([preprocess(s.images[0], "siglip", 64) for s in picks])
  text = np.full((len(picks), config.train.seq_len), 258, np.int32)
  mask = np.zeros_like(text)
  for r, sample in enumerate(picks):
    ids = src.text_ids(sample)
    text[r, :len(ids)], mask[r, :len(ids)] = ids, 1
  logits = np.asarray(jax.jit(task.pair_logits)(params, dict(images=images, text=text, text_mask=mask)))
  hits = np.arange(len(picks))
  assert np.mean(np.argmax(logits, 1) == hits) >= 5 / 6 and np.mean(np.argmax(logits, 0) == hits) >= 5 / 6, logits

  wrong = _visprior("pretrain", "--config=configs/encoder.py:tiny", f"--workdir={workdir}_x", timeout=120)
  assert wrong.returncode == 2 and "use `visprior encoder`" in wrong.stderr, wrong.stderr[-2000:]


def test_resumed_run_repeats_the_losses(trained, world, tmp_path):
  workdir, _, rows = trained
  shutil.copytree(workdir, tmp_path / "resumed")
  shutil.rmtree(tmp_path / "resumed" / "checkpoints" / str(STEPS))
  resumed = train(_config(world), tmp_path / "resumed")
  assert resumed.step == STEPS
  assert {s: resumed.losses[s] for s in range(21, STEPS + 1)} == {s: rows[s]["loss"] for s in range(21, STEPS + 1)}


def test_export_is_the_mllm_encoder_and_align_starts_from_it(trained, world, tmp_path):
  workdir, _, _ = trained
  encoder = load_tree(workdir / "export", make_task(_config(world)).abstract_params())["vision"]
  pre = _load("pretrain", "llama3_tiny")
  llm = make_task(pre)
  save_params(tmp_path / "pretrain", llm.cfg, _random_params(llm))   # stands in for a pre-training export

  align = _load("align", "tiny")
  # The MLLM's tower is the encoder's architecture; it reads patch features, so no pooling head.
  align.vision = _load("encoder", None).vision_section("tiny")
  align.vision.update(pool_type="none", feature_layer=-1)
  align.data.update(tokenizer="bytes", family="siglip", resolution=64)
  align.data.sources = [{"kind": "captions", "paths": [str(world / "captions.jsonl")], "image_root": str(world)}]
  align.train.update(steps=2, batch_size=8, seq_len=64, log_every=1)
  align.checkpoint.update(every=2, export=False)
  align.metrics.tensorboard = False
  align.mesh.update(data=2, fsdp=-1)
  align.init_llm_from = str(tmp_path / "pretrain")
  align.init_vision_from = str(workdir)        # the workdir; its export directory works the same way
  result = train(align, tmp_path / "align")
  assert result.status == "finished" and all(np.isfinite(v) for v in result.losses.values())
  aligned = load_tree(tmp_path / "align", make_task(align).abstract_params())["vision"]
  assert set(aligned) == set(encoder) - {"MAPHead_0"}
  for a, b in zip(jax.tree.leaves(aligned), jax.tree.leaves({k: encoder[k] for k in aligned})):
    np.testing.assert_array_equal(a, b)    # loaded, and frozen through alignment

  # The export directory loads too; a tower of another shape is refused, naming the field.
  vision = make_task(align).vision
  from_export = _load_vision(str(workdir / "export"), vision)
  np.testing.assert_array_equal(from_export["pos_embedding"], encoder["pos_embedding"])
  with pytest.raises(CheckpointMismatch, match="depth=3 there, 2 in config.vision"):
    _load_vision(str(workdir), dataclasses.replace(vision, depth=2))
  with pytest.raises(CheckpointMismatch, match="no vision tower"):
    _load_vision(str(tmp_path / "pretrain"), vision)


def test_groups_of_pairs_share_a_batch(world):
  c = _config(world)
  c.data.group = 2
  src = make_contrastive_source(c.data, 8, 16, seed=3)
  ids = [src.sample_index(r) for r in range(48)]
  assert sorted(ids[:24]) == list(range(24))                    # one epoch is a permutation
  for k in range(0, 48, 2):                                      # members of a group sit side by side
    assert ids[k] % 2 == 0 and ids[k + 1] == ids[k] + 1
  assert ids[:24] != ids[24:]
  assert src.fingerprint()["group"] == 2 and "group" not in make_contrastive_source(_config(world).data, 8, 16, 3).fingerprint()
  c.data.group = 0
  with pytest.raises(ValueError, match="data.group=0"):
    make_contrastive_source(c.data, 8, 16, seed=3)
