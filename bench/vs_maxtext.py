"""Side by side with MaxText: the same Llama-3 train step in both codebases, timed the same way.

  python3 bench/vs_maxtext.py --setup                       # once: two Python 3.12 venvs (~4 min)
  python3 bench/vs_maxtext.py --config tiny --devices 1 --remat full --rounds 3 --out vs.jsonl
  python3 bench/vs_maxtext.py --config cpu --devices 8 --best --rounds 3 --out vs.jsonl
  python3 bench/vs_maxtext.py --compile-13b --out vs.jsonl

The orchestrator needs only the standard library (any python3); every measurement runs in a fresh
subprocess in one of two venvs made by ``--setup`` under ``.venvs/`` at the repository root (not under
bench/, so that ``pyflakes bench`` does not walk 4 GB of site-packages):

- ``.venvs/maxtext``: ``maxtext[tpu]==0.2.5`` from PyPI (ENV.md item 9);
- ``.venvs/visprior312``: this repository (``pip install -e``) plus libtpu, constrained to the exact
  versions the MaxText venv resolved (``pip freeze`` of it), so jax, jaxlib, libtpu, flax and optax
  (hence XLA) are identical on both sides; ``--setup`` checks that and fails otherwise.

Configs (the ``configs/pretrain.py`` presets; the MaxText run is built from the same preset, so dims
cannot drift): ``tiny`` = bench_small (d 256, 2 layers, 4/2 heads x 64, mlp 1024, vocab 1024, seq 256,
batch 4) and ``cpu`` = bench_cpu (d 1024, 4 layers, 16/8 heads x 64, mlp 4096, vocab 32000, seq 512,
batch 2). Both: float32 parameters and compute, untied embeddings, SwiGLU, GQA, scanned layers, XLA
dot-product attention, AdamW with clipping, synthetic data. ``--devices 8``: 8 fake CPU devices
(``--xla_force_host_platform_device_count=8``), mesh fsdp 4 x tensor 2 on both sides, global batch 8
(MaxText ``per_device_batch_size=1``; batch 2 or 4 do not split over fsdp 4 without MaxText's
load-then-slice path for per_device_batch_size < 1).

MaxText is run as ``model_name=llama3-8b override_model_config=True`` with the preset's sizes
(``decoder_block: llama2``, i.e. the Llama-3 architecture), ``attention=dot_product scan_layers=True
dtype=float32 weight_dtype=float32 dataset_type=synthetic hardware=cpu``. FLOPs per token agree: the
worker records MaxText's own count (``calculate_tflops_training_per_device``) beside ours
(``models/flops.py``) in every row.

Remat, ours -> MaxText ``remat_policy`` (the tensors each layer saves; everything else is recomputed):

  ours             MaxText                            saved per layer
  full             full (MaxText's default)           nothing (the layer input only)
  minimal          minimal_with_context               q, k, v, attention context, out-proj, MLP gate/up/down
  dots             minimal                            q, k, v, out-proj, MLP gate/up/down (no context)
  dots_except_mlp  save_dot_with_context_except_mlp   q, k, v, attention context, out-proj
  none             (no equivalent: MaxText always wraps the scanned layer in jax.checkpoint)

``--best`` runs every candidate policy of each side once (ours: none minimal dots dots_except_mlp full;
MaxText: the four above plus save_dot_except_mlp, save_dot_except_mlpwi, save_qkv_proj, save_out_proj),
keeps the fastest that ran (a run that dies out of memory "does not fit"), then runs the A/B rounds
with each side at its own best policy (``--candidates-ours`` / ``--candidates-maxtext`` narrow the lists).
``--profile DIR`` traces 3 steps of every run (Perfetto) and writes its compiled HLO beside the trace.

Measurement, identical for both sides: one synthetic batch put on the devices once and reused (data
loading is not measured), the step compiled ahead of time, then ``train_step.time_steps``: W warm-up
steps, N steps each synchronised with ``block_until_ready`` (the median is the step time), then N
pipelined steps with one sync. Ours is ``bench/train_step.py`` itself; MaxText's step is built by its
own ``train_utils.setup_train_loop`` + ``jit_train_and_eval_step`` (what ``train.train_loop`` runs)
and timed by the same function. A round runs MaxText then ours, the next round the other order.
``--maxtext-cli`` adds MaxText's stock loop (``train.main``, its per-step "seconds" log lines) to every
round as a check on that harness. MaxText's persistent compilation cache (``jax_cache_dir`` in its
base.yml, ~/jax_cache) is turned off so that its compile times are real.

Noise (a shared 2-core machine): a run whose timed steps saw other processes take more than
``--quiet`` (0.1) of the CPU is repeated up to ``--retries`` times and the least contended attempt
kept; a round counts only when its two runs' contention differs by at most ``--match`` (0.1), so a
quiet MaxText run is never divided by a contended one of ours or the reverse. ``--summarize FILE``
recomputes every comparison's summary from the run lines of an ``--out`` file.

Reported per comparison: median tokens/s of each side over the matched rounds, the ratio (ours /
MaxText) of the medians and the median of the per-round ratios, MFU of both (DESIGN.md: ``models/flops.py``
causal FLOPs/token x tokens/s / peak, the peak being the median of every in-process float32 2048^2
matmul peak of the comparison's runs, so both sides share one peak and the MFU ratio is the speed
ratio), and each run's ``others_cpu_share`` (other processes' CPU while timing; > 0.1 = contended).
Each run is one JSON line in ``--out`` (``kind: run``), each comparison one more (``kind: summary``),
and a Markdown table row is printed.

``--compile-13b``: MaxText's ``train_compile`` of llama2-13b for v5p-64 (per_device_batch_size 1,
max_target_length 2048, its defaults otherwise: bf16 compute, float32 weights, remat full, fsdp over
all 32 chips), then ``visprior aot`` of llama3_13b (the same Llama-2-13B body) for v5p-64 at the same
settings (global batch 32, grad_accum 1, bf16, remat full), both in the 3.12 venvs. Reported: each
process's wall time and its jit+lower+compile time (MaxText: between its "Jitting and compiling"
and "compilation complete" lines; ours: the aot report's lower_s + compile_s).
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
VENVS = os.path.join(REPO, ".venvs")
MAXTEXT_VERSION = "0.2.5"
SHARED = ("jax", "jaxlib", "libtpu", "flax", "optax", "numpy", "ml_dtypes", "orbax-checkpoint")

CONFIGS = {  # name -> (configs/pretrain.py preset, {devices: global batch}, steps, warm-up)
    "tiny": ("bench_small", {1: 4, 8: 8}, 20, 3),
    "cpu": ("bench_cpu", {1: 2, 8: 8}, 4, 1),
}
MESH_8 = dict(fsdp=4, tensor=2)
REMAT_TO_MAXTEXT = {"full": "full", "minimal": "minimal_with_context", "dots": "minimal",
                    "dots_except_mlp": "save_dot_with_context_except_mlp", "none": None}
CANDIDATES = {
    "ours": ("none", "minimal", "dots", "dots_except_mlp", "full"),
    "maxtext": ("full", "minimal_with_context", "minimal", "save_dot_with_context_except_mlp",
                "save_dot_except_mlp", "save_dot_except_mlpwi", "save_qkv_proj", "save_out_proj"),
}
OOM = re.compile(r"RESOURCE_EXHAUSTED|out of memory|MemoryError|std::bad_alloc", re.I)


def _python(venv: str) -> str:
  return os.path.join(venv, "bin", "python")


def _need_venvs(args) -> None:
  for name in ("maxtext", "visprior312"):
    if not os.path.exists(_python(os.path.join(args.venvs, name))):
      sys.exit(f"error: {os.path.join(args.venvs, name)} is missing: run bench/vs_maxtext.py --setup first")


# ------------------------------------------------------------------------------------------ setup


def _find_python312() -> str:
  found = [shutil.which("python3.12"), "/usr/bin/python3.12", "/usr/local/bin/python3.12",
           *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))]
  for p in found:
    if p and os.path.exists(p):
      try:
        out = subprocess.run([p, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
                             capture_output=True, text=True, timeout=60).stdout.strip()
      except (OSError, subprocess.TimeoutExpired):
        continue
      if out == "True":
        return p
  sys.exit("error: no Python 3.12 interpreter found (MaxText needs >= 3.12); pass --python312 PATH")


def _sh(cmd: list[str], **kw) -> None:
  """Runs cmd, dropping pip's noise about the local index mirrors; exits on failure."""
  print("+", " ".join(cmd), flush=True)
  p = subprocess.run(cmd, capture_output=True, text=True, **kw)
  noise = re.compile(r"^WARNING: Location '.*' is ignored")
  for line in (p.stdout + p.stderr).splitlines():
    if not noise.match(line):
      print("  " + line)
  if p.returncode:
    sys.exit(f"error: {cmd[0]} exited with {p.returncode}")


