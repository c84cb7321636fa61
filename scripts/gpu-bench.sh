#!/usr/bin/env bash
# Runs ON the GPU machine, from the repository root: CUDA conformance (`medtune verify`, f32
# and bf16), then for each shape the baseline (transformers + PEFT + bitsandbytes,
# bench_hf.py) and `medtune bench train` back to back on the same GPU, QLoRA (nf4-dq) and
# LoRA (none), and writes everything plus the ratios to OUTDIR.
#
#   scripts/gpu-bench.sh OUTDIR [shape ...]      # shapes: smollm2-135m llama-1b llama-8b
#
# Needs (carried with the call, all git-ignored): .gpu/medtune.xz (scripts/build-cuda.sh),
# .gpu/bench_hf.py (copied from ../shared/bench at call time) and .whl/bitsandbytes-*.whl.
# Environment: STEPS (default 10), WARMUP (3), SKIP_VERIFY=1, SKIP_HF=1.
set -uo pipefail
OUT=${1:?usage: scripts/gpu-bench.sh OUTDIR [shape ...]}
shift
SHAPES=${*:-smollm2-135m llama-1b}
STEPS=${STEPS:-10}
WARMUP=${WARMUP:-3}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."

. scripts/gpu-env.sh

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | sed 's/^/gpu: /'
    echo "medtune: built from $BUILT_FROM; $("$BIN" --version)"
    python3 -c 'import torch, transformers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)' 2>&1
    echo "run-time libraries of medtune:"
    ldd "$BIN" | grep -E 'cu|nvrtc|not found' | sed 's/^/  /'
} | tee "$OUT/env.txt"

if [ -z "${SKIP_VERIFY:-}" ]; then
    for dt in f32 bf16; do
        "$BIN" verify --fixtures fixtures/hf-tiny --device cuda --dtype "$dt" 2>&1 | tee "$OUT/verify-cuda-$dt.txt"
    done
fi

HF_OK=
if [ -z "${SKIP_HF:-}" ]; then
    if python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/bitsandbytes-*.whl; then
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
        python3 -c 'import bitsandbytes; print("bitsandbytes", bitsandbytes.__version__)' | tee -a "$OUT/env.txt"
        HF_OK=1
    fi
fi

for shape in $SHAPES; do
    # bench_hf.py knows only the Llama shapes.
    if [ -n "$HF_OK" ] && [ "$shape" != smollm2-135m ]; then
        PYTHONUNBUFFERED=1 python3 .gpu/bench_hf.py "$OUT/hf-$shape" "$shape" 2>&1 | tee "$OUT/hf-$shape.txt"
        rm -rf "/tmp/model-$shape"
    fi
    for quant in nf4-dq none; do
        base=()
        [ -f "$OUT/hf-$shape/bench_hf.json" ] && base=(--baseline "$OUT/hf-$shape/bench_hf.json")
        "$BIN" bench train --device cuda --shape "$shape" --quant "$quant" --batch 4 --seq 512 \
            --lora-r 16 --lora-alpha 32 --steps "$STEPS" --warmup "$WARMUP" \
            --json "$OUT/medtune-$shape-$quant.json" "${base[@]}" 2>&1 | tee "$OUT/medtune-$shape-$quant.txt"
    done
done

# One table: ours vs the baseline run just before on this GPU.
python3 - "$OUT" <<'PY' | tee "$OUT/summary.md"
import glob, json, os, sys
out = sys.argv[1]
hf = {}
for f in glob.glob(os.path.join(out, "hf-*", "bench_hf.json")):
    for r in json.load(open(f)):
        hf[(r["shape"], "nf4-dq" if r["quant"] == "nf4-dq" else "none")] = r
# Memory ratio: medtune's allocated peak (pool high watermark) over the baseline's
# torch.cuda.max_memory_allocated, like for like; the in-use peak is shown too.
print("| shape | quant | medtune tok/s | medtune s/step | medtune allocated peak GiB | medtune in use GiB (over start) | HF tok/s | HF peak GiB | speed ratio | memory ratio |")
print("|---|---|---|---|---|---|---|---|---|---|")
for f in sorted(glob.glob(os.path.join(out, "medtune-*.json"))):
    r = json.load(open(f)); o = r["options"]
    key = (o["shape"], o["quant"])
    shape = {"Smollm2_135m": "smollm2-135m", "Llama1b": "llama-1b", "Llama8b": "llama-8b"}.get(o["shape"], o["shape"])
    quant = {"Nf4Dq": "nf4-dq", "None": "none"}.get(o["quant"], o["quant"])
    peak = (r["mem_peak_bytes"] - r["mem_before_bytes"]) / 2**30 if r["mem_peak_bytes"] else float("nan")
    alloc = r["allocated_peak_bytes"] / 2**30 if r.get("allocated_peak_bytes") else float("nan")
    b = hf.get((shape, quant))
    cells = [shape, quant, f'{r["tokens_per_s"]:.0f}', f'{r["s_per_step"]:.3f}', f"{alloc:.2f}", f"{peak:.2f}"]
    if b:
        cells += [f'{b["tokens_per_s"]:.0f}', f'{b["peak_mem_gib"]:.2f}',
                  f'{r["tokens_per_s"] / b["tokens_per_s"]:.2f}', f'{alloc / b["peak_mem_gib"]:.2f}']
    else:
        cells += ["-", "-", "-", "-"]
    print("| " + " | ".join(cells) + " |")
PY
