"""Multi-host start-up: ``initialize(config)`` once, before anything touches a JAX device.

``visprior pretrain|align|sft`` call it first. Which processes form the run is decided in this order:

1. **Explicit coordinator**: ``config.distributed.coordinator_address`` ("host:port", where process
   0 runs), ``num_processes`` and ``process_id``; or the environment variables
   ``VISPRIOR_COORDINATOR``, ``VISPRIOR_NUM_PROCESSES``, ``VISPRIOR_PROCESS_ID`` (config wins). These
   are passed to ``jax.distributed.initialize`` as they are.
2. **A cluster JAX knows**: on TPU VMs and GKE (``TPU_WORKER_HOSTNAMES``, ``MEGASCALE_*``,
   ``TPU_WORKER_ID``, ``CLOUD_TPU_TASK_ID``) and under SLURM (``SLURM_JOB_ID`` with
   ``SLURM_NTASKS > 1``), ``jax.distributed.initialize()`` is called bare so that JAX's own cluster
   detection picks the coordinator, process count and id (MaxText does the same).
3. Otherwise one process: nothing is initialised.

Where users get hurt is a run started on only some hosts: the processes that did start wait in
``jax.distributed.initialize`` and then die on a C++ check failure (``DEADLINE_EXCEEDED ...
RegisterTask``) that names neither the cause nor the count; a TPU pod may instead wait in backend
start-up. So:

- With an explicit coordinator, a **roll call** runs before JAX: process 0 listens on the
  coordinator's port (JAX's service takes the port over once everyone is there), every other
  process connects and says its id, and process 0 tells everyone the count as it changes. If not
  all have joined within ``initialization_timeout_s``, process 0 sends its verdict and every
  process that did start fails with the same line: "1 of 2 processes joined the coordinator at
  host:port within 10 s (missing process ids: 1): ..." (connected processes wait a few seconds
  past their own deadline for it). A process that cannot reach the coordinator at all says so.
  Mismatched ``num_processes`` or two processes with one id are refused by process 0 with a
  message naming them. The roll call costs one TCP round trip and no port beyond the
  coordinator's (a second port would be one more thing for firewalls and clashes to break).
- Around ``jax.distributed.initialize`` itself a watchdog thread (the call releases the GIL) prints
  a one-line error and exits with status 2 when ``initialization_timeout_s`` passes, before JAX's
  own timeout (given a margin) aborts the process with its check failure. This is the only
  safeguard for auto-detected clusters, where the coordinator is not known before JAX picks it.
- After start-up: ``jax.process_count()`` must equal ``expected_processes`` when that is set (a
  cluster detected as smaller than intended otherwise trains happily on part of it), and the
  devices must fit ``config.mesh`` x ``config.dcn_mesh``; both are one-line errors with the
  topology. Process 0 then prints the topology once.

Nothing here stops hangs *after* start-up (a host dying mid-run): JAX's heartbeat (100 s by
default) ends the others then.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import selectors
import socket
import sys
import threading
import time
from typing import Mapping

import jax

from visprior_jax.parallel import mesh as mesh_lib

ENV_COORDINATOR = "VISPRIOR_COORDINATOR"
ENV_NUM_PROCESSES = "VISPRIOR_NUM_PROCESSES"
ENV_PROCESS_ID = "VISPRIOR_PROCESS_ID"
TPU_ENV = ("TPU_WORKER_HOSTNAMES", "TPU_WORKER_ID", "CLOUD_TPU_TASK_ID")
HINT = ("start the same command on every host (the launch/ scripts do), each with the same num_processes and its "
        "own process_id, and check that every host can reach the coordinator")
CLUSTER_HINT = ("start the command on every host of the TPU slice(s) or SLURM job (the launch/ scripts do: all TPU "
                "workers, one SLURM task per host) and check that every host can reach the coordinator")
SINGLE_HINT = (f"this process found no coordinator ({ENV_COORDINATOR}, distributed.coordinator_address), TPU or "
               f"SLURM environment, so it ran alone; start it with one of them")
JAX_TIMEOUT_MARGIN_S = 60   # JAX's own timeout comes this much after ours, so our message is the one seen
_ROLL_CALL = "visprior-rollcall"
CLIENT_GRACE_S = 3   # a connected process waits this long past the timeout for process 0's verdict


class DistributedError(RuntimeError):
  """A start-up failure, as one line that says what to check."""


@dataclasses.dataclass(frozen=True)
class Plan:
  """How this process joins the run."""
  mode: str                            # "single" | "explicit" | "auto"
  source: str                          # where the decision came from: "config", "env", "tpu", "slurm", "none"
  coordinator_address: str | None = None
  num_processes: int | None = None
  process_id: int | None = None
  timeout_s: int = 300
  expected_processes: int = 0          # config.distributed.expected_processes (0: not checked)
  cluster_processes: int = 0           # what the cluster's environment says, for messages (0: unknown)

  def initialize_kwargs(self, supported=None) -> dict:
    """Arguments for ``jax.distributed.initialize`` (empty dict: do not call it)."""
    if self.mode == "single":
      return {}
    kwargs = {}
    if self.mode == "explicit":
      kwargs.update(coordinator_address=self.coordinator_address, num_processes=self.num_processes,
                    process_id=self.process_id)
    supported = _initialize_parameters() if supported is None else supported
    if "initialization_timeout" in supported:
      kwargs["initialization_timeout"] = int(self.timeout_s) + JAX_TIMEOUT_MARGIN_S
    return kwargs

  def describe(self) -> str:
    if self.mode == "explicit":
      return f"coordinator {self.coordinator_address} from {self.source}"
    if self.mode == "auto":
      return f"{self.source} cluster detected by JAX"
    return "single process"


def _settings(config_or_args) -> dict:
  """config.distributed (or the mapping given) as a plain dict with defaults filled in."""
  d = config_or_args
  if d is not None and not isinstance(d, Mapping) and hasattr(d, "get") and d.get("distributed") is not None:
    d = d.get("distributed")
  elif isinstance(d, Mapping) and "distributed" in d:
    d = d["distributed"]
  if d is not None and hasattr(d, "to_dict"):
    d = d.to_dict()
  out = dict(coordinator_address="", num_processes=0, process_id=-1, initialization_timeout_s=300,
             expected_processes=0)
  if isinstance(d, Mapping):
    out.update({k: v for k, v in d.items() if k in out and v is not None})
  return out


def _env_int(environ, name: str, default: int) -> int:
  raw = environ.get(name, "")
  if raw == "":
    return default
  try:
    return int(raw)
  except ValueError:
    raise DistributedError(f"environment variable {name}={raw!r} is not an integer") from None


def detect(config_or_args=None, environ: Mapping[str, str] | None = None) -> Plan:
  """The plan for this process from config and environment (see the module docstring); no side effects."""
  environ = os.environ if environ is None else environ
  s = _settings(config_or_args)
  timeout, expected = int(s["initialization_timeout_s"]), int(s["expected_processes"])
  if timeout <= 0:
    raise DistributedError(f"distributed.initialization_timeout_s={timeout} must be positive")
  address = s["coordinator_address"] or environ.get(ENV_COORDINATOR, "")
  n = int(s["num_processes"]) or _env_int(environ, ENV_NUM_PROCESSES, 0)
  pid = int(s["process_id"]) if int(s["process_id"]) >= 0 else _env_int(environ, ENV_PROCESS_ID, -1)
  source = "config" if s["coordinator_address"] else "env"
  common = dict(timeout_s=timeout, expected_processes=expected)
  if address or n > 1:
    where = "distributed.coordinator_address" if source == "config" else ENV_COORDINATOR
    if not address:
      raise DistributedError(f"num_processes={n} but no coordinator: set distributed.coordinator_address "
                             f"(or {ENV_COORDINATOR}) to host:port of the host that runs process 0")
    _split_address(address, where)
    if n < 1:
      raise DistributedError(f"{where}={address} is set but num_processes is not: set distributed.num_processes "
                             f"(or {ENV_NUM_PROCESSES}) to the number of processes in the run")
    if not 0 <= pid < n:
      raise DistributedError(f"process_id={pid} with num_processes={n}: give each process a distinct "
                             f"distributed.process_id (or {ENV_PROCESS_ID}) in 0..{n - 1}")
    if n == 1:
      return Plan("single", source, address, 1, 0, **common)
    return Plan("explicit", source, address, n, pid, cluster_processes=n, **common)
  if any(k in environ for k in TPU_ENV) or any(k.startswith("MEGASCALE_") for k in environ):
    hosts = [h for h in environ.get("TPU_WORKER_HOSTNAMES", "").split(",") if h.strip()]
    slices = max(1, _env_int(environ, "MEGASCALE_NUM_SLICES", 1))
    count = len(hosts) * slices if hosts else 0
    if count == 1:
      return Plan("single", "tpu", cluster_processes=1, **common)
    return Plan("auto", "tpu", cluster_processes=count, **common)
  if "SLURM_JOB_ID" in environ:
    tasks = _env_int(environ, "SLURM_NTASKS", _env_int(environ, "SLURM_NPROCS", 1))
    if tasks > 1:
      return Plan("auto", "slurm", cluster_processes=tasks, process_id=_env_int(environ, "SLURM_PROCID", -1),
                  **common)
  return Plan("single", "none", **common)


def initialize(config_or_args=None, *, environ: Mapping[str, str] | None = None) -> Plan:
  """Joins the multi-process run this process belongs to, if any; checks and logs the topology.

  ``config_or_args``: the run config (its ``distributed`` block and, for the device check, ``mesh``
  and ``dcn_mesh``), a ``distributed`` block alone, or None. Raises :class:`DistributedError`."""
  plan = detect(config_or_args, environ)
  if plan.mode == "single" or jax.distributed.is_initialized():
    if plan.expected_processes:
      check_topology(plan)
    return plan
  if plan.mode == "explicit":
    _roll_call(plan)
  _initialize_with_watchdog(plan)
  check_topology(plan, config_or_args)
  if jax.process_index() == 0:
    print(topology_line(plan), flush=True)
  return plan


def topology_line(plan: Plan) -> str:
  devices = jax.devices()
  granules, kind = mesh_lib.num_granules(devices)
  return (f"distributed: {_plural(jax.process_count(), 'process')} ({plan.describe()}); "
          f"{jax.local_device_count()} local / {len(devices)} global {devices[0].platform} devices; "
          f"{granules} DCN granules (one per {kind})")


def check_topology(plan: Plan, config=None) -> None:
  """Process count against ``expected_processes``; devices against the config's mesh."""
  count = jax.process_count()
  if plan.expected_processes and count != plan.expected_processes:
    raise DistributedError(f"{_plural(count, 'process')} joined ({plan.describe()}) but "
                           f"distributed.expected_processes={plan.expected_processes}: {_hint(plan)}")
  if config is None or not hasattr(config, "get") or config.get("mesh") is None:
    return
  devices = jax.devices()
  granules, kind = mesh_lib.num_granules(devices)
  dcn = config.get("dcn_mesh")
  mesh = config.mesh.to_dict() if hasattr(config.mesh, "to_dict") else dict(config.mesh)
  try:
    mesh_lib.resolve_hybrid(mesh, (dcn.to_dict() if hasattr(dcn, "to_dict") else dcn) or None, len(devices),
                            granules)
  except mesh_lib.MeshError as e:
    raise DistributedError(f"the mesh does not fit this run's {len(devices)} devices ({_plural(count, 'process')} "
                           f"x {jax.local_device_count()} local devices, {_plural(granules, kind)}): {e}") from None


