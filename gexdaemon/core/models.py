"""The seed's domain model: requests, jobs, sources, rules and GEX snapshots (pydantic v2).

One definition per entity: the wire shape (socket API, CLI `--json`) is
`model_dump(mode="json")` of these classes, and the storage adapter maps the
same fields to columns. Every seed validation rule is enforced here; the few
rules that depend on the environment (the current instant, the optionable
symbol list, whether `file://` sources are allowed) read a `DomainContext`
passed as pydantic's validation context, so tests can pin the clock.

Conventions:
- every instant is timezone-aware UTC; a naive datetime is refused;
- durations are `timedelta` in Python and seconds (`*_s`) on the wire;
- `snapshot_date` / `snapshot_time` are New York market-local.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import re
import secrets
import time as time_module
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, ClassVar, Protocol, Self, TypeVar
from urllib.parse import urlsplit

import msgspec
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    ValidationInfo,
    computed_field,
    field_validator,
    model_validator,
)

from gexdaemon.core.errors import IllegalTransition, InvalidInput, Problem, RetryLimitReached
from gexdaemon.core.symbols import BUNDLED_OPTIONABLE, SYMBOL_PATTERN, normalize_symbol
from gexdaemon.core.timeutil import NEW_YORK, as_utc, utc_now
from gexdaemon.core.vocab import (
    MAX_IDEMPOTENCY_KEY,
    MAX_METADATA_BYTES,
    MAX_METADATA_KEY,
    MAX_METADATA_KEYS,
    MAX_URL_LENGTH,
    TRANSITIONS,
    CircuitState,
    ExpiryFilter,
    GammaSource,
    GEXDataType,
    GexUnit,
    JobStatus,
    Origin,
    PriorityLevel,
    SignModel,
    SlaStatus,
)

# The vocabulary is part of the domain: importing it from here keeps working.
__all__ = [
    "TRANSITIONS",
    "CircuitState",
    "ExpiryFilter",
    "GEXDataType",
    "GammaSource",
    "GexUnit",
    "JobStatus",
    "Origin",
    "PriorityLevel",
    "SignModel",
    "SlaStatus",
]

MAX_RETRIES = 3
"""The seed's hard ceiling on retries per job; config may lower it, never raise it."""

MAX_ERROR_MESSAGE = 4000
IDEMPOTENCY_WINDOW = timedelta(hours=24)
"""How long a repeated idempotency key returns the first job instead of making another."""


# ---------------------------------------------------------------------------
# The state machine (the table lives with the vocabulary)
# ---------------------------------------------------------------------------


# Seeded once from the OS; ids need uniqueness, not secrecy. (Calling os.urandom per id made
# every id a GIL hand-off under load: each one waited behind the store's writer thread.)
_ID_RANDOM = random.Random(secrets.randbits(128))  # noqa: S311 - uniqueness, not secrecy


def time_ordered_id() -> uuid.UUID:
    """A UUID version 7: 48 bits of Unix milliseconds, then randomness (RFC 9562).

    Ids that sort by creation time keep recent rows together, so the store's
    updates of live jobs touch only the newest row groups instead of scanning
    every job ever made.
    """
    millis = time_module.time_ns() // 1_000_000
    rand = _ID_RANDOM.getrandbits(74)
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= (rand >> 62) << 64  # 12 bits rand_a
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # 62 bits rand_b
    return uuid.UUID(int=value)


def id_instant(value: uuid.UUID) -> datetime | None:
    """When a time-ordered (version 7) id was made; None for other ids."""
    if value.version != 7:
        return None
    return datetime.fromtimestamp((value.int >> 80) / 1000.0, tz=UTC)


def check_transition(current: JobStatus, target: JobStatus) -> None:
    allowed = TRANSITIONS[current]
    if target not in allowed:
        raise IllegalTransition(current.value, target.value, [s.value for s in allowed])


# ---------------------------------------------------------------------------
# Validation context and reusable field types
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DomainContext:
    """What validation needs from the environment. Pass as `context={"domain": ctx}`."""

    now: datetime | None = None
    optionable: frozenset[str] = BUNDLED_OPTIONABLE
    allow_any_symbol: bool = False
    allow_file_urls: bool = False
    max_retries: int = MAX_RETRIES
    extra: Mapping[str, Any] = field(default_factory=dict)

    def current_time(self) -> datetime:
        return self.now if self.now is not None else utc_now()

    def as_validation_context(self) -> dict[str, Any]:
        return {"domain": self}


_DEFAULT_CONTEXT = DomainContext()
_M = TypeVar("_M", bound=BaseModel)


class HasContext(Protocol):
    """What a field check reads from pydantic's ValidationInfo (or RequestSubmission.quick)."""

    @property
    def context(self) -> Any: ...


