"""Times the text data pipeline: tokenization, prepare, and mix + pack + batch; compares with a host's demand.

  python bench/data_pipeline.py [--prepared DIR] [--tokenizers bytes,gpt2,llama3,sentencepiece32k,PATH]
      [--seconds S] [--out results.jsonl] [--batch_size 256] [--seq_len 2048] [--process_count 8]

Tokenizer names: ``bytes``; ``gpt2`` (GPT-2 tiktoken ranks), ``llama3`` (Llama-3 ``tokenizer.model``,
128k tiktoken ranks) and ``sentencepiece32k`` (Mistral's 32k SentencePiece) are the real files of
``tests/fixtures/fetch_tokenizer_files.py`` (fetched once into ``tests/fixtures/.cache/``); anything
else is a path for ``tokenizers.load_tokenizer`` (e.g. the demo's ``runs/data/demo/tokenizer.json``).

1. **Tokenization.** The corpus is the standard library's .py files (``python_stdlib``, first
   ``--stdlib_limit``) plus ``pydoc_topics``, held in memory. ``encode_batch`` runs over it in chunks
   of 256 documents (prepare's chunk size), in passes until ``--seconds`` have gone by (at least one
   pass). Some ``encode_batch`` implementations are multi-threaded (tiktoken, HF tokenizers,
   SentencePiece), so besides wall-clock tokens/s the row gives the process's CPU seconds and
   ``tokens_per_cpu_s``, the per-core rate. ``encode`` called once per document (single-threaded
   in every implementation) is timed the same way. Then ``prepare_source`` runs end to end (read
   from memory, tokenize, ArrayRecord shards, sha256, manifest) over the whole corpus into a temp
   dir with workers=1 (inline) and workers=2 (spawned processes; pool start-up and each worker's
   tokenizer load are included, their CPU time is counted once the pool is joined).
2. **Mix + pack + batch.** A prepared dir: ``--prepared`` (recipe: ``--recipe``, default every
   source in it at equal weight), or the demo data config's sources (configs/data/demo.py) prepared
   into a temp dir with ``--mix_tokenizer`` and mixed 50/50 like the demo. ``MixtureSource(...)
   .batch(step)`` (no prefetch: the calling thread) is timed for the whole global batch
   (process_count 1) and for one host's share (process 0 of ``--process_count``). The first step
   of a shuffle window computes the blocks the window's rows come from (cached for the window), so
   steps 1, 2, ... are timed in order for ``--seconds`` (crossing windows when time allows) and the
   rate is total tokens / total time; step 0 (cold: readers opened, caches empty) is reported apart.
3. **Demand.** One training host (``--chips_per_host`` chips of ``--chip_tflops`` bf16 at ``--mfu``)
   consumes ``mfu * chips * peak / training_flops_per_token(preset, seq_len).causal`` tokens/s; the
   script prints each stage's per-core rate against it and the cores a host would need.

``others_cpu_share`` (Linux, from /proc/stat, as in train_step.py) is the fraction of the machine's
CPU that other processes used during each measurement; on a shared machine read a row above ~10% as
contended. Every measurement appends one JSON line to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import statistics
import sys
import tempfile
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
sys.path.insert(0, _HERE)
sys.path.insert(0, os.path.join(_ROOT, "tests", "fixtures"))

from train_step import _cpu_snapshot, _others_share  # noqa: E402  (the same noise gauge)

NAMED = {"gpt2": "gpt2", "llama3": "llama3", "sentencepiece32k": "mistral_sp"}  # -> fetch_tokenizer_files keys


def _tokenizer_path(name: str) -> str:
  if name == "bytes" or name not in NAMED:
    return name
  import fetch_tokenizer_files
  return fetch_tokenizer_files.fetch(NAMED[name])


def _cpu_s() -> float:
  t = os.times()
  return t.user + t.system + t.children_user + t.children_system


def _snapshot():
  """train_step's /proc/stat snapshot with "own" CPU including reaped children (prepare's workers)."""
  s = _cpu_snapshot()
  return None if s is None else (s[0], s[1], _cpu_s())


class _Meter:
  """Wall seconds, this process's CPU seconds (threads and reaped children) and the noise gauge."""

  def __enter__(self):
    self.snap, self.cpu0, self.t0 = _snapshot(), _cpu_s(), time.perf_counter()
    return self

  def __exit__(self, *exc):
    self.wall = time.perf_counter() - self.t0
    self.cpu = _cpu_s() - self.cpu0
    self.others = _others_share(self.snap, _snapshot())


def _emit(out, row: dict) -> None:
  row = dict(date=datetime.date.today().isoformat(), host=platform.node(), python=platform.python_version(),
             cpus=os.cpu_count(), **row)
  if out:
    with open(out, "a") as f:
      f.write(json.dumps(row) + "\n")


