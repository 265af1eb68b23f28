#!/usr/bin/env bash
# Benchmarks (never run as tests): the simulator's own capacity with wrk; then every mode side by side
# against wrk's floor, on nginx answering a canned response (skipped with a note when nginx-light and
# libnginx-mod-http-echo cannot be installed) and on the bundled simulator: wall time and its ratio to
# the floor, CPU per task, time to full rate, summed PSS, zero-latency rate; then Python, monitoring.
# Writes docs/benchmarks.md, keeping what follows its "hand-written" marker line.
#   scripts/bench.sh            all benchmarks (several minutes)
#   scripts/bench.sh --quick    smaller sizes (a minute)
#   BENCH_MILLION=1 scripts/bench.sh   also the 1,000,000-topic streaming run (~5 minutes)
#   BENCH_MODES="asyncio threading" scripts/bench.sh   only these modes (default: every mode the build has,
#                                   and multiprocessing+wN: multiprocessing --workers N, N the core count)
#   BENCH_BUILD_DIR=/tmp/old scripts/bench.sh   another build's binaries (bin/, tests/simulator/), unbuilt
#   BENCH_OUT=/tmp/b.md scripts/bench.sh        write there instead of docs/benchmarks.md
#   BENCH_RUNS=5 scripts/bench.sh   timed runs per measurement (default 3, 1 with --quick): the median is
#                                   reported with the range (the simulator shares the cores: runs vary)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
runs=${BENCH_RUNS:-3}
[ $quick = 1 ] && runs=${BENCH_RUNS:-1}
# BENCH_BUILD_DIR=DIR: the binaries of another build, used as they are (say, a copy of an older one to
# compare with); by default `build`, built first.
build_dir=${BENCH_BUILD_DIR:-build}
[ -z "${BENCH_BUILD_DIR:-}" ] && scripts/setup.sh build >/dev/null
# The bench's own packages (not the build's: scripts/setup.sh leaves them out).
bench_install() {
  local sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq && \
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "$@" >/dev/null
}
command -v wrk >/dev/null || bench_install wrk

bin=$build_dir/bin/concurrent_bigmodel
sim_bin=$build_dir/tests/simulator/bigmodel_simulator
work=$(mktemp -d)
sims=()
cleanup() { for p in "${sims[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export BIGMODEL_API_KEY=bench-key
out=${BENCH_OUT:-docs/benchmarks.md}
results=()
note() { results+=("$1"); echo "$1"; }
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
range() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "-" hi }'; }

start_sim() {  # start_sim NAME ARGS... ; sets $port
  local name=$1; shift
  "$sim_bin" --port 0 --port-file "$work/$name.port" "$@" >/dev/null 2>&1 &
  sims+=($!)
  for _ in $(seq 1 500); do [ -s "$work/$name.port" ] && break; sleep 0.01; done
  port=$(cat "$work/$name.port")
}

