"""Where the package's programs are: inside it, beside this file (no environment variable)."""

from pathlib import Path

BIN_DIR = Path(__file__).resolve().parent / "bin"
WORKER = BIN_DIR / "concurrent_bigmodel_worker"  # the multiprocessing mode's worker program
CLI = BIN_DIR / "concurrent_bigmodel"  # the command-line tool (python -m concurrent_bigmodel)
