"""A request's score explanation as one line a trader reads (CLI, dashboard, shadow tests, logs).

Rendered on demand from the stored explanation (`gexdaemon.core.scoring` builds
it), so old explanations read in today's wording. Standard library only: the CLI
and the dashboard render it without loading the scorer.
"""

from __future__ import annotations

from collections.abc import Mapping


def describe(explanation: Mapping[str, object]) -> str:
    """One line for a person, rendered from a stored explanation (CLI, TUI, logs).

    Rendered on demand rather than stored, so scoring stays cheap and old
    explanations read in today's wording. Tolerates missing keys.
    """
    level = str(explanation.get("level", "?")).upper()
    score = _number(explanation.get("score"))
    base = explanation.get("base")
    base = base if isinstance(base, dict) else {}
    matched = explanation.get("matched")
    rules = [m for m in matched if isinstance(m, dict)] if isinstance(matched, list) else []
    base_score = _number(base.get("score"))
    if not rules:
        why = f"no rule matched, so the {base.get('data_type', 'data type')} default {base_score:.2f} applies"
    elif len(rules) == 1:
        top = rules[0]
        why = f"rule {top.get('name')!r} (v{top.get('version')}) matched with {_number(top.get('score')):.2f}"
    else:
        top = rules[0]
        how = {"max": "the highest", "mean": "the mean", "weighted_max": "the weighted max"}
        combine = str(base.get("combine", "max"))
        why = (
            f"{len(rules)} rules matched; {how.get(combine, combine)} is {base_score:.2f} "
            f"(top: {top.get('name')!r} v{top.get('version')} {_number(top.get('score')):.2f}, "
            f"{len(rules) - 1} more)"
        )
    detail = explanation.get("reliability")
    detail = detail if isinstance(detail, dict) else {}
    adjustment = _number(detail.get("adjustment"))
    if adjustment < 0:
        adjust = (
            f"; source reliability {_number(detail.get('score')):.2f} took off {-adjustment:.3f}"
        )
    elif _number(detail.get("weight")) == 0:
        adjust = "; the reliability adjustment is off (reliability_weight = 0)"
    else:
        adjust = "; the source is fully reliable, no adjustment"
    return f"{level} {score:.3f}: {why}{adjust}"


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0
