"""Segment labels: segmenting, answer parsing, the endpoint backend against a real local HTTP server
(auth from the environment, retries on 500/429, re-asks on garbage, cache, resume), the lexical
baseline, and the Table-4 report."""

import collections
import http.server
import importlib.util
import json
import os
import re
import threading

import numpy as np
import pytest

from visprior_jax.data import label_backends as B
from visprior_jax.data import labels as L

KEY_ENV = "VISPRIOR_TEST_LABEL_KEY"
KEY = "sk-test-7f3a9c-never-on-disk"
SEG = 32


class ByteTokenizer:
  def decode(self, ids):
    return bytes(int(i) for i in ids).decode("utf-8", "replace")


def _chunk(text):
  assert len(text) <= SEG
  return text.ljust(SEG)


def write_shard(path, docs):
  from array_record.python.array_record_module import ArrayRecordWriter
  w = ArrayRecordWriter(str(path), "group_size:1")
  for doc in docs:   # str: a document of byte tokens; bytes: a raw (possibly corrupt) record
    w.write(doc if isinstance(doc, bytes) else np.frombuffer(doc.encode(), np.uint8).astype("<u4").tobytes())
  w.close()


def make_prepared(root):
  src = root / "web"
  src.mkdir(parents=True)
  write_shard(src / "shard-00000.array_record", [
      _chunk("s0 code_reasoning") + _chunk("s1 math_reasoning visual_concept"),
      "s2 plain",
      "s3 FLAKY500 science_reasoning",
      "",                                                   # empty document
  ])
  write_shard(src / "shard-00001.array_record", [
      "s4 GARBAGE",
      _chunk("s5 GARBAGE_ONCE visual_attribute") + _chunk("s6 FLAKY429 visual_relationship") + "s7",
      b"\x01\x02\x03",                                      # not a whole uint32 array
  ])
  return src


class FakeServer:
  """A chat-completions endpoint on 127.0.0.1: labels = category names written in the segment."""

  def __init__(self):
    self.lock = threading.Lock()
    self.requests = collections.Counter()   # segment id -> requests answered (any status)
    self.auth_failures = 0
    self.bodies = []
    server = self

    class Handler(http.server.BaseHTTPRequestHandler):
      def log_message(self, *args):
        pass

      def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/chat/completions":
          return self._send(404, {"error": "not found"})
        if self.headers.get("Authorization") != f"Bearer {KEY}":
          with server.lock:
            server.auth_failures += 1
          return self._send(401, {"error": "bad key"})
        content = body["messages"][0]["content"]
        segment = content.split("<<<\n", 1)[1].rsplit("\n>>>", 1)[0]
        sid = re.search(r"s\d+", segment).group(0)
        with server.lock:
          server.requests[sid] += 1
          n = server.requests[sid]
          server.bodies.append(body)
        if "FLAKY500" in segment and n <= 2:
          return self._send(500, {"error": "overloaded"})
        if "FLAKY429" in segment and n <= 1:
          return self._send(429, {"error": "slow down"}, {"Retry-After": "0"})
        if "GARBAGE" in segment and (n <= 1 or "GARBAGE_ONCE" not in segment):
          return self._answer("Sure! This passage is lovely and I enjoyed it.")
        cats = [c for c in L.CATEGORIES if c in segment]
        i = int(sid[1:]) % 3
        if not cats:
          answer = " None. "
        elif i == 0:
          answer = json.dumps(cats)
        elif i == 1:
          answer = "\n".join("- " + c.replace("_", " ").title() for c in cats)
        else:
          answer = "<think>\n</think>\nAnswer: " + ", ".join(c.replace("_", " ") for c in cats)
        return self._answer(answer)

      def _answer(self, text):
        self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})

      def _send(self, status, payload, headers=None):
        data = json.dumps(payload).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
          self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    self.httpd.daemon_threads = True
    self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
    self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    self.thread.start()
    self.watchdog = threading.Timer(120, self.httpd.shutdown)   # stops itself even if a test hangs
    self.watchdog.daemon = True
    self.watchdog.start()

  def total(self):
    with self.lock:
      return sum(self.requests.values())

  def stop(self):
    self.watchdog.cancel()
    self.httpd.shutdown()
    self.httpd.server_close()
    self.thread.join(timeout=5)


@pytest.fixture
def server():
  s = FakeServer()
  yield s
  s.stop()


