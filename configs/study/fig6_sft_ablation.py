"""Fig. 6: one 3B/30B LLM (mix6) adapted with SFT sets whose perception or reasoning instructions are
kept at 100/50/0% (PAPER.md 3.5, 5.5). Make the variants with `visprior data label-instructions
--ablate=perception|reasoning --dst=<paths.sft_ablations>` (files <category>_<percent>.json there)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paper  # noqa: E402

VARIANTS = {"full": "{paths.sft_data}", **{f"no_{c}_{p}": "{paths.sft_ablations}/" + f"{c}_{p}.json"
                                           for c in ("perception", "reasoning") for p in (50, 0)}}


def get_config(arg: str = ""):
  del arg
  runs = {f"sft_{v}": dict(preset="llama3_3b", recipe="mix6", tokens=30 * paper.B, sft_data=path, sft=v,
                           **({} if v == "full" else {"llm_from": "sft_full"}))      # one shared LLM
          for v, path in VARIANTS.items()}
  return paper.study("fig6_sft_ablation", runs)
