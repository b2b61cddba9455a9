"""Multimodal readers, validation, preprocessing, chat template, batches and the SFT labeller, on tiny
real files (PNG/JPEG via Pillow, JSON/JSONL, Parquet with embedded image bytes) and a local HTTP server."""

import base64
import dataclasses
import http.server
import io
import json
import threading

import numpy as np
import pytest
from PIL import Image

from visprior_jax.data import multimodal as mm
from visprior_jax.data.instruction_labels import label_instructions, make_labeller, removal_variants
from visprior_jax.data.sources import ReadStats
from visprior_jax.data.tokenizers import ByteTokenizer


def _png(path, color=(200, 10, 30), size=(20, 12)):
  Image.new("RGB", size, color).save(path)
  return path


def _jpeg_bytes(color=(0, 128, 255), size=(16, 16)):
  buf = io.BytesIO()
  Image.new("RGB", size, color).save(buf, "JPEG")
  return buf.getvalue()


@pytest.fixture
def data(tmp_path):
  img = tmp_path / "img"
  img.mkdir()
  _png(img / "a.png")
  _png(img / "b.png", (0, 255, 0))
  (img / "c.jpg").write_bytes(_jpeg_bytes())
  (img / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
  entries = [
      {"id": "one", "image": "a.png", "conversations": [
          {"from": "human", "value": "<image>\nWhat colour?"}, {"from": "gpt", "value": "Red."},
          {"from": "human", "value": "Sure?"}, {"from": "gpt", "value": "Yes."}]},
      {"id": "two", "image": ["a.png", "b.png"], "conversations": [
          {"from": "human", "value": "<image> vs <image>"}, {"from": "gpt", "value": "Different."}]},
      {"id": "text", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]},
      {"id": "toomanytags", "image": "a.png", "conversations": [
          {"from": "human", "value": "<image><image>"}, {"from": "gpt", "value": "x"}]},
      {"id": "notag", "image": "c.jpg", "conversations": [
          {"from": "human", "value": "Describe."}, {"from": "gpt", "value": "Blue."}]},
      {"id": "missing", "image": "nope.png", "conversations": [
          {"from": "human", "value": "<image>"}, {"from": "gpt", "value": "x"}]},
      {"id": "corrupt", "image": "bad.png", "conversations": [
          {"from": "human", "value": "<image>"}, {"from": "gpt", "value": "x"}]},
      {"id": "noanswer", "conversations": [{"from": "human", "value": "?"}]},
  ]
  (tmp_path / "sft.json").write_text(json.dumps(entries))
  (tmp_path / "sft.jsonl").write_text("\n".join(json.dumps(e) for e in entries[:3]) + "\n{broken\n")
  return tmp_path


def _read(spec, **kw):
  stats = ReadStats()
  return list(mm.read_samples(dict(spec, **kw), stats)), stats


def test_instruction_readers_and_validation(data):
  spec = {"kind": "instructions", "paths": [str(data / "sft.json")], "image_root": str(data / "img")}
  samples, stats = _read(spec)
  assert [s.id for s in samples] == ["one", "two", "text", "corrupt"]   # "exists" does not decode
  assert samples[1].images == (str(data / "img" / "a.png"), str(data / "img" / "b.png"))
  assert samples[0].turns[0] == ("user", "<image>\nWhat colour?") and samples[2].images == ()
  assert dict(stats.skipped) == {"image tag count mismatch": 2, "missing image": 1, "no assistant turn": 1}
  assert any("id=toomanytags" in e and "2 <image> tags, 1 images" in e for e in stats.examples)
  # decode check also catches the corrupt image; the tag can be added when an entry has none
  samples, stats = _read(spec, check_images="decode", add_missing_image_tag=True)
  assert [s.id for s in samples] == ["one", "two", "text", "notag"]
  assert samples[3].turns[0][1] == "<image>\nDescribe."
  assert stats.skipped["corrupt image"] == 1 and any("id=corrupt" in e for e in stats.examples)
  with pytest.raises(ValueError, match=r"sft.json\[3\] id=toomanytags: image tag count mismatch"):
    _read(spec, on_error="raise")
  # JSONL: same samples, a malformed line counted with its line number
  samples, stats = _read({"kind": "instructions", "paths": [str(data / "sft.jsonl")], "image_root": str(data / "img")})
  assert [s.id for s in samples] == ["one", "two", "text"]
  assert any("sft.jsonl:4: malformed JSON" in e for e in stats.examples)


