"""fail2ban's sqlite database: which rows count as bans, and deleting them like fail2ban does."""

from __future__ import annotations

import ipaddress
import sqlite3
from pathlib import Path

from unban.fail2ban.database import BanRow, delete_command, delete_rows, read_rows, select_rows

NOW = 1_800_000_000
SCHEMA = """
CREATE TABLE jails(name TEXT NOT NULL UNIQUE, enabled INTEGER NOT NULL DEFAULT 1);
CREATE TABLE bans(jail TEXT NOT NULL, ip TEXT, timeofban INTEGER NOT NULL,
    bantime INTEGER NOT NULL, bancount INTEGER NOT NULL default 1, data JSON);
CREATE TABLE bips(ip TEXT NOT NULL, jail TEXT NOT NULL, timeofban INTEGER NOT NULL,
    bantime INTEGER NOT NULL, bancount INTEGER NOT NULL default 1, data JSON,
    PRIMARY KEY(ip, jail));
"""


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


ROWS = [
    BanRow("203.0.113.4", "sshd", NOW - 100, 3600, 1),  # active
    BanRow("203.0.113.4", "recidive", NOW - 10 * 86400, -1, 3),  # permanent
    BanRow("203.0.113.4", "old", NOW - 7200, 3600, 1),  # expired: not restored at start
    BanRow("203.0.113.9", "sshd", NOW - 100, 3600, 1),
    BanRow("2001:db8::4", "sshd", NOW - 100, 3600, 1),
    BanRow("203.0.113.0/24", "manual", NOW - 100, 3600, 1),
]


def test_select_rows_for_an_address() -> None:
    chosen = select_rows(ROWS, net("203.0.113.4"), NOW)
    assert [(r.jail, r.ip, targeted) for r, _n, targeted in chosen] == [
        ("manual", "203.0.113.0/24", False),
        ("recidive", "203.0.113.4", True),
        ("sshd", "203.0.113.4", True),
    ]


def test_select_rows_for_a_network_and_ipv6() -> None:
    chosen = select_rows(ROWS, net("203.0.113.0/28"), NOW)
    assert sorted((r.ip, r.jail) for r, _n, _t in chosen) == [
        ("203.0.113.0/24", "manual"),
        ("203.0.113.4", "recidive"),
        ("203.0.113.4", "sshd"),
        ("203.0.113.9", "sshd"),
    ]
    assert [r.ip for r, _n, _t in select_rows(ROWS, net("2001:db8::4"), NOW)] == ["2001:db8::4"]


def test_until() -> None:
    assert ROWS[0].until == NOW - 100 + 3600
    assert ROWS[1].until is None


def make_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    for row in ROWS:
        conn.execute(
            "INSERT INTO bips VALUES (?, ?, ?, ?, ?, '{}')",
            (row.ip, row.jail, row.timeofban, row.bantime, row.bancount),
        )
        conn.execute(
            "INSERT INTO bans VALUES (?, ?, ?, ?, ?, '{}')",
            (row.jail, row.ip, row.timeofban, row.bantime, row.bancount),
        )
    conn.commit()
    conn.close()


def test_read_and_delete(tmp_path: Path) -> None:
    path = tmp_path / "fail2ban.sqlite3"
    make_db(path)
    assert {(r.ip, r.jail) for r in read_rows(str(path), net("203.0.113.4"))} == {
        ("203.0.113.4", "sshd"),
        ("203.0.113.4", "recidive"),
        ("203.0.113.4", "old"),
    }
    assert len(read_rows(str(path))) == len(ROWS)
    deleted = delete_rows(str(path), [("203.0.113.4", "sshd"), ("203.0.113.4", "recidive")])
    assert deleted == 2
    conn = sqlite3.connect(path)
    left_bips = {tuple(r) for r in conn.execute("SELECT ip, jail FROM bips WHERE ip='203.0.113.4'")}
    left_bans = {tuple(r) for r in conn.execute("SELECT ip, jail FROM bans WHERE ip='203.0.113.4'")}
    conn.close()
    assert left_bips == left_bans == {("203.0.113.4", "old")}


def test_delete_command_is_runnable_text() -> None:
    assert delete_command("/var/lib/fail2ban/fail2ban.sqlite3", "203.0.113.4", "sshd") == (
        'sqlite3 /var/lib/fail2ban/fail2ban.sqlite3 "DELETE FROM bips WHERE ip = '
        "'203.0.113.4' AND jail = 'sshd'; DELETE FROM bans WHERE ip = '203.0.113.4' AND "
        "jail = 'sshd';\""
    )
    odd = delete_command("/db", "1.2.3.4", 'a"$b')
    assert odd.startswith("sqlite3 /db '") and "$b" in odd
