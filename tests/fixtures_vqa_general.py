"""Format-exact miniature copies of the General and Knowledge benchmarks' published layouts.

``WRITERS[name](folder)`` writes a few hand-picked rows of benchmark ``name`` into ``folder`` (the
benchmark's ``folder`` under data_root) with the real file names, column names and Arrow types
(HF ``Image`` = struct<bytes: binary, path: string> holding real 16x16 PNG bytes). Writing twice
overwrites the same files. ``write_<name>(folder, rows)`` take other rows for the error tests;
``<NAME>_ROWS`` are the default rows.
"""

from __future__ import annotations

import io
import pathlib
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def png(color=(255, 0, 0), size=16) -> bytes:
  buf = io.BytesIO()
  Image.new("RGB", (size, size), color).save(buf, format="PNG")
  return buf.getvalue()


def img(color=(255, 0, 0), name="image.png") -> dict:
  return {"bytes": png(color), "path": name}


RED, GREEN, BLUE, GREY, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (128, 128, 128), (255, 255, 0)
NO_IMAGE = {"bytes": None, "path": None}


def _write(path: pathlib.Path, rows: list[dict], schema: pa.Schema) -> None:
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  table = pa.Table.from_pylist(rows, schema=schema)
  pq.write_table(table, path)


# ---------------------------------------------------------------------------------------------
# GQA: two configs, joined on imageId -> id

GQA_TYPES = pa.struct([("structural", pa.string()), ("semantic", pa.string()), ("detailed", pa.string())])
GQA_Q_SCHEMA = pa.schema([("id", pa.string()), ("imageId", pa.string()), ("question", pa.string()),
                          ("answer", pa.string()), ("fullAnswer", pa.string()), ("isBalanced", pa.bool_()),
                          ("types", GQA_TYPES)])
GQA_I_SCHEMA = pa.schema([("id", pa.string()), ("image", IMAGE)])


def _gqa_q(qid, image_id, question, answer, full):
  return {"id": qid, "imageId": image_id, "question": question, "answer": answer, "fullAnswer": full,
          "isBalanced": True, "types": {"structural": "query", "semantic": "attr", "detailed": "colorSimple"}}


GQA_ROWS = [
    _gqa_q("201307251", "n161313", "Is it overcast?", "no", "No, it is clear."),
    _gqa_q("201640614", "n161313", "Who is wearing the dress?", "woman", "The woman is wearing a dress."),
    _gqa_q("202225914", "n235859", "What color is the car?", "white", "The car is white."),
    _gqa_q("202225915", "n235859", "On which side is the fork?", "left", "The fork is on the left of the image."),
]
GQA_IMAGES = [{"id": "n161313", "image": img(BLUE, "n161313.jpg")},
              {"id": "n235859", "image": img(GREY, "n235859.jpg")}]


def write_gqa(folder, rows=None, images=None) -> None:
  folder = pathlib.Path(folder)
  _write(folder / "testdev_balanced_instructions" / "testdev-00000-of-00001.parquet",
         GQA_ROWS if rows is None else rows, GQA_Q_SCHEMA)
  _write(folder / "testdev_balanced_images" / "testdev-00000-of-00001.parquet",
         GQA_IMAGES if images is None else images, GQA_I_SCHEMA)


# ---------------------------------------------------------------------------------------------
# MME: data/test-*.parquet, two questions per image

MME_SCHEMA = pa.schema([("question_id", pa.string()), ("image", IMAGE), ("question", pa.string()),
                        ("answer", pa.string()), ("category", pa.string())])
_YN = " Please answer yes or no."
MME_ROWS = [
    {"question_id": "existence/000000000139.jpg", "image": img(RED), "question": "Is there a tv in this image?" + _YN,
     "answer": "Yes", "category": "existence"},
    {"question_id": "existence/000000000139.jpg", "image": img(RED), "question": "Is there a dog in this image?" + _YN,
     "answer": "No", "category": "existence"},
    {"question_id": "count/000000000632.jpg", "image": img(GREEN), "question": "Are there two bottles in the image?"
     + _YN, "answer": "Yes", "category": "count"},
    {"question_id": "count/000000000632.jpg", "image": img(GREEN), "question": "Are there three bottles in the image?"
     + _YN, "answer": "No", "category": "count"},
    {"question_id": "code_reasoning/0020.png", "image": img(GREY), "question": "Is the output of the code 12?" + _YN,
     "answer": "Yes", "category": "code_reasoning"},
    {"question_id": "code_reasoning/0020.png", "image": img(GREY), "question": "Is the output of the code 21?" + _YN,
     "answer": "No", "category": "code_reasoning"},
]


