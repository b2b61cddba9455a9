"""Analysis: paper mode, trend fits, optimal share, correlation clusters, effect sizes, figures, report, notebooks."""

import importlib.util
import math
import os
import re

import numpy as np
import pandas as pd
import pytest

from visprior_jax.analysis import figures, fits, paper, report, stats, synthetic, tables
from visprior_jax.data import mixtures
from visprior_jax.eval.vqa import mle_bench, registry
from visprior_jax.eval.vqa.base import CATEGORIES
from visprior_jax.study import store

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
  """The synthetic study (known effects), collected into a results table."""
  root = synthetic.write_synthetic_study(tmp_path_factory.mktemp("study") / "synthetic")
  return store.load(store.collect(root))


# ------------------------------------------------------------------------------------ paper mode


@pytest.mark.parametrize("source,run,overall", [
    ("Table 3", "7b_1t/language_favorable", 37.32), ("Table 3", "7b_1t/balanced", 38.64),
    ("Table 6", "7b_1t/language_favorable/blind", 38.20), ("Table 6", "7b_1t/balanced/blind", 39.56)])
def test_paper_overall_from_categories(source, run, overall):
  t = paper.paper_table(source)
  rows = t[(t["run"] == run) & t["benchmark"].str.startswith("vqa:")]
  cats = {m: v for m, v in zip(rows["metric"], rows["value"]) if m in CATEGORIES}
  assert len(cats) == 4
  # registry.summarize semantics: the mean over the 16 benchmarks = categories weighted 4/4/3/5
  assert round(paper.overall_from_categories(cats)["overall"], 2) == overall
  weighted = sum(cats[c] * n for c, n in zip(CATEGORIES, (4, 4, 3, 5))) / 16
  assert round(weighted, 2) == overall
  assert rows.loc[rows["metric"] == "overall", "value"].item() == overall
  derived = paper.derive_summaries(rows)
  assert derived.loc[derived["metric"] == "overall", "value"].round(2).tolist() == [overall]
  assert not t["approx"].any()


def test_paper_table_consistency():
  t = paper.paper_table()
  assert not t.duplicated(["source", "run", "stage", "benchmark", "metric"]).any()
  assert t["value"].notna().all()
  exact = {"Table 1", "Table 2", "Table 3", "Table 5", "Table 6", "Fig. 4", "Fig. 6", "Fig. 7"}
  assert not t[t["source"].isin(exact)]["approx"].any()
  assert t[t["source"].isin(["Fig. 1", "Fig. 3", "Fig. 5", "Sec. 4.5"])]["approx"].all()
  f2 = t[t["source"] == "Fig. 2"]
  assert not f2[f2["metric"] == "overall"]["approx"].any() and f2[f2["metric"] != "overall"]["approx"].all()
  # Fig. 2: the approximate category bars give back the exact Avg labels (within reading error)
  r2 = tables.runs_table(f2)
  for _, r in r2.iterrows():
    assert abs(paper.overall_from_categories({c: r[c] for c in CATEGORIES})["overall"] - r["overall"]) < 0.15
  # Fig. 7 and Table 5: MLE-Bench overall = sample-weighted mean of the splits (eval code's own function)
  counts = {"small": 732, "medium": 698, "large": 431}
  for source, tol in (("Fig. 7", 0.06), ("Table 5", 0.006)):   # Fig. 7 labels are rounded to 0.1
    m = t[t["source"] == source].pivot(index="run", columns="metric", values="value")
    for _, r in m.iterrows():
      assert abs(mle_bench.weighted_accuracy({k: r[k] for k in counts}, counts) - r["overall"]) < tol
  # Table 1 cells and Table 2 shares agree with the data module's own copy of the paper
  t1 = t[t["source"] == "Table 1"]
  cells = set(zip((t1["share.reasoning"] * 100).round().astype(int), (t1["share.visual"] * 100).round().astype(int)))
  assert cells == set(mixtures.TABLE1_CELLS)
  t2 = tables.runs_table(t[t["source"] == "Table 2"]).set_index("mixture")
  for name, row in mixtures.TABLE2.items():
    got = [t2.loc[name, f"share.{s}"] * 100 for s in mixtures.MIX_SOURCES] + [t2.loc[name, "share.reasoning"] * 100,
                                                                              t2.loc[name, "share.visual"] * 100]
    assert np.allclose(got, row[:8])
  for k in range(7):   # mix0-mix6: reasoning / visual = sum of weight x Table 4 rate (PAPER.md 2.5)
    d = mixtures.derived_shares(mixtures.MIXES[f"mix{k}"], mixtures.TABLE4_FRACTIONS)
    assert abs(d["reasoning"] - 100 * t2.loc[f"mix{k}", "share.reasoning"]) < 0.1
  # Table 2 language accuracy is stored as a fraction, like the store's lm:t_acc
  assert t2.loc["mix0", "t_acc"] == pytest.approx(0.530)
  assert set(registry.PAPER16) and paper.paper_spearman().loc["General", "OCR & Chart"] == 0.37


