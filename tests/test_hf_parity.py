"""HF transformers LlamaForCausalLM <-> our Llama: logits parity, bit-exact round trips, clear errors.

Reference models are transformers' own, built from configs with random weights (no hub access):
norm weights are randomised too so that a swapped norm would show. Tiny sizes keep this fast.
"""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from safetensors import safe_open  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402

from visprior_jax.convert import hf  # noqa: E402
from visprior_jax.models.llama import rope_inverse_frequencies  # noqa: E402

pytestmark = pytest.mark.parity

BASE = dict(vocab_size=384, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, max_position_embeddings=128, rms_norm_eps=1e-5,
            initializer_range=0.1, tie_word_embeddings=False)
LLAMA3 = dict(rope_theta=500000.0, rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                                     high_freq_factor=4.0, original_max_position_embeddings=16))
CASES = {
    "gqa_untied": {},
    "llama3_rope": LLAMA3,
    "tied": dict(tie_word_embeddings=True),
    "mha": dict(num_key_value_heads=4),
}
TOKENS = np.random.default_rng(0).integers(0, BASE["vocab_size"], (2, 33))


def _hf_model(**overrides):
  torch.manual_seed(0)
  model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**{**BASE, **overrides}))
  with torch.no_grad():
    for name, p in model.named_parameters():
      if "norm" in name:
        p.normal_(1.0, 0.2)
  return model.eval()


def _save(model, path, **kwargs):
  model.save_pretrained(path, **kwargs)
  return path


def _logits(path):
  model = transformers.LlamaForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
  with torch.no_grad():
    return model(torch.from_numpy(TOKENS)).logits


@pytest.mark.parametrize("case", CASES)
def test_logits_match_transformers(case, tmp_path):
  path = _save(_hf_model(**CASES[case]), tmp_path / "hf")
  cfg, params = hf.load_hf(path)
  delta = hf.verify(cfg, params, path, TOKENS)
  print(f"{case}: max |dlogits| = {delta:.2e}")
  assert delta <= 1e-4


def test_llama3_scaling_changes_frequencies():
  scaling = {k: v for k, v in LLAMA3["rope_scaling"].items() if k != "rope_type"}
  plain, scaled = rope_inverse_frequencies(16, 5e5, None), rope_inverse_frequencies(16, 5e5, scaling)
  assert np.sum(plain != scaled) >= 4 and TOKENS.shape[1] > scaling["original_max_position_embeddings"]


@pytest.mark.parametrize("tied,dtype", [(False, torch.float32), (True, torch.bfloat16)])
def test_round_trip_is_bit_exact(tied, dtype, tmp_path):
  original = _save(_hf_model(tie_word_embeddings=tied, **LLAMA3).to(dtype), tmp_path / "hf")
  cfg, params = hf.load_hf(original)
  ours = hf.save_hf(cfg, params, tmp_path / "ours")
  want, got = hf._read_tensors(original), hf._read_tensors(ours)
  assert sorted(want) == sorted(got)
  for name in want:
    assert want[name].dtype == got[name].dtype and want[name].tobytes() == got[name].tobytes(), name
  want_cfg, got_cfg = (json.loads((p / "config.json").read_text()) for p in (original, ours))
  assert hf.config_from_hf(want_cfg) == hf.config_from_hf(got_cfg)
  loaded = transformers.AutoConfig.from_pretrained(str(ours))
  assert loaded.rope_parameters == transformers.AutoConfig.from_pretrained(str(original)).rope_parameters
  assert torch.equal(_logits(original), _logits(ours))


def test_sharded_checkpoints(tmp_path):
  original = _save(_hf_model(), tmp_path / "hf", max_shard_size="40KB")
  assert (original / hf.INDEX_FILE).exists()
  cfg, params = hf.load_hf(original)                     # reads HF's own shards
  ours = hf.save_hf(cfg, params, tmp_path / "ours", max_shard_bytes=40_000)
  index = json.loads((ours / hf.INDEX_FILE).read_text())
  files = set(index["weight_map"].values())
  assert len(files) > 2 and not (ours / hf.SINGLE_FILE).exists()
  assert index["metadata"]["total_size"] == sum(a.nbytes for a in hf._read_tensors(ours).values())
  for file in files:
    with safe_open(ours / file, framework="numpy") as f:
      assert f.metadata() == {"format": "pt"}
  assert torch.equal(_logits(original), _logits(ours))   # transformers reads our shards


def test_conversion_commands(tmp_path):
  original = _save(_hf_model(), tmp_path / "hf")
  assert hf.hf_to_native(original, tmp_path / "native", verify=True) <= 1e-4
  assert hf.native_to_hf(tmp_path / "native", tmp_path / "back", verify=True) <= 1e-4
  want, got = hf._read_tensors(original), hf._read_tensors(tmp_path / "back")
  assert all(want[n].tobytes() == got[n].tobytes() for n in want) and sorted(want) == sorted(got)
  with pytest.raises(FileExistsError, match="already holds"):
    hf.native_to_hf(tmp_path / "native", tmp_path / "back")


def test_errors(tmp_path):
  path = _save(_hf_model(), tmp_path / "hf")
  tensors = hf._read_tensors(path)
  cfg = hf.config_from_hf(json.loads((path / "config.json").read_text()))
  bad = dict(tensors, **{"model.layers.1.self_attn.k_proj.weight": np.zeros((24, 64), np.float32)})
  save_file(bad, path / hf.SINGLE_FILE, metadata={"format": "pt"})
  with pytest.raises(ValueError, match=r"model\.layers\.1\.self_attn\.k_proj\.weight.*\(24, 64\).*\(32, 64\)"):
    hf.load_hf(path)
  with pytest.raises(ValueError, match="lacks tensor model.norm.weight"):
    hf.params_from_hf_state(cfg, {k: v for k, v in tensors.items() if k != "model.norm.weight"})
  with pytest.raises(ValueError, match="does not use"):
    hf.params_from_hf_state(cfg, dict(tensors, **{"model.layers.0.self_attn.q_proj.bias": np.zeros(64)}))
  hf.params_from_hf_state(cfg, dict(tensors, **{"model.rotary_emb.inv_freq": np.zeros(8)}))  # harmless buffer
  with pytest.raises(ValueError, match="attention_bias=True"):
    hf.config_from_hf(dict(model_type="llama", attention_bias=True))
  with pytest.raises(ValueError, match="rope_type 'yarn'"):
    hf.config_from_hf({**BASE, "model_type": "llama", "rope_parameters": {"rope_type": "yarn", "factor": 2.0}})
