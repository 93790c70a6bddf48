"""Fuzz bench: the fuzzing of tests/reliability/test_fuzz.py, for many more cases, with a tally.

Run: python bench/fuzz.py [--scale 10]   (scale 1 = the CI counts; 10 = ten times as many)

Kinds of input (tests/reliability/fuzzing.py): API bodies as raw bytes to every endpoint
that takes one, HTTP garbage, query strings, rule conditions (saved or refused, then
scored against), drop-folder files (request JSON and TOML, mutated chains, junk), chain
files of every format mutated and parsed in this process (the sample feeds and the shared
CBOE download), and mutated chains uploaded through the daemon. Every case runs to the
end (failures are collected, not raised), so the tally counts every distinct problem.

The rules: the daemon stays up and answers its health check; an answer is a success or a
4xx JSON error with code and message; a dropped file ends processed (receipt) or rejected
(error report); a chain parses or is refused with a ChainError; nothing accepted is lost.
The baseline for the chain cases, measured in the same process: parsing the unmutated
files, so the mutated cases' pace is given as a ratio to it.
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from machine import describe

from tests.daemon.harness import make_daemon, start_feed_server
from tests.reliability import fuzzing

# The CI counts (tests/reliability/test_fuzz.py); --scale multiplies them.
CI_COUNTS = {
    "api bodies": 150,
    "http garbage": 40,
    "query strings": 80,
    "rule conditions": 80,
    "drop files": 25,
    "chains parsed (samples)": 300,
    "chains parsed (shared CBOE CSV)": 40,
    "chains through the daemon": 15,
}


class Tally:
    def __init__(self) -> None:
        self.cases: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()
        self.problems: dict[str, Counter[str]] = {}

    def run(
        self, kind: str, n: int, strategy: st.SearchStrategy[Any], case: Callable[..., list[str]]
    ) -> None:
        started = time.perf_counter()

        @given(strategy)
        @settings(
            max_examples=n,
            deadline=None,
            phases=[Phase.generate],  # every case, no shrinking: this is a census
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def each(args: Any) -> None:
            self.cases[kind] += 1
            for problem in case(*args):
                # Group by the problem's start: the same fault with different ids is one.
                self.problems.setdefault(kind, Counter())[problem[:160]] += 1

        each()
        self.seconds[kind] += time.perf_counter() - started
        found = sum(self.problems.get(kind, Counter()).values())
        print(
            f"  {kind:34} {self.cases[kind]:7d} cases {self.seconds[kind]:7.1f} s "
            f"{self.cases[kind] / max(self.seconds[kind], 1e-9):8.1f}/s  problems {found}",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=10.0, help="times the CI counts")
    args = parser.parse_args()
    counts = {k: max(1, round(v * args.scale)) for k, v in CI_COUNTS.items()}
    print(describe(("duckdb", "pyarrow", "aiohttp", "hypothesis")))
    samples = fuzzing.chain_samples(include_shared=False)
    shared = fuzzing.chain_samples(include_shared=True)[len(samples) :]
    tally = Tally()

    # Baseline: the unmutated files, parsed in this process.
    started = time.perf_counter()
    rounds = 0
    while time.perf_counter() - started < 3.0:
        for name, data in samples:
            assert fuzzing.parse_problems(name, data) == [], name
        rounds += 1
    clean_rate = rounds * len(samples) / (time.perf_counter() - started)
    print(f"baseline: unmutated sample chains parse at {clean_rate:.1f}/s")

    def parse(chain: fuzzing.Mutation) -> list[str]:
        return [
            f"{chain.name} ({chain.how}): {p}"
            for p in fuzzing.parse_problems(chain.name, chain.data)
        ]

    print("in-process chain mutations:")
    tally.run(
        "chains parsed (samples)",
        counts["chains parsed (samples)"],
        st.tuples(fuzzing.mutated_chains(samples)),
        parse,
    )
    if shared:
        tally.run(
            "chains parsed (shared CBOE CSV)",
            counts["chains parsed (shared CBOE CSV)"],
            st.tuples(fuzzing.mutated_chains(shared)),
            parse,
        )
    else:
        print("  shared CBOE CSV: skipped (../shared/data/cboe/spx_quotedata_20220205.csv absent)")

    feeds = start_feed_server()
    d = make_daemon("[api]\nmax_batch = 20\n").start()
    try:
        target = fuzzing.FuzzTarget.prepare(d, feeds.url)
        print("against the daemon:")
        tally.run(
            "api bodies",
            counts["api bodies"],
            st.tuples(
                fuzzing.encoded(
                    fuzzing.request_bodies(feeds.url) | fuzzing.rule_bodies() | fuzzing.json_values
                ),
                st.sampled_from(fuzzing.ENDPOINTS),
                st.sampled_from(fuzzing.CONTENT_TYPES),
            ),
            target.api_case,
        )
        tally.run(
            "http garbage",
            counts["http garbage"],
            st.tuples(st.sampled_from(fuzzing.GARBAGE_HEADS), st.binary(max_size=500)),
            target.garbage_case,
        )
        tally.run(
            "query strings",
            counts["query strings"],
            st.tuples(st.sampled_from(fuzzing.QUERY_PATHS), fuzzing.query_values),
            target.query_case,
        )
        tally.run(
            "rule conditions",
            counts["rule conditions"],
            st.tuples(
                fuzzing.rule_bodies(),
                st.dictionaries(
                    st.sampled_from(["open_interest", "volume", "x"]),
                    fuzzing.json_values,
                    max_size=3,
                ),
            ),
            target.rule_case,
        )
        tally.run(
            "drop files",
            counts["drop files"],
            st.tuples(
                st.lists(
                    st.tuples(
                        st.sampled_from(fuzzing.DROP_PREFIXES),
                        fuzzing.drop_names(),
                        fuzzing.drop_contents(feeds.url, samples),
                    ),
                    min_size=1,
                    max_size=4,
                )
            ),
            target.drop_case,
        )
        tally.run(
            "chains through the daemon",
            counts["chains through the daemon"],
            st.tuples(fuzzing.mutated_chains(samples)),
            target.ingest_case,
        )
        lost = fuzzing.lost_requests(d, target.accepted)
        alive = fuzzing.daemon_problems(d)
    finally:
        code = d.stop()
        feeds.stop()
        shutil.rmtree(d.root, ignore_errors=True)
    total = sum(tally.cases.values())
    found = sum(sum(c.values()) for c in tally.problems.values())
    parsed = tally.cases["chains parsed (samples)"] / max(
        tally.seconds["chains parsed (samples)"], 1e-9
    )
    print(
        f"\n{total} cases; {len(target.accepted.request_ids)} requests accepted, lost {len(lost)}; "
        f"daemon {alive if alive else 'up'} until the end, exit {code} on SIGTERM; "
        f"problems {found}"
    )
    print(
        f"mutated sample chains parse at {parsed:.1f}/s ({parsed / clean_rate:.2f} x the unmutated)"
    )
    for kind, problems in tally.problems.items():
        print(f"\n{kind}: {len(problems)} distinct problems")
        for problem, n in problems.most_common(20):
            print(f"  {n:5d} x {problem}")
    return 1 if found or lost or alive or code != 0 else 0


if __name__ == "__main__":
    raise SystemExit(main())
