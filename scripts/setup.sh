#!/usr/bin/env bash
# Installs what is missing (Debian 12 packages only), then configures and builds.
# Idempotent and quiet when everything is already there.
#   scripts/setup.sh [BUILD_DIR] [extra cmake args...]     (default build dir: build)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake ninja-build g++ pkg-config
          libboost1.81-dev libboost-filesystem1.81-dev libboost-system1.81-dev
          libcurl4-openssl-dev rapidjson-dev catch2 libcli11-dev
          # The Python package (python/) and its tests: pybind11, pytest, Flask, and what an offline
          # `pip install --no-build-isolation` into a venv needs.
          python3-dev pybind11-dev python3-pybind11 python3-pytest python3-flask python3-venv python3-pip
          python3-setuptools python3-wheel
          # scripts/bench.sh: wrk, and nginx answering a canned response (the echo module).
          wrk nginx-light libnginx-mod-http-echo)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

build_dir=${1:-build}
shift || true
if [ ! -f "$build_dir/build.ninja" ] || [ "$#" -gt 0 ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
fi
cmake --build "$build_dir" -j "$(nproc)"
