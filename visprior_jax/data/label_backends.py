"""Label backends: turn a segment's text into category labels.

- :class:`EndpointBackend`: an OpenAI-compatible ``POST {base_url}/chat/completions`` server (vLLM,
  SGLang), standard library only: concurrency, retries with backoff and jitter, re-asks on
  unparseable answers, an SQLite answer cache; the API key comes from the environment variable
  named in config and is never logged or written.
- :class:`LexicalBackend`: keyword / regex densities; a rough proxy for smoke tests.

``parse_answer`` reads a model's answer into labels (None when unparseable). The labelling loop,
files and reports are in ``visprior_jax.data.labels``.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import http.client
import json
import logging
import os
import random
import re
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Iterable, Mapping, Protocol, Sequence

from etils import epath

log = logging.getLogger(__name__)

CATEGORIES = ("code_reasoning", "math_reasoning", "science_reasoning",
              "visual_concept", "visual_attribute", "visual_relationship")
NONE = "none"
UNPARSEABLE = "unparseable"   # a backend result: the model's answer could not be read
FAILED = None                 # a backend result: no answer (transport errors); not recorded, retried next run
DEFAULT_PROMPT = epath.Path(__file__).resolve().parents[2] / "configs" / "data" / "label_prompt.txt"

# ----------------------------------------------------------------------------------------------
# Parsing model answers

_ALIASES = {
    "code reasoning": "code_reasoning", "code": "code_reasoning", "coding": "code_reasoning",
    "math reasoning": "math_reasoning", "math": "math_reasoning", "mathematical reasoning": "math_reasoning",
    "mathematics": "math_reasoning", "maths reasoning": "math_reasoning",
    "science reasoning": "science_reasoning", "science": "science_reasoning",
    "scientific reasoning": "science_reasoning",
    "visual concept": "visual_concept", "visual concepts": "visual_concept",
    "visual attribute": "visual_attribute", "visual attributes": "visual_attribute",
    "visual relationship": "visual_relationship", "visual relationships": "visual_relationship",
    "visual relation": "visual_relationship", "visual relations": "visual_relationship",
    "none": NONE, "none of the above": NONE, "no category": NONE, "n/a": NONE, "null": NONE,
}
_PREFIX = re.compile(r"^\s*(final answer|answer|categories|category|labels?|output)\s*[:=]\s*", re.I)
_BULLET = re.compile(r"^\s*(?:[-*\u2022>]+|\d+[.)])\s*")


def parse_answer(text: str) -> list[str] | None:
  """A model's answer -> sorted labels (["none"] when nothing applies), or None if unreadable.

  Accepts a JSON list, comma/semicolon/newline separated names, bullets, any case, spaces or
  underscores or hyphens, an "Answer:" prefix, and a ``<think>...</think>`` block before the answer.
  Every item must name a category (or None); anything else makes the answer unparseable.
  """
  if not isinstance(text, str):
    return None
  if "</think>" in text:
    text = text.rsplit("</think>", 1)[1]
  elif "<think>" in text:
    return None                                    # ran out of tokens while thinking
  text = text.strip().strip("`").strip()
  if text.lower().startswith("json"):
    text = text[4:]
  text = _PREFIX.sub("", text).strip()
  items: list[str] | None = None
  match = re.search(r"\[.*?\]", text, re.S)
  if match:
    try:
      parsed = json.loads(match.group(0))
      if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
        items = parsed
    except ValueError:
      pass
  from_json = items is not None
  if items is None:
    items = re.split(r"[,;\n]+", text.strip("[]"))
  labels = set()
  for item in items:
    item = _BULLET.sub("", item).strip().strip("\"'`*.").strip()
    if not item:
      continue
    name = re.sub(r"[\s_\-]+", " ", item.lower()).strip()
    if name not in _ALIASES:
      return None
    labels.add(_ALIASES[name])
  if not labels:
    return [NONE] if from_json else None   # "[]" means none; an empty answer is unreadable
  labels.discard(NONE)
  return sorted(labels) or [NONE]


# ----------------------------------------------------------------------------------------------
# Backends


class Backend(Protocol):
  name: str

  def label(self, texts: Sequence[str]) -> list[Any]:
    """One result per text: a sorted label list, UNPARSEABLE, or FAILED (None)."""

  def stats(self) -> dict[str, int]: ...

  def close(self) -> None: ...


class _Words:
  def __init__(self, *words: str):
    self.words = frozenset(w for group in words for w in group.split())


_CODE_LINE = re.compile(
    r"(^\s*(def|class|import|from|return|if|elif|else|for|while|try|except|public|private|static|"
    r"void|int|const|let|var|function|#include|package|using|fn|func)\b)|([{};]\s*$)|(\w+\(.*\)\s*:?$)|"
    r"(^\s*(//|#|/\*|\*))|(\b\w+\s*(=|==|!=|\+=|->|=>)\s*\S)")
_MATH_SYMBOL = re.compile(r"\\(frac|sum|int|sqrt|alpha|beta|theta|pi|leq|geq|cdot|mathbb|begin)|[=<>^]\s*-?\d|"
                          r"\d\s*[+\-*/^]\s*\d|[\u2200-\u22ff]")
_MATH_WORDS = _Words("theorem lemma proof prove corollary equation equations integer integers prime primes",
                     "derivative integral polynomial solve solution matrix vector function functions sum",
                     "probability fraction divisible denominator numerator modulo converges limit let",
                     "therefore hence suppose real numbers inequality algebra geometry triangle angle radius")
_SCIENCE_WORDS = _Words("hypothesis experiment experiments experimental data measured measurement observed",
                        "evidence sample samples analysis results model theory cell cells protein gene genes",
                        "molecule molecules atom atoms energy temperature pressure species chemical reaction",
                        "physics biology chemistry velocity mass force quantum organism bacteria statistical",
                        "significant correlation variable variables control study studies rate enzyme")
_CONCEPT_WORDS = _Words("man woman men women boy girl child children person people dog cat horse bird tree",
                        "trees house houses car cars street road river lake mountain mountains sea beach",
                        "building buildings chair table door window room kitchen garden forest field sky",
                        "city village bridge boat ship train flower flowers face hand hands eyes hair hat",
                        "dress coat shirt bed wall floor church castle park grass stone rock cloud clouds")
_ATTRIBUTE_WORDS = _Words("red blue green yellow black white gray grey brown pink purple orange golden silver",
                          "round square circular rectangular triangular oval curved straight flat pointed",
                          "smooth rough soft shiny glossy matte fuzzy striped spotted wooden metallic bright",
                          "dark pale tall short large small tiny huge wide narrow thick thin colorful",
                          "colourful color colour shape texture transparent faded dim glowing vivid")
_RELATION_PHRASES = re.compile(
    r"\b(above|below|beneath|underneath|under|beside|behind|atop|inside|outside|between|across|along|"
    r"around|near|against|in front of|next to|on top of|to the (left|right) of|on the (left|right)|"
    r"part of|attached to|surrounded by|leaning on|facing|opposite)\b", re.I)
_WORD = re.compile(r"[a-z]+")


class LexicalBackend:
  """Keyword / regex densities with thresholds: a rough, fast, offline proxy (see module docstring).

  Scores: code = share of non-empty lines (of at least 3) that look like code (short lines with
  keywords, braces, semicolons, calls, assignments, comments); the rest are hits per 100 words
  (at least 20): math words and symbols, science words, concrete nouns, colour/shape/texture/size
  words, spatial and part-whole phrases.
  A category is assigned when its score reaches ``thresholds[category]``.
  """

  name = "lexical"
  DEFAULT_THRESHOLDS = dict(code_reasoning=0.35, math_reasoning=3.0, science_reasoning=3.0,
                            visual_concept=4.0, visual_attribute=2.5, visual_relationship=3.0)

  def __init__(self, thresholds: Mapping[str, float] | None = None):
    self.thresholds = dict(self.DEFAULT_THRESHOLDS, **dict(thresholds or {}))
    unknown = set(self.thresholds) - set(CATEGORIES)
    if unknown:
      raise ValueError(f"unknown lexical thresholds {sorted(unknown)}; categories are {CATEGORIES}")
    self._count = 0

  def scores(self, text: str) -> dict[str, float]:
    lines = [l for l in text.splitlines() if l.strip()]
    words = _WORD.findall(text.lower())
    per100 = 100.0 / max(len(words), 20)           # short texts need a few hits, not one
    code_lines = sum(len(l) <= 160 and bool(_CODE_LINE.search(l)) for l in lines)   # prose lines are long
    return dict(
        code_reasoning=code_lines / max(len(lines), 3),
        math_reasoning=(sum(w in _MATH_WORDS.words for w in words) + len(_MATH_SYMBOL.findall(text))) * per100,
        science_reasoning=sum(w in _SCIENCE_WORDS.words for w in words) * per100,
        visual_concept=sum(w in _CONCEPT_WORDS.words for w in words) * per100,
        visual_attribute=sum(w in _ATTRIBUTE_WORDS.words for w in words) * per100,
        visual_relationship=len(_RELATION_PHRASES.findall(text)) * per100,
    )

  def label(self, texts: Sequence[str]) -> list[Any]:
    out = []
    for text in texts:
      s = self.scores(text)
      out.append(sorted(c for c in CATEGORIES if s[c] >= self.thresholds[c]) or [NONE])
    self._count += len(texts)
    return out

  def stats(self) -> dict[str, int]:
    return {"segments": self._count}

  def close(self) -> None:
    pass


class _LabelCache:
  """sqlite {sha256 key: labels JSON}; only readable answers are cached. Used from one thread."""

  def __init__(self, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    self.db = sqlite3.connect(path)
    self.db.execute("CREATE TABLE IF NOT EXISTS labels (key TEXT PRIMARY KEY, labels TEXT NOT NULL)")
    self.db.commit()

  def get(self, key: str) -> list[str] | None:
    row = self.db.execute("SELECT labels FROM labels WHERE key = ?", (key,)).fetchone()
    return json.loads(row[0]) if row else None

  def put_many(self, items: Iterable[tuple[str, list[str]]]) -> None:
    self.db.executemany("INSERT OR REPLACE INTO labels VALUES (?, ?)",
                        [(k, json.dumps(v)) for k, v in items])
    self.db.commit()

  def close(self) -> None:
    self.db.close()


class EndpointError(RuntimeError):
  """A request the endpoint refused for a reason retrying will not fix (auth, bad URL or model)."""


_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


@dataclasses.dataclass
class EndpointConfig:
  """Fields of ``configs/data/label_endpoint.py`` (documented there)."""
  base_url: str = "http://localhost:8000/v1"
  model: str = "Qwen/Qwen3-32B"
  api_key_env: str = ""           # NAME of the environment variable holding the key; "" = no auth
  prompt_path: str = ""           # "" = configs/data/label_prompt.txt
  cache_path: str = ""            # sqlite file; "" = no cache
  max_concurrency: int = 16
  batch_size: int = 128
  timeout_s: float = 120.0
  max_retries: int = 6
  backoff_s: float = 1.0
  max_backoff_s: float = 60.0
  parse_retries: int = 2
  retry_temperature: float = 0.3
  temperature: float = 0.0
  max_tokens: int = 64
  enable_thinking: bool | None = False   # Qwen3 chat-template switch; None = do not send it

  @classmethod
  def from_mapping(cls, cfg: Mapping) -> "EndpointConfig":
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in dict(cfg).items() if k in names})


class EndpointBackend:
  """Labels through an OpenAI-compatible chat-completions endpoint (see module docstring)."""

  name = "endpoint"

  def __init__(self, cfg: EndpointConfig | Mapping):
    self.cfg = cfg if isinstance(cfg, EndpointConfig) else EndpointConfig.from_mapping(cfg)
    if self.cfg.api_key_env and not os.environ.get(self.cfg.api_key_env):
      raise EndpointError(f"environment variable {self.cfg.api_key_env} (api_key_env) is not set; export "
                          "it with the endpoint's API key, or set --config.api_key_env='' for no auth")
    self.prompt = epath.Path(self.cfg.prompt_path or DEFAULT_PROMPT).read_text()
    self.url = self.cfg.base_url.rstrip("/") + "/chat/completions"
    self._cache = _LabelCache(self.cfg.cache_path) if self.cfg.cache_path else None
    self._pool = concurrent.futures.ThreadPoolExecutor(max(1, self.cfg.max_concurrency), "label")
    self._lock = threading.Lock()
    self._stats = collections.Counter()

  # -- public

  def cache_key(self, text: str) -> str:
    h = hashlib.sha256()
    for part in (self.cfg.model, self.prompt, text):
      b = part.encode("utf-8", "surrogatepass")
      h.update(len(b).to_bytes(8, "little") + b)
    return h.hexdigest()

  def label(self, texts: Sequence[str]) -> list[Any]:
    keys = [self.cache_key(t) for t in texts]
    results: dict[str, Any] = {}
    todo: dict[str, str] = {}
    for key, text in zip(keys, texts):
      if key in results or key in todo:
        continue
      cached = self._cache.get(key) if self._cache else None
      if cached is not None:
        results[key] = cached
        self._bump("cache_hits")
      else:
        todo[key] = text
    futures = {self._pool.submit(self._label_one, text): key for key, text in todo.items()}
    try:
      for fut in concurrent.futures.as_completed(futures):
        results[futures[fut]] = fut.result()
    except BaseException:
      for fut in futures:
        fut.cancel()
      raise
    finally:
      if self._cache:
        self._cache.put_many((k, results[k]) for k in todo if isinstance(results.get(k), list))
    return [results[k] for k in keys]

  def stats(self) -> dict[str, int]:
    with self._lock:
      return dict(self._stats)

  def close(self) -> None:
    self._pool.shutdown(wait=True, cancel_futures=True)
    if self._cache:
      self._cache.close()

  # -- internals

  def _bump(self, name: str, n: int = 1) -> None:
    with self._lock:
      self._stats[name] += n

  def _content(self, text: str) -> str | list:
    """The user message's content for one item (a subclass may return OpenAI content parts)."""
    return self.prompt.replace("{text}", text) if "{text}" in self.prompt else f"{self.prompt}\n\n{text}"

  def _parse(self, answer: str) -> list[str] | None:
    return parse_answer(answer)

  def _label_one(self, text: str) -> Any:
    content = self._content(text)
    for attempt in range(self.cfg.parse_retries + 1):
      temperature = self.cfg.temperature if attempt == 0 else self.cfg.retry_temperature
      answer = self._request(content, temperature)
      if answer is FAILED:
        return FAILED
      labels = self._parse(answer)
      if labels is not None:
        return labels
      self._bump("unparseable_answers")
    return UNPARSEABLE

  def _request(self, content: str | list, temperature: float) -> str | None:
    body = {"model": self.cfg.model, "messages": [{"role": "user", "content": content}],
            "temperature": temperature, "max_tokens": self.cfg.max_tokens}
    if self.cfg.enable_thinking is not None:
      body["chat_template_kwargs"] = {"enable_thinking": bool(self.cfg.enable_thinking)}
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if self.cfg.api_key_env:
      headers["Authorization"] = "Bearer " + os.environ.get(self.cfg.api_key_env, "")
    for attempt in range(self.cfg.max_retries + 1):
      delay = None
      self._bump("requests")
      try:
        req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:
          reply = json.loads(resp.read().decode("utf-8"))
        message = reply["choices"][0]["message"]
        return message.get("content") or ""
      except urllib.error.HTTPError as e:
        if e.code not in _RETRY_STATUS:
          detail = e.read(300).decode("utf-8", "replace") if e.fp else ""
          raise EndpointError(f"{self.url} answered HTTP {e.code} ({e.reason}); check base_url, model and "
                              f"the key in ${self.cfg.api_key_env or '(none)'}: {detail}") from None
        self._bump(f"http_{e.code}")
        retry_after = e.headers.get("Retry-After") if e.headers else None
        if retry_after and retry_after.replace(".", "", 1).isdigit():
          delay = min(float(retry_after), self.cfg.max_backoff_s)
      except (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout,
              TimeoutError) as e:
        self._bump("connection_errors")
        log.debug("label request failed: %s", type(e).__name__)
      except (ValueError, KeyError, IndexError, TypeError):
        self._bump("bad_responses")            # not a chat-completions JSON body: treat as transient
      if attempt == self.cfg.max_retries:
        break
      self._bump("retries")
      if delay is None:
        delay = min(self.cfg.max_backoff_s, self.cfg.backoff_s * 2 ** attempt) * random.uniform(0.5, 1.0)
      time.sleep(delay)
    self._bump("failed")
    return FAILED


def make_backend(cfg: Mapping | None) -> Backend:
  """``{"backend": "endpoint", ...EndpointConfig fields}`` or ``{"backend": "lexical", "thresholds": {}}``."""
  cfg = dict(cfg or {})
  kind = cfg.pop("backend", "endpoint")
  if kind == "endpoint":
    return EndpointBackend(cfg)
  if kind == "lexical":
    return LexicalBackend(cfg.get("thresholds"))
  raise ValueError(f"unknown label backend {kind!r}: use 'endpoint' or 'lexical'")


