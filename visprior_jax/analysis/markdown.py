"""Markdown for the reports: one cell (:func:`fmt`) and a GitHub-flavoured table (:func:`md_table`)."""

from __future__ import annotations

import math

import pandas as pd


def fmt(v) -> str:
  """A cell: blank for missing / infinite, yes / no, 4 significant digits below 1, 2 decimals above."""
  if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
    return ""
  if isinstance(v, bool):
    return "yes" if v else "no"
  if isinstance(v, float):
    if math.isinf(v):
      return ""
    if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
      return f"{v:.3g}"
    return f"{v:.4g}" if abs(v) < 1 else f"{v:.2f}"
  return str(v).replace("|", "/")


def md_table(df: pd.DataFrame, columns=None, max_rows: int = 40) -> str:
  """A GitHub-flavoured markdown table (no extra dependency)."""
  if df.empty:
    return "(none)\n"
  cols = [c for c in (columns or df.columns) if c in df]
  lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
  for _, r in df.head(max_rows).iterrows():
    lines.append("| " + " | ".join(fmt(r[c]) for c in cols) + " |")
  if len(df) > max_rows:
    lines.append(f"\n({len(df) - max_rows} more rows in the CSV files)")
  return "\n".join(lines) + "\n"
