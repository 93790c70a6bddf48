"""Intake's quick check agrees with the full model: one source of truth for a submission.

`RequestSubmission.quick` runs the model's own field checks without pydantic on the
hot path and answers None for anything it is not sure of, so the full validation
decides. The property that keeps that honest: whatever it accepts, the model accepts,
with the same values. Hypothesis throws near-valid and odd entries at both.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gexdaemon.core.errors import InvalidInput
from gexdaemon.core.models import (
    DomainContext,
    RequestSubmission,
    _check_source_url,
    _QuickInfo,
)

NOW = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
CONTEXTS = {
    "api": DomainContext(now=NOW),
    "drop": DomainContext(now=NOW, allow_file_urls=True),
    "any symbol": DomainContext(now=NOW, allow_any_symbol=True),
}

text = st.text(
    alphabet=st.sampled_from("aZ09 ._-/:%?=&\t\n\u00e9\u00a0#@[]"), min_size=0, max_size=12
)
urls = st.one_of(
    st.sampled_from(
        [
            "http://127.0.0.1:8765/feeds/_SPX.json",
            "https://cdn.cboe.com/api/global/delayed_quotes/options/_SPX.json",
            "http://feeds.example/x.csv",
            "file:///data/drop/SPX.csv",
            "file://relative/SPX.csv",
            "ftp://example.com/x",
            "http://",
            "http://host:0/x",
            "http://host:99999/x",
            "http://[::1]:8080/x",
            "http://ho st/x",
            " http://127.0.0.1/x",
            "http://127.0.0.1/x ",
            "",
            "x" * 3000,
        ]
    ),
    st.builds(lambda a, b: f"http://{a}/{b}", text, text),
    text,
    st.integers(),
    st.none(),
)
data_types = st.one_of(
    st.sampled_from(["snapshot", "real_time", "historical", "SNAPSHOT", " snapshot", "live"]),
    st.integers(),
    st.none(),
)
symbols = st.one_of(
    st.sampled_from(["SPX", "spx", "_SPX", "^SPX", "$spy", "QQQ", "BRK.B", "ZZZZ", "", " SPX"]),
    st.sampled_from(["SPXW", "A" * 11, "1ABC", "SP X", "NDX/"]),
    text,
    st.integers(),
)


@st.composite
def instants(draw: st.DrawFn) -> Any:
    delta = draw(st.integers(min_value=-(10**7), max_value=10**6))
    moment = NOW + timedelta(seconds=delta)
    offset = draw(st.sampled_from([0, -300, 330, 60, None]))
    if offset is not None:
        moment = moment.astimezone(timezone(timedelta(minutes=offset)))
    shape = draw(st.sampled_from(["iso", "Z", "naive", "space", "date", "epoch", "micros"]))
    if shape == "epoch":
        return int(moment.timestamp())
    if shape == "date":
        return moment.date().isoformat()
    if shape == "naive":
        return moment.replace(tzinfo=None).isoformat()
    if shape == "space":
        return moment.isoformat(sep=" ")
    if shape == "micros":
        return moment.isoformat(timespec="microseconds")
    iso = moment.isoformat(timespec="seconds")
    return iso.replace("+00:00", "Z") if shape == "Z" else iso


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=8,
)
metadata = st.one_of(
    st.dictionaries(text, json_values, max_size=4),
    st.dictionaries(st.sampled_from(["", "k" * 65, " k"]), json_scalars, max_size=2),
    st.just({f"k{i}": i for i in range(70)}),
    st.just({"blob": "x" * 20_000}),
    st.lists(json_scalars, max_size=2),
    text,
)


VALID = {
    "source_url": st.sampled_from(
        ["http://127.0.0.1:8765/feeds/_SPX.json", "https://cdn.cboe.com/api/_SPX.json"]
    ),
    "data_type": st.sampled_from(["snapshot", "real_time", "historical"]),
    "market_symbol": st.sampled_from(["SPX", "spx", "_SPX", "QQQ", "BRK.B"]),
    "requested_at": st.builds(
        lambda s: (NOW - timedelta(seconds=s)).isoformat().replace("+00:00", "Z"),
        st.integers(1, 10**6),
    ),
    "metadata": st.dictionaries(
        st.sampled_from(["desk", "open_interest", "n"]),
        st.one_of(st.integers(0, 10**6), st.sampled_from(["vol", "flow"]), st.booleans()),
        max_size=3,
    ),
}
ODD = {
    "source_url": urls,
    "data_type": data_types,
    "market_symbol": symbols,
    "requested_at": st.one_of(
        instants(),
        st.none(),
        text,
        st.sampled_from(  # ISO 8601 forms beyond RFC 3339 that Python's fromisoformat reads
            [
                "2026-W49-3T10:00:00Z",
                "20261202T100000Z",
                "2026-336T10:00:00Z",
                "2026-12-02T10:00Z",
                "2026-12-02T10Z",
                "2026-12-02T10:00:00,5Z",
                "2026-12-02T24:00:00Z",
            ]
        ),
        st.builds(
            lambda d, f: (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.") + "1" * f + d,
            st.sampled_from(["Z", "+00:00", "-05:00", "+05:30", "z", "+0000", ""]),
            st.integers(1, 9),
        ),
    ),
    "metadata": st.one_of(metadata, st.dictionaries(text, json_values, max_size=4)),
}


@st.composite
def entries(draw: st.DrawFn) -> Any:
    """A valid entry with up to two fields made odd, now and then one missing or extra."""
    entry: dict[str, Any] = {"source_url": draw(VALID["source_url"])}
    entry["data_type"] = draw(VALID["data_type"])
    entry["market_symbol"] = draw(VALID["market_symbol"])
    for optional in ("requested_at", "metadata"):
        if draw(st.booleans()):
            entry[optional] = draw(VALID[optional])
    for name in draw(st.lists(st.sampled_from(sorted(ODD)), max_size=2, unique=True)):
        entry[name] = draw(ODD[name])
    if not draw(st.integers(0, 19)):
        del entry[draw(st.sampled_from(["source_url", "data_type", "market_symbol"]))]
    if not draw(st.integers(0, 19)):
        entry[draw(st.sampled_from(["priority", "source", "Metadata"]))] = 1
    return draw(st.one_of(st.just(entry), st.just(entry), st.just(entry), st.just([entry])))


def full(entry: Any, context: DomainContext) -> RequestSubmission | None:
    try:
        return RequestSubmission.parse(entry, context=context)
    except InvalidInput:
        return None


@settings(
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(entry=entries(), where=st.sampled_from(sorted(CONTEXTS)))
@example(
    entry={
        "source_url": "http://127.0.0.1:8765/feeds/_SPX.json",
        "data_type": "snapshot",
        "market_symbol": "spx",
        "requested_at": "2026-12-04T10:00:00-05:00",
        "metadata": {"desk": "vol", "n": [1, 2.5, None, True]},
    },
    where="api",
)
def test_what_the_quick_check_accepts_the_model_accepts_with_the_same_values(
    entry: Any, where: str
) -> None:
    context = CONTEXTS[where]
    quick = RequestSubmission.quick(entry, context)
    if quick is None:
        return  # the full validation decides (and words any error)
    model = full(entry, context)
    assert model is not None, f"quick accepted what the model refuses: {entry!r}"
    assert quick.model_dump() == model.model_dump()
    for name in RequestSubmission.model_fields:
        assert type(getattr(quick, name)) is type(getattr(model, name)), name


def test_an_ordinary_request_takes_the_quick_path() -> None:
    """Without this the property above would hold for a check that always says None."""
    ordinary = [
        {"source_url": "http://127.0.0.1:8765/feeds/_SPX.json", "data_type": "snapshot",
         "market_symbol": "SPX"},
        {"source_url": "https://cdn.cboe.com/api/x/_SPX.json", "data_type": "real_time",
         "market_symbol": "spx", "metadata": {"open_interest": 1200, "volume": 7}},
        {"source_url": "http://feeds.example/h.csv", "data_type": "historical",
         "market_symbol": "QQQ", "requested_at": "2026-12-04T14:59:00Z"},
    ]  # fmt: skip
    for entry in ordinary:
        quick = RequestSubmission.quick(entry, CONTEXTS["api"])
        assert quick is not None and quick == full(entry, CONTEXTS["api"]), entry


def test_the_quick_check_leaves_every_refusal_to_the_model() -> None:
    refused = [
        {"source_url": "file:///tmp/x.csv", "data_type": "snapshot", "market_symbol": "SPX"},
        {"source_url": "http://a/x", "data_type": "snapshot", "market_symbol": "ZZZZ"},
        {"source_url": "http://a/x", "data_type": "snapshot", "market_symbol": "SPX",
         "requested_at": "2026-12-04T16:00:00Z"},  # in the future
        {"source_url": "http://a/x", "data_type": "snapshot", "market_symbol": "SPX",
         "metadata": {"k": float("nan")}},
        {"source_url": "http://a/x", "data_type": "snapshot", "market_symbol": "SPX", "x": 1},
    ]  # fmt: skip
    for entry in refused:
        assert RequestSubmission.quick(entry, CONTEXTS["api"]) is None, entry
        assert full(entry, CONTEXTS["api"]) is None, entry


# --- The source URL check, cached by scheme://host:port, against the plain one ------


def reference_url_check(value: str, allow_file_urls: bool) -> str:
    """The check as it was before its verdicts were cached per authority (kept verbatim)."""
    text = value.strip()
    if len(text) > 2048:
        raise ValueError("is longer than 2048 characters")
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
    if re.search(r"\s", text):
        raise ValueError("must not contain whitespace")
    return text


def outcome(check: Any, *args: Any) -> str:
    try:
        return "ok " + check(*args)
    except ValueError as exc:
        return "refused " + str(exc)


url_parts = st.sampled_from(
    ["http", "https", "HTTP", "HtTpS", "file", "ftp", "", "http:", "http:/"]
)
hosts = st.sampled_from(
    ["127.0.0.1", "cdn.cboe.com", "", "[::1]", "[::1", "::1]", "h\tst", "ho st", "h\u00e9",
     "\uff0e.example", "user:pw@h", "h:0", "h:80", "h:99999", "h:x", "h:", "H.EXAMPLE"]
)  # fmt: skip
tails = st.sampled_from(
    ["", "/", "/x.json", "/a b", "?q=1", "#f", "/p?q#f", "/\t", "?a=[", "/%20", "/?#//"]
)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scheme=url_parts,
    sep=st.sampled_from(["://", ":/", ":", "//"]),
    host=hosts,
    tail=tails,
    pad=st.sampled_from(["", " ", "\n"]),
    allow_file=st.booleans(),
    free=st.one_of(st.none(), text),
)
def test_the_cached_url_check_gives_the_plain_checks_verdict(
    scheme: str, sep: str, host: str, tail: str, pad: str, allow_file: bool, free: str | None
) -> None:
    url = free if free is not None else f"{pad}{scheme}{sep}{host}{tail}{pad}"
    context = DomainContext(now=NOW, allow_file_urls=allow_file)
    for _ in range(2):  # the second time answers from the cache
        ours = outcome(_check_source_url, url, _QuickInfo(context))
        assert ours == outcome(reference_url_check, url, allow_file), url