# The PSS of `pid` and every process below it (workers are the fork server's children), in two
# processes per sample whatever their number: a sampler that forks per worker would load the very
# cores whose time it is measuring.
pss_tree() {
  local files
  files=$(ps -e -o pid=,ppid= | awk -v root="$1" '
    { parent[$1] = $2 }
    END { for (p in parent) { q = p; while (q != "" && q + 0 != root + 0 && q + 0 > 1) q = parent[q]; if (q + 0 == root + 0) print "/proc/" p "/smaps_rollup" } }')
  # shellcheck disable=SC2086
  awk '/^Pss:/ { s += $2 } END { print s + 0 }' $files 2>/dev/null || echo 0
}

# Peak of (supervisor RSS) and of (sum of PSS over the supervisor and its workers) while $1 runs.
sample_memory() {
  local pid=$1 peak_rss=0 peak_pss=0
  while kill -0 "$pid" 2>/dev/null; do
    local rss pss
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    pss=$(pss_tree "$pid")
    [ "${rss:-0}" -gt "$peak_rss" ] && peak_rss=$rss
    [ "${pss:-0}" -gt "$peak_pss" ] && peak_pss=$pss
    sleep 0.1
  done
  echo "$peak_rss $peak_pss"
}

topics() { seq 1 "$1" | sed 's/^/bench topic /' > "$work/topics.$1"; echo "$work/topics.$1"; }

run_cbm() {  # run_cbm LOG ARGS... ; prints wall seconds (nothing else runs meanwhile)
  local log=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  "$bin" --quiet --delay 0 --log-file "$log" --output "$work/report.json" "$@" || true
  t1=$(date +%s.%N)
  calc "$t1 - $t0" 3
}

measure_memory() {  # measure_memory LOG ARGS... ; the same run again, sampled: peaks go to $work/mem
  local log=$1; shift
  "$bin" --quiet --delay 0 --log-file "$log" --output "$work/memory-report.json" "$@" &
  local pid=$!
  sample_memory "$pid" > "$work/mem"
  wait "$pid" || true
}

echo "== 1. the simulator's capacity (wrk) =="
start_sim zero --threads 2
sim_zero=$port
wrk_rps=$(wrk -t2 -c64 -d5s -s tests/simulator/wrk_chat.lua "http://127.0.0.1:$port/api/paas/v4/chat/completions" |
  awk '/Requests\/sec/ {print $2}')
note "| simulator, zero latency, wrk -t2 -c64 | ${wrk_rps} req/s | target >= 20,000 |"
start_sim slow --threads 2 --latency-ms 100
wrk_slow=$(wrk -t2 -c2000 -d5s -s tests/simulator/wrk_chat.lua "http://127.0.0.1:$port/api/paas/v4/chat/completions" |
  awk '/Requests\/sec/ {print $2}')
note "| simulator, 100 ms latency, wrk -c2000 | ${wrk_slow} req/s | ideal 2000/0.1 = 20,000; $(calc "$wrk_slow / 20000 * 100" 1)% |"
# The runs get a simulator of their own: the one wrk just loaded with 2,000 connections is still
# tearing them down (thousands of sockets in TIME_WAIT), which the first runs would pay for.
start_sim slow-runs --threads 2 --latency-ms 100
sim_slow=$port

# Every mode this build has (a mode it refuses exits 2 before sending anything).
modes=()
for m in multiprocessing threading asyncio; do
  status=0
  "$bin" --mode $m --topics probe --base-url http://127.0.0.1:9/v4 --max-retries 0 --quiet --delay 0 \
    --output "$work/probe.json" --log-file "$work/probe.log" 2>/dev/null || status=$?
  [ $status -ne 2 ] && modes+=("$m")
done
# Multiprocessing also with one worker process per core, each running its share of the attempts.
cores=$(nproc)
[ "$cores" -gt 64 ] && cores=64  # --workers is at most --concurrency (64 in the smallest table)
[[ " ${modes[*]} " == *" multiprocessing "* ]] && modes=("${modes[@]:0:1}" "multiprocessing+w$cores" "${modes[@]:1}")
[ -n "${BENCH_MODES:-}" ] && read -r -a modes <<< "$BENCH_MODES"
# mode_flags MODE: the flags of a table's mode ("multiprocessing+wN" is multiprocessing --workers N).
mode_flags() {
  case $1 in
    *+w*) echo "--mode ${1%%+w*} --workers ${1##*+w}" ;;
    *) echo "--mode $1" ;;
  esac
}

# --- The side-by-side table (issue 15): every mode on one workload against wrk's floor --------------
# For each server: wrk's own rate at the same concurrency and latency is the floor (n topics take at least
# n / rate seconds); each mode's wall time (the whole process, as a user waits for it) and its ratio to
# the floor; CPU per task (user + sys of the tool and of every process it started, from the kernel's
# accounting of reaped children: bash's `time`); time to full rate; summed PSS; zero-latency rate.
#
# Time to full rate: the report's per-result finished_at_ms, counted in 100 ms buckets from the
# process's launch. Full rate is the median bucket (the last, partial bucket left out); the time to full
# rate is the start of the first bucket holding at least 90% of it. With a 100 ms server no result can
# come before 100 ms, so 100 ms is the ideal.
table_sizes() {  # n64 n256 nzero
  if [ $quick = 1 ]; then echo "640 2560 5000"; else echo "3200 12800 20000"; fi
}
wrk_secs=5
[ $quick = 1 ] && wrk_secs=2

