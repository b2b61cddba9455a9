"""The training loop end to end in-process: metrics files, TensorBoard events, export, accumulation."""

import json

import jax
import numpy as np

from conftest import pretrain_config

from visprior_jax.checkpoint.params import load_params
from visprior_jax.train.trainer import train



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
