# strata: thin list of commands; the logic lives in the crates and in tools/.
DOMAIN ?= medicine
export CARGO_TARGET_DIR ?= $(HOME)/.cache/strata-target
STRATA := $(CARGO_TARGET_DIR)/release/strata
PYTHON ?= python3

.PHONY: help model build corpus test test-fast validate check-datasets search serve loadtest bench soak report-check lint clean test-ray bench-shards ray-venv llm-venv test-llm

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

model: ## fetch and prepare the embedding model into ~/.cache/strata (first use only)
	@tools/model/setup.sh >/dev/null
	@tools/model/target-tokenizer.sh >/dev/null

build: ## build the strata binary (release)
	cargo build --release --locked -p strata-cli

corpus: model build ## run the recipe pipeline/$(DOMAIN).toml into out/$(DOMAIN)
	$(STRATA) run --recipe pipeline/$(DOMAIN).toml

test: model ## run every test (unit, stage, end-to-end, determinism)
	cargo test --release --locked --workspace

test-fast: ## the tests that need no model: unit, stage tests on hand-made runs, tidy
	cargo test --release --locked --workspace --lib
	cargo test --release --locked -p strata-taxonomy -p strata-select -p strata-index -p strata-emit --test '*'
	cargo test --release --locked -p strata-cli --test tidy

validate: ## check out/$(DOMAIN) against the contract as an outside client would
	@$(PYTHON) -c "import pyarrow, tantivy" 2>/dev/null || $(PYTHON) -m pip install -q -r tools/validate-requirements.txt
	$(PYTHON) ../shared/checks/validate_run.py out/$(DOMAIN)

check-datasets: DATASETS_VENV := $(HOME)/.cache/strata/datasets-venv
check-datasets: ## load every out/$(DOMAIN)/train set with Hugging Face datasets, as a trainer would
	@cmp -s tools/check-datasets-requirements.txt $(DATASETS_VENV)/requirements.txt || { $(PYTHON) -m venv $(DATASETS_VENV) && $(DATASETS_VENV)/bin/pip install -q -r tools/check-datasets-requirements.txt && cp tools/check-datasets-requirements.txt $(DATASETS_VENV)/requirements.txt; }
	$(DATASETS_VENV)/bin/python tools/check_datasets.py out/$(DOMAIN)

search: build ## search out/$(DOMAIN): make search Q="chest pain" [MODE=bm25|dense|hybrid]
	$(STRATA) search --run out/$(DOMAIN) --mode $(or $(MODE),hybrid) "$(Q)"

serve: build ## serve out/$(DOMAIN)'s search on 127.0.0.1:8088 (POST /search, GET /health)
	$(STRATA) serve --run out/$(DOMAIN)

loadtest: build ## bounded loopback load test of strata serve on out/$(DOMAIN), every mode (tools/loadtest.sh)
	RUN=out/$(DOMAIN) tools/loadtest.sh

bench: model build ## benchmark table on MedQuAD (see BENCHMARKS.md)
	tools/bench.sh

soak: model build ## the limits of docs/LIMITS.md at full size (slow)
	tools/soak.sh

RAY_VENV := $(HOME)/.cache/strata/ray-venv
ray-venv: model # ray and maturin pinned, and tools/strata-ray (strata + strata-ray) built into them
	@cmp -s tools/strata-ray/requirements.txt $(RAY_VENV)/requirements.txt || { $(PYTHON) -m venv $(RAY_VENV) && $(RAY_VENV)/bin/pip install -q -r tools/strata-ray/requirements.txt && cp tools/strata-ray/requirements.txt $(RAY_VENV)/requirements.txt; }
	PATH=$(RAY_VENV)/bin:$$PATH $(RAY_VENV)/bin/pip install -q --no-build-isolation ./tools/strata-ray

test-ray: ray-venv ## Ray on a loopback two-node cluster: strata-ray's sharded runs equal strata run
	$(RAY_VENV)/bin/python tools/strata-ray/tests/cluster_test.py

bench-shards: ray-venv ## whole MedQuAD as 4 shards on a one-node Ray cluster against strata run (BENCHMARKS.md)
	$(RAY_VENV)/bin/python tools/strata-ray/tests/bench_shards.py

LLM_VENV := $(HOME)/.cache/strata/llm-venv
llm-venv: # llama-cpp-python's server and gguf, pinned (the first install compiles llama.cpp: about 6 minutes on 2 cores)
	@cmp -s tools/llm/requirements.txt $(LLM_VENV)/requirements.txt || { $(PYTHON) -m venv $(LLM_VENV) && $(LLM_VENV)/bin/pip install -q -r tools/llm/requirements.txt && cp tools/llm/requirements.txt $(LLM_VENV)/requirements.txt; }

test-llm: model llm-venv ## the optional LLM against llama.cpp's server on loopback (a tiny random model the test writes)
	STRATA_LLM_PYTHON=$(LLM_VENV)/bin/python cargo test --release --locked -p strata-cli --test llm -- --include-ignored --test-threads 1

report-check: ## render out/$(DOMAIN)/report.html in headless Chromium
	tools/report-check.sh out/$(DOMAIN)

lint: ## formatting, clippy, and the workspace rules (tests/tidy.rs: layering, headers, unused dependencies)
	cargo fmt --all --check
	cargo clippy --release --locked --workspace --all-targets -- -D warnings
	cargo test --release --locked -p strata-cli --test tidy

clean: ## remove run directories
	rm -rf out
