#!/bin/sh
# The installable package, as a user meets it: installs the build tree into a temporary prefix,
# configures and builds the example (examples/analyze_topics) against it with find_package in a
# separate CMake project, runs it against the simulator (every topic reported, a stop from another
# thread honoured), and runs the installed CLI, which must find its worker under libexec/ and report
# the package's version.
#
# usage: install_test.sh CMAKE BUILD_DIR EXAMPLE_DIR SIMULATOR GENERATOR [SANITIZERS]
set -eu
cmake=$1 build=$2 example=$3 simulator=$4 generator=$5 sanitize=${6:-}

work=$(mktemp -d)
sim_pid=
cleanup() {
  if [ -n "$sim_pid" ]; then kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$cmake" --install "$build" --prefix "$work/prefix" >"$work/install.log" || { cat "$work/install.log"; fail "cmake --install"; }
for f in bin/concurrent_bigmodel libexec/concurrent_bigmodel/concurrent_bigmodel_worker \
         include/concurrent_bigmodel/executor.hpp lib/cmake/concurrent_bigmodel/concurrent_bigmodelConfig.cmake \
         lib/cmake/concurrent_bigmodel/concurrent_bigmodelConfigVersion.cmake; do
  [ -e "$work/prefix/$f" ] || fail "not installed: $f"
done
[ ! -e "$work/prefix/include/run_config.hpp" ] || fail "an internal header was installed"
# One archive holds the whole library; the package exports one target and no internal one.
archives=$(cd "$work/prefix/lib" && echo *.a)
[ "$archives" = libconcurrent_bigmodel.a ] || fail "installed archives: $archives (expected libconcurrent_bigmodel.a)"
! grep -q 'concurrent_bigmodel::cbm_' "$work/prefix/lib/cmake/concurrent_bigmodel/"*.cmake || fail "an internal target was exported"

# The installed archive carries the build's sanitizers: the example must link with them too.
flags=
[ -z "$sanitize" ] || flags="-fsanitize=$sanitize"
"$cmake" -S "$example" -B "$work/example" -G "$generator" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" \
  >"$work/configure.log" 2>&1 || { cat "$work/configure.log"; fail "configuring the example"; }
"$cmake" --build "$work/example" >"$work/build.log" 2>&1 || { cat "$work/build.log"; fail "building the example"; }

"$simulator" --port 0 --port-file "$work/port" --latency-ms 40 >"$work/simulator.log" 2>&1 &
sim_pid=$!
tries=0
until [ -s "$work/port" ]; do
  tries=$((tries + 1)); [ $tries -le 100 ] || fail "the simulator did not start"; sleep 0.1
done
url="http://127.0.0.1:$(cat "$work/port")/api/paas/v4"
export BIGMODEL_API_KEY=sk-install-test

# Every topic reported once, with the server's verdict; exit status 1 (one failed).
status=0
"$work/example/analyze_topics" "$url" "Topic one" "Topic two" "Topic three [[fault:400_1301]]" >"$work/run1.txt" 2>&1 \
  || status=$?
cat "$work/run1.txt"
[ "$status" -eq 1 ] || fail "example exit status $status, expected 1"
[ "$(grep -c '^result ' "$work/run1.txt")" -eq 3 ] || fail "expected 3 results"
grep -q '^result [0-9]* succeeded .*topic=Topic one$' "$work/run1.txt" || fail "Topic one not reported"
grep -q '^result [0-9]* succeeded .*topic=Topic two$' "$work/run1.txt" || fail "Topic two not reported"
grep -q '^result [0-9]* failed .*topic=Topic three' "$work/run1.txt" || fail "Topic three not reported failed"

# --stop-after: a watcher thread stops the run; the rest is cancelled, every topic still reported.
status=0
"$work/example/analyze_topics" --stop-after 1 "$url" t0 t1 t2 t3 t4 t5 t6 t7 t8 t9 >"$work/run2.txt" 2>&1 || status=$?
cat "$work/run2.txt"
[ "$(grep -c '^result ' "$work/run2.txt")" -eq 10 ] || fail "expected 10 results after a stop"
grep -q '^stopping after' "$work/run2.txt" || fail "the watcher did not stop the run"
grep -q '^result [0-9]* cancelled ' "$work/run2.txt" || fail "nothing was cancelled by the stop"
for t in t0 t1 t2 t3 t4 t5 t6 t7 t8 t9; do grep -Eq " topic=$t( |\$)" "$work/run2.txt" || fail "$t not reported"; done

# The CLI's --version is the package's version: project() in CMakeLists.txt is its only source.
package_version=$(sed -n 's/^set(PACKAGE_VERSION "\(.*\)")$/\1/p' \
  "$work/prefix/lib/cmake/concurrent_bigmodel/concurrent_bigmodelConfigVersion.cmake")
[ -n "$package_version" ] || fail "no PACKAGE_VERSION in the package's version file"
cli_version=$("$work/prefix/bin/concurrent_bigmodel" --version) || fail "the installed CLI's --version failed"
[ "$cli_version" = "concurrent_bigmodel $package_version" ] || fail "--version says '$cli_version', the package $package_version"

# The installed CLI finds the installed worker (multiprocessing mode) wherever the tree was put.
(cd "$work" && "$work/prefix/bin/concurrent_bigmodel" --base-url "$url" --topics "CLI topic" \
  --output "$work/report.json" --log-file "" --quiet --delay 0) || fail "the installed CLI failed"
grep -q '"successful_tasks":1' "$work/report.json" || fail "the installed CLI's report"
echo "install test passed"
