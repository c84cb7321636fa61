#!/usr/bin/env bash
# Builds `medtune` with the `cuda` feature on a machine without a system CUDA toolkit, for
# Hopper GPUs (H100/H200, compute capability 9.0), into target-cuda/ (the CPU build in
# target/ is untouched), then strips and compresses the binary into .gpu/ for the device.
#
#   scripts/build-cuda.sh            # medtune binary -> .gpu/medtune.xz
#
# The conformance suite runs on the GPU through `medtune verify --device cuda` (the cargo tests
# are CPU-only), so no test executables are carried.
#
# Toolkit: the CUDA 13.0 nvcc wheels from PyPI in a venv under .cuda/ (13.0 matches the H100
# driver 580; newer PTX would not JIT there). The wheels ship only versioned libcudart.so.13,
# so a linker script named libcudart.so in .cuda/link/ points the link at libcudart_static.a.
# cuBLAS, cuRAND, NVRTC and the driver stay dynamic (linked against stubs made here): found at
# run time on the GPU machine (/usr/local/cuda/lib64 and /usr/local/nvidia/lib64 there).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.cuda/venv
WHEELS="nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85"

if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
# shellcheck disable=SC2086
"$VENV/bin/pip" install -q $WHEELS
CU=$("$VENV/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')
[ -x "$CU/bin/nvcc" ] || { echo "error: no nvcc under $CU" >&2; exit 2; }

# Link the CUDA runtime statically: libcudart.so -> INPUT(libcudart_static.a).
LINK=$ROOT/.cuda/link
mkdir -p "$LINK"
echo "INPUT($CU/lib/libcudart_static.a)" > "$LINK/libcudart.so"

export PATH=$CU/bin:$PATH CUDA_HOME=$CU CUDA_PATH=$CU CUDA_ROOT=$CU CUDA_COMPUTE_CAP=90
export LIBRARY_PATH=$LINK:$CU/lib${LIBRARY_PATH:+:$LIBRARY_PATH}
export RUSTFLAGS="-L native=$LINK -L native=$CU/lib ${RUSTFLAGS:-}"
export CARGO_TARGET_DIR=$ROOT/target-cuda
nvcc --version | tail -n 2

# cudarc links cuBLAS, cuBLASLt, cuRAND, NVRTC and the driver dynamically, and none of them is
# in the nvcc wheels: link against stub libraries with the real SONAMEs, one empty function per
# symbol cudarc references. At run time the loader finds the real ones on the GPU machine.
# A clean build has no cudarc yet: the first build then stops at the link (expected), after
# compiling everything, and the stubs are made from its cudarc.
if ! ls "$CARGO_TARGET_DIR"/release/deps/libcudarc-*.rlib >/dev/null 2>&1; then
    nice -n 19 cargo build --release --features cuda -p medtune-cli --bin medtune ||
        echo "(link failure expected: making the stub libraries now)"
fi
RLIB=$(ls -t "$CARGO_TARGET_DIR"/release/deps/libcudarc-*.rlib | head -n 1)
# Plus the driver calls medtune makes itself (memory-pool statistics in the bench).
{ nm -u "$RLIB" | awk '{print $2}'; printf '%s\n' cuDeviceGetDefaultMemPool cuMemPoolGetAttribute cuMemPoolSetAttribute; } |
    grep -E '^(cu|nvrtc)' | sort -u > "$LINK/symbols.txt"
stub() { # stub SONAME LINKNAME REGEX [EXCLUDE]
    local src="$LINK/$2.c"
    grep -E "$3" "$LINK/symbols.txt" | grep -Ev "${4:-^$}" | sed 's/.*/void &(void) {}/' > "$src"
    cc -shared -fPIC -nostdlib -Wl,-soname,"$1" -o "$LINK/lib$2.so" "$src"
}
stub libcublasLt.so.13 cublasLt '^cublasLt'
stub libcublas.so.13 cublas '^cublas' '^cublasLt'
stub libcurand.so.10 curand '^curand'
stub libnvrtc.so.13 nvrtc '^nvrtc'
stub libcuda.so.1 cuda '^cu' '^(cublas|curand)'

nice -n 19 cargo build --release --features cuda -p medtune-cli --bin medtune
mkdir -p "$ROOT/.gpu"
strip -o "$ROOT/.gpu/medtune" "$CARGO_TARGET_DIR/release/medtune"
# xz, not zstd: the GPU image has no zstd. (Both copies would not fit the 64 MiB carry limit
# beside the bitsandbytes wheel.)
xz -T2 -6 -c "$ROOT/.gpu/medtune" > "$ROOT/.gpu/medtune.xz"
rm "$ROOT/.gpu/medtune"
# What it was built from (the device's checkout does not know the newest commits).
git describe --always --dirty > "$ROOT/.gpu/medtune.commit"
ls -l "$ROOT/.gpu/medtune.xz"

