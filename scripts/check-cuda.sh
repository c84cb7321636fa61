#!/usr/bin/env bash
# Compiles the `cuda` feature of a library crate (and the fused kernels to PTX) in target-cuda/
# with the toolkit and flags of scripts/build-cuda.sh, without linking the binary: the fast loop
# while writing CUDA code. (`cargo check` would not do: it re-runs candle's kernel build, ~45 min.)
#
#   scripts/check-cuda.sh [-p CRATE]       # default: medtune-model
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CU=$("$ROOT/.cuda/venv/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')
export PATH=$CU/bin:$PATH CUDA_HOME=$CU CUDA_PATH=$CU CUDA_ROOT=$CU CUDA_COMPUTE_CAP=90
# The same flags as build-cuda.sh: any difference would rebuild candle's kernels (~45 min).
LINK=$ROOT/.cuda/link
export LIBRARY_PATH=$LINK:$CU/lib${LIBRARY_PATH:+:$LIBRARY_PATH}
export RUSTFLAGS="-L native=$LINK -L native=$CU/lib ${RUSTFLAGS:-}"
export CARGO_TARGET_DIR=$ROOT/target-cuda
if [ $# -eq 0 ]; then set -- -p medtune-model; fi
nice -n 19 cargo build --release --features cuda "$@"
