"""Benchmark: microseconds to score one request with 50 active priority rules (target <= 20 us).

Compares, in the same process and on the same request:
- compiled: `score_request` with conditions compiled to closures (what the daemon runs);
- baseline: the same scoring, but each condition evaluated by walking its AST on
  every call (a straightforward safe interpreter, the design the compiler replaces).

Two rule books: a desk book (most rules about one symbol or data type, 8 of 50
match the request) and a generic book (no rule tied to a symbol, 30 of 50 match:
the costly end, since every match is evaluated in full and explained).

Run from the repository root:
    /tmp/venv/bin/python bench/rules_bench.py [--rules 50] [--repeat 7]
"""

from __future__ import annotations

import argparse
import ast
import operator
import os
import platform
import sys
import timeit
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic

from gexdaemon.core.models import PriorityRule
from gexdaemon.core.rules import request_names
from gexdaemon.core.scoring import RuleSet, combine_scores, score_request
from gexdaemon.core.settings import PrioritySettings

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
SYMBOLS = ["SPX", "NDX", "RUT", "SPY", "QQQ", "IWM", "AAPL", "TSLA", "NVDA", "AMZN"]

# A desk's book: most rules are about one symbol or one data type (the shape rule
# books take in practice), the rest look at metadata, time and the source.
DESK_PER_SYMBOL = [
    "market_symbol == '{s}' and data_type == 'real_time'",
    "market_symbol == '{s}' and ny_hour >= 15.5 and ny_hour < 16.25",
    "market_symbol == '{s}' and expiry_days <= 1",
]
DESK_GENERAL = [
    "data_type == 'historical' and age_s > 3600",
    "data_type == 'snapshot' and ny_weekday in ['sat', 'sun']",
    "data_type == 'real_time' and ny_hour >= 9.5 and ny_hour < 16",
    "origin == 'drop' and data_type == 'historical'",
    "open_interest > 10000 and volume > 5000",
    "desk == 'vol' and market_symbol in ['SPX', 'NDX', 'RUT']",
    "'0dte' in tags",
    "reliability_score < 0.5",
    "source_host == 'cdn.cboe.com' and data_type != 'historical'",
    "volume / open_interest > 0.5 and open_interest > 1000",
    "ny_weekday in ['mon', 'fri'] and ny_hour < 10",
    "not (data_type == 'historical') and 0 < expiry_days < 3",
    "age_s > 120 and data_type == 'real_time'",
    "market_symbol in ['AAPL', 'TSLA', 'NVDA', 'AMZN'] and volume > 20000",
    "vip",
    "priority_hint >= 0.9",
    "ny_date == '2026-11-27'",
    "open_interest is None and data_type == 'snapshot'",
    "market_symbol not in ['SPX', 'NDX'] and data_type == 'real_time'",
    "account == 'prop' or account == 'mm'",
]

# Every rule generic (none tied to a symbol or type): most of them match the
# request below, the costly end of what a rule book can look like.
GENERIC = [
    "data_type == 'real_time' and market_symbol in ['{a}', '{b}']",
    "open_interest > {n}000 and volume > {m}00",
    "ny_hour >= 9.5 and ny_hour < 16 and ny_weekday in ['mon', 'tue', 'wed', 'thu', 'fri']",
    "market_symbol == '{a}' and age_s < {n}",
    "source_host == 'cdn.cboe.com' and data_type != 'historical'",
    "reliability_score < 0.{n} and data_type == 'snapshot'",
    "desk == 'vol' and market_symbol in ['{a}', '{b}', '{c}']",
    "'{a}' in tags or expiry_days <= {m}",
    "volume / open_interest > 0.{m} and open_interest > 1000",
    "not (data_type == 'historical') and 0 < expiry_days < {n}",
]

REQUEST: dict[str, Any] = {
    "data_type": "real_time",
    "market_symbol": "SPX",
    "source_url": "https://cdn.cboe.com/api/global/delayed_quotes/options/_SPX.json",
    "requested_at": NOW - timedelta(seconds=4),
    "metadata": {
        "open_interest": 25_000,
        "volume": 7_500,
        "desk": "vol",
        "tags": ["0dte", "SPX"],
        "expiry_days": 1,
    },
    "origin": "api",
    "reliability_score": 0.93,
}


def _rule(i: int, condition: str) -> PriorityRule:
    return PriorityRule(
        name=f"rule {i:02d}",
        condition=condition,
        priority_score=round(0.3 + (i % 13) * 0.05, 2),
        created_at=NOW,
        updated_at=NOW,
    )


def desk_rules(count: int) -> list[PriorityRule]:
    conditions = [t.format(s=s) for s in SYMBOLS for t in DESK_PER_SYMBOL] + DESK_GENERAL
    return [_rule(i, conditions[i % len(conditions)]) for i in range(count)]


def generic_rules(count: int) -> list[PriorityRule]:
    rules = []
    for i in range(count):
        condition = GENERIC[i % len(GENERIC)].format(
            a=SYMBOLS[i % 10],
            b=SYMBOLS[(i + 3) % 10],
            c=SYMBOLS[(i + 5) % 10],
            n=i % 9 + 1,
            m=i % 7 + 2,
        )
        rules.append(_rule(i, condition))
    return rules


# ---------------------------------------------------------------------------
# Baseline: an interpreter that walks the (already parsed) AST on every evaluation
# ---------------------------------------------------------------------------

