"""Small, format-exact copies of the Vision-Centric benchmarks' published layouts (and MMVP's).

``WRITERS[name](folder)`` writes benchmark ``name`` into ``folder`` (its ``Benchmark.folder`` under a data
root). The three CV-Bench benchmarks (coco, ade, omni3d) share the folder ``cv_bench`` and all write the same
two files, so writing twice is harmless. The ``*_rows`` functions return the rows (tests edit them to make bad
rows) and the ``write_*`` functions take optional ``rows``. Images are real 16x16 solid-colour PNG / JPEG bytes
in HF ``Image`` structs (struct<bytes: binary, path: string>).

  realworldqa  lmms-lab/RealWorldQA: data/test-00000-of-00002.parquet, data/test-00001-of-00002.parquet
               (image, question, answer): 6 rows; MC with 3, 4 ("car" / "race car") and 2 options, two open
               items ("2", "green") and a letter gold without listed options (open by rule).
  blink        BLINK-Benchmark/BLINK: <Task>/val-00000-of-00001.parquet for the 6 pooled tasks (Counting has
               2 rows; 7 in all), plus an ignored Art_Style task and a Counting test split with hidden answers.
  cv_bench     nyu-visionx/CV-Bench: test_2d.parquet (COCO x3, ADE20K x2) and test_3d.parquet (Omni3D x3).
  mmvp         MMVP/MMVP: Questions.csv + "MMVP Images/<Index>.jpg" for Index 1, 2, 3, 4, 99, 100 (99/100 carry
               the original, uncorrected answers). ``write_mmvp_parquet`` writes the lmms-lab-eval/MMVP layout
               (data/train-00000-of-00001.parquet, corrected answers).
"""

from __future__ import annotations

import csv
import io
import pathlib

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
COLORS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black", "gray", "cyan"]


def image_bytes(color: str, fmt: str = "PNG") -> bytes:
  buffer = io.BytesIO()
  Image.new("RGB", (16, 16), color).save(buffer, format=fmt)
  return buffer.getvalue()


def hf_image(color: str, name: str | None = None) -> dict:
  return {"bytes": image_bytes(color), "path": name or f"{color}.png"}


def write_parquet(path: pathlib.Path, rows: list[dict], schema: pa.Schema) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  columns = {f.name: [r.get(f.name) for r in rows] for f in schema}
  pq.write_table(pa.Table.from_pydict(columns, schema=schema), path)


# ---------------------------------------------------------------------------------------------
# RealWorldQA

RWQA_SCHEMA = pa.schema([("image", IMAGE_TYPE), ("question", pa.string()), ("answer", pa.string())])
RWQA_LETTER = "Please answer directly with only the letter of the correct option and nothing else."
RWQA_SHORT = "Please answer directly with a single word or number."


def realworldqa_rows() -> list[dict]:
  return [
      {"question": "In which direction is the front wheel of the car on the right side facing?\n\nA. Left\n"
                   f"B. Straight\nC. Right\n\n{RWQA_LETTER}", "answer": "C", "image": hf_image("red")},
      {"question": f"Which vehicle is closest to the camera?\nA. car\nB. race car\nC. truck\nD. bus\n{RWQA_LETTER}",
       "answer": "B", "image": hf_image("green")},
      {"question": f"How many pedestrians are crossing the road?\n{RWQA_SHORT}", "answer": "2",
       "image": hf_image("blue")},
      {"question": f"What color is the traffic light?\n{RWQA_SHORT}", "answer": "green", "image": hf_image("yellow")},
      {"question": f"Is the road wet?\nA. Yes\nB. No\n{RWQA_LETTER}", "answer": "B", "image": hf_image("purple")},
      {"question": f"Which letter is painted on the closest parking bay?\n{RWQA_SHORT}", "answer": "B",
       "image": hf_image("orange")},
  ]


def write_realworldqa(folder: pathlib.Path, rows: list[dict] | None = None) -> None:
  rows = realworldqa_rows() if rows is None else rows
  folder = pathlib.Path(folder)
  write_parquet(folder / "data" / "test-00000-of-00002.parquet", rows[:3], RWQA_SCHEMA)
  write_parquet(folder / "data" / "test-00001-of-00002.parquet", rows[3:], RWQA_SCHEMA)


# ---------------------------------------------------------------------------------------------
# BLINK

BLINK_SCHEMA = pa.schema([
    ("idx", pa.string()), ("question", pa.string()), ("sub_task", pa.string()),
    ("image_1", IMAGE_TYPE), ("image_2", IMAGE_TYPE), ("image_3", IMAGE_TYPE), ("image_4", IMAGE_TYPE),
    ("choices", pa.list_(pa.string())), ("answer", pa.string()), ("prompt", pa.string()),
    ("explanation", pa.string())])


