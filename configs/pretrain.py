"""Pre-training config: ``--config=configs/pretrain.py:<name>``.

<name> is a model preset (llama3_340m, llama3_1b, llama3_3b, llama3_7b, llama3_13b, llama3_tiny,
llama3_small, llama3_cpu: the paper's setting of 1024 x 2048-token batches) or a named run:

  demo         the embedded default (``make demo``): a tiny Llama on a 50/50 mixture of Python's
               standard library code and reference prose (configs/data/demo.py, a 1024-id BPE),
               300 steps on one CPU in about two minutes.
  bench_small  ENV.md's tiny MaxText peer config (d 256, 2 layers, seq 256, batch 4), synthetic data.
  bench_cpu    the CPU-sized config (d 1024, 4 layers, vocab 32000, seq 512, batch 2), synthetic data.

Run:  visprior pretrain --config=configs/pretrain.py:llama3_3b --workdir=gs://bucket/runs/3b \\
        --config.mesh.fsdp=-1 --config.train.steps=14305
(3B on 30B tokens = 14305 steps of 1024 x 2048 tokens; paper section 2.1.)
Any field below can be overridden the same way, e.g. ``--config.model.remat=full``.
"""

import ml_collections

from visprior_jax.models import presets


def base(preset: str) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.stage = "pretrain"
  c.seed = 42
  c.init_from = ""                      # a parameter export or workdir to start from
  c.model = ml_collections.ConfigDict(presets.get(preset).to_dict())
  if c.model.rope_scaling is None:
    del c.model["rope_scaling"]          # set it in Python configs; the CLI cannot override None
  c.mesh = ml_collections.ConfigDict(dict(data=1, fsdp=-1, sequence=1, tensor=1))
  # across TPU slices (or process groups): granules per axis; data parallelism belongs here (parallel/mesh.py)
  c.dcn_mesh = ml_collections.ConfigDict(dict(data=1, fsdp=1, sequence=1, tensor=1))
  c.rules = ml_collections.ConfigDict()  # overrides of parallel.rules.DEFAULT_RULES
  # Multi-host start-up (parallel/distributed.py, docs/training.md "Multi-host"): empty = auto-detect
  # (TPU VM/GKE, SLURM, or VISPRIOR_COORDINATOR/_NUM_PROCESSES/_PROCESS_ID), else one process.
  # expected_processes > 0 fails the run unless exactly that many processes joined.
  c.distributed = ml_collections.ConfigDict(dict(coordinator_address="", num_processes=0, process_id=-1,
                                                 initialization_timeout_s=300, expected_processes=0))
  # kind: mixture (prepared shards + recipe; `visprior data prepare`) | markov | text_bytes.
  # recipe: a name (mix6, single:code, sweep:visual_concept:25, grid:60:15) or, in Python configs,
  # a list of {source, require, exclude, weight}.
  c.data = ml_collections.ConfigDict(dict(kind="markov", path="", vocab_size=0, prepared_dir="", recipe="",
                                          block_tokens=0, shuffle_window=64, prefetch=2, workers=0,
                                          allow_mixture_change=False,
                                          verify_checksums=False))
  c.train = ml_collections.ConfigDict(dict(steps=14305, epochs=0.0, batch_size=1024, seq_len=2048,
                                           grad_accum=1, z_loss=0.0, log_every=50))  # epochs > 0 sets steps
  c.optim = ml_collections.ConfigDict(dict(lr=3e-4, warmup_steps=1024, warmup_ratio=0.0, schedule="cosine",
                                           min_lr_ratio=0.1,
                                           b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.1, clip_norm=1.0,
                                           trainable=".*"))
  c.checkpoint = ml_collections.ConfigDict(dict(every=1000, keep=3, async_save=True, export=True))
  c.metrics = ml_collections.ConfigDict(dict(tensorboard=True, wandb_project="", mfu=True,
                                             peak_tflops=0.0))  # 0: measured (CPU) or the chip table
  return c


def get_config(arg: str = "llama3_tiny") -> ml_collections.ConfigDict:
  if arg == "demo":
    c = base("llama3_tiny")
    c.model.update(embed_dim=128, num_layers=4, num_heads=4, num_kv_heads=2, head_dim=32, mlp_dim=384,
                   vocab_size=1024, max_seq_len=128)
    # Shards from `visprior data prepare --config=configs/data/demo.py` (make demo runs it first).
    c.data.update(kind="mixture", prepared_dir="runs/data/demo")
    del c.data["recipe"]  # a list here, not a name
    c.data.recipe = [dict(source="code", weight=0.5), dict(source="docs", weight=0.5)]
    c.train.update(steps=300, batch_size=16, seq_len=128, log_every=25)
    c.optim.update(lr=3e-3, warmup_steps=30)
    c.checkpoint.every = 100
    return c
  if arg == "bench_small":
    c = base("llama3_small")
    c.train.update(steps=30, batch_size=4, seq_len=256, log_every=10)
    c.model.update(scan_layers=True, remat="full")
  elif arg == "bench_cpu":
    c = base("llama3_cpu")
    c.train.update(steps=10, batch_size=2, seq_len=512, log_every=5)
    c.model.update(scan_layers=True, remat="full")
  elif arg in presets.PRESETS:
    c = base(arg)
    if arg in ("llama3_tiny", "llama3_small", "llama3_cpu"):
      c.train.update(batch_size=8, seq_len=c.model.max_seq_len, steps=100, log_every=10)
      c.optim.warmup_steps = 10
    return c
  else:
    raise ValueError(f"unknown pretrain config {arg!r}: use demo, bench_small, bench_cpu or a preset "
                     f"({', '.join(presets.PRESETS)})")
  c.checkpoint.update(every=10**9, export=False)
  c.optim.warmup_steps = 10
  return c
