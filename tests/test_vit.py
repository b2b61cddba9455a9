"""ViT family: HF parity (SigLIP, CLIP, DINOv2, MAE), big_vision .npz layout, resizing, features."""

import numpy as np
import pytest
import jax
import jax.numpy as jnp

from visprior_jax.checkpoint.params import CheckpointMismatch
from visprior_jax.convert import big_vision, hf_vision
from visprior_jax.models import vit

TOL = 1e-4
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8)


def _images(seed=0, b=2, size=32):
  return np.random.default_rng(seed).normal(size=(b, size, size, 3)).astype(np.float32)


def _hf(model_cls, config):
  import torch
  torch.manual_seed(0)
  config._attn_implementation = "eager"
  model = model_cls(config).eval()
  with torch.no_grad():  # move every weight off its init (ones, zeros, 1e-5 layer scale) for a real test
    for p in model.parameters():
      p.add_(0.2 * torch.randn_like(p))
  return model


def _run_hf(model, images, **kw):
  import torch
  with torch.no_grad():
    return model(torch.from_numpy(images.transpose(0, 3, 1, 2)), output_hidden_states=True, **kw)


def _ours(model):
  state = {k: v.numpy() for k, v in model.state_dict().items()}
  cfg = hf_vision.config_from_hf(model.config.to_dict())
  return cfg, hf_vision.params_from_hf(state, cfg)


def _maxdiff(a, b):
  return float(np.max(np.abs(np.asarray(a) - b.numpy())))


def _check(model, images, pooled=True, **kw):
  ref = _run_hf(model, images, **kw)
  cfg, params = _ours(model)
  out = jax.jit(lambda p, x: vit.apply(cfg, p, x, return_hidden_states=True))(params, images)
  diffs = {"last": _maxdiff(out["last_hidden_state"], ref.last_hidden_state),
           "hidden[-2]": _maxdiff(out["hidden_states"][-2], ref.hidden_states[-2])}
  if pooled:
    diffs["pooled"] = _maxdiff(out["pooled"], ref.pooler_output)
  feats = vit.features(cfg, params, images, layer=-2, drop_prefix=False, num_tokens=None)
  diffs["features[-2]"] = _maxdiff(feats, ref.hidden_states[-2])
  print(type(model).__name__, diffs)
  assert max(diffs.values()) <= TOL, diffs
  return cfg, params, ref


@pytest.mark.parity
def test_siglip_matches_hf():
  import transformers as T
  model = _hf(T.SiglipVisionModel, T.SiglipVisionConfig(**TINY, intermediate_size=64))
  cfg, params, ref = _check(model, _images())
  assert cfg.pool_type == "map" and not cfg.class_token and cfg.act == "gelu_tanh"
  feats = vit.features(cfg, params, _images(), num_tokens=None)
  np.testing.assert_allclose(feats, ref.last_hidden_state.numpy(), atol=TOL)


@pytest.mark.parity
def test_clip_matches_hf():
  import transformers as T
  model = _hf(T.CLIPVisionModel, T.CLIPVisionConfig(**TINY, intermediate_size=64))
  cfg, params, ref = _check(model, _images(1))
  assert cfg.pre_norm and cfg.final_norm == "pooled" and cfg.act == "quick_gelu"
  feats = vit.features(cfg, params, _images(1), layer=-2, num_tokens=None)   # LLaVA's choice
  np.testing.assert_allclose(feats, ref.hidden_states[-2][:, 1:].numpy(), atol=TOL)


@pytest.mark.parity
@pytest.mark.parametrize("swiglu", [False, True])
def test_dinov2_matches_hf(swiglu):
  import transformers as T
  model = _hf(T.Dinov2Model, T.Dinov2Config(**TINY, mlp_ratio=2, use_swiglu_ffn=swiglu))
  cfg, _, _ = _check(model, _images(2))
  assert cfg.layer_scale and cfg.mlp_type == ("swiglu" if swiglu else "mlp")


@pytest.mark.parity
def test_dinov2_registers_match_hf():
  import transformers as T
  model = _hf(T.Dinov2WithRegistersModel, T.Dinov2WithRegistersConfig(**TINY, mlp_ratio=2, num_register_tokens=3))
  cfg, params, ref = _check(model, _images(3))
  assert cfg.num_prefix == 4
  feats = vit.features(cfg, params, _images(3), num_tokens=None)
  np.testing.assert_allclose(feats, ref.last_hidden_state[:, 4:].numpy(), atol=TOL)


@pytest.mark.parity
def test_mae_matches_hf_without_masking():
  import torch
  import transformers as T
  model = _hf(T.ViTMAEModel, T.ViTMAEConfig(**TINY, intermediate_size=64, mask_ratio=0.0))
  images = _images(4)
  noise = torch.arange(16, dtype=torch.float32).expand(2, 16)   # argsort = identity: no shuffle
  _check(model, images, pooled=False, noise=noise)