def endpoint_cfg(server, tmp_path, **kw):
  cfg = dict(backend="endpoint", base_url=server.url, model="test-model", api_key_env=KEY_ENV,
             cache_path=str(tmp_path / "cache.sqlite"), max_concurrency=4, batch_size=2, timeout_s=5.0,
             max_retries=3, backoff_s=0.001, max_backoff_s=0.01, parse_retries=2)
  cfg.update(kw)
  return cfg


def rows_of(src):
  return L.read_label_rows(src / L.LABELS_FILE)


def test_segment_bounds():
  assert L.segment_bounds(0, 4) == []
  assert L.segment_bounds(3, 4) == [(0, 3)]
  assert L.segment_bounds(8, 4) == [(0, 4), (4, 8)]
  assert L.segment_bounds(2500) == [(0, 1024), (1024, 2048), (2048, 2500)]
  with pytest.raises(ValueError):
    L.segment_bounds(5, 0)


@pytest.mark.parametrize("answer, expected", [
    ('["math_reasoning", "science_reasoning"]', ["math_reasoning", "science_reasoning"]),
    ("Visual Concept, visual-attribute", ["visual_attribute", "visual_concept"]),
    ("- code reasoning\n* Math Reasoning\n", ["code_reasoning", "math_reasoning"]),
    ("1. visual relationship\n2) visual concepts", ["visual_concept", "visual_relationship"]),
    ("  None. ", ["none"]),
    ("[]", ["none"]),
    ("Answer: science", ["science_reasoning"]),
    ("<think>hmm, shapes</think>\n[\"visual_attribute\"]", ["visual_attribute"]),
    ("```json\n[\"code_reasoning\"]\n```", ["code_reasoning"]),
    ("visual_concept, None", ["visual_concept"]),
    ("This text is about cooking.", None),
    ("", None),
    ("<think>still thinking about the", None),
    ("visual concept, astrology", None),
])
def test_parse_answer(answer, expected):
  assert B.parse_answer(answer) == expected


def test_endpoint_retries_cache_resume(tmp_path, server, monkeypatch, caplog, capsys):
  caplog.set_level("DEBUG")
  monkeypatch.setenv(KEY_ENV, KEY)
  src = make_prepared(tmp_path / "prepared")
  tok = ByteTokenizer()

  # 1) a run stopped after 3 segments, then a half-written row (as from a killed process).
  backend = B.make_backend(endpoint_cfg(server, tmp_path))
  s1 = L.label_source(src, tok, backend, segment_tokens=SEG, limit=3, progress=False)
  backend.close()
  assert (s1.labelled, s1.unparseable, s1.failed) == (3, 0, 0)
  assert set(rows_of(src)) == {("shard-00000.array_record", 0, 0), ("shard-00000.array_record", 0, 1),
                               ("shard-00000.array_record", 1, 0)}
  with open(src / L.LABELS_FILE, "a") as f:
    f.write('{"shard": "shard-000')
  assert server.requests == {"s0": 1, "s1": 1, "s2": 1}

  # 2) the resumed run labels only the rest; 500s, 429 and one garbage answer are retried.
  backend = B.make_backend(endpoint_cfg(server, tmp_path))
  s2 = L.label_source(src, tok, backend, segment_tokens=SEG, progress=True)
  backend.close()
  assert server.requests == {"s0": 1, "s1": 1, "s2": 1, "s3": 3, "s4": 3, "s5": 2, "s6": 2, "s7": 1}
  assert server.auth_failures == 0
  assert (s2.already_labelled, s2.labelled, s2.unparseable, s2.failed) == (3, 4, 1, 0)
  assert (s2.documents, s2.segments, s2.empty_documents, s2.bad_records, s2.corrupt_rows) == (7, 8, 1, 1, 1)
  assert s2.per_label == {"science_reasoning": 1, "visual_attribute": 1, "visual_relationship": 1, "none": 1}
  assert s2.backend["retries"] == 3 and s2.backend["http_500"] == 2 and s2.backend["http_429"] == 1
  assert s2.backend["unparseable_answers"] == 4   # s5 once, s4 three times
  assert all(b["temperature"] == 0.0 for b in server.bodies[:3])
  assert all(b["model"] == "test-model" and b["chat_template_kwargs"] == {"enable_thinking": False}
             for b in server.bodies)

  rows = rows_of(src)
  assert len(rows) == 8
  by_sid = {k: r for k, r in rows.items()}
  assert by_sid[("shard-00000.array_record", 0, 1)]["labels"] == ["math_reasoning", "visual_concept"]
  assert by_sid[("shard-00000.array_record", 0, 1)]["start"] == SEG
  assert by_sid[("shard-00000.array_record", 1, 0)]["labels"] == ["none"]
  assert by_sid[("shard-00001.array_record", 0, 0)] == {"shard": "shard-00001.array_record", "record": 0,
                                                        "segment": 0, "start": 0, "end": 10,
                                                        "unparseable": True}
  assert by_sid[("shard-00001.array_record", 1, 2)]["end"] == 2 * SEG + 2

  # 3) nothing left: no requests.
  before = server.total()
  backend = B.make_backend(endpoint_cfg(server, tmp_path))
  s3 = L.label_source(src, tok, backend, segment_tokens=SEG, progress=False)
  backend.close()
  assert server.total() == before and s3.already_labelled == 8 and s3.labelled == 0

  # 4) labels lost, cache kept: only the uncached (unparseable) segment is asked again.
  os.remove(src / L.LABELS_FILE)
  backend = B.make_backend(endpoint_cfg(server, tmp_path))
  s4 = L.label_source(src, tok, backend, segment_tokens=SEG, progress=False)
  backend.close()
  assert server.total() == before + 3 and s4.backend["cache_hits"] == 7
  assert {k: r.get("labels") for k, r in rows_of(src).items()} == {k: r.get("labels") for k, r in rows.items()}

  # 5) retry_unparseable re-asks just that one; a different segment size is refused clearly.
  backend = B.make_backend(endpoint_cfg(server, tmp_path))
  s5 = L.label_source(src, tok, backend, segment_tokens=SEG, progress=False, retry_unparseable=True)
  assert (s5.labelled, s5.unparseable, server.total()) == (0, 1, before + 6)
  with pytest.raises(ValueError, match="segment_tokens"):
    L.label_source(src, tok, backend, segment_tokens=16, progress=False)
  backend.close()

  # The key never reaches disk, logs or the console.
  for dirpath, _, files in os.walk(tmp_path):
    for name in files:
      with open(os.path.join(dirpath, name), "rb") as f:
        assert KEY.encode() not in f.read(), name
  out = capsys.readouterr()
  assert KEY not in out.out + out.err + caplog.text