def test_paper_ranking_top_two():
  """PAPER.md 2.5: a rank sum over (t-acc, ppl, v-acc) reproduces the top 2 of Table 2 (mix6, mix8)."""
  ranking = stats.mixture_ranking(tables.runs_table(paper.paper_table("Table 2")))
  assert ranking["mixture"].tolist()[:2] == ["mix6", "mix8"]
  assert bool(ranking.set_index("mixture").loc["mix6", "pareto"])


# ------------------------------------------------------------------------------------------ fits


def test_log_linear_is_exact():
  x = np.array([1e9, 5e9, 1e10, 3e10, 1e11])
  fit = fits.log_linear(x, 2.5 + 0.75 * np.log(x))
  assert fit.params["a"] == pytest.approx(2.5, abs=1e-9) and fit.params["b"] == pytest.approx(0.75, abs=1e-12)
  with pytest.raises(ValueError, match="x > 0"):
    fits.log_linear([0, 1, 2], [1, 2, 3])


def test_power_law_recovers_parameters_and_band_contains_truth():
  rng = np.random.default_rng(0)
  x = np.repeat(np.array([2, 5, 10, 20, 30, 50, 70, 100]) * 1e9, 3)     # 3 seeds per token budget
  c, a, alpha = 35.0, 40.0 * 1e9 ** 0.6, 0.6

  def truth(t):
    return c - a * np.asarray(t) ** -alpha

  exact = fits.power_law(x, truth(x))
  assert exact.params["c"] == pytest.approx(c, rel=1e-4) and exact.params["alpha"] == pytest.approx(alpha, rel=1e-4)
  assert exact.params["a"] == pytest.approx(a, rel=1e-3)
  y = truth(x) + rng.normal(0, 0.15, len(x))
  trend = fits.fit_trend(x, y, n_boot=300, seed=42)
  assert trend.best == "power_law" and trend.band["method"] == "strata"
  p = trend.fits["power_law"].params
  assert p["c"] == pytest.approx(c, abs=1.0) and p["alpha"] == pytest.approx(alpha, abs=0.15)
  inside = (trend.band["lo"] <= truth(trend.grid)) & (truth(trend.grid) <= trend.band["hi"])
  assert inside.mean() >= 0.9
  assert np.all(trend.band["hi"] - trend.band["lo"] < 2.0)
  # a log-linear truth is preferred as log-linear; points at x = 0 are left out and counted
  xl = np.array([0, 1, 2, 4, 8, 16, 32, 64.0])
  tl = fits.fit_trend(xl, 3 + np.log(np.where(xl > 0, xl, 1)) + rng.normal(0, 0.01, len(xl)), n_boot=50)
  assert tl.best == "log_linear" and tl.n_excluded == 1
  # with n <= k + 1 the 3-parameter law cannot be compared (AICc = inf): log-linear wins the tie
  assert fits.fit_trend([1, 2, 4, 8], [1, 2, 2.5, 2.7], n_boot=20).fits["power_law"].aic == math.inf


def test_trend_table_per_group():
  rows = [dict(size=s, tokens=t, overall=c - 20 * (t / 1e6) ** -0.5) for s, c in (("a", 30), ("b", 33))
          for t in (2.5e6, 5e6, 10e6, 20e6, 40e6, 80e6)]
  table = fits.trend_table(pd.DataFrame(rows), "tokens", ["overall"], by="size", n_boot=30)
  best = table[table["best"]].set_index("group")
  assert set(best["model"]) == {"power_law"}
  assert best.loc["b", "param.c"] == pytest.approx(33, abs=1e-3) and not best["at_bound"].any()
  assert np.allclose(table.groupby("group")["weight"].sum(), 1.0)