def _corpus(limit: int) -> list[str]:
  from visprior_jax.data import sources
  docs = list(sources.read_documents({"kind": "python_stdlib", "limit": limit}))
  docs += list(sources.read_documents({"kind": "pydoc_topics"}))
  return [d["text"] for d in docs]


def _timed_passes(fn, texts: list[str], seconds: float, chunk: int = 256):
  """Run fn over the corpus in chunks, whole passes until ``seconds`` elapsed; (tokens, bytes, passes, meter)."""
  tokens = nbytes = passes = 0
  text_bytes = sum(len(t.encode("utf-8")) for t in texts)
  with _Meter() as m:
    while True:
      for i in range(0, len(texts), chunk):
        tokens += sum(len(ids) for ids in fn(texts[i:i + chunk]))
      nbytes += text_bytes
      passes += 1
      if time.perf_counter() - m.t0 >= seconds:
        break
  return tokens, nbytes, passes, m


def bench_tokenizers(args, names: list[str], rows: list[dict]) -> None:
  from visprior_jax.data import prepare, tokenizers
  texts = _corpus(args.stdlib_limit)
  mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
  print(f"# corpus: {len(texts)} documents, {mb:.2f} MB (python_stdlib limit {args.stdlib_limit} + pydoc_topics)",
        flush=True)
  for name in names:
    try:
      path = _tokenizer_path(name)
    except Exception as e:  # noqa: BLE001 - e.g. fetch_tokenizer_files.RegistryUnreachable
      print(f"# {name}: skipped ({type(e).__name__}: {e})", flush=True)
      continue
    t0 = time.perf_counter()
    tok = tokenizers.load_tokenizer(path)
    load_s = time.perf_counter() - t0
    common = dict(stage="tokenize", tokenizer=name, tokenizer_path=path, vocab_size=tok.vocab_size,
                  load_s=load_s, corpus_documents=len(texts), corpus_mb=mb)
    for method, fn in (("encode_batch", tok.encode_batch), ("encode", lambda ts: [tok.encode(t) for t in ts])):
      tokens, nbytes, passes, m = _timed_passes(fn, texts, args.seconds)
      row = dict(common, method=method, passes=passes, tokens=tokens, wall_s=m.wall, cpu_s=m.cpu,
                 cores_used=m.cpu / m.wall, tokens_per_s=tokens / m.wall, mb_per_s=nbytes / 1e6 / m.wall,
                 tokens_per_cpu_s=tokens / m.cpu, mb_per_cpu_s=nbytes / 1e6 / m.cpu,
                 bytes_per_token=nbytes / tokens, others_cpu_share=m.others)
      rows.append(row)
      _emit(args.out, row)
      _print_row(row)
    for workers in (1, 2):
      with tempfile.TemporaryDirectory(prefix="bench_prepare_") as tmp, _Meter() as m:
        man = prepare.prepare_source(texts, tok, tmp, "corpus", docs_per_shard=args.docs_per_shard, workers=workers,
                                     progress=False,
                                     tokenizer_factory=functools.partial(tokenizers.load_tokenizer, path))
      row = dict(common, method=f"prepare_source workers={workers}", workers=workers, passes=1,
                 tokens=man["tokens"], shards=len(man["shards"]), wall_s=m.wall, cpu_s=m.cpu,
                 cores_used=m.cpu / m.wall, tokens_per_s=man["tokens"] / m.wall, mb_per_s=mb / m.wall,
                 tokens_per_s_per_worker=man["tokens"] / m.wall / workers,
                 tokens_per_cpu_s=man["tokens"] / m.cpu, mb_per_cpu_s=mb / m.cpu, others_cpu_share=m.others)
      rows.append(row)
      _emit(args.out, row)
      _print_row(row)


def _print_row(r: dict) -> None:
  extra = f" | {r['tokens_per_s_per_worker'] / 1e6:6.2f} M tok/s/worker" if "tokens_per_s_per_worker" in r else ""
  print(f"{r['tokenizer']:>16} | {r['method']:<24} | {r['tokens_per_s'] / 1e6:7.2f} M tok/s {r['mb_per_s']:7.2f} MB/s "
        f"| {r['tokens_per_cpu_s'] / 1e6:7.2f} M tok/cpu-s {r['mb_per_cpu_s']:6.2f} MB/cpu-s | cores {r['cores_used']:.2f} "
        f"| {r['wall_s']:5.1f} s{extra} | others {100 * r['others_cpu_share']:.0f}%", flush=True)


