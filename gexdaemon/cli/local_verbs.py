"""Verbs that work on the data directory itself, without a running daemon."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from gexdaemon.cli.invocation import Invocation, UsageError
from gexdaemon.cli.output import EXIT_OK, key_values
from gexdaemon.storage.lock import DataDirLock
from gexdaemon.storage.schema import LATEST, current_version, migrate
from gexdaemon.storage.store import Store, StoreOptions, connect, move_wal_aside, wal_path


def register(verbs: Any, common: argparse.ArgumentParser) -> None:
    p = verbs.add_parser(
        "config", parents=[common], help="show or check the effective configuration"
    )
    p.add_argument("action", choices=["show", "check", "paths"], nargs="?", default="check")
    p.set_defaults(handler=config_verb)

    p = verbs.add_parser(
        "migrate", parents=[common], help="apply schema migrations (also done at start)"
    )
    p.set_defaults(handler=migrate_verb)

    p = verbs.add_parser(
        "archive",
        parents=[common],
        help="move finished jobs older than the retention to the Parquet archive",
    )
    p.add_argument(
        "--older-than-days",
        type=float,
        metavar="DAYS",
        help="override [storage] retention_days for this run",
    )
    p.set_defaults(handler=archive_verb)

    p = verbs.add_parser(
        "recover",
        parents=[common],
        help="recover a data directory whose write-ahead log will not replay",
    )
    p.add_argument(
        "--move-wal",
        action="store_true",
        required=True,
        help="move the unreplayable WAL aside (kept, never deleted) and open the database "
        "at its last checkpoint",
    )
    p.set_defaults(handler=recover_verb)


def config_verb(inv: Invocation) -> int:
    cfg = inv.config
    paths = {
        "config_files": [str(f) for f in cfg.files] or ["(embedded defaults)"],
        "data_dir": str(cfg.data_dir),
        "socket": str(cfg.socket_path),
        "drop_dir": str(cfg.drop_dir),
        "duckdb": str(cfg.duckdb_path),
        "lake": str(cfg.lake_dir),
        "archive": str(cfg.archive_dir),
    }
    action = inv.args.action
    if action == "show":
        inv.output.result(
            {"paths": paths, "settings": cfg.settings.model_dump(mode="json")},
            lambda v: _settings_text(v["settings"]) + "\n\n" + key_values(paths.items()),
        )
    elif action == "paths":
        inv.output.result(paths, lambda v: key_values(v.items()))
    else:
        inv.output.result(
            {"ok": True, "paths": paths}, "configuration is valid\n" + key_values(paths.items())
        )
    return EXIT_OK


def _settings_text(settings: dict[str, Any], prefix: str = "") -> str:
    lines = []
    for key, value in settings.items():
        if isinstance(value, dict):
            lines.append(_settings_text(value, f"{prefix}{key}."))
        else:
            lines.append(f"{prefix}{key} = {value!r}")
    return "\n".join(lines)


def _locked_store(inv: Invocation, purpose: str) -> tuple[DataDirLock, StoreOptions]:
    cfg = inv.config
    lock = DataDirLock(cfg.data_dir, purpose=purpose).acquire()
    return lock, StoreOptions.from_config(cfg)


def migrate_verb(inv: Invocation) -> int:
    lock, options = _locked_store(inv, "gexdaemon migrate")
    try:
        options.path.parent.mkdir(parents=True, exist_ok=True)
        con = connect(options)
        try:
            before = current_version(con)
            applied = migrate(
                con,
                progress=lambda m: inv.output.progress(
                    f"applying migration {m.version}: {m.description}"
                ),
            )
            inv.output.progress_done()
        finally:
            con.close()
    finally:
        lock.release()
    result = {
        "database": str(options.path),
        "from_version": before,
        "to_version": LATEST,
        "applied": [{"version": m.version, "description": m.description} for m in applied],
    }
    inv.output.result(
        result,
        lambda r: (
            f"{r['database']}: schema {r['from_version']} -> {r['to_version']}"
            + "".join(f"\n  applied {m['version']}: {m['description']}" for m in r["applied"])
            if r["applied"]
            else f"{r['database']}: already at schema version {LATEST}"
        ),
    )
    return EXIT_OK


def archive_verb(inv: Invocation) -> int:
    lock, options = _locked_store(inv, "gexdaemon archive")
    try:
        inv.output.progress("opening the store ...")
        store = Store.open(options)
        try:
            inv.output.progress("archiving finished jobs ...")
            report = store.archive(
                now=datetime.now(UTC), retention_days=inv.args.older_than_days
            ).result()
        finally:
            store.close()
        inv.output.progress_done()
    finally:
        lock.release()
    inv.output.result(
        report.as_dict(),
        lambda r: (
            f"archived {r['jobs']} jobs, {r['events']} history events and {r['requests']} requests "
            f"finished before {r['cutoff']}" + "".join(f"\n  {f}" for f in r["files"])
        ),
    )
    return EXIT_OK


def recover_verb(inv: Invocation) -> int:
    if not inv.args.move_wal:
        raise UsageError("say what to recover: --move-wal")
    lock, options = _locked_store(inv, "gexdaemon recover")
    try:
        wal = wal_path(options.path)
        moved = move_wal_aside(options.path)
        store = Store.open(options)
        store.close()
    finally:
        lock.release()
    result = {
        "wal": str(wal),
        "moved_to": str(moved) if moved else None,
        "database": str(options.path),
    }
    inv.output.result(
        result,
        lambda r: (
            f"moved {r['wal']} to {r['moved_to']}; {r['database']} opens at its last checkpoint. "
            "Keep the moved file: it holds the changes after that checkpoint."
            if r["moved_to"]
            else f"no write-ahead log at {r['wal']}; {r['database']} opens cleanly"
        ),
    )
    return EXIT_OK
