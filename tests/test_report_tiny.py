"""The tiny study's report on a synthetic results store (analysis/synthetic_tiny.py: the real layout, records
made by the real scorers and writer, known effects plus item and seed noise, blank-image evaluations, two
sizes): per-type baselines, the constant-answer flag, the headline effects and the Findings verdicts."""

import math
import re

import pandas as pd
import pytest

from visprior_jax.analysis import figdata, findings, headline_effects as he, question_types as qt, report, \
    synthetic_tiny, tables, tiny_report
from visprior_jax.study import store

VISUAL_OR_MLE = ("colour", "shape", "count", "relation", "relative_size", "mle_small", "mle_medium", "mle_large")


@pytest.fixture(scope="module")
def df(tmp_path_factory):
  root = synthetic_tiny.write_synthetic_tiny_study(tmp_path_factory.mktemp("tiny") / "study", seed=0)
  return store.load(store.collect(root))


@pytest.fixture(scope="module")
def real(df):
  return qt.per_run(df)


def test_store_keeps_blank_records_apart(df, real):
  assert set(df["images"]) == {"real", "blank"} and qt.is_tiny(df)
  blank = qt.per_run(df, images="blank")
  assert len(real) == len(blank) == len(synthetic_tiny.runs_spec())
  assert tables.runs_table(df)["overall"].tolist() == real["overall"].tolist()
  assert not (blank.set_index("run")["count"] == real.set_index("run")["count"]).all()


def test_question_type_table_has_the_baselines(df, real):
  summary = qt.summary(real, qt.per_run(df, images="blank")).set_index("measure")
  expected = synthetic_tiny.expected_baselines(seed=0)
  names = {"relative_size": "size", "mle_small": "small", "mle_medium": "medium", "mle_large": "large"}
  for key in [t.key for t in qt.TYPES]:
    want = expected[names.get(key, key)]
    assert summary.loc[key, "chance"] == pytest.approx(want["chance"]), key
    assert summary.loc[key, "majority"] == pytest.approx(want["majority"]), key
  assert summary.loc["count", "chance"] == 25.0 and summary.loc["relation", "chance"] == 50.0
  assert summary.loc["word", "chance"] == pytest.approx(100 / 8)        # OCR: 1 / distinct answers (8 words)
  # without the image the synthetic models give each visual type's most common answer: no-image = majority
  for key in VISUAL_OR_MLE:
    assert summary.loc[key, "no_image"] == pytest.approx(summary.loc[key, "majority"]), key
  # the control does not need the image: its no-image score is a real score, near its truth, not a constant
  assert summary.loc["fact_in_text", "no_image_runs"] == len(real)
  for cat in ("General", "Vision-Centric", "overall"):
    assert {"chance", "majority", "no_image", "mean", "min", "max"} <= set(summary.columns) and \
        summary.loc[cat, "min"] <= summary.loc[cat, "mean"] <= summary.loc[cat, "max"]
  assert summary.loc["overall", "chance"] == pytest.approx(real["overall.chance"].mean())


def test_a_type_answered_with_one_constant_is_flagged(real):
  summary = qt.summary(real).set_index("measure")
  assert summary.loc["number", "constant"] == f"{len(real)}/{len(real)} CONSTANT"
  assert summary.loc["number", "distinct"] == "1" and summary.loc["number", "max"] == 0.0
  const = qt.constant_answers(real)
  assert set(const["type"]) == {"number"} and len(const) == len(real) and (const["top_share"] == 100.0).all()
  m = qt.seeing_margins(real)
  best = m.iloc[0]
  assert best["margin"] == m["margin"].max() and best["run"].startswith("balanced_m")   # the larger model sees most


def test_headline_effects_recover_the_known_effects(real):
  rea = he.sweep_effect(real, "reasoning", "Vision-Centric")
  truth = 100 * 100 * synthetic_tiny.TRUTH["vision_per_reasoning_pct"]          # +20 points over 0-100%
  assert rea.runs == 10 and (rea.x_min, rea.x_max) == (0.0, 100.0)
  assert rea.lo < truth < rea.hi and rea.lo > 0 and rea.estimate == pytest.approx(100 * rea.slope)
  assert rea.slope_lo < truth / 100 < rea.slope_hi
  ctrl = he.sweep_effect(real, "visual", qt.CONTROL)
  assert ctrl.lo < 100 * 100 * synthetic_tiny.TRUTH["control_per_visual_pct"] < ctrl.hi and ctrl.lo > 0
  size = he.size_effect(real, "overall")
  truth = 100 * synthetic_tiny.TRUTH["size_m"] / 2   # +15 on General and Vision-Centric, 2 of 4 benchmarks: +7.5
  assert size.paired and size.runs == 8 and size.lo < truth < size.hi
  # noise: a run's item standard error (40 items a type) against the spread between runs
  for e in (rea, ctrl, size):
    assert 1 < e.item_noise < 10 and e.run_noise > 0 and e.dominant in ("items", "runs")
  assert he.sweep_effect(real, "grid", "overall") is None
  # runs differing only in seed (2 per sweep point, 4 per size of "balanced"): the seed noise itself
  reps = he.replicate_noise(real, "overall")
  assert (reps["groups"], reps["runs"]) == (12, 28) and reps["sd"] > 0 and reps["item_se"] > 0
  assert set(figdata.one_size(real)["size"]) == {"s"}    # curves over shares: the most common size only


