"""Ctrl+C, as the Python tool's users press it: a real SIGINT sent to a Python process mid-run."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import MODES, TEST_KEY, shm_segments_of

# The program under test: a run whose results it announces on stdout as they arrive; after the call it
# reports what the KeyboardInterrupt carried and what the run left behind (processes, segments).
SCRIPT = textwrap.dedent("""
    import json, os, sys
    from dataclasses import asdict
    from concurrent_bigmodel import ConcurrentBigModelExecutor, ConcurrentConfig
    sys.path.insert(0, sys.argv[4])
    from conftest import descendants_of, shm_segments_of

    base_url, mode, key = sys.argv[1:4]
    topics = ["quick topic 0", "quick topic 1"] + [f"slow topic {i} [[fault:hang]]" for i in range(2, 30)]
    config = ConcurrentConfig(concurrency=4, mode=mode, delay=0, base_url=base_url, timeout=120,
                              drain_grace=120)
    executor = ConcurrentBigModelExecutor(config, api_key=key,
                                          on_result=lambda r: print("result", r.id, flush=True))
    print("started", flush=True)
    try:
        executor.execute_concurrent(topics)
        outcome = {"raised": None}
    except KeyboardInterrupt as e:
        outcome = {"raised": "KeyboardInterrupt", "statuses": sorted(r.status for r in e.results),
                   "summary": asdict(e.summary)}
    outcome["descendants"] = descendants_of(os.getpid())
    outcome["segments"] = shm_segments_of(os.getpid())
    print("outcome", json.dumps(outcome), flush=True)
""")


def start_program(simulator, mode, script=SCRIPT):
    return subprocess.Popen(
        [sys.executable, "-c", script, simulator.base_url, mode, TEST_KEY, str(Path(__file__).parent)],
        stdout=subprocess.PIPE, text=True)


def read_until(process, prefix):
    for line in process.stdout:
        if line.startswith(prefix):
            return line
    raise AssertionError(f"the program ended (status {process.wait()}) before printing '{prefix}'")


def outcome_after(process, actions):
    """Runs ``actions`` (reading the program's lines, sending it signals), then returns the outcome it
    prints; the program must exit 0. It is killed if anything fails first."""
    try:
        actions()
        outcome = json.loads(read_until(process, "outcome").split(" ", 1)[1])
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return outcome


@pytest.mark.parametrize("mode", MODES)
def test_ctrl_c_drains_then_stops_at_once_and_raises_keyboard_interrupt_with_the_results(start_simulator, mode):
    # Two quick topics finish; the others hang at the simulator until stopped. The first Ctrl+C drains
    # (the hanging ones in flight may finish, for up to drain_grace = 120 s); the second stops them now.
    simulator = start_simulator()
    process = start_program(simulator, mode)

    def ctrl_c_twice():
        # Ctrl+C once the two quick topics are done; again once the drain has cancelled a queued topic.
        assert {read_until(process, "result").split()[1] for _ in range(2)} == {"0", "1"}
        os.kill(process.pid, signal.SIGINT)
        read_until(process, "result")
        os.kill(process.pid, signal.SIGINT)

    outcome = outcome_after(process, ctrl_c_twice)

    assert outcome["raised"] == "KeyboardInterrupt"
    statuses = outcome["statuses"]
    summary = outcome["summary"]
    # The two quick topics succeeded; every other topic read was cancelled, the rest never read.
    assert statuses.count("succeeded") == 2 and set(statuses) == {"succeeded", "cancelled"}
    assert len(statuses) + summary["not_read"] == 30
    assert summary["interrupted"] and summary["interrupted_by_signal"] == signal.SIGINT
    assert summary["exit_status"] == 128 + signal.SIGINT
    assert outcome["descendants"] == [] and outcome["segments"] == []
    assert shm_segments_of(process.pid) == []


@pytest.mark.parametrize("mode", MODES)
def test_one_ctrl_c_lets_the_tasks_in_flight_finish(start_simulator, mode):
    simulator = start_simulator("--latency-ms", "200")
    process = start_program(simulator, mode, SCRIPT.replace(" [[fault:hang]]", ""))

    def ctrl_c_once():
        read_until(process, "result")
        os.kill(process.pid, signal.SIGINT)

    outcome = outcome_after(process, ctrl_c_once)

    assert outcome["raised"] == "KeyboardInterrupt"
    statuses = outcome["statuses"]
    assert len(statuses) + outcome["summary"]["not_read"] == 30
    assert set(statuses) == {"succeeded", "cancelled"}
    # Nothing in flight was cut short: every task that started finished.
    assert outcome["summary"]["failed_tasks"] == 0
    assert outcome["descendants"] == [] and outcome["segments"] == []
