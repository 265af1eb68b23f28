#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit and integration) through ctest.
#   scripts/test.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
scripts/setup.sh "$@"
# Tests spawn servers and worker processes: two at a time fits a 2-core machine.
ctest --test-dir "$build_dir" --output-on-failure -j 2
