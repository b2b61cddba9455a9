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
# # Scaling: VQA vs model size and pre-training tokens
#
# PAPER.md Fig. 1 and Finding 1: VQA rises with model and data size, not uniformly across categories.
# The paper fits no law; here each series gets a log-linear (a + b ln x) and a saturating power law
# (c - a x^-alpha) fit, compared by AICc, with a bootstrap band (`visprior_jax.analysis.fits`).
#
# Inputs (environment): `VISPRIOR_RESULTS` (a study dir or its results.parquet), `VISPRIOR_FIGURES`
# (where figures go), `VISPRIOR_N_BOOT` (bootstrap resamples), `VISPRIOR_SOURCE` ("both": this study
# beside the paper, the default; "store": the study alone). `analysis/run_notebooks.py` sets them.

# %%
import os

from IPython.display import Image, display

from visprior_jax.analysis import figdata, figures, fits, tables
from visprior_jax.study import store

RESULTS = os.environ.get("VISPRIOR_RESULTS", "runs/study")
FIGURES = os.environ.get("VISPRIOR_FIGURES", "figures")
SOURCE = os.environ.get("VISPRIOR_SOURCE", "both")      # "store": this study only; "both": beside the paper
N_BOOT = int(os.environ.get("VISPRIOR_N_BOOT", "1000"))

df = store.load(RESULTS)                       # the one line: every run's records joined with its spec
runs = tables.runs_table(df)
print(f"{len(runs)} runs, {len(df)} records")
runs.head()

# %% [markdown]
# ## Trend fits per model size (the scaling subset: the mixture with the most size x token cells)

# %%
subset = figdata.scaling_subset(runs)
measures = [m for m in ("overall", "General", "Knowledge", "OCR & Chart", "Vision-Centric") if m in subset]
trends = fits.trend_table(subset, "tokens", measures, by="size", n_boot=N_BOOT) if len(subset) else None
trends[trends["best"]] if trends is not None and len(trends) else "no scaling runs"

# %% [markdown]
# ## Figures: this study beside the paper

# %%
for name in ("scaling_tokens", "scaling_params"):
  paths = figures.draw(name, df, source=SOURCE, out_dir=FIGURES, n_boot=N_BOOT, missing="skip")
  if paths:
    display(Image(filename=str(paths["png"])))