def test_optimal_share_on_a_parabola():
  rng = np.random.default_rng(1)
  x = np.repeat([0.0, 25, 50, 75, 100], 4)
  y = 32 - 0.001 * (x - 60) ** 2 + rng.normal(0, 0.2, len(x))
  o = fits.optimal_share(x, y, n_boot=400, seed=42)
  assert o["x_opt"] == pytest.approx(60, abs=4) and o["ci_lo"] <= 60 <= o["ci_hi"]
  assert o["ci_hi"] - o["ci_lo"] < 25 and not o["at_edge"] and o["method"] == "strata"
  rising = fits.optimal_share([0, 25, 50, 75, 100], [1, 2, 3, 4, 5], n_boot=50)
  assert rising["at_edge"] and rising["x_opt"] == 100


# -------------------------------------------------------------------------------------- stats


def _two_factor_runs(n=60, seed=0, groups=(("General", "OCR & Chart"), ("Knowledge", "Vision-Centric"))):
  rng = np.random.default_rng(seed)
  f = rng.normal(size=(n, 2))
  cols = {}
  for k, group in enumerate(groups):
    for c in group:
      cols[c] = 30 + 2 * f[:, k] + rng.normal(0, 0.8, n)
  return pd.DataFrame(cols)


def test_spearman_clusters_two_latent_factors():
  rho, p, n = stats.spearman_matrix(_two_factor_runs())
  assert n == 60 and rho.loc["General", "OCR & Chart"] > 0.6 and abs(rho.loc["General", "Knowledge"]) < 0.4
  clusters = stats.cluster_categories(rho)["clusters"]
  assert clusters == [["General", "OCR & Chart"], ["Knowledge", "Vision-Centric"]]
  assert stats.is_perception_reasoning_split(clusters)
  other = stats.cluster_categories(stats.spearman_matrix(_two_factor_runs(
      groups=(("General", "Knowledge"), ("OCR & Chart", "Vision-Centric"))))[0])["clusters"]
  assert not stats.is_perception_reasoning_split(other)
  # the paper's own matrix (Fig. 4) gives the perception / reasoning priors (Finding 5)
  assert stats.is_perception_reasoning_split(stats.cluster_categories(paper.paper_spearman())["clusters"])
  with pytest.raises(ValueError, match="runs"):
    stats.spearman_matrix(_two_factor_runs(n=2))


def test_effect_size_verdicts():
  seeds = [1, 2, 3, 4, 5]
  runs = pd.DataFrame([dict(mixture=m, seed=s, overall=base + noise) for m, base in (("mix0", 30.0), ("mix6", 31.5),
                                                                                       ("mix10", 30.0))
                       for s, noise in zip(seeds, (0.1, -0.2, 0.15, -0.05, 0.0))])
  runs.loc[runs["mixture"] == "mix10", "overall"] += np.array([0.3, -0.3, 0.2, -0.25, 0.05])
  big = stats.effect_size(runs, "overall", "mix6", "mix0", by="mixture", n_boot=2000)
  assert big.paired and big.diff == pytest.approx(1.5) and big.ci_lo > 0 and big.significant
  assert big.verdict == "mix6 higher" and "significant at 95%" in big.sentence()
  null = stats.effect_size(runs, "overall", {"mixture": "mix10"}, {"mixture": "mix0"}, n_boot=2000)
  assert null.ci_lo < 0 < null.ci_hi and null.verdict == "not significant" and not null.significant
  assert "not significant" in null.sentence()
  one = stats.effect_size(runs[runs["seed"] <= 1], "overall", "mix6", "mix0", by="mixture")
  assert one.verdict == "cannot tell" and "cannot tell" in one.sentence()
  unpaired = stats.effect_size(runs[~((runs["mixture"] == "mix0") & (runs["seed"] == 5))], "overall", "mix6", "mix0",
                               by="mixture", n_boot=500)
  assert not unpaired.paired and unpaired.significant
  table = stats.effects_table(runs, "overall", "mixture", "mix0", n_boot=500)
  assert set(table["a"]) == {"mix6", "mix10"} and table.set_index("a").loc["mix6", "significant"]
  # three seeds: the expanded interval is wider than the plain percentile one
  assert stats.expanded_tail(0.05, 3) < 0.001 < stats.expanded_tail(0.05, 1000) * 1.2


# ------------------------------------------------------------------------- store -> runs -> figures


