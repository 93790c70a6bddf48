"""Typed errors a user can meet, each with a stable code and a message that says what to do."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input: where (a field path, file, line) and why."""

    path: str
    message: str
    rule: str = ""
    value: Any = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "message": self.message}
        if self.rule:
            out["rule"] = self.rule
        if self.value is not None:
            out["value"] = self.value
        return out

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class GexError(Exception):
    """Base of every error the project raises on purpose.

    `code` is stable (the socket API and `--json` output carry it); the message
    is for a person and says what to do about it.
    """

    code = "error"

    def __init__(self, message: str, *, details: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.details: tuple[Problem, ...] = tuple(details)

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "details": [d.as_dict() for d in self.details],
        }


class InvalidInput(GexError):
    """Input that breaks a validation rule; `details` name every field and rule."""

    code = "validation_failed"

    @classmethod
    def from_problems(cls, what: str, problems: Sequence[Problem]) -> InvalidInput:
        listed = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        return cls(f"{what} is invalid: {listed}{more}", details=problems)


class IllegalTransition(GexError):
    """A job state change the state machine does not allow."""

    code = "illegal_transition"

    def __init__(self, current: str, target: str, allowed: Sequence[str]) -> None:
        allowed_text = ", ".join(sorted(allowed)) if allowed else "none (final state)"
        super().__init__(
            f"cannot move a job from {current.upper()} to {target.upper()}; "
            f"from {current.upper()} the allowed next states are: {allowed_text.upper()}"
        )
        self.current = current
        self.target = target


class RetryLimitReached(IllegalTransition):
    """A retry beyond the maximum; the job stays FAILED."""

    code = "retry_limit_reached"

    def __init__(self, retry_count: int, limit: int) -> None:
        GexError.__init__(
            self,
            f"the job has already been retried {retry_count} times (limit {limit}); "
            "submit a new request for the same source instead",
        )
        self.current = "failed"
        self.target = "queued"


class NotFound(GexError):
    """An id that names nothing (404 on the socket API)."""

    code = "not_found"


class MalformedInput(GexError):
    """Input that cannot even be read: bad JSON or TOML, binary junk (400)."""

    code = "malformed"


class PayloadTooLarge(GexError):
    code = "too_large"


class Conflict(GexError):
    """The request is valid but the state does not allow it now (409)."""

    code = "conflict"


class ShuttingDown(GexError):
    code = "shutting_down"


class Forbidden(GexError):
    code = "forbidden"


class Unavailable(GexError):
    """Something the daemon needs is not there now (cluster mode: Redis); retry later (503)."""

    code = "unavailable"


class VolatileStore(GexError):
    """A cluster Redis that would lose acknowledged requests on a crash; refused at start."""

    code = "volatile_redis"


def utf8_problem(data: bytes) -> str | None:
    """Where bytes stop being UTF-8, said for a person: None when they are UTF-8.

    JSON decoders report the position inside the bad fragment ("position 0"), which points
    nowhere useful; this names the byte, its line and its offset in the whole input."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return (
            f"is not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line} "
            f"(offset {exc.start}); save it as UTF-8"
        )
    return None


class ConfigError(GexError):
    """A configuration file or variable that cannot be used; says which key and why."""

    code = "config_invalid"
