#!/usr/bin/env bash
# Sets medtune up on a fresh machine (models, release build) and runs the main job, `medtune demo`.
# Extra arguments go to `medtune demo` (e.g. --quick, --full, --data-dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec target/release/medtune demo "$@"
