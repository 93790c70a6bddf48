"""Helpers for the feed tests: the committed samples and a one-call ingest."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gexdaemon.core.models import DomainContext
from gexdaemon.core.settings import GexSettings
from gexdaemon.feeds.base import FeedFile
from gexdaemon.pipeline.snapshot import SnapshotResult, compute_snapshot_from_bytes

SAMPLES = Path(__file__).resolve().parents[2] / "sample_feeds"
NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


def ingest_bytes(
    name: str, data: bytes, settings: GexSettings | None = None, **hints: Any
) -> SnapshotResult:
    return compute_snapshot_from_bytes(
        FeedFile(name=name, data=data, **hints),
        job_id=uuid.UUID(int=7),
        settings=settings or GexSettings(),
        now=NOW,
        context=DomainContext(now=NOW),
    )


def ingest_sample(name: str, settings: GexSettings | None = None, **hints: Any) -> SnapshotResult:
    return ingest_bytes(name, (SAMPLES / name).read_bytes(), settings, **hints)


@pytest.fixture
def samples() -> Path:
    return SAMPLES
