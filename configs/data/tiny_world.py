"""Data config for the tiny study's pre-training text: the procedural world's four text generators plus
real offline text, and a small byte-level BPE trained on all of it.

  visprior data prepare --config=configs/data/tiny_world.py            # or :quick (a fifth of it, for CI)
  visprior data label --config=configs/data/label_endpoint.py:lexical --prepared=runs/data/tiny_world
  visprior data label-report --prepared=runs/data/tiny_world

Sources (no downloads; ``visprior_jax/study/world/text.py`` documents the generators):

  visual_world  scene descriptions (objects, colours, sizes, positions, relations, counts) and facts
                about shapes, colours and everyday things; the only place the corners of circles, stars
                and diamonds and four of the eight colour associations are stated (the reasoning pools
                name corners of the taught shapes only; the instructions teach the rest; tiny_knowledge
                asks all, and its facts stated only here are the study's control)
  arithmetic    word problems with worked steps (math)
  counting      counting problems over shapes and corners with steps (math)
  syllogism     syllogisms, transitive comparisons of measured quantities, small data analyses (science)
  code          the Python standard library's .py files (a sample; real code)
  docs          ``pydoc_data.topics``, the Python reference's technical prose (real English)

Sizes (default): 3.84M tokens with the 2048-id BPE - visual_world 1.22M (4000 documents), arithmetic
0.47M, counting 0.46M, syllogism 0.64M (2000 each), code 0.89M (200 files), docs 0.16M (79 topics);
the study's mixtures draw their token budgets from these pools. ``:quick`` keeps a fifth of the
generated documents, 40 files and 20 topics (0.85M tokens) and runs in-process (worker start-up costs
more than it saves at that size). ``prepare`` trains the tokenizer the first time (later runs reuse
it): about 15 s of CPU for the default, 5 s for ``:quick`` (35 s and 12 s wall measured on a shared
2-core machine). Every generator is deterministic for its seed, so the pools are the same on every
machine; the seeds differ per generator only to keep the streams apart.
"""

import ml_collections


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  scale = {"": 1.0, "quick": 0.2}.get(arg)
  if scale is None:
    raise ValueError(f"configs/data/tiny_world.py:{arg}: use no argument or ':quick'")
  c = ml_collections.ConfigDict()
  c.out_dir = "runs/data/tiny_world" + ("_quick" if arg else "")
  c.tokenizer = c.out_dir + "/tokenizer.json"
  c.train_vocab_size = 2048
  c.train_kind = "bpe"
  c.docs_per_shard = 250
  c.workers = 0 if arg else 2

  def world(generator: str, n_docs: int, seed: int) -> dict:
    return {"kind": "world", "generator": generator, "n_docs": max(1, int(n_docs * scale)), "seed": seed}
  c.sources = ml_collections.ConfigDict({
      "visual_world": world("visual_world", 4000, 0),
      "arithmetic": world("arithmetic", 2000, 1),
      "counting": world("counting", 2000, 2),
      "syllogism": world("syllogism", 2000, 3),
      "code": {"kind": "python_stdlib", "limit": max(1, int(200 * scale))},
      "docs": {"kind": "pydoc_topics", **({"limit": 20} if arg else {})},
  })
  return c