wrk_rate() {  # wrk_rate URL CONCURRENCY ; prints requests/s
  wrk -t2 -c"$2" -d${wrk_secs}s -s tests/simulator/wrk_chat.lua "$1/chat/completions" | awk '/Requests\/sec/ {print $2}'
}

run_timed() {  # run_timed LOG ARGS... ; prints "WALL_S CPU_S LAUNCH_MS" (report in $work/report.json)
  local log=$1; shift
  local t0 out
  t0=$(date +%s%3N)
  out=$( { TIMEFORMAT='%3R %3U %3S'; time "$bin" --quiet --delay 0 --log-file "$log" --output "$work/report.json" "$@" \
    >/dev/null 2>"$work/stderr" || true; } 2>&1 )
  read -r real user sys <<< "$out"
  echo "$real $(calc "$user + $sys" 3) $t0"
}

full_rate_ms() {  # full_rate_ms REPORT LAUNCH_MS
  local counts med
  counts=$(grep -o '"finished_at_ms":[0-9]*' "$1" | cut -d: -f2 |
    awk -v t0="$2" '{ b = int(($1 - t0) / 100); if (b < 0) b = 0; c[b]++; if (b > last) last = b }
                    END { for (i = 0; i <= last; i++) print i, c[i] + 0 }')
  med=$(echo "$counts" | head -n -1 | awk '{ print $2 }' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] + 0 }')
  echo "$counts" | awk -v m="$med" '$2 >= 0.9 * m && m > 0 { print $1 * 100; found = 1; exit } END { if (!found) print "-" }'
}

