"""The tiny study's report sections: baselines first, then what was varied, then the paper's findings.

``report.write_report`` uses these when the results hold tiny-suite records (``question_types.is_tiny``);
other studies' reports are unchanged. Every score is shown beside its baselines (chance, majority answer,
no-image score; ``question_types``), so a model that answers every question of a type with one constant
is seen as such. Sections (:func:`sections`):

  Runs                    per run: spec, category scores, margin over the majority answer on the question
                          types that need the image, how many types it answers with one constant; then the
                          baseline rows (chance, majority, no image)
  Models that see?        the best run's margin over the majority answer averaged over colour, shape,
                          count, relation and size (and over its own no-image score), with its item
                          standard error; the (run, type) pairs answered with one constant
  Findings                one row per paper finding / hypothesis the toy can (or cannot) test, the toy's
                          estimate with its 95% interval, one verdict (``findings``)
  Question types          per type and category: chance, majority, no-image, the runs' mean / min / max,
                          distinct answers, runs answering with one constant (CSV per run beside it)
  The control             facts stated only in the pre-training text vs the visual-text share
  Headline effects        reasoning share -> Vision-Centric, visual share -> control and Knowledge, size
                          -> Avg VQA: one line (or paired difference) over many runs, 95% interval, item
                          vs run noise (``headline_effects``); the sweep and size figures; optimal shares

Tables are also written as CSV under ``<out>/tables``.
"""

from __future__ import annotations

import math

import pandas as pd
from etils import epath

from visprior_jax.analysis import findings as findings_lib, fits, tiny_figures
from visprior_jax.analysis import headline_effects as he, question_types as qt
from visprior_jax.analysis.figdata import correlation_runs, one_size, optimal_share_rows, sweep_runs
from visprior_jax.analysis.markdown import md_table

TABLES = "tables"
SWEEPS = ("reasoning", "visual")


class Study:
  """The tiny study's per-run tables (real and blank images) and where the report goes."""

  def __init__(self, df: pd.DataFrame, out_dir, n_boot: int = 1000, seed: int = 42):
    self.df = df
    self.real = qt.per_run(df)
    self.blank = qt.per_run(df, images="blank")
    self.summary = qt.summary(self.real, self.blank)
    self.out = epath.Path(out_dir)
    self.figures = self.out / "figures"
    self.tables = self.out / TABLES
    self.n_boot, self.seed = n_boot, seed
    self.effects = {
        "reasoning_vision": he.sweep_effect(self.real, "reasoning", "Vision-Centric"),
        "visual_vision": he.sweep_effect(self.real, "visual", "Vision-Centric"),
        "visual_control": he.sweep_effect(self.real, "visual", qt.CONTROL),
        "visual_knowledge": he.sweep_effect(self.real, "visual", "Knowledge"),
        "visual_mle_gap": self._mle_gap_effect(),
        "size_overall": he.size_effect(self.real, "overall"),
    }

  def _mle_gap_effect(self):
    """Visual share -> (MLE small + medium) / 2 - MLE large (Hypothesis 1's toy reading)."""
    r = self.real
    if not all(k in r for k in ("mle_small", "mle_medium", "mle_large")):
      return None
    gap = r.assign(mle_gap=(r["mle_small"] + r["mle_medium"]) / 2 - r["mle_large"],
                   **{"mle_gap.se": (r["mle_small.se"] ** 2 / 4 + r["mle_medium.se"] ** 2 / 4
                                     + r["mle_large.se"] ** 2) ** 0.5})
    return he.sweep_effect(gap, "visual", "mle_gap")

  def csv(self, table: pd.DataFrame, name: str) -> str:
    self.tables.mkdir(parents=True, exist_ok=True)
    (self.tables / f"{name}.csv").write_text(table.to_csv(index=False))
    return f"[CSV]({TABLES}/{name}.csv)"

  def baseline(self, key: str) -> dict:
    return qt.measure_baselines(self.real, self.blank, key)


