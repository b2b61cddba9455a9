"""The MaxText side of ``bench/vs_maxtext.py``: runs inside ``.venvs/maxtext`` (another interpreter),
builds MaxText's own train step for a ``vs_maxtext.CONFIGS`` entry and times it with
``train_step.time_steps``; appends one JSON row to ``--worker-out``. Not meant to be run by hand."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

from vs_maxtext import BENCH, CONFIGS, MESH_8, REPO

def maxtext_worker(args) -> None:
  """Runs inside .venvs/maxtext: MaxText's own train step, timed by train_step.time_steps."""
  sys.path[:0] = [BENCH, REPO]
  import importlib.util

  import train_step as ts   # the timing protocol, peaks and CPU-share gauge of our benchmark
  from absl import flags
  flags.FLAGS.mark_as_parsed()
  import jax
  from flax import nnx
  from flax.core.spmd import logical_axis_rules
  import maxtext
  from maxtext.trainers.pre_train import train
  from maxtext.utils import maxtext_utils, sharding, train_utils
  from visprior_jax.models import flops as flops_lib
  from visprior_jax.models.llama import LlamaConfig

  spec = importlib.util.spec_from_file_location("pretrain_configs", os.path.join(REPO, "configs", "pretrain.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  preset, batches, _, _ = CONFIGS[args.config]
  c = module.get_config(preset)
  cfg = LlamaConfig.from_dict(c.model.to_dict())
  n, batch, seq = args.devices, batches[args.devices], c.train.seq_len
  tmp = tempfile.mkdtemp(prefix="vs_maxtext_")
  argv = ["train", os.path.join(os.path.dirname(maxtext.__file__), "configs", "base.yml"),
          "run_name=vs_visprior", f"base_output_directory={tmp}", "hardware=cpu", "skip_jax_distributed_system=True",
          "dataset_type=synthetic", "steps=1000", "learning_rate=3e-4", "warmup_steps_fraction=0.01",
          f"per_device_batch_size={batch / n:g}", f"max_target_length={seq}",
          "model_name=llama3-8b", "override_model_config=True", f"base_emb_dim={cfg.embed_dim}",
          f"base_num_query_heads={cfg.num_heads}", f"base_num_kv_heads={cfg.num_kv_heads}", f"head_dim={cfg.head_dim}",
          f"base_mlp_dim={cfg.mlp_dim}", f"base_num_decoder_layers={cfg.num_layers}", f"vocab_size={cfg.vocab_size}",
          f"logits_via_embedding={cfg.tie_embeddings}", "attention=dot_product", "scan_layers=True",
          f"remat_policy={args.maxtext_remat}", "dtype=float32", "weight_dtype=float32", "enable_checkpointing=False",
          "enable_tensorboard=False", "enable_goodput_recording=False", "jax_cache_dir="]
  if n > 1:
    argv += [f"ici_{k}_parallelism={v}" for k, v in MESH_8.items()]
  if args.maxtext_cli:
    return _maxtext_stock_loop(args, argv, batch * seq, flops_lib.training_flops_per_token(cfg, seq).causal, ts)
  config, recorder = train.initialize(argv)
  devices = jax.devices()
  peak_before, others_before = ts._measured(ts._matmul_peak, 2048)

  (_, _, state_mesh_shardings, _, mesh, _, _, data_loader, rampup_manager, _, state) = \
      train_utils.setup_train_loop(config, recorder)
  jit_model, state = nnx.split(state)
  params_shardings, state_mesh_shardings = sharding.maybe_update_params_sharding_with_opt(config, state_mesh_shardings)
  p_train_step, _ = train_utils.jit_train_and_eval_step(config, jit_model, mesh, state, state_mesh_shardings,
                                                         train.train_step, train.eval_step, None, params_shardings)
  with jax.set_mesh(mesh), logical_axis_rules(config.logical_axis_rules):
    batch_arrays = data_loader.load_next_batch(rampup_manager=rampup_manager)
    jax.block_until_ready((state, batch_arrays))
    t0 = time.perf_counter()
    lowered = p_train_step.lower(state, batch_arrays)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()

    def run_one():
      nonlocal state
      state, metrics = compiled(state, batch_arrays)
      return state, metrics

    timed = ts.time_steps(run_one, lambda out: out[1]["scalar"]["learning/loss"], args.steps, args.warmup, 1)
    if args.profile:   # as train_step.py --profile: 3 more steps traced, after the timing
      jax.block_until_ready(run_one())
      with jax.profiler.trace(args.profile, create_perfetto_trace=True):
        for _ in range(3):
          jax.block_until_ready(run_one())
      with open(os.path.join(args.profile, "step.hlo.txt"), "w") as fh:
        fh.write(compiled.as_text())
    del state
  peak_after, others_after = ts._measured(ts._matmul_peak, 2048)
  peak_all, others_all = (ts._measured(ts._matmul_peak_all, 2048, devices) if n > 1 else (float("nan"),) * 2)
  peak = max(p for p in (peak_before, peak_after, peak_all) if p == p)

  tokens = config.global_batch_size_to_train_on * config.max_target_length
  mt_total_tflops = maxtext_utils.calculate_tflops_training_per_device(config, log=False)[0]
  f = flops_lib.training_flops_per_token(cfg, seq)
  median_s = statistics.median(timed.times)
  tps = tokens / median_s
  row = dict(
      date=datetime.date.today().isoformat(), codebase="maxtext", maxtext=maxtext.__version__ if hasattr(
          maxtext, "__version__") else None, jax=jax.__version__, devices=n, mesh=dict(mesh.shape),
      remat=args.maxtext_remat, batch_size=config.global_batch_size_to_train_on, seq_len=config.max_target_length,
      per_device_batch_size=config.per_device_batch_size, tokens_per_step=tokens, steps=args.steps,
      warmup=args.warmup, lower_s=t1 - t0, compile_s=t2 - t1, first_step_s=timed.first_step_s,
      median_step_s=median_s, best_step_s=min(timed.times), step_times_s=timed.times,
      pipelined_step_s=timed.pipelined_s, tokens_per_s=tps, tokens_per_s_per_device=tps / n,
      model_flops_per_token=f.causal, model_flops_per_token_full_attn=f.full_attention,
      maxtext_flops_per_token=mt_total_tflops * 1e12 * n / tokens,
      xla_flops_per_step=ts._cost_flops(compiled), memory=ts._memory(compiled),
      peak_flops_before=peak_before, peak_flops_after=peak_after, peak_flops_all_devices=peak_all, peak_flops=peak,
      others_cpu_share=dict(peak_before=others_before, timing=timed.others_share, peak_after=others_after,
                            peak_all_devices=others_all),
      mfu=tps * f.causal / peak, loss_first=timed.first_loss, loss_last=timed.last_loss, argv=argv[1:])
  print(f"maxtext | {n} dev | remat {args.maxtext_remat} | {tokens} tok/step | compile {row['compile_s']:.1f}s | "
        f"step median {median_s * 1e3:.1f} ms (pipelined {timed.pipelined_s * 1e3:.1f}) | {tps:,.0f} tok/s | "
        f"MFU {100 * row['mfu']:.1f}% | FLOPs/token ours {f.causal / 1e6:.2f}M, MaxText's "
        f"{row['maxtext_flops_per_token'] / 1e6:.2f}M | loss {timed.first_loss:.3f}->{timed.last_loss:.3f} | "
        f"others' CPU {timed.others_share:.2f}", flush=True)
  with open(args.worker_out, "a") as fh:
    fh.write(json.dumps(row) + "\n")
  shutil.rmtree(tmp, ignore_errors=True)


def _maxtext_stock_loop(args, argv, tokens: int, flops_per_token: float, ts) -> None:
  """--maxtext-cli: MaxText's own ``train.main`` (its loop, synthetic data iterator and per-step
  metric logging) for 1 + warm-up + 2N steps; the orchestrator reads its "completed step: i,
  seconds: s" lines. A check that timing MaxText's step outside its loop does not flatter us."""
  from absl import logging as absl_logging
  from maxtext.trainers.pre_train import train
  absl_logging.use_absl_handler()
  absl_logging.set_verbosity(absl_logging.INFO)   # its step lines are INFO; app.run would set this up
  argv = [a for a in argv if not a.startswith("steps=")] + [f"steps={1 + args.warmup + 2 * args.steps}"]
  peak_before, others_before = ts._measured(ts._matmul_peak, 2048)
  _, others = ts._measured(train.main, argv)
  peak_after, others_after = ts._measured(ts._matmul_peak, 2048)
  row = dict(codebase="maxtext stock loop", devices=args.devices, remat=args.maxtext_remat, tokens_per_step=tokens,
             steps=args.steps, warmup=args.warmup, model_flops_per_token=flops_per_token, peak_flops_before=peak_before,
             peak_flops_after=peak_after, peak_flops=max(peak_before, peak_after),
             others_cpu_share=dict(peak_before=others_before, timing=others, peak_after=others_after), argv=argv[1:])
  with open(args.worker_out, "a") as fh:
    fh.write(json.dumps(row) + "\n")


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("--config", choices=sorted(CONFIGS), required=True)
  ap.add_argument("--devices", type=int, choices=(1, 8), default=1)
  ap.add_argument("--maxtext-remat", required=True)
  ap.add_argument("--steps", type=int, required=True)
  ap.add_argument("--warmup", type=int, required=True)
  ap.add_argument("--worker-out", required=True)
  ap.add_argument("--maxtext-cli", action="store_true")
  ap.add_argument("--profile")
  maxtext_worker(ap.parse_args())


if __name__ == "__main__":
  main()