def _versions(python: str) -> dict:
  code = ("import importlib.metadata as m, json; v = {}\n"
          f"for p in {SHARED!r}:\n"
          "  try: v[p] = m.version(p)\n"
          "  except m.PackageNotFoundError: v[p] = None\n"
          "print(json.dumps(v))")
  return json.loads(subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout)


def setup(args) -> None:
  """Creates the two venvs (skipping one that already imports), then checks the shared versions."""
  py = args.python312 or _find_python312()
  os.makedirs(args.venvs, exist_ok=True)
  mt, ours = os.path.join(args.venvs, "maxtext"), os.path.join(args.venvs, "visprior312")
  freeze = os.path.join(args.venvs, "maxtext.freeze.txt")
  t0 = time.time()
  if args.force or subprocess.run([_python(mt), "-c", "import maxtext"], capture_output=True).returncode:
    shutil.rmtree(mt, ignore_errors=True)
    _sh([py, "-m", "venv", mt])
    _sh([_python(mt), "-m", "pip", "install", "-q", f"maxtext[tpu]=={MAXTEXT_VERSION}"])
  t1 = time.time()
  with open(freeze, "w") as f:
    f.write(subprocess.run([_python(mt), "-m", "pip", "freeze"], capture_output=True, text=True,
                           check=True).stdout)
  if args.force or subprocess.run([_python(ours), "-c", "import visprior_jax, libtpu"],
                                  capture_output=True).returncode:
    shutil.rmtree(ours, ignore_errors=True)
    _sh([py, "-m", "venv", ours])
    # -c: every package both need at the MaxText venv's exact version; libtpu for --compile-13b.
    _sh([_python(ours), "-m", "pip", "install", "-q", "-c", freeze, "-e", REPO, "libtpu"])
  t2 = time.time()
  v_mt, v_ours = _versions(_python(mt)), _versions(_python(ours))
  print(f"maxtext venv: {t1 - t0:.0f} s, visprior312 venv: {t2 - t1:.0f} s")
  for p in SHARED:
    print(f"  {p:<18} maxtext {v_mt[p]!s:<12} visprior312 {v_ours[p]}")
  if v_mt != v_ours:
    sys.exit("error: the two venvs differ in the packages above; rerun with --setup --force")
  print("ok: identical jax/jaxlib/libtpu/flax/optax in both venvs")