def _figure(paths: dict | None, title: str, caption: str) -> list[str]:
  if not paths:
    return []
  return [f"\n### {title}\n", caption + "\n", f"![{paths['png'].stem}](figures/{paths['png'].name})\n",
          f"[PDF](figures/{paths['pdf'].name}) · [numbers (CSV)](figures/{paths['csv'].name})\n"]


def _pm(v) -> str:
  return f"{v:+.2f}" if isinstance(v, (int, float)) and math.isfinite(v) else "n/a"


# ------------------------------------------------------------------------------------------ sections


def runs_section(s: Study) -> list[str]:
  r = s.real
  margins = qt.seeing_margins(r, s.blank).set_index("run")
  const = qt.constant_answers(r).groupby("run").size()
  table = r.assign(visual_share=qt.visual_share(r), seeing_margin=r["run"].map(margins["margin"]),
                   constant_types=r["run"].map(const).fillna(0).astype(int))
  cols = [c for c in ["run", "size", "mixture", "seed", "visual_share", "overall", "General", "Knowledge",
                      "OCR & Chart", "Vision-Centric", qt.CONTROL, "seeing_margin", "constant_types"] if c in table]
  table = table.sort_values([c for c in ("mixture", "size", "seed") if c in table])[cols]
  base = []
  for name, key in (("chance", "chance"), ("majority answer", "majority"), ("no image (mean)", "no image")):
    row = {"run": f"**{name}**"}
    for m in cols:
      if m in qt.measure_keys():
        row[m] = s.baseline(m)[key]
    base.append(row)
  shown = pd.concat([table.astype(object), pd.DataFrame(base, dtype=object)], ignore_index=True)
  return ["\n### Key numbers\n",
          "Scores 0-100. visual_share: the visual-text share of the run's mixture (%); seeing_margin: mean over "
          "colour, shape, count, relation and size of score - majority answer; constant_types: question types "
          f"the run answers with one constant (>= {qt.CONSTANT_SHARE:g}% of the items get the same answer). The last "
          "rows are the baselines of each column.\n", md_table(shown, cols, max_rows=len(shown)),
          s.csv(table, "runs") + "\n"]


def seeing_section(s: Study) -> list[str]:
  m = qt.seeing_margins(s.real, s.blank)
  out = ["## Models that see?\n"]
  if m.empty:
    return out + ["No question type that needs the image was evaluated.\n"]
  best = m.iloc[0]
  types = ", ".join(qt.label(k) for k in qt.VISUAL if k in s.real)
  beats = int((m["margin"] > 2 * m["se"]).sum())
  line = (f"Best run **{best['run']}**: its score on the question types that need the image ({types}) is "
          f"{_pm(best['margin'])} points over always giving each type's most common answer (item standard error "
          f"{best['se']:.2f})")
  if "over_no_image" in m and pd.notna(best.get("over_no_image")):
    line += f", and {_pm(best['over_no_image'])} points over its own score with blank images"
  line += ". "
  line += (f"{beats} of {len(m)} runs beat the majority answer by more than twice their item standard error."
           if beats else "No run beats the majority answer by more than twice its item standard error: these "
           "models do not (yet) use the image, and differences between them below are differences in answer priors.")
  const = qt.constant_answers(s.real)
  n_pairs = sum(int(s.real[t.key].notna().sum()) for t in qt.TYPES if t.key in s.real)
  every = [t.label for t in qt.TYPES if t.key in s.real and f"{t.key}.top_share" in s.real
           and (s.real[f"{t.key}.top_share"] >= qt.CONSTANT_SHARE).all()]
  out += [line + "\n", f"\n**Answered with one constant** (>= {qt.CONSTANT_SHARE:g}% of a type's items get the same "
          f"answer): {len(const)} of {n_pairs} (run, question type) pairs"
          + (f"; by every run: {', '.join(every)}" if every else "") + ".\n"]
  if not const.empty:
    out += [md_table(const, ["run", "label", "top_share", "distinct", "score", "majority"], max_rows=30),
            s.csv(const, "constant_answers") + "\n"]
  cols = ["run", "margin", "se", "score", "majority", "no_image", "over_no_image"] + \
      [c for c in m.columns if c.startswith("margin.")]
  out += ["\nMargins per run (best first):\n", md_table(m, [c for c in cols if c in m], max_rows=12),
          s.csv(m, "seeing_margins") + "\n"]
  return out