# mode_table TITLE SLOW_URL ZERO_URL: the table for one server (its base URLs, without /chat/completions).
mode_table() {
  local title=$1 slow=$2 zero=$3
  read -r n64 n256 nzero <<< "$(table_sizes)"
  local -A floor rate_c
  for c in 64 256; do
    rate_c[$c]=$(wrk_rate "$slow" $c)
  done
  floor[64]=$(calc "$n64 / ${rate_c[64]}" 3)
  floor[256]=$(calc "$n256 / ${rate_c[256]}" 3)
  local wrk_zero
  wrk_zero=$(wrk_rate "$zero" 64)
  local row64="| c64, $n64 topics: wall s (x floor) | ${floor[64]} s (wrk ${rate_c[64]} req/s) |"
  local row256="| c256, $n256 topics: wall s (x floor) | ${floor[256]} s (wrk ${rate_c[256]} req/s) |"
  local rowcpu="| c256: CPU per task (user + sys of the tool and its processes) | - |"
  local rowfull="| c256: time to full rate (from launch; ideal 100 ms) | - |"
  local rowpss="| c256: summed PSS, peak (the tool and its processes) | - |"
  local rowzero="| zero latency, c64, $nzero topics: % of wrk's rate | 100 % ($wrk_zero req/s) |"
  for mode in "${modes[@]}"; do
    for c in 64 256; do
      local n=$n64
      [ $c = 256 ] && n=$n256
      local f walls=() cpus=() fulls=()
      f=$(topics $n)
      local flags
      read -r -a flags <<< "$(mode_flags "$mode")"
      local args=(--base-url "$slow" --topics-file "$f" --concurrency "$c" --no-search "${flags[@]}")
      for _ in $(seq 1 "$runs"); do
        read -r wall cpu t0 <<< "$(run_timed "$work/table.$mode.$c.log" "${args[@]}")"
        walls+=("$wall"); cpus+=("$cpu")
        [ $c = 256 ] && fulls+=("$(full_rate_ms "$work/report.json" "$t0")")
      done
      local ok
      ok=$(grep -o '"successful_tasks":[0-9]*' "$work/report.json" | head -1 | cut -d: -f2)
      [ "${ok:-0}" = "$n" ] || echo "warning: $mode c$c: ${ok:-0} of $n succeeded (last run)" >&2
      local wall
      wall=$(median "${walls[@]}")
      local cell
      cell="$wall ($(calc "$wall / ${floor[$c]}" 3)); range $(range "${walls[@]}")"
      if [ $c = 64 ]; then
        row64+=" $cell |"
      else
        row256+=" $cell |"
        rowcpu+=" $(calc "$(median "${cpus[@]}") / $n * 1000" 3) ms |"
        rowfull+=" $(median "${fulls[@]}") ms (runs: ${fulls[*]}) |"
        measure_memory "$work/table-memory.$mode.log" "${args[@]}"
        read -r _ pss < "$work/mem"
        rowpss+=" $(calc "$pss / 1024" 1) MiB |"
      fi
    done
    local f zwalls=()
    f=$(topics $nzero)
    for _ in $(seq 1 "$runs"); do
      read -r wall _ _ <<< "$(run_timed "$work/table-zero.$mode.log" --base-url "$zero" --topics-file "$f" \
        --concurrency 64 --no-search "${flags[@]}")"
      zwalls+=("$wall")
    done
    local zw
    zw=$(median "${zwalls[@]}")
    rowzero+=" $(calc "$nzero / $zw / $wrk_zero * 100" 1) % ($(calc "$nzero / $zw" 0) tasks/s) |"
  done
  local header="| $title | wrk floor |" rule="|---|---|"
  for mode in "${modes[@]}"; do header+=" $mode |"; rule+="---|"; done
  tables+=("### $title" "" "$header" "$rule" "$row64" "$row256" "$rowcpu" "$rowfull" "$rowpss" "$rowzero" "")
  printf '%s\n' "$header" "$rule" "$row64" "$row256" "$rowcpu" "$rowfull" "$rowpss" "$rowzero"
}

# nginx (Debian's nginx-light with the echo module) answering a canned BigModel chat completion, after
# 100 ms on one port and at once on another: an independent server, never the bottleneck. Configured
# here in $work, on 127.0.0.1, unprivileged. Sets $nginx_slow and $nginx_zero, or $nginx_missing.
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
echo_module=/usr/lib/nginx/modules/ngx_http_echo_module.so
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
start_nginx() {
  if [ ! -x "$nginx_bin" ] || [ ! -f $echo_module ]; then
    bench_install nginx-light libnginx-mod-http-echo 2>/dev/null || true
    nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
  fi
  if [ ! -x "$nginx_bin" ] || [ ! -f $echo_module ]; then
    nginx_missing="nginx-light with libnginx-mod-http-echo is not installed and could not be installed"
    return 1
  fi
  local dir=$work/nginx slow_port zero_port
  mkdir -p "$dir"
  slow_port=$(free_port); zero_port=$(free_port)
  # No '$' in the body: nginx would read it as a variable.
  local body='{"id":"bench-1","request_id":"bench-1","created":1755496956,"model":"glm-4.5-air","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"A canned analysis from the benchmark server: the topic matters for three reasons."}}],"usage":{"prompt_tokens":120,"completion_tokens":40,"total_tokens":160}}'
  cat > "$dir/nginx.conf" <<CONF
load_module $echo_module;
worker_processes 2;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $dir/body; proxy_temp_path $dir/proxy; fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  default_type application/json;
  server { listen 127.0.0.1:$slow_port; location / { echo_sleep 0.1; echo '$body'; } }
  server { listen 127.0.0.1:$zero_port; location / { echo '$body'; } }
}
CONF
  "$nginx_bin" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >/dev/null 2>&1 &
  sims+=($!)
  for _ in $(seq 1 500); do
    curl -s -o /dev/null "http://127.0.0.1:$zero_port/" 2>/dev/null && break
    sleep 0.01
  done
  if ! curl -s -o /dev/null "http://127.0.0.1:$zero_port/"; then
    nginx_missing="nginx did not start: $(tail -1 "$dir/error.log" 2>/dev/null)"
    return 1
  fi
  nginx_slow="http://127.0.0.1:$slow_port/api/paas/v4"
  nginx_zero="http://127.0.0.1:$zero_port/api/paas/v4"
}

