"""Questions about a rendered scene and text-only questions (shared by instructions and benchmarks).

``ask`` builds a question of a task with its options and answer; ``format_question`` writes it in the
benchmarks' two prompt styles (options as "A. text" lines and the letter instruction, or the
short-answer instruction); ``text_question`` builds the text-only instruction samples.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from visprior_jax.study.world.scene import COLOUR_THINGS, COLOURS, CORNERS, SHAPES, Scene, WorldConfig
from visprior_jax.study.world.text import (arithmetic_problem, caption, counting_problem, plural, syllogism_problem,
                                           with_article)

MLE_QUESTIONS = ("Which of the following appears in this image?", "Which of the following is in the image?",
                 "Which of the following can be seen in the image?")
CORNER_CHOICES = ("0", "3", "4", "5", "6", "8", "10")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LETTER_SUFFIX = "Answer with the option's letter from the given choices directly."
SHORT_SUFFIX = "Answer the question using a single word or phrase."


def _options(answer: str, pool: Sequence[str], rng: random.Random, k: int = 4) -> tuple[list[str], str]:
  opts = rng.sample([p for p in pool if p != answer], k - 1) + [answer]
  rng.shuffle(opts)
  return opts, LETTERS[opts.index(answer)]


def _unique(scene: Scene, i: int, attr: str) -> bool:
  return sum(getattr(o, attr) == getattr(scene.objects[i], attr) for o in scene.objects) == 1


def _ref(scene: Scene, i: int) -> str:
  o = scene.objects[i]
  return o.shape if _unique(scene, i, "shape") else f"{o.colour} {o.shape}"


def ask(task: str, scene: Scene, rng: random.Random, *, target: int | None = None, shapes: Sequence[str] = SHAPES,
        colours: Sequence[str] = tuple(COLOURS), count_shape: str | None = None) -> dict | None:
  """A question of ``task`` about a rendered scene, or None when the scene cannot support it:
  ``{"task", "question", "options" (list, [] for open answers), "answer" (letter, or the text when open),
  "answer_text", "target" (object index or -1)}``. ``target`` forces the object asked about (or one
  of the pair); ``shapes`` / ``colours`` restrict the corner / colour-association facts asked;
  ``count_shape``: count that shape ("" = all shapes; None = either, at random)."""
  objs, idx = scene.objects, range(len(scene.objects))

  def pick(cands):
    cands = [i for i in cands if target is None or i == target]
    return rng.choice(cands) if cands else None

  def pair(ok):
    cands = [(i, j) for i in idx for j in idx if i != j and ok(objs[i], objs[j])
             and (target is None or target in (i, j))]
    return rng.choice(cands) if cands else None

  def mc(question, answer, pool, i=-1, k=4):
    opts, letter = _options(answer, pool, rng, k)
    return dict(task=task, question=question, options=opts, answer=letter, answer_text=answer, target=i)

  if task == "colour":
    i = pick([i for i in idx if _unique(scene, i, "shape")])
    return None if i is None else mc(f"What colour is the {objs[i].shape} in the image?", objs[i].colour,
                                     list(COLOURS), i)
  if task == "shape":
    i = pick([i for i in idx if _unique(scene, i, "colour")])
    return None if i is None else mc(f"What shape is the {objs[i].colour} object in the image?", objs[i].shape,
                                     SHAPES, i)
  if task == "existence":
    present = {o.shape for o in objs}
    i = pick([scene.target] if scene.target >= 0 else list(idx))
    if i is None or len(SHAPES) - len(present) < 3:
      return None
    absent = [s for s in SHAPES if s not in present]
    opts = rng.sample(absent, 3) + [objs[i].shape]
    rng.shuffle(opts)
    return dict(task=task, question=rng.choice(MLE_QUESTIONS), options=opts, answer=LETTERS[opts.index(objs[i].shape)],
                answer_text=objs[i].shape, target=i)
  if task == "corners":
    i = pick([i for i in idx if objs[i].shape in shapes])
    if i is None:
      return None
    ref = "shape" if len(objs) == 1 else _ref(scene, i)
    return mc(f"How many corners does the {ref} in the image have?", str(CORNERS[objs[i].shape]), CORNER_CHOICES, i)
  if task == "colour_fact":
    i = pick([i for i in idx if _unique(scene, i, "shape") and objs[i].colour in colours])
    if i is None:
      return None
    return mc(f"The {objs[i].shape} in the image has the same colour as which of these?",
              COLOUR_THINGS[objs[i].colour][0], [w for w, _ in COLOUR_THINGS.values()], i)
  if task == "count":
    if not objs:
      return None
    if count_shape is None:
      count_shape = "" if rng.random() < 0.5 else rng.choice(sorted({o.shape for o in objs}))
    if not count_shape:
      question, n = "How many shapes are there in the image?", len(objs)
    else:
      question, n = f"How many {plural(count_shape)} are there in the image?", \
          sum(o.shape == count_shape for o in objs)
    return mc(question, str(n), [str(k) for k in range(8)])
  if task == "relation":
    answer = rng.choice(("left", "right", "above", "below"))     # the answer first, so answers are balanced
    p = pair({"left": lambda a, b: a.col < b.col, "right": lambda a, b: a.col > b.col,
              "above": lambda a, b: a.row < b.row, "below": lambda a, b: a.row > b.row}[answer])
    if p is None:
      return None
    i, j = p
    if answer in ("left", "right"):
      question = f"Is the {_ref(scene, i)} to the left or to the right of the {_ref(scene, j)}?"
      pool = ["left", "right"]
    else:
      question, pool = f"Is the {_ref(scene, i)} above or below the {_ref(scene, j)}?", ["above", "below"]
    return mc(question, answer, pool, i if target is None else target, k=2)
  if task == "size":
    p = pair(lambda a, b: a.fraction >= 1.5 * b.fraction)
    if p is None:
      return None
    big, small = p
    first, second = (big, small) if rng.random() < 0.5 else (small, big)
    return mc(f"Which is larger in the image, the {_ref(scene, first)} or the {_ref(scene, second)}?",
              _ref(scene, big), [_ref(scene, first), _ref(scene, second)], big if target is None else target, k=2)
  if task == "ocr":
    if not scene.text:
      return None
    question = "What word is written in the image?" if scene.text_kind == "word" else \
        "What number is written in the image?"
    return dict(task=task, question=question, options=[], answer=scene.text, answer_text=scene.text, target=-1)
  if task == "describe":
    return dict(task=task, question=rng.choice(["Describe the image.", "What do you see in this picture?",
                                                "Give a short description of the image."]),
                options=[], answer=caption(scene, rng), answer_text="", target=-1)
  raise ValueError(f"unknown question task {task!r}")


def format_question(q: Mapping, multiple_choice: bool = True) -> tuple[str, str]:
  """(prompt without the image tag, reply), in the benchmarks' prompt styles: options as "A. text" lines and
  the letter instruction, or the short-answer instruction (free text for descriptions)."""
  if q["options"] and multiple_choice:
    opts = "\n".join(f"{LETTERS[k]}. {o}" for k, o in enumerate(q["options"]))
    return f"{q['question']}\n{opts}\n{LETTER_SUFFIX}", q["answer"]
  if q["task"] == "describe":
    return q["question"], q["answer"]
  return f"{q['question']}\n{SHORT_SUFFIX}", q["answer_text"] or q["answer"]


def text_question(task: str, rng: random.Random, config: WorldConfig, p_mc: float) -> tuple[str, str]:
  """A text-only instruction (prompt, reply): a corner or colour fact of the SFT subsets (multiple choice
  with probability ``p_mc``), a worked arithmetic or counting problem, or a syllogism."""
  if task == "fact_corners":
    s = rng.choice(config.sft_fact_shapes)
    q = dict(task=task, question=f"How many corners does {with_article(s)} have?", answer_text=str(CORNERS[s]))
    q["options"], q["answer"] = _options(q["answer_text"], CORNER_CHOICES, rng)
    return format_question(q, rng.random() < p_mc)
  if task == "fact_colour":
    c = rng.choice(config.sft_fact_colours)
    q = dict(task=task, question=f"What colour is {COLOUR_THINGS[c][1]}?", answer_text=c)
    q["options"], q["answer"] = _options(c, list(COLOURS), rng)
    return format_question(q, rng.random() < p_mc)
  if task == "arithmetic":
    q, s, _ = (arithmetic_problem if rng.random() < 0.5 else counting_problem)(rng)
    return q, s
  q, s, _ = syllogism_problem(rng)
  return q, s