# ------------------------------------------------------------------------------------------ runs


def _env(devices: int) -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu", HF_HUB_OFFLINE="1", DECOUPLE_GCLOUD="TRUE",
             TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
  flags = [f for f in env.get("XLA_FLAGS", "").split() if "force_host_platform_device_count" not in f]
  if devices > 1:
    flags.append(f"--xla_force_host_platform_device_count={devices}")
  env["XLA_FLAGS"] = " ".join(flags)
  return env


def _run(cmd: list[str], env: dict, timeout: float, log: str) -> tuple[int | str, float]:
  """(return code or 'timeout', wall seconds); stdout and stderr go to ``log``."""
  t0 = time.time()
  with open(log, "w") as fh:
    fh.write("$ " + " ".join(cmd) + "\n")
    fh.flush()
    try:
      rc = subprocess.run(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, cwd=REPO).returncode
    except subprocess.TimeoutExpired:
      rc = "timeout"
  return rc, time.time() - t0


def measure(side: str, config: str, devices: int, policy: str, args, tag: str) -> dict:
  """``run_side``, repeated up to ``--retries`` times while other processes took more than ``--quiet``
  of the CPU during its timed steps; the least contended attempt is kept (``attempts`` counts them)."""
  best_row = None
  for attempt in range(1 + args.retries):
    row = run_side(side, config, devices, policy, args, tag if not attempt else f"{tag}_retry{attempt}")
    if not row["ok"]:
      return row
    if best_row is None or row["others_cpu_share"]["timing"] < best_row["others_cpu_share"]["timing"]:
      best_row = row
    if row["others_cpu_share"]["timing"] <= args.quiet:
      break
    if attempt < args.retries:
      print(f"  (other processes took {row['others_cpu_share']['timing']:.0%} of the CPU: again)", flush=True)
  return dict(best_row, attempts=attempt + 1)


