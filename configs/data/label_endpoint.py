"""Segment-labelling backend config: ``--config=configs/data/label_endpoint.py[:lexical]``.

The paper labels 1024-token segments with Qwen3-32B (PAPER.md 2.2). Serve it with any
OpenAI-compatible server on a GPU machine, e.g. vLLM (2 x 80 GB or 1 x H200 in bf16):

  vllm serve Qwen/Qwen3-32B --port 8000 --tensor-parallel-size 2 --max-model-len 8192
  # or: python -m sglang.launch_server --model-path Qwen/Qwen3-32B --port 30000 --tp 2

then label every prepared source and print Table 4 (% of segments per label, per source):

  visprior data label --prepared_dir=data/prepared --config=configs/data/label_endpoint.py \\
      --config.base_url=http://gpu-host:8000/v1
  visprior data label-report --prepared_dir=data/prepared

Rows are appended to ``<prepared_dir>/<source>/labels.jsonl`` as batches finish; rerunning the
command resumes where it stopped, and the answer cache means nothing is asked twice. If the server
needs a key, put it in an environment variable and name that variable (never the key) here:
``export LABEL_API_KEY=...; ... --config.api_key_env=LABEL_API_KEY``.

``:lexical`` selects the keyword baseline instead: offline and fast, but only a rough proxy for the
LLM's judgement (see visprior_jax/data/labels.py); fine for smoke tests, not for the paper's numbers.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.segment_tokens = 1024           # tokens per segment (the paper's unit); the last one may be shorter
  if arg == "lexical":
    c.backend = "lexical"
    c.thresholds = ml_collections.ConfigDict()   # per-category overrides of LexicalBackend.DEFAULT_THRESHOLDS
    return c
  if arg not in (None, "", "endpoint"):
    raise ValueError(f"unknown label config {arg!r}: use 'endpoint' (default) or 'lexical'")
  c.backend = "endpoint"
  c.base_url = "http://localhost:8000/v1"   # POST {base_url}/chat/completions
  c.model = "Qwen/Qwen3-32B"                # the model name the server serves (also part of the cache key)
  c.api_key_env = ""                        # NAME of the env var holding the API key; "" = no Authorization
  c.prompt_path = ""                        # "" = configs/data/label_prompt.txt; {text} marks the segment
  c.cache_path = ""                         # sqlite answer cache; "" = <prepared_dir>/label_cache.sqlite
  c.max_concurrency = 32                    # requests in flight
  c.batch_size = 256                        # segments per batch; rows are appended after each batch
  c.timeout_s = 120.0                       # per request
  c.max_retries = 6                         # on connection errors, 408/429/5xx (Retry-After honoured)
  c.backoff_s = 1.0                         # first backoff; doubles per retry, x uniform(0.5, 1) jitter
  c.max_backoff_s = 60.0
  c.parse_retries = 2                       # re-asks when the answer cannot be parsed, then "unparseable"
  c.retry_temperature = 0.3                 # temperature of those re-asks (the first ask uses `temperature`)
  c.temperature = 0.0
  c.max_tokens = 64                         # the answer is one short line
  c.enable_thinking = False                 # Qwen3 chat-template switch (sent as chat_template_kwargs)
  return c