def domain_context(info: HasContext | None) -> DomainContext:
    ctx = info.context if info is not None else None
    if isinstance(ctx, Mapping):
        found = ctx.get("domain")
        if isinstance(found, DomainContext):
            return found
    return _DEFAULT_CONTEXT


def _to_utc(value: datetime) -> datetime:
    return as_utc(value)


UtcDatetime = Annotated[datetime, AfterValidator(_to_utc)]
Score = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
PositiveFloat = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
NonNegativeInt = Annotated[int, Field(ge=0)]


def _check_not_future(value: datetime, info: HasContext) -> datetime:
    now = domain_context(info).current_time()
    if value > now:
        raise ValueError(
            f"cannot be in the future (it is {value.isoformat()}, now is {now.isoformat()})"
        )
    return value


PastUtcDatetime = Annotated[datetime, AfterValidator(_to_utc), AfterValidator(_check_not_future)]


def _refuse_number(value: object) -> object:
    """An instant on the wire is RFC 3339 text; a bare number's unit and zone are guesses."""
    if isinstance(value, int | float):
        raise ValueError(
            f"must be an RFC 3339 date-time such as 2026-11-26T15:00:00Z, not a number ({value!r})"
        )
    return value


SubmittedDatetime = Annotated[PastUtcDatetime, BeforeValidator(_refuse_number)]


def _normalize_symbol_input(value: object) -> object:
    return normalize_symbol(value) if isinstance(value, str) else value


def _check_symbol(value: str, info: HasContext) -> str:
    if not 1 <= len(value) <= 10:
        raise ValueError(f"must be 1 to 10 characters (got {len(value)})")
    if not SYMBOL_PATTERN.match(value):
        raise ValueError(
            f"must be a ticker: a letter, then letters, digits, '.', '-' or '/' (got {value!r})"
        )
    ctx = domain_context(info)
    if not ctx.allow_any_symbol and value not in ctx.optionable:
        raise ValueError(
            f"{value!r} is not a known optionable symbol; add it to [symbols] extra in the "
            "config if it has listed options"
        )
    return value


MarketSymbol = Annotated[
    str, BeforeValidator(_normalize_symbol_input), AfterValidator(_check_symbol)
]


def _check_source_url(value: str, info: HasContext) -> str:
    text = value.strip()
    if len(text) > MAX_URL_LENGTH:
        raise ValueError(f"is longer than {MAX_URL_LENGTH} characters")
    head = _http_authority(text)
    if head is None:  # file:// and anything unusual: the whole check
        return _check_url_text(text, domain_context(info).allow_file_urls)
    # An http(s) URL's verdict on scheme, host and port depends on its scheme://host:port
    # alone, and a desk's requests share a handful of those: checked once each.
    problem = _authority_problem(head)
    if problem:
        raise ValueError(problem)
    if _WHITESPACE.search(text):
        raise ValueError("must not contain whitespace")
    return text


_HTTP_AUTHORITY = re.compile(r"https?://[^/?#]*", re.IGNORECASE)


def _http_authority(text: str) -> str | None:
    """`scheme://host:port` of an http(s) URL (up to its path, query or fragment)."""
    found = _HTTP_AUTHORITY.match(text)
    return found.group() if found else None


@functools.lru_cache(maxsize=1024)
def _authority_problem(head: str) -> str:
    try:
        _check_url_text(head, allow_file_urls=False, whitespace=False)
    except ValueError as exc:
        return str(exc)
    return ""


def _check_url_text(text: str, allow_file_urls: bool, *, whitespace: bool = True) -> str:
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme == "file":
        if not allow_file_urls:
            raise ValueError(
                "file:// URLs are only accepted from the drop folder and `gexdaemon ingest`; "
                "use an http:// or https:// URL"
            )
        if not parts.path.startswith("/"):
            raise ValueError("a file:// URL must hold an absolute path")
        return text
    if scheme not in ("http", "https"):
        raise ValueError(f"must be an http:// or https:// URL (got scheme {parts.scheme!r})")
    if not parts.hostname:
        raise ValueError("must name a host (for example https://cdn.cboe.com/...)")
    if port == 0:
        raise ValueError("port 0 is not a valid port")
    if whitespace and _WHITESPACE.search(text):
        raise ValueError("must not contain whitespace")
    return text


_WHITESPACE = re.compile(r"\s")
SourceUrl = Annotated[str, AfterValidator(_check_source_url)]


def base_url_of(url: str) -> str:
    """The data source a URL belongs to: scheme://host[:port], lower-cased, default port dropped."""
    # Every URL of one source shares the text before its path: cache on that prefix.
    head = url.split("/", 3)
    return _base_url("/".join(head[:3]))