def _prepare_demo(out_dir: str, tokenizer_name: str, rows: list[dict], args) -> tuple[str, list]:
  """The demo data config's sources prepared into out_dir with the given tokenizer; (dir, recipe)."""
  sys.path.insert(0, os.path.join(_ROOT, "configs", "data"))
  import demo  # configs/data/demo.py
  from visprior_jax.data import prepare, sources, tokenizers
  cfg = demo.get_config()
  path = _tokenizer_path(tokenizer_name)
  tok = tokenizers.load_tokenizer(path)
  total = 0
  with _Meter() as m:
    for name, spec in cfg.sources.items():
      spec = dict(spec.to_dict() if hasattr(spec, "to_dict") else spec, source=name)
      man = prepare.prepare_source(sources.read_documents(spec), tok, out_dir, name,
                                   docs_per_shard=cfg.docs_per_shard, workers=cfg.workers, progress=False,
                                   tokenizer_factory=functools.partial(tokenizers.load_tokenizer, path))
      total += man["tokens"]
      print(f"# prepared demo source {name} with {tokenizer_name}: {man['documents']} documents, "
            f"{man['tokens']:,} tokens, {len(man['shards'])} shards", flush=True)
  row = dict(stage="prepare_demo", tokenizer=tokenizer_name, workers=cfg.workers, tokens=total, wall_s=m.wall,
             cpu_s=m.cpu, tokens_per_s=total / m.wall, tokens_per_cpu_s=total / m.cpu, others_cpu_share=m.others)
  rows.append(row)
  _emit(args.out, row)
  return out_dir, [dict(source=name, weight=0.5) for name in cfg.sources]


def _recipe_from_dir(prepared: str, recipe_arg: str | None) -> list:
  if recipe_arg:
    out = []
    for item in recipe_arg.split(","):
      name, _, w = item.partition(":")
      out.append(dict(source=name, weight=float(w or 1)))
    return out
  names = sorted(d for d in os.listdir(prepared) if os.path.exists(os.path.join(prepared, d, "manifest.json")))
  if not names:
    raise SystemExit(f"error: {prepared} holds no prepared source (no */manifest.json)")
  return [dict(source=n, weight=1.0) for n in names]


def bench_mixture(args, prepared: str, recipe: list, tokenizer_name: str, rows: list[dict]) -> None:
  import numpy as np
  from visprior_jax.data.text_pipeline import MixtureSource
  src = MixtureSource(prepared, recipe, args.batch_size, args.seq_len, seed=42, shuffle_window=args.shuffle_window)
  stream_tokens = {str(s): t for s, t in zip(src.streams, src._totals)}
  print(f"# mixture: {prepared} {[(r['source'], r['weight']) for r in recipe]}, stream tokens {stream_tokens}, "
        f"batch {args.batch_size} x seq {args.seq_len}, shuffle_window {args.shuffle_window}", flush=True)
  for pc in sorted({1, args.process_count}):
    src = MixtureSource(prepared, recipe, args.batch_size, args.seq_len, seed=42, shuffle_window=args.shuffle_window)
    rows_per = args.batch_size // pc
    tok_per_step = rows_per * args.seq_len
    with _Meter() as first:
      b = src.batch(0, 0, pc)
    assert b["inputs"].shape == (rows_per, args.seq_len), b["inputs"].shape
    times, step = [], 1
    with _Meter() as m:  # steps 1.. in order, crossing shuffle windows when time allows
      while step < 4 or time.perf_counter() - m.t0 < args.seconds:
        t0 = time.perf_counter()
        b = src.batch(step, 0, pc)
        times.append(time.perf_counter() - t0)
        step += 1
    median = statistics.median(times)
    mean = m.wall / len(times)
    row = dict(stage="mix_pack_batch", tokenizer=tokenizer_name, prepared=prepared, recipe=recipe,
               batch_size=args.batch_size, seq_len=args.seq_len, shuffle_window=args.shuffle_window,
               process_count=pc, rows=rows_per, tokens_per_step=tok_per_step, steps=len(times),
               windows_started=len(range(0, step, args.shuffle_window)),
               first_step_s=first.wall, first_step_cpu_s=first.cpu, median_step_s=median, best_step_s=min(times),
               max_step_s=max(times), mean_step_s=mean, cpu_s_per_step=m.cpu / len(times),
               cores_used=m.cpu / m.wall, steps_per_s=1 / mean, tokens_per_s=tok_per_step / mean,
               tokens_per_s_median=tok_per_step / median, tokens_per_cpu_s=tok_per_step * len(times) / m.cpu,
               loss_mask_mean=float(np.mean(b["loss_mask"])), mean_segments_per_row=float(b["segment_ids"].max(1).mean()),
               others_cpu_share=dict(first=first.others, steady=m.others))
    rows.append(row)
    _emit(args.out, row)
    print(f"{'mix+pack+batch':>16} | P={pc} ({rows_per} rows x {args.seq_len}) | first {first.wall * 1e3:6.1f} ms | "
          f"mean {mean * 1e3:6.1f} ms median {median * 1e3:6.1f} max {max(times) * 1e3:6.1f} ({len(times)} steps) | "
          f"{1 / mean:6.1f} steps/s | {tok_per_step / mean / 1e6:6.2f} M tok/s | "
          f"{row['tokens_per_cpu_s'] / 1e6:6.2f} M tok/cpu-s | cores {m.cpu / m.wall:.2f} | "
          f"{b['segment_ids'].max(1).mean():.1f} docs/row | others {100 * first.others:.0f}%/{100 * m.others:.0f}%",
          flush=True)


