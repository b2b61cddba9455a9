"""The results store: run.json + metrics.jsonl files -> one Parquet table (study/store.py)."""

import json

import pandas as pd
import pytest

from visprior_jax.eval.results import EvalOutput
from visprior_jax.study import store

T_OLD, T_NEW = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"


def _spec(run, mixture, seed, **kw):
  return dict(study="t", run=run, size="llama3_tiny", params=1000, tokens=20_000, mixture=mixture,
              shares={"web_crawl": 0.4, "code": 0.6} if mixture == "mix6" else {"web_crawl": 1.0}, encoder="vit",
              seed=seed, sft="full", blind=False, **kw)


def _record(run, stage, step, benchmark, metric, value, time=T_OLD, **kw):
  return dict(run=run, stage=stage, step=step, checkpoint="/ckpt", suite=benchmark.split(":")[0], benchmark=benchmark,
              category=kw.pop("category", None), metric=metric, value=value, primary=True, n=10, n_skipped=0,
              settings="h", time=time, **kw)


def _write(path, records):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture
def study(tmp_path):
  """Two runs, two stages each (pretrain lm evals through the real EvalOutput writer, sft VQA), a
  re-evaluation that duplicates records with a later time, a corrupt file and a file with a bad line."""
  root = tmp_path / "study"
  for run, mixture, seed in (("a", "mix6", 1), ("b", "mix0", 2)):
    rd = root / run
    rd.mkdir(parents=True)
    (rd / "run.json").write_text(json.dumps(_spec(run, mixture, seed)))
    out = EvalOutput(rd / "pretrain" / "eval" / "step_100", run=f"{run}_eval_name", stage="pretrain", step=100,
                     checkpoint=str(rd / "pretrain"))
    out.finish("lm:t_acc", {"x": 1}, {"t_acc": 0.4 if run == "a" else 0.3}, suite="lm", primary="t_acc", n=8)
    out.finish("lm:ppl", {"x": 1}, {"ppl": 20.0}, suite="lm", primary="ppl", n=2)
    _write(rd / "sft" / "eval" / "step_50" / "metrics.jsonl",
           [_record(run, "sft", 50, "vqa:overall", "overall", 10.0)])
    _write(rd / "sft" / "eval" / "step_200" / "metrics.jsonl",
           [_record(run, "sft", 200, "vqa:overall", "overall", 30.0),
            _record(run, "sft", 200, "vqa:General", "General", 31.0, category="General")])
  # run a re-evaluated at step 200: newer time, in a folder that sorts (and is read) BEFORE step_200
  _write(root / "a" / "sft" / "eval" / "a_rerun" / "metrics.jsonl",
         [_record("a", "sft", 200, "vqa:overall", "overall", 33.0, time=T_NEW)])
  (root / "b" / "sft" / "eval" / "broken").mkdir(parents=True)
  (root / "b" / "sft" / "eval" / "broken" / "metrics.jsonl").write_text("{not json\n\x00garbage\n")
  _write(root / "b" / "sft" / "eval" / "extra" / "metrics.jsonl",
         [_record("b", "sft", 300, "mle_bench", "overall", 27.0)])
  with (root / "b" / "sft" / "eval" / "extra" / "metrics.jsonl").open("a") as fh:
    fh.write('{"benchmark": "x"}\n')   # no metric / value: a bad line, the rest of the file is kept
  return root


