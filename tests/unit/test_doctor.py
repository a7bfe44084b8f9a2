"""The doctor's pure parts: the checks, the logs and the socket table (the SYN's way through
the packet filters is tests/unit/test_path_iptables.py's)."""

from __future__ import annotations

import datetime
import ipaddress
from typing import Optional

import pytest

from unban.checks import Check, Diagnosis, ordered
from unban.checks.logs import logs_check
from unban.checks.sockets import (
    Connection,
    Load,
    is_preauth,
    listener_startups,
    measure_load,
    parse_ss,
)
from unban.checks.sshd import maxstartups_check, penalties_check, sshd_error_check, users_check
from unban.checks.wrappers import tcpwrappers_check
from unban.doctor import text_lines
from unban.logs import LogHit, scan_log
from unban.path.model import BLOCKS, CLEAR, MAY_BLOCK, NOT_PRESENT
from unban.sshd import UserAccess, parse_dump
from unban.tcpwrappers import Endpoint, Request, evaluate, parse_table

# ---------------------------------------------------------------- checks


def test_ordered_puts_blocking_causes_first_in_path_order() -> None:
    checks = [
        Check("logs", "logs", MAY_BLOCK, ""),
        Check("users", "users", BLOCKS, ""),
        Check("tcpwrappers", "tcpw", BLOCKS, ""),
        Check("firewall", "ipt", CLEAR, ""),
        Check("penalties", "pen", NOT_PRESENT, ""),
        Check("fail2ban", "f2b", MAY_BLOCK, ""),
    ]
    keys = [c.key for c in ordered(checks)]
    assert keys == ["tcpwrappers", "users", "fail2ban", "logs", "firewall", "penalties"]
    diagnosis = Diagnosis("203.0.113.4", 22, None, None, tuple(ordered(checks)))
    assert diagnosis.verdict == BLOCKS
    assert diagnosis.cause is not None and diagnosis.cause.key == "tcpwrappers"


def _decision(allow: str, deny: str, name: Optional[str] = "unknown"):  # type: ignore[no-untyped-def]
    return evaluate(
        parse_table(allow, "/etc/hosts.allow"),
        parse_table(deny, "/etc/hosts.deny"),
        Request(client=Endpoint("203.0.113.4", name)),
    )


def test_tcpwrappers_check_blocks_with_file_and_line() -> None:
    decision = _decision("", "# bans\nsshd: 198.51.100.1 203.0.113.4\nALL: ALL\n")
    check = tcpwrappers_check(
        decision, "203.0.113.4", libwrap=True, allow_path="/etc/hosts.allow",
        deny_path="/etc/hosts.deny", allow_empty=True,
    )  # fmt: skip
    assert check.verdict == BLOCKS
    assert check.summary.startswith("/etc/hosts.deny:2 refuses 203.0.113.4")
    assert check.data["decided_by"]["line"] == 2
    assert check.data["decided_by"]["matched"] == "203.0.113.4"
    assert [m["line"] for m in check.data["matches"]] == [2, 3]
    # the entry has two addresses: edit it; or grant the address in hosts.allow
    assert check.fix[0].startswith("edit /etc/hosts.deny line 2: take '203.0.113.4' out")
    assert check.fix[-1] == "echo 'sshd: 203.0.113.4' >> /etc/hosts.allow"
    assert any("also refuses it after that" in e for e in check.evidence)


def test_tcpwrappers_check_single_entry_is_deleted_and_grant_goes_first() -> None:
    decision = _decision("sshd: 198.51.100.0/24\n", "sshd: 203.0.113.4\n")
    check = tcpwrappers_check(
        decision, "203.0.113.4", libwrap=True, allow_path="/etc/hosts.allow",
        deny_path="/etc/hosts.deny", allow_empty=False,
    )  # fmt: skip
    assert check.fix == (
        "sed -i '1d' /etc/hosts.deny",
        "sed -i '1i sshd: 203.0.113.4' /etc/hosts.allow",
    )