def host_demand(args) -> dict[str, float]:
  from visprior_jax.models import flops, presets
  out = {}
  for preset in args.presets.split(","):
    f = flops.training_flops_per_token(presets.get(preset), args.seq_len).causal
    out[preset] = args.mfu * args.chips_per_host * args.chip_tflops * 1e12 / f
  return out


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--prepared", help="prepared dir for stage 2 (default: prepare the demo config's sources)")
  p.add_argument("--recipe", help="source:weight,... for --prepared (default: all sources, equal weights)")
  p.add_argument("--tokenizers", default="bytes,gpt2,llama3,sentencepiece32k",
                 help="comma list of bytes, gpt2, llama3, sentencepiece32k or tokenizer paths ('' skips stage 1)")
  p.add_argument("--mix_tokenizer", default="sentencepiece32k", help="tokenizer for the demo prepared dir")
  p.add_argument("--seconds", type=float, default=3.0, help="minimum seconds per timed loop")
  p.add_argument("--out", help="append one JSON line per measurement to this file")
  p.add_argument("--stdlib_limit", type=int, default=600, help="python_stdlib documents in the stage-1 corpus")
  p.add_argument("--docs_per_shard", type=int, default=200)
  p.add_argument("--batch_size", type=int, default=256)
  p.add_argument("--seq_len", type=int, default=2048)
  p.add_argument("--shuffle_window", type=int, default=64)
  p.add_argument("--process_count", type=int, default=8, help="hosts sharing the global batch (one host is timed)")
  p.add_argument("--presets", default="llama3_340m,llama3_7b")
  p.add_argument("--chips_per_host", type=int, default=4)
  p.add_argument("--chip_tflops", type=float, default=459.0, help="bf16 peak per chip (v5p: 459)")
  p.add_argument("--mfu", type=float, default=0.5)
  p.add_argument("--skip_mixture", action="store_true")
  args = p.parse_args()
  if args.batch_size % args.process_count:
    p.error(f"--batch_size {args.batch_size} is not divisible by --process_count {args.process_count}")

  rows: list[dict] = []
  names = [n for n in args.tokenizers.split(",") if n]
  if names:
    bench_tokenizers(args, names, rows)
  if not args.skip_mixture:
    if args.prepared:
      bench_mixture(args, args.prepared, _recipe_from_dir(args.prepared, args.recipe), "(prepared)", rows)
    else:
      with tempfile.TemporaryDirectory(prefix="bench_mix_") as tmp:
        prepared, recipe = _prepare_demo(tmp, args.mix_tokenizer, rows, args)
        bench_mixture(args, prepared, recipe, args.mix_tokenizer, rows)

  demand = host_demand(args)
  print(f"\n# host demand: {args.chips_per_host} chips x {args.chip_tflops:g} TFLOP/s x MFU {args.mfu:g}, "
        f"seq {args.seq_len}: " + ", ".join(f"{k} {v:,.0f} tok/s" for k, v in demand.items()))
  hdr = "stage | per-core tok/s | " + " | ".join(f"{k}: per-core/demand, cores/host" for k in demand)
  print(hdr)
  for r in rows:
    if r["stage"] == "tokenize":
      label = f"tokenize {r['tokenizer']} {r['method']}"
    elif r["stage"] == "mix_pack_batch":
      label = f"mix+pack+batch P={r['process_count']} ({r['rows']} rows)"
    else:
      continue
    rate = r["tokens_per_cpu_s"]
    cols = [f"{rate / d:.3f}, {d / rate:.2f}" for d in demand.values()]
    print(f"{label} | {rate / 1e6:.2f} M | " + " | ".join(cols))
    _emit(args.out, dict(stage="demand", measurement=label, tokens_per_cpu_s=rate, host_demand=demand,
                         chips_per_host=args.chips_per_host, chip_tflops=args.chip_tflops, mfu=args.mfu,
                         seq_len=args.seq_len, ratio={k: rate / d for k, d in demand.items()},
                         cores_per_host={k: d / rate for k, d in demand.items()}))


if __name__ == "__main__":
  main()
