"""``visprior <command>``: the command-line entry point.

  visprior pretrain   --config=configs/pretrain.py:<name> --workdir=DIR [--config.x=y ...]
  visprior align      --config=configs/align.py:<preset> --workdir=DIR (projector only)
  visprior sft        --config=configs/sft.py:<preset>[,blind] --workdir=DIR (projector + LLM)
  visprior encoder    --config=configs/encoder.py:tiny --workdir=DIR (SigLIP-style image-text encoder)
  visprior model-info --config=configs/pretrain.py:<name>
  visprior aot        --config=<any stage config> --topology=v5p-128 [--num_slices=N] [--search] [--out=FILE.json]
  visprior convert hf-to-native --src=HF_DIR --dst=DIR [--verify]
  visprior convert native-to-hf --src=DIR --dst=HF_DIR [--verify]
  visprior eval lm|vqa|judge|alignment|all --config=configs/eval.py --config.checkpoint=DIR [--config.x=y ...]
  visprior study run|status|launch|report --config=configs/study/<name>.py --workdir=DIR [--only=REGEX]
                                [--compilation_cache=auto|off|DIR]
  visprior data prepare         --config=configs/data/<name>.py
  visprior data train-tokenizer --config=configs/data/<name>.py
  visprior data label           --config=configs/data/label_endpoint.py[:lexical] --prepared=DIR [--sources=a,b]
  visprior data label-report    --prepared=DIR [--sources=a,b] [--out=FILE.json]
  visprior data label-instructions --config=configs/data/instruction_label_endpoint.py --src=FILE
                                --image_root=DIR --out=FILE.jsonl [--ablate=perception --dst=DIR]
  visprior mix fit|propose|validate --results=STUDY_DIR|results.parquet|paper[:Table 1] [--target=vqa_overall]
                                [--k=4] [--predictor=gp] [--out=DIR|FILE.py|FILE.md]   (visprior_jax/mixopt/)

Configuration errors print one line (``error: ...``) and exit with status 2. ``aot`` exits with 1
when the step does not fit (with --search: when nothing fits).
"""

from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

