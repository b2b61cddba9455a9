"""Language evaluation scoring (visprior_jax.eval.lm) against direct, unbatched numpy computations."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from visprior_jax.data.tokenizers import ByteTokenizer
from visprior_jax.eval import lm
from visprior_jax.models import functional, presets

TOK = ByteTokenizer()
REQUESTS = [("The cat sat on the", " mat"), ("A", " b"), ("", "hello"), ("Once upon a time there was ", "a king"),
            ("x y z", " w"), ("Quick brown fox jumps", " over the lazy dog"), ("ab", "c")]


@functools.lru_cache(maxsize=None)
def _setup():
  cfg = presets.get("llama3_tiny", init_std=0.2, dtype="float32")
  return cfg, functional.init_params(cfg, seed=7)


_apply = jax.jit(functional.apply, static_argnums=0)


def _logp(cfg, params, ids):
  """float64 log-softmax of the unpadded row's logits (T, V)."""
  logits = np.asarray(_apply(cfg, params, jnp.asarray([ids], jnp.int32))[0], np.float64)
  return logits - np.log(np.sum(np.exp(logits - logits.max(-1, keepdims=True)), -1, keepdims=True)) - logits.max(
      -1, keepdims=True), logits


def _direct(cfg, params, ctx, cont):
  full = list(ctx) + list(cont)
  logp, logits = _logp(cfg, params, full[:-1])
  pos = range(len(ctx) - 1, len(full) - 1)
  s = sum(logp[p, full[p + 1]] for p in pos)
  greedy = all(int(np.argmax(logits[p])) == full[p + 1] for p in pos)
  return s, greedy


def test_encode_pair_matches_harness_split():
  ctx, cont = lm.encode_pair(TOK, "Hello ", "world")
  assert ctx == [TOK.bos_id] + list(b"Hello") and cont == list(b" world")   # trailing space moves over
  assert lm.encode_pair(TOK, "", "hi", add_bos=False) == ([TOK.bos_id], list(b"hi"))
  assert lm.encode_pair(TOK, "ab", "c", add_bos=False) == (list(b"ab"), list(b"c"))


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_loglikelihoods_match_direct(batch_size):
  cfg, params = _setup()
  got = lm.loglikelihoods(cfg, params, TOK, REQUESTS, batch_size=batch_size, max_len=64)
  for (c, x), (s, g) in zip(REQUESTS, got):
    ctx, cont = lm.encode_pair(TOK, c, x)
    ref_s, ref_g = _direct(cfg, params, ctx, cont)
    assert abs(s - ref_s) <= 1e-5 * max(1.0, abs(ref_s)), (c, x, s, ref_s)
    assert g == ref_g


def test_left_truncation_to_max_len():
  cfg, params = _setup()
  ctx, cont = [TOK.bos_id] + list(b"a long context that will not fit"), list(b" end")
  (s, _), = lm.score_token_requests(cfg, params, [(ctx, cont)], batch_size=2, max_len=16)
  ref, _ = _direct(cfg, params, (ctx + cont)[-17:-len(cont)], cont)
  assert abs(s - ref) <= 1e-5 * max(1.0, abs(ref))


def test_is_greedy_matches_argmax():
  cfg, params = _setup()
  ctx = [TOK.bos_id] + list(b"seed")
  seq = list(ctx)
  for _ in range(4):                       # the greedy continuation, by recomputation
    _, logits = _logp(cfg, params, seq)
    seq.append(int(np.argmax(logits[-1])))
  greedy_cont = seq[len(ctx):]
  other = list(greedy_cont)
  other[2] = (other[2] + 1) % cfg.vocab_size
  res = lm.score_token_requests(cfg, params, [(ctx, greedy_cont), (ctx, other), (ctx, greedy_cont[:1])],
                                batch_size=4, max_len=32)
  assert [g for _, g in res] == [True, False, True]
  assert res[0][0] > res[1][0]