def test_big_vision_names_and_shapes():
  cfg = vit.siglip_config("mu/8", image_size=32)
  flat = big_vision.flatten(vit.abstract_params(cfg))
  mha = "MultiHeadDotProductAttention_0"
  expected = {"embedding/kernel": (8, 8, 3, 32), "embedding/bias": (32,), "pos_embedding": (1, 16, 32),
              "MAPHead_0/probe": (1, 1, 32), "Transformer/encoder_norm/scale": (32,)}
  for prefix in ("Transformer/encoderblock_0/", "MAPHead_0/"):
    expected.update({f"{prefix}{mha}/{n}/kernel": (32, 2, 16) for n in ("query", "key", "value")})
    expected.update({f"{prefix}{mha}/{n}/bias": (2, 16) for n in ("query", "key", "value")})
    expected[f"{prefix}{mha}/out/kernel"] = (2, 16, 32)
    expected[f"{prefix}MlpBlock_0/Dense_0/kernel"] = (32, 128)
    expected[f"{prefix}MlpBlock_0/Dense_1/kernel"] = (128, 32)
  expected["Transformer/encoderblock_0/LayerNorm_1/bias"] = (32,)
  expected["MAPHead_0/LayerNorm_0/scale"] = (32,)
  for key, shape in expected.items():
    assert tuple(flat[key].shape) == shape, key
  assert len(flat) == 36  # 3 embedding + 16 block + 2 encoder_norm + 15 MAP head
  assert vit.decode_variant("So400m/14") == dict(width=1152, depth=27, mlp_dim=4304, num_heads=16, patch_size=14)
  axes = vit.logical_axes(cfg)["Transformer"]["encoderblock_0"][mha]
  assert axes["query"]["kernel"] == ("embed", "heads", "head_dim")
  assert axes["out"]["kernel"] == ("heads", "head_dim", "embed")


def _random_tree(cfg, seed=0):
  rng = np.random.default_rng(seed)
  abstract = big_vision.flatten(vit.abstract_params(cfg))
  flat = {k: rng.normal(0, 0.3, v.shape).astype(np.float32) for k, v in abstract.items()}
  return big_vision.unflatten(flat)


def _write_two_tower(path, tree, scan=False):
  flat = big_vision.flatten(tree)
  if scan:  # big_vision scan=True layout: one Transformer/encoderblock with a leading layer axis
    depth = sum(k.startswith("Transformer/encoderblock_") and k.endswith("LayerNorm_0/scale") for k in flat)
    blocks = {}
    for k in list(flat):
      if k.startswith("Transformer/encoderblock_"):
        i, rest = k[len("Transformer/encoderblock_"):].split("/", 1)
        blocks.setdefault(rest, [None] * depth)[int(i)] = flat.pop(k)
    flat.update({f"Transformer/encoderblock/{r}": np.stack(v) for r, v in blocks.items()})
  arrays = {f"params/img/{k}": v for k, v in flat.items()}
  arrays.update({"params/t": np.ones(1, np.float32), "params/b": np.zeros(1, np.float32),
                 "params/txt/Embed_0/embedding": np.zeros((10, 8), np.float32)})
  np.savez(path, **arrays)


@pytest.mark.parametrize("scan", [False, True])
def test_npz_loads_to_same_outputs(tmp_path, scan):
  cfg = vit.siglip_config("mu/8", image_size=32, depth=2)
  tree = _random_tree(cfg)
  path = tmp_path / "siglip.npz"
  _write_two_tower(path, tree, scan)
  loaded = big_vision.load_vit(f"{path}:img", cfg)
  images = _images(5)
  a = vit.apply(cfg, tree, images)
  b = vit.apply(cfg, loaded, images)
  np.testing.assert_array_equal(a["pooled"], b["pooled"])
  np.testing.assert_array_equal(a["last_hidden_state"], b["last_hidden_state"])
  with pytest.raises(CheckpointMismatch, match=":img"):
    big_vision.load_vit(str(path), cfg)


def test_npz_shape_mismatch_names_parameter(tmp_path):
  cfg = vit.siglip_config("mu/8", image_size=32)
  path = tmp_path / "m.npz"
  big_vision.save_npz(_random_tree(cfg), path)
  wrong = vit.siglip_config("mu/8", image_size=32, mlp_dim=96)
  message = r"MlpBlock_0/Dense_0/bias has shape \(128,\), the model expects \(96,\)"
  with pytest.raises(CheckpointMismatch, match=message):
    big_vision.load_vit(f"{path}:img", wrong)
  with pytest.raises(CheckpointMismatch, match="does not"):
    big_vision.load_vit(f"{path}:img", vit.siglip_config("mu/8", image_size=32, pool_type="gap"))
  # head missing from the checkpoint: dont_load takes it from a fresh init
  with_head = vit.siglip_config("mu/8", image_size=32, num_classes=7)
  params = big_vision.load_vit(f"{path}:img", with_head, dont_load=["head/.*"])
  assert params["head"]["kernel"].shape == (32, 7)