def test_tcpwrappers_check_without_libwrap_is_not_present() -> None:
    decision = _decision("", "sshd: 203.0.113.4\n")
    check = tcpwrappers_check(
        decision, "203.0.113.4", libwrap=False, allow_path="/etc/hosts.allow",
        deny_path="/etc/hosts.deny",
    )  # fmt: skip
    assert check.verdict == NOT_PRESENT
    assert "would refuse" in check.summary


def test_tcpwrappers_check_maybe_and_clear() -> None:
    maybe = _decision("", "sshd: .example.com\n", name=None)
    check = tcpwrappers_check(
        maybe,
        "203.0.113.4",
        libwrap=True,
        allow_path="/etc/hosts.allow",
        deny_path="/etc/hosts.deny",
    )
    assert check.verdict == MAY_BLOCK
    assert any("host name" in line for line in check.evidence)
    clear = _decision("", "sshd: 198.51.100.1\n")
    check = tcpwrappers_check(
        clear,
        "203.0.113.4",
        libwrap=True,
        allow_path="/etc/hosts.allow",
        deny_path="/etc/hosts.deny",
    )
    assert check.verdict == CLEAR


CONFIG = parse_dump("maxstartups 10:30:100\npersourcemaxstartups none\n")


@pytest.mark.parametrize(
    ("startups", "verdict"),
    [(0, CLEAR), (9, CLEAR), (10, MAY_BLOCK), (99, MAY_BLOCK), (100, BLOCKS)],
)
def test_maxstartups_check(startups: int, verdict: str) -> None:
    check = maxstartups_check(CONFIG, Load(startups, "title"), "203.0.113.4", [])
    assert check.verdict == verdict
    if verdict == MAY_BLOCK:
        assert "%" in check.summary


def test_maxstartups_recent_drops_and_per_source() -> None:
    drop = LogHit(
        "maxstartups",
        "drop connection #3 from [203.0.113.4]:4 on [203.0.113.1]:22 past MaxStartups",
        "f",
    )
    assert maxstartups_check(CONFIG, Load(0, "title"), "203.0.113.4", [drop]).verdict == MAY_BLOCK
    per_source = parse_dump("maxstartups 10:30:100\npersourcemaxstartups 2\n")
    check = maxstartups_check(per_source, Load(2, "title", from_address=2), "203.0.113.4", [])
    assert check.verdict == BLOCKS
    assert "PerSourceMaxStartups 2" in check.summary
    unknown = maxstartups_check(CONFIG, Load(None, "ss is not installed"), "203.0.113.4", [])
    assert unknown.verdict == MAY_BLOCK


def test_penalties_check() -> None:
    assert penalties_check(CONFIG, "203.0.113.4", [], (9, 2)).verdict == NOT_PRESENT
    on = parse_dump("persourcepenalties crash:90 authfail:5\npersourcepenaltyexemptlist none\n")
    assert penalties_check(on, "203.0.113.4", [], (9, 8)).verdict == CLEAR
    drop = (
        "drop connection #1 from [203.0.113.4]:1 on [203.0.113.1]:22 penalty: failed authentication"
    )
    recent = LogHit("penalty", f"2026-11-24T14:59:30+0000 host sshd[1]: {drop}", "journal")
    check = penalties_check(on, "203.0.113.4", [recent], (9, 8), now=NOW)
    assert check.verdict == BLOCKS
    assert check.fix[0].startswith("unban me 203.0.113.4")
    older = LogHit("penalty", f"2026-11-24T14:55:00+0000 host sshd[1]: {drop}", "journal")
    assert penalties_check(on, "203.0.113.4", [older], (9, 8), now=NOW).verdict == MAY_BLOCK
    exempt = parse_dump("persourcepenalties crash:90\npersourcepenaltyexemptlist 203.0.113.0/24\n")
    assert penalties_check(exempt, "203.0.113.4", [recent], (9, 8), now=NOW).verdict == CLEAR
    off = parse_dump("persourcepenalties no\n")
    assert penalties_check(off, "203.0.113.4", [recent], (9, 8), now=NOW).verdict == CLEAR


