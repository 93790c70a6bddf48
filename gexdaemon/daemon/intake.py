"""Intake: turn submissions (socket, drop folder, CLI, TUI) into scored, durable, queued jobs.

One path for every entry point. A batch is all-or-nothing: every entry is
validated first and the errors of all bad entries are reported together with
their index and field path; only a fully valid batch is committed, in one
group-committed transaction, and only then handed to the scheduler. So an
accepted request is always in the database before anyone is told it exists,
and a refused batch can be fixed and sent again without creating duplicates.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import structlog
from pydantic import ValidationError

from gexdaemon.core.errors import (
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
from gexdaemon.daemon.jobbook import LiveJob
from gexdaemon.daemon.queue import JobQueue
from gexdaemon.daemon.rules import RuleService
from gexdaemon.daemon.sources import SourceBook
from gexdaemon.fetch.http import host_allowed as fetch_host_allowed
from gexdaemon.protocol import shapes as s
from gexdaemon.storage.store import NewRows, PutJob, PutRequest, PutSource, Store

log = structlog.get_logger("gexdaemon.intake")


@dataclass(frozen=True)
class Accepted:
    live: LiveJob
    at_risk_reason: str

    def receipt(self, *, explain: bool = True) -> s.Accepted:
        """The wire answer; batches leave the explanation out (GET /v1/requests/{id} has it)."""
        return present.accepted(self.live, self.at_risk_reason, explain=explain)


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


class Intake:
    def __init__(
        self,
        *,
        settings: Settings,
        domain_context: Callable[..., DomainContext],
        sources: SourceBook,
        rules: RuleService,
        estimates: ProcessingEstimates,
        queue: JobQueue,
        store: Store,
        clock: Clock,
        accepting: Callable[[], bool],
        wake: Callable[[], None],
    ) -> None:
        self._settings = settings
        self._context = domain_context
        self._sources = sources
        self._rules = rules
        self._estimates = estimates
        self._queue = queue
        self._store = store
        self._clock = clock
        self._accepting = accepting
        self._wake = wake
        # The contexts depend on the config only (the clock is read when a check runs).
        self._contexts: dict[bool, DomainContext] = {}

    def parse(self, payload: Any, *, allow_files: bool = False) -> list[RequestSubmission]:
        """Validate every entry; raise one InvalidInput naming each bad entry and field."""
        entries, prefix = entries_of(payload)
        if not entries:
            raise InvalidInput.from_problems(
                "the batch", [Problem(prefix or "(root)", "holds no requests")]
            )
        limit = self._settings.api.max_batch
        if len(entries) > limit:
            raise PayloadTooLarge(
                f"the batch holds {len(entries)} requests; at most {limit} ([api] max_batch)"
            )
        context = self._contexts.get(allow_files)
        if context is None:
            context = self._contexts[allow_files] = self._context(allow_file_urls=allow_files)
        allowed = self._settings.sources.allowed_hosts
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
        if not self._accepting():
            raise ShuttingDown(
                "the daemon is shutting down and accepts no new requests; retry when it is back"
            )
        clock, queue = self._clock, self._queue
        now = clock.now()
        changes: list[NewRows] = []
        staged: list[tuple[LiveJob, JobEvent]] = []
        rule_set = self._rules.current
        priority = self._settings.priority
        for sub in subs:
            base = base_url_of(sub.source_url)
            source, created = self._sources.ensure(base, now)
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
            estimate_s = self._estimates.estimate(base, sub.data_type)
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
        # The scheduler's forecast comes before the commit, so an at-risk flag is written
        # with the job rather than in a second transaction. A job it dispatches while the
        # commit is in flight is safe: its first update queues behind the insert.
        admissions = [queue.admit(live) for live, _ in staged]
        changes += [
            c for live, event in staged for c in (PutRequest(live.request), PutJob(live.job, event))
        ]
        try:
            await self._store.accept(changes)  # durable before anyone hears of it
        except BaseException:
            for live, _ in staged:
                queue.forget(live.job_id)
            raise
        accepted = []
        for (live, _), admission in zip(staged, admissions, strict=True):
            queue.announce(live)
            accepted.append(Accepted(live, admission.reason if admission.at_risk else ""))
        self._wake()
        return accepted
