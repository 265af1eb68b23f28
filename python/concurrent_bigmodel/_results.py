"""TaskResult and RunSummary: a run's records, as the JSON report has them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


@dataclass
class TaskResult:
    """The terminal record of one topic in one round (the report's ``results[i]``).

    The Python tool's fields come first; the rest are the report's, under its names, with nested
    records as plain dicts and lists, so ``dataclasses.asdict(result)`` is the report's record and
    ``json.dumps`` / Flask's ``jsonify`` take it as is.
    """

    topic: str
    success: bool
    analysis: str = ""
    error_message: Optional[str] = None  # None on success
    execution_time: float = 0.0  # seconds: first attempt's start to the final record, retries included
    status: str = "failed"  # succeeded | failed | cancelled (by a stop)
    id: int = 0  # the topic's position in the input (0-based)
    round: int = 1  # 1-based iteration
    fields: Dict[str, str] = field(default_factory=dict)  # a row's fields (run over JSONL/CSV rows)
    attempts: int = 0
    worker: int = -1  # the worker slot of the final attempt; -1 when none ran
    started_at: str = ""  # ISO 8601, UTC, milliseconds
    finished_at: str = ""
    started_at_ms: int = 0  # milliseconds since the epoch
    finished_at_ms: int = 0
    usage: Dict[str, int] = field(default_factory=dict)  # prompt_tokens, completion_tokens, total_tokens
    sources: List[Dict[str, str]] = field(default_factory=list)  # title, link, media, publish_date
    # name, model, finish_reason, latency_ms, usage; request_id, response_id, reasoning when not empty
    steps: List[Dict[str, Any]] = field(default_factory=list)
    # class (retryable | task_fatal | run_fatal | wait_until), kind, http_status, code, message
    error: Optional[Dict[str, Any]] = None
    duplicate_of: Optional[int] = None  # a topic repeated in its round: the id whose record this copies


@dataclass
class RunSummary:
    """How a run ended (the report's ``summary``)."""

    total_tasks: int = 0
    successful_tasks: int = 0
    failed_tasks: int = 0
    cancelled_tasks: int = 0
    total_attempts: int = 0
    usage: Dict[str, int] = field(default_factory=dict)
    average_execution_time: float = 0.0  # seconds
    interrupted: bool = False  # stop(), stop_now() or Ctrl+C ended it early
    interrupted_by_signal: int = 0  # 2 after Ctrl+C
    abort_reason: Optional[str] = None  # a run-fatal condition (bad key, no balance, crashing workers)
    report_written: bool = False
    report_error: Optional[str] = None  # why the report asked for was not written
    # Topics a stop left unread (they have no TaskResult; a resume runs them); None: not known (the
    # rest of a stream).
    not_read: Optional[int] = 0
    # The run's usage priced by the price table (an estimate); None when something used has no price.
    estimated_cost: Optional[float] = None
    cost_currency: str = ""
    price_table_date: str = ""
    # The CLI's exit status for the same run: 0 all succeeded, 1 some did not, 3 aborted, 130 Ctrl+C.
    exit_status: int = 0
