"""Mixture optimizer (visprior_jax/mixopt): coordinates, predictors, proposals, validation, the CLI.

Synthetic surfaces with a known optimum check that every predictor finds it through noise and that
every predictor refuses to fit fewer distinct mixtures than its parameters; the paper's Table 1 checks
the Scheffe model against the numbers of /work/shared/MIXTURE_LAWS.md section 5; a tiny-study-shaped
results store (written as the runner writes it) drives the commands end to end.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # as the CLI does: tiny matrices (mixopt/__init__ docs)

import importlib.util  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from conftest import subprocess_env  # noqa: E402

from visprior_jax.data import mixtures  # noqa: E402
from visprior_jax.mixopt import coords, predictors, propose, report, validate  # noqa: E402
from visprior_jax.mixopt.base import TooFewRuns, scale_features  # noqa: E402
from visprior_jax.study import runner, spec, store  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VISPRIOR = os.path.join(os.path.dirname(sys.executable), "visprior")


def _tiny_mixtures() -> dict:
  """Four source blends over the tiny study's pools (configs/data/tiny_world.py), as the tiny study once ran
  them: what the mixture optimizer's tests fit."""
  return {
      "language": dict(docs=0.45, code=0.15, visual_world=0.1, arithmetic=0.1, counting=0.1, syllogism=0.1),
      "reasoning": dict(docs=0.1, code=0.25, visual_world=0.05, arithmetic=0.2, counting=0.2, syllogism=0.2),
      "visual": dict(docs=0.1, code=0.1, visual_world=0.6, arithmetic=0.07, counting=0.06, syllogism=0.07),
      "balanced": dict(docs=0.2, code=0.2, visual_world=0.15, arithmetic=0.15, counting=0.15, syllogism=0.15),
  }


def _surface(r, v):
  """A known interior optimum at reasoning 0.65, visual 0.18."""
  return 32.0 - 30.0 * (r - 0.65) ** 2 - 60.0 * (v - 0.18) ** 2


def _frame(r, v, y, *, params=3e9, tokens=30e9, size="llama3_3b", seeds=None) -> pd.DataFrame:
  """A coordinates table as coords.table makes it, from arrays (one run per row)."""
  r, v, y = (np.asarray(a, dtype=float) for a in (r, v, y))
  seeds = np.zeros(len(r), dtype=int) if seeds is None else np.asarray(seeds)
  runs = pd.DataFrame({"run": [f"run{i}" for i in range(len(r))], "size": size, "params": params, "tokens": tokens,
                       "seed": seeds, "mixture": [f"grid:{100 * a:g}:{100 * b:g}" for a, b in zip(r, v)],
                       "share.reasoning": r, "share.visual": v})
  tab = coords.coordinates(runs)
  tab["y"] = y
  return tab


def _design(n=60, seed=0):
  rng = np.random.default_rng(seed)
  r, v = rng.uniform(0.45, 0.9, 4 * n), rng.uniform(0.02, 0.4, 4 * n)
  keep = r + v <= 1.0
  return r[keep][:n], v[keep][:n], rng


def _write_study(root, *, study="tiny", noise=0.3, seed=0):
  """A tiny-study-shaped study directory: 4 source blends x 2 sizes x 2 seeds, run.json + metrics.jsonl."""
  rng = np.random.default_rng(seed)
  for size, bonus in (("s", 0.0), ("m", 3.0)):
    for mix, weights in _tiny_mixtures().items():
      r = sum(weights[s] for s in ("code", "arithmetic", "counting", "syllogism"))
      v = weights["visual_world"]
      for s in (0, 1):
        run = f"{mix}_{size}_s{s}"
        d = root / "runs" / run
        (d / "sft" / "eval" / "step_5").mkdir(parents=True)
        (d / "run.json").write_text(json.dumps(dict(study=study, run=run, size=size, tokens=20480, mixture=mix,
                                                    seed=s, shares=weights, encoder="tiny_siglip", sft="full",
                                                    blind=False)))
        value = 20 + bonus + 10 * _surface(r, v) / 32 + rng.normal(0, noise)
        (d / "sft" / "eval" / "step_5" / "metrics.jsonl").write_text(json.dumps(dict(
            run=run, stage="sft", step=5, suite="vqa", benchmark="vqa:overall", metric="overall", value=value,
            primary=True, n=40, time="2026-01-01T00:00:00Z")) + "\n")
  return root


