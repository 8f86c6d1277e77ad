# Every target that runs something installs first (idempotent: pip runs again only when
# pyproject.toml or constraints.txt changed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PIP_FLAGS := -q --disable-pip-version-check

.PHONY: install demo demo-simulate test lint format check-dist check-lowest-deps bench bench-federation bench-ray bench-ha bench-many-sites bench-wan bench-compare clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(BIN)/python -m pip install $(PIP_FLAGS) -c constraints.txt -e '.[torch,tensorboard,he,ray,postgres,plot,dev]'
	touch $(STAMP)

# The demo installs only what it needs (the torch and tensorboard extras); `make install` adds
# the rest later (its own stamp).
DEMO_STAMP := $(VENV)/.demo-stamp

$(DEMO_STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_FLAGS) --upgrade pip
	$(BIN)/python -m pip install $(PIP_FLAGS) -c constraints.txt -e '.[torch,tensorboard]'
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	bash scripts/demo.sh

demo-simulate: install
	$(BIN)/fedra simulate examples/hello-pt -n 2 -t 2 -w demo-workspace/simulate

lint: install
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy

format: install
	$(BIN)/ruff format src tests bench examples
	$(BIN)/ruff check --fix src tests bench examples

test: lint
	$(BIN)/pytest

# The sdist and the wheel built, each installed in a clean venv and run outside the checkout.
check-dist: install
	$(BIN)/python scripts/check-dist.py

# Every core dependency at its lowest declared version, in a clean venv under build/.
check-lowest-deps:
	PYTHON=$(PYTHON) bash scripts/check-lowest-deps.sh

bench: install
	$(BIN)/python -m bench.simulator

bench-federation: install
	$(BIN)/python -m bench.federation

bench-ray: install
	$(BIN)/python -m bench.ray_sites

bench-ha: install
	$(BIN)/python -m bench.ha

# One real server and 1,000 provisioned sites over mutual-TLS gRPC (issue 16); about 3
# minutes. Options: make bench-many-sites ARGS="--sites 200 --rounds 5".
bench-many-sites: install
	$(BIN)/python -m bench.many_sites $(ARGS)

# FedAvg of a 100 MB model across hosts over emulated LAN, WAN and far-WAN links, 2 and 8
# sites (root: network namespaces; see docs/testing-networks.md). ARGS="--tuned" names each
# profile's path in project.yml (network:); the default window otherwise.
bench-wan: install
	$(BIN)/python -m bench.wan_round --matrix --size 100MB $(ARGS)

# Fedra against NVIDIA FLARE and Flower, each peer in its own venv under .bench-venvs/
# (installed on first use). Options: make bench-compare ARGS="--quick --rows sim".
bench-compare: install
	$(BIN)/python -m bench.compare $(ARGS)

clean:
	rm -rf $(VENV) build dist demo-workspace .pytest_cache .mypy_cache .ruff_cache
