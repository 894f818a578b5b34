#!/usr/bin/env bash
# Assemble a CUDA 13.0 toolchain from PyPI wheels (no GPU, no NVIDIA apt repo needed)
# good enough for `cargo check/build --features cuda` of candle 0.11.1
# (candle-kernels -> cudaforge -> nvcc; cudarc -> `nvcc --version`, dynamic-linking).
#
# Why CUDA 13: the nvidia-cuda-nvcc-cu12 (12.0..12.9) and -cu11 wheels ship only
# `ptxas`, no `nvcc`. The CUDA-13 wheel `nvidia-cuda-nvcc` ships the full driver
# (nvcc, cudafe++, fatbinary, nvlink, ptxas, nvcc.profile) plus deps nvvm (cicc) and crt.
#
# Usage:  bash scripts/cuda_toolchain.sh   then run the export lines it prints at the end.
# Compile checks only: nothing here can run a kernel (no GPU, and libcuda is a stub).
# Needs:  python3 (>=3.8) with venv, gcc/g++ (Debian bookworm gcc 12 works), internet to PyPI.
# Disk:   ~1.2 GiB for the venv.
set -euo pipefail

VENV=${CUDA_VENV:-/tmp/cuda13venv}
LINK=${CUDA_LINK:-/tmp/cuda}          # stable CUDA_HOME path (symlink)
CAP=${CUDA_COMPUTE_CAP:-90}           # H100/H200 = sm_90

if [ ! -x "$VENV/bin/pip" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
"$VENV/bin/pip" install -q \
  "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-nvrtc==13.0.*" \
  "nvidia-cuda-cccl==13.0.*" "nvidia-nvvm==13.0.*" "nvidia-cuda-crt==13.0.*" \
  "nvidia-cublas==13.0.*" "nvidia-curand"

C=$("$VENV/bin/python" -c 'import os,nvidia; print(os.path.join(list(nvidia.__path__)[0],"cu13"))')

# Layout expected by nvcc.profile ($(TOP)/targets/x86_64-linux/{include,lib}) and by
# cudaforge / cudarc (CUDA_HOME/{bin/nvcc,include,lib64}).
mkdir -p "$C/targets/x86_64-linux"
ln -sfn ../../include "$C/targets/x86_64-linux/include"
ln -sfn ../../lib     "$C/targets/x86_64-linux/lib"
ln -sfn lib "$C/lib64"
# Unversioned .so names for the linker (-lcudart -lcublas -lcublasLt -lcurand -lnvrtc).
( cd "$C/lib"
  for f in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13; do
    ln -sfn "$f" "${f%%.so.*}.so"
  done )

# libcuda (driver API) is not on PyPI. Only needed when a binary/test is *linked*
# (cudarc uses dynamic-linking => -lcuda). Generate a stub exporting every cu* symbol
# cudarc declares; every stub returns 100 (CUDA_ERROR_NO_DEVICE). Never ship it to a GPU box.
CUDARC_SYS=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs 2>/dev/null | tail -1 || true)
if [ -n "$CUDARC_SYS" ]; then
  mkdir -p "$C/lib/stubs"
  grep -oE '^pub unsafe fn cu[A-Za-z0-9_]+' "$CUDARC_SYS" | awk '{print $4}' | sort -u \
    | awk '{print "int "$1"(void){return 100;}"}' > "$C/lib/stubs/cuda_stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$C/lib/stubs/libcuda.so.1" "$C/lib/stubs/cuda_stub.c"
  ln -sfn libcuda.so.1 "$C/lib/stubs/libcuda.so"
else
  echo "note: cudarc sources not in cargo registry yet (run 'cargo fetch' first and rerun) - no libcuda stub built" >&2
fi

ln -sfn "$C" "$LINK"

export CUDA_HOME="$LINK" CUDA_PATH="$LINK" CUDA_ROOT="$LINK" CUDA_TOOLKIT_ROOT_DIR="$LINK"
export PATH="$LINK/bin:$PATH" CUDA_COMPUTE_CAP="$CAP"
export LIBRARY_PATH="$LINK/lib:$LINK/lib/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}"
nvcc --version | tail -2
cat <<EOF
# toolchain ready. In the shell that runs cargo:
export CUDA_HOME=$LINK CUDA_PATH=$LINK PATH=$LINK/bin:\$PATH CUDA_COMPUTE_CAP=$CAP
export LIBRARY_PATH=$LINK/lib:$LINK/lib/stubs
# to *run* linked test binaries on a CPU-only box (CUDA calls fail with NO_DEVICE):
#   export LD_LIBRARY_PATH=$LINK/lib:$LINK/lib/stubs
cargo check --release --features cuda
EOF
