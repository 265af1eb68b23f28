"""The Python package against the simulator: the Python tool's API, in every mode."""

import asyncio
import json
import threading
from dataclasses import asdict, dataclass, fields

import pytest

from concurrent_bigmodel import (
    ConcurrentBigModelExecutor,
    ConcurrentConfig,
    RunAborted,
    RunSummary,
    TaskResult,
)
from conftest import MODES, TEST_KEY


def test_the_guides_snippet_runs_as_written(simulator, capsys):
    # The Python tool's guide, word for word but for the base URL.
    from concurrent_bigmodel import ConcurrentBigModelExecutor, ConcurrentConfig
    config = ConcurrentConfig(concurrency=6, mode="threading", timeout=120, base_url=simulator.base_url)
    executor = ConcurrentBigModelExecutor(config=config, api_key="your_api_key")
    results = executor.execute_concurrent(["AI", "New energy", "Medical technology"], iterations=1)
    for result in results:
        if result.success:
            print(result.topic, result.analysis[:200])
        else:
            print(result.topic, result.error_message)

    printed = capsys.readouterr().out
    assert sorted(r.topic for r in results) == ["AI", "Medical technology", "New energy"]
    for result in results:
        assert result.success and result.analysis and result.error_message is None
        assert f"{result.topic} {result.analysis[:200]}\n" in printed


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_gives_every_topic_one_result(simulator, mode):
    topics = [f"topic {i}" for i in range(8)]
    config = ConcurrentConfig(concurrency=3, mode=mode, delay=0, base_url=simulator.base_url)
    results = ConcurrentBigModelExecutor(config, api_key=TEST_KEY).execute_concurrent(topics)

    assert sorted(r.id for r in results) == list(range(8))
    assert {r.topic for r in results} == set(topics)
    for r in results:
        assert r.success and r.status == "succeeded" and r.round == 1
        assert [s["name"] for s in r.steps] == ["search", "analysis"]
        assert r.usage["total_tokens"] > 0 and r.attempts == 1 and r.worker >= 0
    assert simulator.requests_total() == 2 * len(topics)  # a search and an analysis each, no retry


def test_a_result_is_a_dataclass_whose_asdict_is_the_reports_record(simulator, tmp_path):
    report_path = tmp_path / "report.json"
    config = ConcurrentConfig(mode="threading", delay=0, base_url=simulator.base_url, output=str(report_path))
    results = ConcurrentBigModelExecutor(config, api_key=TEST_KEY).execute_concurrent(
        ["RISC-V adoption", "Fusion [[fault:400_1301]]"])

    names = [f.name for f in fields(TaskResult)]
    assert names[:5] == ["topic", "success", "analysis", "error_message", "execution_time"]
    by_id = {r["id"]: r for r in json.loads(report_path.read_text())["results"]}
    for result in results:
        record = asdict(result)
        json.dumps(record)  # what Flask's jsonify needs
        written = by_id[result.id]
        for key, value in record.items():
            if key in written and key != "error_message":
                assert value == written[key], key
    failed = next(r for r in results if not r.success)
    assert failed.status == "failed" and failed.error["code"] == "1301" and failed.error_message


@pytest.mark.parametrize("mode", MODES)
def test_on_result_is_called_once_per_result_on_the_calling_thread(simulator, mode):
    seen = []
    config = ConcurrentConfig(concurrency=4, mode=mode, delay=0, base_url=simulator.base_url)
    executor = ConcurrentBigModelExecutor(
        config, api_key=TEST_KEY, on_result=lambda r: seen.append((r.id, threading.get_ident())))
    results = executor.execute_concurrent([f"topic {i}" for i in range(10)])

    assert [i for i, _ in seen] == [r.id for r in results]
    assert {thread for _, thread in seen} == {threading.get_ident()}


def test_an_exception_in_on_result_stops_the_run_and_is_raised(simulator):
    def fail(result):
        raise LookupError("from the callback")

    config = ConcurrentConfig(concurrency=2, mode="threading", delay=0, base_url=simulator.base_url)
    executor = ConcurrentBigModelExecutor(config, api_key=TEST_KEY, on_result=fail)
    with pytest.raises(LookupError, match="from the callback"):
        executor.execute_concurrent([f"topic {i}" for i in range(20)])
    assert simulator.stats()["requests_total"] < 40