def findings_table(s: Study) -> pd.DataFrame:
  e = s.effects
  opt = None
  sw = sweep_runs(s.real)
  vis = one_size(sw[(sw["category"] == "visual") & sw["overall"].notna()]) \
      if {"category", "overall"} <= set(sw.columns) else sw.iloc[0:0]
  if len(vis) and vis["share"].nunique() >= 3:
    opt = fits.optimal_share(vis["share"], vis["overall"], n_boot=s.n_boot, seed=s.seed)
  rows = [
      findings_lib.effect_row("Finding 1", "VQA performance rises with model size (and data)", e["size_overall"],
                              missing="one model size only"),
      findings_lib.effect_row("Finding 2/3 (reasoning)", "more reasoning-centric text improves Vision-Centric VQA "
                              "(progressively, up to a 75% share)", e["reasoning_vision"],
                              missing="no reasoning-share sweep in this study"),
      findings_lib.effect_row("Finding 2 (visual)", "visual-world text improves Vision-Centric VQA",
                              e["visual_vision"], missing="no visual-share sweep in this study"),
      findings_lib.optimum_row("Finding 3 (visual)", "a little visual-world text is crucial but saturates quickly "
                               "(best near 25%)", opt, *((vis["share"].min(), vis["share"].max()) if opt else ())),
      findings_lib.cluster_row(correlation_runs(s.real)),
      findings_lib.effect_row("Hypothesis 1", "the perception prior from diverse data is most pronounced for small "
                              "and medium objects (toy reading: visual text helps MLE small+medium more than large)",
                              e["visual_mle_gap"], missing="no visual-share sweep with MLE-Bench in this study"),
      findings_lib.effect_row("Control (not a paper claim)", "facts stated only in the pre-training text reach the "
                              "MLLM: their accuracy rises with the share of the text that states them (visual-world "
                              "text)", e["visual_control"], missing="no visual-share sweep in this study",
                              control=True),
  ] + findings_lib.untestable_rows()
  return findings_lib.table(rows)


def findings_section(s: Study) -> list[str]:
  table = findings_table(s)
  n = findings_lib.counts(table)
  return ["## Findings\n",
          "One row per paper finding or hypothesis. The verdict follows from the 95% interval and the paper's "
          "direction alone: agrees / disagrees when the interval excludes 0 on the paper's / the other side, not "
          "significant when it contains 0 (or there are too few runs for one), not testable here when the study "
          "has no runs for it or the toy cannot measure it (rules in `visprior_jax/analysis/findings.py`). "
          "Read them beside \"Models that see?\": a model that does not use the image moves these numbers only "
          "through its answer priors.\n",
          md_table(table, ["finding", "claim", "toy_estimate", "verdict"], max_rows=len(table)),
          f"\n{n['agrees']} agree, {n['disagrees']} disagree, {n['not significant']} not significant, "
          f"{n['not testable here']} not testable here (the control not counted). " + s.csv(table, "findings") + "\n"]


