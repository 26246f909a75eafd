# LeukoScan — developer entry points.  `make run` and `make test` work from a fresh clone.
# The first supported Python (pyproject: >=3.11,<3.13) that runs and can make a venv (Debian splits
# ensurepip into python3.X-venv); `make PYTHON=/path/to/python3.1x` overrides it.
ifeq ($(origin PYTHON),undefined)
PYTHON := $(firstword $(foreach p,python3.12 python3.11,$(shell $(p) -c 'import venv, ensurepip' >/dev/null 2>&1 && echo $(p))))
endif
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
export QT_QPA_PLATFORM ?= offscreen

# Debian libraries that Qt's xcb/offscreen platform plugins need at run time, and Xvfb for screenshots.
DEB_PKGS := libegl1 libgl1 libglib2.0-0 libfontconfig1 libfreetype6 libxkbcommon0 libxkbcommon-x11-0 \
            libdbus-1-3 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
            libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxrender1 libxi6 xvfb fonts-dejavu-core \
            xdotool

.PHONY: run test lint typecheck lock bench sysdeps venv venv-app venv-all venv-gpu clean bundle bundle-gpu install-desktop

# Installs every package of DEB_PKGS that dpkg does not list as installed (needs root or sudo; skipped
# where there is no dpkg/apt-get).  Each package is checked: one missing library is enough for Qt to abort.
sysdeps:
	@if command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then \
	  missing=""; \
	  for p in $(DEB_PKGS); do \
	    case "$$(dpkg-query -W -f='$${Status}' $$p 2>/dev/null)" in "install ok installed"*) ;; *) missing="$$missing $$p";; esac; \
	  done; \
	  if [ -n "$$missing" ]; then \
	    SUDO=$$( [ "$$(id -u)" = 0 ] && echo "" || echo sudo ); \
	    echo "Installing the Debian packages Qt needs:$$missing"; \
	    { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; } \
	      || { echo "make sysdeps: could not install:$$missing. Install them with: sudo apt-get install$$missing" >&2; exit 1; }; \
	  fi; \
	fi

# Stops with what to install when no supported Python was found.
define need_python
	@if [ -z "$(PYTHON)" ]; then \
	  echo "LeukoScan needs Python 3.12 or 3.11 with its venv module; neither python3.12 nor python3.11 on PATH has it." >&2; \
	  echo "Install one (Debian/Ubuntu: sudo apt-get install python3.12 python3.12-venv, or python3.11 python3.11-venv;" >&2; \
	  echo "elsewhere: https://www.python.org/downloads/), or name it: make PYTHON=/path/to/python3.12" >&2; \
	  exit 1; \
	fi
endef

$(PY):
	$(need_python)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

# The app alone (PySide6-Essentials + onnxruntime): what `make run` needs, at the versions pinned in
# requirements/app.lock (the app's share of dev.lock: the versions the tests ran), then LeukoScan without its deps.
APP_LOCK := requirements/app.lock
$(VENV)/.app-installed: pyproject.toml $(APP_LOCK) | $(PY)
	$(PIP) install -q -r $(APP_LOCK)
	$(PIP) install -q --no-deps -e .
	touch $@

# Everything: app + training + dev tools + the Ray engine (what `make test` and `make bundle` need), at the
# versions pinned in requirements/dev.lock, so that two bundle builds (and two CI runs) get the same packages.
LOCK := requirements/dev.lock
$(VENV)/.all-installed: pyproject.toml $(LOCK) | $(PY)
	$(PIP) install -q -r $(LOCK)
	$(PIP) install -q --no-deps -e ".[train,dev,ray]"
	touch $@ $(VENV)/.app-installed

# Re-pin requirements/dev.lock from pyproject.toml (newest versions its ranges allow; every platform and Python
# 3.11-3.12 in one file), then requirements/app.lock (the app alone) within it.  Run after changing a dependency,
# then `make test` and commit the three files.
lock: | $(PY)
	$(PIP) install -q "uv>=0.4"
	$(VENV)/bin/uv pip compile pyproject.toml --extra train --extra dev --extra ray --universal \
	    --python-version 3.11 -q -o $(LOCK)
	$(VENV)/bin/uv pip compile pyproject.toml --universal --python-version 3.11 -c $(LOCK) -q -o $(APP_LOCK)

venv-app: $(VENV)/.app-installed
venv-all: $(VENV)/.all-installed

run: sysdeps venv-app
	QT_QPA_PLATFORM= $(VENV)/bin/leukoscan $(ARGS)

test: sysdeps venv-all lint typecheck
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q $(PYTEST_ARGS)

