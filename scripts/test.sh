#!/usr/bin/env bash
# Runs every check and test of medtune: formatting, lints, the whole test suite (unit, integration,
# HF/PEFT/bitsandbytes conformance, CLI) and the headless-browser test of the web page.
set -euo pipefail
cd "$(dirname "$0")/.."
MEDTUNE_SKIP_BUILD=1 scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
if [ -x scripts/browser-test/run.sh ]; then
  scripts/browser-test/run.sh
fi