def test_caption_readers_parquet_embedded_and_jsonl(data):
  import pyarrow as pa
  import pyarrow.parquet as pq
  jpg = _jpeg_bytes((10, 20, 30))
  struct = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
  table = pa.table({"id": ["p0", "p1", "p2"], "caption": ["a cat", "a dog", ""],
                    "image": pa.array([{"bytes": jpg, "path": "x.jpg"}, {"bytes": None, "path": "a.png"},
                                       {"bytes": jpg, "path": None}], struct)})
  pq.write_table(table, data / "caps.parquet")
  samples, stats = _read({"kind": "captions", "paths": [str(data / "caps.parquet")], "image_root": str(data / "img")})
  assert [s.id for s in samples] == ["p0", "p1"] and stats.skipped["missing caption"] == 1
  assert samples[0].images == (jpg,) and samples[1].images == (str(data / "img" / "a.png"),)
  assert samples[0].turns == (("user", "<image>"), ("assistant", "a cat"))
  (data / "caps.jsonl").write_text(json.dumps({"image": "b.png", "caption": "green"}) + "\n" +
                                   json.dumps({"image": "gone.png", "caption": "?"}) + "\n")
  samples, stats = _read({"kind": "captions", "paths": [str(data / "caps.jsonl")], "image_root": str(data / "img")})
  assert len(samples) == 1 and samples[0].id.endswith("caps.jsonl:1") and stats.skipped["missing image"] == 1


def test_preprocess_constant_image_per_family():
  img = np.full((30, 50, 3), 128, np.uint8)
  x = 128 / 255
  expect = {"siglip": [(x - 0.5) / 0.5] * 3,
            "clip": [(x - m) / s for m, s in zip(mm.CLIP_MEAN, mm.CLIP_STD)],
            "metaclip": [(x - m) / s for m, s in zip(mm.CLIP_MEAN, mm.CLIP_STD)],
            "dinov2": [(x - m) / s for m, s in zip(mm.IMAGENET_MEAN, mm.IMAGENET_STD)],
            "mae": [(x - m) / s for m, s in zip(mm.IMAGENET_MEAN, mm.IMAGENET_STD)]}
  for family, want in expect.items():
    out = mm.preprocess(img, family, 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, np.broadcast_to(np.float32(want), out.shape), atol=1e-5, err_msg=family)
  assert mm.preprocess(Image.new("L", (10, 10), 255), "siglip", 8).min() == pytest.approx(1.0)
  # clip crops the centre of the shortest-side resize: a wide image's left/right bands are cut off
  wide = np.zeros((10, 30, 3), np.uint8)
  wide[:, 10:20] = 255
  assert mm.preprocess(wide, "clip", 10).std() < 0.2 and mm.preprocess(wide, "siglip", 10).std() > 0.5
  with pytest.raises(ValueError, match="unknown encoder family"):
    mm.preprocess(img, "vit-bogus")


def test_chat_template_loss_mask_and_blind(data):
  tok = ByteTokenizer()
  spec = {"kind": "instructions", "paths": [str(data / "sft.json")], "image_root": str(data / "img")}
  one = _read(spec)[0][0]
  enc = mm.encode_chat(tok, one, tokens_per_image=3, image_token_id=300)
  ids, mask = enc["ids"], enc["loss_mask"]
  assert ids[0] == tok.bos_id and list(ids[enc["image_starts"][0]:][:3]) == [300] * 3 and (ids == 300).sum() == 3
  assert tok.decode(ids[mask == 1]) == "Red.Yes." and (ids[mask == 1] == tok.eos_id).sum() == 2
  assert tok.decode(ids) == "USER: \nWhat colour?\nASSISTANT: Red.USER: Sure?\nASSISTANT: Yes."
  blind = mm.encode_chat(tok, one, tokens_per_image=3, image_token_id=300, blind=True)
  assert 300 not in blind["ids"] and len(blind["image_starts"]) == 0
  assert tok.decode(blind["ids"]) == "USER: What colour?\nASSISTANT: Red.USER: Sure?\nASSISTANT: Yes."
  with pytest.raises(ValueError, match="image_token_id"):
    mm.encode_chat(tok, one, tokens_per_image=1, image_token_id=ord("R"))