@pytest.mark.parametrize("mode", MODES)
def test_stop_from_another_thread_drains_and_cancels_the_rest(start_simulator, mode):
    simulator = start_simulator("--latency-ms", "100")
    first = threading.Event()
    config = ConcurrentConfig(concurrency=2, mode=mode, delay=0, base_url=simulator.base_url)
    executor = ConcurrentBigModelExecutor(config, api_key=TEST_KEY, on_result=lambda r: first.set())
    stopper = threading.Thread(target=lambda: (first.wait(), executor.stop()))
    stopper.start()
    try:
        results = executor.execute_concurrent([f"topic {i}" for i in range(30)])
    finally:
        first.set()  # the stopper ends even if no result came
        stopper.join()

    # Every topic read has its record; the ones a stop left unread are a count (a resume runs them).
    assert sorted(r.id for r in results) == list(range(len(results)))
    assert len(results) + executor.last_summary.not_read == 30
    assert {r.status for r in results} == {"succeeded", "cancelled"}
    assert executor.last_summary.interrupted and executor.last_summary.exit_status == 1


def test_a_second_run_while_one_is_in_progress_is_refused(simulator):
    # The first run's callback holds it in progress until the second call has been tried.
    first, tried = threading.Event(), threading.Event()
    config = ConcurrentConfig(concurrency=2, mode="threading", delay=0, base_url=simulator.base_url)
    executor = ConcurrentBigModelExecutor(config, api_key=TEST_KEY,
                                          on_result=lambda r: (first.set(), tried.wait()))
    outcome = {}

    def run_in_background():
        try:
            outcome["results"] = executor.execute_concurrent([f"topic {i}" for i in range(6)])
        finally:
            first.set()  # the main thread goes on even if no result came

    running = threading.Thread(target=run_in_background)
    running.start()
    try:
        first.wait()
        with pytest.raises(RuntimeError, match="in progress"):
            executor.execute_concurrent(["meanwhile"])
    finally:
        tried.set()
        running.join()
    assert sorted(r.id for r in outcome["results"]) == list(range(6))
    assert all(r.success for r in outcome["results"])


def test_run_and_run_file_return_the_summary(simulator, tmp_path):
    topics_file = tmp_path / "topics.txt"
    topics_file.write_text("# a comment\nalpha\n\nbeta\ngamma\n")
    seen = []
    config = ConcurrentConfig(mode="asyncio", delay=0, base_url=simulator.base_url)
    executor = ConcurrentBigModelExecutor(config, api_key=TEST_KEY, on_result=lambda r: seen.append(r.topic))

    summary = executor.run_file(topics_file)
    assert isinstance(summary, RunSummary)
    assert (summary.total_tasks, summary.successful_tasks, summary.exit_status) == (3, 3, 0)
    assert sorted(seen) == ["alpha", "beta", "gamma"]
    assert executor.run(["delta"], iterations=2).successful_tasks == 2


def test_via_batch_runs_every_topic_as_a_batch_line_paid_once(start_simulator):
    simulator = start_simulator("--batch-seconds", "0.2")
    config = ConcurrentConfig(mode="threading", delay=0, no_search=True, via="batch", base_url=simulator.base_url)
    topics = [f"batch topic {i}" for i in range(12)]
    results = ConcurrentBigModelExecutor(config, api_key=TEST_KEY).execute_concurrent(topics)
    assert sorted(r.topic for r in results) == sorted(topics)
    assert all(r.success for r in results)
    batch = simulator.stats()["batch"]
    assert batch["paid_lines"] == len(topics)
    assert batch["lines_uploaded"] == len(topics)


@pytest.mark.parametrize("field, value", [
    ("concurrency", 0),
    ("mode", "fork"),
    ("timeout", 0),
    ("timeout", "soon"),
    ("temperature", 2.0),
    ("search_count", 99),
    ("rpm", -1),
    ("thinking", "maybe"),
    ("chat_model", "glm-none"),
    ("metrics_addr", "nowhere"),
    ("quiet", "yes"),
    ("via", "post"),
    ("batch_retry", "later"),
])
def test_a_bad_config_raises_value_error_naming_the_field_before_anything_is_sent(simulator, field, value):
    config = ConcurrentConfig(base_url=simulator.base_url, **{field: value})
    with pytest.raises(ValueError, match=rf"^ConcurrentConfig\.{field}: "):
        ConcurrentBigModelExecutor(config, api_key=TEST_KEY)
    assert simulator.requests_total() == 0


