"""The SFT-ablation labeller (PAPER.md 3.5): each image instruction -> perception | reasoning |
others, by a vision-language model behind an OpenAI-compatible endpoint.

  vllm serve Qwen/Qwen2.5-VL-7B-Instruct --port 8000
  visprior data label-instructions --config=configs/data/instruction_label_endpoint.py \\
      --src=llava_instruct.json --image_root=images/ --out=runs/sft_labels.jsonl \\
      [--ablate=perception --dst=runs/sft_variants]

``--ablate`` writes the 100/50/0% variants of the instruction file (the share of that category
kept; everything else is always kept). Transport, retries, cache and the API key handling are the
segment labeller's (configs/data/label_endpoint.py documents the fields).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # sibling config modules

import label_endpoint  # noqa: E402  (configs/data/label_endpoint.py)


def get_config(arg: str = ""):
  del arg
  c = label_endpoint.get_config("endpoint")
  del c["segment_tokens"], c["backend"]
  c.model = "Qwen/Qwen2.5-VL-7B-Instruct"   # the paper's classifier is a 7B VLM
  c.prompt_path = ""                          # "" = configs/data/instruction_label_prompt.txt
  c.cache_path = ""                           # "" = next to --out
  c.batch_size = 128
  c.max_tokens = 16
  c.enable_thinking = None
  c.max_images = 4                            # images sent per instruction
  c.max_image_side = 1024                     # larger images are downscaled (JPEG) before sending
  return c