_OPS: dict[type[ast.AST], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def truth(node: ast.AST, names: Mapping[str, object]) -> bool:
    """A test's value; a bare name holds only when it is exactly True (the language's rule)."""
    if isinstance(node, ast.Name):
        return names.get(node.id) is True
    return walk(node, names) is True


def walk(node: ast.AST, names: Mapping[str, object]) -> Any:
    if isinstance(node, ast.Expression):
        return truth(node.body, names)
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            return all(truth(v, names) for v in node.values)
        return any(truth(v, names) for v in node.values)
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, ast.Not):
            return not truth(node.operand, names)
        value = walk(node.operand, names)
        return None if value is None else -value
    if isinstance(node, ast.Compare):
        left = walk(node.left, names)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.Is | ast.IsNot):
                return (left is None) is isinstance(op, ast.Is)
            right = walk(right_node, names)
            if left is None or right is None:
                return False
            try:
                if not _OPS[type(op)](left, right):
                    return False
            except TypeError:
                return False
            left = right
        return True
    if isinstance(node, ast.BinOp):
        a, b = walk(node.left, names), walk(node.right, names)
        if a is None or b is None or (isinstance(node.op, ast.Div) and b == 0):
            return None
        return _OPS[type(node.op)](a, b)
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        return [walk(e, names) for e in node.elts]
    raise ValueError(f"not allowed: {type(node).__name__}")


def baseline_score(
    parsed: list[tuple[PriorityRule, ast.Expression]], settings: PrioritySettings
) -> tuple[float, int]:
    names = request_names(now=NOW, **REQUEST)
    matched = [rule for rule, tree in parsed if walk(tree, names)]
    base = (
        combine_scores([r.priority_score for r in matched], settings.combine)
        if matched
        else settings.default_scores.real_time
    )
    score = min(1.0, max(0.0, base - settings.reliability_weight * (1 - 0.93)))
    return score, len(matched)


def best_us(fn: Callable[[], object], repeat: int) -> float:
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def run(label: str, rules: list[PriorityRule], repeat: int) -> float:
    settings = PrioritySettings()
    rule_set = RuleSet.from_rules(rules)
    parsed = [(r, ast.parse(r.condition, mode="eval")) for r in rules]
    names = request_names(now=NOW, wanted=rule_set.names, **REQUEST)

    # Both sides must agree before their speed means anything.
    result = score_request(rule_set, now=NOW, settings=settings, **REQUEST)
    base_score, base_matches = baseline_score(parsed, settings)
    assert len(result.matched) == base_matches, (len(result.matched), base_matches)
    assert abs(result.score - base_score) < 1e-9, (result.score, base_score)
    assert rule_set.matching(names) == rule_set.matching_all(names)

    t_compiled = best_us(
        lambda: score_request(rule_set, now=NOW, settings=settings, **REQUEST), repeat
    )
    t_match = best_us(lambda: rule_set.matching(names), repeat)
    t_match_all = best_us(lambda: rule_set.matching_all(names), repeat)
    t_names = best_us(lambda: request_names(now=NOW, wanted=rule_set.names, **REQUEST), repeat)
    t_baseline = best_us(lambda: baseline_score(parsed, settings), repeat)
    t_walk = best_us(lambda: [walk(tree, names) for _, tree in parsed], repeat)

    print(
        f"\n{label}: {len(rule_set)} active rules, {len(result.matched)} match the request "
        f"(level {result.level.value}, score {result.score})"
    )
    print(f"  compiled: score_request (names + conditions + explanation) {t_compiled:8.2f} us")
    print(f"    of which: request names                                {t_names:8.2f} us")
    print(f"    of which: conditions, with the equality index          {t_match:8.2f} us")
    print(
        f"    (conditions, all {len(rule_set)} evaluated, no index            {t_match_all:8.2f} us)"
    )
    print(f"  baseline: same scoring, AST walked on every evaluation   {t_baseline:8.2f} us")
    print(f"    of which: walking the {len(parsed)} ASTs                          {t_walk:8.2f} us")
    print(
        f"  ratio baseline / compiled: scoring {t_baseline / t_compiled:.1f}x, "
        f"conditions {t_walk / t_match:.1f}x (without the index {t_walk / t_match_all:.1f}x)"
    )
    return t_compiled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    print("machine:")
    print(f"  platform     {platform.platform()}")
    print(f"  processor    {platform.processor() or platform.machine()}")
    print(f"  cpu count    {os.cpu_count()}")
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    print(f"  load average {load}")
    print(f"  python       {sys.version.split()[0]} ({platform.python_implementation()})")
    print(f"  pydantic     {pydantic.__version__}")
    # A fixed pure-Python workload, to compare machines (and a loaded one with a quiet one).
    calibration = best_us(lambda: sum(range(1000)), args.repeat)
    print(f"  calibration  sum(range(1000)) takes {calibration:.2f} us")
    print(f"per request, best of {args.repeat} runs")

    desk = run("desk book (symbol- and type-specific rules)", desk_rules(args.rules), args.repeat)
    generic = run("generic book (no rule tied to a symbol)", generic_rules(args.rules), args.repeat)

    target = 20.0
    print()
    for label, figure in (("desk book", desk), ("generic book", generic)):
        verdict = "meets" if figure <= target else "MISSES"
        print(f"target <= {target:.0f} us per request, {label}: {verdict} ({figure:.2f} us)")


if __name__ == "__main__":
    main()
