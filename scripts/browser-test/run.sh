#!/usr/bin/env bash
# Browser test of the medtune chat page (headless Debian Chromium driven by playwright-core).
# Installs what it needs (idempotent): Debian's chromium, the npm packages in this folder, and
# the medtune binary (cargo build). Uses the real SmolLM2 model when models/smollm2-135m-instruct
# exists, else the tiny random-weight llama fixture (the text is noise, the page flow is the same).
# Output (screenshot.png, server.log) goes to $BROWSER_TEST_OUT or target/browser-test.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${BROWSER_TEST_OUT:-$ROOT/target/browser-test}"

if [ ! -x /usr/bin/chromium ]; then
  echo "browser-test: installing chromium (Debian)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

if [ ! -f "$HERE/node_modules/playwright-core/package.json" ]; then
  echo "browser-test: installing npm packages"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
fi

BIN="${MEDTUNE_BIN:-}"
if [ -z "$BIN" ]; then
  (cd "$ROOT" && cargo build -q -p medtune-cli)
  BIN="$ROOT/target/debug/medtune"
fi

MODEL="$ROOT/models/smollm2-135m-instruct"
if [ ! -d "$MODEL" ]; then
  MODEL="$ROOT/fixtures/hf-tiny/models/llama"
  echo "browser-test: $ROOT/models/smollm2-135m-instruct not found, using the tiny fixture model"
fi

mkdir -p "$OUT"
exec node "$HERE/test.mjs" --bin "$BIN" --model "$MODEL" --out "$OUT"