def test_endpoint_auth_errors(tmp_path, server, monkeypatch):
  src = make_prepared(tmp_path / "prepared")
  monkeypatch.delenv(KEY_ENV, raising=False)
  with pytest.raises(B.EndpointError, match=KEY_ENV):
    B.make_backend(endpoint_cfg(server, tmp_path))
  monkeypatch.setenv(KEY_ENV, "wrong-key-123")
  backend = B.make_backend(endpoint_cfg(server, tmp_path))
  with pytest.raises(B.EndpointError, match="401") as err:
    L.label_source(src, ByteTokenizer(), backend, segment_tokens=SEG, progress=False)
  backend.close()
  assert "wrong-key-123" not in str(err.value) and server.auth_failures >= 1
  assert not rows_of(src)


def test_endpoint_unreachable_counts_failures(tmp_path, monkeypatch):
  import socket
  s = socket.socket()
  s.bind(("127.0.0.1", 0))
  port = s.getsockname()[1]
  s.close()                                                 # nothing listens there now
  src = make_prepared(tmp_path / "prepared")
  backend = B.EndpointBackend(dict(base_url=f"http://127.0.0.1:{port}/v1", cache_path="", max_retries=1,
                                   backoff_s=0.001, timeout_s=2.0, batch_size=4))
  stats = L.label_source(src, ByteTokenizer(), backend, segment_tokens=SEG, limit=2, progress=False)
  backend.close()
  assert (stats.failed, stats.labelled) == (2, 0) and stats.backend["connection_errors"] == 4
  assert not rows_of(src)                                   # failures are retried by the next run


def test_lexical_baseline():
  lex = B.LexicalBackend()
  code = ("def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return a\n\n"
          "for i in range(10):\n    print(gcd(i, 6))\n")
  math = ("Theorem. Let n be a positive integer. Then the sum 1 + 2 + ... + n = n(n+1)/2. "
          "Proof. Suppose the equation holds for n; adding n + 1 to both sides, we prove it for n + 1. "
          "Hence by induction the formula holds for every integer.")
  science = ("We tested the hypothesis that temperature affects the reaction rate of the enzyme. "
             "In each experiment the samples were measured at three temperatures, and the data "
             "showed a significant correlation between energy input and the observed rate.")
  scene = ("A tall man in a red coat stood beside the old stone bridge. Behind him, green trees "
           "lined the river, and a small wooden boat was tied next to the bank, under a grey sky. "
           "A white dog sat on top of the low wall in front of the church.")
  plain = "The committee will reconvene after the holidays to discuss the budget and its implications."
  out = lex.label([code, math, science, scene, plain])
  assert out[0] == ["code_reasoning"]
  assert out[1] == ["math_reasoning"]
  assert out[2] == ["science_reasoning"]
  assert out[3] == ["visual_attribute", "visual_concept", "visual_relationship"]
  assert out[4] == ["none"]
  assert B.LexicalBackend({"visual_concept": 0.0}).label([plain])[0] == ["visual_concept"]
  with pytest.raises(ValueError, match="unknown"):
    B.LexicalBackend({"colour": 1.0})