def test_penalties_check_sshd_e_log_without_time_stamps() -> None:
    on = parse_dump("persourcepenalties authfail:60 max:120 min:5\n")
    line = (
        "srclimit_penalise: 203.0.113.4/32: activating ipv4 penalty of 60 seconds for penalty: "
        "failed authentication"
    )
    hits = scan_log([line], "203.0.113.4", "/tmp/sshd.log", now=NOW)
    written = {"/tmp/sshd.log": NOW - datetime.timedelta(seconds=20)}
    check = penalties_check(on, "203.0.113.4", hits, (10, 0), now=NOW, file_times=written)
    assert check.verdict == BLOCKS
    assert "at most" in check.summary
    stale = {"/tmp/sshd.log": NOW - datetime.timedelta(seconds=90)}
    later = penalties_check(on, "203.0.113.4", hits, (10, 0), now=NOW, file_times=stale)
    assert later.verdict == CLEAR


def test_openssh_10_maxstartups_line() -> None:
    line = "drop connection #1 from [203.0.113.4]:40022 on [203.0.113.1]:22 Maxstartups"
    assert [h.kind for h in scan_log([line], "203.0.113.4", "f", now=NOW)] == ["maxstartups"]


def test_users_check() -> None:
    blocked = users_check(
        UserAccess(
            False, "root from 203.0.113.4 is listed in DenyUsers ('root')", "DenyUsers", "root"
        ),
        "root",
    )
    assert blocked.verdict == BLOCKS
    assert blocked.fix[0].startswith("remove 'root' from DenyUsers")
    assert users_check(UserAccess(None, "DenyUsers x (give --user ...)"), None).verdict == MAY_BLOCK
    assert users_check(UserAccess(True, "ok"), "bob").verdict == CLEAR


# ---------------------------------------------------------------- logs

NOW = datetime.datetime(2026, 11, 24, 15, 0, 0)


def test_scan_log_finds_each_kind_and_only_this_address() -> None:
    lines = [
        "drop connection #1 from [203.0.113.4]:38206 on [203.0.113.1]:22 past MaxStartups",
        "Nov 24 14:00:01 host sshd[12]: refused connect from 203.0.113.4 (203.0.113.4)",
        "Nov 24 14:00:02 host sshd[13]: refused connect from 203.0.113.45 (203.0.113.45)",
        "2026-11-24 14:10:00,123 fail2ban.actions [99]: NOTICE  [sshd] Ban 203.0.113.4",
        "2026-11-24T14:11:00+0000 host sshd[14]: User root from 203.0.113.4 not allowed because listed in DenyUsers",
        "Nov 24 14:12:00 host sshd[15]: Failed password for root from 203.0.113.4 port 4 ssh2",
        "Nov 20 14:12:00 host sshd[16]: refused connect from 203.0.113.4 (203.0.113.4)",  # too old
        "Nov 24 14:13:00 host sshd[17]: Accepted publickey for root from 203.0.113.4 port 5 ssh2",
    ]
    hits = scan_log(lines, "203.0.113.4", "test", now=NOW)
    assert [h.kind for h in hits] == [
        "maxstartups", "tcpwrappers", "fail2ban-ban", "denied-user", "auth-failure", "admitted",
    ]  # fmt: skip
    check = logs_check(hits, ["test"], "203.0.113.4")
    assert check.verdict == MAY_BLOCK
    assert any("1 failed login" in line for line in check.evidence)


def test_scan_log_ipv6_and_unban() -> None:
    lines = [
        "2026-11-24 14:10:00,1 fail2ban.actions [9]: NOTICE [sshd] Ban 2001:db8::4",
        "2026-11-24 14:20:00,1 fail2ban.actions [9]: NOTICE [sshd] Ban 2001:db8::45",
        "2026-11-24 14:30:00,1 fail2ban.actions [9]: NOTICE [sshd] Unban 2001:db8::4",
    ]
    hits = scan_log(lines, "2001:db8::4", "f2b", now=NOW)
    assert [h.kind for h in hits] == ["fail2ban-ban", "fail2ban-unban"]
    assert logs_check(hits, ["f2b"], "2001:db8::4").verdict == CLEAR
    assert logs_check([], [], "2001:db8::4").verdict == NOT_PRESENT


