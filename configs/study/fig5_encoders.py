"""Fig. 5: the reasoning-combination sweep (0-100%, 3B/30B) adapted with three vision encoders,
MetaCLIP-B/16, DINOv2-G, MAE-H (PAPER.md 3.1, 5.8). Set paths.vision_init (MetaCLIP) and the two
extra paths below (HF vision model folders)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paper  # noqa: E402

from visprior_jax.data.mixtures import SWEEP_PERCENTS  # noqa: E402

ENCODERS = {"metaclip": "{paths.vision_init}", "dinov2": "{paths.dinov2_init}", "mae": "{paths.mae_init}"}


def get_config(arg: str = ""):
  del arg
  runs = {f"reasoning_{p}_{e}": dict(preset="llama3_3b", recipe=f"sweep:reasoning:{p}", tokens=30 * paper.B,
                                     vision_init=path, encoder=e, shares={"reasoning": p / 100},
                                     **({} if e == "metaclip" else {"llm_from": f"reasoning_{p}_metaclip"}))
          for p in SWEEP_PERCENTS for e, path in ENCODERS.items()}     # one LLM per share, three encoders
  c = paper.study("fig5_encoders", runs)
  c.paths.dinov2_init = ""
  c.paths.mae_init = ""
  return c
