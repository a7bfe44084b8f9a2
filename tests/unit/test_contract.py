"""The contract's pieces (unban.contract.core) and fail2ban's ban times, without a CLI."""

from __future__ import annotations

import time
from datetime import datetime

from unban.contract import core
from unban.layers.fail2ban import local_epoch, parse_with_time


def test_fail2ban_s_local_times_become_zoned_iso_8601() -> None:
    line = "203.0.113.4 \t2026-12-01 07:30:21 + 3600 = 2026-12-01 08:30:21"
    parsed = parse_with_time(line)
    assert parsed is not None
    _ip, since, until = parsed
    banned, expires = local_epoch(since), local_epoch(until)
    assert banned is not None and expires is not None and expires - banned == 3600
    shown = core.iso_time(banned)
    assert shown is not None
    assert datetime.fromisoformat(shown).timestamp() == banned
    assert shown.startswith("2026-12-01T07:30:21")  # the host's wall clock, with its offset
    assert time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(banned)) == since


def test_forever_and_unknown_have_no_time() -> None:
    assert local_epoch("forever") is None and local_epoch("(unknown)") is None
    assert core.iso_time(None) is None


def test_exemption_steps_one_per_file_and_per_command() -> None:
    class Edit:
        path, before, after = "/etc/fail2ban/jail.local", "[sshd]\n", "[sshd]\nignoreip = x\n"

        def diff(self) -> list[str]:
            return ["+ignoreip = x"]

    steps = core.exemption_steps(
        "fail2ban",
        [Edit()],
        [("fail2ban-client set sshd addignoreip x", "fail2ban-client set sshd delignoreip x")],
    )
    assert [(s["action"], s["argv"]) for s in steps] == [
        ("write", None),
        ("run", ["fail2ban-client", "set", "sshd", "addignoreip", "x"]),
    ]
    assert steps[0]["file"]["after"] == Edit.after
    assert steps[1]["undo"]["argv"] == ["fail2ban-client", "set", "sshd", "delignoreip", "x"]