tables=()
echo "== 2. every mode side by side against wrk's floor: nginx, then the simulator =="
echo "uptime before: $(uptime)"
if start_nginx; then
  mode_table "nginx (canned response), 100 ms latency, --no-search --delay 0" "$nginx_slow" "$nginx_zero"
else
  tables+=("### nginx" "" "Skipped: $nginx_missing." "")
  echo "nginx skipped: $nginx_missing"
fi
mode_table "bundled simulator (--threads 2), 100 ms latency, --no-search --delay 0" \
  "http://127.0.0.1:$sim_slow/api/paas/v4" "http://127.0.0.1:$sim_zero/api/paas/v4"
load_after=$(uptime)
echo "uptime after: $load_after"

echo "== 2b. the same 3,200-topic run from Python (the package in build/python) against the CLI =="
# The Python user's call: execute_concurrent over a list, every result returned as a TaskResult. Timed
# around the call (the interpreter's own start, 0.1-0.3 s here, is no cost of the package) and, for the
# record, as the whole process.
run_py() {  # run_py LOG TOPICS_FILE MODE ; prints "CALL_SECONDS PROCESS_SECONDS"
  local t0 t1 call
  t0=$(date +%s.%N)
  call=$(PYTHONPATH="$build_dir/python" "$python" - "http://127.0.0.1:$sim_slow/api/paas/v4" "$2" "$3" "$1" "$work/report.json" \
    <<'PY' || true
import sys
import time
from concurrent_bigmodel import ConcurrentBigModelExecutor, ConcurrentConfig
base_url, topics_file, mode, log, report = sys.argv[1:]
config = ConcurrentConfig(concurrency=64, mode=mode, delay=0, no_search=True, base_url=base_url, log_file=log,
                          output=report)
with open(topics_file) as f:
    topics = [line.strip() for line in f if line.strip()]
executor = ConcurrentBigModelExecutor(config)
start = time.monotonic()
executor.execute_concurrent(topics)
print(f"{time.monotonic() - start:.3f}")
PY
  )
  t1=$(date +%s.%N)
  echo "$call $(calc "$t1 - $t0" 3)"
}
# The python the package was built for (CMake's Python_EXECUTABLE), not whichever is first on the PATH.
python=$(sed -n 's/^_\{0,1\}Python_EXECUTABLE:[A-Z]*=//p' "$build_dir/CMakeCache.txt" 2>/dev/null | head -1 || true)
if [ -d "$build_dir/python/concurrent_bigmodel" ] && [ -n "$python" ]; then
  n=3200
  f=$(topics $n)
  for mode in "${modes[@]}"; do
    [[ $mode == *+w* ]] && continue  # the Python table: the modes by name
    cli=(); py=(); py_process=()
    for _ in $(seq 1 "$runs"); do
      cli+=("$(run_cbm "$work/py-cli.$mode.log" --base-url "http://127.0.0.1:$sim_slow/api/paas/v4" \
        --topics-file "$f" --concurrency 64 --no-search --mode "$mode")")
      read -r call whole <<< "$(run_py "$work/py.$mode.log" "$f" "$mode")"
      py+=("$call"); py_process+=("$whole")
    done
    ok=$(grep -o '"successful_tasks":[0-9]*' "$work/report.json" | head -1 | cut -d: -f2)
    cli_wall=$(median "${cli[@]}"); py_wall=$(median "${py[@]}"); py_whole=$(median "${py_process[@]}")
    note "| $mode, $n topics, concurrency 64, 100 ms, from Python | execute_concurrent $py_wall s vs the CLI's wall $cli_wall s ($(calc "($py_wall / $cli_wall - 1) * 100" 1)%); the whole python process $py_whole s ($(calc "($py_whole / $cli_wall - 1) * 100" 1)%); median of $runs runs each, alternated; $ok succeeded (last Python run) | target: within 5% of the CLI |"
  done
