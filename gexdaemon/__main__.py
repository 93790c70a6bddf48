"""`python -m gexdaemon` is the `gexdaemon` command."""

from gexdaemon.cli import main

if __name__ == "__main__":  # not when a compute process re-imports the main module
    raise SystemExit(main())
