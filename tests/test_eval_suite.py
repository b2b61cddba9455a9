"""``visprior eval``: the whole suite on a tiny MLLM checkpoint over fixture files in the published
formats; records, predictions, resume after an interruption, bad images, the CLI."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, subprocess_env
import fixtures_lm
import fixtures_vqa_general
import fixtures_vqa_ocr
import fixtures_vqa_tiny
import fixtures_vqa_vision

from visprior_jax.eval import commands
from visprior_jax.eval.model import EvalModel
from visprior_jax.eval.results import read_records
from visprior_jax.eval.vqa import registry

WRITERS = {**fixtures_vqa_general.WRITERS, **fixtures_vqa_ocr.WRITERS, **fixtures_vqa_vision.WRITERS,
           **fixtures_vqa_tiny.WRITERS}


def _module(path, name):
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  """A tiny SFT-shaped checkpoint export (random weights) and both data roots."""
  from visprior_jax.train.tasks import make_task
  root = tmp_path_factory.mktemp("eval")
  task = make_task(_module("configs/sft.py", "sft_config").get_config("tiny"))
  task.export(root / "ckpt", task.init_params(0))
  for name, bench in registry.BENCHMARKS.items():
    if name in WRITERS:    # the tiny *_open benchmarks read the folders of their MC twins
      WRITERS[name](root / "vqa" / bench.folder)
  fixtures_lm.write_all(root / "lm")
  return root


def _config(root, out="out", **vqa):
  c = _module("configs/eval.py", "eval_config").get_config()
  c.checkpoint = str(root / "ckpt")
  c.tokenizer = "bytes"
  c.run = "tiny"
  c.out = str(root / out)
  c.progress = False
  c.lm.data_root = str(root / "lm")
  c.vqa.data_root = str(root / "vqa")
  c.vqa.max_new_tokens = 6
  c.vqa.batch_size = 4
  c.vqa.update(vqa)
  return c


def test_full_suite_writes_records_for_every_benchmark_and_resumes(setup, monkeypatch):
  config = _config(setup)
  commands.run(config, "all")
  recs = read_records([setup / "out"])
  primary = {r["benchmark"]: r for r in recs if r["primary"]}
  for name, bench in registry.BENCHMARKS.items():
    r = primary[name]
    assert r["metric"] == bench.primary and r["n"] > 0 and 0 <= r["value"] <= 100, r
    assert (r["run"], r["stage"], r["step"], r["suite"], r["category"]) == ("tiny", "export", None, "vqa",
                                                                            bench.category)
    lines = (setup / "out" / "predictions" / f"{name}.jsonl").read_text().splitlines()
    assert len(lines) == r["n"]
    row = json.loads(lines[0])
    assert {"id", "where", "prompt", "prediction", "answer", "record"} <= set(row)
  for task in ("wikitext", "lambada", "piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "copa",
               "sciq", "openbookqa", "boolq"):
    assert primary[task]["suite"] == "lm" and primary[task]["n"] > 0
  assert primary["vqa:overall"]["n"] == 16
  assert primary["vqa:General"]["n"] == 4 and primary["vqa:Vision-Centric"]["n"] == 5
  assert primary["lm:t_acc"]["n"] == 11 and 0 <= primary["lm:t_acc"]["value"] <= 1
  assert primary["lm:ppl"]["value"] > 1
  paper = [primary[n]["value"] for n in registry.PAPER16]
  assert primary["vqa:overall"]["value"] == pytest.approx(sum(paper) / 16)

  # a second run redoes nothing: no generation at all, the same records
  def no_generation(*a, **k):
    raise AssertionError("a finished benchmark was evaluated again")
  monkeypatch.setattr(EvalModel, "generate", no_generation)
  monkeypatch.setattr("visprior_jax.eval.lm_tasks.evaluate_task", no_generation)
  commands.run(config, "all")
  again = read_records([setup / "out"])
  key = lambda r: (r["benchmark"], r["metric"])  # noqa: E731
  assert {key(r): r["value"] for r in again} == {key(r): r["value"] for r in recs}


def test_an_interrupted_benchmark_continues_after_its_last_prediction(setup, monkeypatch):
  config = _config(setup, out="out_resume", benchmarks="mle_bench")
  commands.run(config, "vqa")
  out = setup / "out_resume"
  first = read_records([out])
  n = next(r["n"] for r in first if r["benchmark"] == "mle_bench" and r["primary"])
  assert n >= 3
  # simulate a crash after the first batch-row was written: no done marker, a torn last line
  (out / "done" / "mle_bench.json").unlink()
  lines = (out / "predictions" / "mle_bench.jsonl").read_text().splitlines()
  (out / "predictions" / "mle_bench.jsonl").write_text(lines[0] + "\n" + lines[1][:20])
  calls = []
  real = EvalModel.generate

  def counting(self, prompts, *a, **k):
    calls.append(len(prompts))
    return real(self, prompts, *a, **k)
  monkeypatch.setattr(EvalModel, "generate", counting)
  commands.run(config, "vqa")
  assert sum(calls) == n - 1
  again = read_records([out])
  assert {(r["benchmark"], r["metric"]): r["value"] for r in again} == \
         {(r["benchmark"], r["metric"]): r["value"] for r in first}


def test_a_corrupt_image_is_skipped_and_counted_or_named(setup, tmp_path):
  import shutil
  data = tmp_path / "vqa"
  shutil.copytree(setup / "vqa" / "mle_bench", data / "mle_bench")
  rows = [json.loads(line) for line in (data / "mle_bench" / "data.jsonl").read_text().splitlines()]
  (data / "mle_bench" / rows[0]["file_name"]).write_bytes(b"not an image")
  config = _config(setup, out=str(tmp_path / "out"), benchmarks="mle_bench", data_root=str(data))
  result = commands.run(config, "vqa")["mle_bench"]
  assert result["n"] == len(rows) - 1 and result["n_skipped"] == 1
  assert "corrupt image" in result["skipped_examples"][0]
  config = _config(setup, out=str(tmp_path / "out2"), benchmarks="mle_bench", data_root=str(data))
  config.on_error = "raise"
  with pytest.raises(ValueError, match=r"mle_bench: .*data.jsonl:1: corrupt image"):
    commands.run(config, "vqa")


def test_cli_eval(setup, tmp_path):
  cmd = [sys.executable, "-m", "visprior_jax.cli", "eval", "vqa", "--config=configs/eval.py",
         f"--config.checkpoint={setup / 'ckpt'}", "--config.tokenizer=bytes", f"--config.out={tmp_path / 'o'}",
         f"--config.vqa.data_root={setup / 'vqa'}", "--config.vqa.benchmarks=gqa,ai2d", "--config.vqa.max_new_tokens=4",
         "--config.progress=False"]
  p = subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600)
  assert p.returncode == 0, p.stderr[-2000:]
  assert {r["benchmark"] for r in read_records([tmp_path / "o"])} == {"gqa", "ai2d", "vqa:General", "vqa:Knowledge",
                                                                     "vqa:perception", "vqa:reasoning"}
  bad = cmd[:4] + ["--config=configs/eval.py", f"--config.checkpoint={tmp_path / 'nothing'}"]
  p = subprocess.run(bad, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=600)
  assert p.returncode == 2 and p.stderr.strip().splitlines()[-1].startswith("error: ")


def test_an_oracle_scores_full_marks_through_the_whole_pipeline(setup, monkeypatch):
  """Answering each item with its gold answer (letter, text or the most common reference) through the
  runner (prompts, predictions, scoring, aggregation) gives 100 everywhere; MME's Perception/20 is
  10 per perception subtask present (its fixture has 2 of the 10)."""
  import collections
  from visprior_jax.eval import vqa_runner
  from visprior_jax.eval.vqa.base import load_items
  queues = collections.defaultdict(collections.deque)
  for bench in registry.BENCHMARKS.values():
    for it in load_items(bench, setup / "vqa" / bench.folder):
      gold = it.answer
      gold = collections.Counter(gold).most_common(1)[0][0] if isinstance(gold, (list, tuple)) else str(gold)
      queues[bench.prompt(it, bench.suffix)].append(gold)
  monkeypatch.setattr(vqa_runner, "_prompt_ids", lambda model, text, k: model.tokenizer.encode(text))
  monkeypatch.setattr(EvalModel, "generate", lambda self, prompts, *a, **k: [
      self.tokenizer.encode(queues[self.tokenizer.decode(p)].popleft()) for p in prompts])
  results = commands.run(_config(setup, out="out_oracle"), "vqa")
  scores = {n: r["metrics"][registry.BENCHMARKS[n].primary] for n, r in results.items()}
  assert scores == {**{n: 100.0 for n in registry.BENCHMARKS}, "mme": 20.0}
  assert results["mme"]["metrics"]["perception"] == 400.0


def test_judge_command_scores_explanations_through_a_real_endpoint(setup, monkeypatch):
  """`visprior eval judge`: Knowledge + Vision-Centric items prompted with the paper's explain sentence,
  each response judged by an OpenAI-compatible server on 127.0.0.1 (COHERENT iff it says "therefore")."""
  from test_judge import KEY, KEY_ENV, JudgeServer
  from visprior_jax.eval import judge as judge_lib
  monkeypatch.setenv(KEY_ENV, KEY)
  replies = ["It has three sides, therefore the answer is A.", "no idea", "Round things roll therefore B follows."]
  count = iter(range(10**6))
  monkeypatch.setattr(EvalModel, "generate", lambda self, prompts, *a, **k: [
      self.tokenizer.encode(replies[next(count) % 3]) for _ in prompts])
  server = JudgeServer()
  try:
    config = _config(setup, out="out_judge")
    config.judge.endpoint.update(base_url=server.url, api_key_env=KEY_ENV, max_retries=1, backoff_s=0.001)
    config.judge.benchmarks = "ai2d,mmmu,coco,blink"
    summaries = commands.run(config, "judge")
  finally:
    server.stop()
  preds = []
  for name in ("ai2d", "mmmu", "coco", "blink"):
    rows = [json.loads(x) for x in (setup / "out_judge" / "predictions" / f"explain_{name}.jsonl").read_text()
            .splitlines()]
    assert all(r["prompt"].endswith(judge_lib.EXPLAIN_SUFFIX) for r in rows)
    preds += [(r["prediction"], registry.BENCHMARKS[name].category) for r in rows]
  coherent = [("therefore" in p) for p, _ in preds]
  overall = summaries["reasoning_quality"]
  assert overall["logical_soundness"] == pytest.approx(100 * sum(coherent) / len(preds))
  assert overall["reasoning_depth"] == pytest.approx(sum(len(p.split()) for p, _ in preds) / len(preds))
  know = [c for c, (_, cat) in zip(coherent, preds) if cat == "Knowledge"]
  assert summaries["reasoning_quality/Knowledge"]["logical_soundness"] == pytest.approx(100 * sum(know) / len(know))
  recs = {r["benchmark"]: r for r in read_records([setup / "out_judge"]) if r["primary"]}
  assert recs["judge:reasoning_quality"]["n"] == len(preds)
  assert recs["judge:reasoning_quality/Vision-Centric"]["category"] == "Vision-Centric"


def test_alignment_command_scores_captions_against_the_vision_tower(setup, tmp_path):
  from PIL import Image
  rows = []
  for i, (color, name) in enumerate([((255, 0, 0), "red"), ((0, 255, 0), "green"), ((0, 0, 255), "blue"),
                                     ((255, 255, 0), "yellow"), ((0, 0, 0), "black"), ((255, 255, 255), "white"),
                                     ((128, 0, 128), "purple"), ((255, 128, 0), "orange")]):
    Image.new("RGB", (20, 20), color).save(tmp_path / f"{i}.png")
    rows.append({"image": f"{i}.png", "caption": f"a {name} square"})
  (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
  config = _config(setup, out=str(tmp_path / "out"))
  config.alignment.update(pairs=str(tmp_path / "pairs.jsonl"), image_root=str(tmp_path), k=3)
  metrics = commands.run(config, "alignment")
  assert 0.0 <= metrics["mnn"] <= 1.0 and metrics["mnn"] == metrics["mnn/self"]
  rec = [r for r in read_records([tmp_path / "out"]) if r["benchmark"] == "alignment:mnn" and r["primary"]]
  assert rec[0]["n"] == 8 and rec[0]["value"] == pytest.approx(metrics["mnn"])


def test_an_encoder_export_is_refused_with_one_clear_line(tmp_path):
  from visprior_jax.eval.model import load_eval_model
  from visprior_jax.train.tasks import make_task
  spec = importlib.util.spec_from_file_location("encoder_config", os.path.join(REPO, "configs", "encoder.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  task = make_task(module.get_config("tiny"))
  task.export(str(tmp_path / "export"), task.init_params(0))
  with pytest.raises(ValueError, match="image-text encoder"):
    load_eval_model(str(tmp_path / "export"), tokenizer="bytes")


def test_a_short_batch_is_filled_to_the_batch_size_and_decodes_the_same(setup):
  """Greedy: fewer prompts than ``batch_size`` run in the full batch's shape (no new program to compile) and
  decode exactly as the same rows of a full batch; sampled batches are not filled (their draws depend on it)."""
  import numpy as np
  from jax import monitoring
  from visprior_jax.data import multimodal as mm
  from visprior_jax.eval.model import load_eval_model
  model = load_eval_model(str(setup / "ckpt"), tokenizer="bytes")
  mcfg, res = model.task.mllm, model.image_preprocessing[1]
  prompts = [mm.encode_prompt(model.tokenizer, "What colour is the " + "big " * (i % 3) + "circle?", n_images=1,
                              tokens_per_image=mcfg.tokens_per_image, image_token_id=mcfg.image_token_id)
             for i in range(5)]
  images = np.random.default_rng(0).normal(size=(5, 1, res, res, 3)).astype(np.float32)
  full = model.generate(prompts, 6, images=images, pad_multiple=64)     # one width, as the VQA runner pads
  compiles = []

  def listener(event, secs, **kw):
    if event.endswith("backend_compile_duration"):
      compiles.append(kw.get("fun_name"))
  monitoring.register_event_duration_secs_listener(listener)
  try:
    short = model.generate(prompts[:2], 6, images=images[:2], pad_multiple=64, batch_size=5)
  finally:
    monitoring.unregister_event_duration_listener(listener)
  assert short == full[:2] and not compiles
  sampled = model.generate(prompts[:2], 6, images=images[:2], temperature=1.0, seed=3)
  assert model.generate(prompts[:2], 6, images=images[:2], temperature=1.0, seed=3, batch_size=5) == sampled
