"""Intake: turn submissions (socket, drop folder, CLI, TUI) into scored, durable, queued jobs.

One path for every entry point. A batch is all-or-nothing: every entry is
validated first and the errors of all bad entries are reported together with
their index and field path; only a fully valid batch is committed, in one
group-committed transaction, and only then handed to the scheduler. So an
accepted request is always in the database before anyone is told it exists,
and a refused batch can be fixed and sent again without creating duplicates.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import msgspec
import structlog
from pydantic import ValidationError

from gexdaemon import readout
from gexdaemon.core.errors import (
    Conflict,
    InvalidInput,
    MalformedInput,
    PayloadTooLarge,
    Problem,
    ShuttingDown,
)
from gexdaemon.core.estimates import ProcessingEstimates
from gexdaemon.core.models import (
    DomainContext,
    JobEvent,
    Origin,
    PriorityLevel,
    PriorityRequest,
    ProcessingJob,
    RequestSubmission,
    assembled,
    base_url_of,
    problems_of,
    time_ordered_id,
)
from gexdaemon.core.scoring import score_request
from gexdaemon.core.settings import Settings
from gexdaemon.daemon import present
from gexdaemon.daemon.clock import Clock
from gexdaemon.daemon.idempotency import Held, IdempotencyBook
from gexdaemon.daemon.jobbook import LiveJob
from gexdaemon.daemon.queue import JobQueue
from gexdaemon.daemon.rules import RuleService
from gexdaemon.daemon.sources import SourceBook
from gexdaemon.fetch.http import host_allowed as fetch_host_allowed
from gexdaemon.protocol import shapes as s
from gexdaemon.storage.jobs import load_job, load_request
from gexdaemon.storage.store import (
    NewRows,
    PutIdempotencyKey,
    PutJob,
    PutRequest,
    PutSource,
    Store,
)

log = structlog.get_logger("gexdaemon.intake")


class ClusterIntake(Protocol):
    """Cluster mode's board, as intake sees it: each job queued, or (True) the earlier job
    its idempotency key stands for. `keys`: job id -> (key, the request's fingerprint)."""

    async def submit(
        self, lives: Sequence[LiveJob], keys: Mapping[uuid.UUID, tuple[str, str]]
    ) -> list[tuple[LiveJob, bool]]: ...


@dataclass(frozen=True)
class Accepted:
    """One accepted request: a new job, or (`replayed`) the first job of a repeated key."""

    live: LiveJob | None
    at_risk_reason: str = ""
    replayed: bool = False
    # A replayed job that is no longer live: its rows as the store holds them.
    stored: tuple[PriorityRequest, ProcessingJob] | None = None

    def receipt(self, *, explain: bool = True) -> s.Accepted:
        """The wire answer; batches leave the explanation out (GET /v1/requests/{id} has it)."""
        if self.live is not None:
            answer = present.accepted(self.live, self.at_risk_reason, explain=explain)
        else:
            assert self.stored is not None
            answer = present.accepted_stored(*self.stored, explain=explain)
        return msgspec.structs.replace(answer, replayed=True) if self.replayed else answer


def host_allowed(url: str, allowed: Sequence[str]) -> bool:
    """Is the URL's host on the allowlist? Entries may be hostnames, globs, IPs or CIDRs."""
    if url.startswith("file://"):
        return True
    return _base_allowed(base_url_of(url), tuple(allowed))


@functools.lru_cache(maxsize=1024)
def _base_allowed(base_url: str, allowed: tuple[str, ...]) -> bool:
    # The fetcher's own check: a request accepted at the door is not refused at fetch time.
    return fetch_host_allowed(urlsplit(base_url).hostname or "", allowed)


def entries_of(payload: Any) -> tuple[list[Any], str]:
    """One request, a list of them, or {"requests": [...]}; returns (entries, path prefix)."""
    if isinstance(payload, Mapping) and "requests" in payload:
        extra = sorted(set(payload) - {"requests"})
        if extra:
            raise InvalidInput.from_problems(
                "the batch", [Problem(k, "unknown field") for k in extra]
            )
        items = payload["requests"]
        if not isinstance(items, list):
            raise InvalidInput.from_problems(
                "the batch", [Problem("requests", "must be a list of requests")]
            )
        return list(items), "requests"
    if isinstance(payload, list):
        return list(payload), ""
    if isinstance(payload, Mapping):
        return [payload], ""
    raise MalformedInput('expected a request object, a list of requests, or {"requests": [...]}')


@dataclass(kw_only=True, eq=False)
class Intake:
    settings: Settings
    domain_context: Callable[..., DomainContext]
    sources: SourceBook
    rules: RuleService
    estimates: ProcessingEstimates
    queue: JobQueue
    store: Store
    clock: Clock
    accepting: Callable[[], bool]
    wake: Callable[[], None]
    keys: IdempotencyBook
    cluster: ClusterIntake | None = None

    def __post_init__(self) -> None:
        # The contexts depend on the config only (the clock is read when a check runs).
        self._contexts: dict[bool, DomainContext] = {}

    def parse(self, payload: Any, *, allow_files: bool = False) -> list[RequestSubmission]:
        """Validate every entry; raise one InvalidInput naming each bad entry and field."""
        entries, prefix = entries_of(payload)
        if not entries:
            raise InvalidInput.from_problems(
                "the batch", [Problem(prefix or "(root)", "holds no requests")]
            )
        limit = self.settings.api.max_batch
        if len(entries) > limit:
            raise PayloadTooLarge(
                f"the batch holds {len(entries)} requests; at most {limit} ([api] max_batch)"
            )
        context = self._contexts.get(allow_files)
        if context is None:
            context = self._contexts[allow_files] = self.domain_context(allow_file_urls=allow_files)
        allowed = self.settings.sources.allowed_hosts
        problems: list[Problem] = []
        bad: set[int] = set()
        subs: list[RequestSubmission] = []
        single = len(entries) == 1 and not prefix
        for i, entry in enumerate(entries):
            sub = RequestSubmission.quick(entry, context)
            where = f"{prefix}.{i}" if prefix else ("" if single else str(i))
            if sub is None:  # not plainly valid: the model decides and words the problem
                try:
                    sub = RequestSubmission.model_validate(
                        entry, context=context.as_validation_context()
                    )
                except ValidationError as exc:
                    problems += problems_of(exc, where)
                    bad.add(i)
                    continue
            if not host_allowed(sub.source_url, allowed):
                host = urlsplit(sub.source_url).hostname
                problems.append(
                    Problem(
                        f"{where}.source_url" if where else "source_url",
                        f"host {host!r} is not in [sources] allowed_hosts",
                        rule="host_not_allowed",
                    )
                )
                bad.add(i)
                continue
            subs.append(sub)
        if problems:
            if single:
                raise InvalidInput.from_problems("the request", problems)
            listed = "; ".join(str(p) for p in problems[:5])
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise InvalidInput(
                f"{len(bad)} of {len(entries)} requests are invalid, so none was accepted: {listed}{more}",
                details=problems,
            )
        return subs

    async def submit(
        self,
        subs: Sequence[RequestSubmission],
        *,
        origin: Origin,
        level_override: PriorityLevel | None = None,
    ) -> list[Accepted]:
        if not self.accepting():
            raise ShuttingDown(
                "the daemon is shutting down and accepts no new requests; retry when it is back"
            )
        # In cluster mode the board checks idempotency keys (one script with the submit).
        replays = {} if self.cluster is not None else await self._replays(subs)
        clock, queue = self.clock, self.queue
        now = clock.now()
        changes: list[NewRows] = []
        staged: list[tuple[LiveJob, JobEvent]] = []
        keyed: list[tuple[str, LiveJob]] = []
        rule_set = self.rules.current
        priority = self.settings.priority
        for i, sub in enumerate(subs):
            if i in replays:
                continue
            base = base_url_of(sub.source_url)
            source, created = self.sources.ensure(base, now)
            if created:
                changes.append(PutSource(source))
            requested_at = sub.requested_at or now
            scored = score_request(
                rule_set,
                data_type=sub.data_type,
                market_symbol=sub.market_symbol,
                source_url=sub.source_url,
                requested_at=requested_at,
                metadata=sub.metadata,
                origin=origin,
                reliability_score=source.reliability_score,
                now=now,
                settings=priority,
            )
            level = level_override or scored.level
            explanation = dict(scored.explanation)
            if level_override is not None and level_override is not scored.level:
                explanation["override"] = {"level": level_override.value, "by": origin}
            deadline = queue.deadline_for(level, requested_at)
            estimate_s = self.estimates.estimate(base, sub.data_type)
            # Every field was validated by RequestSubmission (the same annotated types) or
            # made by the scorer and the SLA table; validating them again would double
            # the cost of intake. The cross-field rule (deadline >= requested_at) holds by
            # construction, and the database's CHECK constraints back all of it up.
            request = assembled(
                PriorityRequest,
                {
                    "request_id": time_ordered_id(),
                    "source_url": sub.source_url,
                    "data_type": sub.data_type,
                    "market_symbol": sub.market_symbol,
                    "requested_at": requested_at,
                    "priority_score": scored.score,
                    "priority_level": level,
                    "estimated_processing_time": timedelta(seconds=estimate_s),
                    "metadata": sub.metadata,
                    "source_id": source.source_id,
                    "deadline": deadline,
                    "origin": origin,
                    "explanation": explanation,
                },
            )
            job, created_event = ProcessingJob.queued(request, now)
            live = LiveJob(
                request=request,
                job=job,
                source_key=base,
                estimate_s=estimate_s,
                enqueued_mono=clock.mono(),
                deadline_mono=clock.to_mono(deadline),
            )
            staged.append((live, created_event))
            if sub.idempotency_key is not None:
                keyed.append((sub.idempotency_key, live))
        if self.cluster is not None:
            return await self._to_cluster(subs, staged, keyed, changes)
        # The scheduler's forecast comes before the commit, so an at-risk flag is written
        # with the job rather than in a second transaction. A job it dispatches while the
        # commit is in flight is safe: its first update queues behind the insert.
        admissions = [queue.admit(live) for live, _ in staged]
        changes += [
            c for live, event in staged for c in (PutRequest(live.request), PutJob(live.job, event))
        ]
        durable: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fresh_subs = [sub for i, sub in enumerate(subs) if i not in replays]
        by_job = {live.job_id: sub for sub, (live, _) in zip(fresh_subs, staged, strict=True)}
        for key, live in keyed:
            use = self.keys.hold(
                key,
                by_job[live.job_id].fingerprint(),
                live.request.request_id,
                live.job_id,
                durable,
            )
            changes.append(
                PutIdempotencyKey(key, use.fingerprint, use.request_id, use.job_id, use.created_at)
            )
        try:
            if changes:
                await self.store.accept(changes)  # durable before anyone hears of it
        except BaseException as exc:
            for live, _ in staged:
                queue.forget(live.job_id)
            for key, live in keyed:
                self.keys.release(key, live.job_id)
            durable.set_exception(exc if isinstance(exc, Exception) else ShuttingDown("stopped"))
            durable.exception()  # retrieved: a waiting repeat reads it through `settled`
            raise
        durable.set_result(None)
        for key, _live in keyed:
            self.keys.settled(key)
        fresh = iter(zip(staged, admissions, strict=True))
        accepted: list[Accepted] = []
        for i in range(len(subs)):
            if i in replays:
                accepted.append(await self._replayed(replays[i]))
                continue
            (live, _), admission = next(fresh)
            queue.announce(live)
            accepted.append(Accepted(live, admission.reason if admission.at_risk else ""))
        if staged:
            self.wake()
        return accepted

    async def _to_cluster(
        self,
        subs: Sequence[RequestSubmission],
        staged: Sequence[tuple[LiveJob, JobEvent]],
        keyed: Sequence[tuple[str, LiveJob]],
        changes: Sequence[NewRows],
    ) -> list[Accepted]:
        """Cluster mode: the board is the record of live work; answer once Redis has it."""
        assert self.cluster is not None
        if changes:  # sources seen here first: this node's record of them
            await self.store.commit(list(changes))
        by_job = {live.job_id: sub for sub, (live, _) in zip(subs, staged, strict=True)}
        keys = {live.job_id: (key, by_job[live.job_id].fingerprint()) for key, live in keyed}
        found = await self.cluster.submit([live for live, _ in staged], keys)
        return [Accepted(live, replayed=replayed) for live, replayed in found]

    async def _replays(self, subs: Sequence[RequestSubmission]) -> dict[int, Held]:
        """Entries whose key was used before (or earlier in this batch) for the same request.

        A key used for a different request (before, or earlier in this batch) is a 409
        naming the first use; the same key twice in one batch for one request counts once.
        """
        found: dict[int, Held] = {}
        first_in_batch: dict[str, int] = {}
        for i, sub in enumerate(subs):
            key = sub.idempotency_key
            if key is None:
                continue
            fingerprint = sub.fingerprint()
            if key in first_in_batch:
                earlier = subs[first_in_batch[key]]
                if earlier.fingerprint() != fingerprint:
                    # As for a key used before for a different request: a conflict (409).
                    problem = Problem(
                        f"requests.{i}.idempotency_key",
                        f"is also the key of requests.{first_in_batch[key]}, a different "
                        "request; give each request its own key",
                        rule="idempotency_key_reused",
                    )
                    raise Conflict(f"the batch: {problem}", details=[problem])
                if first_in_batch[key] in found:
                    found[i] = found[first_in_batch[key]]
                continue
            first_in_batch[key] = i
            held = await self.keys.find(key)
            if held is None or not await held.settled():
                continue
            if held.use.fingerprint != fingerprint:
                raise Conflict(
                    f"idempotency key {key!r} was used at {readout.market_time(held.use.created_at)} "
                    f"for a different request (job {readout.short_id(str(held.use.job_id))}); "
                    "a key stands for one request for 24 hours: use a new key for a new request"
                )
            found[i] = held
        return found

    async def _replayed(self, held: Held) -> Accepted:
        live = self.queue.book.live(held.use.job_id)
        if live is not None:
            return Accepted(live, live.at_risk_reason or "", replayed=True)
        request = await self.store.read(load_request, held.use.request_id)
        job = await self.store.read(load_job, held.use.job_id)
        if request is None or job is None:
            # Archived past the retention while its key was still held: say so plainly.
            raise Conflict(
                f"idempotency key {held.use.key!r} stands for job "
                f"{readout.short_id(str(held.use.job_id))}, which is no longer in the database"
            )
        return Accepted(None, replayed=True, stored=(request, job))
