"""Fixtures of the Python package's tests: the BigModel simulator (tests/simulator) as a real server
process on 127.0.0.1, started as tests/support/simulator.cpp starts it.

ctest (tests/CMakeLists.txt) passes the simulator's path as CBM_SIMULATOR and puts the package
assembled in the build tree on PYTHONPATH.
"""

import json
import os
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable, Iterator, List

import pytest

TEST_KEY = "sk-test-CANARY-5f3a9c1e"
MODES = ["multiprocessing", "threading", "asyncio"]
SOURCE_DIR = Path(__file__).resolve().parents[2]


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Polls `condition` (bounded) for what no event tells, as cbm::test::eventually does."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


class Simulator:
    def __init__(self, *args: str) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="cbm-sim-")
        port_file = Path(self._dir.name) / "port"
        self._stderr = open(Path(self._dir.name) / "stderr", "wb")
        self.process = subprocess.Popen(
            [os.environ["CBM_SIMULATOR"], "--port", "0", "--port-file", str(port_file), *args],
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

        def ready() -> bool:
            try:
                self.port = int(port_file.read_text())
                return True
            except (OSError, ValueError):
                return self.process.poll() is not None

        if not eventually(ready) or self.process.poll() is not None:
            raise RuntimeError("the simulator did not start: " + (Path(self._dir.name) / "stderr").read_text())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/paas/v4"

    def stats(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=10) as reply:
            return json.loads(reply.read())

    def requests_total(self) -> int:
        return int(self.stats()["requests_total"])

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._stderr.close()
        self._dir.cleanup()


@pytest.fixture
def start_simulator() -> Iterator[Callable[..., Simulator]]:
    """Starts simulators with the given arguments; every one is stopped after the test."""
    started: List[Simulator] = []

    def start(*args: str) -> Simulator:
        sim = Simulator(*args)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.close()


@pytest.fixture
def simulator(start_simulator: Callable[..., Simulator]) -> Simulator:
    return start_simulator()


@pytest.fixture(autouse=True)
def no_inherited_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key or base URL from the environment unless a test sets one."""
    for name in ("BIGMODEL_API_KEY", "ZHIPUAI_API_KEY", "ZAI_API_KEY", "BIGMODEL_BASE_URL", "ZHIPUAI_BASE_URL",
                 "ZAI_BASE_URL", "LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2"):
        monkeypatch.delenv(name, raising=False)


def shm_segments_of(pid: int) -> List[str]:
    """The run's shared-memory segments in /dev/shm (named cbm.UID.PID.*, common/ipc/shm_channel.cpp)."""
    prefix = f"cbm.{os.getuid()}.{pid}."
    return sorted(name for name in os.listdir("/dev/shm") if name.startswith(prefix))


def descendants_of(root: int) -> List[int]:
    """Every live process below `root` (workers are children of a fork server, itself a child)."""
    parents = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if fields[0] != "Z":
            parents[int(name)] = int(fields[1])
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found
