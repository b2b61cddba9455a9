"""Writes docs/scale.md (and docs/scale.json): which model fits which TPU topology, per chip.

  python scripts/scale_table.py [--jobs 2] [--only REGEX] [--out docs/scale.md]     (make scale-table)

Every row is an ahead-of-time compile of the real training step (``visprior aot``, parallel/aot.py)
on this machine with libtpu; no TPU is used. The setting is the paper's pre-training recipe
(PAPER.md 1.1: sequence 2048, global batch 1024 sequences) with bf16 compute, float32 parameters
and AdamW moments, the default XLA attention, ``scan_layers`` (compiles of 40 unrolled 13B layers
take many minutes on a 2-core machine) and the default pure-FSDP mesh unless a row says otherwise.
The MLLM row is the SFT stage (PAPER.md 3.3: global batch 512) of the 7B LLM with a SigLIP
So400m/14 encoder at 384 px (729 patches, resized to 576 image tokens as in the paper, 3.1).

Each row lists candidate (remat, per-device micro-batch) settings, most throughput first; the table
shows the first that fits (a row that needed fallbacks says how many tries it took). The micro-batch
sets ``grad_accum = global batch / (micro-batch x data-parallel size)``, so every row trains the
same global batch. The candidates are hand-picked from a back-of-the-envelope memory estimate
(parameters, gradients and AdamW state over the FSDP size, plus per sequence: the saved residual
stream, one layer's f32 attention scores, the logits), so a row shows *a* setting that fits, not
necessarily the best one: ``visprior aot --search`` (one compile per try, ~10 tries) finds the
largest micro-batch and the cheapest remat for a row; its commands are printed under the table.

FLOPs: model FLOPs are ``models.flops`` (the MFU definition); the XLA figure counts the unrolled
step (remat recomputation included) from the pre-optimisation HLO, which needs no TPU compile
(parallel/aot.py explains and checks it). Rows run in ``--jobs`` worker processes (libtpu allows
concurrent compile-only processes, see ``aot.topology_devices``).
"""

from __future__ import annotations

import argparse
import concurrent.futures as futures
import datetime
import importlib.metadata
import importlib.util
import json
import multiprocessing
import os
import platform
import re
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name, config builder, topology, slices, config overrides, candidates [(remat, micro-batch per device)]
ROWS = [
    dict(name="340M", config="pretrain:llama3_340m", topology="v5e-16", cands=[("minimal", 4), ("full", 4)]),
    dict(name="340M", config="pretrain:llama3_340m", topology="v5p-8", cands=[("minimal", 16), ("minimal", 8)]),
    dict(name="1B", config="pretrain:llama3_1b", topology="v5e-16", cands=[("full", 4), ("full", 2)]),
    dict(name="1B", config="pretrain:llama3_1b", topology="v6e-8", cands=[("full", 8), ("full", 4)]),
    dict(name="3B", config="pretrain:llama3_3b", topology="v5p-8", cands=[("full", 32), ("full", 16)]),
    dict(name="3B", config="pretrain:llama3_3b", topology="v5e-64", cands=[("full", 4), ("full", 2)]),
    dict(name="7B", config="pretrain:llama3_7b", topology="v5p-32", cands=[("full", 16), ("full", 8)]),
    dict(name="7B", config="pretrain:llama3_7b", topology="v5p-128", cands=[("dots_except_mlp", 16), ("full", 16)]),
    dict(name="7B", config="pretrain:llama3_7b", topology="v6e-64", cands=[("full", 8), ("full", 4)]),
    dict(name="7B", config="pretrain:llama3_7b", topology="v5p-64", slices=2,
         cands=[("dots_except_mlp", 16), ("full", 16)]),
    dict(name="13B", config="pretrain:llama3_13b", topology="v5p-32", cands=[("full", 16), ("full", 8)]),
    dict(name="13B", config="pretrain:llama3_13b", topology="v5p-128", mesh=dict(fsdp=-1, tensor=2),
         cands=[("full", 32), ("full", 16)]),
    dict(name="13B", config="pretrain:llama3_13b", topology="v5e-128", mesh=dict(fsdp=-1, tensor=4),
         cands=[("full", 8), ("full", 4)]),
    dict(name="MLLM 7B + SigLIP So400m/14@384", config="mllm:llama3_7b", topology="v5p-32",
         cands=[("full", 16), ("full", 8)]),
]


