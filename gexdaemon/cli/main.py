"""Argument parsing and dispatch for `gexdaemon`; each verb lives in its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from gexdaemon import __version__
from gexdaemon.cli import local_verbs, remote_verbs
from gexdaemon.cli.invocation import Handler, Invocation, UsageError, Verbs
from gexdaemon.cli.output import (
    EXIT_FAILED,
    EXIT_UNAVAILABLE,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    Output,
)
from gexdaemon.client import DaemonUnreachable
from gexdaemon.core.errors import ConfigError, GexError, Unavailable, VolatileStore


def _common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--config",
        action="append",
        default=default,
        metavar="PATH",
        help="config file (repeatable; later files override earlier ones)",
    )
    parser.add_argument(
        "--socket", default=default, metavar="PATH", help="the daemon's Unix socket"
    )
    parser.add_argument(
        "--data-dir",
        default=default,
        metavar="DIR",
        help="data directory (DuckDB, Parquet lake, archive, drop folder)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="machine-readable output on stdout, errors as JSON on stderr",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gexdaemon",
        description="Ingest option chains into GEX snapshots under SLA deadlines.",
        epilog="Exit codes: 0 ok, 1 failed, 2 bad usage, 3 daemon unreachable, "
        "4 the cluster's Redis unreachable or volatile (run).",
    )
    parser.add_argument("--version", action="version", version=f"gexdaemon {__version__}")
    _common(parser, suppress=False)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    common = argparse.ArgumentParser(add_help=False)
    _common(common, suppress=True)
    local_verbs.register(Verbs(verbs, common))
    remote_verbs.register(Verbs(verbs, common))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version exit 0, usage errors exit 2
        return int(exc.code or 0)
    output = Output(json=bool(getattr(args, "json", False)))
    invocation = Invocation(args=args, output=output)
    handler: Handler = args.handler
    try:
        return handler(invocation)
    except UsageError as exc:
        output.error(exc)
        return EXIT_USAGE
    except ConfigError as exc:
        output.error(exc)
        return EXIT_USAGE
    except DaemonUnreachable as exc:
        output.error(exc)
        return EXIT_UNREACHABLE
    except (Unavailable, VolatileStore) as exc:
        output.error(exc)
        return EXIT_UNAVAILABLE
    except GexError as exc:
        output.error(exc)
        return EXIT_FAILED
    except KeyboardInterrupt:
        output.error("interrupted", code="interrupted")
        return 130
    except BrokenPipeError:  # `gexdaemon jobs | head`
        sys.stderr.close()
        return 0
