"""Analysis of a study's results: paper reference numbers, trend fits, statistics, figures, the report.

  from visprior_jax.study import store
  from visprior_jax.analysis import figures, fits, paper, report, stats, tables
  df = store.load("runs/study")                 # the long results table (one line)
  runs = tables.runs_table(df)                  # one row per run: spec + measures
  figures.draw("sweeps", df, source="both")     # the study beside the paper's Fig. 3
  report.write_report(df, "runs/study/report")  # report.md with every figure and key number

Modules: ``paper`` (the paper's published numbers, ``paper_results.csv``), ``tables`` (measures and
the runs table, real- or blank-image evaluations), ``fits`` (log-linear / power-law trends, bootstrap
bands, optimal share), ``stats`` (Spearman + clustering, effect sizes, mixture ranking), ``figdata`` /
``figures`` (figure numbers and drawing), ``markdown``, ``report``, ``synthetic`` (a study with known
effects for tests and demos).

The tiny study's report (``report`` switches to it when the results hold tiny-suite records):
``question_types`` (per question type scores with chance / majority / no-image baselines),
``headline_effects`` (one line per sweep, the size difference, item vs run noise), ``findings`` (the
paper's findings with mechanical verdicts), ``tiny_figures``, ``tiny_report``, ``synthetic_tiny`` (a
tiny study with known effects, scored by the real scorers).
"""