@functools.lru_cache(maxsize=4096)
def _base_url(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return "file://localhost"
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = host if port in (None, default) else f"{host}:{port}"
    return f"{scheme}://{netloc}"


def _check_metadata(value: dict[str, JsonValue]) -> dict[str, JsonValue]:
    if len(value) > MAX_METADATA_KEYS:
        raise ValueError(f"has {len(value)} keys; at most {MAX_METADATA_KEYS} are allowed")
    for key in value:
        if not key or len(key) > MAX_METADATA_KEY:
            raise ValueError(f"key {key!r} must be 1 to {MAX_METADATA_KEY} characters")
    size = len(msgspec.json.encode(value))
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"is {size} bytes as JSON; at most {MAX_METADATA_BYTES} are allowed")
    for key, item in value.items():
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"key {key!r} holds a non-finite number")
    return value


Metadata = Annotated[dict[str, JsonValue], AfterValidator(_check_metadata)]

_IDEMPOTENCY_KEY = re.compile(r"[!-~]+", re.ASCII)  # visible ASCII: no spaces or controls


def check_idempotency_key(value: str) -> str:
    if not 1 <= len(value) <= MAX_IDEMPOTENCY_KEY:
        raise ValueError(f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters (got {len(value)})")
    if not _IDEMPOTENCY_KEY.fullmatch(value):
        raise ValueError(
            "must be visible ASCII (letters, digits, punctuation) with no spaces, for example "
            "a UUID or 'desk-7:SPX:2026-12-04T14:30'"
        )
    return value


IdempotencyKey = Annotated[str, AfterValidator(check_idempotency_key)]


def _check_condition_syntax(value: str) -> str:
    """A rule condition must pass the rule language's whitelist compiler (gexdaemon.core.rules).

    Compiling here means a rule can never be saved, loaded or seeded with a
    condition the evaluator would refuse; compiled results are cached by text.
    """
    # The rule compiler is loaded with the first rule, not with every import of the models
    # (`gexdaemon analyze` builds none).
    from gexdaemon.core.rules import RuleConditionError, compile_condition  # noqa: PLC0415

    text = value.strip()
    try:
        compile_condition(text)
    except RuleConditionError as exc:
        raise ValueError(exc.explanation) from None
    return text


ConditionText = Annotated[str, AfterValidator(_check_condition_syntax)]


_set_attr = object.__setattr__


def assembled(cls: type[_M], values: dict[str, Any]) -> _M:
    """`cls.model_construct(**values)` with every field given, at a third of its cost.

    Intake builds four models per request; pydantic's model_construct walks every
    field and its aliases each time. With all fields given (and no extra, private or
    post-init state in these models) it comes down to the four slots set here;
    tests/core/test_models.py checks the result equals model_construct's for each
    model that uses it, so a pydantic that changes this fails a test, not a desk.
    """
    model = cls.__new__(cls)
    _set_attr(model, "__dict__", values)
    _set_attr(model, "__pydantic_fields_set__", set(values))
    _set_attr(model, "__pydantic_extra__", None)
    _set_attr(model, "__pydantic_private__", None)
    return model


class DomainModel(BaseModel):
    """Base: immutable, unknown fields refused, NaN/inf refused, assignments validated."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        allow_inf_nan=False,
        str_strip_whitespace=True,
        ser_json_timedelta="float",
    )

    @classmethod
    def parse(cls, data: Any, *, context: DomainContext | None = None, what: str = "") -> Self:
        """Validate `data`, turning pydantic's error into `InvalidInput` with field paths."""
        try:
            return cls.model_validate(
                data, context=(context or _DEFAULT_CONTEXT).as_validation_context()
            )
        except ValidationError as exc:
            raise InvalidInput.from_problems(what or cls.__name__, problems_of(exc)) from None

    def evolve(self, *, context: DomainContext | None = None, **changes: Any) -> Self:
        """A validated copy with `changes` applied (model_copy would skip validation)."""
        data = dict(self.__dict__)  # the fields only: computed fields are properties
        data.update(changes)
        return type(self).parse(data, context=context)


def problems_of(exc: ValidationError, prefix: str = "") -> list[Problem]:
    """pydantic errors as `Problem`s with dotted field paths (`requests.3.market_symbol`)."""
    out: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in err.get("loc", ()))
        path = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        message = str(err.get("msg", "invalid"))
        message = message.removeprefix("Value error, ")
        if err.get("type") == "extra_forbidden":
            message = "unknown field"
        raw = err.get("input")
        value = raw if isinstance(raw, str | int | float | bool) else None
        out.append(
            Problem(
                path=path or "(root)", message=message, rule=str(err.get("type", "")), value=value
            )
        )
    return out


