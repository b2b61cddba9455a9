"""The study's results store: every run's eval records joined with its spec, in one Parquet table.

A study directory holds one folder per run. The runner writes the run's spec to ``run.json``::

  {"study": "tiny", "run": "1m_mix6_s1", "size": "llama3_tiny", "params": 1048576, "tokens": 20000000,
   "mixture": "mix6", "shares": {"web_crawl": 0.4, "code": 0.35, ...}, "encoder": "vit_tiny", "seed": 1,
   "sft": "full", "blind": false, ...}

and each evaluation writes ``<run dir>/<stage>/eval/step_<N>/metrics.jsonl`` (found at any depth
below the run folder, in any folder named ``eval`` or ``eval_*``, e.g. the no-image evaluation's
``eval_blank``; ``visprior_jax.eval.results`` documents the records). :func:`collect` turns all of it
into ONE long table, one row per (run, stage, step, images, benchmark, metric):

  record columns   run, stage, step, checkpoint, suite, benchmark, category, metric, value, primary,
                   n, n_skipped, settings, time (UTC datetime), images ("real", the default for records
                   without the field, or "blank": the images were replaced by a uniform gray one)
  spec columns     every scalar field of run.json (study, size, params, tokens, mixture, encoder,
                   seed, sft, blind, ...); nested dicts flattened with dots, so ``shares`` becomes
                   ``share.<name>`` columns (fractions; absent = NaN); lists as JSON text
  provenance       run_dir (relative to the study dir), file (the metrics file, relative)

Decisions:

- ``run`` is the spec's name when the record lies under a run.json (the folder decides which run
  a record belongs to); records outside any run folder keep their own ``run`` and have no spec.
  A spec key that collides with a record column (other than ``run``) is kept as ``spec.<key>``.
- Real- and blank-image records of the same benchmark are different rows (``images`` is in the key);
  the analysis reads the real ones unless asked for the blank ones (``analysis.tables.runs_table``).
- Duplicates: the same (run, stage, step, images, benchmark, metric) evaluated twice keeps the record with
  the latest ``time``; equal times keep the one read last (files in sorted order, lines in order).
- Bad input is skipped and counted, never fatal and never silently dropped: a line that is not a
  JSON object with ``benchmark``, ``metric`` and ``value`` is skipped (named as ``file:line``); a
  metrics file with no usable line, an unreadable file, or a run.json that is not a JSON object is a
  bad file. One warning names them all (first 10), and the counts go into the Parquet file's
  metadata (``load(...).attrs["collect"]``).
- Mixed-type spec fields are made Parquet-safe: all-numeric -> float/int, all-bool -> bool,
  anything else -> text.

Notebook use: ``df = store.load("runs/study")`` (collects first when there is no results.parquet
yet); ``latest(df)`` keeps each run's last evaluated step per stage.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from etils import epath

from visprior_jax.analysis.tables import IMAGES_DEFAULT, latest

__all__ = ["IMAGES_DEFAULT", "KEY", "RECORD_COLUMNS", "collect", "dedupe", "latest", "load"]

RECORD_COLUMNS = ("run", "stage", "step", "checkpoint", "suite", "benchmark", "category", "metric", "value",
                  "primary", "n", "n_skipped", "settings", "time", "images")
KEY = ("run", "stage", "step", "images", "benchmark", "metric")
RESULTS_FILE = "results.parquet"
RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
_PRUNE = {"predictions", "done", "__pycache__"}     # eval subfolders that never hold metrics files
_META_KEY = b"visprior.collect"


# ------------------------------------------------------------------------------------------ scan


def _walk(root: epath.Path) -> Iterator[tuple[epath.Path, list[str]]]:
  """(folder, file names) for every folder under root, sorted, skipping hidden and eval-only folders."""
  if "://" not in str(root):
    for folder, dirs, files in os.walk(root):
      dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _PRUNE)
      yield epath.Path(folder), sorted(files)
    return
  stack = [root]
  while stack:
    folder = stack.pop()
    children = sorted(folder.iterdir(), key=lambda p: p.name)
    yield folder, [c.name for c in children if c.is_file()]
    stack += [c for c in reversed(children)
              if c.is_dir() and not c.name.startswith(".") and c.name not in _PRUNE]


def _flatten(spec: Mapping, prefix: str = "") -> dict:
  out = {}
  for key, value in spec.items():
    name = "share" if prefix == "" and key == "shares" else f"{prefix}{key}"
    if isinstance(value, Mapping):
      out.update(_flatten(value, name + "."))
    elif isinstance(value, (list, tuple)):
      out[name] = json.dumps(value)
    else:
      out[name] = value
  return out


def _spec_columns(spec: Mapping) -> dict:
  flat = _flatten(spec)
  return {(f"spec.{k}" if k in RECORD_COLUMNS and k != "run" else k): v for k, v in flat.items()}


class _Bad:
  def __init__(self):
    self.files: list[str] = []     # "path (reason)"
    self.lines: list[str] = []     # "path:line (reason)"

  def summary(self) -> dict:
    return {"bad_files": len(self.files), "bad_lines": len(self.lines), "bad_file_names": self.files,
            "bad_line_names": self.lines[:100]}


def _read_metrics(path: epath.Path, rel: str, bad: _Bad) -> list[dict]:
  try:
    text = path.read_text()
  except (OSError, UnicodeDecodeError) as e:
    bad.files.append(f"{rel} (unreadable: {type(e).__name__})")
    return []
  out, bad_lines = [], []
  for i, line in enumerate(text.splitlines(), 1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      record, reason = None, "not JSON"
    else:
      reason = "not a JSON object" if not isinstance(record, dict) else None
    if record is not None and reason is None:
      missing = [k for k in ("benchmark", "metric", "value") if k not in record]
      reason = f"missing {', '.join(missing)}" if missing else None
    if reason:
      bad_lines.append(f"{rel}:{i} ({reason})")
      continue
    out.append(record)
  if not out and bad_lines:     # nothing usable: the file is bad (its lines are not counted again)
    bad.files.append(f"{rel} (no usable record; {len(bad_lines)} bad lines, first: {bad_lines[0].split(' ', 1)[1]})")
  else:
    bad.lines += bad_lines
  return out


def _read_spec(path: epath.Path, rel: str, bad: _Bad) -> dict | None:
  try:
    spec = json.loads(path.read_text())
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    bad.files.append(f"{rel} (bad run spec: {type(e).__name__})")
    return None
  if not isinstance(spec, dict):
    bad.files.append(f"{rel} (bad run spec: not a JSON object)")
    return None
  return spec


def _rel(path: epath.Path, root: epath.Path) -> str:
  p, r = str(path), str(root).rstrip("/")
  return p[len(r) + 1:] if p.startswith(r + "/") else p


# ---------------------------------------------------------------------------------------- tidy


def _tidy(column: pd.Series) -> pd.Series:
  """A Parquet-safe column: bool, int, float or text."""
  if isinstance(column.dtype, pd.StringDtype):
    return column
  values = column.dropna()
  if values.empty:
    return column.astype("float64") if column.dtype == object else column
  kinds = {type(v) for v in values}
  if kinds <= {bool, np.bool_}:
    return column.astype("boolean")
  if kinds <= {int, np.int64} and column.notna().all():
    return column.astype("int64")
  if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values):
    return pd.to_numeric(column, errors="coerce").astype("float64")
  return column.map(lambda v: v if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)).astype(object)


def _frame(rows: list[dict]) -> pd.DataFrame:
  df = pd.DataFrame(rows)
  for col in RECORD_COLUMNS + ("run_dir", "file"):
    if col not in df:
      df[col] = None
  df["time"] = pd.to_datetime(df["time"], utc=True, errors="coerce", format="ISO8601")
  df["value"] = pd.to_numeric(df["value"], errors="coerce").astype("float64")
  df["step"] = pd.to_numeric(df["step"], errors="coerce").astype("Int64")
  for col in ("n", "n_skipped"):
    df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
  df["primary"] = df["primary"].astype("boolean")
  df["images"] = df["images"].fillna(IMAGES_DEFAULT).astype(str)
  for col in df.columns:
    if col not in ("time", "value", "step", "n", "n_skipped", "primary"):
      df[col] = _tidy(df[col])
  spec_cols = sorted(c for c in df.columns if c not in RECORD_COLUMNS and c not in ("run_dir", "file")
                     and not c.startswith("share."))
  shares = sorted(c for c in df.columns if c.startswith("share."))
  return df[list(RECORD_COLUMNS) + spec_cols + shares + ["run_dir", "file"]]


def dedupe(df: pd.DataFrame) -> pd.DataFrame:
  """One row per (run, stage, step, images, benchmark, metric): the latest ``time`` wins; ties keep the last
  read."""
  order = df.assign(_order=np.arange(len(df))).sort_values(["time", "_order"], na_position="first", kind="stable")
  return order.drop_duplicates(list(KEY), keep="last").sort_values("_order").drop(columns="_order")


# ----------------------------------------------------------------------------------------- API


def collect(study_dir, out=None) -> epath.Path:
  """Scans ``study_dir`` for run.json + metrics.jsonl files and writes one Parquet table (the path).

  ``out`` defaults to ``<study_dir>/results.parquet``. See the module docstring for the columns,
  deduplication and bad-input rules."""
  root = epath.Path(study_dir)
  if not root.is_dir():
    raise FileNotFoundError(f"study directory {root} not found")
  out = epath.Path(out) if out is not None else root / RESULTS_FILE
  bad = _Bad()
  specs: dict[str, dict | None] = {}       # run folder -> flattened spec (None: bad run.json)
  rows: list[dict] = []
  n_files = 0
  for folder, files in _walk(root):
    if RUN_FILE in files:
      spec = _read_spec(folder / RUN_FILE, _rel(folder / RUN_FILE, root), bad)
      specs[str(folder)] = _spec_columns(spec) if spec is not None else None
    if METRICS_FILE not in files or not any(p == "eval" or p.startswith("eval_") for p in folder.parts):
      continue   # training runs write per-step metrics.jsonl too: only eval (eval_blank, ...) folders hold records
    n_files += 1
    path = folder / METRICS_FILE
    rel = _rel(path, root)
    owner = next((p for p in [folder, *folder.parents] if specs.get(str(p)) is not None), None)
    spec, run_dir = (specs[str(owner)], _rel(owner, root)) if owner is not None else ({}, None)
    for record in _read_metrics(path, rel, bad):
      row = {k: record.get(k) for k in RECORD_COLUMNS}
      row.update(spec)
      row["run"] = spec.get("run", record.get("run")) if owner is not None else record.get("run")
      row.update(run_dir=run_dir, file=rel)
      rows.append(row)
  n_read = len(rows)
  df = dedupe(_frame(rows)) if rows else _frame([])
  stats = dict(study_dir=str(root), metrics_files=n_files, runs=int(df["run"].nunique()), records_read=n_read,
               records=len(df), duplicates=n_read - len(df), **bad.summary())
  if bad.files or bad.lines:
    names = bad.files + bad.lines
    warnings.warn(f"results store {root}: skipped {len(bad.files)} bad files and {len(bad.lines)} bad lines: "
                  + "; ".join(names[:10]) + (f"; ... ({len(names) - 10} more)" if len(names) > 10 else ""),
                  stacklevel=2)
  table = pa.Table.from_pandas(df, preserve_index=False)
  meta = dict(table.schema.metadata or {})
  meta[_META_KEY] = json.dumps(stats).encode()
  table = table.replace_schema_metadata(meta)
  out.parent.mkdir(parents=True, exist_ok=True)
  tmp = out.parent / (out.name + ".tmp")
  with tmp.open("wb") as fh:
    pq.write_table(table, fh)
  tmp.replace(out)
  return out


def load(path_or_study_dir, *, refresh: bool = False) -> pd.DataFrame:
  """The results table as a DataFrame: a .parquet (or .csv) file, or a study dir (its results.parquet,
  collected first when missing or ``refresh``). ``df.attrs["collect"]`` holds the collect counts."""
  path = epath.Path(path_or_study_dir)
  if path.is_dir():
    target = path / RESULTS_FILE
    if refresh or not target.exists():
      collect(path, target)
    path = target
  if str(path).endswith(".csv"):
    with path.open() as fh:
      return pd.read_csv(fh)
  with path.open("rb") as fh:
    table = pq.read_table(fh)
  df = table.to_pandas()
  raw = (table.schema.metadata or {}).get(_META_KEY)
  if raw:
    df.attrs["collect"] = json.loads(raw)
  return df
