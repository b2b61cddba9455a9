"""Tiny, format-exact copies of the published layouts of TextVQA, ChartQA, OCRBench, DocVQA and MLE-Bench.

``WRITERS[name](folder)`` writes the benchmark's files into ``folder`` (``data_root / bench.folder``);
writing twice overwrites the same files. Parquet columns and types follow each dataset card (HF ``Image``
columns as struct<bytes: binary, path: string> holding real 16x16 PNG bytes); MLE-Bench is the imagefolder
layout (data.jsonl + JPEG files). The rows are hand-picked for the metric edge cases the tests check. Every
writer takes ``extra_rows`` (appended as given, for malformed-row tests) and the row lists are module
constants so tests can refer to them.
"""

from __future__ import annotations

import io
import json
import pathlib

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
COLOURS = [(220, 30, 30), (30, 160, 60), (40, 60, 200), (230, 200, 40), (120, 40, 160), (20, 180, 190),
           (250, 130, 20), (90, 90, 90)]


def image_bytes(i: int, fmt: str = "PNG") -> bytes:
  buf = io.BytesIO()
  Image.new("RGB", (16, 16), COLOURS[i % len(COLOURS)]).save(buf, format=fmt)
  return buf.getvalue()


def hf_image(i: int, name: str | None = None) -> dict:
  return {"bytes": image_bytes(i), "path": name or f"{i}.png"}


def _write(path: pathlib.Path, rows: list[dict], schema: pa.Schema) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


# ---------------------------------------------------------------------------------------------
# TextVQA: lmms-lab/textvqa, data/validation-*.parquet

TEXTVQA_SCHEMA = pa.schema([
    ("image_id", pa.string()), ("question_id", pa.int32()), ("question", pa.string()),
    ("question_tokens", pa.list_(pa.string())), ("image", IMAGE_TYPE), ("image_width", pa.int32()),
    ("image_height", pa.int32()), ("flickr_original_url", pa.string()), ("flickr_300k_url", pa.string()),
    ("answers", pa.list_(pa.string())), ("image_classes", pa.list_(pa.string())), ("set_name", pa.string()),
    ("ocr_tokens", pa.list_(pa.string()))])

# (question_id, question, answers, ocr_tokens)
TEXTVQA_ROWS = [
    (34602, "what brand is the drink?", ["coca cola"] * 4 + ["coke"] * 3 + ["pepsi"] * 3, ["Coca-Cola", "ZERO"]),
    (34603, "how many bottles are there?", ["2"] * 7 + ["two"] * 3, ["2", "bottles"]),
    (34604, "what does the sign say?", ["stop"] + ["yield"] * 9, []),
    (34605, "who is the BAND on the poster?", ["the beatles"] * 10, ["THE", "BEATLES", "live"]),
]


def textvqa_row(i: int, qid: int, question: str, answers, ocr_tokens, image=True) -> dict:
  return {"image_id": f"{0xabc000 + i:016x}", "question_id": qid, "question": question,
          "question_tokens": question.rstrip("?").split(), "image": hf_image(i) if image else None,
          "image_width": 16, "image_height": 16, "flickr_original_url": f"https://example.org/{i}.jpg",
          "flickr_300k_url": f"https://example.org/300k/{i}.jpg", "answers": answers,
          "image_classes": ["Poster"], "set_name": "val", "ocr_tokens": ocr_tokens}


def write_textvqa(folder, extra_rows=()) -> None:
  rows = [textvqa_row(i, *r) for i, r in enumerate(TEXTVQA_ROWS)] + list(extra_rows)
  _write(pathlib.Path(folder) / "data" / "validation-00000-of-00001.parquet", rows, TEXTVQA_SCHEMA)


# ---------------------------------------------------------------------------------------------
# ChartQA: lmms-lab/ChartQA, data/test-*.parquet

CHARTQA_SCHEMA = pa.schema([("type", pa.string()), ("question", pa.string()), ("answer", pa.string()),
                            ("image", IMAGE_TYPE)])

# (type, question, answer)
CHARTQA_ROWS = [
    ("human_test", "What is the value of Japan in 2019?", "10"),
    ("human_test", "Is the red bar higher than the blue one?", "Yes"),
    ("augmented_test", "What is the share of Brazil?", "0.12"),
    ("augmented_test", "What is the lowest value in the chart?", "0"),
    ("augmented_test", "Which country has the largest value?", "Brazil"),
]


def chartqa_row(i: int, type_: str, question: str, answer, image=True) -> dict:
  return {"type": type_, "question": question, "answer": answer, "image": hf_image(i) if image else None}


def write_chartqa(folder, extra_rows=()) -> None:
  rows = [chartqa_row(i, *r) for i, r in enumerate(CHARTQA_ROWS)] + list(extra_rows)
  _write(pathlib.Path(folder) / "data" / "test-00000-of-00001.parquet", rows, CHARTQA_SCHEMA)


# ---------------------------------------------------------------------------------------------
# OCRBench: echo840/OCRBench, data/test-*.parquet

OCRBENCH_SCHEMA = pa.schema([("dataset", pa.string()), ("question", pa.string()), ("question_type", pa.string()),
                             ("answer", pa.list_(pa.string())), ("image", IMAGE_TYPE)])

