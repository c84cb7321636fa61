#!/usr/bin/env bash
# Runs ON the GPU machine, from the repository root: kernel-level profile of one steady-state
# training step of `medtune bench train` with Nsight Compute (ncu; nsys is not usable there).
#
#   scripts/gpu-profile.sh OUTDIR [SHAPE] [extra bench-train args]    # SHAPE default llama-1b
#
# ncu records the GPU time of every kernel (one metric, gpu__time_duration.sum) of a run with
# one warm-up and two timed steps. The fused cross-entropy forward runs exactly once per step,
# so the kernels between its 2nd and 3rd launch are one whole cycle (backward, optimizer, next
# forward). scripts/profile-summary.py sums them by kernel name. Compare the total with the
# wall step time of the same shape without ncu: the difference is time the GPU waits for the
# host (launch overhead, synchronisation).
set -uo pipefail
OUT=${1:?usage: scripts/gpu-profile.sh OUTDIR [SHAPE] [bench args]}
SHAPE=${2:-llama-1b}
shift 2 2>/dev/null || shift $#
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
. scripts/gpu-env.sh
NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null)
[ -n "$NCU" ] || { echo "error: no ncu" >&2; exit 2; }
NAME=profile-$SHAPE
"$NCU" --csv --metrics gpu__time_duration.sum --print-units base \
    "$BIN" bench train --device cuda --shape "$SHAPE" --quant nf4-dq --batch 4 --seq 512 \
    --lora-r 16 --lora-alpha 32 --steps 2 --warmup 1 "$@" > "$OUT/$NAME.csv" 2> "$OUT/$NAME.stderr"
echo "ncu exit $?; $(wc -l < "$OUT/$NAME.csv") lines"
python3 scripts/profile-summary.py "$OUT/$NAME.csv" | tee "$OUT/$NAME.md"