def test_posemb_resampling(tmp_path):
  cfg = vit.siglip_config("mu/8", image_size=32)
  tree = _random_tree(cfg)
  path = tmp_path / "p.npz"
  big_vision.save_npz(tree, path)
  big = vit.siglip_config("mu/8", image_size=48)
  params = big_vision.load_vit(f"{path}:img", big)
  assert params["pos_embedding"].shape == (1, 36, 32)
  assert vit.apply(big, params, _images(size=48))["last_hidden_state"].shape == (2, 36, 32)
  scipy_ndimage = pytest.importorskip("scipy.ndimage")
  grid = tree["pos_embedding"].reshape(4, 4, 32)
  want = scipy_ndimage.zoom(grid, (1.5, 1.5, 1), order=1).reshape(1, 36, 32)  # big_vision's resampler
  np.testing.assert_allclose(params["pos_embedding"], want, atol=1e-5)
  # class-token families keep their prefix row
  ccfg = vit.clip_config("mu/8", image_size=32)
  cparams = vit.init_params(ccfg)
  ncfg, nparams = vit.with_image_size(ccfg, cparams, 64)
  assert nparams["pos_embedding"].shape == (1, 65, 32)
  np.testing.assert_array_equal(nparams["pos_embedding"][:, 0], cparams["pos_embedding"][:, 0])
  assert vit.apply(ncfg, nparams, _images(size=64))["pooled"].shape == (2, 32)


@pytest.mark.parametrize("src,dst", [(14, 24), (27, 24), (16, 4)])
def test_token_resize_matches_torch_bilinear(src, dst):
  import torch
  x = np.random.default_rng(0).normal(size=(2, src * src, 8)).astype(np.float32)
  ours = vit.tokens_to_n(jnp.asarray(x), dst * dst)
  grid = torch.from_numpy(x.reshape(2, src, src, 8)).permute(0, 3, 1, 2)
  ref = torch.nn.functional.interpolate(grid, size=(dst, dst), mode="bilinear", align_corners=False)
  np.testing.assert_allclose(ours, ref.permute(0, 2, 3, 1).reshape(2, dst * dst, 8).numpy(), atol=1e-5)


def test_features_to_576_and_other_n():
  for cfg in (vit.clip_config("mu/8", image_size=32), vit.dinov2_config("S/8", image_size=32, depth=1, num_registers=2),
              vit.mae_config("mu/8", image_size=32), vit.siglip_config("mu/8", image_size=32)):
    params = vit.init_params(cfg)
    images = _images()
    assert vit.features(cfg, params, images).shape == (2, 576, cfg.width)
    assert vit.features(cfg, params, images, num_tokens=64, layer=0).shape == (2, 64, cfg.width)
    assert vit.features(cfg, params, images, num_tokens=None).shape == (2, 16, cfg.width)
    full = vit.features(cfg, params, images, drop_prefix=False, num_tokens=None)
    assert full.shape == (2, 16 + cfg.num_prefix, cfg.width)
    same = vit.features(cfg, params, images, num_tokens=16)   # identity resize
    np.testing.assert_allclose(same, full[:, cfg.num_prefix:], atol=1e-6)
  with pytest.raises(ValueError, match="square"):
    vit.features(cfg, params, images, num_tokens=500)
  with pytest.raises(ValueError, match="with_image_size"):
    vit.features(cfg, params, _images(size=48))


def test_hf_loader_rejects_unused_tensors():
  import transformers as T
  model = _hf(T.CLIPVisionModel, T.CLIPVisionConfig(**TINY, intermediate_size=64))
  state = {k: v.numpy() for k, v in model.state_dict().items()}
  cfg = hf_vision.config_from_hf(model.config.to_dict())
  with pytest.raises(CheckpointMismatch, match="does not use"):
    hf_vision.params_from_hf({**state, "extra.weight": np.zeros(3)}, cfg)
  smaller = hf_vision.config_from_hf(model.config.to_dict(), mlp_dim=48)
  with pytest.raises(CheckpointMismatch, match=r"Dense_0/bias has shape \(64,\).*\(48,\)"):
    hf_vision.params_from_hf(state, smaller)


@pytest.mark.parity
def test_load_hf_directory_of_full_clip_model(tmp_path):
  """save_pretrained of a two-tower CLIPModel: load_hf takes the vision tower's config and tensors."""
  import transformers as T
  config = T.CLIPConfig(vision_config=dict(TINY, intermediate_size=64),
                        text_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, vocab_size=50))
  full = T.CLIPModel(config).eval()
  full.save_pretrained(tmp_path)
  cfg, params = hf_vision.load_hf(tmp_path)
  images = _images(6)
  ref = _run_hf(full.vision_model, images)
  out = vit.apply(cfg, params, images)
  assert _maxdiff(out["pooled"], ref.pooler_output) <= TOL
  assert _maxdiff(out["last_hidden_state"], ref.last_hidden_state) <= TOL
  bf16 = vit.ViTConfig.from_dict({**cfg.to_dict(), "dtype": "bfloat16"})
  assert vit.features(bf16, params, images).dtype == jnp.bfloat16