def test_collect_round_trip(study):
  with pytest.warns(UserWarning, match=r"1 bad files and 1 bad lines.*broken/metrics.jsonl"):
    path = store.collect(study)
  assert path == study / "results.parquet" and path.exists()
  df = store.load(path)
  meta = df.attrs["collect"]
  assert meta["bad_files"] == 1 and meta["bad_lines"] == 1 and meta["duplicates"] == 1
  assert meta["runs"] == 2 and meta["metrics_files"] == 9
  assert any("extra/metrics.jsonl:2" in name for name in meta["bad_line_names"])
  # spec joined, shares flattened, run named by the spec (not the eval's own name)
  assert set(df["run"]) == {"a", "b"}
  a = df[df["run"] == "a"]
  assert (a["mixture"] == "mix6").all() and (a["share.code"] == 0.6).all() and (a["seed"] == 1).all()
  assert df[df["run"] == "b"]["share.code"].isna().all()
  assert not df["blind"].any() and str(df["step"].dtype) == "Int64" and df["value"].dtype == "float64"
  # the later evaluation wins although it was read first
  overall = df[(df["run"] == "a") & (df["benchmark"] == "vqa:overall") & (df["step"] == 200)]
  assert overall["value"].tolist() == [33.0]
  assert len(df[df.duplicated(list(store.KEY), keep=False)]) == 0
  # both stages of both runs are there
  assert set(zip(df["run"], df["stage"])) == {("a", "pretrain"), ("a", "sft"), ("b", "pretrain"), ("b", "sft")}
  assert set(df["run_dir"]) == {"a", "b"}


def test_latest_keeps_last_step_per_stage(study):
  with pytest.warns(UserWarning):
    df = store.load(store.collect(study))
  last = store.latest(df)
  steps = last.groupby(["run", "stage"])["step"].agg(lambda s: sorted(set(s)))
  assert steps[("a", "sft")] == [200] and steps[("b", "sft")] == [300] and steps[("a", "pretrain")] == [100]
  # a row without a step is kept only when its (run, stage) has no numbered step
  extra = pd.DataFrame([dict(run="c", stage="sft", step=pd.NA, benchmark="vqa:overall", metric="overall", value=1.0),
                        dict(run="a", stage="sft", step=pd.NA, benchmark="vqa:overall", metric="overall", value=2.0)])
  both = store.latest(pd.concat([df, extra.astype({"step": "Int64"})], ignore_index=True))
  assert 1.0 in both["value"].tolist() and 2.0 not in both["value"].tolist()


def test_load_collects_a_study_dir_and_reads_outside_records(tmp_path):
  root = tmp_path / "s"
  _write(root / "loose" / "eval" / "metrics.jsonl", [_record("own_name", "sft", 1, "vqa:overall", "overall", 5.0)])
  (root / "r1").mkdir()
  (root / "r1" / "run.json").write_text("[1, 2]")   # not an object: a bad file; its records keep their own run
  _write(root / "r1" / "sft" / "eval" / "metrics.jsonl", [_record("r1_eval", "sft", 1, "vqa:overall", "overall", 6.0)])
  (root / "r2").mkdir()
  (root / "r2" / "run.json").write_text(json.dumps(dict(run="r2", tokens="lots", seed=3)))   # mixed types
  (root / "r3").mkdir()
  (root / "r3" / "run.json").write_text(json.dumps(dict(run="r3", tokens=10, seed=None)))
  for r in ("r2", "r3"):
    _write(root / r / "sft" / "eval" / "metrics.jsonl", [_record("x", "sft", 1, "vqa:overall", "overall", 7.0)])
  _write(root / "r3" / "sft" / "metrics.jsonl", [{"step": 1, "loss": 2.0}])   # a training log: not read
  with pytest.warns(UserWarning, match="r1/run.json"):
    df = store.load(root)        # no results.parquet yet: collected first
  assert (root / "results.parquet").exists()
  assert set(df["run"]) == {"own_name", "r1_eval", "r2", "r3"}
  assert df.loc[df["run"] == "own_name", "run_dir"].isna().all()
  assert sorted(df["tokens"].dropna().tolist()) == ["10", "lots"]    # mixed -> text, Parquet-safe
  assert store.load(root).shape == df.shape                          # second load reads the file


def test_empty_study_and_missing_dir(tmp_path):
  (tmp_path / "empty").mkdir()
  df = store.load(store.collect(tmp_path / "empty"))
  assert df.empty and "value" in df
  with pytest.raises(FileNotFoundError, match="not found"):
    store.collect(tmp_path / "nope")