def _source(samples, **kw):
  args = dict(batch_size=4, seq_len=64, seed=7, family="siglip", resolution=8, max_images=2, tokens_per_image=4)
  args.update(kw)
  return mm.MultimodalSource(samples, ByteTokenizer(), **args)


def test_batches_deterministic_resume_and_process_split(data):
  samples = _read({"kind": "instructions", "paths": [str(data / "sft.json")], "image_root": str(data / "img")},
                  check_images="decode")[0]
  src = _source(samples)
  b = src.batch(0)
  assert b["images"].shape == (4, 2, 8, 8, 3) and b["inputs"].shape == (4, 64) and b["image_mask"].shape == (4, 2)
  for step in range(5):  # a fresh source (a resumed run) gives the same batches; 2 processes split rows
    x, y = src.batch(step), _source(samples).batch(step)
    halves = [src.batch(step, p, 2) for p in range(2)]
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])
      np.testing.assert_array_equal(x[k], np.concatenate([h[k] for h in halves]))
  assert not all(np.array_equal(src.batch(0)["inputs"], src.batch(s)["inputs"]) for s in range(1, 4))
  # one epoch (3 samples) covers every sample once; each row's images match its placeholders
  rows = [src.sample_index(k) for k in range(6)]
  assert sorted(rows[:3]) == [0, 1, 2] and sorted(rows[3:]) == [0, 1, 2]
  for step in range(3):
    b = src.batch(step)
    for r in range(4):
      n_runs = (b["inputs"][r] == src.image_token_id).sum() // 4
      assert n_runs == b["image_mask"][r].sum()
      real = b["segment_ids"][r] == 1
      assert (b["loss_mask"][r][~real] == 0).all() and (b["positions"][r][real] == np.arange(real.sum())).all()
  red = (np.asarray([200, 10, 30]) / 255 - 0.5) / 0.5
  b = src.batch(0)
  r = next(r for r in range(4) if b["image_mask"][r, 0])
  np.testing.assert_allclose(b["images"][r, 0, 0, 0], red, atol=2e-2)
  # state round trip and a refused change
  src.check_state(src.state(3))
  with pytest.raises(ValueError, match="seq_len 64 -> 32"):
    _source(samples, seq_len=32).check_state(src.state(3))
  blind = _source(samples, blind=True).batch(0)
  assert not blind["image_mask"].any() and not (blind["inputs"] == src.image_token_id).any()


def test_example_loss_weighting_weighs_every_sample_once(data):
  samples = _read({"kind": "instructions", "paths": [str(data / "sft.json")], "image_root": str(data / "img")},
                  check_images="decode")[0]
  token, example = _source(samples).batch(2), _source(samples, loss_weighting="example").batch(2)
  np.testing.assert_array_equal(token["inputs"], example["inputs"])
  n = token["loss_mask"].sum(axis=1)
  assert np.all(n > 0) and len(set(n.tolist())) > 1            # answers of different lengths
  np.testing.assert_allclose(example["loss_mask"], token["loss_mask"] / n[:, None], rtol=1e-6)
  np.testing.assert_allclose(example["loss_mask"].sum(axis=1), 1.0, rtol=1e-6)
  # the default keeps resuming runs checkpointed before the option existed; a change is refused
  assert "loss_weighting" not in _source(samples).fingerprint()
  with pytest.raises(ValueError, match="loss_weighting"):
    _source(samples).check_state(_source(samples, loss_weighting="example").state(3))
  with pytest.raises(ValueError, match="loss_weighting='sample'"):
    _source(samples, loss_weighting="sample")


def test_truncation_never_splits_an_image(data):
  samples = _read({"kind": "instructions", "paths": [str(data / "sft.json")], "image_root": str(data / "img")},
                  check_images="decode")[0]
  two = [s for s in samples if s.id == "two"]
  # "[bos]USER: " = 7 tokens, image 1 at 7..16, " vs " 4, image 2 would start at 21: seq_len+1 = 25 cuts it
  b = _source(two, seq_len=24, tokens_per_image=10, batch_size=1).batch(0)
  assert b["image_mask"][0].tolist() == [True, False] and (b["inputs"][0] == 259).sum() == 10
  assert b["segment_ids"][0].sum() == 21 and b["loss_mask"].sum() == 0