def run_side(side: str, config: str, devices: int, policy: str, args, tag: str) -> dict:
  """One measurement in a fresh subprocess; returns its JSON row (``ok`` False with a reason on failure)."""
  preset, batches, steps, warmup = CONFIGS[config]
  steps, warmup = args.steps or steps, args.warmup if args.warmup is not None else warmup
  batch = batches[devices]
  fd, tmp = tempfile.mkstemp(suffix=".json", prefix=f"vs_{side}_")
  os.close(fd)
  if side == "ours":
    cmd = [_python(os.path.join(args.venvs, "visprior312")), os.path.join(BENCH, "train_step.py"),
           f"--config={os.path.join(REPO, 'configs', 'pretrain.py')}:{preset}", f"--config.model.remat={policy}",
           f"--config.train.batch_size={batch}", f"--steps={steps}", f"--warmup={warmup}", "--repeats=1",
           "--noxla_unrolled", f"--out={tmp}"]
    if devices > 1:
      cmd += [f"--config.mesh.{k}={v}" for k, v in MESH_8.items()]
    if args.profile:
      pdir = os.path.join(args.profile, f"ours_{config}_{devices}dev_{policy}")
      os.makedirs(pdir, exist_ok=True)
      cmd += [f"--profile={pdir}", f"--hlo={os.path.join(pdir, 'step.hlo.txt')}"]
  else:
    cmd = [_python(os.path.join(args.venvs, "maxtext")), os.path.join(BENCH, "maxtext_worker.py"),
           f"--config={config}", f"--devices={devices}", f"--maxtext-remat={policy}", f"--steps={steps}",
           f"--warmup={warmup}", f"--worker-out={tmp}"] + (["--maxtext-cli"] if side == "maxtext_cli" else [])
    if args.profile and side == "maxtext":
      cmd.append(f"--profile={os.path.join(args.profile, f'maxtext_{config}_{devices}dev_{policy}')}")
  log = os.path.join(args.logdir, f"{tag}_{side}_{config}_{devices}dev_{policy}.log")
  load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
  rc, wall = _run(cmd, _env(devices), args.timeout, log)
  base = dict(kind="run", side=side, config=config, devices=devices, remat=policy, tag=tag, wall_s=wall, log=log,
              loadavg_1m_before=load)
  try:
    with open(tmp) as f:
      row = json.loads(f.read().strip().splitlines()[-1])
  except (OSError, ValueError, IndexError):
    row = None
  finally:
    os.unlink(tmp)
  if rc != 0 or row is None:
    with open(log, errors="replace") as f:
      text = f.read()
    reason = ("timeout" if rc == "timeout" else "out of memory" if OOM.search(text) or rc in (-9, 137)
              else f"exit {rc}")
    tail = " | ".join(text.strip().splitlines()[-3:])[-400:]
    print(f"  {side:<8} {policy:<34} FAILED ({reason}) after {wall:.0f} s; log {log}: {tail}", flush=True)
    return dict(base, ok=False, reason=reason)
  row = dict(row, **base, ok=True)
  if side == "maxtext_cli":   # MaxText's own per-step log: step 0 compiles, 1..warmup warm up
    with open(log, errors="replace") as f:
      logged = [(int(i), float(t)) for i, t in re.findall(r"completed step: (\d+), seconds: ([\d.]+)", f.read())]
    times = [t for i, t in logged if i > warmup]
    if not times:
      print(f"  {side:<8} {policy:<34} FAILED (no step times in {log})", flush=True)
      return dict(base, ok=False, reason="no step times logged")
    row.update(step_times_s=times, median_step_s=statistics.median(times), first_step_s=logged[0][1],
               compile_s=float("nan"), tokens_per_s=row["tokens_per_step"] / statistics.median(times))
  print(f"  {side:<8} {policy:<34} {row['tokens_per_s']:>9,.0f} tok/s  step {1e3 * row['median_step_s']:8.1f} ms"
        f"  (compile {row['compile_s']:.1f} s, others' CPU {row['others_cpu_share']['timing']:.2f}, "
        f"wall {wall:.0f} s)", flush=True)
  return row


