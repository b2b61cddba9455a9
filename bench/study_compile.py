"""Where a study's time goes: per step, its wall seconds and the JAX compilation inside them.

  python bench/study_compile.py --config=configs/study/tiny.py:quick --workdir=/tmp/study \
      [--cache=auto|off|DIR] [--min_compile_secs=0] [--only=REGEX] [--out=steps.jsonl]

Runs the study like ``visprior study run`` (same runner, one process) with ``jax.monitoring`` listeners
that add up, per step: tracing (jaxpr), lowering (to MLIR) and backend compilation, which with the
persistent cache on is either an XLA compile or a cache load; the number of backend compiles, and the
persistent cache's hits and misses (a miss = a compile whose executable was written to the cache).
``others_cpu_share``: the share of the machine's CPU that other processes used meanwhile (/proc/stat);
read a run above ~10% as contended. Prints one line per step and a total; ``--out`` appends one JSON line
per step.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time

from jax import monitoring

from visprior_jax.study import runner

EVENTS = {"/jax/core/compile/jaxpr_trace_duration": "trace_s",
          "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_s",
          "/jax/core/compile/backend_compile_duration": "backend_s"}


def _cpu():
  """(machine busy CPU-seconds, this process's CPU-seconds); Linux only."""
  with open("/proc/stat") as f:
    ticks = [int(x) for x in f.readline().split()[1:]]
  t = os.times()
  return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK"), t.user + t.system


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--config", required=True)
  p.add_argument("--workdir", required=True)
  p.add_argument("--cache", default="auto")
  p.add_argument("--min_compile_secs", type=float, default=None, help="default: the runner's")
  p.add_argument("--only", default=None)
  p.add_argument("--out", default=None)
  a = p.parse_args()
  if a.min_compile_secs is not None:
    runner.CACHE_MIN_COMPILE_SECS = a.min_compile_secs
  cur = collections.Counter()
  compiles = []

  def on_duration(event, secs, **kw):
    if event in EVENTS:
      cur[EVENTS[event]] += secs
      if event.endswith("backend_compile_duration"):
        cur["compiles"] += 1
        compiles.append((kw.get("fun_name", "?"), secs))

  def on_event(event, **kw):
    if event.endswith("/cache_hits"):
      cur["hits"] += 1
    elif event.endswith("/cache_misses"):
      cur["misses"] += 1

  monitoring.register_event_duration_secs_listener(on_duration)
  monitoring.register_event_listener(on_event)
  rows, mark = [], {}

  def log(msg):
    print(msg, flush=True)
    name = msg.split("] ", 1)[-1].split(": ", 1)[0]
    if ": running (" in msg:
      cur.clear()
      compiles.clear()
      mark.update(t=time.time(), cpu=_cpu())
    elif ": done in " in msg and mark:
      wall = time.time() - mark["t"]
      (busy0, own0), (busy1, own1) = mark["cpu"], _cpu()
      others = max(0.0, (busy1 - busy0) - (own1 - own0)) / (wall * os.cpu_count())
      compile_s = cur["trace_s"] + cur["lower_s"] + cur["backend_s"]
      row = dict(step=name, wall_s=round(wall, 2), compile_s=round(compile_s, 2),
                 **{k: round(cur[k], 2) for k in ("trace_s", "lower_s", "backend_s")},
                 compiles=cur["compiles"], hits=cur["hits"], misses=cur["misses"],
                 slowest=[(n, round(s, 2)) for n, s in sorted(compiles, key=lambda c: -c[1])[:3]],
                 others_cpu_share=round(others, 3), cache=a.cache,
                 min_compile_secs=getattr(runner, "CACHE_MIN_COMPILE_SECS", None))   # None: an older runner
      rows.append(row)
      print(f"    {name}: wall {wall:.1f}s, compile {compile_s:.1f}s ({100 * compile_s / wall:.0f}%: trace "
            f"{cur['trace_s']:.1f} lower {cur['lower_s']:.1f} backend {cur['backend_s']:.1f}), {cur['compiles']} "
            f"compiles, cache {cur['hits']} hits / {cur['misses']} misses, others' CPU {100 * others:.0f}%", flush=True)
      if a.out:
        with open(a.out, "a") as f:
          f.write(json.dumps(row) + "\n")

  study = runner.load_config_file(a.config)
  runner.run_study(study, a.workdir, only=a.only, log=log, cache=a.cache)
  wall, comp = sum(r["wall_s"] for r in rows), sum(r["compile_s"] for r in rows)
  print(f"total: {len(rows)} steps, wall {wall:.1f}s, compile {comp:.1f}s ({100 * comp / max(wall, 1e-9):.0f}%), "
        f"{sum(r['hits'] for r in rows)} cache hits / {sum(r['misses'] for r in rows)} misses")


if __name__ == "__main__":
  main()
