"""The study report: figures, key numbers and plain-language effect sizes in one ``report.md``.

  from visprior_jax.analysis import report
  report.write_report(store.load("runs/study"), "runs/study/report")     # prints and returns the path

Layout of ``out_dir``: ``report.md`` and ``figures/<name>.{png,pdf,csv}`` (links are relative, so
the folder can be moved or published as is). Sections, each only when the results allow it:

  runs          how many runs, stages and records; bad files skipped by the store
  key numbers   one row per run: spec and the headline measures
  scaling       trend fits per model size (log-linear vs saturating power law, AIC)
  sweeps        optimal share per category (argmax of the smoothed fit, bootstrap CI)
  correlation   Spearman matrix over runs and its two clusters, vs the paper's perception /
                reasoning split
  mixtures      ranking on language vs vision
  effects       each mixture vs the reference (language-favorable / mix0 when present), blind vs
                normal SFT: difference, bootstrap CI over seeds, "not significant" said plainly
  figures       every figure with data; "both" (the study beside the paper) when ``paper=True``

With ``paper=True`` each section also states the paper's number for the same thing, so the toy
study's direction of effect can be read against the paper's. No number is tuned or filtered to
agree: what disagrees is printed the same way as what agrees.

The tiny study (results with ``tiny_*`` benchmark records, ``question_types.is_tiny``) gets its own
layout, every score beside its baselines (chance, majority answer, no-image score): runs and key
numbers with baseline rows; "Models that see?"; Findings (one verdict per paper finding); question
types and their baselines; the control; headline effects with the sweep, size and Fig. 3 figures and
the optimal shares; correlation; mixtures compared; other figures with study data (baselines drawn on
score panels); and last, apart, "The paper's figures (reference, no toy data)" for figures this study
has no runs for (``tiny_report`` describes the sections). Other studies' reports are as above.
"""

from __future__ import annotations

import datetime
import math

import pandas as pd
from etils import epath

from visprior_jax.analysis import figures, fits, paper as paper_lib, question_types, stats, tiny_report
from visprior_jax.analysis.figdata import (correlation_runs, default_variant, optimal_share_rows, scaling_subset,
                                           size_label, token_label)
from visprior_jax.analysis.markdown import md_table
from visprior_jax.analysis.tables import MEASURES, label, mixture_kind, runs_table
from visprior_jax.eval.vqa.base import CATEGORIES

REFERENCE_MIXTURES = ("language_favorable", "mix0")
OPTIMAL_COLUMNS = ["category", "measure", "optimal_share", "ci_lo", "ci_hi", "at_edge", "runs", "bootstrap"]
_HEADLINE = ("overall",) + CATEGORIES + ("t_acc", "ppl", "mle_overall")


# ------------------------------------------------------------------------------------- sections


def _runs_section(df: pd.DataFrame, runs: pd.DataFrame, key_numbers: list[str] | None = None) -> list[str]:
  out = ["## Runs\n"]
  stages = ", ".join(sorted(df["stage"].dropna().unique())) if "stage" in df else ""
  out.append(f"{runs['run'].nunique()} runs with results, {len(df)} records (stages: {stages or 'none'}).")
  meta = df.attrs.get("collect")
  if meta:
    out.append(f"The store read {meta.get('metrics_files', '?')} metrics files; {meta.get('duplicates', 0)} duplicate "
               f"records were replaced by later ones; {meta.get('bad_files', 0)} bad files and "
               f"{meta.get('bad_lines', 0)} bad lines were skipped"
               + (": " + "; ".join(meta.get("bad_file_names", [])[:5]) if meta.get("bad_files") else "") + ".")
  if key_numbers is not None:
    return out + key_numbers
  cols = ["run", "size", "params", "tokens", "mixture", "encoder", "seed", "sft", "blind"] + \
      [m for m in _HEADLINE if m in runs]
  out += ["\n### Key numbers\n", md_table(runs.sort_values([c for c in ("mixture", "size", "seed") if c in runs]),
                                          cols)]
  return out


