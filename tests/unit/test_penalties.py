"""unban.penalties: whether a PerSourcePenalties penalty is active, from sshd's own lines."""

from __future__ import annotations

import datetime

from unban.penalties import LogLine, judge

NOW = datetime.datetime(2026, 12, 1, 10, 0, 0)
ACTIVATING = (
    "srclimit_penalise: 203.0.113.4/32: activating ipv4 penalty of 65 seconds for penalty: "
    "failed authentication"
)
DEFERRED = (
    "srclimit_penalise: ipv4: new 203.0.113.4/32 deferred penalty of 5 seconds for penalty: "
    "connections without attempting authentication"
)
DROP = (
    "drop connection #0 from [203.0.113.4]:40022 on [203.0.113.1]:22 penalty: failed authentication"
)
ADMITTED = 'Connection from 203.0.113.4 port 40030 on 203.0.113.1 port 22 rdomain ""'


def ago(seconds: int) -> datetime.datetime:
    return NOW - datetime.timedelta(seconds=seconds)


def test_an_activation_holds_for_its_seconds() -> None:
    active = judge([LogLine(ACTIVATING, ago(30))], NOW)
    assert active.active is True
    assert "10:00:35" in active.summary and "35 s from now" in active.summary
    assert judge([LogLine(ACTIVATING, ago(70))], NOW).active is False


def test_a_first_penalty_past_min_is_active_at_once() -> None:
    line = (
        "srclimit_penalise: ipv4: new 203.0.113.4/32 active penalty of 60 seconds for penalty: "
        "failed authentication"
    )
    assert judge([LogLine(line, ago(10))], NOW).active is True


def test_a_deferred_penalty_is_not_enforced() -> None:
    assert judge([LogLine(DEFERRED, ago(1))], NOW).active is False


def test_drops_after_the_activation_keep_its_end() -> None:
    state = judge([LogLine(ACTIVATING, ago(30)), LogLine(DROP, ago(5))], NOW)
    assert state.active is True
    assert state.until == ago(30) + datetime.timedelta(seconds=65)


def test_a_drop_alone_blocks_while_recent_then_only_may() -> None:
    assert judge([LogLine(DROP, ago(10))], NOW, max_seconds=600).active is True
    old = judge([LogLine(DROP, ago(300))], NOW, max_seconds=600)
    assert old.active is None
    assert "may hold until" in old.summary
    assert judge([LogLine(DROP, ago(700))], NOW, max_seconds=600).active is False


def test_a_connection_let_in_ends_the_penalty_before_it() -> None:
    lines = [LogLine(ACTIVATING, ago(30)), LogLine(ADMITTED, ago(2))]
    assert judge(lines, NOW).active is False
    again = [*lines, LogLine(ACTIVATING, ago(1))]
    assert judge(again, NOW).active is True


def test_lines_without_time_stamps_use_the_file_time_as_a_bound() -> None:
    state = judge([LogLine(ACTIVATING, ago(10), exact=False)], NOW)
    assert state.active is True
    assert "at most" in state.summary
    assert judge([LogLine(ACTIVATING, None, exact=False)], NOW).active is False
