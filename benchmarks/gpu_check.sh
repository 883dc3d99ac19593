#!/usr/bin/env bash
# The GPU path in one go (issue 21): every objective in bf16 and fp16, model vs pipeline
# images/s, packed runs, kNN GPU vs CPU, DDP on two GPUs, the CUDA-only tests; writes
# OUT/gpu_check.json and OUT/gpu_check.md (see benchmarks/gpu_check.py).
#
#   benchmarks/gpu_check.sh [--out DIR]     on a machine with a GPU, within 8 minutes
#   benchmarks/gpu_check.sh --dry-run       the same steps on the CPU at toy size
#
# PYTHON selects the interpreter (default: the checkout's .venv, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
exec timeout 480 "$PYTHON" benchmarks/gpu_check.py "$@"
