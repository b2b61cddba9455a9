# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Mixtures: category sweeps, the reasoning x visual grid, and language vs vision
#
# PAPER.md Fig. 3 (Finding 3: reasoning data helps up to ~75%, visual-world text saturates at ~25%),
# Table 1 (best blend ~60% reasoning / 15% visual) and Table 2 (mix6 balances language and vision).
# Optimal shares are the argmax of a quadratic fit with a bootstrap CI; effects between mixtures are
# differences with bootstrap intervals over seeds, "not significant" when the interval contains 0.

# %%
import os

from IPython.display import Image, display

from visprior_jax.analysis import figures, report, stats, tables
from visprior_jax.study import store

RESULTS = os.environ.get("VISPRIOR_RESULTS", "runs/study")
FIGURES = os.environ.get("VISPRIOR_FIGURES", "figures")
SOURCE = os.environ.get("VISPRIOR_SOURCE", "both")      # "store": this study only; "both": beside the paper
N_BOOT = int(os.environ.get("VISPRIOR_N_BOOT", "1000"))

df = store.load(RESULTS)
runs = tables.runs_table(df)

# %% [markdown]
# ## Optimal share per category

# %%
figures.figure_data("sweeps", df, n_boot=N_BOOT).query("kind == 'opt'")

# %% [markdown]
# ## Ranking on language vs vision, and effects against the reference mixture

# %%
mixes = runs[runs["mixture"].map(lambda m: tables.mixture_kind(m)[0] == "mix")] if "mixture" in runs else runs
try:
  display(stats.mixture_ranking(mixes))
except ValueError as e:
  print("no ranking:", e)
for sentence in report.effect_sentences(runs, "overall", n_boot=10 * N_BOOT):
  print("-", sentence)

# %%
for name in ("sweeps", "grid", "mixtures"):
  paths = figures.draw(name, df, source=SOURCE, out_dir=FIGURES, n_boot=N_BOOT, missing="skip")
  if paths:
    display(Image(filename=str(paths["png"])))
