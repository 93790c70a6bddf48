"""Processing estimates in a real DuckDB file: round trip, upsert, stamping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gexdaemon.core.estimates import EstimateState, ProcessingEstimates
from gexdaemon.storage.estimates import PutEstimates, load_estimates
from gexdaemon.storage.store import Store

T0 = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


def test_estimates_round_trip_and_upsert(store: Store) -> None:
    book = ProcessingEstimates(default_s=5.0, alpha=0.5)
    book.observe("https://cdn.cboe.com", "real_time", 2.0, T0)
    book.observe("https://cdn.cboe.com", "snapshot", 8.0, T0)
    store.commit_sync([PutEstimates(book.take_changed())])
    book.observe("https://cdn.cboe.com", "real_time", 4.0, T0 + timedelta(minutes=1))
    store.commit_sync([PutEstimates(book.take_changed())])
    store.commit_sync([PutEstimates([])])  # nothing to write is fine
    loaded = store.read_sync(load_estimates)
    assert loaded == book.export_state()
    assert loaded[0] == EstimateState(
        "https://cdn.cboe.com", "real_time", 3.0, 2, T0 + timedelta(minutes=1)
    )
    fresh = ProcessingEstimates(default_s=5.0, alpha=0.5)
    fresh.import_state(loaded)
    assert fresh.estimate("https://cdn.cboe.com", "real_time") == 3.0


async def test_estimates_async(store: Store) -> None:
    state = EstimateState("https://a.example", "historical", 30.0, 4, T0)
    await store.commit([PutEstimates([state])])
    assert await store.read(load_estimates) == [state]


def test_unstamped_estimates_are_stamped_when_saved(store: Store) -> None:
    book = ProcessingEstimates(default_s=5.0, alpha=0.5)
    book.observe("https://a.example", "snapshot", 2.0)
    store.commit_sync([PutEstimates(book.take_changed(), now=T0)])
    (loaded,) = store.read_sync(load_estimates)
    assert loaded.updated_at == T0