def _hint(plan: Plan) -> str:
  return {"explicit": HINT, "auto": CLUSTER_HINT}.get(plan.mode, SINGLE_HINT)


def _plural(n: int, noun: str) -> str:
  return f"{n} {noun}" + ("" if n == 1 else "es" if noun.endswith("s") else "s")


# ---- explicit coordinator: the roll call ------------------------------------------------------

def _split_address(address: str, where: str = "coordinator_address") -> tuple[str, int]:
  host, sep, port = address.rpartition(":")
  if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
    raise DistributedError(f"{where}={address!r} is not host:port (e.g. 10.0.0.2:8476)")
  return host.strip("[]"), int(port)


def _roll_call(plan: Plan) -> None:
  """Returns once all ``num_processes`` processes are present; raises DistributedError otherwise."""
  host, port = _split_address(plan.coordinator_address)
  deadline = time.monotonic() + plan.timeout_s
  if plan.process_id == 0:
    _RollCallServer(plan, port, deadline).run()
  else:
    _roll_call_client(plan, host, port, deadline)


def _missing_message(plan: Plan, joined: int, missing=None, left=None) -> str:
  ids = f" (missing process ids: {', '.join(map(str, missing))})" if missing else ""
  if left:
    ids += f" (joined, then exited or gave up: {', '.join(map(str, left))})"
  return (f"{joined} of {plan.num_processes} processes joined the coordinator at {plan.coordinator_address} "
          f"within {plan.timeout_s:g} s{ids}: {HINT}")


