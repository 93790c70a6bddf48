"""The request form: what to fetch, checked field by field before and after the daemon sees it.

The local checks catch the obvious (an empty field, a URL that is not http(s),
metadata that is not key=value); the daemon's validation is the authority and
its field paths put each of its problems under the field it names.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from gexdaemon.core.errors import Problem
from gexdaemon.core.vocab import GEXDataType
from gexdaemon.readout import short_id, words
from gextui.actions import BindingList
from gextui.link import DaemonCalls, ask

FIELDS = ("source_url", "market_symbol", "data_type", "metadata")


def parse_metadata(text: str) -> dict[str, Any]:
    """`key=value, key=value` or a JSON object; numbers and true/false are read as such."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"is not valid JSON: {exc.msg} at column {exc.colno}") from None
        if not isinstance(value, dict):
            raise ValueError("must be a JSON object")
        return value
    out: dict[str, Any] = {}
    for part in text.split(","):
        key, sep, raw = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"write key=value pairs separated by commas (got {part.strip()!r})")
        try:
            out[key.strip()] = json.loads(raw.strip())
        except json.JSONDecodeError:
            out[key.strip()] = raw.strip()
    return out


def local_problems(url: str, symbol: str, metadata: str) -> list[Problem]:
    problems: list[Problem] = []
    parts = urlsplit(url.strip())
    if not url.strip():
        problems.append(Problem("source_url", "is required"))
    elif parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(Problem("source_url", "must be an http:// or https:// URL with a host"))
    if not symbol.strip():
        problems.append(Problem("market_symbol", "is required (SPX, NDX, SPY, ...)"))
    try:
        parse_metadata(metadata)
    except ValueError as exc:
        problems.append(Problem("metadata", str(exc)))
    return problems


class SubmitScreen(ModalScreen[None]):
    BINDINGS: ClassVar[BindingList] = [
        Binding("ctrl+s", "submit", "Submit"),
        Binding("escape", "close", "Close"),
    ]

    def __init__(self, calls: DaemonCalls) -> None:
        super().__init__(classes="desk-modal")
        self.calls = calls

    def compose(self) -> ComposeResult:
        with Vertical(id="submit-box", classes="modal-box"):
            yield Static(
                "Submit an ingest request: the rules score it and set its level",
                classes="modal-title",
            )
            yield Label("Source URL (the chain to fetch)")
            yield Input(
                id="source_url",
                placeholder="https://cdn.cboe.com/api/global/delayed_quotes/options/_SPX.json",
            )
            yield Static(id="source_url-error", classes="field-error")
            yield Label("Symbol")
            yield Input(id="market_symbol", placeholder="SPX")
            yield Static(id="market_symbol-error", classes="field-error")
            yield Label("Data type")
            yield Select(
                [(t.value.replace("_", "-"), t.value) for t in GEXDataType],
                value=GEXDataType.SNAPSHOT.value,
                allow_blank=False,
                id="data_type",
            )
            yield Static(id="data_type-error", classes="field-error")
            yield Label("Metadata (optional: open_interest=25000, volume=9000 or a JSON object)")
            yield Input(id="metadata", placeholder="desk=vol")
            yield Static(id="metadata-error", classes="field-error")
            yield Static(id="submit-error", classes="field-error")
            with Horizontal(classes="modal-buttons"):
                yield Button("Submit (ctrl+s)", id="submit-go", variant="primary")
                yield Button("Close (esc)", id="submit-close")

    def on_mount(self) -> None:
        self.query_one("#source_url", Input).focus()

    def show_problems(self, problems: Sequence[Problem], message: str = "") -> None:
        for name in FIELDS:
            self.query_one(f"#{name}-error", Static).update("")
        general = []
        for problem in problems:
            field = problem.path.split(".")[0]
            if field in FIELDS:
                self.query_one(f"#{field}-error", Static).update(
                    Text(problem.message, style="#ff5f5f")
                )
            else:
                general.append(str(problem))
        text = "; ".join(general) or ("" if problems else message)
        self.query_one("#submit-error", Static).update(Text(text, style="#ff5f5f"))

    @on(Input.Submitted)
    @on(Button.Pressed, "#submit-go")
    def action_submit(self) -> None:
        url = self.query_one("#source_url", Input).value
        symbol = self.query_one("#market_symbol", Input).value
        metadata = self.query_one("#metadata", Input).value
        problems = local_problems(url, symbol, metadata)
        self.show_problems(problems)
        if problems:
            return
        payload = {
            "source_url": url.strip(),
            "market_symbol": symbol.strip().upper(),
            "data_type": str(self.query_one("#data_type", Select).value),
            "metadata": parse_metadata(metadata),
        }
        self.run_worker(self._submit(payload), exclusive=True, group="submit", exit_on_error=False)

    async def _submit(self, payload: dict[str, Any]) -> None:
        answer = await ask(self.calls.submit(payload, origin="tui"))
        accepted = answer.value
        if accepted is not None:
            self.notify(
                f"Queued {words(accepted.priority_level)} (score {accepted.priority_score:.3f}) "
                f"as job {short_id(accepted.job_id)}.",
                title="Request accepted",
            )
            if accepted.at_risk:
                self.notify(
                    f"It may miss its deadline: {accepted.at_risk_reason or 'the queue ahead is long'}.",
                    title="At risk on arrival",
                    severity="warning",
                )
            self.dismiss(None)
        else:
            self.show_problems(answer.problems, answer.error or "the daemon refused the request")

    @on(Button.Pressed, "#submit-close")
    def action_close(self) -> None:
        self.dismiss(None)
