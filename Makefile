# Two commands on a fresh machine: `make run` (the chat) and `make test` (the whole suite).
# Everything else they need (the virtual environment, the packages, the index) is made here.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1

.PHONY: run test index eval lint clean loadtest bench bench-index model tune tune-followups tune-confidence

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: this machine carries its CPU build; an unpinned torch pulls CUDA
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

index: $(STAMP)
	$(BIN)/ctqa index

run: index
	$(BIN)/ctqa serve

test: index
	$(BIN)/python -m pytest

# Retrain the reader (seed 13; about 40 minutes on 2 cores with bfloat16 instructions; projected
# near two hours in float32 on 2 AVX2 cores, see README; a stopped run resumes
# from ~/.cache/ctqa/train/, delete it to start from scratch): writes src/ctqa/models/ (weights,
# record with sha256 and calibration, model card READER.md). run and test never train.
model: index
	$(BIN)/python -m ctqa.train

# Print retrieval's fusion weights chosen on SQuAD's training articles (after `make model`).
tune: index
	$(BIN)/python eval/tune.py

# Print the follow-up rule chosen on the conversation set's tuning half (Settings.follow_*).
tune-followups: index
	$(BIN)/python eval/tune_followups.py

# Print retrieval's confidence penalty chosen on the tuning split (Settings.weight_disagreement,
# agreement_cosine; after `make model` built its tuning index).
tune-confidence: index
	$(BIN)/python eval/tune_confidence.py

eval: index
	$(BIN)/ctqa eval --set all

bench: index $(BENCH_STAMP)
	$(BIN)/python eval/bench/bench.py

bench-index: $(STAMP)
	$(BIN)/python eval/bench/bench_index.py

loadtest: index
	$(BIN)/python eval/bench/loadtest.py

lint: $(STAMP)
	$(BIN)/ruff check src tests eval

clean:
	rm -rf $(VENV) .pytest_cache test-output