def _median(xs):
  xs = [x for x in xs if x == x]
  return statistics.median(xs) if xs else float("nan")


def ab(config: str, devices: int, ours: str, maxtext: str, args, label: str) -> dict:
  """args.rounds alternating rounds (MaxText first in rounds 1, 3, ...); the summary row."""
  rows, cid = [], f"{config}-{devices}dev-{ours}-{maxtext}-{datetime.datetime.now():%Y%m%dT%H%M%S}"
  for r in range(args.rounds):
    order = ("maxtext", "ours") if r % 2 == 0 else ("ours", "maxtext")
    if args.maxtext_cli:
      order += ("maxtext_cli",)
    print(f"round {r + 1}/{args.rounds} ({' then '.join(order)})", flush=True)
    for side in order:
      rows.append(dict(measure(side, config, devices, ours if side == "ours" else maxtext, args, f"r{r}"),
                       round=r, comparison=cid, label=label))
  _append(args.out, rows)
  summary = summarize(rows, args.match)
  _append(args.out, [summary])
  return summary


def summarize(rows: list[dict], match: float) -> dict:
  """The comparison's summary row (and its Markdown line, printed). Only matched rounds count: both
  runs ran and their ``others_cpu_share`` during timing differ by at most ``match``; when no round
  is matched, all runs are used and the summary says so (``matched_rounds`` 0)."""
  ok = [r for r in rows if r["ok"]]
  first = rows[0]
  config, devices, label = first["config"], first["devices"], first.get("label", "")
  policy = {s: next((r["remat"] for r in rows if r["side"] == s), "?") for s in ("ours", "maxtext")}

  def share(r):
    return r["others_cpu_share"]["timing"]
  rounds = {}
  for r in ok:
    rounds.setdefault(r["round"], {})[r["side"]] = r
  matched = [p for _, p in sorted(rounds.items()) if "ours" in p and "maxtext" in p
             and abs(share(p["ours"]) - share(p["maxtext"])) <= match]
  use = [r for p in matched for r in p.values()] if matched else ok
  per_round = [p["ours"]["tokens_per_s"] / p["maxtext"]["tokens_per_s"] for p in matched]
  tps = {s: [r["tokens_per_s"] for r in use if r["side"] == s] for s in ("ours", "maxtext")}
  peaks = [p for r in use for p in (r.get("peak_flops_before"), r.get("peak_flops_after"),
                                    r.get("peak_flops_all_devices")) if p and p == p]
  peak = _median(peaks)
  fpt = _median([r["model_flops_per_token"] for r in use if r["side"] == "ours"])
  med = {s: _median(v) for s, v in tps.items()}
  mfu = {s: med[s] * fpt / peak for s in med}
  others = {s: max([share(r) for r in use if r["side"] == s] or [float("nan")]) for s in tps}
  mt_fpt = _median([r.get("maxtext_flops_per_token", float("nan")) for r in use if r["side"] == "maxtext"])
  stock = _median([r["tokens_per_s"] for r in use if r["side"] == "maxtext_cli"])
  summary = dict(
      kind="summary", comparison=first.get("comparison"), date=datetime.date.today().isoformat(), config=config,
      preset=CONFIGS[config][0], devices=devices, mesh=MESH_8 if devices > 1 else {}, label=label,
      remat_ours=policy["ours"], remat_maxtext=policy["maxtext"], rounds=len(rounds), matched_rounds=len(matched),
      match=match, runs_ok=len(ok), runs=len(rows), tokens_per_step=ok[0]["tokens_per_step"] if ok else None,
      tokens_per_s=med, tokens_per_s_used=tps, ratio_of_medians=med["ours"] / med["maxtext"],
      ratio_median_per_round=_median(per_round), ratios_per_round=per_round, mfu=mfu, peak_flops=peak,
      model_flops_per_token=fpt, maxtext_flops_per_token_own_count=mt_fpt, others_cpu_share_max=others,
      maxtext_stock_loop_tokens_per_s=stock, loadavg=os.getloadavg()[0] if hasattr(os, "getloadavg") else None)
  mesh = "8 fake: fsdp 4 x tensor 2" if devices > 1 else "1"
  line = (f"| {config} ({CONFIGS[config][0]}) | {mesh} | {label}: ours {policy['ours']} / MaxText "
          f"{policy['maxtext']} | {summary['tokens_per_step']} | {med['maxtext']:,.0f} | {med['ours']:,.0f} | "
          f"**{summary['ratio_of_medians']:.2f}x** ({summary['ratio_median_per_round']:.2f}x) | "
          f"{100 * mfu['maxtext']:.1f}% | {100 * mfu['ours']:.1f}% | "
          f"{others['maxtext']:.2f} / {others['ours']:.2f} | {len(matched)} of {len(rounds)} |")
  print("\n| config | devices | remat | tokens/step | MaxText tok/s | ours tok/s | ours/MaxText (per-round median) "
        "| MFU MaxText | MFU ours | others' CPU max (MaxText / ours) | matched rounds |")
  print("|---|---|---|---|---|---|---|---|---|---|---|")
  print(line, flush=True)
  if not matched:
    print(f"WARNING: no round had both runs under matched contention (within {match:.2f}): the ratio is unreliable")
  print(f"FLOPs/token: ours {fpt / 1e6:.2f} M (models/flops.py), MaxText's own count {mt_fpt / 1e6:.2f} M; "
        f"peak {peak / 1e9:.0f} GFLOP/s (median of {len(peaks)} in-process measurements)"
        + (f"; MaxText's own train loop (its per-step log): {stock:,.0f} tok/s" if stock == stock else "") + "\n",
        flush=True)
  summary["markdown"] = line
  return summary


