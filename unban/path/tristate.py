"""Three-valued logic over Match (yes / no / maybe): a "maybe" never turns into a "yes" or a
"no" by negation or conjunction. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from unban.path.model import Match


def bool_(value: bool) -> Match:
    return Match.YES if value else Match.NO


def negate(value: Match, when: bool = True) -> Match:
    """`value` negated (`when` it is: a rule's `!` on a match)."""
    if not when or value is Match.MAYBE:
        return value
    return Match.NO if value is Match.YES else Match.YES


def and_(a: Match, b: Match) -> Match:
    if Match.NO in (a, b):
        return Match.NO
    return Match.YES if a is b is Match.YES else Match.MAYBE


def and_all(values: Sequence[Match]) -> Match:
    result = Match.YES
    for value in values:
        result = and_(result, value)
    return result


def or_(values: Sequence[Match]) -> Match:
    if Match.YES in values:
        return Match.YES
    return Match.MAYBE if Match.MAYBE in values else Match.NO