# (dataset, question, question_type, answers)
OCRBENCH_ROWS = [
    ("IIIT5K", "what is written in the image?", "Regular Text Recognition", ["CENTRE"]),
    ("textVQA", "what is the name of the shop?", "Scene Text-centric VQA", ["hello world", "hello-world"]),
    ("HME100k", "Please write out the expression of the formula in the image using LaTeX format.",
     "Handwritten Mathematical Expression Recognition", ["\\frac { a } { b }"]),
    ("docVQA", "What is the total amount?", "Doc-oriented VQA", ["$12.50"]),
    ("IIIT5K", "what is written in the image?", "Regular Text Recognition", ["ABC"]),
]


def ocrbench_row(i: int, dataset: str, question: str, question_type: str, answers, image=True) -> dict:
  return {"dataset": dataset, "question": question, "question_type": question_type, "answer": answers,
          "image": hf_image(i) if image else None}


def write_ocrbench(folder, extra_rows=()) -> None:
  rows = [ocrbench_row(i, *r) for i, r in enumerate(OCRBENCH_ROWS)] + list(extra_rows)
  _write(pathlib.Path(folder) / "data" / "test-00000-of-00001.parquet", rows, OCRBENCH_SCHEMA)


# ---------------------------------------------------------------------------------------------
# DocVQA: lmms-lab/DocVQA config DocVQA, DocVQA/validation-*.parquet

DOCVQA_SCHEMA = pa.schema([
    ("questionId", pa.string()), ("question", pa.string()), ("question_types", pa.list_(pa.string())),
    ("image", IMAGE_TYPE), ("docId", pa.int64()), ("ucsf_document_id", pa.string()),
    ("ucsf_document_page_no", pa.string()), ("answers", pa.list_(pa.string())), ("data_split", pa.string())])

# (questionId, question, answers)
DOCVQA_ROWS = [
    ("49153", "What is the name of the company?", ["Hello World", "hello world inc."]),
    ("24580", "What is the code?", ["abd"]),
    ("57349", "To whom is the letter addressed?", ["abcd"]),
]


def docvqa_row(i: int, qid: str, question: str, answers, image=True) -> dict:
  return {"questionId": qid, "question": question, "question_types": ["layout"],
          "image": hf_image(i) if image else None, "docId": 14465 + i, "ucsf_document_id": f"txpn{i:04d}",
          "ucsf_document_page_no": "1", "answers": answers, "data_split": "val"}


def write_docvqa(folder, extra_rows=()) -> None:
  rows = [docvqa_row(i, *r) for i, r in enumerate(DOCVQA_ROWS)] + list(extra_rows)
  _write(pathlib.Path(folder) / "DocVQA" / "validation-00000-of-00001.parquet", rows, DOCVQA_SCHEMA)


# ---------------------------------------------------------------------------------------------
# MLE-Bench: JunlinHan/Multi-Level_Existence_Bench, imagefolder (data.jsonl + images)

QUESTIONS = ("Which of the following appears in this image?", "Which of the following is in the image?",
             "Which of the following can be seen in the image?")

# (file_name, question index, choices, answer, sub_task)
MLE_ROWS = [
    ("images/000001.jpg", 0, ["curtain", "television", "cabinet", "mirror"], "cabinet", "existence_0-30"),
    ("images/000002.jpg", 1, ["car", "race car", "boat", "tree"], "race car", "existence_0-30"),
    ("images/000003.jpg", 2, ["sky", "grass", "road", "wall"], "sky", "existence_30-60"),
    ("images/000004.jpg", 0, ["dog", "cat", "horse", "sheep"], "sheep", "existence_30-60"),
    ("images/000005.jpg", 1, ["floor", "ceiling", "window", "door"], "window", "existence_60-100"),
    ("images/000006.jpg", 2, ["sea", "sand", "mountain", "river"], "Sea", "existence_60-100"),
]


def mle_row(file_name: str, q: int, choices, answer: str, sub_task: str) -> dict:
  return {"file_name": file_name, "question": QUESTIONS[q], "choices": choices, "answer": answer,
          "answer_text": answer, "sub_task": sub_task}


def write_mle_bench(folder, extra_rows=(), metadata_name: str = "data.jsonl") -> None:
  """``extra_rows``: dicts (written as JSON; their images are written when named) or raw strings (a line)."""
  folder = pathlib.Path(folder)
  rows = [mle_row(*r) for r in MLE_ROWS] + list(extra_rows)
  (folder / metadata_name).parent.mkdir(parents=True, exist_ok=True)
  lines = []
  for i, row in enumerate(rows):
    if isinstance(row, str):
      lines.append(row)
      continue
    lines.append(json.dumps(row))
    name = row.get("file_name")
    if isinstance(name, str) and name:
      path = (folder / metadata_name).parent / name
      path.parent.mkdir(parents=True, exist_ok=True)
      path.write_bytes(image_bytes(i, "JPEG"))
  (folder / metadata_name).write_text("\n".join(lines) + "\n")


WRITERS = {
    "textvqa": write_textvqa,
    "textvqa_no_ocr": write_textvqa,
    "chartqa": write_chartqa,
    "ocrbench": write_ocrbench,
    "docvqa": write_docvqa,
    "mle_bench": write_mle_bench,
}