def _blink_row(task: str, n: int, question: str, choices: list[str], answer: str, color: str) -> dict:
  options = "\n".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(choices))
  return {"idx": f"val_{task}_{n}", "question": question, "sub_task": task.replace("_", " "),
          "image_1": hf_image(color), "image_2": None, "image_3": None, "image_4": None, "choices": choices,
          "answer": answer, "prompt": f"{question}\nSelect from the following choices.\n{options}",
          "explanation": ""}


def blink_rows() -> dict[str, list[dict]]:
  """Rows per task folder (the 6 pooled tasks)."""
  return {
      "Counting": [
          _blink_row("Counting", 1, "How many blue floats are there?", ["0", "3", "2", "1"], "(B)", "red"),
          _blink_row("Counting", 2, "How many dogs are in the image?", ["1", "2", "3", "4"], "(A)", "green")],
      "IQ_Test": [_blink_row("IQ_Test", 1, "Which image completes the pattern?", ["first", "second", "third",
                                                                                  "fourth"], "(D)", "blue")],
      "Object_Localization": [_blink_row("Object_Localization", 1, "Which bounding box covers the cat?",
                                         ["the red box", "the blue box"], "(A)", "yellow")],
      "Relative_Depth": [_blink_row("Relative_Depth", 1, "Which point is closer to the camera?",
                                    ["point A is closer", "point B is closer"], "(B)", "purple")],
      "Relative_Reflectance": [_blink_row("Relative_Reflectance", 1, "Which point has darker surface colour?",
                                          ["A is darker", "B is darker", "About the same"], "(C)", "orange")],
      "Spatial_Relation": [_blink_row("Spatial_Relation", 1, "Is the cup to the left of the laptop?",
                                      ["yes", "no"], "(A)", "white")],
  }


def write_blink(folder: pathlib.Path, rows: dict[str, list[dict]] | None = None) -> None:
  rows = blink_rows() if rows is None else rows
  folder = pathlib.Path(folder)
  for task, task_rows in rows.items():
    write_parquet(folder / task / "val-00000-of-00001.parquet", task_rows, BLINK_SCHEMA)
  # Not pooled by Cambrian: must be ignored. The test split hides its answers: must not be read.
  art = _blink_row("Art_Style", 1, "Which painting shares the style?", ["first", "second"], "(A)", "gray")
  write_parquet(folder / "Art_Style" / "val-00000-of-00001.parquet", [art], BLINK_SCHEMA)
  hidden = dict(_blink_row("Counting", 1, "How many cars?", ["1", "2", "3", "4"], "", "black"), idx="test_Counting_1")
  write_parquet(folder / "Counting" / "test-00000-of-00001.parquet", [hidden], BLINK_SCHEMA)


# ---------------------------------------------------------------------------------------------
# CV-Bench

CV_BENCH_SCHEMA = pa.schema([
    ("idx", pa.int64()), ("type", pa.string()), ("task", pa.string()), ("image", IMAGE_TYPE),
    ("question", pa.string()), ("choices", pa.list_(pa.string())), ("answer", pa.string()), ("prompt", pa.string()),
    ("filename", pa.string()), ("source", pa.string()), ("source_dataset", pa.string()),
    ("source_filename", pa.string()), ("target_class", pa.string()), ("target_size", pa.int64()),
    ("bbox", pa.list_(pa.list_(pa.float64())))])


def _cv_row(idx: int, kind: str, task: str, source: str, question: str, choices: list[str], answer: str,
            color: str) -> dict:
  options = "\n".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(choices))
  folder = {"Count": "count", "Relation": "relation", "Depth": "depth", "Distance": "distance"}[task]
  filename = f"img/{kind}/{folder}/{source.lower()}_{idx}.png"
  return {"idx": idx, "type": kind, "task": task, "image": hf_image(color, filename), "question": question,
          "choices": choices, "answer": answer, "prompt": f"{question} Select from the following choices.\n{options}",
          "filename": filename, "source": source, "source_dataset": f"{source} Validation Set",
          "source_filename": f"{source.lower()}_{idx}.jpg", "target_class": None, "target_size": None, "bbox": None}