def test_corrupt_image_at_batch_time_is_counted_or_raised(data):
  bad = mm.Sample("broken", (str(data / "img" / "bad.png"),), (("user", "<image>"), ("assistant", "x")), "f:1")
  good = mm.Sample("fine", (str(data / "img" / "a.png"),), (("user", "<image>"), ("assistant", "y")), "f:2")
  src = _source([bad, good], batch_size=2)
  b = src.batch(0)
  assert src.stats.skipped["corrupt image"] == 1 and "id=broken" in src.stats.examples[0]
  assert b["loss_mask"].sum(1).tolist().count(0) == 1 and b["image_mask"].sum() == 1
  with pytest.raises(ValueError, match="f:1 id=broken: corrupt image"):
    _source([bad, good], batch_size=2, on_error="raise").batch(0)
  over = _source([good, dataclasses.replace(good, images=good.images * 3)], max_images=2)
  assert over.stats.skipped["too many images"] == 1 and len(over.samples) == 1


class _Handler(http.server.BaseHTTPRequestHandler):
  seen: list = []

  def do_POST(self):
    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
    parts = body["messages"][0]["content"]
    images = [p for p in parts if p["type"] == "image_url"]
    ok = bool(images) and all(p["image_url"]["url"].startswith("data:image/") for p in images)
    png = base64.b64decode(images[0]["image_url"]["url"].split(",", 1)[1]) if ok else b""
    Image.open(io.BytesIO(png)).load()
    text = parts[0]["text"].rsplit("<<<", 1)[-1]   # the request, not the prompt's own words
    self.seen.append((len(images), text))
    answer = "PERCEPTION" if "colour" in text else "Category: reasoning" if "why" in text else "others"
    out = json.dumps({"choices": [{"message": {"content": answer}}]}).encode()
    self.send_response(200)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(out)))
    self.end_headers()
    self.wfile.write(out)

  def log_message(self, *args):
    pass


def test_instruction_labeller_against_local_server(data, tmp_path):
  img = str(data / "img" / "a.png")
  samples = [mm.Sample(f"s{i}", (img,), (("user", "<image>\n" + q), ("assistant", "a")), f"f:{i}")
             for i, q in enumerate(["what colour is it", "why does it float", "describe it", "what colour again"])]
  samples.append(mm.Sample("t", (), (("user", "hi"), ("assistant", "a")), "f:9"))
  gone = (str(data / "img" / "nope.png"),)
  samples.append(mm.Sample("gone", gone, (("user", "<image>"), ("assistant", "a")), "f:10"))
  _Handler.seen = []
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
  server.timeout = 5
  thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
  thread.start()
  try:
    cfg = {"base_url": f"http://127.0.0.1:{server.server_address[1]}/v1", "model": "tiny-vlm", "max_retries": 0,
           "timeout_s": 5, "cache_path": str(tmp_path / "cache.sqlite"), "batch_size": 2}
    stats = ReadStats()
    out = tmp_path / "labels.jsonl"
    labels = label_instructions(samples, cfg, str(out), stats=stats, progress=False)
    assert labels == {"s0": "perception", "s1": "reasoning", "s2": "others", "s3": "perception"}
    assert stats.skipped["missing image"] == 1 and len(out.read_text().splitlines()) == 4
    assert len(_Handler.seen) == 4 and all(n == 1 and "<image>" not in t for n, t in _Handler.seen)
    # rerun: resumed from the file; a new file hits the cache, no new requests
    assert label_instructions(samples, cfg, str(out), progress=False) == labels
    labeller = make_labeller(cfg)
    assert label_instructions(samples, cfg, str(tmp_path / "again.jsonl"), labeller=labeller, progress=False) == labels
    assert labeller.stats().get("cache_hits") == 4 and len(_Handler.seen) == 4
    labeller.close()
  finally:
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_removal_variants_nested_and_seeded():
  samples = [{"id": str(i)} for i in range(40)]
  labels = {str(i): ("perception" if i % 2 else "reasoning") for i in range(30)}
  v = removal_variants(samples, labels, "perception")
  assert [len(v[f]) for f in (1.0, 0.5, 0.0)] == [40, 40 - 7, 40 - 15]   # 15 perception samples; 8 kept at 50%
  kept_half = {s["id"] for s in v[0.5]}
  assert sum(labels.get(i) == "perception" for i in kept_half) == 8
  assert {s["id"] for s in v[0.0]} <= kept_half <= {s["id"] for s in v[1.0]}
  assert all(labels.get(s["id"]) != "perception" for s in v[0.0])
  assert v == removal_variants(samples, labels, "perception") != removal_variants(samples, labels, "perception", seed=1)
  assert [s["id"] for s in v[0.5]] == sorted((s["id"] for s in v[0.5]), key=int)