def resummarize(path: str, match: float) -> None:
  """--summarize FILE: the summary of every comparison whose runs are in FILE (nothing is written)."""
  groups = {}
  with open(path) as f:
    for line in f:
      r = json.loads(line)
      if r.get("kind") == "run" and r.get("comparison"):
        groups.setdefault(r["comparison"], []).append(r)
  for cid, rows in groups.items():
    print(f"{cid}:")
    summarize(rows, match)


def best(config: str, devices: int, args) -> dict:
  """Each side's fastest candidate policy (one run each), then the A/B rounds at those."""
  found, search = {}, []
  candidates = {s: (getattr(args, f"candidates_{s}") or ",".join(CANDIDATES[s])).split(",") for s in CANDIDATES}
  for side in ("maxtext", "ours"):
    print(f"{side}: trying remat policies {', '.join(candidates[side])}", flush=True)
    rows = [measure(side, config, devices, p, args, "best") for p in candidates[side]]
    search += rows
    ok = [r for r in rows if r["ok"]]
    if not ok:
      sys.exit(f"error: no remat policy ran for {side}; see the logs in {args.logdir}")
    found[side] = max(ok, key=lambda r: r["tokens_per_s"])["remat"]
    print(f"{side}: best {found[side]}", flush=True)
  _append(args.out, search)
  return ab(config, devices, found["ours"], found["maxtext"], args, "best")


def _append(path, rows) -> None:
  if path:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as f:
      for r in rows:
        f.write(json.dumps(r) + "\n")


# ------------------------------------------------------------------------------------------ compile