def test_december_lines_read_in_january() -> None:
    january = datetime.datetime(2027, 1, 1, 0, 30)
    hits = scan_log(
        ["Dec 31 23:59:00 h sshd[1]: refused connect from 203.0.113.4 (203.0.113.4)"],
        "203.0.113.4",
        "x",
        now=january,
    )
    assert len(hits) == 1


# ---------------------------------------------------------------- the socket table

SS = """\
0      0      203.0.113.1:22 203.0.113.4:36114 users:(("sshd",pid=9069,fd=4))
0      0      203.0.113.1:22 203.0.113.4:51534 users:(("sshd",pid=9139,fd=4),("sshd",pid=9138,fd=4))
0      0      203.0.113.1:22 198.51.100.7:40000 users:(("sshd",pid=9200,fd=4),("sshd",pid=9201,fd=4))
0      0      [2001:db8::1]:22 [2001:db8::4]:50000 users:(("sshd",pid=9300,fd=4))
"""
TITLES = {
    9069: "sshd: [accepted]",
    9138: "sshd: [accepted]",
    9139: "sshd: [net]",
    9200: "sshd: alice [priv]",
    9201: "sshd: alice@pts/0",
    9300: "sshd: unknown [preauth]",
}


def test_parse_ss() -> None:
    connections = parse_ss(SS)
    assert connections[0] == Connection("203.0.113.1:22", "203.0.113.4:36114", (9069,))
    assert connections[1].pids == (9139, 9138)
    assert connections[3].peer == "[2001:db8::4]:50000"


def test_preauth_titles() -> None:
    assert is_preauth(["sshd: [accepted]", "sshd: [net]"])
    assert not is_preauth(["sshd: alice [priv]", "sshd: alice@pts/0"])
    assert not is_preauth([])
    assert listener_startups("sshd: /usr/sbin/sshd -D [listener] 3 of 10-100 startups") == 3
    assert listener_startups("sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups") == 0
    assert listener_startups("/usr/sbin/sshd -D") is None


def test_measure_load_prefers_the_listener_title() -> None:
    address = ipaddress.ip_address("203.0.113.4")
    load = measure_load(
        ["sshd: /usr/sbin/sshd [listener] 3 of 10-100 startups"],
        parse_ss(SS),
        lambda pid: TITLES.get(pid, ""),
        address,
        (32, 128),
    )
    assert load.startups == 3
    assert load.from_address == 2
    assert len(load.preauth) == 3
    counted = measure_load([], parse_ss(SS), lambda pid: TITLES.get(pid, ""), address, (24, 64))
    assert counted.startups == 3
    assert "socket table" in counted.source
    v6 = measure_load(
        [],
        parse_ss(SS),
        lambda pid: TITLES.get(pid, ""),
        ipaddress.ip_address("2001:db8::4"),
        (32, 64),
    )
    assert v6.from_address == 1


def test_text_report() -> None:
    checks = ordered(
        [
            Check("tcpwrappers", "TCP wrappers", BLOCKS, "/etc/hosts.deny:1 refuses [2001:db8::4]",
                  ("sshd: [2001:db8::4]",), ("sed -i '1d' /etc/hosts.deny",), "reset"),
            Check("firewall", "packet filters", CLEAR, "accepted"),
        ]
    )  # fmt: skip
    lines = text_lines(Diagnosis("2001:db8::4", 22, None, None, tuple(checks)))
    text = "\n".join(lines)
    assert lines[0] == "unban doctor 2001:db8::4, port 22: blocked"  # the verdict, whole
    assert "most likely cause: TCP wrappers" in lines[1]
    assert "[blocks] TCP wrappers: /etc/hosts.deny:1 refuses [2001:db8::4]" in text
    assert "fix: sed -i '1d' /etc/hosts.deny" in text


def test_sshd_error_check_hints() -> None:
    stopped = sshd_error_check(
        "'sshd -T' failed: Missing privilege separation directory: /run/sshd"
    )
    assert stopped.verdict == MAY_BLOCK
    assert "systemctl start ssh" in stopped.fix
    broken = sshd_error_check(
        "'sshd -T' failed: /etc/ssh/sshd_config line 3: Bad configuration option"
    )
    assert broken.fix[0].startswith("sshd -t")
