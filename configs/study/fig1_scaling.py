"""Fig. 1: model size x pre-training tokens on web-crawl only (PAPER.md 5.9): 5 sizes x 7 budgets.
The 0-token points are the randomly initialised LLMs (align/SFT/eval only): a 1-step pre-training
stands in for them here (say so when plotting)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paper  # noqa: E402

SIZES = ("llama3_340m", "llama3_1b", "llama3_3b", "llama3_7b", "llama3_13b")
TOKENS_B = (5, 10, 20, 30, 50, 70, 100)


def get_config(arg: str = ""):
  del arg
  runs = {f"{s.split('_')[1]}_{t}b": dict(preset=s, recipe="single:web_crawl", tokens=t * paper.B,
                                           shares={"web_crawl": 1.0}) for s in SIZES for t in TOKENS_B}
  return paper.study("fig1_scaling", runs)
