"""Relative workdirs work (orbax itself insists on absolute paths)."""

import jax
import jax.numpy as jnp
import numpy as np

from visprior_jax.checkpoint.manager import RunCheckpoints
from visprior_jax.checkpoint.params import load_params, save_params
from visprior_jax.models import functional, presets


def test_relative_paths_for_run_checkpoints_and_exports(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  cfg = presets.get("llama3_tiny")
  params = functional.init_params(cfg, 0)
  ckpts = RunCheckpoints("runs/rel", keep=1)
  ckpts.save(1, params, {"count": jnp.zeros(())}, {"next_step": 1}, {"step": 1, "model": cfg.to_dict()})
  ckpts.close()
  assert (tmp_path / "runs/rel/checkpoints/1/params").exists()
  save_params("runs/rel/export", cfg, params)
  for path in ("runs/rel/export", "runs/rel"):
    _, loaded = load_params(path)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(loaded)):
      np.testing.assert_array_equal(a, b)
