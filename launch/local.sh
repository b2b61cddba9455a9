#!/usr/bin/env bash
# One machine, CPU: the demo, any visprior command, or N local processes that act as N hosts.
#
#   launch/local.sh                          # make demo (the embedded default study)
#   launch/local.sh -- visprior pretrain --config=configs/pretrain.py:llama3_tiny --workdir=runs/tiny
#   launch/local.sh -n 2                     # 2 processes x 4 CPU devices, one local coordinator
#   launch/local.sh -n 4 -d 2 -- visprior pretrain --config=configs/pretrain.py:llama3_tiny --workdir=runs/mp4
#   launch/local.sh --dry-run -n 2           # print the commands, run nothing
#
# Options: -n/--processes N (default 1), -d/--devices-per-process D (CPU devices each, default 4),
# --port P (coordinator port, default 12355), --logdir DIR (default runs/local), --dry-run.
#
# With N > 1 every process gets VISPRIOR_COORDINATOR=127.0.0.1:PORT, VISPRIOR_NUM_PROCESSES=N and
# its VISPRIOR_PROCESS_ID, the variables visprior's distributed initialisation reads, so the same
# code path as a multi-host pod runs on one machine. Process 0's output is shown; every process
# writes LOGDIR/proc_<i>.log. When one process fails the others are stopped (SIGTERM) instead of
# waiting forever in a collective, and its last log lines are printed. Ctrl-C stops all of them.
# Commands run from the repository root; `visprior` comes from PATH or else from .venv/bin.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
procs=1
devices=4
port=12355
logdir=runs/local
dry_run=0
cmd=()

die() { echo "error: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    -n|--processes) procs="${2:?}"; shift 2 ;;
    --processes=*) procs="${1#*=}"; shift ;;
    -d|--devices-per-process) devices="${2:?}"; shift 2 ;;
    --devices-per-process=*) devices="${1#*=}"; shift ;;
    --port) port="${2:?}"; shift 2 ;;
    --port=*) port="${1#*=}"; shift ;;
    --logdir) logdir="${2:?}"; shift 2 ;;
    --logdir=*) logdir="${1#*=}"; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; cmd=("$@"); break ;;
    *) die "unknown option $1 (the command goes after --; see launch/local.sh --help)" ;;
  esac
done
case "$procs" in ''|*[!0-9]*|0) die "-n expects a positive number of processes, got '$procs'" ;; esac
case "$devices" in ''|*[!0-9]*|0) die "-d expects a positive number of devices, got '$devices'" ;; esac

# Shell-quote one word the way Python's shlex.quote does (so dry runs read the same everywhere).
quote() {
  case "$1" in
    '') printf "''" ;;
    *[!A-Za-z0-9_@%+=:,./-]*) printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\"'\"'/g")" ;;
    *) printf '%s' "$1" ;;
  esac
}
print_cmd() {
  local sep=""
  for w in "$@"; do printf '%s%s' "$sep" "$(quote "$w")"; sep=" "; done
  printf '\n'
}

cd "$repo" || die "cannot cd to $repo"
if ! command -v visprior >/dev/null 2>&1 && [ -x "$repo/.venv/bin/visprior" ]; then
  export PATH="$repo/.venv/bin:$PATH"
fi

# One process: the demo (make demo) or the given command, on CPU.
if [ "$procs" -eq 1 ]; then
  if [ ${#cmd[@]} -eq 0 ]; then run=(make demo); else run=(env "JAX_PLATFORMS=${JAX_PLATFORMS:-cpu}" "${cmd[@]}"); fi
  if [ "$dry_run" -eq 1 ]; then print_cmd "${run[@]}"; exit 0; fi
  exec "${run[@]}"
fi

# N processes with a local coordinator.
if [ ${#cmd[@]} -eq 0 ]; then
  cmd=(visprior pretrain --config=configs/pretrain.py:llama3_tiny "--workdir=runs/local_${procs}proc")
fi
xla_flags="--xla_force_host_platform_device_count=$devices"
if [ -n "${XLA_FLAGS:-}" ]; then xla_flags="$XLA_FLAGS $xla_flags"; fi
proc_cmd() {  # the full command line of process $1
  printf '%s\0' env "JAX_PLATFORMS=${JAX_PLATFORMS:-cpu}" "XLA_FLAGS=$xla_flags" \
    "VISPRIOR_COORDINATOR=127.0.0.1:$port" "VISPRIOR_NUM_PROCESSES=$procs" "VISPRIOR_PROCESS_ID=$1" "${cmd[@]}"
}

if [ "$dry_run" -eq 1 ]; then
  for ((i = 0; i < procs; i++)); do
    line=(); while IFS= read -r -d '' w; do line+=("$w"); done < <(proc_cmd "$i")
    print_cmd "${line[@]}"
  done
  exit 0
fi

mkdir -p "$logdir" || die "cannot create $logdir"
pids=()
stop_all() {  # SIGTERM to the processes this script started that are still running
  for pid in ${pids[@]+"${pids[@]}"}; do [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; done
}
trap 'echo "local.sh: interrupted; stopping all processes" >&2; stop_all; wait; exit 130' INT TERM

for ((i = 0; i < procs; i++)); do
  line=(); while IFS= read -r -d '' w; do line+=("$w"); done < <(proc_cmd "$i")
  if [ "$i" -eq 0 ]; then
    "${line[@]}" > >(tee "$logdir/proc_0.log") 2>&1 &
  else
    "${line[@]}" > "$logdir/proc_$i.log" 2>&1 &
  fi
  pids+=("$!")
done
echo "local.sh: $procs processes x $devices CPU devices, coordinator 127.0.0.1:$port; logs in $logdir/" >&2

# Wait for all; the first failure stops the rest.
status=0
remaining=$procs
while [ "$remaining" -gt 0 ]; do
  for i in "${!pids[@]}"; do
    pid="${pids[$i]}"
    if [ -z "$pid" ] || kill -0 "$pid" 2>/dev/null; then continue; fi
    wait "$pid"; code=$?
    pids[$i]=""
    remaining=$((remaining - 1))
    if [ "$code" -ne 0 ] && [ "$status" -eq 0 ]; then
      status=$code
      echo "local.sh: process $i exited with status $code; stopping the others. Last lines of its log:" >&2
      tail -n 20 "$logdir/proc_$i.log" | sed "s/^/[$i] /" >&2
      stop_all
    fi
  done
  [ "$remaining" -gt 0 ] && sleep 0.2
done
exit "$status"
