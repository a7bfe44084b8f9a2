"""Shell text back into argv (unban.shellwords): the inverse of shlex.join for one plain
command, None for anything a shell would read otherwise."""

from __future__ import annotations

import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unban.shellwords import argv_of


@pytest.mark.parametrize(
    ("text", "argv"),
    [
        ("iptables-nft -t filter -D INPUT 3", ["iptables-nft", "-t", "filter", "-D", "INPUT", "3"]),
        ("sqlite3 /db \"DELETE FROM bips WHERE ip = '1';\"", ["sqlite3", "/db", "DELETE FROM bips WHERE ip = '1';"]),
        ("nft delete element inet t s '{ 203.0.113.4 }'", ["nft", "delete", "element", "inet", "t", "s", "{ 203.0.113.4 }"]),
        ("echo -203.0.113.4 > /proc/net/xt_recent/x", None),
        ("a; b", None),
        ("a && b", None),
        ("a | b", None),
        ("nft delete rule ip t c handle H  # H: the handle", None),
        ("unbalanced 'quote", None),
        ("", None),
    ],
)  # fmt: skip
def test_argv_of(text: str, argv: list[str] | None) -> None:
    assert argv_of(text) == argv


@given(st.lists(st.text(min_size=1), min_size=1, max_size=6))
def test_shlex_join_round_trips(words: list[str]) -> None:
    text = shlex.join(words)
    assert argv_of(text) in (words, None)
    if all(not set(w) <= set("();<>|&") and not w.startswith("#") for w in words):
        assert argv_of(text) == words