# ---------------------------------------------------------------------------
# Entities
# ---------------------------------------------------------------------------


def job_order_problem(job: ProcessingJob) -> str | None:
    """The first rule tying a job's times and status together that `job` breaks, or None."""
    if job.queued_at < job.requested_at:
        return "queued_at cannot be before the request's requested_at"
    if job.started_at is not None and job.started_at < job.requested_at:
        return "started_at must be at or after the request's requested_at"
    if job.completed_at is not None:
        if job.started_at is not None and job.completed_at < job.started_at:
            return "completed_at must be at or after started_at"
        if job.completed_at < job.requested_at:
            return "completed_at must be at or after the request's requested_at"
    if job.status is JobStatus.PROCESSING and job.started_at is None:
        return "a PROCESSING job must have started_at"
    if job.status is JobStatus.COMPLETED and (job.started_at is None or job.completed_at is None):
        return "a COMPLETED job must have started_at and completed_at"
    if job.status is JobStatus.QUEUED and job.completed_at is not None:
        return "a QUEUED job cannot have completed_at"
    if job.status is JobStatus.FAILED and not job.error_message:
        return "a FAILED job must say why (error_message)"
    if job.deadline is not None and job.deadline < job.requested_at:
        return "deadline cannot be before requested_at"
    return None


def _aware_or_none(value: object) -> bool:
    return value is None or (isinstance(value, datetime) and value.utcoffset() is not None)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


_FAST_CHANGES: dict[str, Callable[[object], bool]] = {
    "lease_owner": lambda v: v is None or isinstance(v, str),
    "lease_expires_at": _aware_or_none,
    "next_attempt_at": _aware_or_none,
    "dispatch_phase": lambda v: v is None or (isinstance(v, str) and len(v) <= 40),
    "at_risk": lambda v: isinstance(v, bool),
    "records_processed": _count,
    "data_size_bytes": _count,
    "sla_status": lambda v: isinstance(v, SlaStatus),
}


def _fast_change_ok(name: str, value: object) -> bool:
    check = _FAST_CHANGES.get(name)
    return check is not None and bool(check(value))


class RequestSubmission(DomainModel):
    """What a client sends to ask for an ingest (the server assigns id, score and level)."""

    source_url: SourceUrl
    data_type: GEXDataType
    market_symbol: MarketSymbol
    requested_at: SubmittedDatetime | None = None
    metadata: Metadata = Field(default_factory=dict)
    # A repeat within IDEMPOTENCY_WINDOW returns the first job (retries are safe).
    idempotency_key: IdempotencyKey | None = None

    def fingerprint(self) -> str:
        """What an idempotency key vouches for: the request's own fields, not the key."""
        body = msgspec.json.encode(
            [
                self.source_url,
                self.data_type.value,
                self.market_symbol,
                None if self.requested_at is None else self.requested_at.isoformat(),
                self.metadata,
            ],
            order="sorted",
        )
        return hashlib.sha256(body).hexdigest()[:32]

    @classmethod
    def quick(cls, entry: object, context: DomainContext) -> RequestSubmission | None:
        """The submission if `entry` (decoded JSON) is plainly valid; None to mean "ask `parse`".

        Intake's hot path: the same field checks as the model (the very functions its
        annotated types run), without pydantic's machinery, for the common shape of a
        request. Anything out of the ordinary (whitespace to strip, a number for a time,
        a missing field, any problem at all) returns None, and the full validation
        decides and words the error, so this can only ever accept what `parse` accepts,
        with the same values (tests/core/test_quick_submission.py fuzzes both).
        """
        if type(entry) is not dict or not entry.keys() <= _SUBMISSION_FIELDS:
            return None
        url = entry.get("source_url")
        kind = entry.get("data_type")
        symbol = entry.get("market_symbol")
        at = entry.get("requested_at")
        metadata = entry.get("metadata", _NO_METADATA)
        key = entry.get("idempotency_key")
        if type(url) is not str or type(kind) is not str or type(symbol) is not str:
            return None
        if key is not None and (type(key) is not str or key != key.strip()):
            return None
        if type(metadata) is not dict or (at is not None and type(at) is not str):
            return None
        if url != url.strip() or symbol != symbol.strip() or not _plain_strings(metadata):
            return None
        data_type = _DATA_TYPES.get(kind)
        if data_type is None:
            return None
        info = _QuickInfo(context)
        try:
            url = _check_source_url(url, info)
            symbol = _check_symbol(normalize_symbol(symbol), info)
            requested_at = None
            if at is not None:
                if not _RFC3339.fullmatch(at):
                    return None
                requested_at = _check_not_future(as_utc(datetime.fromisoformat(at)), info)
            metadata = _check_metadata(metadata) if metadata else {}
            if key is not None:
                key = check_idempotency_key(key)
        except ValueError:
            return None
        return assembled(
            cls,
            {
                "source_url": url,
                "data_type": data_type,
                "market_symbol": symbol,
                "requested_at": requested_at,
                "metadata": metadata,
                "idempotency_key": key,
            },
        )


