"""Reasoning quality of an MLLM's explanations (arXiv §4.2): Logical Soundness and
Reasoning Depth, scored by an LLM judge behind an OpenAI-compatible endpoint.

Protocol. On the reasoning-heavy VQA items (Knowledge and Vision-Centric benchmarks) the MLLM is
prompted to explain instead of answering directly: :func:`explain_prompt` appends the paper's
sentence :data:`EXPLAIN_SUFFIX` ("Answer the question with a detailed thinking process and
explanations.") to the question prompt, after dropping a trailing direct-answer instruction (see
:data:`DIRECT_ANSWER_INSTRUCTIONS`). Each (question, response) trace then goes to the judge:

  judge = make_judge({"base_url": "http://gpu-host:8000/v1"})      # configs/eval/judge_endpoint.py
  report = reasoning_quality([{"question": q, "response": r}, ...], judge)
  judge.close()

Metrics (``reasoning_quality``), over T traces of which J received a verdict:

  logical_soundness = 100 * #COHERENT / J                     (percent; NaN when J = 0)
  reasoning_depth   = (1 / T) * sum_t len(response_t.split())  (words; NaN when T = 0)

- "Logical Soundness = percentage of reasoning traces judged coherent and reasonable". The paper's
  rubric is not published; ours is ``configs/eval/judge_prompt.txt``: a trace is COHERENT when its
  steps follow from one another without contradiction, it stays consistent with the question and
  its options, and it reaches an explicit conclusion that follows from those steps. A bare answer
  with no reasoning is INCOHERENT (there is nothing to be sound). The judge cannot see the image,
  so it is told to judge internal logic, not visual facts.
- "Reasoning Depth = average length of the reasoning trace measured by text count"; the unit is not
  stated. We count words: whitespace-separated tokens of the MLLM's whole response (``str.split()``),
  independent of any tokenizer, so numbers compare across models. Depth averages over ALL traces,
  including unjudged ones (it needs no judge).
- Unjudged traces: an answer with no readable verdict is re-asked ``parse_retries`` times (at
  ``retry_temperature``) by ``EndpointBackend``; if it stays unreadable the trace is ``unparseable``.
  A trace whose requests all failed (transport errors after ``max_retries``) is ``failed``. Both are
  counted in ``n_unjudged`` and EXCLUDED from the soundness denominator (counting them as incoherent
  would mix judge outages into the metric); ``n_unparseable`` / ``n_failed`` split the count.
- Ground truth: off by default (``include_answer=False``), the judge scores the reasoning alone.
  With ``include_answer=True`` the item's ``answer`` is shown as a reference; the rubric still asks
  about the logic, but a judge that sees the answer may reward correct conclusions.

Prompt file: the rubric, then ``{question}`` (with the trace's ``options`` appended as "A. ..."
lines when given), ``{reference}`` (the reference-answer paragraph, or nothing) and ``{response}``.
``{question}`` and ``{response}`` are required; all are filled in one pass, so braces inside the
texts stay literal.

Verdict parsing (:func:`parse_verdict`): a ``<think>...</think>`` block is dropped (an unclosed one
means the judge ran out of tokens: unreadable). The last line mentioning a verdict decides:
``Verdict: COHERENT`` / ``Verdict: INCOHERENT`` in any case, with markdown bold/italics/backticks,
``:``, ``=`` or ``-``; "NOT COHERENT" reads as incoherent; a reply that is only the bare word also
counts. A line naming both verdicts (e.g. an echo of the instructions) is unreadable.

Transport, concurrency, retries, the API key (from the environment variable named by
``api_key_env``, never logged) and the SQLite answer cache are ``visprior_jax.data.label_backends.
EndpointBackend``'s. :class:`JudgeBackend` only supplies the request content, the parser and the
cache key (model, prompt template, and exactly what the judge sees). As the cache stores list
answers, a verdict travels through the backend as a one-element list ``["coherent"]``; only
readable verdicts are cached, so a rerun re-asks just the unjudged traces.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from etils import epath

from visprior_jax.data.label_backends import FAILED, UNPARSEABLE, EndpointBackend, EndpointConfig

EXPLAIN_SUFFIX = "Answer the question with a detailed thinking process and explanations."
# Direct-answer instructions (LLaVA / Cambrian / lmms-eval style) that explain_prompt replaces.
DIRECT_ANSWER_INSTRUCTIONS = (
    "Answer with the option's letter from the given choices directly.",
    "Answer the question using a single word or phrase.",
    "Answer with the option letter from the given choices directly.",
)
DEFAULT_PROMPT = epath.Path(__file__).resolve().parents[2] / "configs" / "eval" / "judge_prompt.txt"

COHERENT = "coherent"
INCOHERENT = "incoherent"
JUDGE_FAILED = "failed"      # the verdict reported for a trace whose requests all failed
# UNPARSEABLE ("unparseable", from label_backends) is reported for an unreadable answer.


def explain_prompt(question_prompt: str) -> str:
  """The question prompt switched to the explain mode: a trailing direct-answer instruction (one of
  :data:`DIRECT_ANSWER_INSTRUCTIONS`) is removed, then :data:`EXPLAIN_SUFFIX` goes on its own line."""
  text = question_prompt.rstrip()
  for instruction in DIRECT_ANSWER_INSTRUCTIONS:
    if text.endswith(instruction):
      text = text[:-len(instruction)].rstrip()
      break
  if text.endswith(EXPLAIN_SUFFIX):
    return text
  return f"{text}\n{EXPLAIN_SUFFIX}" if text else EXPLAIN_SUFFIX


# ----------------------------------------------------------------------------------------------
# Parsing the judge's answer

_DECOR = re.compile(r"[*_`#>\[\]]")
_VERDICT = re.compile(r"\bverdict\b\s*(?:is\s*)?[:=\-]?\s*(not\s+|in)?coherent\b", re.I)
_SPLIT_VERDICT = re.compile(r"(\bverdict\s*[:=\-]?)[ \t]*\n\s*", re.I)
_BARE = re.compile(r"^\W*(not\s+|in)?coherent\W*$", re.I)


def parse_verdict(text: Any) -> str | None:
  """A judge's answer -> ``"coherent"`` / ``"incoherent"``, or None when unreadable (see module doc)."""
  if not isinstance(text, str):
    return None
  if "</think>" in text:
    text = text.rsplit("</think>", 1)[1]
  elif "<think>" in text:
    return None                                     # ran out of tokens while thinking
  text = _SPLIT_VERDICT.sub(r"\1 ", _DECOR.sub("", text))   # "Verdict:" with the word on the next line
  lines = [line.strip() for line in text.strip().splitlines()]
  lines = [line for line in lines if line]
  for line in reversed(lines):
    found = {INCOHERENT if m.group(1) else COHERENT for m in _VERDICT.finditer(line)}
    if len(found) > 1:
      return None                                   # "Verdict: COHERENT or Verdict: INCOHERENT"
    if found:
      return found.pop()
  if len(lines) == 1:
    match = _BARE.match(lines[0])
    if match:
      return INCOHERENT if match.group(1) else COHERENT
  return None


