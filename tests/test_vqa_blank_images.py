"""The no-image evaluation (``vqa.images=blank``) on a tiny random MLLM export: the images the model gets
are uniform gray, the records say ``"images": "blank"`` and go to their own folder, and the store and the
runs table keep them apart from the real-image ones."""

import importlib.util
import json
import os

import numpy as np
import pytest

from conftest import REPO
import fixtures_vqa_tiny

from visprior_jax.analysis import tables
from visprior_jax.data import multimodal as mm
from visprior_jax.eval import commands, vqa_runner
from visprior_jax.eval.model import EvalModel
from visprior_jax.eval.results import read_records, settings_hash
from visprior_jax.eval.vqa import registry
from visprior_jax.study import store


def _module(path, name):
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  from visprior_jax.train.tasks import make_task
  root = tmp_path_factory.mktemp("blank")
  task = make_task(_module("configs/sft.py", "sft_config").get_config("tiny"))
  task.export(root / "ckpt", task.init_params(0))
  fixtures_vqa_tiny.WRITERS["tiny_general"](root / "vqa" / "tiny_general")
  return root


def _config(root, out="", images="real"):
  c = _module("configs/eval.py", "eval_config").get_config()
  c.checkpoint, c.tokenizer, c.run, c.out, c.progress = str(root / "ckpt"), "bytes", "tiny", out, False
  c.vqa.data_root, c.vqa.benchmarks, c.vqa.max_new_tokens, c.vqa.batch_size = str(root / "vqa"), \
      "tiny_general_open", 3, 4
  c.vqa.images = images
  return c


def test_blank_images_reach_the_model_and_the_records_say_so(setup, monkeypatch):
  seen = {}
  real_generate = EvalModel.generate

  def spy(self, prompts, *a, images=None, **k):
    seen["preprocessing"] = self.image_preprocessing
    seen.setdefault(k.get("seed"), []).append(np.asarray(images))
    return real_generate(self, prompts, *a, images=images, **k)
  monkeypatch.setattr(EvalModel, "generate", spy)
  commands.run(_config(setup, out=str(setup / "real")), "vqa")
  real_images = np.concatenate(seen.pop(42))
  commands.run(_config(setup, images="blank"), "vqa")
  blank_images = np.concatenate(seen.pop(42))
  assert blank_images.shape == real_images.shape
  # every pixel of every blank image is the preprocessed mid-gray; the real images are not
  gray = blank_images.reshape(-1, 3)
  assert np.allclose(gray, gray[0]) and not np.allclose(real_images.reshape(-1, 3), real_images.reshape(-1, 3)[0])
  gray_image = vqa_runner.blank_image(mm.load_image(np.zeros((5, 7, 3), np.uint8)))
  assert gray_image.size == (7, 5) and np.allclose(gray[0], mm.preprocess(gray_image, *seen["preprocessing"])[0, 0])

  out = setup / "ckpt" / "eval_blank" / "export"        # the default folder: never the real one's
  assert (out / "metrics.jsonl").exists() and not (setup / "ckpt" / "eval").exists()
  blank = read_records([out])
  real = read_records([setup / "real"])
  assert blank and {r["images"] for r in blank} == {"blank"} and all("images" not in r for r in real)
  bench = registry.BENCHMARKS["tiny_general_open"]
  s = vqa_runner.VQASettings(max_new_tokens=3, images="blank").for_benchmark(bench)
  assert s["images"] == "blank" and "images" not in vqa_runner.VQASettings(max_new_tokens=3).for_benchmark(bench)
  row = json.loads((out / "predictions" / "tiny_general_open.jsonl").read_text().splitlines()[0])
  assert row["settings"] == settings_hash(s)
  with pytest.raises(ValueError, match="vqa.images"):
    vqa_runner.VQASettings(images="none")

  # the store keeps both (an "images" column), the runs table reads the real ones unless asked
  study = setup / "study" / "tiny_s_s0"
  study.mkdir(parents=True)
  (study / "run.json").write_text(json.dumps({"study": "t", "run": "tiny_s_s0", "size": "s", "mixture": "m"}))
  for src, dst in ((setup / "real", study / "sft" / "eval" / "export"), (out, study / "sft" / "eval_blank" / "export")):
    dst.mkdir(parents=True)
    (dst / "metrics.jsonl").write_text((src / "metrics.jsonl").read_text())
  df = store.load(store.collect(setup / "study"))
  assert set(df["images"]) == {"real", "blank"}
  acc = df[(df["benchmark"] == "tiny_general_open") & (df["metric"] == "accuracy")].set_index("images")["value"]
  runs, blank_runs = tables.runs_table(df), tables.blank_runs_table(df)
  assert runs.loc[0, "General"] == acc["real"] and blank_runs.loc[0, "General"] == acc["blank"]
  assert "images" not in runs and tables.blank_runs_table(df[df["images"] == "real"]).empty