_SUBMISSION_FIELDS = frozenset(RequestSubmission.model_fields)
_NO_METADATA: dict[str, Any] = {}
_DATA_TYPES = {t.value: t for t in GEXDataType}
# RFC 3339 with an offset: the one time format both validators read alike.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})", re.ASCII
)


class _QuickInfo:
    """What the field checks read from pydantic's ValidationInfo: the context only."""

    __slots__ = ("context",)

    def __init__(self, context: DomainContext) -> None:
        self.context = {"domain": context}


def _plain_strings(value: object) -> bool:
    """No string in a JSON value has whitespace the model would strip."""
    if type(value) is str:
        return value == value.strip()
    if type(value) is dict:
        for k, v in value.items():
            if k != k.strip() or (type(v) is not int and not _plain_strings(v)):
                return False
        return True
    if type(value) is list:
        for v in value:
            if not _plain_strings(v):
                return False
    return True


class PriorityRequest(DomainModel):
    """A request to ingest GEX data, scored and levelled by the priority rules."""

    request_id: uuid.UUID = Field(default_factory=time_ordered_id)
    source_url: SourceUrl
    data_type: GEXDataType
    market_symbol: MarketSymbol
    requested_at: PastUtcDatetime
    priority_score: Score
    priority_level: PriorityLevel
    estimated_processing_time: timedelta = timedelta(0)
    metadata: Metadata = Field(default_factory=dict)
    # Beyond the seed: the source it belongs to, its SLA deadline (None for LOW), where it
    # came from and why it got its score.
    source_id: uuid.UUID | None = None
    deadline: UtcDatetime | None = None
    origin: Origin = Origin.API
    # Built by the scorer (gexdaemon.core.scoring), not by users: JSON by construction.
    explanation: dict[str, Any] = Field(default_factory=dict)

    @field_validator("estimated_processing_time")
    @classmethod
    def _estimate_not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("cannot be negative")
        return value

    @model_validator(mode="after")
    def _deadline_after_request(self) -> Self:
        if self.deadline is not None and self.deadline < self.requested_at:
            raise ValueError("deadline cannot be before requested_at")
        return self


class JobEvent(DomainModel):
    """One state change in a job's history (append-only)."""

    job_id: uuid.UUID
    seq: int = Field(ge=1)
    occurred_at: UtcDatetime
    from_status: JobStatus | None
    to_status: JobStatus
    reason: str = Field(default="", max_length=MAX_ERROR_MESSAGE)


