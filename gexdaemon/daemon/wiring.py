"""Building a service from the parts the daemon holds: it gets the fields it declares.

Each service is a dataclass whose fields are the few collaborators it uses (the store,
the event bus, the clock, ...). The daemon keeps the parts it has built in one table
and hands each service what it asks for by name; what differs per service (which
section of the settings, a callback) is given at the call. A service's field list is
the one place that says what it depends on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class WiringError(TypeError):
    """A service asked for a part the daemon does not have, or was given one it has no field for."""


def wire(service: type[T], parts: Mapping[str, object], **given: Any) -> T:
    """`service(...)` with each init field from `given`, else from `parts` by name.

    A field neither names keeps its default; one without a default is a WiringError
    naming the service and the field, as is a `given` name the service has no field for.
    """
    fields = [f for f in dataclasses.fields(service) if f.init]  # type: ignore[arg-type]
    unknown = set(given) - {f.name for f in fields}
    if unknown:
        raise WiringError(f"{service.__name__} has no field {', '.join(sorted(unknown))}")
    kwargs: dict[str, Any] = {}
    for f in fields:
        if f.name in given:
            kwargs[f.name] = given[f.name]
        elif f.name in parts:
            kwargs[f.name] = parts[f.name]
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise WiringError(
                f"{service.__name__} needs {f.name!r}, which the daemon has not built"
            )
    return service(**kwargs)
