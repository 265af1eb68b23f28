"""ConcurrentBigModelExecutor: the Python tool's executor, running on the C++ engine."""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, List, Optional, Tuple, Union

from . import _core
from ._binaries import WORKER
from ._config import ConcurrentConfig
from ._results import RunSummary, TaskResult

ResultCallback = Callable[[TaskResult], Any]


class RunAborted(Exception):
    """A run-fatal condition ended the run early (a bad key, no balance, an unknown model, workers that
    keep crashing): the CLI's exit status 3.

    ``reason`` says why, ``results`` holds the TaskResults the run had (every topic read has one, the
    unfinished ones cancelled; topics never read are counted in ``summary.not_read``; empty for
    ``run``/``run_file``), ``summary`` the RunSummary.
    """

    def __init__(self, reason: str, results: List[TaskResult], summary: RunSummary) -> None:
        super().__init__(reason)
        self.reason = reason
        self.results = results
        self.summary = summary


class ConcurrentBigModelExecutor:
    """Runs LLM analyses of many topics at once: a web search by the tool model, then an analysis by the
    chat model, for every topic of every round.

    ``ConcurrentBigModelExecutor(config, api_key=None, on_result=None)``: ``config`` is a
    ConcurrentConfig (the defaults when None); ``api_key`` falls back to BIGMODEL_API_KEY, then
    ZHIPUAI_API_KEY, then ZAI_API_KEY, as the CLI's does. A config the library refuses raises
    ``ValueError`` naming the field here, before anything is sent.

    Every mode runs in the engine: ``multiprocessing`` starts the worker program shipped in this package
    (no Python process is forked, nothing is pickled), ``threading`` and ``asyncio`` run in threads of this
    process. The GIL is released while a run goes on.

    ``on_result(result)``, when set, is called once per TaskResult the moment it is final, on the thread
    that called ``execute_concurrent``/``run``/``run_file`` (for ``execute_async``, on the thread of the
    event loop's default executor), one at a time. If it raises, the run stops at once and the exception
    is raised by the call.

    Ctrl+C: the first KeyboardInterrupt (SIGINT, while the call runs on the main thread) drains the run as
    the CLI's first Ctrl+C does (nothing new starts; tasks in flight may finish within ``drain_grace``),
    then the call raises KeyboardInterrupt with ``.results`` (a TaskResult for every topic read, the unfinished
    ones cancelled; the topics never read are counted in ``.summary.not_read``) and ``.summary`` attached; a second one stops the tasks in flight at once. The process's
    signal handlers are left as they were: the package installs none.

    One run at a time per executor (a second call meanwhile raises RuntimeError); ``stop()`` and
    ``stop_now()`` may be called from any thread.
    """

    def __init__(
        self,
        config: Optional[ConcurrentConfig] = None,
        api_key: Optional[str] = None,
        on_result: Optional[ResultCallback] = None,
    ) -> None:
        self.config = config if config is not None else ConcurrentConfig()
        self.on_result = on_result
        self.last_summary: Optional[RunSummary] = None  # the last run's, however it ended
        self._core = _core.Executor(self.config, api_key, os.fspath(WORKER), TaskResult)

    def execute_concurrent(self, topics: Iterable[str], iterations: int = 1) -> List[TaskResult]:
        """Analyses each topic ``iterations`` times and returns every TaskResult, in the order they
        finished. Blocks until the run ends.

        Raises ``ValueError`` for no topics or an unusable one (empty, over 4096 bytes...),
        ``RunAborted`` when a run-fatal condition ended the run, ``KeyboardInterrupt`` (with
        ``.results``) after Ctrl+C, ``RuntimeError`` when the run cannot start.
        """
        results, _ = self._run("results", topics, iterations)
        return results

    def run(self, topics: Iterable[str], iterations: int = 1) -> RunSummary:
        """As ``execute_concurrent``, without keeping the results (the callback still gets each): memory
        stays flat however long it runs. ``iterations=0`` runs until ``stop()``: a monitor."""
        return self._run("summary", topics, iterations)[1]

    def run_file(self, path: Union[str, "os.PathLike[str]"], iterations: int = 1) -> RunSummary:
        """As ``run``, over a topics file: one topic a line (``#`` comments and blank lines skipped), or
        JSONL/CSV rows of a topic and fields (``ConcurrentConfig.input_format``, else by the extension).
        A one-round run streams the file: any size, constant memory."""
        return self._run("file", os.fspath(path), iterations)[1]

    async def execute_async(self, topics: Iterable[str], iterations: int = 1) -> List[TaskResult]:
        """``execute_concurrent`` for asyncio programs: awaiting it does not block the event loop (the run
        goes on in the loop's default executor). Cancelling the awaiting task stops the run at once
        (``stop_now``) and waits for it to end before the cancellation propagates."""
        import asyncio  # here: a program that never awaits a run does not pay for importing asyncio

        topics = list(topics)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, self.execute_concurrent, topics, iterations)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # The run in progress only: one that has just ended must not leave a stop for the next.
            self._core.stop_current_now()
            try:
                await future
            except BaseException:  # the run's own ending (RunAborted...) is not what the caller asked for
                pass
            raise

    def stop(self) -> None:
        """Dispatch nothing new; tasks in flight may finish within ``drain_grace``; the others are
        cancelled (each one read gets its TaskResult; those never read are counted in
        ``last_summary.not_read``). Callable from any thread; before a run, it applies
        to the next one."""
        self._core.stop()

    def stop_now(self) -> None:
        """As ``stop``, but tasks in flight are cancelled at once (their workers killed)."""
        self._core.stop_now()

    def reload_topics(self) -> None:
        """Before the next round of a ``run_file`` monitor, reread the file (the CLI's SIGHUP)."""
        self._core.reload_topics()

    def log_status(self) -> None:
        """Write a status line to ``ConcurrentConfig.log_file`` (the CLI's SIGUSR1)."""
        self._core.log_status()

    def _run(self, kind: str, input: Any, iterations: int) -> Tuple[List[TaskResult], RunSummary]:
        raw, summary_fields, interrupts = self._core.run(kind, input, iterations, self.on_result)
        results: List[TaskResult] = raw if raw is not None else []
        summary = RunSummary(**summary_fields)
        self.last_summary = summary
        if interrupts:
            interrupt = KeyboardInterrupt()
            interrupt.results = results  # type: ignore[attr-defined]
            interrupt.summary = summary  # type: ignore[attr-defined]
            raise interrupt
        if summary.abort_reason is not None:
            raise RunAborted(summary.abort_reason, results, summary)
        return results, summary