def write_mme(folder, rows=None) -> None:
  _write(pathlib.Path(folder) / "data" / "test-00000-of-00001.parquet", MME_ROWS if rows is None else rows,
         MME_SCHEMA)


# ---------------------------------------------------------------------------------------------
# MMBench (lmms-lab/MMBench_EN): data/dev-*.parquet, circular copies as separate rows

MMBENCH_SCHEMA = pa.schema([("index", pa.int64()), ("question", pa.string()), ("hint", pa.string()),
                            ("A", pa.string()), ("B", pa.string()), ("C", pa.string()), ("D", pa.string()),
                            ("answer", pa.string()), ("category", pa.string()), ("image", IMAGE),
                            ("source", pa.string()), ("l2-category", pa.string()), ("comment", pa.string()),
                            ("split", pa.string())])


def _mmb(index, question, hint, opts, answer, color, category="color_recognition", source="MMBench"):
  opts = list(opts) + ["nan"] * (4 - len(opts))
  return {"index": index, "question": question, "hint": hint, "A": opts[0], "B": opts[1], "C": opts[2],
          "D": opts[3], "answer": answer, "category": category, "image": img(color), "source": source,
          "l2-category": "fine-grained_perception", "comment": "nan", "split": "dev"}


_SKY = "What is the color of the sky in the image?"
_SHAPE = "Which shape is shown?"
MMBENCH_ROWS = [
    # group 1: lmms-eval / VLMEvalKit index scheme (k * 1e6 + i), four options rotated
    _mmb(0, _SKY, "nan", ["blue", "red", "green", "yellow"], "A", BLUE),
    _mmb(1000000, _SKY, "nan", ["red", "green", "yellow", "blue"], "D", BLUE),
    _mmb(2000000, _SKY, "nan", ["green", "yellow", "blue", "red"], "C", BLUE),
    # group 2: plain consecutive indices (only the content key groups them), 2 options, a hint
    _mmb(5, _SHAPE, "The image shows one shape.", ["circle", "square"], "B", GREEN, category="shape"),
    _mmb(6, _SHAPE, "The image shows one shape.", ["square", "circle"], "A", GREEN, category="shape"),
    # group 3: single copy, 3 options
    _mmb(7, "How many objects are there?", "nan", ["1", "2", "3"], "A", YELLOW, category="count"),
]


def write_mmbench(folder, rows=None) -> None:
  _write(pathlib.Path(folder) / "data" / "dev-00000-of-00001.parquet", MMBENCH_ROWS if rows is None else rows,
         MMBENCH_SCHEMA)


# ---------------------------------------------------------------------------------------------
# SEED-Bench: data/test-*.parquet, image is a list (video items hold several frames)

SEED_SCHEMA = pa.schema([("answer", pa.string()), ("choice_a", pa.string()), ("choice_b", pa.string()),
                         ("choice_c", pa.string()), ("choice_d", pa.string()), ("data_id", pa.string()),
                         ("data_type", pa.string()), ("question", pa.string()), ("question_id", pa.string()),
                         ("question_type_id", pa.int16()), ("image", pa.list_(IMAGE)),
                         ("segment", pa.list_(pa.int64()))])


def _seed(qid, question, choices, answer, qtype, images, data_type="image"):
  return {"answer": answer, "choice_a": choices[0], "choice_b": choices[1], "choice_c": choices[2],
          "choice_d": choices[3], "data_id": f"{qid}.jpg", "data_type": data_type, "question": question,
          "question_id": qid, "question_type_id": qtype, "image": images,
          "segment": [0, 8] if data_type == "video" else None}


SEED_ROWS = [
    _seed("101669", "How many towels are in the image?", ["One", "Two", "Three", "Four"], "A", 5, [img(RED)]),
    _seed("101670", "What is the main color of the image?", ["green", "red", "blue", "white"], "B", 1, [img(RED)]),
    _seed("101671", "Where is the car parked?", ["On a street", "In a garage", "On grass", "On a roof"], "C", 4,
          [img(GREY)]),
    _seed("v_2001", "What happens next in the video?", ["He jumps", "He sits", "He runs", "He sleeps"], "A", 10,
          [img(RED), img(GREEN), img(BLUE)], data_type="video"),
]


def write_seed(folder, rows=None) -> None:
  _write(pathlib.Path(folder) / "data" / "test-00000-of-00001.parquet", SEED_ROWS if rows is None else rows,
         SEED_SCHEMA)