def test_no_key_anywhere_is_a_value_error_and_the_environments_key_is_used(simulator, monkeypatch):
    config = ConcurrentConfig(mode="threading", base_url=simulator.base_url)
    with pytest.raises(ValueError, match="api_key.*BIGMODEL_API_KEY"):
        ConcurrentBigModelExecutor(config)
    monkeypatch.setenv("BIGMODEL_API_KEY", TEST_KEY)
    assert ConcurrentBigModelExecutor(config).execute_concurrent(["from the environment"])[0].success


def test_bad_topics_are_refused(simulator):
    executor = ConcurrentBigModelExecutor(ConcurrentConfig(base_url=simulator.base_url), api_key=TEST_KEY)
    with pytest.raises(ValueError, match="no topics"):
        executor.execute_concurrent([])
    with pytest.raises(ValueError, match="empty"):
        executor.execute_concurrent(["ok", "  "])
    with pytest.raises(TypeError, match="one str"):
        executor.execute_concurrent("AI")
    assert simulator.requests_total() == 0


def test_a_run_fatal_condition_raises_run_aborted_with_the_results(start_simulator):
    simulator = start_simulator("--api-key", "the-right-key")
    config = ConcurrentConfig(concurrency=2, mode="threading", delay=0, base_url=simulator.base_url)
    executor = ConcurrentBigModelExecutor(config, api_key="a-wrong-key")
    with pytest.raises(RunAborted) as aborted:
        executor.execute_concurrent([f"topic {i}" for i in range(20)])

    assert aborted.value.reason and str(aborted.value) == aborted.value.reason
    results = aborted.value.results
    assert sorted(r.id for r in results) == list(range(len(results)))
    assert len(results) + aborted.value.summary.not_read == 20
    assert not any(r.success for r in aborted.value.results)
    assert aborted.value.summary.exit_status == 3
    assert "a-wrong-key" not in aborted.value.reason


def test_execute_async_lets_other_coroutines_run_meanwhile(start_simulator):
    simulator = start_simulator("--latency-ms", "100")
    config = ConcurrentConfig(concurrency=2, mode="asyncio", delay=0, base_url=simulator.base_url)
    executor = ConcurrentBigModelExecutor(config, api_key=TEST_KEY)

    async def main():
        run = asyncio.ensure_future(executor.execute_async([f"topic {i}" for i in range(6)]))
        ticks_during_run = 0
        while not run.done():
            ticks_during_run += 1
            await asyncio.sleep(0.005)
        return await run, ticks_during_run

    results, ticks = asyncio.run(main())
    assert sorted(r.id for r in results) == list(range(6)) and all(r.success for r in results)
    # A call that blocked the loop would let the ticker run once at most, before it started.
    assert ticks >= 2


def test_cancelling_execute_async_stops_the_run(start_simulator):
    simulator = start_simulator("--latency-ms", "100")
    config = ConcurrentConfig(concurrency=2, mode="threading", delay=0, base_url=simulator.base_url)

    async def main():
        loop = asyncio.get_running_loop()
        first = asyncio.Event()
        executor = ConcurrentBigModelExecutor(
            config, api_key=TEST_KEY, on_result=lambda r: loop.call_soon_threadsafe(first.set))
        run = asyncio.ensure_future(executor.execute_async([f"topic {i}" for i in range(40)]))
        await first.wait()
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        return executor

    executor = asyncio.run(main())
    summary = executor.last_summary
    assert summary.interrupted and summary.cancelled_tasks > 0 and summary.total_tasks + summary.not_read == 40
    # The run is over: the executor takes the next one.
    executor.on_result = None
    assert executor.execute_concurrent(["after the cancel"])[0].success


def test_every_config_field_reaches_the_library_and_no_other_is_accepted(simulator):
    # One row per field in the binding's table (python/src/core_module.cpp), in the dataclass's order.
    from concurrent_bigmodel import _core
    assert _core.config_fields() == [f.name for f in fields(ConcurrentConfig)]

    @dataclass
    class WithTypo(ConcurrentConfig):
        concurency: int = 8

    with pytest.raises(ValueError, match=r"^ConcurrentConfig\.concurency: no such setting"):
        ConcurrentBigModelExecutor(WithTypo(base_url=simulator.base_url), api_key=TEST_KEY)


def test_python_m_runs_the_cli_shipped_in_the_package():
    import subprocess
    import sys
    version = subprocess.run([sys.executable, "-m", "concurrent_bigmodel", "--version"], capture_output=True,
                             text=True)
    assert version.returncode == 0 and version.stdout.strip()
    bad = subprocess.run([sys.executable, "-m", "concurrent_bigmodel", "--mode", "fork"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "--mode" in bad.stderr
