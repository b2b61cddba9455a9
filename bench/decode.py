"""Decode throughput: greedy generation with the KV cache against full recomputation.

  python bench/decode.py --preset=llama3_tiny [--batch 8] [--prompt_len 64] [--new_tokens 64]
      [--repeats 3] [--out results.jsonl]

``cache``: ``eval.generate.generate`` (one prefill, then a ``while_loop`` of one-token decode steps,
all under one jit), the path ``visprior eval`` uses. ``recompute``: the same greedy loop without a
cache: every step runs the training forward over the whole (fixed-width, right-padded, causal)
sequence and takes the logits at the last real position, also one jitted ``fori_loop``. Both
generate exactly ``new_tokens`` per row (no stop token); their tokens are compared, so the speed-up
is between two programs that produce the same output. Times exclude compilation (one untimed call
first); tokens/s = batch x new_tokens / median wall time over ``repeats``. Parameters random (seed 0,
fp32), prompts random ids.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from visprior_jax.eval.generate import generate
from visprior_jax.models import functional, presets


@functools.partial(jax.jit, static_argnums=(0, 3))
def _recompute(cfg, params, prompt, new_tokens: int):
  """Greedy without a cache: (B, P) prompt -> (B, new_tokens) ids."""
  b, p = prompt.shape
  seq = jnp.zeros((b, p + new_tokens), jnp.int32).at[:, :p].set(prompt)

  def step(i, seq):
    logits = functional.apply(cfg, params, seq)
    nxt = jnp.argmax(jax.lax.dynamic_index_in_dim(logits, p + i - 1, axis=1, keepdims=False), axis=-1)
    return jax.lax.dynamic_update_slice(seq, nxt.astype(jnp.int32)[:, None], (0, p + i))

  return jax.lax.fori_loop(0, new_tokens, step, seq)[:, p:]


def _time(fn, repeats):
  out = fn()  # compile + first run
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    out = fn()
    times.append(time.perf_counter() - t0)
  return out, times


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--preset", default="llama3_tiny")
  ap.add_argument("--batch", type=int, default=8)
  ap.add_argument("--prompt_len", type=int, default=64)
  ap.add_argument("--new_tokens", type=int, default=64)
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--out", default="")
  a = ap.parse_args()
  cfg = presets.get(a.preset, max_seq_len=max(a.prompt_len + a.new_tokens, 16))
  params = functional.init_params(cfg, seed=0)
  prompt = np.random.default_rng(0).integers(1, cfg.vocab_size - 1, (a.batch, a.prompt_len)).astype(np.int32)
  prompts = prompt.tolist()

  t0 = time.perf_counter()
  cached, cached_t = _time(lambda: generate(cfg, params, prompts, a.new_tokens), a.repeats)
  cache_total = time.perf_counter() - t0
  t0 = time.perf_counter()
  recomputed, recompute_t = _time(lambda: np.asarray(_recompute(cfg, params, prompt, a.new_tokens)), a.repeats)
  recompute_total = time.perf_counter() - t0
  same = np.array_equal(np.asarray(cached), recomputed)
  n = a.batch * a.new_tokens
  res = dict(date=datetime.date.today().isoformat(), host=platform.node(), jax=jax.__version__,
             backend=jax.default_backend(), preset=a.preset, params=int(sum(x.size for x in jax.tree.leaves(params))),
             batch=a.batch, prompt_len=a.prompt_len, new_tokens=a.new_tokens, repeats=a.repeats,
             cache_s=statistics.median(cached_t), recompute_s=statistics.median(recompute_t),
             cache_tok_s=n / statistics.median(cached_t), recompute_tok_s=n / statistics.median(recompute_t),
             cache_compile_and_runs_s=cache_total, recompute_compile_and_runs_s=recompute_total, same_tokens=same)
  res["speedup"] = res["cache_tok_s"] / res["recompute_tok_s"]
  print(f"{a.preset} batch {a.batch} prompt {a.prompt_len} new {a.new_tokens}: cache {res['cache_tok_s']:,.0f} tok/s, "
        f"recompute {res['recompute_tok_s']:,.0f} tok/s, speed-up {res['speedup']:.1f}x, same tokens: {same}")
  if a.out:
    with open(a.out, "a") as fh:
      fh.write(json.dumps(res) + "\n")


if __name__ == "__main__":
  main()
