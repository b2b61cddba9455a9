"""Evaluation of one checkpoint: ``visprior eval lm|vqa|judge|alignment|all --config=configs/eval.py``.

  # language evals of a pre-training run (the paper's §2.2): one local folder per task under lm.data_root
  visprior eval lm --config=configs/eval.py --config.checkpoint=runs/3b/pretrain \\
      --config.tokenizer=tok.model --config.lm.data_root=/data/lm_eval

  # the 16 VQA benchmarks + DocVQA, MMVP, MLE-Bench of an SFT run (tokenizer: the run's own)
  visprior eval vqa --config=configs/eval.py --config.checkpoint=runs/3b/sft --config.vqa.data_root=/data/vqa

  # everything the data roots hold, then the judge (needs an endpoint) and the alignment score
  visprior eval all --config=configs/eval.py --config.checkpoint=runs/3b/sft --config.lm.data_root=... \\
      --config.vqa.data_root=... --config.judge.endpoint.base_url=http://gpu:8000/v1 --config.alignment.pairs=...

Data roots hold one folder per benchmark, each a local snapshot of the published dataset repo
(``huggingface-cli download lmms-lab/textvqa --repo-type dataset --local-dir /data/vqa/textvqa``);
the folder names are ``Benchmark.folder`` in visprior_jax/eval/vqa/*.py (and the task names of
visprior_jax/eval/lm_tasks.py). Outputs go to ``out`` (default ``<checkpoint>/eval/step_<N>``;
``<checkpoint>/eval_blank/step_<N>`` with ``vqa.images=blank``):
``metrics.jsonl`` records, ``predictions/<benchmark>.jsonl``; rerunning resumes (eval/results.py).
"""

import importlib.util
import os

import ml_collections


def _judge_endpoint():
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "eval", "judge_endpoint.py")
  spec = importlib.util.spec_from_file_location("judge_endpoint", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def get_config(arg: str = ""):
  del arg
  c = ml_collections.ConfigDict()
  c.checkpoint = ""        # training workdir (its latest step), a step folder, or a parameter export
  c.tokenizer = ""         # "" = the tokenizer named in the run's config (multimodal runs record it)
  c.run = ""               # records' run name; "" = the workdir's name
  c.out = ""               # "" = <checkpoint>/eval/step_<N> (exports: <export>/eval)
  c.mesh = ml_collections.ConfigDict(dict(data=-1))   # eval mesh; params are sharded by the training rules
  c.rules = ml_collections.ConfigDict()               # overrides of parallel/rules.py DEFAULT_RULES
  c.dtype = ""             # compute dtype override ("" = the checkpoint's)
  c.on_error = "skip"      # bad rows / images: skip and count, or "raise" (an error naming file and row)
  c.limit = 0              # items per benchmark (0 = all); quick looks only: scores then are not comparable
  c.progress = True        # progress bars on stderr
  c.seed = 42              # the paper: seed 42, temperature 0

  c.lm = ml_collections.ConfigDict()
  c.lm.data_root = ""      # one folder per task: wikitext lambada piqa hellaswag winogrande arc_easy ...
  c.lm.tasks = "all"       # comma-separated task names, or "all" (those of visprior_jax/eval/lm_tasks.py)
  c.lm.batch_size = 16
  c.lm.max_len = 0         # 0 = the model's max_seq_len

  c.vqa = ml_collections.ConfigDict()
  c.vqa.data_root = ""
  c.vqa.benchmarks = "all"       # names and sets (paper16, cambrian, all); see eval/vqa/registry.py
  c.vqa.parser = "paper"         # multiple-choice parsing: paper (3-tier, default) | lmms | cambrian
  c.vqa.batch_size = 8
  c.vqa.max_new_tokens = 0       # 0 = each benchmark's (Cambrian's values)
  c.vqa.max_images = 1           # images per item (Cambrian gives the model the first)
  c.vqa.temperature = 0.0
  c.vqa.missing = "error"        # a benchmark folder that does not exist: error | skip
  c.vqa.images = "real"          # real | blank: every image replaced by a uniform mid-gray one of its size (the
                                 # no-image baseline); records get "images": "blank", default out
                                 # <checkpoint>/eval_blank/step_<N>

  c.judge = ml_collections.ConfigDict()
  c.judge.enabled = False        # part of `visprior eval all` (`visprior eval judge` always runs it)
  c.judge.endpoint = _judge_endpoint()   # configs/eval/judge_endpoint.py
  c.judge.benchmarks = "mmmu,scienceqa,ai2d,mathvista,realworldqa,blink,coco,ade,omni3d"  # Knowledge + Vision-Centric
  c.judge.max_new_tokens = 512
  c.judge.limit = 0              # items per benchmark for the explained answers (0 = all)

  c.alignment = ml_collections.ConfigDict()
  c.alignment.pairs = ""         # image-caption pairs: JSONL/Parquet rows {"image", "caption"} (data/multimodal.py)
  c.alignment.image_root = ""    # folder relative image paths are under
  c.alignment.encoders = ""      # comma-separated vision towers: "self" (the MLLM's), big_vision .npz[:img], HF dirs
  c.alignment.family = ""        # preprocessing family of the listed encoders ("" = the run's)
  c.alignment.k = 20             # mutual nearest neighbours (the paper's §4.3)
  c.alignment.max_pairs = 1024
  c.alignment.batch_size = 16
  return c
