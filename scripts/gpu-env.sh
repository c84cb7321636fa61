# Sourced (from the repository root) by the scripts/gpu-*.sh that run ON the GPU machine: the
# run-time library path, the medtune binary unpacked to $BIN from .gpu/medtune.xz, and in
# $BUILT_FROM the commit scripts/build-cuda.sh built it from.
# Run-time libraries: the binary links libcudart statically; cuBLAS, cuRAND and NVRTC come
# from the machine's CUDA 13.0 in /usr/local/cuda/lib64.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
BIN=/tmp/medtune
xz -d -c .gpu/medtune.xz > "$BIN" && chmod +x "$BIN" || { echo "error: no .gpu/medtune.xz" >&2; exit 2; }
BUILT_FROM=$(cat .gpu/medtune.commit 2>/dev/null || echo "unknown commit")