# ---------------------------------------------------------------------------------- coordinates


def test_coordinates_of_the_paper_tables():
  tab = coords.table(coords.load_results("paper"), "vqa_overall")
  assert len(tab) == 30 and not tab.attrs["skipped"]
  buckets = tab[[f"bucket.{b}" for b in coords.BUCKETS]]
  assert np.allclose(buckets.sum(axis=1), 1)
  assert np.allclose(tab["bucket.reasoning-only"] + tab["bucket.both"], tab["reasoning"])
  assert np.allclose(tab["bucket.visual-only"] + tab["bucket.both"], tab["visual"])
  assert tab["epochs.both"].isna().all()          # no pool: no epochs
  pool = {s: 50e9 for s in mixtures.TABLE4_FRACTIONS}
  with_pool = coords.table(coords.load_results("paper"), "vqa_overall", pool=pool)
  cell = with_pool.set_index("mixture").loc["grid:60:15"]
  # grid cells spread a bucket over the pool in proportion to its size: every bucket repeats at
  # tokens x share / bucket pool
  bucket_pool = {b: sum(pool[s] * mixtures.stream_fraction(mixtures.Stream(s, *coords.BUCKET_STREAMS[b]),
                                                            mixtures.with_independent_overlap(mixtures.TABLE4_FRACTIONS))
                        for s in pool) for b in coords.BUCKETS}
  for b in coords.BUCKETS:
    assert cell[f"epochs.{b}"] == pytest.approx(30e9 * cell[f"bucket.{b}"] / bucket_pool[b], rel=1e-6)
  # Table 2: the table's own reasoning/visual columns; buckets from the source weights
  t2 = coords.table(coords.load_results("paper:Table 2"), "vqa_overall").set_index("mixture")
  assert t2.loc["mix0", "reasoning"] == pytest.approx(0.331)
  assert np.allclose(t2[[f"bucket.{b}" for b in coords.BUCKETS]].sum(axis=1), 1)
  with pytest.raises(ValueError, match="the paper table has no 'Table 9'"):
    coords.load_results("paper:Table 9")
  with pytest.raises(FileNotFoundError, match="results nowhere not found"):
    coords.load_results("nowhere")
  with pytest.raises(ValueError, match="unknown target 'vqa_nope'"):
    coords.resolve_target("vqa_nope")


def test_coordinates_of_source_blends_and_what_is_left_out(tmp_path):
  tab = coords.table(store.load(_write_study(tmp_path / "study")), "vqa_overall")
  assert len(tab) == 16 and tab["cell"].nunique() == 8
  row = tab[tab["mixture"] == "reasoning"].iloc[0]
  assert row["reasoning"] == pytest.approx(0.85) and row["visual"] == pytest.approx(0.05)   # tiny pools by construction
  assert row["bucket.both"] == 0 and row["bucket.neither"] == pytest.approx(0.1)
  assert coords.order_sizes(tab) == ["s", "m"]
  with pytest.raises(ValueError, match="have no params to tell them apart: fit one size at a time"):
    scale_features(tab)
  runs = pd.DataFrame({"run": ["a", "b"], "share.mystery": [1.0, np.nan], "share.web_crawl": [np.nan, 1.0]})
  with pytest.raises(ValueError, match=r"no label rates for sources \['mystery'\]"):
    coords.coordinates(runs)
  runs = pd.DataFrame({"run": ["a", "b"], "share.web_crawl": [1.0, np.nan]})
  out = coords.coordinates(runs)
  assert len(out) == 1 and out.attrs["skipped"] == ["b (no reasoning/visual shares and no source weights)"]


# ----------------------------------------------------------------------------------- predictors