def _scaling_section(runs: pd.DataFrame, paper: bool, n_boot: int, seed: int) -> list[str]:
  out = []
  subset = scaling_subset(runs)
  for x, by in (("tokens", "size"), ("params", "tokens")):
    if x not in runs or by not in runs:
      continue
    sub = subset[subset[x].notna()]
    groups = sub.groupby(by)[x].nunique()
    if groups.empty or groups.max() < 3:
      continue
    table = fits.trend_table(sub[sub[by].isin(groups[groups >= 3].index)], x, [m for m in ("overall",) + CATEGORIES
                                                                               if m in sub], by=by, n_boot=n_boot,
                             seed=seed)
    if table.empty:
      continue
    table["group"] = table["group"].map(size_label if by == "size" else token_label)
    best = table[table["best"]]
    mixture = ", ".join(sub["mixture"].dropna().unique()) if "mixture" in sub else ""
    out += [f"\n### Score vs {x}, per {by}" + (f" ({mixture})" if mixture else "") + "\n",
            "Best model per series by AICc; other_delta_aic = how much worse the other form is (> 2: a real "
            "preference; blank: too few points to compare, n <= k + 1). at_bound: the power law's alpha sits at "
            "its search bound (a degenerate fit).\n"]
    other = table[~table["best"]].set_index(["group", "measure"])["delta_aic"]
    best = best.assign(other_delta_aic=[other.get((g, m), math.nan) for g, m in zip(best["group"], best["measure"])])
    out.append(md_table(best, ["group", "measure", "model", "formula", "n", "n_excluded", "other_delta_aic",
                               "at_bound"]))
  if paper:
    p = runs_table(paper_lib.paper_table("Fig. 1"))
    table = fits.trend_table(p, "tokens", ["overall"], by="size", n_boot=min(n_boot, 200), seed=seed)
    if not table.empty:
      table["group"] = table["group"].map(size_label)
      out += ["\nPaper, Fig. 1 (web-crawl, values read from the figure; the paper fits no law):\n",
              md_table(table[table["best"]], ["group", "model", "formula", "n", "n_excluded"])]
  return (["## Scaling\n"] + out) if out else []


def _sweeps_section(runs: pd.DataFrame, paper: bool, n_boot: int, seed: int) -> list[str]:
  out = []
  table = optimal_share_rows(runs, n_boot, seed)
  if not table.empty:
    out += ["Optimal share = argmax of a quadratic fit over the observed range; CI from the bootstrap "
            "(at_edge: the fit still rises at the end of the range).\n", md_table(table, OPTIMAL_COLUMNS)]
  if paper:
    p = optimal_share_rows(runs_table(paper_lib.paper_table("Fig. 3")), min(n_boot, 300), seed)
    out += ["\nPaper, Fig. 3 (values read from the figure) through the same fit; the paper marks 75% for reasoning "
            "and 25% for visual data (Finding 3):\n", md_table(p, OPTIMAL_COLUMNS)]
  return (["## Category sweeps\n"] + out) if out else []


def _correlation_section(runs: pd.DataFrame, paper: bool) -> list[str]:
  out = []
  try:
    rho, _, n = stats.spearman_matrix(correlation_runs(runs))
  except ValueError:
    rho = None
  if rho is not None:
    cl = stats.cluster_categories(rho)
    split = stats.is_perception_reasoning_split(cl["clusters"])
    out += [f"Spearman rho over {n} runs (default variants of the most common model size):\n",
            md_table(rho.reset_index().rename(columns={"index": "category"})),
            f"\nClusters (average linkage on 1 - rho): {' | '.join(' + '.join(c) for c in cl['clusters'])}. "
            + ("This is the paper's perception / reasoning split." if split else
               "This is not the paper's perception (General + OCR) / reasoning (Knowledge + Vision-Centric) split.")]
  if paper:
    cl = stats.cluster_categories(paper_lib.paper_spearman())
    out.append(f"\nPaper, Fig. 4 (105 3B models): General-OCR rho 0.37, Knowledge-Vision 0.33; clusters "
               f"{' | '.join(' + '.join(c) for c in cl['clusters'])}.")
  return (["## Correlation across VQA categories\n"] + out) if out else []


def _mixtures_section(runs: pd.DataFrame, paper: bool) -> list[str]:
  out = []
  mixes = default_variant(runs)
  if "mixture" in mixes:
    mixes = mixes[mixes["mixture"].map(lambda m: mixture_kind(m)[0] == "mix")]
    try:
      table = stats.mixture_ranking(mixes)
      out += ["Ranked on language (ppl, accuracy) and vision (Avg VQA); overall = rank sum (the paper does not "
              "state its rule).\n", md_table(table, ["mixture", "n_runs", "ppl", "t_acc", "overall", "rank_language",
                                                     "rank_vision", "overall_rank", "pareto"])]
    except ValueError:
      pass
  if paper:
    out.append("\nPaper, Table 2 (3B / 50B): mix6 is ranked first (Avg VQA 33.3, ppl 13.52); mix10 has the best "
               "Avg VQA (33.4) and the worst perplexity (13.88).")
  return (["## Mixtures: language vs vision\n"] + out) if len(out) > (1 if paper else 0) else []


