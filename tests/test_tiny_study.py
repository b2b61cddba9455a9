"""The embedded tiny study, quick variant: every stage (world data, text pools, encoder, pretrain, align,
SFT, eval, store, report) through the study runner; a rerun redoes nothing."""

import pandas as pd

from conftest import REPO

from visprior_jax.study import runner, store


def test_quick_tiny_study_end_to_end(tmp_path):
  study = runner.load_config_file(f"{REPO}/configs/study/tiny.py:quick")
  root = tmp_path / "tiny"
  out = runner.run_study(study, root, log=lambda m: None)
  assert set(out.values()) == {"done"}, out
  df = store.load(root / "results.parquet")
  primary = df[df["primary"]]
  assert set(primary["run"]) == set(study.runs) == {"r0_s", "r30_s"}
  assert set(df["images"].fillna("real")) == {"real", "blank"}        # the no-image evaluation ran too
  for run in study.runs:
    got = set(primary.loc[primary["run"] == run, "benchmark"])
    assert {"tiny_general_open", "tiny_knowledge_open", "tiny_ocr", "tiny_vision_open", "mle_bench",
            "vqa:overall"} <= got
  assert pd.to_numeric(primary["value"]).between(0, 100).all()
  report = (root / "report" / "report.md").read_text()
  assert "r0_s" in report and "## Models that see?" in report and "## Findings" in report
  assert runner.run_study(study, root, log=lambda m: None) == {k: "skipped" for k in out}
