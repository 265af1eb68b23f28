#!/usr/bin/env bash
# Benchmarks (never run as tests): the simulator's own capacity with wrk, then the supervisor's
# throughput against Little's-law ideals, its CPU per task and its memory. Writes docs/benchmarks.md.
#   scripts/bench.sh            all benchmarks (several minutes)
#   scripts/bench.sh --quick    smaller sizes (a minute)
#   BENCH_MILLION=1 scripts/bench.sh   also the 1,000,000-topic streaming run (~5 minutes)
#   BENCH_MODES="asyncio threading" scripts/bench.sh   only these modes (default: every mode the build has)
#   BENCH_RUNS=5 scripts/bench.sh   timed runs per measurement (default 3, 1 with --quick): the median is
#                                   reported with the range (the simulator shares the cores: runs vary)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
runs=${BENCH_RUNS:-3}
[ $quick = 1 ] && runs=${BENCH_RUNS:-1}
scripts/setup.sh build >/dev/null
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null; }

bin=build/bin/concurrent_bigmodel
sim_bin=build/tests/simulator/bigmodel_simulator
work=$(mktemp -d)
sims=()
cleanup() { for p in "${sims[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export BIGMODEL_API_KEY=bench-key
out=docs/benchmarks.md
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
    --output "$work/probe.json" --log-file /dev/null 2>/dev/null || status=$?
  [ $status -ne 2 ] && modes+=("$m")
done
[ -n "${BENCH_MODES:-}" ] && read -r -a modes <<< "$BENCH_MODES"

echo "== 2. 100 ms latency: wall time vs Little's law, and memory, per mode =="
for mode in "${modes[@]}"; do
  for conc in 64 256; do
    n=$((conc * 50))
    [ $quick = 1 ] && n=$((conc * 10))
    f=$(topics $n)
    ideal=$(calc "$n / $conc * 0.1" 3)
    args=(--base-url "http://127.0.0.1:$sim_slow/api/paas/v4" --topics-file "$f" --concurrency $conc --no-search
      --mode "$mode")
    walls=(); spans=(); steps=()
    for _ in $(seq 1 "$runs"); do
      walls+=("$(run_cbm "$work/slow.$mode.$conc.log" "${args[@]}")")
      spans+=("$(grep -o '"started_at_ms":[0-9]*\|"finished_at_ms":[0-9]*' "$work/report.json" |
        awk -F: '/started/ { if (min == "" || $2 < min) min = $2 } /finished/ { if ($2 > max) max = $2 }
                 END { printf "%.3f", (max - min) / 1000 }')")
      # Each request's own round trip as the client measured it: what the server and the network add
      # to the 100 ms (the ideal counts none of it).
      steps+=("$(grep -o '"latency_ms":[0-9]*' "$work/report.json" |
        awk -F: '{ s += $2; n++ } END { if (n) printf "%.1f", s / n; else printf "0" }')")
    done
    ok=$(grep -o '"successful_tasks":[0-9]*' "$work/report.json" | head -1 | cut -d: -f2)
    measure_memory "$work/slow-memory.$mode.$conc.log" "${args[@]}"
    read -r rss pss < "$work/mem"
    wall=$(median "${walls[@]}"); span=$(median "${spans[@]}")
    over() { calc "($1 / $ideal - 1) * 100" 1; }
    lo_hi=$(range "${walls[@]}")
    note "| $mode, $n topics, concurrency $conc, 100 ms | wall $wall s vs ideal $ideal s ($(over "$wall")% over; median of $runs runs, range $(over "${lo_hi%-*}")% to $(over "${lo_hi#*-}")%); first dispatch to last result $span s ($(over "$span")% over); mean request round trip $(median "${steps[@]}") ms; $ok succeeded (last run) | supervisor peak RSS ${rss} KiB, peak PSS sum ${pss} KiB (a separate, sampled run) |"
  done
done

echo "== 2b. the same 3,200-topic run from Python (the package in build/python) against the CLI =="
# The Python user's call: execute_concurrent over a list, every result returned as a TaskResult. Timed
# around the call (the interpreter's own start, 0.1-0.3 s here, is no cost of the package) and, for the
# record, as the whole process.
run_py() {  # run_py LOG TOPICS_FILE MODE ; prints "CALL_SECONDS PROCESS_SECONDS"
  local t0 t1 call
  t0=$(date +%s.%N)
  call=$(PYTHONPATH=build/python "$python" - "http://127.0.0.1:$sim_slow/api/paas/v4" "$2" "$3" "$1" "$work/report.json" \
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
python=$(sed -n 's/^Python_EXECUTABLE:[A-Z]*=//p' build/CMakeCache.txt)
if [ -d build/python/concurrent_bigmodel ] && [ -n "$python" ]; then
  n=3200
  f=$(topics $n)
  for mode in "${modes[@]}"; do
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

echo "== 3. zero latency: tasks/s against wrk's rate, and supervisor CPU per 1,000 tasks, per mode =="
n=20000
[ $quick = 1 ] && n=5000
f=$(topics $n)
for mode in "${modes[@]}"; do
  walls=(); rates=(); cpus=()
  for _ in $(seq 1 "$runs"); do
    walls+=("$(run_cbm "$work/zero.$mode.log" --base-url "http://127.0.0.1:$sim_zero/api/paas/v4" --topics-file "$f" \
      --concurrency 64 --no-search --mode "$mode")")
    cpus+=("$(grep -o 'cpu_s=[0-9.]*' "$work/zero.$mode.log" | tail -1 | cut -d= -f2)")
    # The run's own rate, as the report's summary measures it (throughput_tasks_per_second): without
    # the process start and the report written at the end (the 20,000 records copied from the journal).
    rates+=("$(grep -o '"throughput_tasks_per_second":[0-9.]*' "$work/report.json" | head -1 | cut -d: -f2)")
  done
  ok=$(grep -o '"successful_tasks":[0-9]*' "$work/report.json" | head -1 | cut -d: -f2)
  wall=$(median "${walls[@]}"); round_rate=$(median "${rates[@]}"); cpu=$(median "${cpus[@]}")
  lo_hi=$(range "${walls[@]}")
  note "| $mode, $n topics, zero latency, concurrency 64 | wall: $(calc "$n / $wall" 0) tasks/s ($(calc "$n / $wall / $wrk_rps * 100" 1)% of wrk; median of $runs, $(calc "$n / ${lo_hi#*-}" 0)-$(calc "$n / ${lo_hi%-*}" 0) tasks/s); in-run (report's throughput): $(calc "$round_rate" 0) tasks/s ($(calc "$round_rate / $wrk_rps * 100" 1)% of wrk); $ok succeeded | supervisor CPU $(calc "$cpu / $n * 1000 * 1000" 1) ms per 1,000 tasks (threading/asyncio: includes the HTTP work) |"
done

echo "== 4. monitoring: memory flat over rounds =="
rounds=200
[ $quick = 1 ] && rounds=40
f=$(topics 500)
run_cbm "$work/monitor.log" --base-url "http://127.0.0.1:$sim_zero/api/paas/v4" --topics-file "$f" --concurrency 16 \
  --no-search --iterations $rounds --keep-rounds 10 >/dev/null
field() { grep -m1 "round $1 finished" "$work/monitor.log" | grep -o " $2=[0-9]*" | cut -d= -f2; }
note "| monitor, $rounds rounds x 500 topics, zero latency | supervisor heap (RssAnon) round 10: $(field 10 anon_kib) KiB, round $rounds: $(field $rounds anon_kib) KiB (delta $(( $(field $rounds anon_kib) - $(field 10 anon_kib) )) KiB; target within 2,048) | total RSS $(field 10 rss_kib) -> $(field $rounds rss_kib) KiB: the rest is the channel rings' shared pages, touched once as the rings wrap (bounded by --concurrency x 128 KiB) |"

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

{
  echo "# Benchmarks"
  echo
  echo "Generated by \`scripts/bench.sh\` on $(date -u +%Y-%m-%d), $(nproc) cores; the simulator runs on the same"
  echo "machine and shares its cores. Ideal times follow Little's law: tasks / concurrency x latency."
  echo
  echo "| run | result | notes |"
  echo "|---|---|---|"
  printf '%s\n' "${results[@]}"
} > "$out"
echo "written $out"