def test_multiple_choice_matches_numpy():
  cfg, params = _setup()
  items = [{"context": "Question: what is red? Answer:", "choices": [" apple", " sky", " a very long answer"], "gold": 0},
           {"context": "1 2 3", "choices": [" 4", " five", " x"], "gold": 1},
           {"context": "The", "choices": [" end", " beginning of it all"], "gold": 1},
           {"context": "", "choices": ["yes", "no"], "gold": 0}]
  res = lm.multiple_choice(cfg, params, TOK, items, batch_size=4, max_len=64)
  acc = acc_norm = 0
  for it, p, pn in zip(items, res["preds"], res["preds_norm"]):
    ll = np.array([_direct(cfg, params, *lm.encode_pair(TOK, it["context"], ch))[0] for ch in it["choices"]])
    norm = ll / np.array([len(ch) for ch in it["choices"]])
    assert p == int(np.argmax(ll)) and pn == int(np.argmax(norm))
    acc += int(np.argmax(ll)) == it["gold"]
    acc_norm += int(np.argmax(norm)) == it["gold"]
  assert res["acc"] == pytest.approx(acc / len(items)) and res["acc_norm"] == pytest.approx(acc_norm / len(items))


@pytest.mark.parametrize("n,max_len,stride", [(1, 8, 8), (7, 8, 8), (8, 8, 8), (9, 8, 8), (50, 8, 3), (50, 16, 16),
                                              (31, 5, 1), (100, 32, 20)])
def test_rolling_windows_cover_every_token_once(n, max_len, stride):
  counts = np.zeros(n + 1, int)
  for a, start, end in lm.rolling_windows(n, max_len, stride):
    assert 0 <= a < start < end <= n + 1
    assert end - 1 - a <= max_len                         # the model's input fits
    assert end - start <= stride
    counts[start:end] += 1
  assert counts[0] == 0 and np.all(counts[1:] == 1)


def test_perplexity_short_text_equals_exp_mean_nll():
  cfg, params = _setup()
  text = "the quick brown fox"
  ids = [TOK.bos_id] + TOK.encode(text)
  logp, _ = _logp(cfg, params, ids[:-1])
  nll = -np.array([logp[p, ids[p + 1]] for p in range(len(ids) - 1)])
  res = lm.perplexity(cfg, params, TOK, [text], max_len=64)
  assert res["tokens"] == len(ids) - 1
  assert res["token_perplexity"] == pytest.approx(math.exp(nll.mean()), rel=1e-5)
  assert res["word_perplexity"] == pytest.approx(math.exp(nll.sum() / 4), rel=1e-5)


def test_perplexity_rolling_is_consistent():
  """Long text: windowed NLL equals the sum of directly computed per-window NLLs."""
  cfg, params = _setup()
  texts = ["abcdefghij " * 6, "short one"]
  max_len, stride = 16, 5
  res = lm.perplexity(cfg, params, TOK, texts, max_len=max_len, stride=stride)
  nll = n = 0
  for text in texts:
    ids = [TOK.bos_id] + TOK.encode(text)
    for a, start, end in lm.rolling_windows(len(ids) - 1, max_len, stride):
      nll -= _direct(cfg, params, ids[a:start], ids[start:end])[0]
      n += end - start
  assert res["tokens"] == n == sum(len(t) for t in texts)
  assert res["nll"] == pytest.approx(nll, rel=1e-5)


def test_lambada():
  cfg, params = _setup()
  texts = ["he opened the door and saw the cat", "she said hello"]
  assert lm.split_last_word(texts[0]) == ("he opened the door and saw the", " cat")
  res = lm.lambada(cfg, params, TOK, texts, batch_size=2, max_len=64)
  lls, greedy = zip(*[_direct(cfg, params, *lm.encode_pair(TOK, *lm.split_last_word(t))) for t in texts])
  assert res["acc"] == pytest.approx(np.mean(greedy))
  assert res["perplexity"] == pytest.approx(math.exp(-np.mean(lls)), rel=1e-5)


def test_summarize():
  s = lm.summarize({"piqa": 0.6, "arc": 0.4}, 20.0, 30.0)
  assert s == {"t_acc": pytest.approx(0.5), "ppl": 25.0}
