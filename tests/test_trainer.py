"""The training loop end to end in-process: metrics files, TensorBoard events, export, accumulation."""

import json

import jax
import numpy as np
import pytest

from conftest import pretrain_config

from visprior_jax.checkpoint.params import load_params
from visprior_jax.train.trainer import train
from visprior_jax.train.validate import ConfigError



def _config(**train):
  c = pretrain_config("llama3_tiny")
  c.mesh.update(data=2, fsdp=-1)
  c.train.update(**{**dict(steps=6, batch_size=8, seq_len=32, log_every=3), **train})
  c.checkpoint.update(every=3, keep=2)
  return c


def test_run_writes_metrics_tensorboard_checkpoints_and_export(tmp_path, capsys):
  result = train(_config(), tmp_path)
  assert result.status == "finished" and result.step == 6 and sorted(result.losses) == list(range(1, 7))
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == list(range(1, 7))
  for r in rows:
    assert {"loss", "grad_norm", "lr", "tokens", "z_loss"} <= r.keys() and np.isfinite(r["loss"])
  logged = [r for r in rows if r["step"] in (3, 6)]
  for r in logged:
    assert r["tokens_per_sec"] > 0 and 0 < r["mfu"] <= r["mfu_full_attn"]
    np.testing.assert_allclose(r["tokens_per_sec_per_device"] * jax.device_count(), r["tokens_per_sec"])
  assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
  assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == [3, 6]
  out = capsys.readouterr().out
  assert "step      3 | loss" in out and "tok/s" in out and "MFU" in out
  _, exported = load_params(tmp_path / "export")
  _, latest = load_params(tmp_path)
  for a, b in zip(jax.tree.leaves(exported), jax.tree.leaves(latest)):
    np.testing.assert_array_equal(a, b)


def test_gradient_accumulation_through_the_trainer(tmp_path):
  one = train(_config(batch_size=16, steps=3), tmp_path / "one")
  two = train(_config(batch_size=16, steps=3, grad_accum=2), tmp_path / "two")
  for s in one.losses:
    np.testing.assert_allclose(two.losses[s], one.losses[s], rtol=1e-5)


def _prepared_bytes_corpus(root):
  import random
  import string
  from visprior_jax.data.prepare import prepare_source
  from visprior_jax.data.tokenizers import ByteTokenizer
  for i, (name, alphabet) in enumerate((("letters", string.ascii_lowercase + " "), ("digits", string.digits + " "))):
    rng = random.Random(i)
    docs = [{"text": "".join(rng.choice(alphabet) for _ in range(rng.randint(20, 300))), "id": str(j)}
            for j in range(60)]
    prepare_source(docs, ByteTokenizer(), root, name, docs_per_shard=16, progress=False)


def test_trainer_on_the_mixture_pipeline_resumes_exactly(tmp_path):
  """data.kind=mixture end to end: the data state rides in the checkpoint; resume is bitwise."""
  import shutil
  _prepared_bytes_corpus(tmp_path / "data")

  def config():
    c = _config(steps=6, log_every=1)
    c.data.update(kind="mixture", prepared_dir=str(tmp_path / "data"))
    del c.data["recipe"]
    c.data.recipe = [dict(source="letters", weight=0.7), dict(source="digits", weight=0.3)]
    c.checkpoint.update(every=3, keep=3, export=False)
    c.metrics.update(tensorboard=False, mfu=False)
    return c

  full = train(config(), tmp_path / "full")
  shutil.copytree(tmp_path / "full", tmp_path / "resumed")
  shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "6")
  resumed = train(config(), tmp_path / "resumed")
  assert sorted(resumed.losses) == [4, 5, 6]
  for s in (4, 5, 6):
    assert resumed.losses[s] == full.losses[s]
  data_state = json.loads((tmp_path / "full" / "checkpoints" / "6" / "data" / "metadata").read_text())
  assert data_state["kind"] == "mixture" and data_state["next_step"] == 6

  changed = config()
  changed.data.recipe = [dict(source="letters", weight=0.5), dict(source="digits", weight=0.5)]
  with pytest.raises(ValueError, match="mixture"):
    train(changed, tmp_path / "resumed")

  too_small = config()
  too_small.model.vocab_size = 200   # the bytes tokenizer has 259 ids
  with pytest.raises(ConfigError, match="259 tokens"):
    train(too_small, tmp_path / "small")