def load_config(spec: str):
  """``pretrain:<preset>`` (configs/pretrain.py) or ``mllm:<preset>`` (configs/sft.py + SigLIP)."""
  kind, _, preset = spec.partition(":")
  sys.path.insert(0, os.path.join(REPO, "configs"))
  module = "pretrain" if kind == "pretrain" else "sft"
  loader = importlib.util.spec_from_file_location(f"scale_{module}", os.path.join(REPO, "configs", f"{module}.py"))
  mod = importlib.util.module_from_spec(loader)
  loader.loader.exec_module(mod)
  c = mod.get_config(preset)
  c.model.dtype = "bfloat16"
  if kind == "mllm":
    import ml_collections
    from visprior_jax.models import vit
    v = vit.siglip_config("So400m/14", 384, dtype="bfloat16").to_dict()
    c.vision = ml_collections.ConfigDict({**v, "feature_layer": -2})
    c.data.update(family="siglip", resolution=384)
  return c


def run_row(row: dict) -> dict:
  """One table row (in a worker process): the first candidate that fits, with all tries."""
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  import resource
  from visprior_jax.parallel import aot
  from visprior_jax.train.setup import build_step
  cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
  config = load_config(row["config"])
  for k, v in row.get("mesh", {}).items():
    config.mesh[k] = v
  topo = aot.parse_topology(row["topology"], row.get("slices", 1))
  dp = _data_parallel(config, topo, build_step)
  tries = []
  for remat, b in row["cands"]:
    if config.train.batch_size % (b * dp):
      raise ValueError(f"{_key(row)}: micro-batch {b} x data-parallel {dp} does not divide the global batch "
                       f"{config.train.batch_size}")
    accum = config.train.batch_size // (b * dp)
    c = aot.prepare_config(config, topo, remat=remat, grad_accum=accum)
    t0 = time.perf_counter()
    result = aot.compile_step(c, topo, build_step, flops=False, name=row["name"])
    tries.append(dict(remat=remat, micro_batch=b, fits=result.fits, verdict=result.verdict,
                      seconds=time.perf_counter() - t0))
    if result.fits:
      break
  t0 = time.perf_counter()
  result.xla_flops_unrolled = aot.unrolled_flops(c, aot.topology_devices(topo), build_step)
  flops_s = time.perf_counter() - t0
  cpu1 = resource.getrusage(resource.RUSAGE_SELF)
  return dict(row=row, result=result.to_dict(), tries=tries, flops_s=flops_s, wall_s=time.perf_counter() - wall0,
              cpu_s=cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime)


def _data_parallel(config, topo, build) -> int:
  from visprior_jax.parallel import aot
  setup = build(aot.prepare_config(config, topo, grad_accum=1), devices=aot.topology_devices(topo))
  return setup.rules.data_parallel_size()


def _command(row, remat, accum) -> str:
  """The ``visprior aot`` command line for this row's chosen setting (runnable as printed)."""
  kind, _, preset = row["config"].partition(":")
  cfg = f"configs/pretrain.py:{preset}" if kind == "pretrain" else f"configs/sft.py:{preset}"
  extra = "".join(f" --config.mesh.{k}={v}" for k, v in row.get("mesh", {}).items())
  if kind == "mllm":   # the SigLIP tower as overrides of configs/sft.py's vision section
    base, ours = _plain_sft(preset), load_config(row["config"])
    extra += "".join(f" --config.vision.{k}={v}" for k, v in ours.vision.items() if base.vision.get(k) != v)
    extra += "".join(f" --config.data.{k}={ours.data[k]}" for k in ("family", "resolution"))
  slices = f" --num_slices={row['slices']}" if row.get("slices", 1) > 1 else ""
  return (f"visprior aot --config={cfg} --topology={row['topology']}{slices}{extra} --config.model.dtype=bfloat16 "
          f"--config.model.remat={remat} --config.train.grad_accum={accum}")