def types_section(s: Study) -> list[str]:
  summ = s.summary
  if summ.empty:
    return []
  cols = ["label", "category", "chance", "majority", "no_image", "mean", "min", "max", "runs", "item_se",
          "distinct", "constant"]
  types_ = summ[summ["measure"].isin([t.key for t in qt.TYPES])]
  cats = summ[~summ["measure"].isin([t.key for t in qt.TYPES])].assign(
      label=lambda d: d["measure"].map(qt.label))
  out = ["## Question types and their baselines\n",
         "chance: a uniform guess among the options (OCR: among the type's distinct answers); majority: always the "
         "type's most common answer; no_image: the same models with every image replaced by a gray one (mean over "
         "the runs evaluated so); mean / min / max over the runs; item_se: a run's binomial standard error from its "
         "items; distinct: different answers a run gives (range over runs); constant: runs answering the type with "
         f"one constant (>= {qt.CONSTANT_SHARE:g}% of the items), CONSTANT when every run does.\n",
         md_table(types_, cols, max_rows=len(types_)),
         "\nCategories (the tiny benchmark of each; Avg VQA = their mean), with the same baselines:\n",
         md_table(cats, [c for c in cols if c not in ("category", "distinct", "constant")], max_rows=len(cats)),
         f"\n{s.csv(summ, 'question_types')} · per run: {s.csv(s.real, 'question_types_per_run')}"
         + (f" · no image, per run: {s.csv(s.blank, 'question_types_per_run_no_image')}" if not s.blank.empty else
            " · no run has a no-image evaluation (an eval step with `vqa.images=blank`)") + "\n"]
  out += _figure(tiny_figures.types(s.real, s.blank, s.figures), "Scores per question type",
                 "Each run (dots, colour = model size), the mean (bar) and the baselines: chance (gray dotted), "
                 "majority answer (brown dash-dot), no image (purple solid).")
  return out


def control_section(s: Study) -> list[str]:
  r = s.real
  if qt.CONTROL not in r:
    return []
  share = qt.visual_share(r)
  table = r.assign(visual_share=share)
  cols = [c for c in ["run", "size", "mixture", "seed", "visual_share", qt.CONTROL, "fact_in_sft"] if c in table]
  base = s.baseline(qt.CONTROL)
  sizes = table["size"].fillna("?").astype(str) if "size" in table else None
  fit = he.line_fit(share, r[qt.CONTROL], sizes if sizes is not None and sizes.nunique() > 1 else None)
  e = s.effects["visual_control"]
  out = ["## The control: facts stated only in the pre-training text\n",
         "A CONTROL, not a paper finding. Some Knowledge questions ask facts (a shape's corners, which thing has a "
         "colour) that the instruction data never states (`fact_in_sft` false): a model can only know them from its "
         "pre-training text, where the visual-world source states them. If language pre-training reaches the "
         "multimodal model at all, accuracy on them should rise with that source's share of the mixture.\n",
         f"Baselines: chance {base['chance']:.1f}, majority answer {base['majority']:.1f}, no image "
         + (f"{base['no image']:.1f}" if pd.notna(base["no image"]) else "n/a") + ". "
         f"Over all {fit['n']} runs: {_pm(fit['slope'])} points per visual-share point, 95% interval "
         f"[{_pm(fit['lo'])}, {_pm(fit['hi'])}]"
         + (f"; over the visual sweep alone: {_pm(e.estimate)} [{_pm(e.lo)}, {_pm(e.hi)}] from "
            f"{e.x_min:g}% to {e.x_max:g}%" if e is not None else "") + ".\n",
         md_table(table.sort_values("visual_share"), cols, max_rows=20), s.csv(table[cols], "control") + "\n"]
  out += _figure(tiny_figures.control(r, s.blank, s.figures), "The control vs the visual-text share",
                 "Every run; the fitted line (one slope, an intercept per size) with its 95% band; baselines as "
                 "lines.")
  return out


EFFECT_TEXT = {
    "reasoning_vision": "(a) reasoning share -> Vision-Centric (reasoning sweep)",
    "visual_vision": "visual share -> Vision-Centric (visual sweep)",
    "visual_control": "(b) visual share -> control: facts only in pre-training text (visual sweep)",
    "visual_knowledge": "(b) visual share -> Knowledge (visual sweep)",
    "visual_mle_gap": "visual share -> MLE small+medium minus large (visual sweep)",
    "size_overall": "(c) model size -> Avg VQA (larger minus smaller)",
}


