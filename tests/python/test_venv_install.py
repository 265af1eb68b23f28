"""The package installed the way README "From Python" says: pip into a fresh venv, offline."""

import json
import os
import subprocess
import venv

from conftest import SOURCE_DIR, TEST_KEY

# A run in every mode with the installed package, from a directory outside the repository: the
# extension, the worker program (multiprocessing) and the CLI (python -m) all come from the venv.
CHECK = """
import json, sys
import concurrent_bigmodel
from concurrent_bigmodel import ConcurrentBigModelExecutor, ConcurrentConfig
counts = {}
for mode in ("multiprocessing", "threading", "asyncio"):
    config = ConcurrentConfig(mode=mode, delay=0, base_url=sys.argv[1])
    results = ConcurrentBigModelExecutor(config, api_key=sys.argv[2]).execute_concurrent(["AI", "Fusion"])
    counts[mode] = sum(r.success for r in results)
print(json.dumps({"file": concurrent_bigmodel.__file__, "succeeded": counts}))
"""


def test_pip_installs_the_package_into_a_fresh_venv(simulator, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    python = str(env_dir / "bin" / "python")
    # The package installed here, not the one on the test's PYTHONPATH; CBM_PYTHON_PREBUILT (set by
    # ctest) gives pip this build's extension and programs instead of a second compile.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([python, "-m", "pip", "install", "--no-build-isolation", "--no-index", "--quiet",
                    str(SOURCE_DIR / "python")], env=env, check=True, cwd=tmp_path)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = subprocess.run([python, "-c", CHECK, simulator.base_url, TEST_KEY], env=env, cwd=elsewhere,
                         check=True, capture_output=True, text=True).stdout
    outcome = json.loads(out)
    assert outcome["file"].startswith(str(env_dir))
    assert outcome["succeeded"] == {"multiprocessing": 2, "threading": 2, "asyncio": 2}

    cli = subprocess.run([python, "-m", "concurrent_bigmodel", "--version"], env=env, cwd=elsewhere,
                         capture_output=True, text=True)
    assert cli.returncode == 0 and cli.stdout.strip()
    bad = subprocess.run([python, "-m", "concurrent_bigmodel", "--concurrency", "0"], env=env, cwd=elsewhere,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--concurrency" in bad.stderr
