#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit and integration) through ctest.
#   scripts/test.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
scripts/setup.sh "$@"
# Tests spawn servers and worker processes: two at a time fits a 2-core machine (CBM_TEST_JOBS to
# change it; most tests wait on a server's latency most of the time).
ctest --test-dir "$build_dir" --output-on-failure -j "${CBM_TEST_JOBS:-2}"
