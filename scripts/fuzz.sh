#!/usr/bin/env bash
# Fuzzes every parser of outside input with libFuzzer (clang), each for the given number of seconds
# (default 60): the server's answers, topics files, service request bodies, a server's text.
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
for p in clang libclang-rt-14-dev rapidjson-dev libhiredis-dev; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
  fi
done
out=build-fuzz
mkdir -p "$out/corpus"
cp tests/fuzz/corpus/* "$out/corpus/"
build() {  # NAME SOURCES...: one libFuzzer target
  local name=$1
  shift
  clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Icommon/protocol -Isupervisor/run \
    "tests/fuzz/$name.cpp" "$@" -o "$out/$name"
}
run() {  # NAME: fuzz it for the given time, from the shared corpus
  "$out/$1" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=1024 \
    -print_final_stats=1 "$out/corpus" 2>&1 | tail -n 15
}
# The server's answers.
build response_parser_fuzz common/protocol/response_parser.cpp common/protocol/json_reader.cpp \
  common/protocol/bounded_json.cpp common/protocol/batch_wire.cpp
run response_parser_fuzz
# The bundled price table, generated as CMake does (supervisor/CMakeLists.txt), for price_table.cpp.
awk -v json=supervisor/cost/default_prices.json '
  index($0, "@CBM_DEFAULT_PRICES_JSON@") {
    split($0, part, "@CBM_DEFAULT_PRICES_JSON@")
    printf "%s", part[1]
    while ((getline line < json) > 0) print line
    print part[2]
    next
  }
  { print }' supervisor/cost/default_prices.cpp.in > "$out/default_prices.cpp"
# The other outside inputs: topics files (text, JSONL, CSV), a service request body, a server's text,
# a price file.
build outside_input_fuzz supervisor/run/row_reader.cpp supervisor/run/topic_rules.cpp \
  common/protocol/row_fields.cpp common/protocol/wire_text.cpp common/protocol/bounded_json.cpp \
  common/protocol/secret_scrubber.cpp supervisor/cost/price_table.cpp common/protocol/json_reader.cpp \
  "$out/default_prices.cpp" -Isupervisor/cost
run outside_input_fuzz
# Redis replies (fleets): the bounded reader, and a reply read as a task entry or a result record.
build redis_reply_fuzz common/redis/redis_client.cpp supervisor/fleet/fleet_records.cpp \
  common/protocol/result_codec.cpp common/protocol/json_reader.cpp common/protocol/bounded_json.cpp \
  common/protocol/secret_scrubber.cpp common/protocol/backoff.cpp common/protocol/api_error.cpp \
  common/protocol/row_fields.cpp common/protocol/wire_text.cpp supervisor/run/topic_rules.cpp \
  -Icommon/redis -Isupervisor/fleet -I/usr/include/hiredis -lhiredis
run redis_reply_fuzz
