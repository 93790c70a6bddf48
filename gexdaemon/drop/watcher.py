"""The drop folder: request files and chain files dropped by people and scripts.

- `*.json` / `*.toml` request files (one request, a list, or {"requests": [...]})
  are submitted as a batch, all or nothing;
- chain files (every format `gexdaemon.feeds` reads) become a snapshot request
  for the symbol the file name gives (`SPX_*.csv`, `_SPX.json`) or, failing
  that, the file's own content;
- dotfiles, `*.tmp` and `*.part` are ignored (write under such a name, then rename);
- a file still being written is waited for, never rejected: a request file is
  tried at once and, if it does not decode, again once it has stopped changing;
  a chain file is read once it has not changed for `[drop] settle_ms`;
- afterwards a file moves to `processed/YYYY-MM-DD/` (with a `.receipt.json`
  naming the accepted requests and jobs) or to `rejected/` next to
  `<name>.error.json` saying what was wrong and where. Nothing is deleted.
- files that arrived while the daemon was down are picked up at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import structlog
from watchfiles import Change, awatch

from gexdaemon.core.errors import (
    GexError,
    InvalidInput,
    MalformedInput,
    Problem,
    ShuttingDown,
)
from gexdaemon.core.jsontext import JsonTextError, decode_json
from gexdaemon.core.models import DomainContext, GEXDataType, Origin, RequestSubmission
from gexdaemon.core.settings import DropSettings
from gexdaemon.core.timeutil import NEW_YORK
from gexdaemon.core.vocab import EventType
from gexdaemon.daemon.clock import Clock
from gexdaemon.daemon.events import EventBus
from gexdaemon.protocol import shapes as s
from gexdaemon.storage.jobs import jobs_for_source_url
from gexdaemon.storage.store import Store

if TYPE_CHECKING:
    from gexdaemon.daemon.intake import Accepted, Intake

log = structlog.get_logger("gexdaemon.drop")

IGNORED_SUFFIXES = (".tmp", ".part", ".error.json", ".receipt.json")
REQUEST_SUFFIXES = (".json", ".toml")
POLL_S = 0.05
MAX_WAIT_FOR_WRITER_S = 600.0


def ignored(path: Path) -> bool:
    name = path.name
    return name.startswith(".") or name.endswith(IGNORED_SUFFIXES)


@dataclass
class Verdict:
    kind: str  # "requests" | "chain" | "retry"
    payload: Any = None
    symbol: str | None = None
    format_name: str = ""


@dataclass(kw_only=True, eq=False)
class DropFolder:
    root: Path
    settings: DropSettings
    intake: Intake
    store: Store
    bus: EventBus
    clock: Clock
    domain_context: Callable[..., DomainContext]

    def __post_init__(self) -> None:
        self.processed = self.root / "processed"
        self.rejected = self.root / "rejected"
        self._stop = asyncio.Event()
        self._watch_task: asyncio.Task[None] | None = None
        self._inflight: dict[Path, asyncio.Task[None]] = {}
        self.handled = 0

    async def start(self) -> None:
        for folder in (self.root, self.processed, self.rejected):
            folder.mkdir(parents=True, exist_ok=True)
        await self._recover()
        self._stop.clear()
        self._watch_task = asyncio.create_task(self._watch(), name="gexd-drop-watch")
        await asyncio.sleep(0)  # let the watcher start before the scan, so nothing slips between
        self.scan()

    async def stop(self) -> None:
        self._stop.set()
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch_task
        pending = list(self._inflight.values())
        if pending:
            await asyncio.wait(pending, timeout=5.0)
            for task in pending:
                task.cancel()

    def scan(self) -> int:
        """Consider every file already in the folder (arrived while the daemon was down)."""
        found = 0
        for path in sorted(self.root.iterdir()):
            if path.is_file():
                found += self.consider(path)
        return found

    async def _watch(self) -> None:
        settings = self.settings
        async for changes in awatch(
            self.root,
            recursive=False,
            stop_event=self._stop,
            debounce=200,
            step=10,
            force_polling=settings.force_polling,
            rust_timeout=1000,
            yield_on_timeout=False,
        ):
            for change, raw in changes:
                if change in (Change.added, Change.modified):
                    self.consider(Path(raw))

    def consider(self, path: Path) -> bool:
        if ignored(path) or path.parent != self.root or path in self._inflight:
            return False
        task = asyncio.create_task(self._handle(path), name=f"drop-{path.name}")
        self._inflight[path] = task
        task.add_done_callback(functools.partial(self._done, path))
        return True

    def _done(self, path: Path, _task: asyncio.Task[None]) -> None:
        self._inflight.pop(path, None)

    # -- one file ---------------------------------------------------------------

    async def _handle(self, path: Path) -> None:
        started = self.clock.mono()
        try:
            verdict = await self._read_when_ready(path)
            if verdict is None:
                return  # gone (moved away by its writer)
            if verdict.kind == "requests":
                await self._submit_requests(path, verdict.payload)
            else:
                await self._submit_chain(path, verdict)
            self.handled += 1
            log.info(
                "drop file accepted",
                file=path.name,
                kind=verdict.kind,
                ms=round((self.clock.mono() - started) * 1000, 1),
            )
        except ShuttingDown:
            log.info("drop file left for the next start", file=path.name)
        except GexError as exc:
            self._reject(path, exc)
        except OSError as exc:
            if _stat(path) is not None:
                self._reject(path, MalformedInput(f"cannot be read: {exc.strerror or exc}"))
        except Exception as exc:  # never let one odd file stop the folder
            log.exception("drop file crashed the handler", file=path.name)
            if _stat(path) is not None:
                self._reject(
                    path, GexError(f"internal error while reading it: {type(exc).__name__}: {exc}")
                )

    async def _read_when_ready(self, path: Path) -> Verdict | None:
        """Read and classify the file once its writer is done; None if it disappeared."""
        settle = self.settings.settle_ms / 1000.0
        limit = self.settings.max_file_bytes
        give_up = self.clock.mono() + MAX_WAIT_FOR_WRITER_S
        # A request file is tried at once (a half-written one does not decode); a chain
        # file is only read once it has stopped changing (half a CSV still parses).
        try_now = path.suffix.lower() in REQUEST_SUFFIXES
        last = _stat(path)
        stable_for = 0.0
        while True:
            if last is None:
                return None
            if last[0] > limit:
                raise InvalidInput.from_problems(
                    path.name,
                    [
                        Problem(
                            "(file)",
                            f"is {last[0]} bytes; the drop folder takes at most {limit} ([drop] max_file_bytes)",
                        )
                    ],
                )
            if try_now or stable_for >= settle:
                try_now = False
                data = await asyncio.to_thread(path.read_bytes)
                after = _stat(path)
                if after is None:
                    return None
                if after == last:
                    try:
                        return self._classify(path, data)
                    except (MalformedInput, InvalidInput):
                        if stable_for >= settle:
                            raise  # it stopped changing and is still bad
                else:
                    last, stable_for = after, 0.0
            await asyncio.sleep(POLL_S)
            if self.clock.mono() > give_up:
                raise MalformedInput(
                    f"was still changing after {MAX_WAIT_FOR_WRITER_S:.0f} s; write it under a "
                    ".tmp name and rename it when complete"
                )
            current = _stat(path)
            if current == last:
                stable_for += POLL_S
            else:
                last, stable_for = current, 0.0

    def _classify(self, path: Path, data: bytes) -> Verdict:
        suffix = path.suffix.lower()
        if suffix == ".toml":
            try:
                payload = tomllib.loads(data.decode("utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise MalformedInput(f"is not valid TOML: {exc}") from None
            return Verdict("requests", payload)
        if suffix == ".json":
            try:
                payload = decode_json(data)
            except JsonTextError as exc:
                raise MalformedInput(exc.problem.sentence()) from None
            if _looks_like_requests(payload):
                return Verdict("requests", payload)
        # The chain readers (numpy, pyarrow) load with the first chain file, not at start.
        from gexdaemon.feeds import registry  # noqa: PLC0415
        from gexdaemon.feeds.base import FeedFile  # noqa: PLC0415
        from gexdaemon.feeds.naming import symbol_of  # noqa: PLC0415

        feed = FeedFile(name=path.name, data=data)
        fmt, _seen = registry.detect(feed)
        symbol = symbol_of(feed, self.domain_context().optionable)
        if symbol is None:
            raise InvalidInput.from_problems(
                path.name,
                [
                    Problem(
                        "(file name)",
                        "names no symbol and the file does not say which underlying it is; name it SYMBOL_anything"
                        + path.suffix,
                    )
                ],
            )
        return Verdict("chain", symbol=symbol, format_name=fmt.name)

    async def _submit_requests(self, path: Path, payload: Any) -> None:
        subs = self.intake.parse(payload)
        digest = await asyncio.to_thread(_sha256, path)
        accepted = await self.intake.submit(subs, origin=Origin.DROP)
        target = _free_name(self._processed_dir() / path.name)
        # The receipt before the move: after a crash between the two, the next start finds
        # a receipt whose file is still in the drop folder and finishes the move, rather
        # than submitting the file a second time.
        _write_json(
            _receipt_of(target),
            s.DropReceipt(
                file=path.name,
                sha256=digest,
                accepted_at=self.clock.now(),
                requests=[_entry(a) for a in accepted],
            ),
        )
        os.replace(path, target)

    async def _submit_chain(self, path: Path, verdict: Verdict) -> None:
        # Moved first: the job's source_url names the file where it will stay. After a
        # crash, the next start finds it in processed/ without a receipt and asks the
        # database whether its job exists (`_recover`).
        target = self._move(path, self._processed_dir())
        await self._queue_chain(target, path.name, verdict)

    async def _queue_chain(self, target: Path, original: str, verdict: Verdict) -> None:
        sub = RequestSubmission.parse(
            {
                "source_url": await asyncio.to_thread(_uri_of, target),
                "data_type": GEXDataType.SNAPSHOT,
                "market_symbol": verdict.symbol,
                "metadata": {"file": original, "format": verdict.format_name},
            },
            context=self.domain_context(allow_file_urls=True, allow_any_symbol=True),
            what=original,
        )
        try:
            accepted = await self.intake.submit([sub], origin=Origin.DROP)
        except GexError as exc:
            if isinstance(exc, ShuttingDown):
                self._move(target, self.root)  # back where it was, for the next start
                raise
            self._reject(target, exc, original=self.root / original)
            return
        _write_json(
            _receipt_of(target),
            s.DropReceipt(
                file=original,
                accepted_at=self.clock.now(),
                format=verdict.format_name,
                requests=[_entry(a) for a in accepted],
            ),
        )

    # -- after a crash ------------------------------------------------------------

    async def _recover(self) -> None:
        """Finish what a killed daemon left half done, before any new file is taken.

        - our own temporaries (a receipt or report being written) are removed;
        - a file in rejected/ without its report goes back to the drop folder to be
          looked at again (a rejection commits nothing, so that is safe);
        - a receipt whose file is still in the drop folder (same name and SHA-256): the
          requests were accepted, so the file is moved, not submitted again;
        - a chain file in processed/ without a receipt: its job is looked up by its
          source_url; found, the receipt is written; not found, the file is queued now.
        Only the two newest day folders of processed/ are looked at: a crash interrupts
        the files of the moment, not last month's.
        """
        days = sorted(p for p in self.processed.iterdir() if p.is_dir())[-2:]
        for folder in [*days, self.rejected]:
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
        for path in sorted(self.rejected.iterdir()):
            if path.is_file() and not ignored(path) and not _report_of(path).exists():
                log.warning("drop file rejected without a report: looking again", file=path.name)
                self._move(path, self.root)
        for day in days:
            for receipt in sorted(day.glob("*.receipt.json")):
                await self._finish_move(receipt)
            for path in sorted(day.iterdir()):
                if path.is_file() and not ignored(path) and not _receipt_of(path).exists():
                    await self._finish_chain(path)

    async def _finish_move(self, receipt: Path) -> None:
        target = receipt.with_name(receipt.name.removesuffix(".receipt.json"))
        if target.exists():
            return
        try:
            body = msgspec.json.decode(await asyncio.to_thread(receipt.read_bytes))
        except (msgspec.DecodeError, UnicodeDecodeError):
            return
        left = self.root / str(body.get("file", ""))
        if body.get("sha256") and left.is_file() and _sha256(left) == body["sha256"]:
            log.warning("drop file accepted before a crash: finishing its move", file=left.name)
            os.replace(left, target)

    async def _finish_chain(self, path: Path) -> None:
        found = await self.store.read(jobs_for_source_url, await asyncio.to_thread(_uri_of, path))
        if found:
            log.warning("drop file queued before a crash: writing its receipt", file=path.name)
            _write_json(
                _receipt_of(path),
                s.DropReceipt(
                    file=path.name,
                    accepted_at=None,
                    recovered="the daemon stopped before writing this receipt",
                    requests=[msgspec.convert(row, s.ReceiptEntry) for row in found],
                ),
            )
            return
        log.warning("drop file moved but never queued before a crash: queueing it", file=path.name)
        try:
            data = await asyncio.to_thread(path.read_bytes)
            verdict = self._classify(path, data)
        except GexError as exc:
            self._reject(path, exc)
            return
        if verdict.kind != "chain":
            # A request file from before receipts were written first: accepted, ids unknown.
            _write_json(
                _receipt_of(path),
                s.DropReceipt(
                    file=path.name,
                    accepted_at=None,
                    recovered="accepted before the daemon stopped; the request ids were "
                    "not recorded (see `gexdaemon jobs`)",
                    requests=[],
                ),
            )
            return
        await self._queue_chain(path, path.name, verdict)

    def _processed_dir(self) -> Path:
        day = self.clock.now().astimezone(NEW_YORK).date().isoformat()
        folder = self.processed / day
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _move(self, path: Path, folder: Path) -> Path:
        target = _free_name(folder / path.name)
        os.replace(path, target)
        return target

    def _reject(self, path: Path, exc: GexError, *, original: Path | None = None) -> None:
        original = original or path
        try:
            target = self._move(path, self.rejected)
        except FileNotFoundError:
            return
        error = s.ErrorInfo(
            code=exc.code,
            message=exc.message
            if exc.message.startswith(original.name)
            else f"{original.name}: {exc.message}",
            details=[msgspec.convert(d.as_dict(), s.ProblemDetail) for d in exc.details],
        )
        report = s.DropRejection(
            file=str(original), moved_to=str(target), rejected_at=self.clock.now(), error=error
        )
        _write_json(_report_of(target), report)
        self.bus.publish(EventType.DROP_REJECTED, s.DropNotice(file=original.name, error=error))
        log.warning("drop file rejected", file=original.name, error=exc.message)


def _entry(accepted: Accepted) -> s.ReceiptEntry:
    receipt = accepted.receipt(explain=False)
    return msgspec.convert(
        {k: v for k, v in receipt.to_builtins().items() if k in s.ReceiptEntry.__struct_fields__},
        s.ReceiptEntry,
    )


def _receipt_of(path: Path) -> Path:
    return path.with_name(path.name + ".receipt.json")


def _report_of(path: Path) -> Path:
    return path.with_name(path.name + ".error.json")


def _uri_of(path: Path) -> str:
    """A chain file's source_url: the same string at submit and at recovery."""
    return path.resolve().as_uri()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _looks_like_requests(payload: Any) -> bool:
    if isinstance(payload, dict):
        return "requests" in payload or "source_url" in payload
    if isinstance(payload, list):
        return bool(payload) and all(isinstance(x, dict) and "source_url" in x for x in payload[:5])
    return False


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns


def _free_name(target: Path) -> Path:
    if not target.exists():
        return target
    stem, suffix = target.stem, "".join(target.suffixes[-1:])
    for i in range(1, 10_000):
        candidate = target.with_name(f"{stem}-{i}{suffix}")
        if not candidate.exists():
            return candidate
    raise GexError(f"too many files named {target.name} in {target.parent}")


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(value), indent=2))
    os.replace(tmp, path)