def effect_sentences(runs: pd.DataFrame, measure: str = "overall", n_boot: int = 10000, seed: int = 42) -> list[str]:
  """Plain-language comparisons: every mixture vs the reference mixture, and blind vs normal SFT."""
  out = []
  if measure not in runs:
    return out
  base = default_variant(runs)
  if "mixture" in base:   # source-weight recipes only (sweeps, grid cells and single sources have their figures)
    base = base[base["mixture"].map(lambda m: mixture_kind(m)[0] == "mix")]
  if "mixture" in base and base["mixture"].nunique() > 1:
    ref = next((m for m in REFERENCE_MIXTURES if m in set(base["mixture"])), sorted(base["mixture"].dropna())[0])
    keys = [k for k in ("size", "tokens") if k in base]
    for key, g in base.groupby(keys) if keys else [((), base)]:
      if ref not in set(g["mixture"]):
        continue
      table = stats.effects_table(g, measure, "mixture", ref, n_boot=n_boot, seed=seed)
      values = key if isinstance(key, tuple) else (key,)
      where = ", ".join(f"{k}={size_label(v) if k == 'size' else token_label(v)}" for k, v in zip(keys, values))
      out += [f"{s} [{where}]" if where else s for s in table.get("sentence", [])]
  if "blind" in runs and runs["blind"].fillna(False).astype(bool).any() and "mixture" in runs:
    for mix, g in runs.groupby("mixture"):
      flags = g["blind"].fillna(False).astype(bool)
      if flags.any() and (~flags).any():
        try:
          e = stats.effect_size(g.assign(group=flags.map({True: "blind SFT", False: "normal SFT"})), measure,
                                "blind SFT", "normal SFT", by="group", n_boot=n_boot, seed=seed)
        except ValueError:   # the measure is missing in one group
          continue
        out.append(e.sentence() + f" [mixture={mix}]")
  return out


def _effects_section(runs: pd.DataFrame, paper: bool, n_boot: int, seed: int) -> list[str]:
  out = [f"- {s}" for m in ("overall", "t_acc") for s in effect_sentences(runs, m, n_boot=n_boot, seed=seed)]
  if paper:
    out.append("- Paper, Table 3 (7B / 1T, one run each, no interval): Balanced - Language-Favorable = +1.32 Avg VQA "
               "(38.64 vs 37.32) and +0.008 language accuracy (0.655 vs 0.647); Table 6: blind SFT adds +0.88 and "
               "+0.92.")
  return (["## Effects\n", "Differences of group means; 95% intervals over seeds (the union of an expanded bootstrap "
           "interval and the t interval, analysis/stats.py), so few seeds give wide intervals.\n"] + out) if out \
      else []


# ----------------------------------------------------------------------------------------- tiny


_TINY_DRAWN = ("sweeps", "spearman")     # drawn inside the tiny report's sections


def _figure_lines(name: str, df: pd.DataFrame, fig_dir, source: str, n_boot: int, seed: int,
                  store_data: pd.DataFrame, note: str = "") -> list[str]:
  paths = figures.draw(name, df, source=source, out_dir=fig_dir, missing="skip", n_boot=n_boot, seed=seed,
                       precomputed={"store": store_data})
  if not paths:
    return []
  what = {"both": "this study (left) and the paper (right)", "paper": "paper only: no runs for it in this study",
          "store": "this study"}[source]
  return [f"\n### {figures.FIGURES[name].title}\n", f"{what}.{' ' + note if note else ''}\n",
          f"![{name}](figures/{paths['png'].name})\n",
          f"[PDF](figures/{paths['pdf'].name}) · [numbers (CSV)](figures/{paths['csv'].name})\n"]


def _tiny_figure(name: str, df: pd.DataFrame, fig_dir, paper: bool, n_boot: int, seed: int, note: str) -> list[str]:
  data = figures.figure_data(name, df, source="store", n_boot=n_boot, seed=seed)
  if data.empty:
    return []
  return _figure_lines(name, df, fig_dir, "both" if paper else "store", n_boot, seed, data, note)


def _tiny_body(df: pd.DataFrame, runs: pd.DataFrame, out, paper: bool, n_boot: int, seed: int) -> list[str]:
  """The tiny study's report body (``tiny_report``), with the study-wide correlation and mixture sections."""
  fig_dir = out / "figures"
  sweep_fig = _tiny_figure("sweeps", df, fig_dir, paper, n_boot, seed,
                           "Left, baselines as horizontal lines: chance (gray dotted), majority answer (brown "
                           "dash-dot), no image (purple solid).")
  body, key_numbers = tiny_report.sections(df, out, n_boot=n_boot, seed=seed, sweep_figure=sweep_fig)
  real, blank = question_types.per_run(df), question_types.per_run(df, images="blank")
  b = question_types.measure_baselines(real, blank, "overall") if "overall" in real else {}
  effects = _effects_section(runs, paper, min(n_boot * 10, 10000), seed)
  if effects and b:
    effects.insert(2, f"Avg VQA baselines: chance {b['chance']:.1f}, majority answer {b['majority']:.1f}, no image "
                   + (f"{b['no image']:.1f}" if pd.notna(b["no image"]) else "n/a") + ".\n")
  spearman = _tiny_figure("spearman", df, fig_dir, paper, n_boot, seed,
                          "Correlations between runs' category scores; baselines do not apply to a correlation, but a "
                          "run answering with constants moves it too (see \"Models that see?\").")
  return (_runs_section(df, runs, key_numbers) + [""] + body + [""] + _correlation_section(runs, paper) + spearman
          + [""] + (["## Mixtures compared\n"] + effects[1:] if effects else []))