COMMANDS = ("pretrain", "align", "sft", "encoder", "model-info", "aot", "convert", "eval", "data", "study", "mix")
DATA_COMMANDS = ("prepare", "train-tokenizer", "label", "label-report", "label-instructions")
FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file and argument, e.g. configs/pretrain.py:demo.",
                                          lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory (local path or gs://...).")
flags.DEFINE_string("src", None, "convert: source checkpoint directory.")
flags.DEFINE_string("dst", None, "convert: destination directory.")
flags.DEFINE_bool("verify", False, "convert: run both models on the same tokens and report max |dlogits|.")
flags.DEFINE_string("prepared", None, "data label/label-report: the prepared shards directory.")
flags.DEFINE_list("sources", None, "data label/label-report: only these sources (default: all).")
flags.DEFINE_string("out", None, "data label-report: also write the rates as JSON here; aot: the report as JSON.")
flags.DEFINE_string("tokenizer", None, "data label: the tokenizer the shards were prepared with "
                    "(default: the one named in the shards' manifest).")
flags.DEFINE_integer("limit", None, "data label: label at most this many segments per source.")
flags.DEFINE_string("image_root", "", "data label-instructions: folder the instructions' image paths are under.")
flags.DEFINE_string("topology", None, "aot: the TPU slice to compile for: v4-<cores>, v5p-<cores>, v5e-<chips> "
                    "(v5litepod-<chips>), v6e-<chips>, or a shape such as v5p:4x4x8.")
flags.DEFINE_integer("num_slices", 1, "aot: slices of --topology joined over DCN (multi-slice).")
flags.DEFINE_bool("search", False, "aot: find the largest per-device micro-batch and cheapest remat that fit.")
flags.DEFINE_string("ablate", None, "data label-instructions: write the 100/50/0% removal variants of this "
                    "category (perception | reasoning | others) under --dst.")
flags.DEFINE_string("only", None, "study run: only the steps whose name matches this regex.")
flags.DEFINE_string("prefix", "", "study launch: prepended to every printed command (e.g. a launcher).")
flags.DEFINE_string("compilation_cache", "auto", "study run: JAX's persistent compilation cache: auto "
                    "(<workdir>/.study/jax_cache for a local workdir), off, or a directory.")
flags.DEFINE_string("overrides", None, "A JSON object of dotted config keys -> values, applied after the "
                    "--config.x=y flags; for values those flags cannot set (lists, dicts, a changed type). "
                    "visprior study launch prints them this way.")
flags.DEFINE_string("results", None, "mix: a study directory, a results .parquet/.csv, or paper[:<table>] "
                    "(comma-separated to join several).")
flags.DEFINE_string("target", "vqa_overall", "mix: the measure to optimise (vqa_overall, vqa_general, ..., lm_ppl).")
flags.DEFINE_integer("k", 4, "mix propose: how many mixtures to propose.")
flags.DEFINE_string("predictor", "gp", "mix propose: the predictor behind the expected improvement "
                    "(scheffe, shukor, gp, linear, boosting).")


def _fail(msg: str) -> None:
  print(f"error: {msg}", file=sys.stderr)
  sys.exit(2)


def _train(args):
  """pretrain / align / sft / encoder: one trainer; the command must match the config's stage."""
  if not FLAGS.workdir:
    _fail("--workdir is required")
  stage = _CONFIG.value.get("stage", "pretrain")
  if stage != args[1]:
    _fail(f"`visprior {args[1]}` was given a {stage} config; use `visprior {stage}` or configs/{args[1]}.py")
  from visprior_jax.parallel import distributed
  try:   # first, before anything touches a device: joins the other hosts of a multi-host run, if any
    distributed.initialize(_CONFIG.value)
  except distributed.DistributedError as e:
    _fail(str(e))
  from visprior_jax.train.trainer import TrainingDiverged, train
  from visprior_jax.train.validate import ConfigError
  from visprior_jax.checkpoint.params import CheckpointMismatch
  try:
    result = train(_CONFIG.value, FLAGS.workdir)
  except (ConfigError, CheckpointMismatch) as e:
    _fail(str(e))
  except TrainingDiverged as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  import jax
  if jax.process_index() != 0:   # one summary per run, like the metrics
    return
  losses = [result.losses[s] for s in sorted(result.losses)]
  curve = f"; loss {losses[0]:.4f} -> {losses[-1]:.4f}  {_sparkline(losses)}" if losses else ""
  print(f"{result.status} at step {result.step}{curve}")


def _model_info(_args):
  from visprior_jax.models import flops
  from visprior_jax.train.validate import ConfigError, model_config
  config = _CONFIG.value
  try:
    cfg = model_config(config)
  except ConfigError as e:
    _fail(str(e))
  seq = config.train.seq_len
  f = flops.training_flops_per_token(cfg, seq)
  print(f"params            {flops.param_count(cfg):,}  ({flops.param_count(cfg) / 1e9:.3f} B)")
  print(f"layers x d_model  {cfg.num_layers} x {cfg.embed_dim}; heads {cfg.num_heads} (kv {cfg.num_kv_heads}) "
        f"x {cfg.head_dim}; mlp {cfg.mlp_dim}; vocab {cfg.vocab_size}")
  print(f"train FLOPs/token {f.causal:.4g} at seq {seq} (causal attention at half the map; "
        f"full map: {f.full_attention:.4g})")
  print(f"train FLOPs/step  {f.causal * seq * config.train.batch_size:.4g} "
        f"({config.train.batch_size} x {seq} tokens)")


def _aot(_args):
  """Compiles the config's training step for a TPU topology on this machine (parallel/aot.py)."""
  import json
  import os
  import jax
  from visprior_jax.parallel import aot
  from visprior_jax.parallel.mesh import MeshError
  from visprior_jax.train.setup import build_step
  from visprior_jax.train.validate import ConfigError
  if not FLAGS.topology:
    _fail("--topology is required, e.g. --topology=v5p-128")
  if not os.environ.get("JAX_PLATFORMS"):
    jax.config.update("jax_platforms", "cpu")   # compile-only: never claim local accelerators
  name = os.path.basename(FLAGS["config"].config_filename)
  try:
    topo = aot.parse_topology(FLAGS.topology, FLAGS.num_slices)
    print(f"compiling {name} for {topo.describe()}", flush=True)
    if FLAGS.search:
      found = aot.search(_CONFIG.value, topo, build_step, progress=lambda line: print(line, flush=True))
      print(found.summary())
      report, ok = found.to_dict(), found.remat is not None
    else:
      result = aot.compile_step(_CONFIG.value, topo, build_step, name=name)
      print(result.summary())
      report, ok = result.to_dict(), result.fits
  except (aot.AotError, ConfigError, MeshError) as e:
    _fail(str(e))
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump({"config": name, "topology": topo.name, "num_slices": topo.num_slices, **report}, f, indent=1)
  sys.exit(0 if ok else 1)


def _convert(args):
  from visprior_jax.convert import hf
  if len(args) < 3 or args[2] not in ("hf-to-native", "native-to-hf"):
    _fail("usage: visprior convert hf-to-native|native-to-hf --src=DIR --dst=DIR [--verify]")
  if not (FLAGS.src and FLAGS.dst):
    _fail("--src and --dst are required")
  fn = hf.hf_to_native if args[2] == "hf-to-native" else hf.native_to_hf
  try:
    fn(FLAGS.src, FLAGS.dst, verify=FLAGS.verify)
  except (ValueError, FileNotFoundError) as e:
    _fail(str(e))


def _data(args):
  from visprior_jax.data import commands
  sub = args[2] if len(args) > 2 else ""
  if sub not in DATA_COMMANDS:
    _fail(f"usage: visprior data {{{'|'.join(DATA_COMMANDS)}}} [flags]")
  try:
    if sub in ("prepare", "train-tokenizer", "label", "label-instructions") and _CONFIG.value is None:
      _fail(f"--config is required for data {sub}")
    if sub == "prepare":
      commands.prepare_command(_CONFIG.value)
    elif sub == "train-tokenizer":
      print(commands.train_tokenizer_command(_CONFIG.value))
    elif sub == "label-instructions":
      if not (FLAGS.src and FLAGS.out):
        _fail("--src (instructions) and --out (labels .jsonl) are required")
      commands.label_instructions_command(_CONFIG.value, FLAGS.src, FLAGS.image_root, FLAGS.out, FLAGS.ablate,
                                          FLAGS.dst)
    elif sub == "label":
      if not FLAGS.prepared:
        _fail("--prepared is required")
      commands.label_command(FLAGS.prepared, FLAGS.sources, _CONFIG.value, FLAGS.tokenizer, FLAGS.limit)
    else:
      if not FLAGS.prepared:
        _fail("--prepared is required")
      commands.label_report_command(FLAGS.prepared, FLAGS.sources, FLAGS.out)
  except (ValueError, FileNotFoundError) as e:
    _fail(str(e))


def _eval(args):
  from visprior_jax.checkpoint.params import CheckpointMismatch
  from visprior_jax.eval import commands
  sub = args[2] if len(args) > 2 else ""
  if sub not in commands.SUITES:
    _fail(f"usage: visprior eval {{{'|'.join(commands.SUITES)}}} --config=configs/eval.py --config.checkpoint=DIR")
  if _CONFIG.value is None:
    _fail("--config is required, e.g. --config=configs/eval.py --config.checkpoint=runs/x/sft")
  try:
    commands.run(_CONFIG.value, sub)
  except (ValueError, FileNotFoundError, CheckpointMismatch) as e:
    _fail(str(e))


def _study(args):
  from visprior_jax.study import runner
  sub = args[2] if len(args) > 2 else ""
  if sub not in ("run", "status", "launch", "report"):
    _fail("usage: visprior study run|status|launch|report --config=configs/study/<name>.py --workdir=DIR")
  if _CONFIG.value is None or not FLAGS.workdir:
    _fail("--config (a configs/study/*.py file) and --workdir are required")
  try:
    sys.exit(runner.main_command(sub, _CONFIG.value, FLAGS.workdir, only=FLAGS.only, prefix=FLAGS.prefix,
                                 cache=FLAGS.compilation_cache))
  except (ValueError, KeyError, FileNotFoundError) as e:
    _fail(str(e))


def _mix(args):
  """Mixture optimizer (visprior_jax/mixopt/commands.py): fit predictors, propose mixtures, validate."""
  import os
  os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")   # tiny matrices: BLAS threads only slow them (mixopt)
  from visprior_jax.mixopt import commands
  sub = args[2] if len(args) > 2 else ""
  if sub not in ("fit", "propose", "validate"):
    _fail("usage: visprior mix fit|propose|validate --results=... [--target=vqa_overall] [--k=N] [--out=...]")
  try:
    if sub == "fit":
      commands.fit_command(FLAGS.results, FLAGS.target, FLAGS.out)
    elif sub == "propose":
      commands.propose_command(FLAGS.results, FLAGS.target, FLAGS.k, FLAGS.out, FLAGS.predictor,
                               command=" ".join(["visprior", *sys.argv[1:]]))
    else:
      commands.validate_command(FLAGS.out or "docs/mixture_optimizer.md", tiny=FLAGS.results or "runs/tiny_study")
  except (ValueError, FileNotFoundError) as e:
    _fail(str(e))


def _apply_json_overrides(text: str) -> None:
  import json
  from visprior_jax.study.runner import apply_overrides
  if _CONFIG.value is None:
    _fail("--overrides needs --config")
  try:
    overrides = json.loads(text)
  except json.JSONDecodeError as e:
    _fail(f"--overrides is not JSON: {e}")
  if not isinstance(overrides, dict):
    _fail("--overrides must be a JSON object of dotted config keys, e.g. '{\"data.sources\": [...]}'")
  try:
    with _CONFIG.value.unlocked():
      apply_overrides(_CONFIG.value, overrides)
  except (KeyError, TypeError, ValueError) as e:
    _fail(f"--overrides: {e}")


def _sparkline(values, width: int = 40) -> str:
  bars = "▁▂▃▄▅▆▇█"
  step = max(1, len(values) // width)
  pts = values[::step]
  lo, hi = min(pts), max(pts)
  return "".join(bars[int((v - lo) / (hi - lo + 1e-12) * (len(bars) - 1))] for v in pts)


def main(argv):
  if not FLAGS["verbosity"].present:  # orbax and absl log every save at INFO; keep the console readable
    logging.set_verbosity(logging.WARNING)
  if FLAGS.overrides:
    _apply_json_overrides(FLAGS.overrides)
  if len(argv) < 2 or argv[1] not in COMMANDS:
    _fail(f"usage: visprior {{{'|'.join(COMMANDS)}}} [flags]; see visprior_jax/cli.py")
  if argv[1] in ("pretrain", "align", "sft", "encoder", "model-info", "aot") and _CONFIG.value is None:
    _fail("--config is required, e.g. --config=configs/pretrain.py:demo")
  {"pretrain": _train, "align": _train, "sft": _train, "encoder": _train, "model-info": _model_info,
   "aot": _aot, "convert": _convert, "eval": _eval, "data": _data, "study": _study, "mix": _mix}[argv[1]](argv)


def run():
  app.run(main)


if __name__ == "__main__":
  run()
