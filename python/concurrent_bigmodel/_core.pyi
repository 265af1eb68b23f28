"""Type stubs of the C++ extension (python/src/core_module.cpp); use ConcurrentBigModelExecutor."""

from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Type, Union

from ._config import ConcurrentConfig
from ._results import TaskResult

class Executor:
    def __init__(
        self,
        config: ConcurrentConfig,
        api_key: Optional[str],
        worker: str,
        result_type: Type[TaskResult],
    ) -> None: ...
    def run(
        self,
        kind: str,
        input: Union[Iterable[str], str],
        iterations: int,
        callback: Optional[Callable[[TaskResult], Any]],
    ) -> Tuple[Optional[List[TaskResult]], Dict[str, Any], int]: ...
    def stop(self) -> None: ...
    def stop_now(self) -> None: ...
    def stop_current_now(self) -> bool: ...
    def reload_topics(self) -> None: ...
    def log_status(self) -> None: ...

def config_fields() -> List[str]: ...
