"""Eval outputs (records, predictions, resume) and the paper's VQA category / overall means."""

import json

import pytest

from visprior_jax.eval.results import EvalOutput, read_records


def _out(tmp_path):
  return EvalOutput(tmp_path / "eval", run="r1", stage="sft", step=7, checkpoint="/ckpt")


def test_records_are_keyed_by_run_and_checkpoint_and_replaced_on_rerun(tmp_path):
  out = _out(tmp_path)
  s = {"parser": "paper"}
  out.finish("gqa", s, {"accuracy": 50.0}, suite="vqa", category="General", primary="accuracy", n=4, n_skipped=1)
  out.finish("mme", s, {"perception_100": 40.0, "perception": 800.0}, suite="vqa", primary="perception_100", n=8)
  out.finish("gqa", s, {"accuracy": 75.0}, suite="vqa", category="General", primary="accuracy", n=4)
  recs = read_records([tmp_path])
  assert len(recs) == 3
  gqa = [r for r in recs if r["benchmark"] == "gqa"]
  assert len(gqa) == 1 and gqa[0]["value"] == 75.0
  r = gqa[0]
  assert (r["run"], r["stage"], r["step"], r["checkpoint"], r["suite"], r["category"], r["metric"], r["primary"],
          r["n"]) == ("r1", "sft", 7, "/ckpt", "vqa", "General", "accuracy", True, 4)
  mme = {r["metric"]: r for r in recs if r["benchmark"] == "mme"}
  assert mme["perception_100"]["primary"] and not mme["perception"]["primary"]


def test_resume_keeps_finished_work_and_drops_stale_settings(tmp_path):
  out = _out(tmp_path)
  s = {"parser": "paper"}
  out.append_predictions("gqa", s, [{"id": "a", "record": {"score": 1.0}}, {"id": "b", "record": {"score": 0.0}}])
  with (tmp_path / "eval" / "predictions" / "gqa.jsonl").open("a") as fh:
    fh.write('{"id": "c", "rec')                         # torn line from a crash
  assert set(out.predictions("gqa", s)) == {"a", "b"}
  assert out.finished("gqa", s) is None
  out.finish("gqa", s, {"accuracy": 50.0}, suite="vqa", primary="accuracy", n=2)
  assert out.finished("gqa", s)["metrics"] == {"accuracy": 50.0}
  other = {"parser": "lmms"}
  assert out.finished("gqa", other) is None
  assert out.predictions("gqa", other) == {}             # stale: moved aside
  assert (tmp_path / "eval" / "predictions" / "gqa.jsonl.stale").exists()
  assert out.finished("gqa", s) is None                   # its done marker went with it


def test_nan_values_are_written_as_null(tmp_path):
  out = _out(tmp_path)
  out.finish("x", {}, {"m": float("nan")}, suite="lm", primary="m")
  line = (tmp_path / "eval" / "metrics.jsonl").read_text()
  assert json.loads(line)["value"] is None


def test_overall_is_the_unweighted_mean_of_the_16_and_reproduces_table3():
  """PAPER.md 5.1 Table 3 (Lang-Favorable): category means 46.92 / 28.35 / 21.49 / 46.31 -> overall 37.32."""
  from visprior_jax.eval.vqa import registry
  cats = {"General": 46.92, "Knowledge": 28.35, "OCR & Chart": 21.49, "Vision-Centric": 46.31}
  primary = {n: cats[registry.BENCHMARKS[n].category] for n in registry.PAPER16}
  s = registry.summarize(primary)
  assert {k: round(v[0], 2) for k, v in s.items() if k in cats} == cats
  assert round(s["overall"][0], 2) == 37.32 and s["overall"][1] == 16
  assert s["perception"] == pytest.approx(((4 * 46.92 + 3 * 21.49) / 7, 7))
  assert s["reasoning"] == pytest.approx(((4 * 28.35 + 5 * 46.31) / 9, 9))
  # Balanced: 49.59, 29.02, 23.63, 46.59 -> 38.64
  cats = {"General": 49.59, "Knowledge": 29.02, "OCR & Chart": 23.63, "Vision-Centric": 46.59}
  s = registry.summarize({n: cats[registry.BENCHMARKS[n].category] for n in registry.PAPER16})
  assert round(s["overall"][0], 2) == 38.64
  # a partial set: category means only, no overall; extras never count
  s = registry.summarize({"gqa": 10.0, "mme": 30.0, "mle_bench": 99.0, "docvqa": 99.0})
  assert s == {"General": (20.0, 2), "perception": (20.0, 2)}


def test_registry_sets_and_categories():
  from visprior_jax.eval.vqa import registry
  from visprior_jax.eval.vqa.base import CATEGORIES
  assert len(registry.PAPER16) == 16
  counts = {c: sum(registry.BENCHMARKS[n].category == c for n in registry.PAPER16) for c in CATEGORIES}
  assert counts == {"General": 4, "Knowledge": 4, "OCR & Chart": 3, "Vision-Centric": 5}
  assert all(registry.BENCHMARKS[n].paper for n in registry.PAPER16)
  assert not any(registry.BENCHMARKS[n].paper for n in ("docvqa", "mmvp", "mle_bench"))
  assert registry.resolve("cambrian")[-2:] == ["docvqa", "mmvp"]
  assert registry.resolve("gqa,paper16")[:2] == ["gqa", "mme"]
  with pytest.raises(ValueError, match="unknown VQA benchmark 'nope'"):
    registry.resolve("gqa,nope")


def test_runs_without_the_paper_benchmarks_average_their_own_categories():
  from visprior_jax.eval.vqa import registry
  s = registry.summarize({"tiny_general": 60.0, "tiny_knowledge": 40.0, "tiny_ocr": 20.0, "tiny_vision": 50.0,
                          "mle_bench": 90.0})
  assert s["General"] == (60.0, 1) and s["Vision-Centric"] == (50.0, 1)
  assert s["overall"] == (42.5, 4) and s["perception"] == (40.0, 2) and s["reasoning"] == (45.0, 2)
