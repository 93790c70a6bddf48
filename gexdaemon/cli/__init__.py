"""The `gexdaemon` command line: argument parsing, output, exit codes.

Exit codes: 0 success, 1 a failed operation, 2 bad usage, 3 the daemon cannot be
reached. `--json` prints machine-readable results on stdout and errors as JSON on
stderr; without it, output is tables that fit a terminal.
"""

from gexdaemon.cli.main import main

__all__ = ["main"]
