"""What the CLI prints: JSON for scripts, compact tables and progress for people."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TextIO

import msgspec

from gexdaemon.core.errors import GexError
from gexdaemon.core.timeutil import NEW_YORK

ISO_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


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

    def result(self, value: Any, human: Callable[[Any], str] | str | None = None) -> None:
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

    def progress(self, message: str) -> None:
        """A progress line for a person at a terminal; nothing with --json or when piped."""
        if self.interactive:
            self.err.write(f"\r\x1b[2K{message}")
            self.err.flush()

    def progress_done(self, message: str = "") -> None:
        if self.interactive:
            self.err.write(f"\r\x1b[2K{message}\n" if message else "\r\x1b[2K")
            self.err.flush()


def table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[tuple[str, str]],
    *,
    width: int | None = None,
) -> str:
    """A plain text table; long cells are cut so the table fits the terminal.

    Id columns (`*_id`) are never cut: a trader copies them into the next command.
    """
    if not rows:
        return "(none)"
    width = width or shutil.get_terminal_size((120, 40)).columns
    heads = [h for _, h in columns]
    cells = [[_cell(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    shrinkable = [i for i, (key, _) in enumerate(columns) if not key.endswith("_id")]
    total = sum(widths) + 2 * (len(widths) - 1)
    while total > width and shrinkable:
        i = max(shrinkable, key=lambda k: widths[k])
        if widths[i] <= 8:
            break
        widths[i] -= 1
        total -= 1
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)).rstrip()]
    for c in cells:
        lines.append("  ".join(_fit(v, w) for v, w in zip(c, widths, strict=True)).rstrip())
    return "\n".join(lines)


def key_values(pairs: Iterable[tuple[str, Any]]) -> str:
    items = [(k, _cell(v)) for k, v in pairs]
    if not items:
        return ""
    pad = max(len(k) for k, _ in items)
    return "\n".join(f"{k.ljust(pad)}  {v}" for k, v in items)


def _fit(text: str, width: int) -> str:
    return text.ljust(width) if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str) and ISO_INSTANT.match(value):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, datetime):
        # Instants are shown in New York time, the market's clock.
        local = value.astimezone(NEW_YORK) if value.tzinfo else value
        return local.strftime("%m-%d %H:%M:%S")
    if isinstance(value, timedelta):
        return f"{value.total_seconds():.2f}s"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    return str(value)
