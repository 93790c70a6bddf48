"""`gextui [--socket PATH] [--read-only]`: attach the dashboard to a running daemon."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gexdaemon import __version__
from gexdaemon.client import AsyncClient
from gexdaemon.config import load_config
from gexdaemon.core.errors import ConfigError
from gextui.actions import VIEWS
from gextui.app import GexTui

# Actions wait at most this long for the daemon; the event stream has its own heartbeat.
CALL_TIMEOUT_S = 15.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gextui",
        description="The desk's live dashboard over a running gexdaemon: queues, jobs, SLA, GEX, sources, rules.",
        epilog="Keys: 1-6 switch views, ? lists every key, ctrl+p finds any action, q quits.",
    )
    parser.add_argument("--version", action="version", version=f"gextui {__version__}")
    parser.add_argument(
        "--socket",
        metavar="PATH",
        help="the daemon's Unix socket (default: as `gexdaemon` resolves it from the config)",
    )
    parser.add_argument(
        "--config",
        action="append",
        metavar="PATH",
        help="config file (repeatable), as for gexdaemon",
    )
    parser.add_argument("--data-dir", metavar="DIR", help="data directory, as for gexdaemon")
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="watch only: hide every action that changes the daemon (submit, cancel, retry, "
        "level changes, source and rule edits)",
    )
    parser.add_argument(
        "--view",
        choices=[view for view, _, _ in VIEWS],
        default="overview",
        help="the view to open on (default overview)",
    )
    parser.add_argument(
        "--refresh-hz",
        type=float,
        default=4.0,
        metavar="HZ",
        help="screen refreshes per second, 2 to 4 (default 4; data is applied as it arrives)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 2.0 <= args.refresh_hz <= 4.0:
        print(
            f"gextui: --refresh-hz must be between 2 and 4 (got {args.refresh_hz:g})",
            file=sys.stderr,
        )
        return 2
    try:
        config = load_config(args.config or None, data_dir=args.data_dir, socket=args.socket)
    except ConfigError as exc:
        print(f"gextui: {exc.message}", file=sys.stderr)
        return 2
    client = AsyncClient(config.socket_path, timeout=CALL_TIMEOUT_S, origin="tui")
    GexTui(client, read_only=args.read_only, flush_hz=args.refresh_hz, initial_view=args.view).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
