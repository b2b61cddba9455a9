"""`visprior` as a user runs it: config errors are one line and stop before anything compiles.

Every test starts the real console script in a subprocess on 8 fake CPU devices (the environment
conftest.py sets). A config error must print ``error: <what to change>`` as the last line of
stderr, exit with status 2, and leave no run behind (the workdir is never created).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import subprocess_env

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VISPRIOR = os.path.join(os.path.dirname(sys.executable), "visprior")
TINY = "--config=configs/pretrain.py:llama3_tiny"


def _env() -> dict:
  return subprocess_env()


def visprior(*args, timeout=120) -> subprocess.CompletedProcess:
  return subprocess.run([VISPRIOR, *args], cwd=REPO, env=_env(), capture_output=True, text=True,
                        timeout=timeout)


def _last_line(text: str) -> str:
  lines = [l for l in text.strip().splitlines() if l.strip()]
  return lines[-1] if lines else ""


def _assert_config_error(proc, workdir, *needles):
  err = _last_line(proc.stderr)
  assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
  assert err.startswith("error: "), proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
  for needle in needles:
    assert needle in err, err
  assert "compiled the train step" not in proc.stdout
  assert not os.path.exists(workdir), "a config error must not leave a run directory behind"
  return err


@pytest.mark.parametrize("overrides, needles", [
    # 3 devices asked for, 8 present.
    (["--config.mesh.fsdp=3"], ["needs 3 devices but 8 are available", "-1"]),
    # 6 sequences over data x fsdp = 8 devices.
    (["--config.train.batch_size=6"], ["train.batch_size=6", "data-parallel size 8", "multiple of 8"]),
    # llama3_tiny has 4 heads; tensor=8 (fsdp becomes 1).
    (["--config.mesh.tensor=8"], ["model.num_heads=4", "tensor-parallel size 8", "mesh.tensor"]),
    # Byte-level text needs 256 ids.
    (["--config.data.kind=text_bytes", "--config.model.vocab_size=100"],
     ["256 tokens", "model.vocab_size=100", "at least 256"]),
], ids=["mesh_product", "batch_vs_data_parallel", "heads_vs_tensor", "tokenizer_vs_vocab"])
def test_pretrain_config_errors_are_one_line(tmp_path, overrides, needles):
  workdir = tmp_path / "run"
  proc = visprior("pretrain", TINY, f"--workdir={workdir}", *overrides)
  _assert_config_error(proc, workdir, *needles)


def test_pretrain_requires_workdir():
  proc = visprior("pretrain", TINY)
  assert proc.returncode == 2
  assert _last_line(proc.stderr) == "error: --workdir is required"


def test_unknown_preset_fails_clearly(tmp_path):
  # get_config raises while absl parses --config, before main() runs: absl reports it as a flags
  # parsing error (exit 1, the config's traceback included), not as our one-line error.
  workdir = tmp_path / "run"
  proc = visprior("pretrain", "--config=configs/pretrain.py:llama3_nope", f"--workdir={workdir}")
  assert proc.returncode != 0
  assert "unknown pretrain config 'llama3_nope'" in proc.stderr
  assert "llama3_tiny" in proc.stderr and "demo" in proc.stderr     # lists what is available
  assert not os.path.exists(workdir)


def test_model_info_7b():
  from visprior_jax.models import flops, presets
  proc = visprior("model-info", "--config=configs/pretrain.py:llama3_7b")
  assert proc.returncode == 0, proc.stderr[-2000:]
  cfg = presets.get("llama3_7b")
  n = flops.param_count(cfg)
  assert 0.9 * 7e9 <= n <= 1.1 * 7e9
  params = re.search(r"^params\s+([\d,]+)", proc.stdout, re.M)
  assert params and int(params.group(1).replace(",", "")) == n, proc.stdout
  per_token = re.search(r"^train FLOPs/token\s+(\S+) at seq 2048", proc.stdout, re.M)
  assert per_token, proc.stdout
  value = float(per_token.group(1))
  assert value == pytest.approx(flops.training_flops_per_token(cfg, 2048).causal, rel=1e-3)
  assert 6 * n <= value <= 8 * n      # 6N for the matmuls plus causal attention at seq 2048


@pytest.mark.parametrize("args", [["frobnicate"], []], ids=["unknown", "missing"])
def test_unknown_subcommand_is_a_usage_error(args):
  proc = visprior(*args)
  assert proc.returncode == 2
  err = _last_line(proc.stderr)
  assert err.startswith("error: usage: visprior"), proc.stderr
  assert "pretrain" in err and "model-info" in err and "convert" in err


def test_convert_round_trip_through_the_cli(tmp_path):
  """native -> HF -> native with --verify both ways; the final params equal the first."""
  import numpy as np
  from visprior_jax.checkpoint.params import load_params, save_params
  from visprior_jax.models import functional, presets
  cfg = presets.get("llama3_tiny")
  params = functional.init_params(cfg, 7)
  save_params(tmp_path / "native", cfg, params)
  out = visprior("convert", "native-to-hf", f"--src={tmp_path / 'native'}", f"--dst={tmp_path / 'hf'}", "--verify")
  assert out.returncode == 0, out.stderr[-2000:]
  assert (tmp_path / "hf" / "config.json").exists()
  out = visprior("convert", "hf-to-native", f"--src={tmp_path / 'hf'}", f"--dst={tmp_path / 'back'}", "--verify")
  assert out.returncode == 0, out.stderr[-2000:]
  _, back = load_params(tmp_path / "back")
  for a, b in zip(jax_leaves(params), jax_leaves(back)):
    np.testing.assert_array_equal(a, b)
  bad = visprior("convert", "hf-to-native", f"--src={tmp_path / 'nothing'}", f"--dst={tmp_path / 'x'}")
  assert bad.returncode == 2 and _last_line(bad.stderr).startswith("error:")


def jax_leaves(tree):
  import jax
  return jax.tree.leaves(tree)


def test_data_prepare_label_report_end_to_end(tmp_path):
  """visprior data prepare -> label (lexical) -> label-report on offline text, with a config file."""
  cfg = tmp_path / "data_cfg.py"
  cfg.write_text(f'''
import ml_collections
def get_config():
  c = ml_collections.ConfigDict()
  c.out_dir = "{tmp_path / 'prepared'}"
  c.tokenizer = "{tmp_path / 'prepared' / 'tok.json'}"
  c.train_vocab_size = 300
  c.train_kind = "bpe"
  c.docs_per_shard = 20
  c.workers = 0
  c.sources = ml_collections.ConfigDict({{"code": {{"kind": "python_stdlib", "limit": 30}},
                                          "docs": {{"kind": "pydoc_topics", "limit": 20}}}})
  return c
''')
  out = visprior("data", "prepare", f"--config={cfg}", timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  for name in ("code", "docs"):
    manifest = json.loads((tmp_path / "prepared" / name / "manifest.json").read_text())
    assert manifest["documents"] > 0 and manifest["tokens"] > 0 and manifest["shards"][0]["sha256"]
  shards = sorted((tmp_path / "prepared").glob("*/shard-*.array_record"))
  mtimes = [p.stat().st_mtime_ns for p in shards]
  again = visprior("data", "prepare", f"--config={cfg}", timeout=300)   # resumable: nothing rewritten
  assert again.returncode == 0 and [p.stat().st_mtime_ns for p in shards] == mtimes
  out = visprior("data", "label", "--config=configs/data/label_endpoint.py:lexical",
                 f"--prepared={tmp_path / 'prepared'}", timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  report = visprior("data", "label-report", f"--prepared={tmp_path / 'prepared'}",
                    f"--out={tmp_path / 'rates.json'}")
  assert report.returncode == 0 and "code" in report.stdout and "vis.comb" in report.stdout
  assert json.loads((tmp_path / "rates.json").read_text())
  bad = visprior("data", "label-report", f"--prepared={tmp_path / 'nowhere'}")
  assert bad.returncode == 2 and _last_line(bad.stderr).startswith("error:")
