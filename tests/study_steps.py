"""Python steps for the study-runner tests: each appends its name to a log; ``fail`` raises unless a
marker file exists (so a test can 'fix' it and rerun)."""

import pathlib


def record(log: str, name: str) -> None:
  with open(log, "a") as fh:
    fh.write(name + "\n")


def fail(log: str, name: str, fixed: str) -> None:
  if not pathlib.Path(fixed).exists():
    raise RuntimeError(f"{name} is broken\nsecond line")
  record(log, name)


def preempted(log: str, name: str) -> None:
  from visprior_jax.study.runner import StudyInterrupted
  record(log, name)
  raise StudyInterrupted(f"{name}: preempted at step 3 (saved); rerun the study to resume")