def test_grain_workers_give_the_same_batches(data):
  samples = _read({"kind": "instructions", "paths": [str(data / "sft.json")], "image_root": str(data / "img")},
                  check_images="decode")[0]
  plain, workers = _source(samples), _source(samples, workers=1)
  for step in (0, 1, 2, 5):  # 5: a jump restarts the workers at that step
    got, want = workers.batch(step), plain.batch(step)
    for k in want:
      np.testing.assert_array_equal(got[k], want[k])


@pytest.mark.parity
def test_preprocess_matches_hf_image_processors():
  t = pytest.importorskip("transformers")
  rng = np.random.default_rng(0)
  procs = {"siglip": t.SiglipImageProcessor(), "clip": t.CLIPImageProcessor(),
           "dinov2": t.BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224},
                                         image_mean=mm.IMAGENET_MEAN, image_std=mm.IMAGENET_STD),
           "mae": t.ViTImageProcessor(image_mean=mm.IMAGENET_MEAN, image_std=mm.IMAGENET_STD)}
  for shape in [(37, 53, 3), (300, 200, 3)]:
    img = Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8))
    for family, proc in procs.items():
      want = np.asarray(proc(img, return_tensors="np")["pixel_values"][0]).transpose(1, 2, 0)
      np.testing.assert_allclose(mm.preprocess(img, family, 224), want, atol=1e-5, err_msg=f"{family} {shape}")


def test_label_instructions_command_writes_labels_and_removal_variants(tmp_path):
  """`visprior data label-instructions` end to end against a local VLM endpoint."""
  import subprocess
  import sys
  from conftest import REPO, subprocess_env
  (tmp_path / "img").mkdir()
  _png(tmp_path / "img" / "a.png")
  entries = [{"id": f"p{i}", "image": "a.png", "conversations": [
      {"from": "human", "value": "<image>\nwhat colour is it"}, {"from": "gpt", "value": "red"}]} for i in range(4)]
  entries += [{"id": "r0", "image": "a.png", "conversations": [
      {"from": "human", "value": "<image>\nwhy does it float"}, {"from": "gpt", "value": "air"}]},
      {"id": "t0", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}]
  (tmp_path / "sft.json").write_text(json.dumps(entries))
  cfg = tmp_path / "cfg.py"
  _Handler.seen = []
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
  thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
  thread.start()
  try:
    cfg.write_text(
        "import sys\nsys.path.insert(0, %r)\nimport instruction_label_endpoint as e\n"
        "def get_config():\n  c = e.get_config()\n  c.base_url = 'http://127.0.0.1:%d/v1'\n  c.max_retries = 0\n"
        "  return c\n" % (f"{REPO}/configs/data", server.server_address[1]))
    visprior = [sys.executable, "-m", "visprior_jax.cli"]
    out = subprocess.run(visprior + ["data", "label-instructions", f"--config={cfg}", f"--src={tmp_path / 'sft.json'}",
                                     f"--image_root={tmp_path / 'img'}", f"--out={tmp_path / 'labels.jsonl'}",
                                     "--ablate=perception", f"--dst={tmp_path / 'variants'}"],
                         cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=120)
  finally:
    server.shutdown()
    server.server_close()
    thread.join(5)
  assert out.returncode == 0, out.stderr[-2000:]
  labels = [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()]
  assert sorted((r["id"], r["label"]) for r in labels) == [("p0", "perception"), ("p1", "perception"),
                                                            ("p2", "perception"), ("p3", "perception"),
                                                            ("r0", "reasoning")]
  sizes = {keep: len(json.loads((tmp_path / "variants" / f"sft.perception_keep{keep}.json").read_text()))
           for keep in (100, 50, 0)}
  assert sizes == {100: 6, 50: 4, 0: 2}   # the reasoning and text-only entries are always kept