def test_scheffe_reproduces_the_table1_analysis():
  """MIXTURE_LAWS.md 5: the quadratic on (R, V, Other) has LOO RMSE 0.26 and Spearman 0.82 on Table 1."""
  tab = coords.table(coords.load_results("paper"), "vqa_overall")
  row = validate.loo_table(tab, ["scheffe", "linear"], reference=(0.6, 0.15), n_boot=200).set_index("predictor")
  assert row.at["scheffe", "loo_rmse"] == pytest.approx(0.26, abs=0.01)
  assert row.at["scheffe", "spearman"] == pytest.approx(0.82, abs=0.02)
  assert row.at["scheffe", "ci_lo"] < 0.82 < row.at["scheffe", "ci_hi"]
  assert row.at["scheffe", "regret"] == pytest.approx(0.2) and row.at["scheffe", "n_params"] == 6
  assert (row.at["scheffe", "opt_reasoning"], row.at["scheffe", "opt_visual"]) == pytest.approx((0.66, 0.165))
  assert row.at["linear", "spearman"] == pytest.approx(0.05, abs=0.02)      # the note's linear baseline


@pytest.mark.parametrize("name,tol", [("scheffe", 0.02), ("gp", 0.03), ("boosting", 0.07)])
def test_predictor_recovers_a_known_optimum(name, tol):
  r, v, rng = _design()
  tab = _frame(r, v, _surface(r, v) + rng.normal(0, 0.05, len(r)))
  model = predictors.make(name).fit(tab)
  opt_r, opt_v, _ = validate.optimum(model, coords.candidates(tab), True)
  assert abs(opt_r - 0.65) <= tol and abs(opt_v - 0.18) <= tol, (name, opt_r, opt_v)
  mean, std = model.predict(tab)
  assert np.all(np.isfinite(mean)) and np.all(std >= 0)
  assert np.sqrt(np.mean((mean - _surface(r, v)) ** 2)) < 0.3


def test_linear_recovers_a_corner_optimum():
  r, v, rng = _design()
  tab = _frame(r, v, 30 + 2 * r + 3 * v + rng.normal(0, 0.05, len(r)))
  model = predictors.make("linear").fit(tab)
  cand = coords.candidates(tab)
  truth = cand.iloc[int(np.argmax(2 * cand["reasoning"] + 3 * cand["visual"]))]
  opt_r, opt_v, _ = validate.optimum(model, cand, True)
  assert (opt_r, opt_v) == pytest.approx((truth["reasoning"], truth["visual"]), abs=0.02)
  assert model.coef[1:] == pytest.approx([2, 3], abs=0.3)


def test_shukor_law_recovers_its_optimum_at_one_scale_and_across_scales():
  r, v, rng = _design(40)
  law = predictors.make("shukor", higher_is_better=False)   # a loss: L = E + 1 / sum C h^g
  h = np.column_stack([r, v, 1 - r - v]).clip(1e-6)
  c, g = np.array([2.0, 3.0, 1.5]), np.array([0.5, 0.4, 0.7])
  loss = 2.0 + 1.0 / np.sum(c * h ** g, axis=1)
  tab = _frame(r, v, loss + rng.normal(0, 0.002, len(r)))
  law.fit(tab)
  assert law.n_params == 7
  cand = coords.candidates(tab)
  hc = cand[["reasoning", "visual", "other"]].to_numpy().clip(1e-6)
  truth = cand.iloc[int(np.argmin(1.0 / np.sum(c * hc ** g, axis=1)))]
  opt_r, opt_v, _ = validate.optimum(law, cand, False)
  assert (opt_r, opt_v) == pytest.approx((truth["reasoning"], truth["visual"]), abs=0.03)
  # across (N, D): 17 parameters; the N and D terms are recovered well enough to predict a held-out scale
  parts = []
  for n in (1e8, 3e8, 1e9):
    for d in (1e9, 1e10):
      y = loss + 0.5 * (n / 3e8) ** -0.3 + 0.8 * (d / 3e9) ** -0.25
      parts.append(_frame(r, v, y + rng.normal(0, 0.002, len(r)), params=n, tokens=d, size=f"{n:g}"))
  joint = predictors.make("shukor", higher_is_better=False).fit(pd.concat(parts[:-1], ignore_index=True))
  assert joint.n_params == 17 and joint.scale == ["log_params", "log_tokens"]
  mean, _ = joint.predict(parts[-1])
  assert np.sqrt(np.mean((mean - parts[-1]["y"]) ** 2)) < 0.02