# ----------------------------------------------------------------------------------------------
# The judge backend


@dataclasses.dataclass
class JudgeConfig(EndpointConfig):
  """EndpointConfig with judge defaults (fields documented in ``configs/eval/judge_endpoint.py``)."""
  prompt_path: str = ""            # "" = configs/eval/judge_prompt.txt
  max_tokens: int = 512            # a short justification, then the verdict line
  include_answer: bool = False     # show the ground-truth answer to the judge as a reference


@dataclasses.dataclass(frozen=True)
class JudgeItem:
  """Exactly what the judge sees (and what the cache key covers besides model and prompt)."""
  question: str
  response: str
  reference: str | None = None


_PLACEHOLDER = re.compile(r"\{(question|response|reference)\}")


class JudgeBackend(EndpointBackend):
  """EndpointBackend whose items are :class:`JudgeItem` and whose answers are one verdict."""

  name = "judge_endpoint"

  def __init__(self, cfg: JudgeConfig | Mapping):
    cfg = cfg if isinstance(cfg, JudgeConfig) else JudgeConfig.from_mapping(cfg)
    if not cfg.prompt_path:
      cfg = dataclasses.replace(cfg, prompt_path=str(DEFAULT_PROMPT))
    super().__init__(cfg)
    missing = [p for p in ("{question}", "{response}") if p not in self.prompt]
    if missing:
      raise ValueError(f"judge prompt {cfg.prompt_path} lacks the placeholders {missing}")

  def item(self, trace: Mapping) -> JudgeItem:
    """A trace dict ``{question, response[, options][, answer]}`` -> the JudgeItem sent."""
    question = str(trace["question"]).strip()
    options = trace.get("options")
    if options:
      question += "\n" + "\n".join(f"{chr(ord('A') + i)}. {o}" for i, o in enumerate(options))
    reference = None
    if self.cfg.include_answer:
      if trace.get("answer") is None:
        raise ValueError("include_answer=True but a trace has no 'answer'")
      reference = str(trace["answer"])
    return JudgeItem(question, str(trace["response"]), reference)

  def judge(self, traces: Sequence[Mapping]) -> list[str]:
    """One verdict per trace: coherent, incoherent, unparseable or failed."""
    out = []
    for result in self.label([self.item(t) for t in traces]):
      if result is FAILED:
        out.append(JUDGE_FAILED)
      elif result == UNPARSEABLE:
        out.append(UNPARSEABLE)
      else:
        out.append(result[0])
    return out

  # -- EndpointBackend hooks

  def _content(self, item: JudgeItem) -> str:
    reference = "" if item.reference is None else (
        "Reference answer (the benchmark's ground truth, for context only; judge the reasoning):\n"
        f"{item.reference}\n")
    values = {"question": item.question, "response": item.response, "reference": reference}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.prompt)   # one pass: no re-substitution

  def _parse(self, answer: str) -> list[str] | None:
    verdict = parse_verdict(answer)
    return None if verdict is None else [verdict]

  def cache_key(self, item: JudgeItem) -> str:
    h = hashlib.sha256()
    seen = json.dumps([item.question, item.response, item.reference])
    for part in (self.cfg.model, self.prompt, seen):
      b = part.encode("utf-8", "surrogatepass")
      h.update(len(b).to_bytes(8, "little") + b)
    return h.hexdigest()


