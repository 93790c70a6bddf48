"""`GET /metrics`: Prometheus text format, per level and per source.

Per level: queue depth, in flight, at risk, oldest wait, SLA met ratio over the
last hour, breaches, throughput and the dispatches per scheduler phase; per
source: reliability, EMA response time, circuit state; plus the store's group
commits and the event stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gexdaemon.core.models import CircuitState, DataSource, PriorityLevel
from gexdaemon.daemon.events import EventBus
from gexdaemon.protocol.shapes import Queues
from gexdaemon.storage.store import WriterStats


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}" if labels else ""


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self,
        name: str,
        kind: str,
        help_text: str,
        samples: Iterable[tuple[dict[str, str], float | None]],
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            if value is not None:
                self.lines.append(f"{name}{_labels(**labels)} {float(value):.6g}")


# (family, type, help, the column of /v1/queues' level rows), one sample per level.
PER_LEVEL = (
    ("gexd_queue_depth", "gauge", "Jobs queued per level (retries in backoff included).", "depth"),
    ("gexd_in_flight", "gauge", "Jobs running per level.", "in_flight"),
    ("gexd_at_risk", "gauge", "Queued jobs flagged at risk of missing their deadline.", "at_risk"),
    (
        "gexd_oldest_wait_seconds",
        "gauge",
        "Wait of the oldest queued job per level.",
        "oldest_wait_s",
    ),
    (
        "gexd_sla_met_ratio",
        "gauge",
        "Share of jobs finished in the last hour that met their deadline.",
        "sla_met_ratio",
    ),
    (
        "gexd_sla_breaches_last_hour",
        "gauge",
        "Deadlines missed in the last hour.",
        "breaches_last_hour",
    ),
    (
        "gexd_throughput_per_minute",
        "gauge",
        "Jobs finished per minute over the last 5 minutes.",
        "throughput_per_min",
    ),
    ("gexd_sla_met_total", "counter", "Jobs that finished before their deadline.", "met_total"),
    (
        "gexd_sla_breached_total",
        "counter",
        "Jobs that finished after their deadline or failed.",
        "breached_total",
    ),
)


def render_metrics(
    *,
    queues: Queues,
    sources: Sequence[DataSource],
    store: WriterStats,
    bus: EventBus,
    uptime_s: float,
) -> str:
    """The same figures /v1/queues answers (one source for both), in Prometheus text."""
    w = _Writer()
    by = {row.level: row for row in queues.levels}

    def per_level(key: str) -> list[tuple[dict[str, str], float | None]]:
        return [({"level": lv.value}, getattr(by[lv], key)) for lv in PriorityLevel]

    for name, kind, help_text, key in PER_LEVEL:
        w.family(name, kind, help_text, per_level(key))
    w.family(
        "gexd_dispatch_total",
        "counter",
        "Dispatch decisions per scheduler phase.",
        [({"phase": p.value}, n) for p, n in queues.phases.items()],
    )
    w.family("gexd_workers", "gauge", "Worker slots.", [({}, queues.workers.total)])
    w.family(
        "gexd_source_reliability",
        "gauge",
        "Successful fetches over all fetches per source.",
        [({"source": s.base_url}, s.reliability_score) for s in sources],
    )
    w.family(
        "gexd_source_response_seconds",
        "gauge",
        "EMA of fetch response time per source.",
        [
            (
                {"source": s.base_url},
                s.average_response_time.total_seconds()
                if s.average_response_time is not None
                else None,
            )
            for s in sources
        ],
    )
    w.family(
        "gexd_source_circuit_open",
        "gauge",
        "1 while a source's circuit breaker is open.",
        [
            ({"source": s.base_url}, 1.0 if s.circuit_state is CircuitState.OPEN else 0.0)
            for s in sources
        ],
    )
    w.family(
        "gexd_source_active",
        "gauge",
        "1 while a source may be fetched from.",
        [({"source": s.base_url}, 1.0 if s.is_active else 0.0) for s in sources],
    )
    for name, kind, help_text, value in (
        ("gexd_store_commits_total", "counter", "Group commits.", store.commits),
        (
            "gexd_store_changes_total",
            "counter",
            "Changes written through group commit.",
            store.changes,
        ),
        (
            "gexd_store_last_commit_ms",
            "gauge",
            "Duration of the last group commit.",
            store.last_commit_ms,
        ),
        (
            "gexd_events_published_total",
            "counter",
            "Events published on the stream.",
            bus.published,
        ),
        (
            "gexd_event_subscribers",
            "gauge",
            "Connected event-stream clients.",
            bus.subscriber_count,
        ),
        ("gexd_uptime_seconds", "gauge", "Seconds since the daemon started.", uptime_s),
    ):
        w.family(name, kind, help_text, [({}, value)])
    return "\n".join(w.lines) + "\n"