def _timed_lines(cmd, env, timeout, log, marks):
  """Runs cmd streaming its output to log; returns (rc, wall s, {mark: seconds since start when first seen})."""
  seen, t0 = {}, time.time()
  with open(log, "w") as fh:
    fh.write("$ " + " ".join(cmd) + "\n")
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    try:
      for line in p.stdout:
        fh.write(line)
        for m in marks:
          if m in line and m not in seen:
            seen[m] = time.time() - t0
        if time.time() - t0 > timeout:
          p.kill()
          break
    finally:
      rc = p.wait()
  return rc, time.time() - t0, seen


def compile_13b(args) -> dict:
  mt_py, our_py = _python(os.path.join(args.venvs, "maxtext")), _python(os.path.join(args.venvs, "visprior312"))
  base_yml = subprocess.run([mt_py, "-c", "import maxtext, os; print(os.path.join(os.path.dirname(maxtext.__file__), "
                             "'configs', 'base.yml'))"], capture_output=True, text=True, check=True).stdout.strip()
  env = _env(1)
  rows = []
  with tempfile.TemporaryDirectory() as out_dir:
    start, done = "Jitting and compiling train step", "Jitting and compilation complete"
    for attention in args.maxtext_attention.split(","):
      cmd = [mt_py, "-m", "maxtext.trainers.pre_train.train_compile", base_yml, "run_name=vs_visprior_aot",
             f"base_output_directory={out_dir}", "compile_topology=v5p-64", "compile_topology_num_slices=1",
             "model_name=llama2-13b", "per_device_batch_size=1", "max_target_length=2048",
             "jax_cache_dir="]   # base.yml caches compiles in ~/jax_cache: a rerun would time a cache read
      if attention != "default":
        cmd.append(f"attention={attention}")
      log = os.path.join(args.logdir, f"compile13b_maxtext_{attention}.log")
      print(f"MaxText train_compile llama2-13b v5p-64 (attention {attention}) ...", flush=True)
      rc, wall, seen = _timed_lines(cmd, env, args.timeout, log, (start, done))
      rows.append(dict(kind="compile", side="maxtext", attention=attention, ok=rc == 0, wall_s=wall,
                       jit_lower_compile_s=seen[done] - seen[start] if start in seen and done in seen else None,
                       log=log, cmd=" ".join(cmd)))
      print(f"  rc {rc}, process {wall:.1f} s, jit+lower+compile {rows[-1]['jit_lower_compile_s']} s", flush=True)
    report = os.path.join(out_dir, "aot.json")
    cmd = [our_py, "-m", "visprior_jax.cli", "aot", f"--config={os.path.join(REPO, 'configs', 'pretrain.py')}:llama3_13b",
           "--topology=v5p-64", "--config.model.dtype=bfloat16", "--config.model.remat=full",
           "--config.train.batch_size=32", "--config.train.grad_accum=1", "--config.train.seq_len=2048",
           f"--out={report}"]
    log = os.path.join(args.logdir, "compile13b_ours.log")
    print("visprior aot llama3_13b v5p-64 ...", flush=True)
    rc, wall, _ = _timed_lines(cmd, env, args.timeout, log, ())
    try:
      with open(report) as f:
        rep = json.load(f)
    except (OSError, ValueError):
      rep = {}
    rows.append(dict(kind="compile", side="ours", ok=bool(rep), wall_s=wall, lower_s=rep.get("lower_s"),
                     compile_s=rep.get("compile_s"), fits=rep.get("fits"), verdict=rep.get("verdict"),
                     jit_lower_compile_s=(rep["lower_s"] + rep["compile_s"]) if rep else None, log=log,
                     cmd=" ".join(cmd)))
    print(f"  rc {rc}, process {wall:.1f} s, lower {rep.get('lower_s')} s, compile {rep.get('compile_s')} s, "
          f"{rep.get('verdict')}", flush=True)
  print("\n| codebase | model | topology | process wall s | jit+lower+compile s |\n|---|---|---|---|---|")
  for r in rows:
    name = "MaxText train_compile" + (f" (attention={r['attention']})" if r["side"] == "maxtext" else "")
    print(f"| {name if r['side'] == 'maxtext' else 'visprior aot'} | "
          f"{'llama2-13b' if r['side'] == 'maxtext' else 'llama3_13b'} | v5p-64 | {r['wall_s']:.1f} | "
          f"{r['jit_lower_compile_s'] if r['jit_lower_compile_s'] is None else round(r['jit_lower_compile_s'], 1)} |")
  _append(args.out, [dict(r, date=datetime.date.today().isoformat(),
                          loadavg=os.getloadavg()[0] if hasattr(os, "getloadavg") else None) for r in rows])
  return {"rows": rows}