@pytest.mark.parametrize("name,need", [("scheffe", 6), ("shukor", 7), ("gp", 4), ("linear", 3), ("boosting", 50)])
def test_predictors_refuse_fewer_runs_than_parameters(name, need):
  r, v, rng = _design(need)
  tab = _frame(r[:need - 1], v[:need - 1], _surface(r[:need - 1], v[:need - 1]))
  with pytest.raises(TooFewRuns, match=f"{name} needs at least {need} runs with distinct mixtures .*, got {need - 1}$"):
    predictors.make(name).fit(tab)
  # seeds repeat a mixture, they do not add one
  rep = _frame(np.repeat(r[:need - 1], 2), np.repeat(v[:need - 1], 2), np.zeros(2 * need - 2))
  with pytest.raises(TooFewRuns, match=f"got {need - 1}$"):
    predictors.make(name).fit(rep)
  with pytest.raises(ValueError, match="unknown predictor 'lgbm'"):
    predictors.make("lgbm")


def test_collinear_mixtures_are_refused():
  r = np.linspace(0.5, 0.8, 8)
  with pytest.raises(TooFewRuns, match="pin down only 3 of its 6 parameters"):
    predictors.make("scheffe").fit(_frame(r, 0.1 + 0 * r, _surface(r, 0.1)))


# ------------------------------------------------------------------------------------- proposals


def test_tilt_is_the_min_kl_blend():
  rates = coords.choose_rates(pd.DataFrame(), "table4")
  ref = mixtures.MIXES["mix0"]
  w = propose.tilt(ref, rates, 0.45, 0.18)
  d = mixtures.derived_shares(w, rates)
  assert d["reasoning"] == pytest.approx(45, abs=1e-3) and d["visual"] == pytest.approx(18, abs=1e-3)
  assert sum(w.values()) == pytest.approx(1)
  assert propose.tilt(ref, rates, 0.99, 0.5) is None     # no blend of these sources reaches it
  assert propose.expected_improvement([1.0, 2.0], [0.0, np.nan], 1.5).tolist() == [0.0, 0.5]


def test_propose_table1_writes_a_study_config(tmp_path):
  tab = coords.table(coords.load_results("paper"), "vqa_overall")
  props = propose.propose(tab, 3)
  assert len(props) == 3 and props["ei"].ge(0).all()
  seen = set(zip(tab["reasoning"].round(4), tab["visual"].round(4)))
  picks = list(zip(props["reasoning"].round(4), props["visual"].round(4)))
  assert len(set(picks)) == 3 and not set(picks) & seen
  # inside Table 1's region (widened by a lattice step): nothing at 50% reasoning above 17.5% visual
  assert propose.within_hull(props, tab[["reasoning", "visual"]].to_numpy(), 0.025).all()
  corner = pd.DataFrame({"reasoning": [0.5, 0.5, 0.85], "visual": [0.175, 0.3, 0.3]})
  assert propose.within_hull(corner, tab[["reasoning", "visual"]].to_numpy(), 0.025).tolist() == [True, False, False]
  path = np.array([[0.3, 0.2], [0.4, 0.15], [0.5, 0.1]])     # a 1-D path: the distance to its segment
  near = pd.DataFrame({"reasoning": [0.45, 0.45, 0.6], "visual": [0.135, 0.2, 0.05]})
  assert propose.within_hull(near, path, 0.025).tolist() == [True, False, False]
  path = propose.write_config(tmp_path / "proposed.py", props, tab, coords.resolve_target("vqa_overall"))
  config = runner.load_config_file(path)
  steps = spec.check(config.steps)
  assert config.name == "proposed_vqa_overall" and len(config.runs) == 3
  for run in config.runs.values():
    assert isinstance(mixtures.get_recipe(run["mixture"]), mixtures.GridCell) and run["size"] == "llama3_3b"
  assert {s["stage"] for s in steps} >= {"pretrain", "align", "sft", "eval"}
  with pytest.raises(ValueError, match="--k must be at least 1"):
    propose.propose(tab, 0)


