#!/usr/bin/env bash
# benchmarks/gpu_check.sh: check the GPU route on a machine with an NVIDIA GPU, from scratch (docs/gpu.md).
#
#   1. installs the GPU route into a fresh venv (make venv-gpu: onnxruntime-gpu, never onnxruntime) and checks that
#      only onnxruntime-gpu is installed and that onnxruntime offers the CUDA provider;
#   2. runs the self-test on CUDA (python -m engine.selftest --device cuda: FAIL unless every model runs on CUDA);
#   3. checks CPU-vs-CUDA parity of P(ALL) on the sample cells, and measures cells/s of each shipped model end to end
#      (leukoscan-cli classify --device cuda; goal >= 1,000 cells/s on one modern GPU): benchmarks/gpu_parity.py.
#
# Usage:  bash benchmarks/gpu_check.sh [LOG]      (default LOG: docs/runs/gpu_check-<date>.txt; the whole output)
# Environment: GPU_VENV (default /tmp/leukoscan-gpu-check-venv, removed first), PYTHON (python3.12 or 3.11),
# N (cells for the speed run, default 2000), ORT_GPU_SPEC (as the Makefile), PIP_FIND_LINKS / PIP_INDEX_URL for a
# machine without the internet (a wheelhouse made elsewhere with `pip download -r requirements/gpu.txt
# "onnxruntime-gpu[cuda,cudnn]>=1.20,<1.33" -d wheels`).  Exit status: 0 every check passed, 1 one failed.
set -u -o pipefail
cd "$(dirname "$0")/.."
LOG=${1:-docs/runs/gpu_check-$(date +%Y%m%d).txt}
GPU_VENV=${GPU_VENV:-/tmp/leukoscan-gpu-check-venv}
N=${N:-2000}
mkdir -p "$(dirname "$LOG")"
exec > >(tee "$LOG") 2>&1
fail=0
step() { printf '\n== %s\n' "$*"; }
check() { if "$@"; then echo "PASS: $*"; else echo "FAIL: $*"; fail=1; fi; }

step "machine"
date -u +%Y-%m-%dT%H:%M:%SZ
git rev-parse --short HEAD 2>/dev/null || true
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || { echo "FAIL: no NVIDIA driver (nvidia-smi)"; exit 1; }
lscpu 2>/dev/null | grep -m1 "Model name" || true

step "1. the GPU route from scratch: make venv-gpu VENV_GPU=$GPU_VENV"
rm -rf "$GPU_VENV"
make_args=(venv-gpu "VENV_GPU=$GPU_VENV")
[ -n "${PYTHON:-}" ] && make_args+=("PYTHON=$PYTHON")
[ -n "${ORT_GPU_SPEC:-}" ] && make_args+=("ORT_GPU_SPEC=$ORT_GPU_SPEC")
check make "${make_args[@]}"
PY=$GPU_VENV/bin/python
[ -x "$PY" ] || { echo "FAIL: no venv at $GPU_VENV"; exit 1; }
"$PY" -m pip list 2>/dev/null | grep -i -E "^onnxruntime|^leukoscan"
check test -z "$("$PY" -m pip list 2>/dev/null | grep -i -E '^onnxruntime ')"   # the CPU package is absent
check "$PY" -c "import onnxruntime as o; p = o.get_available_providers(); print(o.__version__, p); assert 'CUDAExecutionProvider' in p"

step "2. the self-test on CUDA"
check "$PY" -m engine.selftest --device cuda

step "3. CPU-vs-CUDA parity of P(ALL) on the sample cells, and cells/s of each shipped model ($N cells)"
check "$PY" benchmarks/gpu_parity.py --device cuda --n "$N"

step "result"
if [ "$fail" = 0 ]; then echo "gpu_check: PASS (log: $LOG)"; else echo "gpu_check: FAIL (log: $LOG)"; fi
exit "$fail"