# ruff as configured in pyproject.toml ([tool.ruff]): the lint rules, and the code formatted as `ruff format` would.
lint: venv-all
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mypy as configured in pyproject.toml ([tool.mypy]: engine/ and gui/, strict on engine/case/).
typecheck: venv-all
	$(PY) -m mypy

# Engine, GUI (throughput, stalls, RSS with 20,000 cells) and restoring a 20,000-cell session.
# BENCH_ARGS go to gui_throughput.py (e.g. BENCH_ARGS="--n 500": the ensemble on 2 CPUs is slow).
bench: venv-all
	$(PY) benchmarks/engine_throughput.py
	QT_QPA_PLATFORM=offscreen $(PY) benchmarks/gui_throughput.py $(BENCH_ARGS)
	QT_QPA_PLATFORM=offscreen $(PY) benchmarks/restore_session.py

clean:
	rm -rf build dist .pytest_cache *.egg-info

# ---- Packaging: PyInstaller bundle (build.spec, packaging/); docs/development.md "Building and releasing the bundle".
VENV_GPU   ?= .venv-gpu
# GPU onnxruntime + the CUDA/cuDNN pip libraries it loads (bundled: no CUDA install needed on the workstation,
# only the NVIDIA driver). ORT_GPU_SPEC=onnxruntime-gpu: rely on the workstation's CUDA/cuDNN (smaller bundle).
ORT_GPU_SPEC ?= onnxruntime-gpu[cuda,cudnn]>=1.20,<1.33
BUNDLE_DIR ?= dist/LeukoScan
PYI_FLAGS  ?= --noconfirm --clean --log-level WARN
CHECK_FLAGS ?=

# CPU variant -> dist/LeukoScan/LeukoScan (+ leukoscan-cli), then verified (contents, models, size <= 350 MB, one
# leukoscan-cli classify of the bundled sample cells).
bundle: venv-all
	rm -rf dist/LeukoScan
	LEUKOSCAN_VARIANT=cpu $(PY) -m PyInstaller $(PYI_FLAGS) --distpath dist --workpath build/pyinstaller-cpu build.spec
	$(PY) packaging/check_bundle.py dist/LeukoScan --variant cpu --run-cli $(CHECK_FLAGS)

# The GPU route: its own venv (.venv-gpu) with onnxruntime-gpu and never onnxruntime (they share one folder and
# overwrite each other).  One pip run resolves requirements/gpu.txt (the app's dependencies without onnxruntime)
# with ORT_GPU_SPEC; LeukoScan itself goes in with --no-deps, so nothing can ask pip for onnxruntime.  docs/gpu.md.
GPU_REQS := requirements/gpu.txt
$(VENV_GPU)/.gpu-installed: pyproject.toml $(GPU_REQS)
	$(need_python)
	$(PYTHON) -m venv $(VENV_GPU)
	$(VENV_GPU)/bin/python -m pip install -q --upgrade pip setuptools wheel
	$(VENV_GPU)/bin/python -m pip uninstall -y -q onnxruntime onnxruntime-gpu 2>/dev/null || true  # an old venv: reinstalled below
	$(VENV_GPU)/bin/python -m pip install -q -r $(GPU_REQS) "$(ORT_GPU_SPEC)"
	$(VENV_GPU)/bin/python -m pip install -q --no-deps -e .
	@if $(VENV_GPU)/bin/python -m pip show -q onnxruntime >/dev/null 2>&1; then \
	  echo "make venv-gpu: onnxruntime (CPU) is installed beside onnxruntime-gpu in $(VENV_GPU); rm -rf $(VENV_GPU) and retry" >&2; exit 1; fi
	touch $@

# `make venv-gpu`: the GPU route for running LeukoScan on CUDA (.venv-gpu/bin/leukoscan, .venv-gpu/bin/leukoscan-cli).
venv-gpu: $(VENV_GPU)/.gpu-installed

# GPU variant -> dist/gpu/LeukoScan/LeukoScan (carries the CUDA/cuDNN pip libraries: large).
bundle-gpu: $(VENV_GPU)/.gpu-installed
	$(VENV_GPU)/bin/python -m pip install -q "pyinstaller>=6.10"
	rm -rf dist/gpu/LeukoScan
	LEUKOSCAN_VARIANT=gpu $(VENV_GPU)/bin/python -m PyInstaller $(PYI_FLAGS) --distpath dist/gpu --workpath build/pyinstaller-gpu build.spec
	$(VENV_GPU)/bin/python packaging/check_bundle.py dist/gpu/LeukoScan --variant gpu --run-cli

# Linux desktop menu entry + icon for the current user, and the case-store file type (*.leukoscan opens with
# LeukoScan from the file manager); BUNDLE_DIR=... for another bundle folder.
install-desktop:
	sh packaging/install-desktop.sh $(BUNDLE_DIR)
