# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export JAX_PLATFORMS ?= cpu
export HF_HUB_OFFLINE = 1

.PHONY: demo demo-full demo-pretrain test test-fast bench bench-maxtext scale-table mix-report clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The core install (demo) and the test install (adds torch + transformers as references).
$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@
$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.core

# The embedded tiny study (configs/study/tiny.py): 10 runs pretrain -> align -> SFT -> eval, then the
# report. Resumable: a second `make demo` skips what is done and rewrites the report.
demo: $(VENV)/.core
	$(BIN)/visprior study run --config=configs/study/tiny.py --workdir=runs/tiny_study

# The longer tiny study (configs/study/tiny.py:full): 16 runs, 300 eval items per question type (docs/study.md).
demo-full: $(VENV)/.core
	$(BIN)/visprior study run --config=configs/study/tiny.py:full --workdir=runs/tiny_full

# The earlier text-only demo: data prepare + labels + one tiny pre-training run (~2 minutes).
demo-pretrain: $(VENV)/.core
	$(BIN)/visprior data prepare --config=configs/data/demo.py
	$(BIN)/visprior data label --config=configs/data/label_endpoint.py:lexical --prepared=runs/data/demo
	$(BIN)/visprior data label-report --prepared=runs/data/demo
	rm -rf runs/demo
	$(BIN)/visprior pretrain --config=configs/pretrain.py:demo --workdir=runs/demo

test: $(VENV)/.test
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests

test-fast: $(VENV)/.test
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not slow" tests

bench: $(VENV)/.core
	$(BIN)/python bench/train_step.py --config=configs/pretrain.py:bench_small
	$(BIN)/python bench/train_step.py --config=configs/pretrain.py:bench_cpu
	$(BIN)/visprior data prepare --config=configs/data/demo.py
	$(BIN)/python bench/data_pipeline.py --tokenizers bytes,gpt2,llama3,sentencepiece32k,runs/data/demo/tokenizer.json
	$(MAKE) bench-maxtext

# The side-by-side table of bench/RESULTS.md "vs MaxText" (issue 8): MaxText 0.2.5 and this repo in two
# Python 3.12 venvs under .venvs/ (made once, ~4 min, ~4 GB), one round per comparison (~25 min).
bench-maxtext:
	python3 bench/vs_maxtext.py --setup
	python3 bench/vs_maxtext.py --config tiny --devices 1 --remat full --rounds 1 --out runs/bench/vs_maxtext.jsonl
	python3 bench/vs_maxtext.py --config cpu --devices 1 --remat full --rounds 1 --out runs/bench/vs_maxtext.jsonl
	python3 bench/vs_maxtext.py --config cpu --devices 1 --best --rounds 1 --candidates-ours none,minimal,full \
	  --candidates-maxtext full,save_dot_except_mlp,save_dot_with_context_except_mlp --out runs/bench/vs_maxtext.jsonl
	python3 bench/vs_maxtext.py --summarize runs/bench/vs_maxtext.jsonl

# docs/scale.md: every preset AOT-compiled for TPU topologies (libtpu from the test extra; ~15-20 min on 2 cores).
scale-table: $(VENV)/.test
	$(BIN)/python scripts/scale_table.py --jobs 2

# docs/mixture_optimizer.md: the mixture optimizer validated on Table 1 (+ the tiny study when run; ~1.5 min).
mix-report: $(VENV)/.core
	$(BIN)/python scripts/mixture_optimizer_report.py --tiny=runs/tiny_study

clean:
	rm -rf $(VENV) runs
