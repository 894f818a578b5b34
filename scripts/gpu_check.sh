#!/usr/bin/env bash
# The GPU checks, in one go, for a machine with an NVIDIA GPU (the `device` machine when a task
# is lent one): build with `--features cuda`, run tests/gpu.rs (our CUDA kernels and every
# backbone against the CPU, and the CLI with --device cuda), time `bench train` and
# `bench models` on the GPU. Results go to $OUT (default gpu-out/).
#
# Needs nvcc (CUDA_HOME, or on PATH) and the CUDA libraries; `scripts/cuda_toolchain.sh` builds
# both from PyPI where PyPI is reachable. Never put that script's stub libcuda on a GPU machine's
# library path. Budget: the candle CUDA build takes a few minutes on 16 cores.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || { echo "gpu_check: no nvidia-smi / GPU"; exit 2; }
if [ -n "${CUDA_HOME:-}" ]; then export PATH="$CUDA_HOME/bin:$PATH"; fi
command -v nvcc >/dev/null || { echo "gpu_check: no nvcc (set CUDA_HOME)"; exit 2; }
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)}
echo "gpu_check: compute capability $CUDA_COMPUTE_CAP, $(nvcc --version | tail -1)" | tee "$OUT/summary.txt"
t0=$(date +%s)
cargo build --release --features cuda 2>&1 | tail -3 | tee -a "$OUT/summary.txt"
echo "build: $(( $(date +%s) - t0 )) s" | tee -a "$OUT/summary.txt"
cargo test --release --features cuda --test gpu -- --nocapture --test-threads 1 2>&1 | tee "$OUT/gpu-tests.txt" | grep -E "^test |test result|relative error|loss cpu" | tee -a "$OUT/summary.txt"
g=target/release/genolm
"$g" --device cuda bench train --model gb-cnn --batch 64 --length 300 --json 2>&1 | tee -a "$OUT/summary.txt"
"$g" --device cuda bench models --models mamba,hyena,transformer,transformer-dense,cnn \
  --min-length 1024 --max-length 131072 --max-seconds 20 --out "$OUT/scaling" --json \
  > "$OUT/scaling.json" 2> "$OUT/scaling.log"
tail -n 40 "$OUT/scaling.log" | tee -a "$OUT/summary.txt"
echo "total: $(( $(date +%s) - t0 )) s" | tee -a "$OUT/summary.txt"
