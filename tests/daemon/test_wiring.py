"""Services are built from the daemon's parts by field name (gexdaemon/daemon/wiring.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from gexdaemon.daemon.wiring import WiringError, wire


@dataclass(kw_only=True)
class Service:
    store: str
    clock: str
    settings: str
    retries: int = 3
    seen: list[str] = field(default_factory=list)


def test_a_service_gets_its_fields_from_the_parts_and_the_call() -> None:
    parts = {"store": "the store", "clock": "the clock", "bus": "a bus it does not use"}
    built = wire(Service, parts, settings="its section")
    assert (built.store, built.clock, built.settings) == ("the store", "the clock", "its section")
    assert (built.retries, built.seen) == (3, [])


def test_what_the_call_gives_wins_over_the_parts() -> None:
    built = wire(Service, {"store": "shared", "clock": "c", "settings": "s"}, store="own")
    assert built.store == "own"


def test_a_missing_part_names_the_service_and_the_field() -> None:
    with pytest.raises(WiringError) as err:
        wire(Service, {"store": "s"}, settings="x")
    assert "Service" in str(err.value) and "'clock'" in str(err.value)


def test_a_given_part_the_service_has_no_field_for_is_refused() -> None:
    with pytest.raises(WiringError) as err:
        wire(Service, {"store": "s", "clock": "c"}, settings="x", colour="red")
    assert "colour" in str(err.value)