# ---------------------------------------------------------------------------------------------
# ScienceQA: lmms-lab/ScienceQA config ScienceQA-IMG (also the derek-thomas layout for tests)

SQA_SCHEMA = pa.schema([("image", IMAGE), ("question", pa.string()), ("choices", pa.list_(pa.string())),
                        ("answer", pa.int8()), ("hint", pa.string()), ("task", pa.string()), ("grade", pa.string()),
                        ("subject", pa.string()), ("topic", pa.string()), ("category", pa.string()),
                        ("skill", pa.string()), ("lecture", pa.string()), ("solution", pa.string())])


def _sqa(question, choices, answer, hint="", image=None, subject="natural science"):
  return {"image": image, "question": question, "choices": choices, "answer": answer, "hint": hint,
          "task": "closed choice", "grade": "grade2", "subject": subject, "topic": "geography",
          "category": "Geography", "skill": "Read a map", "lecture": "", "solution": ""}


SQA_ROWS = [
    _sqa("Which of these states is farthest north?", ["West Virginia", "Louisiana", "Arizona", "Oklahoma"], 0,
         image=img(GREEN, "map.png"), subject="social science"),
    _sqa("Which animal's feet are also adapted for swimming?", ["duck", "cat"], 0,
         hint="Ducks live near water. The feet of the duck are adapted for swimming.", image=img(BLUE)),
    _sqa("What is the temperature of a hot bath?", ["40\u00b0C", "40\u00b0F", "40 K"], 0,
         hint="Select the better estimate.", image=img(RED)),
]


def write_scienceqa(folder, rows=None, layout="lmms") -> None:
  """``layout="lmms"``: ScienceQA-IMG/test-*.parquet; ``"derek"``: data/test-*-<hash>.parquet."""
  rel = ("ScienceQA-IMG/test-00000-of-00001.parquet" if layout == "lmms"
         else "data/test-00000-of-00001-f0e719df791966ff.parquet")
  _write(pathlib.Path(folder) / rel, SQA_ROWS if rows is None else rows, SQA_SCHEMA)


# ---------------------------------------------------------------------------------------------
# MMMU: data/validation-*.parquet, options as a string, image_1..image_7

MMMU_SCHEMA = pa.schema([("id", pa.string()), ("question", pa.string()), ("options", pa.string()),
                         ("explanation", pa.string())]
                        + [(f"image_{k}", IMAGE) for k in range(1, 8)]
                        + [("img_type", pa.string()), ("answer", pa.string()), ("topic_difficulty", pa.string()),
                           ("question_type", pa.string()), ("subfield", pa.string())])


def _mmmu(qid, question, options, answer, qtype, images=1):
  row = {"id": qid, "question": question, "options": options, "explanation": "", "img_type": "['Diagrams']",
         "answer": answer, "topic_difficulty": "Easy", "question_type": qtype, "subfield": "x"}
  colors = [RED, GREEN, BLUE, GREY, YELLOW, RED, GREEN]
  for k in range(1, 8):
    row[f"image_{k}"] = img(colors[k - 1], f"image_{k}.png") if k <= images else None
  return row


MMMU_ROWS = [
    _mmmu("validation_Art_Theory_1", "<image 1> Which artist painted this work?",
          "['Claude Monet', 'Vincent van Gogh', 'Pablo Picasso', 'Henri Matisse']", "B", "multiple-choice"),
    _mmmu("validation_Accounting_2", "Which statement about <image 1> and <image 2> is right?",
          "[\"It's a balance sheet\", 'It is an income statement', 'It is a cash flow statement']", "A",
          "multiple-choice", images=2),
    _mmmu("validation_Math_3", "<image 1> What is the value of x?", "[]", "5", "open"),
    _mmmu("validation_Physics_4", "What is the period of the pendulum in <image 1>? (in s)", "[]",
          "['3.5', '3.50']", "open"),
    _mmmu("validation_History_5", "In which city was the treaty shown in <image 1> signed?", "[]", "Paris", "open"),
]


def write_mmmu(folder, rows=None) -> None:
  _write(pathlib.Path(folder) / "data" / "validation-00000-of-00001.parquet", MMMU_ROWS if rows is None else rows,
         MMMU_SCHEMA)


# ---------------------------------------------------------------------------------------------
# AI2D: data/test-*.parquet, answer = option index as a string

AI2D_SCHEMA = pa.schema([("question", pa.string()), ("options", pa.list_(pa.string())), ("answer", pa.string()),
                         ("image", IMAGE)])
