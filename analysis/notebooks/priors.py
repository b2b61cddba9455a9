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
# # Perception and reasoning priors
#
# PAPER.md Fig. 4 / Finding 5: over many runs, General and OCR & Chart correlate (perception prior) and
# Knowledge and Vision-Centric correlate (reasoning prior). Spearman's rho over runs, then average-linkage
# clustering on 1 - rho; and the per-source views (Fig. 2, MLE-Bench by object size, Fig. 7).

# %%
import os

from IPython.display import Image, display

from visprior_jax.analysis import figdata, figures, paper, stats, tables
from visprior_jax.study import store

RESULTS = os.environ.get("VISPRIOR_RESULTS", "runs/study")
FIGURES = os.environ.get("VISPRIOR_FIGURES", "figures")
SOURCE = os.environ.get("VISPRIOR_SOURCE", "both")      # "store": this study only; "both": beside the paper

df = store.load(RESULTS)
runs = tables.runs_table(df)

# %%
try:
  rho, p, n = stats.spearman_matrix(figdata.correlation_runs(runs))
  clusters = stats.cluster_categories(rho)["clusters"]
  print(f"{n} runs; clusters: {clusters}; perception/reasoning split: "
        f"{stats.is_perception_reasoning_split(clusters)}")
  display(rho.round(2))
except ValueError as e:
  print("no correlation:", e)
print("paper (Fig. 4):", stats.cluster_categories(paper.paper_spearman())["clusters"])

# %%
for name in ("spearman", "sources", "mle_sources"):
  paths = figures.draw(name, df, source=SOURCE, out_dir=FIGURES, missing="skip")
  if paths:
    display(Image(filename=str(paths["png"])))