def test_runs_table_from_the_store(results):
  runs = tables.runs_table(results)
  assert len(runs) == results["run"].nunique() and runs["run"].is_unique
  mix0 = runs[runs["mixture"] == "mix0"]
  assert mix0["t_acc"].notna().all() and mix0["overall"].notna().all()   # pretrain lm + sft vqa in one row
  assert runs["overall"].min() > 10   # the earlier SFT step (2 points lower) was dropped by latest()
  clusters = stats.cluster_categories(stats.spearman_matrix(runs)[0])["clusters"]
  assert stats.is_perception_reasoning_split(clusters)
  sweeps = figures.figure_data("sweeps", results, n_boot=100)
  opt = sweeps[sweeps["kind"] == "opt"].set_index(["measure", "category"])["x"]
  assert opt[("overall", "reasoning")] == pytest.approx(75, abs=12)
  assert opt[("overall", "visual")] == pytest.approx(25, abs=12)


def test_figures_png_pdf_csv(results, tmp_path):
  made = {}
  for name, source in (("sweeps", "store"), ("grid", "paper"), ("spearman", "both"), ("mle_sources", "both")):
    paths = figures.draw(name, results, source=source, out_dir=tmp_path, n_boot=30)
    for kind in ("png", "pdf", "csv"):
      assert os.path.getsize(paths[kind]) > 0
    made[name] = pd.read_csv(paths["csv"])
  assert set(made["spearman"]["source"]) == {"store", "paper"}
  assert made["grid"]["y"].max() == 32.7 and made["grid"].loc[made["grid"]["best"], ["rea", "vis"]].values.tolist() \
      == [[60, 15]]
  mixes_only = results[results["mixture"].isin(["mix0", "mix6"])]
  with pytest.raises(figures.NoData):
    figures.draw("sweeps", mixes_only, source="store", out_dir=tmp_path)
  assert figures.draw("encoders", results, source="store", out_dir=tmp_path, missing="skip") is None   # 1 encoder
  with pytest.raises(ValueError, match="unknown figure"):
    figures.draw("nope", results)


def test_report_links_exist(results, tmp_path, capsys):
  path = report.write_report(results, tmp_path / "report", n_boot=30,
                             figures_names=["spearman", "mixtures", "encoders"])
  assert str(path) in capsys.readouterr().out
  text = path.read_text()
  links = re.findall(r"\]\(([^)]+)\)", text)
  assert len(links) == 9 and all(not link.startswith("/") for link in links)
  for link in links:
    assert (path.parent / link).exists(), link
  assert "mix6 vs mix0" in text and "paper only" in text and "## Correlation" in text
  assert re.search(r"not significant|significant at 95%", text)


def test_notebooks_execute(results, tmp_path):
  spec = importlib.util.spec_from_file_location("run_notebooks", os.path.join(REPO, "analysis", "run_notebooks.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  table = tmp_path / "results.parquet"
  results.to_parquet(table)
  outcome = module.run(table, tmp_path / "nb", n_boot=20, jobs=3, source="store", timeout=300)
  assert outcome == {"mixtures": None, "priors": None, "scaling": None}
  for name in outcome:
    assert (tmp_path / "nb" / f"{name}.ipynb").exists()
  assert (tmp_path / "nb" / "figures" / "spearman.png").exists()


def test_two_seeds_that_agree_in_sign_are_not_enough_for_a_claim():
  """Two paired seeds, both differences positive (+1 and +3): the bootstrap range alone would exclude
  0; the reported interval also covers Student's t (df 1: mean 2 +- 12.7 x 1) and says not significant.
  Ten seeds with the same mean and spread are significant."""
  runs = pd.DataFrame({"mixture": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "overall": [11.0, 13.0, 10.0, 10.0]})
  e = stats.effect_size(runs, "overall", "a", "b", by="mixture")
  assert e.paired and e.diff == 2.0 and e.verdict == "not significant"
  assert e.ci_lo == pytest.approx(2 - 12.706 * 1.0, abs=1e-2) and e.ci_hi == pytest.approx(2 + 12.706, abs=1e-2)
  many = pd.DataFrame({"mixture": ["a"] * 10 + ["b"] * 10, "seed": list(range(10)) * 2,
                       "overall": [11.0, 13.0] * 5 + [10.0] * 10})
  assert stats.effect_size(many, "overall", "a", "b", by="mixture").verdict == "a higher"
