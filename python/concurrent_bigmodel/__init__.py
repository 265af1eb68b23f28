"""concurrent_bigmodel: LLM analyses of many topics at once against Zhipu's BigModel API.

The Python tool's API on the C++ engine of the ``concurrent_bigmodel`` command::

    from concurrent_bigmodel import ConcurrentBigModelExecutor, ConcurrentConfig
    config = ConcurrentConfig(concurrency=6, mode="threading", timeout=120)
    executor = ConcurrentBigModelExecutor(config=config, api_key="your_api_key")
    results = executor.execute_concurrent(["AI", "New energy", "Medical technology"], iterations=1)
    for result in results:
        if result.success:
            print(result.topic, result.analysis[:200])
        else:
            print(result.topic, result.error_message)

``python -m concurrent_bigmodel --help`` runs the command-line tool shipped in this package.
"""

from ._config import ConcurrentConfig
from ._executor import ConcurrentBigModelExecutor, RunAborted
from ._results import RunSummary, TaskResult

__all__ = [
    "ConcurrentBigModelExecutor",
    "ConcurrentConfig",
    "RunAborted",
    "RunSummary",
    "TaskResult",
]