def _solo_images(n_img, seed):
  rng = np.random.default_rng(seed)
  return tuple(_png_bytes(tuple(int(v) for v in rng.integers(0, 255, 3))) for _ in range(n_img))


def _png_bytes(color):
  buf = io.BytesIO()
  Image.new("RGB", (8, 8), color).save(buf, format="PNG")
  return buf.getvalue()


def test_packing_puts_whole_samples_side_by_side():
  samples = [mm.Sample(f"s{i}", _solo_images(i % 2, i), (("user", "<image>" * (i % 2) + "q" * (3 + i)),
                                                         ("assistant", "a" * (1 + i % 3))), f"f:{i}")
             for i in range(12)]
  one = _source(samples, batch_size=6, seq_len=80, max_images=1)
  two = _source(samples, batch_size=3, seq_len=80, max_images=1, pack=2, loss_weighting="example")
  a, b = one.batch(1), two.batch(1)     # the same 6 samples: rows of one are the halves of two's rows
  assert b["images"].shape[:2] == (3, 2) and b["segment_ids"].max() == 2
  for r in range(3):
    seg = b["segment_ids"][r]
    for j in range(2):
      ids = a["inputs"][2 * r + j][a["segment_ids"][2 * r + j] == 1]
      np.testing.assert_array_equal(b["inputs"][r][seg == j + 1], ids)
      np.testing.assert_array_equal(b["positions"][r][seg == j + 1], np.arange(len(ids)))
      np.testing.assert_allclose(b["loss_mask"][r][seg == j + 1].sum(), 1.0)    # each sample weighs one
    np.testing.assert_array_equal(b["images"][r][b["image_mask"][r]], a["images"][2 * r:2 * r + 2][a["image_mask"][2 * r:2 * r + 2]])
  assert two.fingerprint()["pack"] == 2 and "pack" not in one.fingerprint()
  # a sample that does not fit whole behind the first is left out and counted, never cut
  tight = _source(samples, batch_size=3, seq_len=50, max_images=1, pack=2)
  t = tight.batch(1)
  assert tight.stats.skipped["pack overflow"] >= 1 and t["segment_ids"].max() <= 2
  for r in range(3):
    if (t["segment_ids"][r] == 2).any():
      assert t["loss_mask"][r][t["segment_ids"][r] == 2].sum() > 0
  with pytest.raises(ValueError, match="pack"):
    _source(samples, pack=0)


def test_packed_loss_is_the_mean_of_the_samples_losses():
  import jax
  import jax.numpy as jnp
  from visprior_jax.models import llama
  samples = [mm.Sample(f"s{i}", (), (("user", "q" * (3 + i)), ("assistant", "ab"[: 1 + i % 2])), f"f:{i}")
             for i in range(8)]
  cfg = llama.LlamaConfig(vocab_size=260, embed_dim=16, num_layers=1, num_heads=2, num_kv_heads=1, head_dim=8,
                          mlp_dim=32, max_seq_len=64)
  model = llama.Llama(cfg, rngs=__import__("flax").nnx.Rngs(0))

  def loss(batch):
    logits = model(jnp.asarray(batch["inputs"]), jnp.asarray(batch["positions"]), jnp.asarray(batch["segment_ids"]))
    nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), jnp.asarray(batch["targets"])[..., None], -1)[..., 0]
    return float((nll * batch["loss_mask"]).sum() / batch["loss_mask"].sum())

  solo = _source(samples, batch_size=8, seq_len=32, max_images=1, loss_weighting="example").batch(0)
  packed_src = _source(samples, batch_size=2, seq_len=160, max_images=1, pack=4, loss_weighting="example")
  packed = packed_src.batch(0)
  assert not packed_src.stats.skipped and packed["segment_ids"].max() == 4
  np.testing.assert_allclose(loss(packed), loss(solo), rtol=1e-5)
