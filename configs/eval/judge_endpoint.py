"""Reasoning-quality judge config (PAPER.md 4.4): ``--config=configs/eval/judge_endpoint.py``.

The paper scores explained answers on the Knowledge and Vision-Centric VQA benchmarks with a Qwen3
judge (size not stated; Qwen3-32B here). Serve it with any OpenAI-compatible server, e.g.

  vllm serve Qwen/Qwen3-32B --port 8000 --tensor-parallel-size 2 --max-model-len 8192

and pass the config to ``visprior_jax.eval.judge.make_judge``:

  judge = make_judge(get_config())          # or a dict with base_url=... overrides
  report = reasoning_quality(traces, judge)  # {"logical_soundness": %, "reasoning_depth": words, ...}

If the server needs a key, put it in an environment variable and name that variable (never the key)
in ``api_key_env``. Transport, retries and the answer cache are the segment labeller's
(``configs/data/label_endpoint.py`` documents the shared fields).
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  c = ml_collections.ConfigDict()
  c.base_url = "http://localhost:8000/v1"   # POST {base_url}/chat/completions
  c.model = "Qwen/Qwen3-32B"                # the served model name (also part of the cache key)
  c.api_key_env = ""                        # NAME of the env var holding the API key; "" = no Authorization
  c.prompt_path = ""                        # "" = configs/eval/judge_prompt.txt (rubric, verdict format)
  c.cache_path = ""                         # sqlite answer cache; "" = no cache
  c.max_concurrency = 16                    # requests in flight
  c.timeout_s = 300.0                       # per request
  c.max_retries = 6                         # on connection errors, 408/429/5xx (Retry-After honoured)
  c.backoff_s = 1.0                         # first backoff; doubles per retry, x uniform(0.5, 1) jitter
  c.max_backoff_s = 60.0
  c.parse_retries = 2                       # re-asks when no verdict can be read, then "unparseable"
  c.retry_temperature = 0.3                 # temperature of those re-asks
  c.temperature = 0.0                       # greedy judging
  c.max_tokens = 512                        # a short justification, then "Verdict: COHERENT|INCOHERENT"
  c.enable_thinking = False                 # Qwen3 chat-template switch (sent as chat_template_kwargs)
  c.include_answer = False                  # show the ground-truth answer to the judge as a reference
  return c
