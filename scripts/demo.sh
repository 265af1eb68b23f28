#!/usr/bin/env bash
# The main job end to end on this machine: builds if needed, starts the bundled BigModel simulator on a
# free port, analyses the default topics with the multiprocessing supervisor, shows the report, and
# stops the simulator.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build

work=$(mktemp -d)
sim_pid=
cleanup() { [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

build/tests/simulator/bigmodel_simulator --port 0 --port-file "$work/port" --latency-ms 200 >/dev/null &
sim_pid=$!
for _ in $(seq 1 500); do [ -s "$work/port" ] && break; sleep 0.01; done
[ -s "$work/port" ] || { echo "demo: the simulator did not start" >&2; exit 1; }
port=$(cat "$work/port")

mkdir -p demo-output
report=demo-output/report.json
echo "demo: analysing the default topics against the simulator on 127.0.0.1:$port"
status=0
BIGMODEL_API_KEY=demo-key build/bin/concurrent_bigmodel \
  --base-url "http://127.0.0.1:$port/api/paas/v4" \
  --output "$report" --log-file demo-output/concurrent_bigmodel.log --delay 0 --fresh || status=$?

python3 - "$report" <<'PY' 2>/dev/null || head -c 2000 "$report"
import json, sys
d = json.load(open(sys.argv[1]))
s = d["summary"]
print(f"summary: {s['successful_tasks']}/{s['total_tasks']} succeeded, average {s['average_execution_time']:.3f} s, "
      f"{s['usage']['total_tokens']} tokens")
for r in d["results"]:
    print(f"- {r['topic']}: {r['status']}, {len(r['sources'])} sources, {r['analysis'][:70]!r}...")
PY
echo "demo: report at $report, log at demo-output/concurrent_bigmodel.log (exit status $status)"
exit "$status"