class ProcessingJob(DomainModel):
    """An attempt (with retries) to process one request; follows `TRANSITIONS`."""

    job_id: uuid.UUID = Field(default_factory=time_ordered_id)
    request_id: uuid.UUID
    status: JobStatus = JobStatus.QUEUED
    priority_level: PriorityLevel
    requested_at: UtcDatetime
    queued_at: UtcDatetime
    started_at: UtcDatetime | None = None
    completed_at: UtcDatetime | None = None
    records_processed: NonNegativeInt = 0
    data_size_bytes: NonNegativeInt = 0
    error_message: str | None = Field(default=None, max_length=MAX_ERROR_MESSAGE)
    retry_count: int = Field(default=0, ge=0, le=MAX_RETRIES)
    # Beyond the seed: SLA, lease (at-least-once delivery), risk flag, optimistic version.
    deadline: UtcDatetime | None = None
    sla_status: SlaStatus = SlaStatus.PENDING
    at_risk: bool = False
    lease_owner: str | None = None
    lease_expires_at: UtcDatetime | None = None
    dispatch_phase: str | None = Field(default=None, max_length=40)
    next_attempt_at: UtcDatetime | None = None
    version: int = Field(default=1, ge=1)
    updated_at: UtcDatetime | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def processing_duration(self) -> timedelta | None:
        """completed_at - started_at, derived, so it can never be stored inconsistent."""
        if self.started_at is None or self.completed_at is None:
            return None
        return self.completed_at - self.started_at

    @field_validator("retry_count")
    @classmethod
    def _retry_within_configured_limit(cls, value: int, info: ValidationInfo) -> int:
        limit = domain_context(info).max_retries
        if value > limit:
            raise ValueError(f"cannot exceed the retry limit ({limit})")
        return value

    @model_validator(mode="after")
    def _times_in_order(self) -> Self:
        problem = job_order_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self

    # -- transitions ------------------------------------------------------------------

    @classmethod
    def for_request(
        cls,
        request: PriorityRequest,
        at: datetime,
        *,
        at_risk: bool = False,
        job_id: uuid.UUID | None = None,
        context: DomainContext | None = None,
    ) -> tuple[ProcessingJob, JobEvent]:
        """A new QUEUED job for `request` and the first event of its history."""
        at = max(as_utc(at), request.requested_at)
        job = cls.parse(
            {
                "job_id": job_id or time_ordered_id(),
                "request_id": request.request_id,
                "priority_level": request.priority_level,
                "requested_at": request.requested_at,
                "queued_at": at,
                "deadline": request.deadline,
                "sla_status": SlaStatus.PENDING if request.deadline is not None else SlaStatus.NONE,
                "at_risk": at_risk,
                "updated_at": at,
            },
            context=context,
        )
        event = JobEvent(
            job_id=job.job_id, seq=1, occurred_at=at, from_status=None, to_status=JobStatus.QUEUED
        )
        return job, event

    @classmethod
    def queued(
        cls, request: PriorityRequest, at: datetime, *, job_id: uuid.UUID | None = None
    ) -> tuple[ProcessingJob, JobEvent]:
        """`for_request` for intake's hot path: built, not validated again.

        Every field comes from `request` (validated, or built by intake from validated
        parts), the clock or a constant, so the model's checks could not fail; the
        database's CHECK constraints back them up. Equal to `for_request`'s answer
        (tests/core/test_models.py holds them side by side).
        """
        at = max(as_utc(at), request.requested_at)
        job = assembled(
            cls,
            {
                "job_id": job_id or time_ordered_id(),
                "request_id": request.request_id,
                "status": JobStatus.QUEUED,
                "priority_level": request.priority_level,
                "requested_at": request.requested_at,
                "queued_at": at,
                "started_at": None,
                "completed_at": None,
                "records_processed": 0,
                "data_size_bytes": 0,
                "error_message": None,
                "retry_count": 0,
                "deadline": request.deadline,
                "sla_status": SlaStatus.PENDING if request.deadline is not None else SlaStatus.NONE,
                "at_risk": False,
                "lease_owner": None,
                "lease_expires_at": None,
                "dispatch_phase": None,
                "next_attempt_at": None,
                "version": 1,
                "updated_at": at,
            },
        )
        event = assembled(
            JobEvent,
            {
                "job_id": job.job_id,
                "seq": 1,
                "occurred_at": at,
                "from_status": None,
                "to_status": JobStatus.QUEUED,
                "reason": "",
            },
        )
        return job, event

    def transition(
        self,
        target: JobStatus,
        at: datetime,
        *,
        reason: str = "",
        context: DomainContext | None = None,
        new_cycle: bool = False,
        **changes: Any,
    ) -> tuple[ProcessingJob, JobEvent]:
        """Move to `target` at instant `at`; returns the new job and its history event.

        Raises `IllegalTransition` naming both states for anything `TRANSITIONS`
        does not allow, and `RetryLimitReached` for a retry past the limit. A
        trader's retry of a job that used up its automatic retries starts a new
        cycle (`new_cycle`): its retry count starts again from zero.
        """
        check_transition(self.status, target)
        at = as_utc(at)
        update: dict[str, Any] = {"status": target, "version": self.version + 1, "updated_at": at}
        if target is JobStatus.PROCESSING:
            update.update(started_at=at, completed_at=None)
        elif target is JobStatus.COMPLETED:
            update.update(
                completed_at=at, lease_owner=None, lease_expires_at=None, error_message=None
            )
        elif target is JobStatus.FAILED:
            update.update(
                completed_at=at,
                lease_owner=None,
                lease_expires_at=None,
                error_message=reason or "failed",
            )
        elif target is JobStatus.CANCELLED:
            update.update(completed_at=at, lease_owner=None, lease_expires_at=None)
        elif target is JobStatus.QUEUED:  # a retry
            limit = (context or _DEFAULT_CONTEXT).max_retries
            if self.retry_count >= limit and not new_cycle:
                raise RetryLimitReached(self.retry_count, limit)
            update.update(
                retry_count=0 if new_cycle else self.retry_count + 1,
                queued_at=max(at, self.requested_at),
                started_at=None,
                completed_at=None,
                at_risk=False,
            )
        if all(_fast_change_ok(name, value) for name, value in changes.items()):
            # The values above are correct by construction and the changes are simple typed
            # facts, so only the rules that tie fields together are checked again: a full
            # re-validation of the model cost more than the rest of a transition.
            for name in ("lease_expires_at", "next_attempt_at"):
                if changes.get(name) is not None:
                    changes[name] = as_utc(changes[name])
            if update.get("error_message"):
                update["error_message"] = update["error_message"][:MAX_ERROR_MESSAGE]
            update.update(changes)
            job = self.model_copy(update=update)
            problem = job_order_problem(job)
            if problem is not None:
                raise InvalidInput.from_problems("the job", [Problem("(job)", problem)])
        else:
            update.update(changes)
            job = self.evolve(context=context, **update)
        # Every value below was just validated as part of `job`: construct without re-checking.
        event = JobEvent.model_construct(
            job_id=self.job_id,
            seq=job.version,
            occurred_at=at,
            from_status=self.status,
            to_status=target,
            reason=reason[:MAX_ERROR_MESSAGE],
        )
        return job, event


