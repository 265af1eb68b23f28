#!/usr/bin/env bash
# Fuzzes the response parsers with libFuzzer (clang) for the given number of seconds (default 60).
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
for p in clang libclang-rt-14-dev rapidjson-dev; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
  fi
done
out=build-fuzz
mkdir -p "$out/corpus"
cp tests/fuzz/corpus/* "$out/corpus/"
clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Icommon/protocol \
  tests/fuzz/response_parser_fuzz.cpp common/protocol/response_parser.cpp common/protocol/json_reader.cpp \
  -o "$out/response_parser_fuzz"
"$out/response_parser_fuzz" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=1024 \
  -print_final_stats=1 "$out/corpus" 2>&1 | tail -n 15