fi

echo "== 4. monitoring: memory flat over rounds =="
rounds=200
[ $quick = 1 ] && rounds=40
f=$(topics 500)
run_cbm "$work/monitor.log" --base-url "http://127.0.0.1:$sim_zero/api/paas/v4" --topics-file "$f" --concurrency 16 \
  --no-search --iterations $rounds --keep-rounds 10 >/dev/null
field() { grep -m1 "round $1 finished" "$work/monitor.log" | grep -o " $2=[0-9]*" | cut -d= -f2; }
note "| monitor, $rounds rounds x 500 topics, zero latency | supervisor heap (RssAnon) round 10: $(field 10 anon_kib) KiB, round $rounds: $(field $rounds anon_kib) KiB (delta $(( $(field $rounds anon_kib) - $(field 10 anon_kib) )) KiB; target within 2,048) | total RSS $(field 10 rss_kib) -> $(field $rounds rss_kib) KiB: the rest is the channel rings' shared pages, touched once as the rings wrap (bounded by --concurrency x 32 KiB: two 16 KiB rings per worker) |"

if [ "${BENCH_MILLION:-0}" = 1 ]; then
  echo "== 5. 1,000,000 topics streamed =="
  f=$(topics 1000000)
  args=(--base-url "http://127.0.0.1:$sim_zero/api/paas/v4" --topics-file "$f" --concurrency 64 --no-search
    --journal "$work/million.journal")
  wall=$(run_cbm "$work/million.log" "${args[@]}")
  measure_memory "$work/million-memory.log" "${args[@]}"
  read -r rss pss < "$work/mem"
  note "| multiprocessing, 1,000,000 topics streamed, zero latency | $wall s | supervisor peak RSS ${rss} KiB (target < 65,536) |"
fi

marker='<!-- hand-written below: scripts/bench.sh keeps everything after this line -->'
kept=""
[ -f "$out" ] && kept=$(awk -v m="$marker" 'found || $0 == m { found = 1; print }' "$out")
{
  echo "# Benchmarks"
  echo
  echo "Generated by \`scripts/bench.sh$([ $quick = 1 ] && echo ' --quick')\` on $(date -u +%Y-%m-%d), $(nproc) cores; the servers run on the"
  echo "same machine and share its cores. Load: \`$load_after\` (uptime after the tables)."
  echo
  echo "## Every mode side by side against wrk's floor"
  echo
  echo "wrk's own rate at the same concurrency and latency is the floor (n topics cannot take less than"
  echo "n / rate); each cell is the median wall time of $runs run(s) of the whole process, with its ratio to the floor and"
  echo "the range. CPU per task: user + sys of the tool and of every process it started (the kernel's accounting of"
  echo "reaped children). Time to full rate: the report's finished_at_ms in 100 ms buckets from the launch; full rate"
  echo "is the median bucket (the last, partial one left out), reached at the start of the first bucket with at least"
  echo "90% of it (ideal: 100 ms, the server's latency). Summed PSS: the peak over 0.1 s samples of the sum of"
  echo "/proc/PID/smaps_rollup Pss over the tool and all its descendants, in a separate run."
  echo
  printf '%s\n' "${tables[@]}"
  echo "## Other measures"
  echo
  echo "| run | result | notes |"
  echo "|---|---|---|"
  printf '%s\n' "${results[@]}"
  if [ -n "$kept" ]; then echo; echo "$kept"; fi
} > "$out"
echo "written $out"