def _plain_sft(preset):
  loader = importlib.util.spec_from_file_location("scale_sft_plain", os.path.join(REPO, "configs", "sft.py"))
  mod = importlib.util.module_from_spec(loader)
  loader.loader.exec_module(mod)
  return mod.get_config(preset)


def _gib(b) -> str:
  return f"{b / 2 ** 30:.1f}"


def environment(argv: list[str], wall_s: float) -> dict:
  """What produced the table: date, command, versions, machine, time."""
  try:
    libtpu_v = importlib.metadata.version("libtpu")
  except importlib.metadata.PackageNotFoundError:
    libtpu_v = "?"
  return dict(date=datetime.date.today().isoformat(), argv=argv, wall_s=wall_s, jax=importlib.metadata.version("jax"),
              libtpu=libtpu_v, python=platform.python_version(), cpus=os.cpu_count(), loadavg=os.getloadavg()[1])


def render(meta: dict, records: list[dict]) -> str:
  from visprior_jax.parallel import aot
  cpu_s = sum(rec.get("cpu_s", 0.0) for rec in records)
  lines = [
      "# What fits where: AOT-compiled training steps on TPU topologies",
      "",
      f"Generated {meta['date']} by `make scale-table` (`python scripts/scale_table.py --jobs 2`; this file: "
      f"`{' '.join(['python', 'scripts/scale_table.py', *meta['argv']])}`) with jax {meta['jax']}, libtpu "
      f"{meta['libtpu']}, Python {meta['python']}, on a {meta['cpus']}-core CPU machine; no TPU was used. Wall time "
      f"{meta['wall_s'] / 60:.1f} min (load average {meta['loadavg']:.1f}: the machine was shared with other work); "
      f"CPU time summed over the rows {cpu_s / 60:.1f} min, so about {cpu_s / 60 / 2:.0f} min on 2 idle cores. "
      "Numbers behind the table: [scale.json](scale.json).",
      "",
      "Every row compiles the real train step (`visprior aot`, [parallel/aot.py](../visprior_jax/parallel/aot.py)) "
      "for the topology: paper recipe (sequence 2048, global batch 1024; the MLLM row is the SFT stage, batch 512), "
      "bf16 compute with float32 parameters, gradients and AdamW moments, XLA attention, scanned layers. "
      "**Memory** is per chip (arguments + outputs - donated aliases + temporaries + code), against the HBM the "
      "TPU compiler allows (v4 30.75, v5e 15.75, v5p 95.74, v6e 31.25 GiB); a row **fits** when it compiles and "
      f"stays under {100 * (1 - aot.HEADROOM):.0f}% of that. **Micro-batch** is sequences per chip per forward "
      "pass; `accum` gradient-accumulation steps make up the global batch. **Model TFLOP** is per chip per step "
      "(the MFU definition, models/flops.py; the MLLM's counts its LLM, as its MFU does); **XLA / model** is "
      "XLA's count of the unrolled step (remat recomputation, optimizer, the full attention map and the MLLM's "
      "frozen encoder included) over it. **Step @peak** is the model FLOPs at "
      "100% of the chip's bf16 peak: a lower bound on the step time. **compile s** is the wall time of the "
      "row's final compile; **row CPU s** the CPU time of everything the row did (all tries, the FLOP count).",
      "",
      "| model | params | topology | chips | mesh | remat | micro-batch x accum | memory/chip GiB | % HBM | fits "
      "| model TFLOP | XLA / model | step @peak s | compile s | row CPU s |",
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  notes = []
  for rec in records:
    r, row = rec["result"], rec["row"]
    mesh = " x ".join(f"{k} {v}" for k, v in r["mesh"].items() if v > 1)
    topo = f"{r['num_slices']} x {r['topology']}" if r["num_slices"] > 1 else r["topology"]
    mem = r["memory"].get("total") or r.get("oom_required_bytes") or 0
    pct = f"{100 * mem / r['usable_hbm_bytes']:.0f}%" if mem else "?"
    ratio = r["xla_flops_unrolled"] / r["model_flops"] if r["xla_flops_unrolled"] == r["xla_flops_unrolled"] else None
    tries = len(rec["tries"])
    fits = ("yes" if r["fits"] else "**no**") + (f" ({tries} tries)" if tries > 1 else "")
    lines.append(
        f"| {row['name']} | {r['params'] / 1e9:.2f}B | {topo} | {r['devices']} | {mesh} | {r['remat']} "
        f"| {r['per_device_batch']:g} x {r['grad_accum']} | {_gib(mem)} | {pct} | {fits} "
        f"| {r['model_flops'] / 1e12:.1f} | {f'{ratio:.2f}' if ratio else '?'} "
        f"| {r['model_flops'] / r['peak_flops']:.2f} | {r['compile_s']:.0f} | {rec.get('cpu_s', float('nan')):.0f} |")
    for t in rec["tries"][:-1]:
      notes.append(f"- {row['name']} on {topo}: remat {t['remat']}, micro-batch {t['micro_batch']}: {t['verdict']}")
  lines += ["", "Rows that needed a fallback (the earlier candidates' verdicts):", ""] + (notes or ["- none"])
  lines += ["", "Reproduce one row (prints the full report: memory breakdown, collectives, FLOPs):", "", "```"]
  lines += [_command(rec["row"], rec["result"]["remat"], rec["result"]["grad_accum"]) for rec in records]
  lines += ["```", "",
            "The settings above fit; they are not necessarily the fastest. To find the largest micro-batch and "
            "the cheapest remat that fit for a row, add `--search` to its command. "
            "`--num_slices=2` compiles for two slices joined over DCN (data parallelism across slices, "
            "`dcn_mesh.data=-1` unless the config sets a DCN axis).", ""]
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--jobs", type=int, default=2, help="rows compiled at once (processes)")
  parser.add_argument("--only", default=None, help="only rows whose 'name topology' matches this regex; the "
                      "others are kept from the existing JSON")
  parser.add_argument("--out", default=os.path.join(REPO, "docs", "scale.md"))
  parser.add_argument("--render", action="store_true", help="only rewrite the Markdown from the existing JSON")
  args = parser.parse_args(argv)
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  sys.path.insert(0, REPO)
  json_path = os.path.splitext(args.out)[0] + ".json"
  previous = {}
  if (args.only or args.render) and os.path.exists(json_path):
    with open(json_path) as f:
      previous = json.load(f)
  if args.render:
    with open(args.out, "w") as f:
      f.write(render(previous["meta"], previous["rows"]))
    print(f"wrote {args.out} from {json_path}")
    return
  keep = {_key(rec["row"]): rec for rec in previous.get("rows", [])}
  todo = [r for r in ROWS if not args.only or re.search(args.only, _key(r))]
  t0 = time.perf_counter()
  done = {}
  ctx = multiprocessing.get_context("spawn")
  with futures.ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=ctx) as pool:
    jobs = {pool.submit(run_row, r): r for r in todo}
    for i, fut in enumerate(futures.as_completed(jobs), 1):
      rec = fut.result()
      done[_key(rec["row"])] = rec
      r = rec["result"]
      print(f"[{i}/{len(todo)}] {_key(rec['row'])}: {r['verdict']} (compile {r['compile_s']:.0f} s, "
            f"{len(rec['tries'])} tries, FLOPs lowering {rec['flops_s']:.0f} s)", flush=True)
  records = [done.get(_key(r)) or keep[_key(r)] for r in ROWS if _key(r) in done or _key(r) in keep]
  meta = environment(sys.argv[1:] if argv is None else list(argv), time.perf_counter() - t0)
  with open(args.out, "w") as f:
    f.write(render(meta, records))
  with open(json_path, "w") as f:
    json.dump(dict(meta=meta, rows=records), f, indent=1)
  print(f"wrote {args.out} and {json_path} in {meta['wall_s'] / 60:.1f} min")
  if not all(rec["result"]["fits"] for rec in records):
    print("note: some rows do not fit (see the table)")


def _key(row) -> str:
  slices = f"{row.get('slices', 1)}x" if row.get("slices", 1) > 1 else ""
  mesh = "".join(f" {k}={v}" for k, v in row.get("mesh", {}).items())
  return f"{row['name']} {slices}{row['topology']}{mesh}"


if __name__ == "__main__":
  main()
