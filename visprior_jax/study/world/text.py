"""Language: captions and descriptions of scenes, facts, reasoning problems, and the text sources.

Relations (left/right, above/below) are between grid cells. Text sources (``generate_documents``; the
``world`` kind of ``data/sources.py``): ``visual_world`` (scene descriptions with positions, relations,
sizes, counts, and facts about shapes, colours and everyday things of those shapes and colours),
``arithmetic`` (word problems with worked steps), ``counting`` (counting problems over shapes and
corners, with steps), ``syllogism`` (syllogisms, transitive comparisons of measured quantities, small
data analyses). Each is written the way text of its category reads, so the lexical labeller files it
there (visual_world: attribute + relationship, not concept: a world of shapes names few concrete
objects; arithmetic and counting: math; syllogism: science + math); every equation is written
``a op b = c`` and is correct (the tests check all).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from visprior_jax.study.world.sampling import sample_scene
from visprior_jax.study.world.scene import (COLOUR_THINGS, COLOURS, CORNERS, DEFAULT, SHAPES, Obj, Scene, WorldConfig,
                                            as_config, stream)

TEXTURE_WORDS = {"plain": "plain gray", "noise": "noisy gray", "stripes": "striped gray", "checks": "checked gray"}
# The reasoning pools name corner counts only of the shapes the instructions also teach, so the corners of
# circles, stars and diamonds (and four colour associations) are stated in the visual-world text alone: the
# study's control (facts only in that text) then measures that text and nothing else.
TAUGHT_SHAPES = DEFAULT.sft_fact_shapes
POSITIONS = {(0, 0): "in the top left corner", (0, 1): "at the top", (0, 2): "in the top right corner",
             (1, 0): "on the left", (1, 1): "in the middle", (1, 2): "on the right",
             (2, 0): "in the bottom left corner", (2, 1): "at the bottom", (2, 2): "in the bottom right corner"}
NUMBER_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
                "sixteen seventeen eighteen nineteen twenty").split()


def with_article(phrase: str) -> str:
  return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _cap(text: str) -> str:
  return text[:1].upper() + text[1:]


def _num(n: int) -> str:
  return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def plural(shape: str) -> str:
  return shape + "s"       # every shape name here takes a plain -s


# ---------------------------------------------------------------------------------------------
# Language about scenes


def _where(o: Obj) -> str:
  if o.fraction >= 0.6:
    return "filling most of the picture"
  if o.fraction >= 0.3:
    return "covering a large part of the picture"
  return POSITIONS[(o.row, o.col)]


def relations(a: Obj, b: Obj) -> list[str]:
  """True grid relations of a to b (cells differ in ordinary scenes)."""
  out = []
  if a.col != b.col:
    out.append("to the left of" if a.col < b.col else "to the right of")
  if a.row != b.row:
    out.append("above" if a.row < b.row else "below")
  return out


def _text_sentence(scene: Scene) -> str:
  what = f'the word "{scene.text}"' if scene.text_kind == "word" else f"the number {scene.text}"
  return f"{what} is written {'at the top' if scene.text_row == 0 else 'at the bottom'}"


def caption(scene: Scene, rng: random.Random) -> str:
  """One short caption (alignment / contrastive pairs): a list, relational, or counting style."""
  objs = list(scene.objects)
  desc = [f"{with_article(f'{o.size} {o.colour} {o.shape}')}" for o in objs]
  style = rng.randrange(3) if len(objs) >= 2 and scene.target < 0 else 0
  if not objs:
    parts = []
  elif style == 1:
    i, j = rng.sample(range(len(objs)), 2)
    parts = [f"{desc[i]} {rng.choice(relations(objs[i], objs[j]))} {desc[j]}"]
    parts += [f"{desc[k]} {_where(objs[k])}" for k in range(len(objs)) if k not in (i, j)]
  elif style == 2:
    parts = [f"{_num(len(objs))} shapes: " + ", ".join(desc[:-1]) + f" and {desc[-1]}"]
  else:
    parts = [f"{d} {_where(o)}" for d, o in zip(desc, objs)]
  if rng.random() < 0.5 or not objs:
    parts.append(f"on {with_article(TEXTURE_WORDS[scene.background])} background")
  text = ", ".join(parts)
  if scene.text:
    text += f"; {_text_sentence(scene)}"
  return text + "."


# Facts naming everyday things with the shapes and colours of this world (text only)
SHAPE_THINGS = {
    "circle": ("The wheels of a car are circles.", "A round table top is a circle.",
               "The full moon looks like a circle."),
    "square": ("Many windows are squares.", "A chess board is a big square made of small squares.",
               "A square table has four equal sides."),
    "triangle": ("The roof of a house often looks like a triangle.", "The sail of a boat is often a triangle.",
                 "A slice of pizza is shaped like a triangle."),
    "star": ("A starfish on the beach looks like a star with five points.", "Flags often show white stars.",
             "Children draw stars in the sky with five points."),
    "diamond": ("A kite in the sky often has the shape of a diamond.", "Some road signs are diamonds.",
                "A diamond is taller than it is wide."),
    "hexagon": ("The cells of a honeycomb are hexagons.", "Some floor tiles are hexagons.",
                "A nut on a bolt is often a hexagon."),
}
COLOUR_MORE = {"red": "A fire truck is red.", "orange": "A pumpkin is orange.",
               "yellow": "The sun is often drawn yellow.", "green": "Leaves and trees are green in summer.",
               "blue": "The sea is often blue.", "purple": "Violets are purple flowers.",
               "white": "Clouds are white.", "black": "The sky at night is black."}


def _fact_sentences(rng: random.Random, shapes: Sequence[str] = SHAPES, colours: Sequence[str] = tuple(COLOURS),
                    k: int = 4) -> list[str]:
  out = []
  for _ in range(k):
    kind = rng.random()
    if kind < 0.45:
      s = rng.choice(shapes)
      n = CORNERS[s]
      if s == "circle":
        out.append(rng.choice(["A circle has no corners; it is perfectly round.", "A circle has 0 corners.",
                               "A circle is round, so it has no corners and no straight sides."]))
      elif s == "star":
        out.append(rng.choice(["A star has five points and ten corners.", "A star has 10 corners: five points "
                               "and five inner corners.", "Count the corners of a star and you get ten."]))
      else:
        extra = {"square": " and four equal sides", "diamond": "; it looks like a narrow square standing on one corner",
                 "hexagon": " and six equal sides", "triangle": " and three straight sides"}[s]
        out.append(rng.choice([f"{_cap(with_article(s))} has {_num(n)} corners{extra}.",
                               f"{_cap(with_article(s))} has {n} corners.",
                               f"Every {s} has exactly {_num(n)} corners."]))
    elif kind < 0.75:
      c = rng.choice(colours)
      word, phrase = COLOUR_THINGS[c]
      out.append(rng.choice([f"{_cap(phrase)} is {c}.", f"{_cap(c)} is the colour of {phrase}.",
                             f"Something {c} has the same colour as {phrase}.", COLOUR_MORE[c]]))
    elif kind < 0.9:
      out.append(rng.choice(SHAPE_THINGS[rng.choice(shapes)]))
    else:
      out.append(rng.choice(["If one shape is to the left of another, the second is to the right of the first.",
                             "If a shape is above another shape, the other shape is below it.",
                             "A larger shape covers more of the picture than a smaller one.",
                             "A square and a diamond both have four corners, but the diamond stands on a corner."]))
  return out


def _scene_paragraph(scene: Scene, rng: random.Random) -> str:
  objs = list(scene.objects)
  n = len(objs)
  texture = with_article(TEXTURE_WORDS[scene.background])
  out = [rng.choice([f"The picture shows {_num(n)} shape{'s' * (n != 1)} on {texture} "
                     "background.", f"In this image there {'are' if n != 1 else 'is'} {_num(n)} "
                     f"object{'s' * (n != 1)}.", f"Here is a scene with {_num(n)} shape{'s' * (n != 1)}."])]
  for o in objs:
    d = f"{o.size} {o.colour} {o.shape}"
    out.append(rng.choice([f"{_cap(with_article(d))} is {_where(o)}.",
                           f"{_cap(_where(o))} there is {with_article(d)}."]))
    if rng.random() < 0.25:
      out.append(rng.choice([f"The {o.colour} {o.shape} has {_num(CORNERS[o.shape])} corners.",
                             f"The {o.colour} {o.shape} has the colour of {COLOUR_THINGS[o.colour][1]}."]))
  pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
  for i, j in rng.sample(pairs, min(len(pairs), rng.randint(2, 4))):
    a, b = objs[i], objs[j]
    out.append(f"The {a.colour} {a.shape} is {rng.choice(relations(a, b))} the {b.colour} {b.shape}.")
    if a.fraction > 1.5 * b.fraction:
      out.append(f"The {a.colour} {a.shape} is larger than the {b.colour} {b.shape}.")
  kinds = sorted({o.shape for o in objs})
  if n >= 2:
    counts = [f"{_num(sum(o.shape == s for o in objs))} {plural(s) if sum(o.shape == s for o in objs) > 1 else s}"
              for s in kinds]
    out.append("There " + ("are " if counts[0].split()[0] != "one" else "is ") + ", ".join(counts[:-1])
               + (" and " if len(counts) > 1 else "") + counts[-1] + ".")
  if scene.text:
    out.append(_cap(_text_sentence(scene)) + ".")
  return " ".join(out)


def _doc_visual_world(rng: random.Random, config: WorldConfig) -> str:
  paras = [_scene_paragraph(sample_scene(rng, config, held_out=True), rng) for _ in range(rng.randint(2, 4))]
  paras.insert(rng.randint(0, len(paras)), " ".join(_fact_sentences(rng, k=rng.randint(2, 5))))
  return "\n\n".join(paras)


# ---------------------------------------------------------------------------------------------
# Reasoning text: every equation is "a op b = c" and correct


NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Farah", "Gus", "Hana", "Ivo", "Jun", "Kofi", "Lena")
ITEMS = ("apples", "marbles", "stickers", "cards", "pencils", "red circles", "blue squares", "yellow stars",
         "green triangles", "coins", "books", "shells")


def arithmetic_problem(rng: random.Random) -> tuple[str, str, int]:
  """(question, worked solution ending in "Answer: N.", N)."""
  kind, name, items = rng.randrange(6), rng.choice(NAMES), rng.choice(ITEMS)
  if kind == 0:
    a, b = rng.randint(2, 60), rng.randint(2, 60)
    c = a + b
    q = f"{name} has {a} {items}. {name} gets {b} more. How many {items} does {name} have now?"
    s = f"We add the two amounts: {a} + {b} = {c}."
  elif kind == 1:
    a = rng.randint(10, 90)
    b = rng.randint(1, a - 1)
    c = a - b
    q = f"There are {a} {items} in a box. {name} takes out {b}. How many {items} are left in the box?"
    s = f"We subtract what was taken: {a} - {b} = {c}."
  elif kind == 2:
    a, b = rng.randint(2, 12), rng.randint(2, 12)
    c = a * b
    q = f"A tray has {a} rows with {b} {items} in each row. How many {items} are on the tray?"
    s = f"Multiply the number of rows by the number in each row: {a} * {b} = {c}."
  elif kind == 3:
    b, c = rng.randint(2, 9), rng.randint(2, 12)
    a = b * c
    q = f"{a} {items} are shared equally among {b} friends. How many {items} does each friend get?"
    s = f"Divide the total by the number of friends: {a} / {b} = {c}."
  elif kind == 4:
    a, b = rng.randint(2, 9), rng.randint(2, 10)
    p = a * b
    d = rng.randint(1, p - 1)
    c = p - d
    q = f"{name} buys {a} packs of {items} with {b} in each pack and gives away {d}. How many are left?"
    s = f"Step 1: find the total, {a} * {b} = {p}. Step 2: take away the gift, {p} - {d} = {c}."
  else:
    a, c = rng.randint(1, 40), rng.randint(1, 40)
    b = a + c
    q = f"Let x be a number. When {a} is added to x, the sum is {b}. Solve for x."
    s = f"Subtract {a} from both sides of the equation: {b} - {a} = {c}, therefore x is {c}."
  return q, f"{s}\nAnswer: {c}.", c


def counting_problem(rng: random.Random) -> tuple[str, str, int]:
  kind = rng.randrange(5)
  combos = rng.sample([(s, c) for s in SHAPES for c in COLOURS], rng.randint(2, 4))
  counts = [rng.randint(1, 6) for _ in combos]

  def named(n, s, c):
    return f"{n} {c} {plural(s) if n > 1 else s}"
  if kind == 0:
    q = ("A picture shows " + ", ".join(named(n, s, c) for n, (s, c) in zip(counts[:-1], combos))
         + f" and {named(counts[-1], *combos[-1])}. How many shapes are in the picture?")
    steps, total = [], counts[0]
    for n in counts[1:]:
      steps.append(f"{total} + {n} = {total + n}")
      total += n
    return q, f"Count each kind and add: {', '.join(steps)}.\nAnswer: {total}.", total
  if kind == 1:
    shapes = rng.sample(TAUGHT_SHAPES, 2)
    m, n = counts[0], counts[1]
    a, b = m * CORNERS[shapes[0]], n * CORNERS[shapes[1]]
    q = f"How many corners do {m} {plural(shapes[0]) if m > 1 else shapes[0]} and {n} " \
        f"{plural(shapes[1]) if n > 1 else shapes[1]} have together?"
    s = (f"{_cap(with_article(shapes[0]))} has {CORNERS[shapes[0]]} corners, so {m} * {CORNERS[shapes[0]]} = {a}. "
         f"{_cap(with_article(shapes[1]))} has {CORNERS[shapes[1]]} corners, so {n} * {CORNERS[shapes[1]]} = {b}. "
         f"Together: {a} + {b} = {a + b}.")
    return q, f"{s}\nAnswer: {a + b}.", a + b
  if kind == 2:
    total, part, s = sum(counts) + 1, counts[0], combos[0][0]
    q = f"There are {total} shapes in a picture and {part} of them are {plural(s)}. How many are not {plural(s)}?"
    return q, f"Subtract the {plural(s)} from all shapes: {total} - {part} = {total - part}.\nAnswer: " \
              f"{total - part}.", total - part
  if kind == 3:
    rows, per = rng.randint(2, 6), rng.randint(2, 6)
    s, c = combos[0]
    q = f"{_cap(plural(s))} are arranged in {rows} rows of {per}. How many {plural(s)} are there?"
    return q, f"Count rows times shapes per row: {rows} * {per} = {rows * per}.\nAnswer: {rows * per}.", rows * per
  hi, lo = max(counts[:2]) + 1, min(counts[:2])
  c1, c2 = rng.sample(list(COLOURS), 2)
  q = f"There are {hi} {c1} shapes and {lo} {c2} shapes. How many more {c1} shapes than {c2} shapes are there?"
  return q, f"Find the difference: {hi} - {lo} = {hi - lo}.\nAnswer: {hi - lo}.", hi - lo


CHAINS = (("squares", "rectangles", "shapes with four corners"), ("hexagons", "polygons", "shapes with straight sides"),
          ("whales", "mammals", "warm-blooded animals"), ("robins", "birds", "animals with feathers"),
          ("copper wires", "metal objects", "conductors of electricity"), ("oaks", "trees", "plants"),
          ("triangles", "polygons", "closed figures"), ("salmon", "fish", "animals that live in water"))
QUANTITIES = (("mass", "heavier", "lightest", "grams"), ("temperature", "warmer", "coldest", "degrees"),
              ("speed", "faster", "slowest", "metres per second"), ("length", "longer", "shortest", "centimetres"))


def syllogism_problem(rng: random.Random) -> tuple[str, str, str]:
  """(premises and question, reasoning, short answer)."""
  kind = rng.randrange(4)
  if kind == 0:
    a, b, c = rng.choice(CHAINS)
    if rng.random() < 0.7:
      return (f"All {a} are {b}. All {b} are {c}. Are all {a} {c}?",
              f"Yes. Every one of the {a} is one of the {b}, and every one of the {b} is one of the {c}; "
              f"therefore all {a} are {c}.", "yes")
    return (f"All {a} are {b}. Some {b} are large. Does it follow that all {a} are large?",
            f"No. The premises only say that some {b} are large, not which ones, so the conclusion does not "
            "follow from the evidence.", "no")
  if kind == 1:
    qty, more, least, unit = rng.choice(QUANTITIES)
    cs = rng.sample("ABCDEFGH", 3)
    vals = sorted(rng.sample(range(5, 95), 3), reverse=True)
    q = (f"In an experiment, a student measured the {qty} of three samples. Sample {cs[0]} is {more} than sample "
         f"{cs[1]}, and sample {cs[1]} is {more} than sample {cs[2]}. Which sample is the {least}?")
    r = (f"The comparison is transitive: if one sample is {more} than a second and the second is {more} than a "
         f"third, then the first is {more} than the third. The measured values were {vals[0]}, {vals[1]} and "
         f"{vals[2]} {unit}, which agrees with this. So sample {cs[2]} is the {least}.")
    return q, r, f"sample {cs[2]}"
  if kind == 2:
    start, step, n = rng.randint(10, 40), rng.randint(2, 9), rng.randint(3, 5)
    series = [start + step * k for k in range(n)]
    nxt = series[-1] + step
    q = (f"A student measured the temperature of water every minute and observed {', '.join(map(str, series[:-1]))} "
         f"and {series[-1]} degrees. If the rate stays the same, what will the next measurement be?")
    r = (f"The data rise by the same amount each minute: {series[1]} - {series[0]} = {step}. The model predicts "
         f"{series[-1]} + {step} = {nxt} degrees.")
    return q, r, str(nxt)
  s = rng.choice(TAUGHT_SHAPES)
  c = rng.choice(list(COLOURS))
  n = CORNERS[s]
  return (f"In a picture, every shape with {_num(n)} corners is {c}. The {s} has {_num(n)} corners. What colour is "
          f"the {s}?", f"The {s} has {_num(n)} corners, and every shape with {_num(n)} corners is {c}; therefore the "
          f"{s} is {c}.", c)


def _doc_problems(rng: random.Random, make, title: str) -> str:
  out = [title]
  for k in range(rng.randint(3, 6)):
    q, s, _ = make(rng)
    out.append(f"Problem {k + 1}. {q}\nSolution: {s}")
  return "\n\n".join(out)


GENERATORS = {
    "visual_world": _doc_visual_world,
    "arithmetic": lambda rng, cfg: _doc_problems(rng, arithmetic_problem, rng.choice(
        ["Practice problems with worked solutions.", "Arithmetic word problems, solved step by step."])),
    "counting": lambda rng, cfg: _doc_problems(rng, counting_problem, rng.choice(
        ["Counting problems about shapes, with worked solutions.", "Let us count shapes and corners."])),
    "syllogism": lambda rng, cfg: _doc_problems(rng, syllogism_problem, rng.choice(
        ["Reasoning exercises: what follows from the evidence?", "Comparisons, data and conclusions."])),
}


def check_generator(name) -> str:
  if name not in GENERATORS:
    raise ValueError(f"world generator {name!r} is not one of {sorted(GENERATORS)}")
  return name


def generate_documents(generator: str, n_docs: int, seed: int = 0,
                       config=None) -> Iterator[dict[str, str]]:
  """``n_docs`` documents ``{"id": "world/<generator>/<seed>/<i>", "text"}``; document i depends only on (seed, i)."""
  config = as_config(config)
  make = GENERATORS[check_generator(generator)]
  for i in range(int(n_docs)):
    yield {"id": f"world/{generator}/{seed}/{i}", "text": make(stream(seed, "text", generator, i), config)}