AI2D_ROWS = [
    {"question": "which of these define dairy item", "options": ["c", "D", "b", "a"], "answer": "1",
     "image": img(RED)},
    {"question": "What is the stage shown by label E?", "options": ["egg", "larva", "pupa", "adult"], "answer": "3",
     "image": img(GREEN)},
    {"question": "How many stages are shown?", "options": ["2", "4", "6"], "answer": "0", "image": img(BLUE)},
]


def write_ai2d(folder, rows=None) -> None:
  _write(pathlib.Path(folder) / "data" / "test-00000-of-00001.parquet", AI2D_ROWS if rows is None else rows,
         AI2D_SCHEMA)


# ---------------------------------------------------------------------------------------------
# MathVista: data/testmini-*.parquet, decoded_image holds the image

MV_META = pa.struct([("category", pa.string()), ("context", pa.string()), ("grade", pa.string()),
                     ("img_height", pa.int64()), ("img_width", pa.int64()), ("language", pa.string()),
                     ("skills", pa.list_(pa.string())), ("source", pa.string()), ("split", pa.string()),
                     ("task", pa.string())])
MATHVISTA_SCHEMA = pa.schema([("pid", pa.string()), ("question", pa.string()), ("image", pa.string()),
                              ("decoded_image", IMAGE), ("choices", pa.list_(pa.string())), ("unit", pa.string()),
                              ("precision", pa.float64()), ("answer", pa.string()), ("question_type", pa.string()),
                              ("answer_type", pa.string()), ("metadata", MV_META), ("query", pa.string())])


def _mv(pid, question, query, answer, qtype, atype, choices=None, precision=None, color=RED):
  return {"pid": pid, "question": question, "image": f"images/{pid}.jpg", "decoded_image": img(color, f"{pid}.jpg"),
          "choices": choices, "unit": None, "precision": precision, "answer": answer, "question_type": qtype,
          "answer_type": atype, "query": query,
          "metadata": {"category": "math-targeted-vqa" if qtype == "free_form" else "general-vqa",
                       "context": "synthetic scene", "grade": "daily life", "img_height": 16, "img_width": 16,
                       "language": "english", "skills": ["arithmetic reasoning"], "source": "fixture",
                       "split": "testmini", "task": "math word problem"}}


_MV_MC_HINT = "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end."
MATHVISTA_ROWS = [
    _mv("1", "What fraction of the shape is blue?",
        _MV_MC_HINT + "\nQuestion: What fraction of the shape is blue?\nChoices:\n(A) 3/11\n(B) 8/11\n(C) 6/11\n"
        "(D) 3/5",
        "8/11", "multi_choice", "text", choices=["3/11", "8/11", "6/11", "3/5"], color=BLUE),
    _mv("2", "Which number is missing?",
        "Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at "
        "the end.\nQuestion: Which number is missing?", "14", "free_form", "integer"),
    _mv("3", "What is the fraction of females facing the camera?",
        "Hint: Please answer the question requiring a floating-point number with one decimal place and provide the "
        "final value, e.g., 1.2, 1.3, 1.4, at the end.\nQuestion: What is the fraction of females facing the camera?",
        "0.6", "free_form", "float", precision=1.0),
    _mv("4", "How much money does Luca need to buy a sour apple candy and a butterscotch candy? (Unit: $)",
        "Hint: Please answer the question requiring a floating-point number with two decimal places and provide the "
        "final value, e.g., 1.23, 1.34, 1.45, at the end.\nQuestion: How much money does Luca need to buy a sour "
        "apple candy and a butterscotch candy? (Unit: $)", "1.45", "free_form", "float", precision=2.0),
    _mv("5", "Between which two years does the line graph saw its maximum peak?",
        "Hint: Please answer the question requiring a Python list as an answer and provide the final list, e.g., "
        "[1, 2, 3], [1.2, 1.3, 1.4], at the end.\nQuestion: Between which two years does the line graph saw its "
        "maximum peak?", "[2007, 2008]", "free_form", "list", color=GREY),
]


def write_mathvista(folder, rows=None) -> None:
  _write(pathlib.Path(folder) / "data" / "testmini-00000-of-00001-725687bf7a18d64b.parquet",
         MATHVISTA_ROWS if rows is None else rows, MATHVISTA_SCHEMA)


WRITERS: dict[str, Callable[[pathlib.Path], None]] = {
    "gqa": write_gqa, "mme": write_mme, "mmbench": write_mmbench, "seed": write_seed,
    "scienceqa": write_scienceqa, "mmmu": write_mmmu, "ai2d": write_ai2d, "mathvista": write_mathvista,
}
