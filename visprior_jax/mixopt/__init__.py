"""Mixture optimizer: predict the best pre-training mixture from a few runs instead of a grid search.

  visprior mix fit      --results=paper --target=vqa_overall          # every predictor: LOO error, surface plot
  visprior mix propose  --results=runs/tiny_study --k=4 --out=configs/study/proposed_vqa_overall.py
  visprior mix validate                                                  # docs/mixture_optimizer.md (make mix-report)

  from visprior_jax.mixopt import coords, predictors
  tab = coords.table(coords.load_results("paper"), "vqa_overall")        # one row per run: coordinates + y
  mean, std = predictors.make("scheffe").fit(tab).predict(coords.candidates(tab))

Modules, top to bottom:

  coords      results rows -> one row per run: reasoning / visual shares, the four disjoint label buckets,
              token budget, epochs per bucket, log size (computed by ``data.mixtures``); candidate lattices
  base        the predictor interface: fit(table) -> self, predict(table) -> (mean, std), n_params, and
              the refusal (TooFewRuns) below as many distinct mixtures as parameters
  predictors  the quadratic Scheffe model, linear regression, and ``make(name)`` for all five; ``shukor``
              (Shukor et al. 2025's joint law), ``gp`` and ``boosting`` hold the other three
  propose     expected improvement over candidate mixtures, written as a study config
  validate    leave-one-out, rank correlation with a bootstrap interval, regret, distance of the optimum,
              baselines, budget curves, the cross-size check
  plots, report, commands   figures, docs/mixture_optimizer.md, the CLI logic

Performance note: every fit here works on matrices of at most a few hundred rows, where OpenBLAS
threads only add synchronisation -- GP fits ran 25x slower with them on a busy 2-core machine. The
CLI and the report script set ``OPENBLAS_NUM_THREADS=1`` before numpy loads.
"""
