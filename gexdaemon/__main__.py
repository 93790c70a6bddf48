"""`python -m gexdaemon` is the `gexdaemon` command."""

from gexdaemon.cli import main

raise SystemExit(main())