# ----------------------------------------------------------------------------------------- main


def write_report(df: pd.DataFrame, out_dir, paper: bool = True, *, n_boot: int = 1000, seed: int = 42,
                 figures_names=None, quiet: bool = False) -> epath.Path:
  """Writes ``<out_dir>/report.md`` with figures under ``<out_dir>/figures``; prints and returns the path."""
  out = epath.Path(out_dir)
  fig_dir = out / "figures"
  fig_dir.mkdir(parents=True, exist_ok=True)
  runs = runs_table(df) if not df.empty else pd.DataFrame(columns=["run"])
  studies = ", ".join(sorted(df["study"].dropna().astype(str).unique())) if "study" in df else ""
  lines = [f"# Study report{': ' + studies if studies else ''}\n",
           f"Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by "
           "`visprior_jax.analysis.report`. Measures: " + ", ".join(f"{m} = {label(m)}" for m in ("overall", "t_acc",
                                                                                                  "ppl")) + ".\n"]
  if paper:
    lines.append("Paper numbers come from `visprior_jax/analysis/paper_results.csv`; values read "
                 "by eye from the paper's figures are approximate (about +-0.1) and drawn hollow / hatched.\n")
  tiny = not df.empty and question_types.is_tiny(df)
  if not runs.empty and len(runs.columns) > 1:
    if tiny:
      lines += _tiny_body(df, runs, out, paper, n_boot, seed)
    else:
      lines += _runs_section(df, runs) + [""]
      lines += [""] + _scaling_section(runs, paper, n_boot, seed)
      lines += [""] + _sweeps_section(runs, paper, n_boot, seed)
      lines += [""] + _correlation_section(runs, paper)
      lines += [""] + _mixtures_section(runs, paper)
      lines += [""] + _effects_section(runs, paper, min(n_boot * 10, 10000), seed)
  else:
    lines.append("No evaluated runs in the results table.\n")
  names = [n for n in (figures.FIGURES if figures_names is None else figures_names) if not (tiny and n in _TINY_DRAWN)]
  store_data = {n: figures.figure_data(n, df, source="store", n_boot=n_boot, seed=seed) if not df.empty
                else pd.DataFrame() for n in names}
  with_data = [n for n in names if not store_data[n].empty]
  if tiny:   # the study's own figures in the flow; the paper's alone in a final section
    if with_data:
      lines += ["\n## Other figures with study data\n", "Figures of the general analysis with data from this study; "
                "they do not draw the baselines (see \"Question types and their baselines\").\n"]
      for n in with_data:
        lines += _figure_lines(n, df, fig_dir, "both" if paper else "store", n_boot, seed, store_data[n])
    if paper:
      lines += ["\n## The paper's figures (reference, no toy data)\n",
                "The paper's own numbers, for reference only: this study has no runs for these figures.\n"]
      for n in [n for n in names if store_data[n].empty]:
        lines += _figure_lines(n, df, fig_dir, "paper", n_boot, seed, store_data[n])
  else:
    lines.append("\n## Figures\n")
    for n in names:
      if store_data[n].empty and not paper:
        continue
      source = ("both" if not store_data[n].empty else "paper") if paper else "store"
      lines += _figure_lines(n, df, fig_dir, source, n_boot, seed, store_data[n])
  lines.append(f"\nMeasures available: {', '.join(m for m in MEASURES if m in runs)}.\n")
  path = out / "report.md"
  path.write_text("\n".join(lines))
  if not quiet:
    print(path)
  return path


def study_report(study_dir, out_dir: str = "", paper: bool = True, n_boot: int = 1000) -> epath.Path:
  """Collects a study's records into its results table (study.store) and writes the report next to it
  (default ``<study_dir>/report``); the study runner's last step."""
  from visprior_jax.study import store
  df = store.load(store.collect(study_dir))
  return write_report(df, out_dir or epath.Path(study_dir) / "report", paper=paper, n_boot=n_boot)
