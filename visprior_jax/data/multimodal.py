"""Multimodal data for alignment and SFT: readers, image preprocessing, chat template, batches.

Readers (``read_samples(spec, stats)``) yield :class:`Sample` (``id``, ``images``: a tuple of
image references, each a path/URI string or the encoded bytes, ``turns``: ``(role, text)`` with
role ``system|user|assistant``, ``where``: ``file:line``). Spec keys (besides sources.py's
``paths``, ``pattern``, ``on_error`` = skip|raise, ``limit``):

  kind = "instructions"  LLaVA/Cambrian JSON (a list, ``*.json``) or JSONL (``*.jsonl[.gz|.zst]``):
         ``{"id", "image": "rel.jpg" | ["a.jpg", "b.jpg"] | absent/null, "conversations":
         [{"from": "human"|"gpt"|"system" (also user/assistant), "value": "...<image>..."}]}``
  kind = "captions"      JSONL or Parquet rows with ``caption_field`` (default "caption") and
         ``image_field`` (default "image"): a relative path, raw bytes, or HF ``datasets``' Image
         struct ``{"bytes", "path"}`` (bytes win; else the path). A caption becomes the turns
         ``user: caption_prompt`` (default ``"<image>"``), ``assistant: caption``.
  image_root             folder (or gs:// prefix) that relative image paths are joined to
  id_field               default "id" (else ``file:line``)
  check_images           "exists" (default: a missing file is skipped), "decode" (also decode
                         each image once: corrupt ones are skipped), "none"
  add_missing_image_tag  when an entry has N images and no ``<image>`` tag, prepend N tags to the
                         first user turn (some Cambrian subsets omit them); default False

Validation: the number of ``<image>`` tags must equal the number of images. More tags than images
leaves a placeholder without pixels; fewer leaves an image with no place in the text (LLaVA
silently drops it); both are refused as ``image tag count mismatch`` naming the sample's id,
because either would train on a silently wrong sample. Every bad record (malformed JSON, no
conversations, unknown role, no assistant turn, tag mismatch, missing or corrupt image) is skipped
and counted in ``ReadStats`` by reason with ``file:line id=...`` examples, or raises a one-line
ValueError with ``on_error="raise"``. The k-th ``<image>`` tag is the k-th image.

Chat template (:class:`ChatTemplate`, plain text so any tokenizer works; defaults shown)::

  [bos] "SYSTEM: " sys "\\n"  "USER: " text "\\n"  "ASSISTANT: " answer [eot]  "USER: " ... "ASSISTANT: " answer [eot]

``<image>`` tags in the text become ``tokens_per_image`` copies of ``image_token_id`` (the MLLM
writes the k-th image's projected features over the k-th run). The loss mask is 1 exactly on the
assistant answers' tokens and their end-of-turn token ``eot`` (default: the tokenizer's eos);
bos, roles, user/system text and placeholders are 0. ``blind=True`` (PAPER.md 3.6, blind visual
instruction tuning) withholds the images: tags (and one newline after a tag) are removed from the
text, no placeholders, no pixels.

Preprocessing (``preprocess(image, family, resolution)``, float32 (res, res, 3)), HF conventions:
siglip: bicubic resize to res x res, [-1, 1]; clip/metaclip: bicubic resize of the shortest side
to res, centre crop, CLIP mean/std; dinov2: shortest side to res*256/224, centre crop, ImageNet
mean/std; mae: bilinear resize to res x res, ImageNet mean/std.

Batches: :class:`MultimodalSource`, one sample per row, ``batch(step) = f(seed, step)`` (see its
docstring). Limits: samples (and images embedded in Parquet) are held in memory; for millions of
embedded images, extract them to files first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from etils import epath

from visprior_jax.data.packing import process_rows
from visprior_jax.data.source import refuse_state_changes
from visprior_jax.data.sources import ReadStats, _BadFile, _BadRecord, _json_object, _lines, expand_paths
from visprior_jax.data.workers import StepWorkers, grain_dataset

log = logging.getLogger(__name__)

IMAGE_TAG = "<image>"
KINDS = ("instructions", "captions")
SPEC_KEYS = {"kind", "paths", "pattern", "on_error", "limit", "image_root", "id_field", "check_images",
             "add_missing_image_tag", "caption_field", "image_field", "caption_prompt", "source"}
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
_DEFAULT_PATTERN = {"instructions": "**/*.json*", "captions": "**/*.*"}


@dataclasses.dataclass(frozen=True)
class Sample:
  id: str
  images: tuple = ()          # each: str (path/URI) or bytes (an encoded image)
  turns: tuple = ()           # ((role, text), ...)
  where: str = ""

  @property
  def num_tags(self) -> int:
    return sum(text.count(IMAGE_TAG) for _, text in self.turns)


# ---------------------------------------------------------------------------------------------
# Images


def load_image(ref):
  """An RGB ``PIL.Image`` from a path/URI, bytes, PIL image or uint8 (H, W, 3) array.

  Raises _BadRecord("missing image" | "corrupt image") for unreadable input."""
  from PIL import Image
  if isinstance(ref, Image.Image):
    img = ref
  elif isinstance(ref, np.ndarray):
    return Image.fromarray(np.asarray(ref, np.uint8)).convert("RGB")
  else:
    name = "embedded bytes" if isinstance(ref, (bytes, bytearray)) else str(ref)
    try:
      data = bytes(ref) if isinstance(ref, (bytes, bytearray)) else epath.Path(ref).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
      raise _BadRecord("missing image", name) from None
    try:
      img = Image.open(io.BytesIO(data))
      img.load()
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError...
      raise _BadRecord("corrupt image", f"{name}: {type(e).__name__}: {str(e)[:100]}") from None
  return img.convert("RGB")


CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# family: (mode, resample, mean, std, default resolution); crop modes resize the shortest side.
FAMILIES = {
    "siglip": ("resize", "bicubic", (0.5,) * 3, (0.5,) * 3, 224),
    "clip": ("crop", "bicubic", CLIP_MEAN, CLIP_STD, 224),
    "metaclip": ("crop", "bicubic", CLIP_MEAN, CLIP_STD, 224),
    "dinov2": ("crop256", "bicubic", IMAGENET_MEAN, IMAGENET_STD, 224),
    "mae": ("resize", "bilinear", IMAGENET_MEAN, IMAGENET_STD, 224),
}


def preprocess(image, family: str, resolution: int | None = None) -> np.ndarray:
  """Encoder-ready float32 (res, res, 3) pixels for ``family`` (see module docstring)."""
  from PIL import Image
  if family not in FAMILIES:
    raise ValueError(f"unknown encoder family {family!r}; use one of {sorted(FAMILIES)}")
  mode, resample, mean, std, default = FAMILIES[family]
  res = int(resolution or default)
  img = load_image(image)
  method = Image.BICUBIC if resample == "bicubic" else Image.BILINEAR
  if mode == "resize":
    img = img.resize((res, res), method)
  else:
    short = res if mode == "crop" else int(round(res * 256 / 224))
    w, h = img.size
    scale = short / min(w, h)
    nw, nh = (short, max(short, int(h * scale))) if w <= h else (max(short, int(w * scale)), short)  # HF truncates
    img = img.resize((nw, nh), method)
    left, top = (nw - res) // 2, (nh - res) // 2
    img = img.crop((left, top, left + res, top + res))
  x = np.asarray(img, np.float32) / 255.0
  return ((x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Readers


def check_spec(spec: Mapping) -> dict:
  spec = dict(spec.to_dict() if hasattr(spec, "to_dict") else spec)
  unknown = sorted(set(spec) - SPEC_KEYS)
  if unknown:
    raise ValueError(f"unknown multimodal spec key(s) {unknown}; allowed: {sorted(SPEC_KEYS)}")
  if spec.get("kind") not in KINDS:
    raise ValueError(f"multimodal kind {spec.get('kind')!r} is not one of {list(KINDS)}")
  if not spec.get("paths"):
    raise ValueError(f"kind={spec['kind']} needs 'paths' (files, directories or globs)")
  spec.setdefault("on_error", "skip")
  if spec["on_error"] not in ("skip", "raise"):
    raise ValueError(f"on_error={spec['on_error']!r}; use 'skip' or 'raise'")
  spec.setdefault("check_images", "exists")
  if spec["check_images"] not in ("exists", "decode", "none"):
    raise ValueError(f"check_images={spec['check_images']!r}; use 'exists', 'decode' or 'none'")
  return spec


def _resolve(path: str, root) -> str:
  if "://" in path or path.startswith("/") or not root:
    return path
  return str(epath.Path(root) / path)


def _image_ref(value, spec) -> str | bytes:
  if isinstance(value, Mapping):  # HF datasets Image feature: {"bytes": ..., "path": ...}
    if value.get("bytes"):
      return bytes(value["bytes"])
    value = value.get("path")
  if isinstance(value, (bytes, bytearray)) and value:
    return bytes(value)
  if isinstance(value, str) and value.strip():
    return _resolve(value.strip(), spec.get("image_root"))
  raise _BadRecord("bad image field", repr(value)[:80])


def _instruction(obj: Mapping, where: str, spec) -> Sample:
  convs = obj.get("conversations")
  if not isinstance(convs, list) or not convs:
    raise _BadRecord("missing conversations")
  turns = []
  for t in convs:
    if not isinstance(t, Mapping) or _ROLES.get(str(t.get("from", "")).lower()) is None:
      raise _BadRecord("unknown role", repr(t.get("from") if isinstance(t, Mapping) else t)[:60])
    if not isinstance(t.get("value"), str):
      raise _BadRecord("turn value is not a string")
    turns.append((_ROLES[t["from"].lower()], t["value"]))
  if not any(r == "assistant" for r, _ in turns):
    raise _BadRecord("no assistant turn")
  image = obj.get("image")
  images = () if image is None else tuple(_image_ref(v, spec) for v in (image if isinstance(image, list) else [image]))
  return Sample(str(obj.get(spec.get("id_field") or "id", where)), images, tuple(turns), where)


def _caption(obj: Mapping, where: str, spec) -> Sample:
  field = spec.get("caption_field") or "caption"
  caption = obj.get(field)
  if isinstance(caption, bytes):
    caption = caption.decode("utf-8", "replace")
  if not isinstance(caption, str) or not caption.strip():
    raise _BadRecord("missing caption", repr(field))
  image = obj.get(spec.get("image_field") or "image")
  if image is None:
    raise _BadRecord("missing image field", repr(spec.get("image_field") or "image"))
  doc_id = obj.get(spec.get("id_field") or "id")
  turns = (("user", spec.get("caption_prompt", IMAGE_TAG)), ("assistant", caption.strip()))
  return Sample(where if doc_id is None else str(doc_id), (_image_ref(image, spec),), turns, where)


def _validate(sample: Sample, spec) -> Sample:
  tags, n = sample.num_tags, len(sample.images)
  if tags == 0 and n and spec.get("add_missing_image_tag"):
    turns = list(sample.turns)
    i = next(i for i, (r, _) in enumerate(turns) if r == "user") if any(r == "user" for r, _ in turns) else 0
    turns[i] = (turns[i][0], (IMAGE_TAG + "\n") * n + turns[i][1])
    sample, tags = dataclasses.replace(sample, turns=tuple(turns)), n
  if tags != n:
    raise _BadRecord("image tag count mismatch", f"{tags} {IMAGE_TAG} tags, {n} images")
  check = spec["check_images"]
  for ref in sample.images:
    if check == "decode":
      load_image(ref)
    elif check == "exists" and isinstance(ref, str) and not epath.Path(ref).is_file():
      raise _BadRecord("missing image", ref)
  return sample


def _records(path: epath.Path, spec) -> Iterator[tuple[str, Any]]:
  name = path.name
  if name.endswith(".parquet"):
    import pyarrow as pa
    import pyarrow.parquet as pq
    row = 0
    try:
      with path.open("rb") as f:
        pf = pq.ParquetFile(f)
        for group in range(pf.num_row_groups):
          for record in pf.read_row_group(group).to_pylist():
            yield f"{path}:{row}", record
            row += 1
    except (pa.ArrowException, OSError) as e:
      raise _BadFile("truncated or corrupt Parquet file", str(e).splitlines()[0]) from None
  elif name.endswith(".json"):
    try:
      items = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
      raise _BadFile("malformed JSON file", str(e)[:120]) from None
    if not isinstance(items, list):
      raise _BadFile("JSON file is not a list of samples", type(items).__name__)
    for i, obj in enumerate(items):
      yield f"{path}[{i}]", obj if isinstance(obj, dict) else _BadRecord("not a JSON object", type(obj).__name__)
  else:
    for lineno, line in _lines(path):
      try:
        yield f"{path}:{lineno}", _json_object(line)
      except _BadRecord as e:
        yield f"{path}:{lineno}", e


def read_samples(spec: Mapping, stats: ReadStats | None = None) -> Iterator[Sample]:
  """Samples of ``spec`` (module docstring); bad ones skipped and counted into ``stats`` or raised."""
  spec = check_spec(spec)
  return _read(spec, stats if stats is not None else ReadStats())


def _read(spec: dict, stats: ReadStats) -> Iterator[Sample]:
  limit = spec.get("limit")
  make = _instruction if spec["kind"] == "instructions" else _caption
  n = 0
  for path in expand_paths(spec["paths"], spec.get("pattern") or _DEFAULT_PATTERN[spec["kind"]]):
    stats.files += 1
    records = _records(path, spec)
    while True:
      where, sample_id = str(path), None
      try:
        try:
          where, record = next(records)
        except StopIteration:
          break
        if isinstance(record, _BadRecord):
          raise record
        sample_id = record.get(spec.get("id_field") or "id")
        sample = _validate(make(record, where, spec), spec)
      except _BadRecord as e:
        label = where + (f" id={sample_id}" if sample_id is not None else "")
        if spec["on_error"] == "raise":
          raise ValueError(f"{label}: {e.reason}" + (f" ({e.detail})" if e.detail else "")) from None
        stats.skip(label, e.reason, e.detail)
        if isinstance(e, _BadFile):
          break
        continue
      stats.read += 1
      n += 1
      yield sample
      if limit is not None and n >= int(limit):
        return
  if stats.total_skipped:
    log.warning("multimodal source %s: %s", spec.get("source") or spec["kind"], stats.summary())


# ---------------------------------------------------------------------------------------------
# Chat template and loss mask


@dataclasses.dataclass(frozen=True)
class ChatTemplate:
  system_prefix: str = "SYSTEM: "
  user_prefix: str = "USER: "
  assistant_prefix: str = "ASSISTANT: "
  turn_suffix: str = "\n"              # after system and user turns (the assistant's ends with eot)
  end_of_turn_id: int | None = None    # None = tokenizer.eos_id
  add_bos: bool = True                 # when the tokenizer has a bos


def encode_chat(tokenizer, sample: Sample, *, tokens_per_image: int, image_token_id: int, blind: bool = False,
                template: ChatTemplate = ChatTemplate()) -> dict[str, np.ndarray]:
  """``ids`` (int32), ``loss_mask`` (1 on assistant tokens incl. end-of-turn; float32, same length)
  and ``image_starts`` (index of each image's first placeholder, in image order)."""
  eot = tokenizer.eos_id if template.end_of_turn_id is None else template.end_of_turn_id
  if eot is None:
    raise ValueError(f"tokenizer {tokenizer.name} has no eos token: set ChatTemplate.end_of_turn_id")
  ids: list[int] = []
  mask: list[int] = []
  starts: list[int] = []

  def text(s: str, on: int):
    if s:
      t = tokenizer.encode(s)
      if image_token_id in t:
        raise ValueError(f"sample {sample.id}: the tokenizer produced image_token_id={image_token_id} for text; "
                         "choose an id the tokenizer never emits (e.g. its vocab_size)")
      ids.extend(t)
      mask.extend([on] * len(t))

  if template.add_bos and tokenizer.bos_id is not None:
    ids.append(tokenizer.bos_id)
    mask.append(0)
  for role, value in sample.turns:
    if blind:
      value = value.replace(IMAGE_TAG + "\n", "").replace(IMAGE_TAG, "")
    if role == "assistant":
      text(template.assistant_prefix, 0)
      text(value.replace(IMAGE_TAG, ""), 1)
      ids.append(eot)
      mask.append(1)
      continue
    text(template.system_prefix if role == "system" else template.user_prefix, 0)
    for k, piece in enumerate(value.split(IMAGE_TAG)):
      if k:
        starts.append(len(ids))
        ids.extend([image_token_id] * tokens_per_image)
        mask.extend([0] * tokens_per_image)
      text(piece, 0)
    text(template.turn_suffix, 0)
  return dict(ids=np.asarray(ids, np.int32), loss_mask=np.asarray(mask, np.float32),
              image_starts=np.asarray(starts, np.int64))


def encode_prompt(tokenizer, text: str, *, n_images: int, tokens_per_image: int, image_token_id: int,
                  template: ChatTemplate = ChatTemplate()) -> list[int]:
  """A generation prompt in the training chat template: one user turn (``n_images`` image tags, each
  followed by a newline, then ``text``: the image first, as Cambrian prompts) and the assistant
  prefix, where the model continues."""
  sample = Sample(id="prompt", turns=(("user", (IMAGE_TAG + "\n") * n_images + text),))
  ids = encode_chat(tokenizer, sample, tokens_per_image=tokens_per_image, image_token_id=image_token_id,
                    template=template)["ids"].tolist()
  return ids + tokenizer.encode(template.assistant_prefix)


# ---------------------------------------------------------------------------------------------
# Batches


LOSS_WEIGHTINGS = ("token", "example")


class MultimodalSource:
  """Samples -> fixed-shape batches; ``batch(step, process_index, process_count)`` = f(seed, step).

  Global row ``k = step * batch_size + r`` holds sample ``perm_e[k % N]`` with ``e = k // N``
  and ``perm_e = permutation(seed, e)`` (a fresh shuffle every epoch). Process ``p`` of ``P``
  builds rows ``[p*B/P, (p+1)*B/P)``. A row is the sample's chat tokens (``encode_chat``),
  truncated to ``seq_len + 1`` (never inside an image's placeholders: the row is cut before an
  image that would not fit, and that image is dropped) and padded with ``pad_id``; ``inputs`` /
  ``targets`` are the shifted tokens, ``loss_mask`` is the template's mask on the targets,
  ``segment_ids`` are 1 on real tokens and 0 on padding, ``positions`` count from 0.
  ``loss_weighting="example"`` divides each sample's ``loss_mask`` by its number of loss tokens, so every
  sample weighs the same in the loss whatever its answer length (the trainer's normaliser, the
  mask's sum, then counts samples); ``"token"`` (default, LLaVA's) leaves it 0/1.
  ``pack=k`` (default 1) puts ``k`` samples in each row: global row ``g`` holds the samples the
  formula above gives for rows ``k*g, ..., k*g + k - 1``, one after the other, each its own segment
  (``segment_ids`` 1..k, positions restarting at 0, so attention never crosses samples), their images
  in the row's slots in order (``images`` then has ``k * max_images`` slots). A sample that does not
  fit whole behind the ones before it is left out of that row and counted ("pack overflow"); the
  first sample of a row is truncated as without packing. A step then sees ``k * batch_size``
  samples: short chats (the tiny study's ~60 ids in rows of 128) stop paying for padding.
  ``images`` is (rows, max_images, res, res, 3) float32 with ``image_mask`` (rows, max_images)
  marking real slots (slot k fills the k-th placeholder run). Samples with more than
  ``max_images`` images are skipped and counted when the source is built. An image that fails to
  decode at batch time leaves its sample out of the row (all its masks 0) and is counted in ``self.stats`` (in the
  calling process; worker processes log it), or raises with ``on_error="raise"``.

  ``workers=N`` builds batches in N grain worker processes (the tokenizer must pickle; pass a
  ``load_tokenizer`` spec string to reload it there). ``state``/``check_state`` as in
  text_pipeline: resuming needs only the step plus a matching fingerprint.
  """

  def __init__(self, samples: Sequence[Sample], tokenizer, *, batch_size: int, seq_len: int, seed: int = 42,
               family: str = "siglip", resolution: int | None = None, max_images: int = 1,
               tokens_per_image: int = 576, image_token_id: int | None = None, blind: bool = False,
               template: ChatTemplate = ChatTemplate(), on_error: str = "skip", workers: int = 0,
               allow_data_change: bool = False, loss_weighting: str = "token", pack: int = 1):
    if isinstance(tokenizer, str):
      from visprior_jax.data.tokenizers import load_tokenizer
      self._tokenizer_spec, tokenizer = tokenizer, load_tokenizer(tokenizer)
    else:
      self._tokenizer_spec = None
    if family not in FAMILIES:
      raise ValueError(f"unknown encoder family {family!r}; use one of {sorted(FAMILIES)}")
    if on_error not in ("skip", "raise"):
      raise ValueError(f"on_error={on_error!r}; use 'skip' or 'raise'")
    if loss_weighting not in LOSS_WEIGHTINGS:
      raise ValueError(f"data.loss_weighting={loss_weighting!r}; use one of {LOSS_WEIGHTINGS}")
    self.loss_weighting = loss_weighting
    if int(pack) < 1:
      raise ValueError(f"data.pack={pack}: samples per row must be >= 1")
    self.pack = int(pack)
    self.tokenizer, self.family, self.blind, self.template = tokenizer, family, bool(blind), template
    self.batch_size, self.seq_len, self.seed = int(batch_size), int(seq_len), int(seed)
    self.resolution = int(resolution or FAMILIES[family][4])
    self.max_images, self.tokens_per_image = int(max_images), int(tokens_per_image)
    self.image_token_id = int(tokenizer.vocab_size if image_token_id is None else image_token_id)
    self.vocab_size = max(int(tokenizer.vocab_size), self.image_token_id + 1)
    self.on_error, self.workers, self.allow_data_change = on_error, int(workers), bool(allow_data_change)
    self.stats = ReadStats()
    kept = []
    for s in samples:
      if len(s.images) > self.max_images and not self.blind:
        if on_error == "raise":
          raise ValueError(f"{s.where} id={s.id}: {len(s.images)} images > max_images={self.max_images}")
        self.stats.skip(f"{s.where} id={s.id}", "too many images", f"{len(s.images)} > {self.max_images}")
      else:
        kept.append(s)
    if not kept:
      raise ValueError("the multimodal source has no samples")
    self.samples = kept
    h = hashlib.sha256()
    for s in kept:
      h.update(json.dumps([s.id, len(s.images), s.turns]).encode())
    self.digest = h.hexdigest()
    self._workers = StepWorkers(self.workers)
    self._perm_cache: dict[int, np.ndarray] = {}

  def __getstate__(self):
    state = {k: v for k, v in self.__dict__.items() if k not in ("_workers", "_perm_cache")}
    if self._tokenizer_spec is not None:
      state["tokenizer"] = None
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    if self.tokenizer is None:
      from visprior_jax.data.tokenizers import load_tokenizer
      self.tokenizer = load_tokenizer(self._tokenizer_spec)
    self._workers = StepWorkers(self.workers)
    self._perm_cache = {}

  def _perm(self, epoch: int) -> np.ndarray:
    if epoch not in self._perm_cache:
      if len(self._perm_cache) > 4:
        self._perm_cache.clear()
      self._perm_cache[epoch] = np.random.default_rng([self.seed % 2**63, 5, epoch]).permutation(len(self.samples))
    return self._perm_cache[epoch]

  def sample_index(self, row: int) -> int:
    epoch, pos = divmod(int(row), len(self.samples))
    return int(self._perm(epoch)[pos])

  def _row(self, sample: Sample, T: int | None = None):
    T = self.seq_len + 1 if T is None else T
    enc = encode_chat(self.tokenizer, sample, tokens_per_image=self.tokens_per_image,
                      image_token_id=self.image_token_id, blind=self.blind, template=self.template)
    ids, mask, starts = enc["ids"], enc["loss_mask"], enc["image_starts"]
    cut = len(ids)
    n_img = len(starts)
    if cut > T:
      cut = T
      n_img = int(np.sum(starts + self.tokens_per_image <= cut))
      if n_img < len(starts) and starts[n_img] < cut:
        cut = int(starts[n_img])  # do not keep a partial image
    if cut < len(ids) and self.pack > 1 and T < self.seq_len + 1:
      return ids[:0], mask[:0], [], len(ids)    # does not fit behind the row's earlier samples: no decoding
    pixels = [preprocess(ref, self.family, self.resolution) for ref in sample.images[:n_img]] if not self.blind else []
    return ids[:cut], mask[:cut], pixels, len(ids)

  def skip_bad_record(self, sample: Sample, error, consequence: str) -> None:
    """A sample that failed at batch time: raise (``on_error="raise"``) or count it and log ``consequence``."""
    label = f"{sample.where} id={sample.id}"
    if self.on_error == "raise":
      raise ValueError(f"{label}: {error.reason} ({error.detail})") from None
    self.stats.skip(label, error.reason, error.detail)
    log.warning("%s: %s (%s); %s", label, error.reason, error.detail, consequence)

  def _compute(self, step: int, process_index: int = 0, process_count: int = 1) -> dict[str, np.ndarray]:
    rows = process_rows(self.batch_size, process_index, process_count)
    R, T, K, res = len(rows), self.seq_len + 1, self.pack, self.resolution
    M = self.max_images * K
    tokens = np.full((R, T), self.tokenizer.pad_id, np.int32)
    on = np.zeros((R, T), np.float32)
    seg = np.zeros((R, T), np.int32)      # 0 = padding, 1.. = the row's samples
    pos = np.zeros((R, T), np.int32)
    images = np.zeros((R, M, res, res, 3), np.float32)
    image_mask = np.zeros((R, M), bool)
    for r, row in enumerate(rows):
      used, slot = 0, 0
      for j in range(K):
        sample = self.samples[self.sample_index((step * self.batch_size + row) * K + j)]
        try:
          ids, mask, pixels, whole = self._row(sample, T - used)
        except _BadRecord as e:
          self.skip_bad_record(sample, e, "it is left out of its row")
          continue
        if used and whole > len(ids):
          self.stats.skip(f"{sample.where} id={sample.id}", "pack overflow", f"{whole} ids > {T - used} left")
          continue
        n = len(ids)
        tokens[r, used:used + n], on[r, used:used + n] = ids, mask
        seg[r, used:used + n], pos[r, used:used + n] = j + 1, np.arange(n)
        for px in pixels:
          images[r, slot], image_mask[r, slot] = px, True
          slot += 1
        used += n
    loss_mask = (on[:, 1:] * (seg[:, 1:] > 0)).astype(np.float32)
    if self.loss_weighting == "example":
      tseg = seg[:, 1:]
      for j in range(1, K + 1):
        part = loss_mask * (tseg == j)
        loss_mask = np.where(tseg == j, part / np.maximum(part.sum(axis=1, keepdims=True), 1.0), loss_mask)
    return dict(inputs=tokens[:, :-1].copy(), targets=tokens[:, 1:].copy(),
                loss_mask=loss_mask, segment_ids=seg[:, :-1].copy(), positions=pos[:, :-1].copy(),
                images=images, image_mask=image_mask)

  def batch(self, step: int, process_index: int = 0, process_count: int = 1) -> dict[str, np.ndarray]:
    if self.workers <= 0:
      return self._compute(step, process_index, process_count)
    return self._workers.batch(self, step, process_index, process_count)

  def as_grain_dataset(self, process_index: int = 0, process_count: int = 1, start_step: int = 0,
                       num_steps: int = 2**40):
    """``grain.MapDataset`` whose element ``j`` is ``batch(start_step + j)`` for this process."""
    return grain_dataset(self, process_index, process_count, start_step, num_steps)

  # ---- checkpoint state

  def fingerprint(self) -> dict:
    return {"seed": self.seed, "seq_len": self.seq_len, "batch_size": self.batch_size, "family": self.family,
            "resolution": self.resolution, "max_images": self.max_images, "tokens_per_image": self.tokens_per_image,
            "image_token_id": self.image_token_id, "blind": self.blind, "tokenizer": repr(self.tokenizer),
            "template": dataclasses.asdict(self.template), "samples": len(self.samples), "data_sha256": self.digest,
            # only when not the default, so runs checkpointed before the option existed still resume
            **({"loss_weighting": self.loss_weighting} if self.loss_weighting != "token" else {}),
            **({"pack": self.pack} if self.pack != 1 else {})}

  def state(self, step: int) -> dict:
    return {"kind": "multimodal", "next_step": int(step), **self.fingerprint()}

  def check_state(self, state: dict) -> None:
    mine = self.fingerprint()
    keys = list(mine) + [k for k in state if k not in mine and k not in ("kind", "next_step")]
    changes = [f"{k} {state.get(k)!r} -> {mine.get(k)!r}" for k in keys if state.get(k) != mine.get(k)]
    if state.get("kind") != "multimodal":
      changes.insert(0, f"data kind {state.get('kind')!r} -> 'multimodal'")
    refuse_state_changes(changes, self.allow_data_change, "data.allow_data_change")


def make_multimodal_source(data_cfg, batch_size: int, seq_len: int, seed: int) -> MultimodalSource:
  """``data.kind="multimodal"``: ``data.sources`` (a list of read_samples specs, concatenated in
  order), ``data.tokenizer`` (a load_tokenizer spec), and optional ``family``, ``resolution``,
  ``max_images``, ``tokens_per_image``, ``image_token_id``, ``blind``, ``workers``, ``on_error``,
  ``allow_data_change``, ``loss_weighting``, ``pack``."""
  def get(k, d=None):
    return data_cfg.get(k, d) if hasattr(data_cfg, "get") else getattr(data_cfg, k, d)
  if not get("sources") or not get("tokenizer"):
    raise ValueError("data.kind='multimodal' needs data.sources (reader specs) and data.tokenizer")
  on_error = get("on_error") or "skip"
  samples = []
  for spec in get("sources"):
    spec = dict(spec.to_dict() if hasattr(spec, "to_dict") else spec)
    spec.setdefault("on_error", on_error)
    stats = ReadStats()
    samples.extend(read_samples(spec, stats))
    log.info("multimodal source %s: %s", spec.get("source") or spec.get("kind"), stats.summary())
  return MultimodalSource(samples, str(get("tokenizer")), batch_size=batch_size, seq_len=seq_len, seed=seed,
                          family=get("family") or "siglip", resolution=get("resolution"),
                          max_images=int(get("max_images", 1)), tokens_per_image=int(get("tokens_per_image", 576)),
                          image_token_id=get("image_token_id"), blind=bool(get("blind", False)), on_error=on_error,
                          workers=int(get("workers", 0) or 0), allow_data_change=bool(get("allow_data_change", False)),
                          loss_weighting=get("loss_weighting") or "token", pack=int(get("pack", 1) or 1))