class DataSource(DomainModel):
    """A base URL the daemon fetches from, with its track record."""

    EMA_ALPHA: ClassVar[float] = 0.2

    source_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    base_url: str
    name: str = Field(min_length=1, max_length=120)
    total_requests: NonNegativeInt = 0
    successful_requests: NonNegativeInt = 0
    last_successful_fetch: UtcDatetime | None = None
    average_response_time: timedelta | None = None
    # Beyond the seed: the circuit breaker and a trader's manual switch. `is_active`
    # (the seed's field) is derived from them, so the two can never disagree.
    consecutive_failures: NonNegativeInt = 0
    circuit_state: CircuitState = CircuitState.CLOSED
    circuit_opened_at: UtcDatetime | None = None
    manually_disabled: bool = False
    created_at: UtcDatetime
    updated_at: UtcDatetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def is_active(self) -> bool:
        """False while a trader disabled the source or its circuit breaker is open."""
        return not self.manually_disabled and self.circuit_state is not CircuitState.OPEN

    @computed_field  # type: ignore[prop-decorator]
    @property
    def reliability_score(self) -> float:
        """successful / total. With no requests yet a source has no record against it: 1.0.

        (A new source is trusted until it fails, so it is not pushed down the queue
        before it has been tried; its first failures then count in full.)
        """
        if self.total_requests == 0:
            return 1.0
        return self.successful_requests / self.total_requests

    @field_validator("base_url")
    @classmethod
    def _valid_base_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme == "file":
            if value.strip() != "file://localhost":
                raise ValueError("the only file source is file://localhost")
            return "file://localhost"
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(
                "must be a base URL (scheme://host[:port]) without path, query or fragment"
            )
        return base_url_of(value.strip())

    @field_validator("average_response_time")
    @classmethod
    def _response_time_not_negative(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(0):
            raise ValueError("cannot be negative")
        return value

    @model_validator(mode="after")
    def _counts_consistent(self) -> Self:
        if self.successful_requests > self.total_requests:
            raise ValueError("successful_requests cannot exceed total_requests")
        if self.updated_at < self.created_at:
            raise ValueError("updated_at must be at or after created_at")
        if self.circuit_state is not CircuitState.CLOSED and self.circuit_opened_at is None:
            raise ValueError(
                "an open or half-open circuit must say when it opened (circuit_opened_at)"
            )
        return self

    def record_fetch(
        self, *, success: bool, response_time: timedelta, at: datetime, alpha: float | None = None
    ) -> DataSource:
        """Count one fetch; response time enters an exponential moving average.

        The first sample sets the average; after that avg = a*sample + (1-a)*avg.
        """
        a = self.EMA_ALPHA if alpha is None else alpha
        if not 0.0 < a <= 1.0:
            raise ValueError("alpha must be in (0, 1]")
        prev = self.average_response_time
        avg = response_time if prev is None else a * response_time + (1.0 - a) * prev
        return self.evolve(
            total_requests=self.total_requests + 1,
            successful_requests=self.successful_requests + (1 if success else 0),
            last_successful_fetch=at if success else self.last_successful_fetch,
            average_response_time=avg,
            updated_at=max(as_utc(at), self.created_at),
        )


class PriorityRule(DomainModel):
    """A user rule: when `condition` holds for a request, it scores `priority_score`."""

    rule_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    name: str = Field(min_length=1, max_length=80)
    description: str = Field(default="", max_length=500)
    condition: ConditionText
    priority_score: Score
    is_active: bool = True
    created_at: UtcDatetime
    updated_at: UtcDatetime
    version: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _updated_after_created(self) -> Self:
        if self.updated_at < self.created_at:
            raise ValueError("updated_at must be at or after created_at")
        return self


class GEXStrike(DomainModel):
    """One strike of a snapshot: the seed's fields plus call, put and net GEX."""

    strike_price: PositiveFloat
    call_open_interest: NonNegativeInt = 0
    put_open_interest: NonNegativeInt = 0
    call_volume: NonNegativeInt = 0
    put_volume: NonNegativeInt = 0
    call_bid: NonNegativeFloat = 0.0
    call_ask: NonNegativeFloat = 0.0
    put_bid: NonNegativeFloat = 0.0
    put_ask: NonNegativeFloat = 0.0
    gamma: FiniteFloat = 0.0
    delta: FiniteFloat = 0.0
    theta: FiniteFloat = 0.0
    vega: FiniteFloat = 0.0
    call_gex: FiniteFloat | None = None
    put_gex: FiniteFloat | None = None
    net_gex: FiniteFloat | None = None

    @model_validator(mode="after")
    def _net_is_call_plus_put(self) -> Self:
        if self.call_gex is not None and self.put_gex is not None and self.net_gex is not None:
            expected = self.call_gex + self.put_gex
            if not math.isclose(self.net_gex, expected, rel_tol=1e-9, abs_tol=1e-6):
                raise ValueError("net_gex must equal call_gex + put_gex")
        return self


GEX_STRIKE_FIELDS: tuple[str, ...] = tuple(GEXStrike.model_fields)
"""The strike row's fields in order: strike-level files, gex_strikes and the wire all use it."""
GEX_STRIKE_COUNTS = frozenset(
    {"call_open_interest", "put_open_interest", "call_volume", "put_volume"}
)


class GEXSnapshot(DomainModel):
    """A processed GEX snapshot: levels, totals and per-strike exposure, with units."""

    snapshot_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    job_id: uuid.UUID
    market_symbol: MarketSymbol
    snapshot_date: date
    snapshot_time: time
    strikes: list[GEXStrike] = Field(min_length=1)
    total_open_interest: NonNegativeInt
    total_volume: NonNegativeInt
    processed_at: UtcDatetime
    data_quality_score: Score
    spot_price: PositiveFloat
    gex_unit: GexUnit = GexUnit.USD_PER_1PCT
    sign_model: SignModel = SignModel.DEALER_LONG_CALLS_SHORT_PUTS
    gamma_source: GammaSource = GammaSource.MODEL
    expiry_filter: ExpiryFilter = ExpiryFilter.ALL
    total_gex: FiniteFloat
    zero_gamma: PositiveFloat | None = None
    zero_gamma_crossings: list[PositiveFloat] = Field(default_factory=list)
    call_wall: PositiveFloat | None = None
    put_wall: PositiveFloat | None = None
    abs_gamma_strike: PositiveFloat | None = None

    @field_validator("strikes", mode="before")
    @classmethod
    def _strikes_present(cls, value: object) -> object:
        if isinstance(value, list) and not value:
            raise ValueError("cannot be empty: a snapshot needs at least one strike")
        return value

    @property
    def snapshot_at(self) -> datetime:
        """The snapshot instant in UTC (date and time are New York market-local)."""
        return datetime.combine(self.snapshot_date, self.snapshot_time, tzinfo=NEW_YORK).astimezone(
            UTC
        )

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Self:
        now = domain_context(info).current_time()
        today_ny = now.astimezone(NEW_YORK).date()
        if self.snapshot_date > today_ny:
            raise ValueError(
                f"snapshot_date {self.snapshot_date} cannot be in the future (today is {today_ny} in New York)"
            )
        if self.snapshot_at > now:
            raise ValueError("snapshot_date and snapshot_time cannot be in the future")
        seen: set[float] = set()
        oi = vol = 0
        for s in self.strikes:
            if s.strike_price in seen:
                raise ValueError(f"strike {s.strike_price} appears twice")
            seen.add(s.strike_price)
            oi += s.call_open_interest + s.put_open_interest
            vol += s.call_volume + s.put_volume
        if oi != self.total_open_interest:
            raise ValueError(
                f"total_open_interest ({self.total_open_interest}) must equal the strikes' sum ({oi})"
            )
        if vol != self.total_volume:
            raise ValueError(
                f"total_volume ({self.total_volume}) must equal the strikes' sum ({vol})"
            )
        if self.zero_gamma is not None and self.zero_gamma not in self.zero_gamma_crossings:
            raise ValueError("zero_gamma must be one of zero_gamma_crossings")
        return self

    @staticmethod
    def market_local(instant: datetime) -> tuple[date, time]:
        """Split a UTC instant into the New York (date, time) pair a snapshot stores."""
        local = as_utc(instant).astimezone(NEW_YORK)
        return local.date(), local.time().replace(tzinfo=None)
