"""`python -m benchmarks.mock_upstream [--port 9101 ...]`: see cli.py for the flags."""

from __future__ import annotations

import sys

from benchmarks.mock_upstream.cli import cli_main

if __name__ == "__main__":
    sys.exit(cli_main())
