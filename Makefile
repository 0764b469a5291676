# Thin wrappers: `make demo` (set up + a short training run on the emulator), `make test` (set up + tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN ?= runs/demo
CFLAGS_FW := -std=c11 -Wall -Wextra -Werror -Wpedantic -O3 -ffp-contract=off -fno-math-errno -Ifirmware_c/include

.PHONY: demo test setup system-deps firmware clean

demo: setup
	$(BIN)/s2eprop train --target emulator --config experiments/configs/demo.yaml --out $(RUN)
	@echo "run folder: $(RUN) (report.json, weights.npz, confusion.png, training.png)"

test: setup firmware
	$(BIN)/python -m pytest -q

setup: system-deps $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py $(wildcard firmware_c/src/*.c firmware_c/include/*.h emulator/csrc/*)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

# espeak-ng speaks the built-in keyword set; installed from the distribution when we are root.
system-deps:
	@if ! command -v espeak-ng >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null; \
	  else \
	    echo "espeak-ng is missing; run: sudo apt-get install -y espeak-ng   (then make again)"; exit 1; \
	  fi; \
	fi

# the firmware alone, warnings as errors (the cffi module is built by the install above)
firmware:
	@mkdir -p build/firmware
	@for f in firmware_c/src/*.c; do cc $(CFLAGS_FW) -c $$f -o build/firmware/$$(basename $$f .c).o || exit 1; done
	@echo "firmware: $$(ls build/firmware/*.o | wc -l) objects built with -Werror"

clean:
	rm -rf build $(VENV) emulator/_fw*.so emulator/_fw*.c *.egg-info