class _RollCallServer:
  """Process 0's side: listens on the coordinator port until every process has said hello."""

  def __init__(self, plan: Plan, port: int, deadline: float):
    self.plan, self.deadline = plan, deadline
    try:
      if socket.has_dualstack_ipv6():
        self.listener = socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
      else:
        self.listener = socket.create_server(("", port))
    except OSError as e:
      raise DistributedError(f"process 0 cannot listen on port {port} of {plan.coordinator_address} ({e}): "
                             f"another program holds it, or this host is not the coordinator's; choose a free "
                             f"port") from None
    self.listener.setblocking(False)
    self.sel = selectors.DefaultSelector()
    self.sel.register(self.listener, selectors.EVENT_READ)
    self.buffers: dict[socket.socket, bytes] = {}
    self.joined: dict[int, socket.socket] = {}   # present now
    self.seen: set[int] = set()                    # ever said hello (the count in messages)
    self.count_sent = -1

  def run(self) -> None:
    try:
      while len(self.joined) + 1 < self.plan.num_processes:
        left = self.deadline - time.monotonic()
        if left <= 0:
          missing = sorted(set(range(1, self.plan.num_processes)) - self.seen)
          message = _missing_message(self.plan, len(self.seen) + 1, missing, sorted(self.seen - set(self.joined)))
          self._send_all(f"fail {message}")
          raise DistributedError(message)
        for key, _ in self.sel.select(timeout=min(left, 1.0)):
          if key.fileobj is self.listener:
            self._accept()
          else:
            self._read(key.fileobj)
        self._broadcast_count()
      self._send_all("go")
      self.listener.close()       # JAX's service binds this port next; clients close first (no TIME_WAIT here)
      self._drain(time.monotonic() + 5)
    finally:
      for conn in list(self.buffers):
        conn.close()
      self.listener.close()
      self.sel.close()

  def _accept(self):
    try:
      conn, _ = self.listener.accept()
    except BlockingIOError:
      return
    conn.setblocking(False)
    self.buffers[conn] = b""
    self.sel.register(conn, selectors.EVENT_READ)

  def _drop(self, conn):
    self.sel.unregister(conn)
    self.buffers.pop(conn, None)
    for pid, c in list(self.joined.items()):
      if c is conn:
        del self.joined[pid]   # it gave up or died: it no longer counts
    conn.close()

  def _read(self, conn):
    try:
      data = conn.recv(4096)
    except OSError:
      data = b""
    if not data:
      self._drop(conn)
      return
    self.buffers[conn] += data
    if b"\n" not in self.buffers[conn]:
      if len(self.buffers[conn]) > 4096:
        self._drop(conn)
      return
    line = self.buffers[conn].split(b"\n", 1)[0].decode(errors="replace").split()
    if len(line) != 3 or line[0] != _ROLL_CALL or not (line[1].isdigit() and line[2].isdigit()):
      self._drop(conn)   # not one of ours
      return
    pid, n = int(line[1]), int(line[2])
    problem = None
    if n != self.plan.num_processes:
      problem = (f"process {pid} was started with num_processes={n} but process 0 with "
                 f"{self.plan.num_processes}: give every process the same num_processes")
    elif not 0 < pid < n:
      problem = f"a process says process_id={pid}; ids run 0..{n - 1} and 0 is the coordinator's"
    elif pid in self.joined:
      problem = f"two processes were started with process_id={pid}: give each process its own id"
    if problem:
      self._send_all(f"fail {problem}", also=conn)
      raise DistributedError(problem)
    self.joined[pid] = conn
    self.seen.add(pid)

  def _broadcast_count(self):
    count = len(self.joined) + 1
    if count != self.count_sent:
      self._send_all(f"joined {count}")
      self.count_sent = count

  def _send_all(self, line: str, also=None):
    for conn in set(self.joined.values()) | ({also} if also else set()):
      try:
        conn.setblocking(True)
        conn.settimeout(2)
        conn.sendall((line + "\n").encode())
        conn.setblocking(False)
      except OSError:
        pass

  def _drain(self, until: float):
    """Waits (briefly) for clients to hang up first."""
    open_conns = set(self.joined.values())
    while open_conns and time.monotonic() < until:
      for key, _ in self.sel.select(timeout=max(0.0, until - time.monotonic())):
        if key.fileobj in open_conns:
          try:
            data = key.fileobj.recv(4096)
          except OSError:
            data = b""
          if not data:
            open_conns.discard(key.fileobj)
            self.sel.unregister(key.fileobj)


