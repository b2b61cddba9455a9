"""Reasoning-quality judge (visprior_jax.eval.judge) against a real local HTTP server: verdict
parsing, re-asks on garbage, unjudged accounting, the request body, the cache and the config."""

import collections
import http.server
import importlib.util
import json
import math
import os
import re
import threading

import pytest

from visprior_jax.eval import judge as J

KEY_ENV = "VISPRIOR_TEST_JUDGE_KEY"
KEY = "sk-judge-test-0b1d"


class JudgeServer:
  """POST /v1/chat/completions: COHERENT when the graded response contains "therefore".

  Markers in the response: GARBAGE_ONCE (garbage, then a verdict), ALWAYS_GARBAGE (never a
  verdict), FAIL500 (always HTTP 500). Answers rotate through several formats per response.
  """

  def __init__(self):
    self.lock = threading.Lock()
    self.requests = collections.Counter()     # graded response -> requests answered
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
          return self._send(401, {"error": "bad key"})
        content = body["messages"][0]["content"]
        response = content.split("Response to grade:\n<<<\n", 1)[1].rsplit("\n>>>", 1)[0]
        with server.lock:
          server.requests[response] += 1
          n = server.requests[response]
          server.bodies.append(body)
        if "FAIL500" in response:
          return self._send(500, {"error": "down"})
        if "ALWAYS_GARBAGE" in response or ("GARBAGE_ONCE" in response and n == 1):
          return self._answer("I think the answer looks fine overall.")
        coherent = "therefore" in response.lower()
        word = "COHERENT" if coherent else "INCOHERENT"
        style = len(response) % 3
        if style == 0:
          answer = f"The steps follow.\nVerdict: {word}"
        elif style == 1:
          answer = f"<think>\n</think>\nShort reason.\n\n**Verdict:** **{word.lower()}**"
        else:
          answer = f"Reasoning checked.\nVERDICT = {'NOT COHERENT' if not coherent else 'Coherent'}."
        return self._answer(answer)

      def _answer(self, text):
        self._send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]})

      def _send(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    self.httpd.daemon_threads = True
    self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
    self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    self.thread.start()
    self.watchdog = threading.Timer(120, self.httpd.shutdown)
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
def server(monkeypatch):
  monkeypatch.setenv(KEY_ENV, KEY)
  s = JudgeServer()
  yield s
  s.stop()


def judge_cfg(server, tmp_path, **kw):
  cfg = dict(base_url=server.url, model="judge-model", api_key_env=KEY_ENV,
             cache_path=str(tmp_path / "judge.sqlite"), max_concurrency=4, timeout_s=5.0,
             max_retries=2, backoff_s=0.001, max_backoff_s=0.01, parse_retries=2)
  cfg.update(kw)
  return cfg


Q = "Which shape has three sides?\nA. square\nB. triangle\nC. circle\n" + J.EXPLAIN_SUFFIX
TRACES = [
    dict(question=Q, response="A triangle has three sides; therefore the answer is B.", answer="B"),   # 10 words
    dict(question=Q, response="B", answer="B"),                                                         # 1
    dict(question=Q, response="Squares have four sides, circles none. Therefore B. GARBAGE_ONCE",
         answer="B"),                                                                                   # 9
    dict(question=Q, response="hmm ALWAYS_GARBAGE", answer="B"),                                       # 2
    dict(question=Q, response="It is round   so the\nanswer is C.", answer="B"),                       # 8
    dict(question=Q, response="Three sides, therefore B. FAIL500", answer="B"),                        # 5
]


@pytest.mark.parametrize("answer, expected", [
    ("Verdict: COHERENT", "coherent"),
    ("verdict: incoherent", "incoherent"),
    ("The argument holds.\n**Verdict:** **COHERENT**", "coherent"),
    ("**Verdict: INCOHERENT**\n", "incoherent"),
    ("Reasons...\nVerdict = Not coherent.", "incoherent"),
    ("Final verdict:\nCOHERENT", "coherent"),
    ("<think>it is fine</think>\nVerdict: `COHERENT`", "coherent"),
    ("COHERENT", "coherent"),
    ("  Incoherent. ", "incoherent"),
    ("Verdict: COHERENT\nActually, on reflection:\nVerdict: INCOHERENT", "incoherent"),   # the last one wins
    ("Reply with Verdict: COHERENT or Verdict: INCOHERENT", None),
    ("The reasoning is coherent and reasonable.", None),
    ("<think>the steps are", None),
    ("", None),
    (None, None),
])
def test_parse_verdict(answer, expected):
  assert J.parse_verdict(answer) == expected


def test_explain_prompt():
  assert J.EXPLAIN_SUFFIX == "Answer the question with a detailed thinking process and explanations."
  q = "What is shown?\nA. cat\nB. dog"
  assert J.explain_prompt(q) == q + "\n" + J.EXPLAIN_SUFFIX
  direct = q + "\nAnswer with the option's letter from the given choices directly."
  assert J.explain_prompt(direct) == q + "\n" + J.EXPLAIN_SUFFIX
  assert J.explain_prompt(J.explain_prompt(q)) == J.explain_prompt(q)
  assert J.explain_prompt("") == J.EXPLAIN_SUFFIX


def test_reasoning_quality_numbers_reasks_and_cache(tmp_path, server):
  backend = J.make_judge(judge_cfg(server, tmp_path))
  report = J.reasoning_quality(TRACES, backend)
  stats = backend.stats()
  backend.close()
  # Judged: 0 coherent, 1 incoherent, 2 coherent (after one re-ask), 4 incoherent -> 2 / 4.
  assert report["verdicts"] == ["coherent", "incoherent", "coherent", "unparseable", "incoherent", "failed"]
  assert report["logical_soundness"] == 50.0
  assert (report["n"], report["n_unjudged"], report["n_unparseable"], report["n_failed"]) == (4, 2, 1, 1)
  assert report["n_traces"] == 6
  assert report["reasoning_depth"] == pytest.approx((10 + 1 + 9 + 2 + 8 + 5) / 6)
  by_resp = {t["response"]: server.requests[t["response"]] for t in TRACES}
  assert list(by_resp.values()) == [1, 1, 2, 3, 1, 3]   # re-asks: 1 for GARBAGE_ONCE, 2 for ALWAYS_GARBAGE
  assert stats["unparseable_answers"] == 4 and stats["http_500"] == 3 and stats["failed"] == 1

  # The request body: model, greedy first ask, the rubric, the question and the trace; no ground truth.
  rubric = (J.DEFAULT_PROMPT).read_text().split("Question:")[0].strip()
  first = [b for b in server.bodies if "A triangle has three sides" in b["messages"][0]["content"]]
  assert len(first) == 1
  body = first[0]
  content = body["messages"][0]["content"]
  assert body["model"] == "judge-model" and body["temperature"] == 0.0 and body["max_tokens"] == 512
  assert body["chat_template_kwargs"] == {"enable_thinking": False}
  assert rubric in content and "Verdict: COHERENT" in content and "Verdict: INCOHERENT" in content
  assert Q.strip() in content and TRACES[0]["response"] in content
  assert "Reference answer" not in content and "{reference}" not in content
  reasks = [b for b in server.bodies if "GARBAGE_ONCE" in b["messages"][0]["content"]]
  assert sorted(b["temperature"] for b in reasks) == [0.0, 0.3]

  # Second run, same cache: judged traces cost no request; the unjudged ones are asked again.
  before = dict(server.requests)
  backend = J.make_judge(judge_cfg(server, tmp_path))
  again = J.reasoning_quality(TRACES, backend)
  hits = backend.stats()["cache_hits"]
  backend.close()
  assert again["verdicts"] == report["verdicts"] and hits == 4
  grew = {r for r in server.requests if server.requests[r] != before.get(r)}
  assert grew == {"hmm ALWAYS_GARBAGE", "Three sides, therefore B. FAIL500"}
  judged_only = [t for t, v in zip(TRACES, report["verdicts"]) if v in ("coherent", "incoherent")]
  total = server.total()
  backend = J.make_judge(judge_cfg(server, tmp_path))
  third = J.reasoning_quality(judged_only, backend)
  backend.close()
  assert server.total() == total                           # no HTTP request at all
  assert third["logical_soundness"] == 50.0 and third["n_unjudged"] == 0


def test_include_answer_and_options(tmp_path, server):
  trace = dict(question="Which is red?", options=["sky", "apple"], response="Apples are red, therefore B.",
               answer="B")
  backend = J.make_judge(judge_cfg(server, tmp_path, include_answer=True))
  assert J.reasoning_quality([trace], backend)["verdicts"] == ["coherent"]
  backend.close()
  content = server.bodies[-1]["messages"][0]["content"]
  assert "Which is red?\nA. sky\nB. apple" in content
  assert re.search(r"Reference answer.*\nB\n", content)
  # Without the answer the judge sees something else: a separate cache entry, a new request.
  backend = J.make_judge(judge_cfg(server, tmp_path))
  J.reasoning_quality([trace], backend)
  backend.close()
  assert server.requests[trace["response"]] == 2
  assert "Reference answer" not in server.bodies[-1]["messages"][0]["content"]
  with pytest.raises(ValueError, match="answer"):
    J.make_judge(judge_cfg(server, tmp_path, include_answer=True)).item(dict(question="q", response="r"))


def test_placeholders_in_text_are_not_substituted(tmp_path, server):
  backend = J.make_judge(judge_cfg(server, tmp_path, cache_path=""))
  item = J.JudgeItem("Q mentions {response} literally", "R mentions {question}; therefore X.")
  content = backend._content(item)
  backend.close()
  assert "Q mentions {response} literally" in content and "R mentions {question}; therefore X." in content


def test_empty_and_config(tmp_path, server, repo_root):
  backend = J.make_judge(judge_cfg(server, tmp_path, cache_path=""))
  report = J.reasoning_quality([], backend)
  backend.close()
  assert math.isnan(report["logical_soundness"]) and math.isnan(report["reasoning_depth"])
  assert report["n"] == 0 and report["verdicts"] == []

  spec = importlib.util.spec_from_file_location("judge_endpoint",
                                                os.path.join(repo_root, "configs", "eval", "judge_endpoint.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config()
  assert c.model == "Qwen/Qwen3-32B" and c.temperature == 0.0 and c.include_answer is False
  c.base_url, c.api_key_env, c.cache_path = server.url, KEY_ENV, str(tmp_path / "c.sqlite")
  c.backoff_s, c.max_backoff_s = 0.001, 0.01
  backend = J.make_judge(c)
  assert backend.cfg.prompt_path == str(J.DEFAULT_PROMPT)
  got = J.reasoning_quality(TRACES[:2], backend)
  backend.close()
  assert got["verdicts"] == ["coherent", "incoherent"]
  with pytest.raises(ValueError, match="unknown judge config"):
    J.make_judge({"base_url": server.url, "modle": "typo"})
  bad = tmp_path / "bad_prompt.txt"
  bad.write_text("no placeholders here")
  with pytest.raises(ValueError, match="placeholders"):
    J.make_judge({"prompt_path": str(bad)})