# ------------------------------------------------------------------------------------------ main


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--setup", action="store_true", help="create the two Python 3.12 venvs under --venvs")
  ap.add_argument("--force", action="store_true", help="with --setup: recreate the venvs")
  ap.add_argument("--python312", help="the Python 3.12 interpreter for --setup (default: found on PATH/pyenv)")
  ap.add_argument("--venvs", default=VENVS, help="where the venvs live (default: .venvs/ at the repository root)")
  ap.add_argument("--config", choices=sorted(CONFIGS), help="tiny (bench_small) or cpu (bench_cpu)")
  ap.add_argument("--devices", type=int, choices=(1, 8), default=1)
  ap.add_argument("--remat", choices=sorted(REMAT_TO_MAXTEXT), default="full",
                  help="our policy; MaxText runs the equivalent (module docstring)")
  ap.add_argument("--best", action="store_true", help="each side at its own fastest remat policy")
  ap.add_argument("--rounds", type=int, default=3)
  ap.add_argument("--steps", type=int, help="timed steps per run (default per config: tiny 20, cpu 4)")
  ap.add_argument("--warmup", type=int, help="warm-up steps per run (default per config: tiny 3, cpu 1)")
  ap.add_argument("--timeout", type=float, default=1800, help="seconds per subprocess")
  ap.add_argument("--quiet", type=float, default=0.1,
                  help="a run whose timed steps saw other processes use more than this share of the CPU is contended")
  ap.add_argument("--retries", type=int, default=1, help="times a contended run is repeated (the least "
                  "contended attempt is kept)")
  ap.add_argument("--compile-13b", action="store_true", help="AOT compile times, 13B on v5p-64, both codebases")
  ap.add_argument("--maxtext-attention", default="default,dot_product",
                  help="with --compile-13b: MaxText attention settings to compile (default = its own choice)")
  ap.add_argument("--maxtext-cli", action="store_true",
                  help="also run MaxText's stock train loop each round and read its per-step log (a cross-check)")
  ap.add_argument("--candidates-ours", help="with --best: comma-separated policies to try (default: all)")
  ap.add_argument("--candidates-maxtext", help="with --best: comma-separated MaxText policies to try (default: all)")
  ap.add_argument("--profile", help="trace 3 steps of every run after its timing (jax.profiler, Perfetto) into "
                  "a folder per run under this directory")
  ap.add_argument("--match", type=float, default=0.1, help="a round counts when its two runs' others_cpu_share "
                  "differ by at most this")
  ap.add_argument("--summarize", metavar="FILE", help="print the summaries of the comparisons recorded in FILE")
  ap.add_argument("--out", help="append JSON lines here")
  ap.add_argument("--logdir", default=os.path.join(tempfile.gettempdir(), "vs_maxtext"))
  args = ap.parse_args()
  if args.setup:
    return setup(args)
  if args.summarize:
    return resummarize(args.summarize, args.match)
  _need_venvs(args)
  os.makedirs(args.logdir, exist_ok=True)
  if args.compile_13b:
    compile_13b(args)
    return
  if not args.config:
    ap.error("--config is required (or --setup / --compile-13b)")
  if args.best:
    best(args.config, args.devices, args)
  else:
    if REMAT_TO_MAXTEXT[args.remat] is None:
      ap.error(f"--remat={args.remat} has no MaxText equivalent; use --best")
    ab(args.config, args.devices, args.remat, REMAT_TO_MAXTEXT[args.remat], args, "same remat")


if __name__ == "__main__":
  main()
