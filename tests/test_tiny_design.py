"""configs/study/tiny.py's design: two one-factor sweeps through one centre, shares that add up, sweep labels
the analysis parses, a centre with two seeds, size-m runs paired with size-s runs, and a no-image eval per run."""

import pytest

from conftest import REPO

from visprior_jax.analysis.tables import mixture_kind
from visprior_jax.study import runner


@pytest.mark.parametrize("variant", ["", "full", "quick"])
def test_sweeps_through_a_centre(variant):
  study = runner.load_config_file(f"{REPO}/configs/study/tiny.py" + (f":{variant}" if variant else ""))
  runs = {k: v.to_dict() for k, v in study.runs.items()}
  for run, meta in runs.items():
    kind, (category, pct) = mixture_kind(meta["mixture"])
    assert kind == "sweep" and category in ("reasoning", "visual")
    shares = meta["shares"]
    assert sum(shares.values()) == pytest.approx(1) and min(shares.values()) >= 0
    reasoning = sum(shares[s] for s in ("code", "arithmetic", "counting", "syllogism"))
    assert 100 * (reasoning if category == "reasoning" else shares["visual_world"]) == pytest.approx(pct)
  names = {s["name"] for s in study.steps}
  assert all(f"{run}/eval_blank" in names and f"{run}/eval" in names for run in runs)
  if variant == "quick":
    assert set(runs) == {"r0_s", "r30_s"}
    return
  # the centre runs in both sweeps with two seeds; every size-m run has a size-s twin (same mixture, seed)
  key = {run: (tuple(sorted(m["shares"].items())), m["seed"]) for run, m in runs.items()}
  centre = [r for r, m in runs.items() if m["size"] == "s" and
            sum(1 for o in runs.values() if o["size"] == "s" and o["shares"] == m["shares"]) == 2]
  assert len(centre) == 2 and {runs[r]["seed"] for r in centre} == {0, 1}
  m_runs = [r for r, m in runs.items() if m["size"] == "m"]
  assert m_runs and all(any(key[o] == key[r] for o in runs if runs[o]["size"] == "s") for r in m_runs)
  with pytest.raises(ValueError, match="use no argument, :full or :quick"):
    runner.load_config_file(f"{REPO}/configs/study/tiny.py:big")
