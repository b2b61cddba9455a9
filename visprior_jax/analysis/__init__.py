"""Analysis of a study's results: paper reference numbers, trend fits, statistics, figures, the report.

  from visprior_jax.study import store
  from visprior_jax.analysis import figures, fits, paper, report, stats, tables
  df = store.load("runs/study")                 # the long results table (one line)
  runs = tables.runs_table(df)                  # one row per run: spec + measures
  figures.draw("sweeps", df, source="both")     # the study beside the paper's Fig. 3
  report.write_report(df, "runs/study/report")  # report.md with every figure and key number

Modules: ``paper`` (the paper's published numbers, ``paper_results.csv``), ``tables`` (measures and
the runs table), ``fits`` (log-linear / power-law trends, bootstrap bands, optimal share), ``stats``
(Spearman + clustering, effect sizes, mixture ranking), ``figdata`` / ``figures`` (figure numbers and
drawing), ``report``, ``synthetic`` (a study with known effects for tests and demos).
"""