def effects_section(s: Study, paper_figure: list[str]) -> list[str]:
  rows = []
  for key, text in EFFECT_TEXT.items():
    e = s.effects[key]
    if e is None:
      rows.append(dict(effect=text, runs=0, estimate=math.nan, note="no runs for it in this study"))
      continue
    base = s.baseline(e.measure) if e.measure in s.real else {}
    rows.append(dict(effect=text, runs=e.runs, estimate=e.estimate, ci_lo=e.lo, ci_hi=e.hi, slope=e.slope,
                     slope_lo=e.slope_lo, slope_hi=e.slope_hi, shares=f"{e.x_min:g}-{e.x_max:g}%"
                     if math.isfinite(e.x_min) else "", item_noise=e.item_noise, run_noise=e.run_noise,
                     dominant=e.dominant, chance=base.get("chance"), majority=base.get("majority"),
                     no_image=base.get("no image"), note=e.note))
  table = pd.DataFrame(rows)
  out = ["## Headline effects\n",
         "Each effect is one estimate from all the runs that vary it. Sweeps: a straight line over every run of the "
         "sweep (score = a + b x share; one intercept per model size), estimate = the fitted change over the sweep's "
         "range of shares, b x (max - min), with the regression's t interval (slope = b in points per share point). "
         "Size: larger minus smaller model, paired over runs of the same mixture and seed. item_noise: a run's "
         "binomial standard error from its items (mean over runs); run_noise: the residual standard deviation "
         "between runs (seeds included); dominant: which one the interval mostly reflects. The measure's baselines "
         "stand beside each effect.\n",
         md_table(table, ["effect", "runs", "estimate", "ci_lo", "ci_hi", "slope", "slope_lo", "slope_hi", "shares",
                          "item_noise", "run_noise", "dominant", "chance", "majority", "no_image", "note"],
                  max_rows=len(table)), s.csv(table, "headline_effects") + "\n"]
  reps = {m: he.replicate_noise(s.real, m) for m in ("overall", "Vision-Centric", qt.CONTROL, "Knowledge")}
  if any(r["groups"] for r in reps.values()):
    r0 = next(r for r in reps.values() if r["groups"])
    out.append(f"\nSeed noise measured directly ({r0['groups']} group(s), {r0['runs']} runs differing only in seed): "
               + "; ".join(f"{qt.label(m)} SD {r['sd']:.2f} (item SE {r['item_se']:.2f})" for m, r in reps.items()
                           if r["groups"]) + ".\n")
  for cat in SWEEPS:
    out += _figure(tiny_figures.sweep(s.real, s.blank, cat, s.figures), f"Score vs {cat} share, per question type",
                   f"Every run of the {cat} sweep (colour = size), the fitted line with its 95% band and the change "
                   "over the sweep in each title; baselines as lines.")
  out += _figure(tiny_figures.size(s.real, s.blank, s.figures), "Score per model size",
                 "Runs of the same mixture and seed joined; squares: the size's mean; baselines as lines.")
  opt = optimal_share_rows(s.real, s.n_boot, s.seed)
  if not opt.empty:
    opt = opt.assign(chance=[s.baseline(k)["chance"] for k in opt["key"]],
                     majority=[s.baseline(k)["majority"] for k in opt["key"]],
                     no_image=[s.baseline(k)["no image"] for k in opt["key"]])
    out += ["\n### Optimal share\n",
            "Argmax of a quadratic fit over each sweep's observed range (fitted = the fit's score there), with a "
            "bootstrap interval; at_edge: the fit still rises at an end of the range. Baselines beside.\n",
            md_table(opt, ["category", "measure", "optimal_share", "ci_lo", "ci_hi", "at_edge", "fitted", "runs",
                           "chance", "majority", "no_image"])]
  return out + paper_figure


def sections(df: pd.DataFrame, out_dir, *, n_boot: int = 1000, seed: int = 42,
             sweep_figure: list[str] | None = None) -> tuple[list[str], list[str]]:
  """(lines before the study-wide sections, the Key numbers block) of the tiny report; ``sweep_figure``: the
  markdown of the generic sweep figure (the paper's beside) to show with the headline effects."""
  s = Study(df, out_dir, n_boot=n_boot, seed=seed)
  if s.real.empty:
    return ["No tiny-suite scores in the results table.\n"], []
  lines = seeing_section(s) + [""] + findings_section(s) + [""] + types_section(s) + [""] + control_section(s) + \
      [""] + effects_section(s, sweep_figure or [])
  return lines, runs_section(s)