def make_judge(cfg: Any = None) -> JudgeBackend:
  """A JudgeBackend from a mapping or ConfigDict of :class:`JudgeConfig` fields (unknown keys raise)."""
  cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg or {})
  names = {f.name for f in dataclasses.fields(JudgeConfig)}
  unknown = sorted(set(cfg) - names)
  if unknown:
    raise ValueError(f"unknown judge config fields {unknown}; known: {sorted(names)}")
  return JudgeBackend(JudgeConfig.from_mapping(cfg))


# ----------------------------------------------------------------------------------------------
# Metrics


def word_count(text: str) -> int:
  """Reasoning-depth unit: whitespace-separated words."""
  return len(str(text).split())


def reasoning_quality(traces: Sequence[Mapping], backend) -> dict[str, Any]:
  """Logical Soundness and Reasoning Depth of traces ``[{question, response[, options][, answer]}]``.

  ``backend`` is anything with ``judge(traces) -> verdicts`` (a :class:`JudgeBackend`). Returns
  ``{"logical_soundness": % coherent of judged, "reasoning_depth": mean words over all traces,
  "n": judged, "n_unjudged", "n_unparseable", "n_failed", "n_traces", "verdicts": per trace}``.
  """
  traces = list(traces)
  verdicts = list(backend.judge(traces)) if traces else []
  if len(verdicts) != len(traces):
    raise RuntimeError(f"the judge returned {len(verdicts)} verdicts for {len(traces)} traces")
  coherent = sum(v == COHERENT for v in verdicts)
  judged = coherent + sum(v == INCOHERENT for v in verdicts)
  words = [word_count(t["response"]) for t in traces]
  return {
      "logical_soundness": 100.0 * coherent / judged if judged else math.nan,
      "reasoning_depth": sum(words) / len(words) if words else math.nan,
      "n": judged,
      "n_unjudged": len(traces) - judged,
      "n_unparseable": sum(v == UNPARSEABLE for v in verdicts),
      "n_failed": sum(v == JUDGE_FAILED for v in verdicts),
      "n_traces": len(traces),
      "verdicts": verdicts,
  }
