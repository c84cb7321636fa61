#!/usr/bin/env bash
# Runs ON the GPU machine, from the repository root: checks and measures the fused kernels
# (crates/medtune-model/src/fused). Writes everything to OUTDIR.
#
#   scripts/gpu-fused.sh OUTDIR
#
# 1. `medtune verify --device cuda` in f32 and bf16 (fused kernels on, as by default on CUDA):
#    the per-kernel self-check (fused vs composed, values and gradients) and the hf-tiny
#    conformance suite.
# 2. ABLATE_SHAPE (default llama-1b) and EXTRA_SHAPES (default llama-8b), nf4-dq, batch 4 x 512,
#    r=16, every fused kernel on.
# 3. Ablation on ABLATE_SHAPE: all off (MEDTUNE_UNFUSED=all), and each one off in turn.
# 4. MEMORY_LIMITS (default "8"): the EXTRA_SHAPES runs again with all but that many GiB of
#    free device memory held (`--memory-limit-gib`): completing shows the run fits.
# Environment: STEPS (default 5), WARMUP (2), SKIP_VERIFY=1, SKIP_ABLATION=1, and BASELINE_DIR
# holding hf-<shape>/bench_hf.json of a baseline run on the same GPU (ratios printed).
set -uo pipefail
OUT=${1:?usage: scripts/gpu-fused.sh OUTDIR}
STEPS=${STEPS:-5}
WARMUP=${WARMUP:-2}
ABLATE_SHAPE=${ABLATE_SHAPE:-llama-1b}
EXTRA_SHAPES=${EXTRA_SHAPES-llama-8b}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
. scripts/gpu-env.sh
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | sed 's/^/gpu: /'
    echo "medtune: built from $BUILT_FROM; $("$BIN" --version)"
} | tee "$OUT/env.txt"

if [ -z "${SKIP_VERIFY:-}" ]; then
    for dt in f32 bf16; do
        "$BIN" verify --fixtures fixtures/hf-tiny --device cuda --dtype "$dt" 2>&1 | tee "$OUT/verify-cuda-$dt.txt"
    done
fi

bench() { # bench NAME SHAPE [extra args]: MEDTUNE_UNFUSED comes from the caller's environment
    local name=$1 shape=$2
    shift 2
    if [ -n "${BASELINE_DIR:-}" ] && [ -f "$BASELINE_DIR/hf-$shape/bench_hf.json" ]; then
        set -- "$@" --baseline "$BASELINE_DIR/hf-$shape/bench_hf.json"
    fi
    "$BIN" bench train --device cuda --shape "$shape" --quant nf4-dq --batch 4 --seq 512 \
        --lora-r 16 --lora-alpha 32 --steps "$STEPS" --warmup "$WARMUP" \
        --json "$OUT/$name.json" "$@" 2>&1 | tee "$OUT/$name.txt"
}

# Every fused kernel on, first for every shape (the figures that matter most come first, in
# case the call runs out of time), then the ablation.
for shape in $ABLATE_SHAPE $EXTRA_SHAPES; do
    bench "$shape-fused-all" "$shape"
done
for shape in $EXTRA_SHAPES; do
    for gib in ${MEMORY_LIMITS-8}; do
        bench "$shape-limit-${gib}gib" "$shape" --memory-limit-gib "$gib"
    done
done
if [ -z "${SKIP_ABLATION:-}" ]; then
    MEDTUNE_UNFUSED=all bench "$ABLATE_SHAPE-fused-none" "$ABLATE_SHAPE"
    for op in $("$BIN" bench train --list-fused); do
        MEDTUNE_UNFUSED=$op bench "$ABLATE_SHAPE-without-$op" "$ABLATE_SHAPE"
    done
fi

python3 - "$OUT" <<'PY' | tee "$OUT/summary.md"
import glob, json, os, sys
out = sys.argv[1]
print("| run | fused kernels | tok/s | s/step | peak in use GiB (over start) | peak allocated GiB |")
print("|---|---|---|---|---|---|")
for f in sorted(glob.glob(os.path.join(out, "*.json")), key=os.path.getmtime):
    r = json.load(open(f))
    held = r.get("held_bytes") or 0
    peak = (r["mem_peak_bytes"] - r["mem_before_bytes"] - held) / 2**30 if r.get("mem_peak_bytes") else float("nan")
    ops = ", ".join(r.get("fused_ops", [])) or "none"
    alloc = r.get("allocated_peak_bytes")
    alloc = f"{alloc / 2**30:.2f}" if alloc else "-"
    print(f'| {os.path.basename(f)[:-5]} | {ops} | {r["tokens_per_s"]:.0f} | {r["s_per_step"]:.3f} | {peak:.2f} | {alloc} |')
PY
