"""Zero-shot language evaluation (arXiv §2.2): log-likelihoods, multiple choice, perplexity, LAMBADA.

The paper follows the Mamba/GLA lm-eval-harness suite: WikiText and LAMBADA perplexity (``ppl`` =
their mean), LAMBADA accuracy, and 8 zero-shot multiple-choice tasks (``t-acc`` = their unweighted
mean). This module gives the scoring primitives, computed the way lm-eval-harness computes them:

  loglikelihoods(cfg, params, tok, [(context, continuation), ...], batch_size, max_len)
      -> [(sum of continuation token logprobs, is_greedy), ...]
  multiple_choice(cfg, params, tok, [{"context", "choices", "gold"}, ...]) -> {"acc", "acc_norm", ...}
  perplexity(cfg, params, tok, texts, max_len, stride) -> {"token_perplexity", "word_perplexity", ...}
  lambada(cfg, params, tok, texts) -> {"acc", "perplexity", ...}

Tokenization choices (lm-eval-harness ``_encode_pair``): trailing spaces of the context move to the
continuation; the continuation's ids are ``encode(context + continuation)[len(encode(context)):]``,
so the continuation is tokenized *in context* (a BPE merge across the boundary goes to the
continuation). With ``add_bos=True`` (default; our models are trained with bos) the bos id is
prepended to every context; an empty context always gets bos (else eos) as its prefix, as the
harness does. Inputs longer than ``max_len`` keep their last ``max_len + 1`` tokens (left
truncation, as the harness). Rows are right-padded (the model is causal, so padding after a row
never changes its logits), sorted by length and batched to a fixed ``batch_size`` with widths
rounded up to a power of two, so only a few shapes are compiled.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from visprior_jax.models import functional as llama_fn


@functools.partial(jax.jit, static_argnums=0)
def _score_batch(cfg, params, inputs, targets, mask):
  """Sum of target logprobs over ``mask`` and whether every masked target is the argmax, per row."""
  logits = llama_fn.apply(cfg, params, inputs).astype(jnp.float32)
  logp = jax.nn.log_softmax(logits, axis=-1)
  tgt = jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
  greedy = jnp.argmax(logits, axis=-1) == targets
  return jnp.sum(jnp.where(mask, tgt, 0.0), axis=1), jnp.all(greedy | ~mask, axis=1)


def _bucket(n: int, max_len: int) -> int:
  return min(max_len, max(16, 1 << (n - 1).bit_length()))


def score_token_requests(cfg, params, requests: Sequence[tuple[Sequence[int], Sequence[int]]],
                         batch_size: int = 16, max_len: int | None = None) -> list[tuple[float, bool]]:
  """Token-level core: [(context ids, continuation ids)] -> [(sum logprob, is_greedy)].

  Each context needs at least one id; the continuation is scored given all of it that fits in
  ``max_len`` inputs (the last ``max_len + 1`` ids of context + continuation are kept).
  """
  max_len = int(max_len or cfg.max_seq_len)
  rows = []
  for ctx, cont in requests:
    ctx, cont = list(ctx), list(cont)
    if not ctx:
      raise ValueError("a request needs at least one context id (e.g. bos)")
    if not cont:
      raise ValueError("a request needs at least one continuation id")
    if len(cont) > max_len:
      raise ValueError(f"continuation of {len(cont)} ids does not fit max_len={max_len}")
    full = (ctx + cont)[-(max_len + 1):]
    rows.append((full[:-1], full[1:], len(cont)))
  order = sorted(range(len(rows)), key=lambda i: -len(rows[i][0]))
  out: list = [None] * len(rows)
  for start in range(0, len(order), batch_size):
    idx = order[start:start + batch_size]
    width = _bucket(max(len(rows[i][0]) for i in idx), max_len)
    inputs = np.zeros((batch_size, width), np.int32)
    targets = np.zeros((batch_size, width), np.int32)
    mask = np.zeros((batch_size, width), bool)
    for r, i in enumerate(idx):
      inp, tgt, n_cont = rows[i]
      inputs[r, :len(inp)], targets[r, :len(tgt)] = inp, tgt
      mask[r, len(inp) - n_cont:len(inp)] = True
    lp, greedy = jax.device_get(_score_batch(cfg, params, inputs, targets, mask))
    for r, i in enumerate(idx):
      out[i] = (float(lp[r]), bool(greedy[r]))
  return out


def _prefix(tokenizer, add_bos: bool, context_empty: bool) -> list[int]:
  if add_bos or context_empty:
    pid = tokenizer.bos_id if tokenizer.bos_id is not None else tokenizer.eos_id
    if pid is None:
      if context_empty:
        raise ValueError("empty context and the tokenizer has neither bos nor eos")
      return []
    return [pid]
  return []


def encode_pair(tokenizer, context: str, continuation: str, add_bos: bool = True) -> tuple[list[int], list[int]]:
  """lm-eval-harness ``_encode_pair``: (context ids with prefix, continuation ids tokenized in context)."""
  n_spaces = len(context) - len(context.rstrip())
  if n_spaces:
    continuation = context[-n_spaces:] + continuation
    context = context[:-n_spaces]
  whole = tokenizer.encode(context + continuation)
  ctx = tokenizer.encode(context)
  return _prefix(tokenizer, add_bos, not ctx) + whole[:len(ctx)], whole[len(ctx):]


def loglikelihoods(cfg, params, tokenizer, requests: Sequence[tuple[str, str]], batch_size: int = 16,
                   max_len: int | None = None, add_bos: bool = True) -> list[tuple[float, bool]]:
  """[(context, continuation)] -> [(sum logprob of the continuation tokens, is_greedy)]."""
  pairs = [encode_pair(tokenizer, c, x, add_bos) for c, x in requests]
  return score_token_requests(cfg, params, pairs, batch_size, max_len)


def multiple_choice(cfg, params, tokenizer, items: Sequence[dict], batch_size: int = 16,
                    max_len: int | None = None, add_bos: bool = True) -> dict:
  """items: {"context": str, "choices": [str], "gold": int}. Choices are scored as given (include
  the task's target delimiter, usually a leading space, in them). acc = argmax of the summed
  logprob; acc_norm = argmax of logprob / len(choice) in characters (lm-eval-harness)."""
  requests, spans = [], []
  for item in items:
    spans.append((len(requests), len(item["choices"])))
    requests += [(item["context"], ch) for ch in item["choices"]]
  scores = loglikelihoods(cfg, params, tokenizer, requests, batch_size, max_len, add_bos)
  preds, preds_norm = [], []
  for item, (s, n) in zip(items, spans):
    ll = np.array([scores[s + j][0] for j in range(n)])
    lens = np.array([max(len(ch), 1) for ch in item["choices"]], np.float64)
    preds.append(int(np.argmax(ll)))
    preds_norm.append(int(np.argmax(ll / lens)))
  gold = np.array([int(it["gold"]) for it in items])
  n = max(len(items), 1)
  return {"acc": float(np.sum(np.array(preds) == gold) / n) if items else 0.0,
          "acc_norm": float(np.sum(np.array(preds_norm) == gold) / n) if items else 0.0,
          "n": len(items), "preds": preds, "preds_norm": preds_norm}


def rolling_windows(n_tokens: int, max_len: int, stride: int | None = None) -> list[tuple[int, int, int]]:
  """Windows over a sequence ``t`` of ``n_tokens + 1`` ids (prefix at 0, text ids at 1..n_tokens).

  Returns (a, start, end): the model reads t[a:end-1] (at most max_len ids) and scores the targets
  t[start:end]. The scored ranges tile 1..n_tokens exactly once; each window scores at most
  ``stride`` new tokens (default max_len: disjoint windows, the harness's rolling loglikelihood)
  with the up-to-``max_len - (end - start)`` preceding ids as context.
  """
  stride = int(stride or max_len)
  if not 1 <= stride <= max_len:
    raise ValueError(f"stride must be in [1, max_len={max_len}], got {stride}")
  windows, start = [], 1
  while start <= n_tokens:
    end = min(start + stride, n_tokens + 1)
    windows.append((max(0, end - 1 - max_len), start, end))
    start = end
  return windows


def perplexity(cfg, params, tokenizer, texts: Sequence[str], max_len: int | None = None,
               stride: int | None = None, batch_size: int = 16) -> dict:
  """Rolling-window perplexity of whole documents (each starts from bos, else eos).

  token_perplexity = exp(total NLL / total tokens); word_perplexity = exp(total NLL / total words)
  with words counted as lm-eval-harness does (``len(re.split(r"\\s+", doc))``); also
  byte_perplexity and bits_per_byte over UTF-8 bytes.
  """
  max_len = int(max_len or cfg.max_seq_len)
  requests, n_tok, n_words, n_bytes = [], 0, 0, 0
  for text in texts:
    ids = _prefix(tokenizer, True, True) + tokenizer.encode(text)
    for a, start, end in rolling_windows(len(ids) - 1, max_len, stride):
      requests.append((ids[a:start], ids[start:end]))
    n_tok += len(ids) - 1
    n_words += len(re.split(r"\s+", text))
    n_bytes += len(text.encode("utf-8"))
  scores = score_token_requests(cfg, params, requests, batch_size, max_len)
  nll = -sum(s for s, _ in scores)
  return {"token_perplexity": math.exp(nll / max(n_tok, 1)), "word_perplexity": math.exp(nll / max(n_words, 1)),
          "byte_perplexity": math.exp(nll / max(n_bytes, 1)), "bits_per_byte": nll / max(n_bytes, 1) / math.log(2),
          "nll": nll, "tokens": n_tok, "words": n_words}


def split_last_word(text: str) -> tuple[str, str]:
  """LAMBADA (lm-eval-harness lambada_openai): context = all but the last space-separated word,
  target = " " + last word."""
  words = text.rstrip().split(" ")
  return " ".join(words[:-1]), " " + words[-1]


def lambada(cfg, params, tokenizer, texts: Sequence[str], batch_size: int = 16, max_len: int | None = None,
            add_bos: bool = True) -> dict:
  """acc = fraction whose whole last word is the greedy continuation; perplexity =
  exp(-mean over documents of the last word's logprob), as lm-eval-harness reports it."""
  scores = loglikelihoods(cfg, params, tokenizer, [split_last_word(t) for t in texts], batch_size, max_len, add_bos)
  if not scores:
    return {"acc": 0.0, "perplexity": float("nan"), "n": 0}
  return {"acc": float(np.mean([g for _, g in scores])),
          "perplexity": math.exp(-float(np.mean([s for s, _ in scores]))), "n": len(scores)}


def summarize(task_accs: dict[str, float], wikitext_ppl: float, lambada_ppl: float) -> dict:
  """The paper's §2.2: t-acc = unweighted mean of the task accuracies; ppl = mean of the two perplexities."""
  return {"t_acc": float(np.mean(list(task_accs.values()))) if task_accs else float("nan"),
          "ppl": (wikitext_ppl + lambada_ppl) / 2}
