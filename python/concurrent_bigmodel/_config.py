"""ConcurrentConfig: every setting of a run, under the Python tool's names where it had one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class ConcurrentConfig:
    """How a run goes: the command-line flags of ``concurrent_bigmodel``, one field each.

    The first fields are the Python tool's (same names, meanings and defaults, except the models: its
    ``glm-4.5-aq`` is no model the platform documents). The rest carry the CLI flag's name with ``_``
    for ``-`` (``--search-count`` is ``search_count``); ``concurrent_bigmodel --help`` and the README
    explain each. Durations are seconds (floats), as on the command line.

    Nothing is checked here: the executor hands the whole config to the C++ library, whose checks
    raise ``ValueError`` naming the field (``ConcurrentConfig.concurrency: must be in 1..1024``)
    before anything is sent.

    Unlike the CLI, a run writes no file unless asked (``output``, ``journal``, ``log_file``,
    ``results_jsonl``) and prints nothing unless ``quiet`` is False.
    """

    # The Python tool's settings.
    concurrency: int = 4
    mode: str = "multiprocessing"  # multiprocessing | threading | asyncio
    workers: int = 0  # multiprocessing: worker processes for the concurrency (each runs several); 0 = one per task
    timeout: float = 120.0  # seconds for one attempt of one task
    delay: float = 0.5  # seconds a worker pauses between tasks, and between rounds
    max_retries: int = 2  # retries after the first attempt
    chat_model: str = "glm-4.5-air"
    tool_model: str = "glm-4.5-air"
    batch_size: int = 0  # topics dispatched ahead of the workers; 0 = 4 x concurrency
    output: Optional[str] = None  # the JSON report (README "The report"); None: none
    quiet: bool = True  # False: progress and warnings on stderr

    # Input and API.
    base_url: Optional[str] = None  # None: BIGMODEL_BASE_URL, ZHIPUAI_BASE_URL, ZAI_BASE_URL, else BigModel's
    allow_insecure_http: bool = False
    no_search: bool = False
    api_flavor: str = "bigmodel"  # bigmodel | openai
    accept_language: str = ""
    prompt_file: Optional[str] = None  # prompt templates (README "Prompts")
    stream: bool = False
    input_format: Optional[str] = None  # run_file's: text | jsonl | csv; None: by the file's extension

    # Model and search settings.
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 4096
    thinking: str = "disabled"  # enabled | disabled | auto
    response_format: str = "text"  # text | json
    keep_reasoning: bool = False
    search_via: str = "tool"  # tool | api
    search_engine: str = "search_std"
    search_recency: str = "noLimit"
    search_domain: str = ""
    search_count: int = 5
    search_content_size: str = "medium"
    allow_unlisted_model: bool = False

    # Reliability.
    kill_grace: float = 2.0
    drain_grace: float = 30.0
    rpm: int = 0  # requests a minute at most; 0 = no cap
    tpm: int = 0  # tokens a minute at most; 0 = no cap
    on_quota: str = "wait"  # wait | stop
    accept_incomplete: bool = False
    # Budgets (README "Cheaper runs"): prices from a price file (None: the bundled estimate table);
    # 0 = no limit. "day" starts the budget over at local midnight, pausing until then.
    price_file: Optional[str] = None
    max_tokens_total: int = 0
    max_cost: float = 0.0
    budget_period: str = "run"
    # The Batch API (README "Cheaper runs"): half price, answers within 24 hours.
    via: str = "online"  # online | batch
    batch_retry: str = "batch"  # an expired or cancelled batch's unanswered lines: batch | online | none
    cancel_batch_on_stop: bool = False  # a stop cancels the batches in progress (default: they go on)
    max_restarts: int = 20
    restart_period: float = 10.0

    # Output.
    journal: Optional[str] = None
    resume: bool = False
    force_resume: bool = False
    fresh: bool = False  # discard an unfinished journal (a stopped or killed run's) instead of refusing
    keep_rounds: Optional[int] = None  # None: all rounds, 10 for a monitor (iterations 0)
    log_file: Optional[str] = None
    results_jsonl: Optional[str] = None
    output_mode: int = 0o600  # the report's and results file's mode (0o600 to 0o777, owner rw kept)
    metrics_addr: Optional[str] = None
    progress_interval: float = 10.0
