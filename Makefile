# LeukoScan — developer entry points.  `make run` and `make test` work from a fresh clone.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
export QT_QPA_PLATFORM ?= offscreen

# Debian libraries that Qt's xcb/offscreen platform plugins need at run time, and Xvfb for screenshots.
DEB_PKGS := libegl1 libgl1 libglib2.0-0 libfontconfig1 libfreetype6 libxkbcommon0 libxkbcommon-x11-0 \
            libdbus-1-3 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
            libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxrender1 libxi6 xvfb fonts-dejavu-core \
            xdotool

.PHONY: run test bench sysdeps venv venv-app venv-all clean bundle bundle-gpu install-desktop

# Installs the Debian libraries Qt needs when they are missing (needs root or sudo; skipped elsewhere).
sysdeps:
	@if command -v apt-get >/dev/null 2>&1 && ! ( ldconfig -p | grep -q libxkbcommon-x11 && ldconfig -p | grep -q libEGL.so.1 && ldconfig -p | grep -q libxcb-cursor && command -v Xvfb >/dev/null && command -v xdotool >/dev/null ); then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] && echo "" || echo sudo ); \
	  echo "Installing Debian packages Qt needs: $(DEB_PKGS)"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(DEB_PKGS) >/dev/null; \
	fi

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel

# The app alone (PySide6-Essentials + onnxruntime): what `make run` needs.
$(VENV)/.app-installed: pyproject.toml | $(PY)
	$(PIP) install -q -e .
	touch $@

# Everything: app + training + dev tools (what `make test` needs).
$(VENV)/.all-installed: pyproject.toml | $(PY)
	$(PIP) install -q -e ".[train,dev]"
	touch $@ $(VENV)/.app-installed

venv-app: $(VENV)/.app-installed
venv-all: $(VENV)/.all-installed

run: sysdeps venv-app
	QT_QPA_PLATFORM= $(VENV)/bin/leukoscan $(ARGS)

test: sysdeps venv-all
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q $(PYTEST_ARGS)

bench: venv-all
	$(PY) benchmarks/engine_throughput.py
	@if [ -f benchmarks/gui_throughput.py ]; then QT_QPA_PLATFORM=offscreen $(PY) benchmarks/gui_throughput.py; fi

clean:
	rm -rf build dist .pytest_cache *.egg-info

# ---- Packaging: PyInstaller bundle (build.spec, packaging/); README "Maintainers: building and releasing".
VENV_GPU   ?= .venv-gpu
# GPU onnxruntime + the CUDA/cuDNN pip libraries it loads (bundled: no CUDA install needed on the workstation,
# only the NVIDIA driver). ORT_GPU_SPEC=onnxruntime-gpu: rely on the workstation's CUDA/cuDNN (smaller bundle).
ORT_GPU_SPEC ?= onnxruntime-gpu[cuda,cudnn]>=1.20,<1.33
BUNDLE_DIR ?= dist/LeukoScan
PYI_FLAGS  ?= --noconfirm --clean --log-level WARN
CHECK_FLAGS ?=

# CPU variant -> dist/LeukoScan/LeukoScan, then verified (contents, models, size <= 350 MB).
bundle: venv-all
	rm -rf dist/LeukoScan
	LEUKOSCAN_VARIANT=cpu $(PY) -m PyInstaller $(PYI_FLAGS) --distpath dist --workpath build/pyinstaller-cpu build.spec
	$(PY) packaging/check_bundle.py dist/LeukoScan --variant cpu $(CHECK_FLAGS)

# GPU variant needs its own venv: onnxruntime and onnxruntime-gpu share one folder and overwrite each other.
$(VENV_GPU)/.gpu-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV_GPU)
	$(VENV_GPU)/bin/python -m pip install -q --upgrade pip setuptools wheel
	$(VENV_GPU)/bin/python -m pip install -q -e . "pyinstaller>=6.10"
	$(VENV_GPU)/bin/python -m pip uninstall -y -q onnxruntime onnxruntime-gpu
	$(VENV_GPU)/bin/python -m pip install -q "$(ORT_GPU_SPEC)"
	touch $@

# GPU variant -> dist/gpu/LeukoScan/LeukoScan (carries the CUDA/cuDNN pip libraries: large).
bundle-gpu: $(VENV_GPU)/.gpu-installed
	rm -rf dist/gpu/LeukoScan
	LEUKOSCAN_VARIANT=gpu $(VENV_GPU)/bin/python -m PyInstaller $(PYI_FLAGS) --distpath dist/gpu --workpath build/pyinstaller-gpu build.spec
	$(VENV_GPU)/bin/python packaging/check_bundle.py dist/gpu/LeukoScan --variant gpu

# Linux desktop menu entry + icon for the current user (BUNDLE_DIR=... for another bundle folder).
install-desktop:
	sh packaging/install-desktop.sh $(BUNDLE_DIR)