def _roll_call_client(plan: Plan, host: str, port: int, deadline: float) -> None:
  conn = None
  while conn is None:
    left = deadline - time.monotonic()
    if left <= 0:
      raise DistributedError(f"process {plan.process_id} could not reach the coordinator at "
                             f"{plan.coordinator_address} within {plan.timeout_s:g} s (0 of {plan.num_processes} "
                             f"processes confirmed): start process 0 on that host, or fix the address; {HINT}")
    try:
      conn = socket.create_connection((host, port), timeout=min(left, 2.0))
    except OSError:
      time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
  joined = 0
  verdict = deadline + CLIENT_GRACE_S   # process 0's verdict names the missing ids: give it time to arrive
  with conn:
    conn.sendall(f"{_ROLL_CALL} {plan.process_id} {plan.num_processes}\n".encode())
    buffer = b""
    while True:
      left = verdict - time.monotonic()
      if left <= 0:
        raise DistributedError(_missing_message(plan, joined))
      conn.settimeout(min(left, 1.0))
      try:
        data = conn.recv(4096)
      except socket.timeout:
        continue
      except OSError:
        data = b""
      if not data:
        raise DistributedError(f"the coordinator at {plan.coordinator_address} hung up during start-up "
                               f"(process 0 exited?); {joined} of {plan.num_processes} processes had joined: {HINT}")
      buffer += data
      while b"\n" in buffer:
        raw, buffer = buffer.split(b"\n", 1)
        word, _, rest = raw.decode(errors="replace").partition(" ")
        if word == "joined":
          joined = int(rest)
        elif word == "fail":
          raise DistributedError(rest)
        elif word == "go":
          return   # closing first leaves TIME_WAIT on this side, not on the coordinator's port


# ---- jax.distributed.initialize under a watchdog ----------------------------------------------

def _initialize_parameters() -> set[str]:
  try:
    return set(inspect.signature(jax.distributed.initialize).parameters)
  except (TypeError, ValueError):
    return set()


def _initialize_with_watchdog(plan: Plan) -> None:
  done = threading.Event()
  expected = plan.cluster_processes or "all"
  message = (f"error: jax.distributed.initialize did not finish within {plan.timeout_s:g} s ({plan.describe()}; "
             f"{expected} processes expected, this is process "
             f"{'?' if plan.process_id is None or plan.process_id < 0 else plan.process_id}): {_hint(plan)}, or raise "
             f"distributed.initialization_timeout_s")

  def watch():
    if not done.wait(plan.timeout_s):
      print(message, file=sys.stderr, flush=True)
      os._exit(2)   # the main thread is blocked inside JAX's C++ start-up; nothing else can end it cleanly

  threading.Thread(target=watch, name="visprior-distributed-watchdog", daemon=True).start()
  try:
    jax.distributed.initialize(**plan.initialize_kwargs())
  except RuntimeError as e:
    raise DistributedError(f"jax.distributed.initialize failed ({plan.describe()}): {e}") from None
  finally:
    done.set()