def _write_rows(path, rows):
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "w") as f:
    for r in rows:
      f.write(json.dumps(r) + "\n")


def test_label_report_numbers(tmp_path, capsys):
  row = lambda rec, labels, end=1024: dict(shard="shard-00000.array_record", record=rec, segment=0,
                                           start=0, end=end, labels=labels)
  _write_rows(tmp_path / "code" / L.LABELS_FILE, [
      row(0, ["code_reasoning"]), row(1, ["code_reasoning", "math_reasoning"]),
      row(2, ["none"], end=512), row(3, ["visual_concept", "visual_attribute"]),
      dict(shard="shard-00000.array_record", record=4, segment=0, start=0, end=1024, unparseable=True),
      row(1, ["code_reasoning", "visual_relationship"]),          # a later row for record 1 wins
  ])
  _write_rows(tmp_path / "literature" / L.LABELS_FILE, [row(0, ["visual_concept"]), row(1, ["none"])])
  rates = L.label_rates(tmp_path)
  assert list(rates) == ["code", "literature"]
  assert rates["code"]["code_reasoning"] == 0.5 and rates["code"]["math_reasoning"] == 0.0
  assert rates["code"]["reasoning"] == 0.5 and rates["code"]["visual"] == 0.5
  assert rates["code"]["visual_relationship"] == 0.25 and rates["code"]["none"] == 0.25
  assert rates["literature"]["visual_concept"] == 0.5 and rates["literature"]["visual"] == 0.5
  tok = L.label_rates(tmp_path, ["code"], weight="tokens")["code"]
  assert tok["none"] == pytest.approx(512 / 3584) and tok["code_reasoning"] == pytest.approx(2048 / 3584)
  report = L.label_report_command(tmp_path, output=str(tmp_path / "report.json"))
  printed = capsys.readouterr().out
  lines = printed.splitlines()
  assert lines[0].split() == ["source", "code", "math", "science", "reas.comb", "v.concept", "v.attrib",
                              "v.relation", "vis.comb", "segments", "unparse."]
  assert lines[2].split() == ["code", "50.0", "0.0", "0.0", "50.0", "25.0", "25.0", "25.0", "50.0", "4", "1"]
  assert lines[3].split()[0] == "literature" and lines[3].split()[-2:] == ["2", "0"]
  assert json.loads((tmp_path / "report.json").read_text())["segments"] == {"code": 4, "literature": 2}
  assert report.unparseable == {"code": 1, "literature": 0}
  with pytest.raises(FileNotFoundError, match="visprior data label"):
    L.label_rates(tmp_path, ["math"])


def test_label_command_lexical_and_config(tmp_path, repo_root, capsys):
  spec = importlib.util.spec_from_file_location("label_endpoint", os.path.join(repo_root, "configs", "data",
                                                                              "label_endpoint.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  ep = mod.get_config()
  assert ep.backend == "endpoint" and ep.api_key_env == "" and ep.segment_tokens == 1024 and ep.temperature == 0
  assert set(ep.to_dict()) - {"backend", "segment_tokens"} <= {f.name for f in B.dataclasses.fields(B.EndpointConfig)}
  prompt = B.DEFAULT_PROMPT.read_text()
  assert "{text}" in prompt and all(c in prompt for c in L.CATEGORIES)
  cfg = mod.get_config("lexical")
  cfg.segment_tokens = SEG
  make_prepared(tmp_path / "prepared")
  stats = L.label_command(tmp_path / "prepared", None, cfg, ByteTokenizer(), progress=False)
  assert [s.source for s in stats] == ["web"] and stats[0].labelled == 8
  assert "web: 8 labelled" in capsys.readouterr().out
  report = L.label_report_command(tmp_path / "prepared")
  assert report.segments == {"web": 8}