def cv_bench_rows() -> dict[str, list[dict]]:
  """{"2D": rows of test_2d.parquet, "3D": rows of test_3d.parquet}."""
  return {
      "2D": [
          _cv_row(0, "2D", "Count", "ADE20K", "How many organs are in the image?", ["3", "2", "1", "0"], "(C)", "red"),
          _cv_row(1, "2D", "Relation", "ADE20K", "Considering the relative positions of the lamp (annotated by the "
                  "red box) and the bed (annotated by the blue box) in the image provided, where is the lamp "
                  "(annotated by the red box) located with respect to the bed (annotated by the blue box)?",
                  ["left", "right"], "(A)", "green"),
          _cv_row(2, "2D", "Count", "COCO", "How many cars are in the image?", ["0", "1", "2", "3", "4"], "(D)",
                  "blue"),
          _cv_row(3, "2D", "Relation", "COCO", "Considering the relative positions of the dog (annotated by the red "
                  "box) and the sofa (annotated by the blue box) in the image provided, where is the dog (annotated "
                  "by the red box) located with respect to the sofa (annotated by the blue box)?",
                  ["above", "below"], "(B)", "yellow"),
          _cv_row(4, "2D", "Count", "COCO", "How many people are in the image?", ["1", "2", "3", "4", "5"], "(A)",
                  "purple")],
      "3D": [
          _cv_row(1438, "3D", "Depth", "Omni3D", "Which object is closer to the camera taking this photo, the lamp "
                  "(highlighted by a red box) or the chair (highlighted by a blue box)?", ["lamp", "chair"], "(B)",
                  "orange"),
          _cv_row(1439, "3D", "Depth", "Omni3D", "Which object is closer to the camera taking this photo, the table "
                  "(highlighted by a red box) or the shelves (highlighted by a blue box)?", ["table", "shelves"],
                  "(A)", "white"),
          _cv_row(2038, "3D", "Distance", "Omni3D", "Estimate the real-world distances between objects in this "
                  "image. Which object is closer to the pillow (highlighted by a red box), the bed (highlighted by "
                  "a blue box) or the nightstand (highlighted by a green box)?", ["bed", "nightstand"], "(B)",
                  "gray")],
  }


def write_cv_bench(folder: pathlib.Path, rows: dict[str, list[dict]] | None = None) -> None:
  rows = cv_bench_rows() if rows is None else rows
  folder = pathlib.Path(folder)
  write_parquet(folder / "test_2d.parquet", rows["2D"], CV_BENCH_SCHEMA)
  write_parquet(folder / "test_3d.parquet", rows["3D"], CV_BENCH_SCHEMA)


def write_cv_bench_default(folder: pathlib.Path) -> None:
  """The older single-file layout (config ``default``): test.parquet with all rows."""
  rows = cv_bench_rows()
  write_parquet(pathlib.Path(folder) / "test.parquet", rows["2D"] + rows["3D"], CV_BENCH_SCHEMA)


# ---------------------------------------------------------------------------------------------
# MMVP

MMVP_HEADER = ["Index", "Question", "Options", "Correct Answer"]


def mmvp_rows() -> list[list[str]]:
  """Questions.csv rows (original release; 99/100 uncorrected)."""
  butterfly = "Are the butterfly's wings closer to being open or closed?"
  dog = "Is the dog facing left or right from the camera's perspective?"
  tusks = "Does the elephant have long or short tusks?"
  return [
      ["1", butterfly, "(a) Open (b) Closed", "(a)"],
      ["2", butterfly, "(a) Open (b) Closed", "(b)"],
      ["3", dog, "(a) Left (b) Right", "(b)"],
      ["4", dog, "(a) Left (b) Right", "(a)"],
      ["99", tusks, "(a) Long (b) Short", "(a)"],
      ["100", tusks, "(a) Long (b) Short", "(b)"],
  ]


def write_mmvp(folder: pathlib.Path, rows: list[list[str]] | None = None, header: list[str] | None = None) -> None:
  rows = mmvp_rows() if rows is None else rows
  folder = pathlib.Path(folder)
  (folder / "MMVP Images").mkdir(parents=True, exist_ok=True)
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator="\n")
  writer.writerow(header or MMVP_HEADER)
  writer.writerows(rows)
  (folder / "Questions.csv").write_text(buffer.getvalue(), encoding="utf-8")
  for n, row in enumerate(rows):
    if row and row[0].strip().isdigit():
      (folder / "MMVP Images" / f"{row[0].strip()}.jpg").write_bytes(image_bytes(COLORS[n % len(COLORS)], "JPEG"))


MMVP_SCHEMA = pa.schema([("Index", pa.int32()), ("Question", pa.string()), ("Options", pa.string()),
                         ("Correct Answer", pa.string()), ("image", IMAGE_TYPE)])


def write_mmvp_parquet(folder: pathlib.Path) -> None:
  """lmms-lab-eval/MMVP: data/train-00000-of-00001.parquet with the corrected answers (99 -> (b), 100 -> (a))."""
  fixed = {"99": "(b)", "100": "(a)"}
  rows = [{"Index": int(r[0]), "Question": r[1], "Options": r[2], "Correct Answer": fixed.get(r[0], r[3]),
           "image": hf_image(COLORS[n], f"{r[0]}.jpg")} for n, r in enumerate(mmvp_rows())]
  write_parquet(pathlib.Path(folder) / "data" / "train-00000-of-00001.parquet", rows, MMVP_SCHEMA)


WRITERS = {
    "realworldqa": write_realworldqa,
    "blink": write_blink,
    "coco": write_cv_bench,
    "ade": write_cv_bench,
    "omni3d": write_cv_bench,
    "mmvp": write_mmvp,
}
