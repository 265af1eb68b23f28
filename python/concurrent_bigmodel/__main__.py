"""``python -m concurrent_bigmodel ARGS...``: the command-line tool shipped in the package.

The process becomes the CLI (exec), so its exit status, its signal handling and its output are the
CLI's own: ``concurrent_bigmodel --help`` documents them.
"""

import os
import sys

from ._binaries import CLI


def main() -> None:
    argv = [str(CLI), *sys.argv[1:]]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(argv[0], argv)
    except OSError as e:
        sys.exit(f"concurrent_bigmodel: cannot run {CLI}: {e.strerror}")


if __name__ == "__main__":
    main()
