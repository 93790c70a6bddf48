"""What the CLI prints: JSON for scripts, aligned tables and progress for people."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TextIO, TypeVar

import msgspec

from gexdaemon.core.errors import GexError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_UNAVAILABLE = 4  # the daemon cannot start: its cluster's Redis is unreachable or unsafe
EXIT_INTERRUPTED = 130

R = TypeVar("R")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return str(value)


_encoder = msgspec.json.Encoder(enc_hook=_default)


def to_json(value: Any) -> str:
    return _encoder.encode(value).decode()


@dataclass
class Output:
    json: bool = False
    out: TextIO = sys.stdout
    err: TextIO = sys.stderr

    @property
    def interactive(self) -> bool:
        return not self.json and self.err.isatty()

    def result(self, value: R, human: Callable[[R], str] | str | None = None) -> None:
        if self.json:
            self.out.write(to_json(value) + "\n")
        elif human is not None:
            text = human(value) if callable(human) else human
            if text:
                self.out.write(text.rstrip("\n") + "\n")
        self.out.flush()

    def error(self, exc: GexError | str, *, code: str = "error") -> None:
        if isinstance(exc, GexError):
            payload = exc.as_dict()
            message = exc.message
            details = [str(d) for d in exc.details]
        else:
            payload = {"code": code, "message": exc, "details": []}
            message, details = exc, []
        if self.json:
            self.err.write(to_json({"error": payload}) + "\n")
        else:
            self.err.write(f"gexdaemon: error: {message}\n")
            shown = [d for d in details if d not in message]
            for line in shown[:20]:
                self.err.write(f"  - {line}\n")
            if len(shown) > 20:
                self.err.write(f"  ... and {len(shown) - 20} more\n")
        self.err.flush()

    def note(self, message: str) -> None:
        """A line for the person at the terminal (stderr), kept out of --json output."""
        if not self.json:
            self.err.write(message.rstrip("\n") + "\n")
            self.err.flush()

    def progress(self, message: str) -> None:
        """A progress line for a person at a terminal; nothing with --json or when piped."""
        if self.interactive:
            self.err.write(f"\r\x1b[2K{message}")
            self.err.flush()

    def progress_done(self, message: str = "") -> None:
        if self.interactive:
            self.err.write(f"\r\x1b[2K{message}\n" if message else "\r\x1b[2K")
            self.err.flush()


@dataclass(frozen=True)
class Col(Generic[R]):
    """A table column: its header, how a row reads in it, and how it may be laid out."""

    header: str
    text: Callable[[R], str]
    right: bool = False  # numbers align right
    keep: bool = False  # never cut (ids a trader copies into the next command)


def table(rows: Sequence[R], columns: Sequence[Col[R]], *, width: int | None = None) -> str:
    """A plain text table; long cells are cut (with …) so the table fits the terminal."""
    if not rows:
        return "(none)"
    width = width or shutil.get_terminal_size((120, 40)).columns
    heads = [c.header for c in columns]
    cells = [[c.text(r) for c in columns] for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(heads)]
    shrinkable = [i for i, c in enumerate(columns) if not c.keep]
    total = sum(widths) + 2 * (len(widths) - 1)
    while total > width and shrinkable:
        i = max(shrinkable, key=lambda k: widths[k])
        if widths[i] <= 8:
            break
        widths[i] -= 1
        total -= 1

    def line(values: Sequence[str]) -> str:
        parts = [_fit(v, w, right=c.right) for v, w, c in zip(values, widths, columns, strict=True)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(heads), *(line(row) for row in cells)])


def key_values(pairs: Iterable[tuple[str, str]]) -> str:
    items = list(pairs)
    if not items:
        return ""
    pad = max(len(k) for k, _ in items)
    return "\n".join(f"{k.ljust(pad)}  {v}" for k, v in items)


def _fit(text: str, width: int, *, right: bool = False) -> str:
    if len(text) > width:
        return text[: max(width - 1, 0)] + "…"
    return text.rjust(width) if right else text.ljust(width)