def test_line_fit_matches_a_hand_worked_case():
  fit = he.line_fit([0, 1, 2, 3], [1.0, 3.0, 2.0, 4.0])
  # slope = Sxy / Sxx = 4 / 5 = 0.8; residuals -0.3, 0.9, -0.9, 0.3 -> s^2 = 1.8 / 2; se = sqrt(0.9 / 5);
  # t(0.975, 2) = 4.302653
  assert fit["slope"] == pytest.approx(0.8) and fit["df"] == 2 and fit["resid_sd"] == pytest.approx(math.sqrt(0.9))
  assert fit["se"] == pytest.approx(math.sqrt(0.9 / 5)) and fit["hi"] - fit["slope"] == pytest.approx(
      4.302653 * math.sqrt(0.9 / 5), rel=1e-5)
  # two sizes: one slope, two intercepts
  band = he.line_band(fit, grid=[1.5])
  assert band["y"].iloc[0] == pytest.approx(2.5) and band["hi"].iloc[0] - 2.5 == pytest.approx(
      4.302653 * math.sqrt(0.9 / 4), rel=1e-5)                     # at the mean of x: s / sqrt(n)
  two = he.line_fit([0, 1, 0, 1, 2], [0.0, 1.0, 10.0, 11.0, 2.0], ["s", "s", "m", "m", "s"])
  assert two["slope"] == pytest.approx(1.0) and two["intercepts"] == pytest.approx({"s": 0.0, "m": 10.0})
  assert he.line_band(two, grid=[2.0])["y"].iloc[0] == pytest.approx(2.0)   # the most common size's line


def test_verdicts_are_mechanical():
  assert findings.verdict(1, 2) == "agrees" and findings.verdict(-2, -1) == "disagrees"
  assert findings.verdict(-2, -1, direction=-1) == "agrees" and findings.verdict(-1, 1) == "not significant"
  assert findings.verdict(math.nan, math.nan) == "not significant"
  assert findings.verdict(1, 2, available=False) == "not testable here"
  assert findings.interior_verdict(20, 40, 0, 100) == "agrees"
  assert findings.interior_verdict(100, 100, 0, 100) == "disagrees"
  assert findings.interior_verdict(0, 60, 0, 100) == "not significant"


def test_findings_table(df, tmp_path):
  table = tiny_report.findings_table(tiny_report.Study(df, tmp_path, n_boot=50)).set_index("finding")
  assert set(table["verdict"]) <= set(findings.VERDICTS)
  assert table.loc["Finding 2/3 (reasoning)", "verdict"] == "agrees"          # the known reasoning effect
  assert table.loc["Control (not a paper claim)", "verdict"] == "agrees" and \
      table.loc["Control (not a paper claim)", "control"]
  for name, row in table.iterrows():   # every interval row's verdict is the rule applied to its interval
    if name not in ("Finding 3 (visual)", "Finding 5") and row["verdict"] != "not testable here":
      assert row["verdict"] == findings.verdict(row["lo"], row["hi"]), name
  for name in ("Finding 4", "Finding 6", "Hypothesis 2", "Hypothesis 3"):
    assert table.loc[name, "verdict"] == "not testable here"
  assert re.search(r"\[[-+]\d", table.loc["Finding 1", "toy_estimate"])        # an interval is printed
  assert findings.counts(table.reset_index())["not testable here"] == 4


def test_tiny_report(df, tmp_path):
  path = report.write_report(df, tmp_path / "report", n_boot=20, figures_names=["grid", "mixtures"], quiet=True)
  text = path.read_text()
  order = ["## Runs", "## Models that see?", "## Findings", "## Question types and their baselines",
           "## The control", "## Headline effects", "## Correlation", "## The paper's figures (reference, no toy data)"]
  assert [text.index(h) for h in order] == sorted(text.index(h) for h in order)
  paper_part = text[text.index("## The paper's figures"):]
  assert "figures/grid.png" in paper_part and "figures/grid.png" not in text[:text.index("## The paper's figures")]
  assert "**majority answer**" in text and "**no image (mean)**" in text and "CONSTANT" in text
  links = re.findall(r"\]\(([^)]+)\)", text)
  assert links and all((path.parent / link).exists() for link in links), [k for k in links
                                                                         if not (path.parent / k).exists()]
  for name in ("tiny_types", "tiny_sweep_reasoning", "tiny_sweep_visual", "tiny_size", "tiny_control"):
    assert f"figures/{name}.png" in text
  sweep = pd.read_csv(tmp_path / "report" / "figures" / "tiny_sweep_reasoning.csv")
  assert {"chance", "majority", "no image"} <= set(sweep.loc[sweep["kind"] == "baseline", "series"])
  fig3 = pd.read_csv(tmp_path / "report" / "figures" / "sweeps.csv")    # the generic figure gets them too
  assert (fig3[fig3["source"] == "store"]["kind"] == "baseline").any() and \
      not (fig3[fig3["source"] == "paper"]["kind"] == "baseline").any()
  effects = pd.read_csv(tmp_path / "report" / "tables" / "headline_effects.csv")
  assert {"item_noise", "run_noise", "chance", "majority", "no_image"} <= set(effects.columns)


def test_tiny_report_without_sweeps_blank_images_or_a_second_size(df, tmp_path):
  only = df[(df["images"] == "real") & df["run"].str.startswith("balanced_s")]
  path = report.write_report(only, tmp_path / "r", n_boot=20, figures_names=[], quiet=True, paper=False)
  text = path.read_text()
  assert "no run has a no-image evaluation" in text and "## Findings" in text
  table = pd.read_csv(tmp_path / "r" / "tables" / "findings.csv").set_index("finding")
  for name in ("Finding 1", "Finding 2/3 (reasoning)", "Finding 3 (visual)", "Control (not a paper claim)"):
    assert table.loc[name, "verdict"] == "not testable here", name
  assert "tiny_sweep_reasoning" not in text and "tiny_size" not in text
