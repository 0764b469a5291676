# Thin wrappers: `make demo` (set up + a short training run on the emulator), `make test` (set up + tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN ?= runs/demo
CFLAGS_FW := -std=c11 -Wall -Wextra -Werror -Wpedantic -O3 -ffp-contract=off -fno-math-errno -fno-strict-aliasing -Ifirmware_c/include

.PHONY: demo test setup system-deps firmware arm arm-deps clean

demo: setup
	$(BIN)/s2eprop train --target emulator --config experiments/configs/demo.yaml --out $(RUN) --overwrite
	@echo "run folder: $(RUN) (report.json, weights.npz, confusion.png, training.png)"

test: setup firmware arm
	$(BIN)/python -m pytest -q

setup: system-deps $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py $(wildcard firmware_c/src/*.c firmware_c/src/*.h firmware_c/include/*.h emulator/chip/csrc/* firmware_c/contract/build.py)
	test -x $(BIN)/pip || $(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

# System packages: espeak-ng and flite speak the built-in keyword set; a C compiler and the Python headers
# build the firmware module; venv makes the environment. Installed with apt-get when we are root.
system-deps:
	@missing=""; \
	command -v espeak-ng >/dev/null 2>&1 || missing="$$missing espeak-ng"; \
	command -v flite >/dev/null 2>&1 || missing="$$missing flite"; \
	command -v cc >/dev/null 2>&1 || missing="$$missing gcc"; \
	$(PYTHON) -c "import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" || missing="$$missing python3-dev"; \
	$(PYTHON) -c "import ensurepip, venv" >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing; run: sudo apt-get install -y$$missing   (then make again)"; exit 1; \
	  fi; \
	fi

# the firmware alone, warnings as errors (the cffi module is built by the install above)
firmware:
	@mkdir -p build/firmware
	@for f in firmware_c/src/*.c; do cc $(CFLAGS_FW) -c $$f -o build/firmware/$$(basename $$f .c).o || exit 1; done
	@echo "firmware: $$(ls build/firmware/*.o | wc -l) objects built with -Werror"

# the Cortex-M4F build (flags in firmware_c/contract/arm_build.py: -mcpu=cortex-m4 -mthumb -mfloat-abi=hard
# -mfpu=fpv4-sp-d16 -O2 -ffp-contract=off -ffreestanding, C11, -Werror) and its size report
# build/arm/size.json; fails when the image does not fit a core's 128 KiB
arm: setup arm-deps
	$(BIN)/python -m s2eprop.firmware.arm_size --out build/arm

# the ARM cross compiler (and newlib's headers for <stdint.h>, <stddef.h>), with apt-get when we are root
arm-deps:
	@if ! command -v arm-none-eabi-gcc >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing: gcc-arm-none-eabi libnewlib-arm-none-eabi"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-arm-none-eabi libnewlib-arm-none-eabi >/dev/null; \
	  else \
	    echo "missing system packages: gcc-arm-none-eabi libnewlib-arm-none-eabi; run: sudo apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi   (then make again)"; exit 1; \
	  fi; \
	fi

clean:
	rm -rf build $(VENV) firmware_c/contract/_fw*.so firmware_c/contract/_fw*.c *.egg-info
