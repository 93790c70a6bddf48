"""Small asyncio helpers shared by the daemon and the cluster node."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable


async def cancel_all(tasks: Iterable[asyncio.Task[object]]) -> None:
    """Cancel every task and wait for each to end; their errors were logged where they ran."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def finish_within(tasks: Iterable[asyncio.Task[object]], grace_s: float) -> int:
    """Let the tasks run for up to `grace_s`, then cancel those still running and wait for
    them to end. Returns how many had to be cancelled."""
    running = list(tasks)
    if not running:
        return 0
    _, pending = await asyncio.wait(running, timeout=grace_s)
    await cancel_all(pending)
    return len(pending)
