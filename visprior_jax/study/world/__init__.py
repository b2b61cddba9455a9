"""The tiny study's world: procedural scenes of coloured shapes with exact ground truth, the text that
describes them, and the captions, instructions and benchmarks built from them (TINY_STUDY.md).

  from visprior_jax.study import world
  world.write_eval_suite("runs/tiny/world/eval", n_per_task=40, seed=2)
  img, scene = world.render(world.sample_scene(world.stream(0, "demo", 0)))
  q = world.ask("colour", scene, world.stream(0, "demo-question", 0))

Modules, top to bottom:

  scene      the vocabulary (shapes, corners, colours), WorldConfig (the knobs), Obj and Scene (the
             ground truth), ``stream`` (the named random streams)
  render     shape geometry, masks, background, text and the 64x64 image with measured visible shares
  sampling   ordinary scenes on the 3x3 grid and MLE-like scenes with one target of a given share
  text       captions, scene descriptions, facts, reasoning problems and the four text sources
  questions  questions about a rendered scene (``ask``), their two prompt styles, text-only questions
  writers    captions, instructions (+ labels) and the evaluation suite on disk

Everything is a function of a seed: every scene, document and question draws from its own
``random.Random`` stream named by a string (``world/<seed>/<purpose>/<index>``), so item ``i`` does
not depend on how many items are written, and training, evaluation and text never share a stream.
Output is byte-identical for a seed on the same NumPy / Pillow versions. This package imports nothing
from the rest of visprior_jax (``data/sources.py`` imports it lazily for the ``world`` source kind).

Held out. ``WorldConfig.held_out`` lists (shape, colour) combinations (default: one per shape, each
colour at most once) that never appear in training images, captions or instructions. Evaluation
items come from their own streams; in each task exactly floor(n * ``p_held_out_eval``) items, spread
by index, have a held-out target (``held_out`` true), the others only seen combinations.
Pre-training TEXT covers every combination on purpose: it is the language prior whose effect the
study measures. Facts follow the same idea: instructions teach only the corners of
``sft_fact_shapes`` and the colour associations of ``sft_fact_colours``; the knowledge benchmark asks
about all of them, so the rest must come from pre-training text (items carry ``fact_in_sft``).

Balance. Answers are drawn before the scene where the scene decides them: the target combination of
single-target questions (uniform over seen combinations), the count (1-5) of counting questions, the
relation word of spatial questions; options are shuffled, so letters are balanced too.
"""

from visprior_jax.study.world.questions import (CORNER_CHOICES, LETTER_SUFFIX, LETTERS, MLE_QUESTIONS, SHORT_SUFFIX,
                                                ask, format_question, text_question)
from visprior_jax.study.world.render import render
from visprior_jax.study.world.sampling import (MLE_LEVELS, SIZE_BANDS, WORDS, allowed_combos, sample_mle_scene,
                                               sample_scene)
from visprior_jax.study.world.scene import (COLOUR_THINGS, COLOURS, CORNERS, DEFAULT, DEFAULT_HELD_OUT, SHAPES,
                                            WORLD_VERSION, Obj, Scene, WorldConfig, as_config, stream)
from visprior_jax.study.world.text import (GENERATORS, arithmetic_problem, caption, check_generator,
                                           counting_problem, generate_documents, relations, syllogism_problem)
from visprior_jax.study.world.writers import (DEFAULT_MIX, EVAL_TASKS, SFT_TASKS, write_benchmark, write_captions,
                                              write_eval_suite, write_instructions)

__all__ = ["COLOUR_THINGS", "COLOURS", "CORNERS", "CORNER_CHOICES", "DEFAULT", "DEFAULT_HELD_OUT", "DEFAULT_MIX",
           "EVAL_TASKS", "GENERATORS", "LETTERS", "LETTER_SUFFIX", "MLE_LEVELS", "MLE_QUESTIONS", "Obj", "SFT_TASKS",
           "SHAPES", "SHORT_SUFFIX", "SIZE_BANDS", "Scene", "WORDS", "WORLD_VERSION", "WorldConfig",
           "allowed_combos", "arithmetic_problem", "as_config", "ask", "caption", "check_generator",
           "counting_problem", "format_question", "generate_documents", "relations", "render", "sample_mle_scene",
           "sample_scene", "stream", "syllogism_problem", "text_question", "write_benchmark", "write_captions",
           "write_eval_suite", "write_instructions"]