def test_propose_tiny_blends_rerun_the_tiny_study(tmp_path):
  tab = coords.table(store.load(_write_study(tmp_path / "study")), "vqa_overall")
  tab = tab[tab["size"] == "m"]
  props = propose.propose(tab, 2, predictor="linear")
  for _, p in props.iterrows():
    assert sum(p["weights"].values()) == pytest.approx(1)
    assert sum(p["weights"][s] for s in ("code", "arithmetic", "counting", "syllogism")) == pytest.approx(p["reasoning"])
  path = propose.write_config(tmp_path / "prop.py", props, tab, coords.resolve_target("vqa_overall"))
  config = runner.load_config_file(path)
  assert config.name == "proposed_vqa_overall"
  assert sorted(config.runs) == sorted(f"prop{i}_{s}_s{k}" for i in (1, 2) for s in ("s", "m") for k in (0, 1))
  assert config.runs["prop1_m_s0"]["shares"].to_dict() == pytest.approx(props.iloc[0]["weights"], abs=1e-6)
  spec.check(config.steps)


# ------------------------------------------------------------------------------------ validation


def test_baselines_on_table1():
  tab = coords.table(coords.load_results("paper"), "vqa_overall")
  base = validate.baselines(tab, reference=(0.6, 0.15), ks=(9,), n_draws=2000, n_boot=100).set_index("baseline")
  assert base.at["random mixture", "regret"] == pytest.approx(32.7 - tab["y"].mean())
  assert base.at["random mixture", "p_tie"] == pytest.approx(4 / 30)          # 4 cells within 0.2 of 32.7
  assert base.at["more reasoning wins", "regret"] == pytest.approx(32.7 - (31.2 + 31.6 + 31.8) / 3)
  assert base.at["best of 9 observed", "p_tie"] == pytest.approx(0.78, abs=0.03)   # 1 - C(26,9)/C(30,9)


def test_cross_size_reports_refusals_and_baselines(tmp_path):
  tab = coords.table(store.load(_write_study(tmp_path / "study", noise=0.05)), "vqa_overall")
  res = validate.cross_size(tab)
  t = res["table"].set_index("predictor")
  assert (res["small"], res["large"]) == ("s", "m")
  assert set(t.index[t["status"] == "refused"]) == {"scheffe", "shukor", "boosting"}
  assert "got 4" in t.at["scheffe", "reason"]
  assert set(t.index[t["status"] == "fitted"]) == {"gp", "linear"}
  assert "rank by the s scores" in t.index and t.at["rank by the s scores", "spearman"] == pytest.approx(1.0)


def test_report_and_cli(tmp_path):
  """The validation page (few draws) with a tiny study, then `visprior mix` as a user runs it."""
  study = _write_study(tmp_path / "study")
  out = tmp_path / "docs" / "mixture_optimizer.md"
  report.write(str(out), tiny=str(study), n_boot=50, n_draws=2, slow_draws=1, ks=(9,), progress=lambda *_: None,
               names=("scheffe", "gp", "linear", "boosting"))
  text = out.read_text()
  for needle in ("## Verdict", "**scheffe** ranks the 30 cells", "boosting** refused to fit",
                 "## Tiny study: fit on the smaller size", "rank by the s scores"):
    assert needle in text, needle
  figs = tmp_path / "docs" / "figures" / "mixture_optimizer"
  assert (figs / "table1_surfaces.png").exists() and (figs / "table1_surfaces.csv").exists()
  assert "Not run: no results at `nowhere`" in "\n".join(report._tiny_section("nowhere", str(figs)))

  def visprior(*args):
    return subprocess.run([VISPRIOR, "mix", *args], cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                          timeout=300)
  proc = visprior("fit", f"--results={study}", f"--out={tmp_path / 'fit'}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "using size m only" in proc.stdout and "| gp | fitted, no LOO |" in proc.stdout and "| scheffe | refused |" in proc.stdout
  assert (tmp_path / "fit" / "surface_vqa_overall.png").exists()
  proc = visprior("propose", f"--results={study}", "--k=2", f"--out={tmp_path / 'proposed.py'}")
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "visprior mix propose --results=" in (tmp_path / "proposed.py").read_text()
  proc = visprior("fit", "--results=paper", "--target=vqa_nope")
  assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: unknown target 'vqa_nope'")
  proc = visprior("fit")
  assert proc.returncode == 2 and "error: --results is required" in proc.stderr
