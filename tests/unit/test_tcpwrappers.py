"""hosts.allow / hosts.deny evaluation.

CASES holds what Debian's libwrap 7.6.q answered on this project's machine for each pair of
files; when libwrap0 is installed, `test_libwrap_agrees` asks the real library again through its
public `hosts_ctl()`, so the table cannot drift from the library it describes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest

from unban.path.model import Match
from unban.tcpwrappers import (
    Decision,
    Endpoint,
    Request,
    Table,
    depends_on_name,
    evaluate,
    option_effect,
    parse_table,
    read_pattern_file,
    read_tables,
    remove_client,
)

V4 = "203.0.113.4"
V6 = "2001:db8::4"

# (hosts.allow, hosts.deny, client address, client host name, allowed)
# The host name is what libwrap's lookup would give ("unknown": no PTR record).
CASES: list[tuple[str, str, str, str, bool]] = [
    # the plain cases, and the files' basic syntax
    ("", "", V4, "unknown", True),
    ("", "sshd: 203.0.113.4\n", V4, "unknown", False),
    ("", "sshd: 203.0.113.4", V4, "unknown", False),  # no newline at the end: still read
    ("", "SSHD: 203.0.113.4\n", V4, "unknown", False),  # every comparison ignores case
    ("", "sshd: all\n", V4, "unknown", False),
    ("", "sshd: 203.0.113.5\n", V4, "unknown", True),
    ("", "sshd:203.0.113.4,203.0.113.9\n", V4, "unknown", False),
    ("", "sshd,ftpd 203.0.113.4\n", V4, "unknown", True),  # no ':' at all: line skipped
    ("", "sshd\t203.0.113.4\n", V4, "unknown", True),
    ("", "sshd 203.0.113.4\nsshd: 203.0.113.4\n", V4, "unknown", False),
    ("", "sshd: 203.0.113.4\r\n", V4, "unknown", False),
    ("", "#x\nsshd: 203.0.113.4\n", V4, "unknown", False),
    ("", "# sshd: 203.0.113.4\n", V4, "unknown", True),
    ("", "  # sshd: 203.0.113.4\n", V4, "unknown", False),  # '#' not in column 1: an entry
    ("", " sshd: 203.0.113.4\n", V4, "unknown", False),
    ("", "sshd: 203.0.113.4#c\n", V4, "unknown", True),
    ("", "sshd: 203.0.\\\n113.4\n", V4, "unknown", False),  # continuation joins without a blank
    ("", "sshd: 203.0.113.9 \\\n 203.0.113.4\n", V4, "unknown", False),
    ("", "sshd: 203.0.113.4 \\\n", V4, "unknown", False),
    ("", "#sshd: 203.0.113.9 \\\nsshd: 203.0.113.4\n", V4, "unknown", True),  # comment swallows
    # daemon lists
    ("", "ALL: 203.0.113.4\n", V4, "unknown", False),
    ("", "ALL EXCEPT sshd: 203.0.113.4\n", V4, "unknown", True),
    ("", "sshd@ALL: 203.0.113.4\n", V4, "unknown", False),
    ("", "22: 203.0.113.4\n", V4, "unknown", True),  # port numbers are not daemon names
    ("", "s?hd: ALL\n", V4, "unknown", False),
    ("", "ss*: ALL\n", V4, "unknown", False),
    ("", ".hd: ALL\n", V4, "unknown", True),
    ("", "ssh.: ALL\n", V4, "unknown", True),
    ("", "sshd@unknown : ALL\n", V4, "unknown", False),  # hosts_ctl's server is "unknown"
    ("", "sshd@203.0.113.1 : ALL\n", V4, "unknown", True),
    ("", "sshd@ALL EXCEPT sshd@203.0.113.1: ALL\n", V4, "unknown", False),
    # EXCEPT
    ("", "sshd: ALL EXCEPT 203.0.113.4\n", V4, "unknown", True),
    ("", "sshd: ALL except 203.0.113.4\n", V4, "unknown", True),
    ("", "sshd: 203.0.113.4 EXCEPT 203.0.113.4\n", V4, "unknown", True),
    ("", "sshd: ALL EXCEPT 203.0.113.0/24 EXCEPT 203.0.113.4\n", V4, "unknown", False),
    ("", "sshd: ALL EXCEPT 203.0.113.0/24 EXCEPT 203.0.113.5\n", V4, "unknown", True),
    ("", "sshd: EXCEPT 203.0.113.4\n", V4, "unknown", True),
    ("", "sshd: 198.51.100.1 203.0.113.4 EXCEPT 203.0.113.4\n", V4, "unknown", True),
    # address patterns
    ("", "sshd: 203.0.113.\n", V4, "unknown", False),
    ("", "sshd: 203.0.11.\n", V4, "unknown", True),
    ("", "sshd: 203.0.113.4.\n", V4, "unknown", True),
    ("", "sshd: .113.4\n", V4, "unknown", False),  # a suffix also matches the address string
    ("", "sshd: 203.0.113.04\n", V4, "unknown", True),
    ("", "sshd: 203.0.113.*\n", V4, "unknown", False),
    ("", "sshd: 203.0.113.?\n", V4, "unknown", False),
    ("", "sshd: 203.0.113.?\n", "203.0.113.44", "unknown", True),
    ("", "sshd: 203.0.113.??\n", V4, "unknown", True),
    ("", "sshd: 203.0.*.4\n", V4, "unknown", False),
    ("", "sshd: *.4\n", V4, "unknown", False),
    ("", "sshd: 203.0.113.4*\n", V4, "unknown", False),
    ("", "sshd: 2*3.0.113.4\n", V4, "unknown", False),
    ("", "sshd: 203.0.113.4\n", "::ffff:203.0.113.4", "unknown", False),
    ("", "sshd: ::ffff:203.0.113.4\n", V4, "unknown", True),  # cut at the first ':'
    # net/mask and net/length
    ("", "sshd: 203.0.113.0/255.255.255.0\n", V4, "unknown", False),
    ("", "sshd: 203.0.113.5/255.255.255.0\n", V4, "unknown", True),  # host bits: never
    ("", "sshd: 203.0.113.0/24\n", V4, "unknown", False),
    ("", "sshd: 203.0.113.5/24\n", V4, "unknown", True),
    ("", "sshd: 203.0.113.0/024\n", V4, "unknown", False),
    ("", "sshd: 203.0.112.0/23\n", V4, "unknown", False),
    ("", "sshd: 203.0.112.0/255.255.254.0\n", V4, "unknown", False),
    ("", "sshd: 203.0.113.0/255.255.254.0\n", V4, "unknown", True),
    ("", "sshd: 203.0.113.0/255.0.255.0\n", V4, "unknown", False),  # any mask, even odd ones
    ("", "sshd: 203.0.113.0/255.255.0.255\n", V4, "unknown", True),
    ("", "sshd: 203.0.113.4/32\n", V4, "unknown", False),
    ("", "sshd: 203.0.113.4/255.255.255.255\n", V4, "unknown", True),  # not a valid mask
    ("", "sshd: 203.0.113.4/33\n", V4, "unknown", True),
    ("", "sshd: 203.0.113.4/0\n", V4, "unknown", True),
    ("", "sshd: 0.0.0.0/0\n", V4, "unknown", True),  # /0 is not a valid length
    ("", "sshd: 0.0.0.0/0.0.0.0\n", V4, "unknown", False),
    ("", "sshd: 203.0.113/24\n", V4, "unknown", True),
    ("", "sshd: 203.0.113.4/\n", V4, "unknown", True),
    ("", "sshd: 203.0.113.0/24\n", V6, "unknown", True),
    # IPv6: brackets, prefixes
    ("", "sshd: [2001:db8::4]\n", V6, "unknown", False),
    ("", "sshd: [2001:DB8:0::4]\n", V6, "unknown", False),
    ("", "sshd: [2001:0db8::4]\n", V6, "unknown", False),
    ("", "sshd: [2001:db8::4]\n", "2001:db8:0:0:0:0:0:4", "unknown", False),
    ("", "sshd: 2001:db8::4\n", V6, "unknown", True),  # unbracketed: cut at the first ':'
    ("", "sshd: [2001:db8::]/64\n", V6, "unknown", False),
    ("", "sshd: [2001:db8::5]/64\n", V6, "unknown", False),  # v6 nets are masked first
    ("", "sshd: [2001:db8:1::]/64\n", V6, "unknown", True),
    ("", "sshd: [2001:db8::5]/127\n", V6, "unknown", False),
    ("", "sshd: [2001:db8::4]/127\n", "2001:db8::5", "unknown", False),
    ("", "sshd: [2001:db8::4]/128\n", V6, "unknown", False),
    ("", "sshd: [2001:db8::]/129\n", V6, "unknown", True),
    ("", "sshd: [2001:db8::]/abc\n", V6, "unknown", False),  # atoi("abc") is 0: everything
    ("", "sshd: [::]/0\n", V6, "unknown", False),
    ("", "sshd: [2001:db8::*]\n", V6, "unknown", True),
    ("", "sshd: 2001:db8::*\n", V6, "unknown", True),
    ("", "sshd: [::ffff:203.0.113.4]\n", V4, "unknown", True),
    ("", "sshd: [::ffff:203.0.113.4]\n", "::ffff:203.0.113.4", "unknown", True),
    ("", "sshd: [2001:db8::]/64 EXCEPT [2001:db8::4]\n", V6, "unknown", True),
    ("", "sshd: [2001:db8::4] , 203.0.113.9\n", V6, "unknown", False),
    ("", "sshd: [2001:db8::4]\n", V4, "unknown", True),
    ("", "ALL: [2001:db8::4]\n", V6, "unknown", False),  # fail2ban's hostsdeny, IPv6
    # host names and the name wildcards
    ("", "sshd: .example.com\n", V4, "host.example.com", False),
    ("", "sshd: .example.com\n", V4, "example.com", True),
    ("", "sshd: host.example.com\n", V4, "HOST.example.com", False),
    ("", "sshd: *.example.com\n", V4, "host.example.com", False),
    ("", "sshd: *.example.com\n", V4, "example.com", True),
    ("", "sshd: *example.com\n", V4, "example.com", False),
    ("", "sshd: *.EXAMPLE.com\n", V4, "a.example.com", False),
    ("", "sshd: ho?t.example.com\n", V4, "host.example.com", False),
    ("", "sshd: host.\n", V4, "host.example.com", False),  # a prefix also matches names
    ("", "sshd: 203.\n", V4, "203.example.com", False),
    ("", "sshd: other.example.com\n", V4, "host.example.com", True),
    ("", "sshd: LOCAL\n", V4, "host", False),
    ("", "sshd: LOCAL\n", V4, "host.example.com", True),
    ("", "sshd: LOCAL\n", V4, "unknown", True),
    ("", "sshd: LOCAL\n", V4, "paranoid", True),
    ("", "sshd: KNOWN\n", V4, "host.example.com", False),
    ("", "sshd: KNOWN\n", V4, "unknown", True),
    ("", "sshd: KNOWN\n", V4, "paranoid", True),
    ("", "sshd: UNKNOWN\n", V4, "unknown", False),
    ("", "sshd: UNKNOWN\n", V4, "paranoid", True),
    ("", "sshd: unknown\n", V4, "unknown", False),
    ("", "sshd: PARANOID\n", V4, "paranoid", False),
    ("", "sshd: PARANOID\n", V4, "unknown", True),
    ("", "sshd: PARANOID\n", V4, "host.example.com", True),
    # user@host (hosts_ctl's user is "unknown")
    ("", "ALL: ALL@203.0.113.4\n", V4, "unknown", False),
    ("", "ALL: root@203.0.113.4\n", V4, "unknown", True),
    ("", "ALL: unknown@203.0.113.4\n", V4, "unknown", False),
    ("", "ALL: UNKNOWN@ALL\n", V4, "unknown", False),
    ("", "ALL: ALL@203.0.113.5\n", V4, "unknown", True),
    # file patterns
    ("", "sshd: /nonexistent/unban-patterns\n", V4, "unknown", True),
    # hosts.allow first, first match wins
    ("sshd: 203.0.113.4\n", "sshd: ALL\n", V4, "unknown", True),
    ("sshd: 203.0.113.5\n", "sshd: ALL\n", V4, "unknown", False),
    ("sshd: ALL EXCEPT 203.0.113.4\n", "ALL: ALL\n", V4, "unknown", False),
    ("", "sshd: 203.0.113.4 : allow\nsshd: ALL\n", V4, "unknown", True),
    # options (hosts_options(5)): allow / deny, and everything libwrap refuses
    ("sshd: 203.0.113.4 : deny\n", "", V4, "unknown", False),
    ("ALL : 203.0.113.4 : DENY\n", "", V4, "unknown", False),  # sshguard's hosts backend
    ("ALL : [2001:db8::4] : DENY\n", "", V6, "unknown", False),
    ("sshd: 203.0.113.4 : deny\n", "", "203.0.113.5", "unknown", True),
    ("sshd: 203.0.113.4:deny\n", "", V4, "unknown", False),
    ("", "sshd: 203.0.113.4 : allow\n", V4, "unknown", True),
    ("", "sshd : 203.0.113.4 : Deny\n", V4, "unknown", False),
    ("sshd: 203.0.113.4 : ALLOW\n", "sshd: ALL\n", V4, "unknown", True),
    ("sshd: 203.0.113.4 : allow=\n", "sshd: ALL\n", V4, "unknown", True),
    ("sshd: 203.0.113.4 : /bin/true\n", "", V4, "unknown", False),  # not an option: refused
    ("sshd: 203.0.113.4 : bogus\n", "", V4, "unknown", False),
    ("sshd: 203.0.113.4:\n", "", V4, "unknown", False),  # empty option field
    ("sshd: 203.0.113.4 : \n", "", V4, "unknown", False),
    ("sshd: 203.0.113.4:", "", V4, "unknown", True),  # ... but without a newline, no field
    ("sshd: 203.0.113.4 : allow : bogus\n", "ALL:ALL\n", V4, "unknown", False),
    ("sshd: 203.0.113.4 : allow:\n", "ALL:ALL\n", V4, "unknown", False),
    ("sshd: 203.0.113.4 : deny : allow\n", "", V4, "unknown", False),
    ("sshd: 203.0.113.4 : allow extra\n", "", V4, "unknown", False),
    ("sshd: 203.0.113.4 : severity\n", "", V4, "unknown", False),
    ("sshd: 203.0.113.4 : severity=auth.info\n", "", V4, "unknown", True),
    ("sshd: 203.0.113.4 : severity auth.info\n", "", V4, "unknown", True),
    ("sshd: 203.0.113.4 : severity auth.info : deny\n", "", V4, "unknown", False),
    ("sshd: 203.0.113.4 : keepalive\n", "", V4, "unknown", True),
    ("sshd: 203.0.113.4 : keepalive : allow\n", "ALL:ALL\n", V4, "unknown", True),
    ("sshd: 203.0.113.4 : umask 022\n", "", V4, "unknown", True),
    ("sshd: 203.0.113.4 : umask 999\n", "", V4, "unknown", False),
    ("sshd: 203.0.113.4 : twist /bin/echo no\n", "", V4, "unknown", False),
    ("sshd: 203.0.113.4 : twist /bin/echo no : allow\n", "", V4, "unknown", False),
    ("sshd: 203.0.113.4 : spawn /bin/true a\\:b : deny\n", "", V4, "unknown", False),
    ("", "ALL: 203.0.113.4 : spawn /bin/true\n", V4, "unknown", False),
    ("", "sshd : 203.0.113.4 \\: deny\n", V4, "unknown", False),
    ("", "sshd: [2001:db8::4]:allow\nALL: ALL\n", V6, "unknown", True),
]


def _tables(allow: str, deny: str) -> tuple[Table, Table]:
    return parse_table(allow, "/etc/hosts.allow"), parse_table(deny, "/etc/hosts.deny")


def _decide(allow: str, deny: str, address: str, name: Optional[str], **kw: object) -> Decision:
    request = Request(
        client=Endpoint(address, name),
        server=Endpoint("unknown", "unknown"),  # what hosts_ctl() gives libwrap
        user="unknown",
    )
    allow_table, deny_table = _tables(allow, deny)
    return evaluate(allow_table, deny_table, request, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("allow", "deny", "address", "name", "allowed"), CASES)
def test_case(allow: str, deny: str, address: str, name: str, allowed: bool) -> None:
    decision = _decide(allow, deny, address, name, read_file=read_pattern_file)
    assert decision.allowed is allowed


# ---------------------------------------------------------------- the real library


class _Libwrap:
    """libwrap's public hosts_ctl(), pointed at temporary files."""

    def __init__(self, lib: ctypes.CDLL, tmp: Path) -> None:
        self.lib = lib
        self.tmp = tmp
        self.lib.hosts_ctl.argtypes = [ctypes.c_char_p] * 4
        self.lib.hosts_ctl.restype = ctypes.c_int
        # A "resident" process: `twist` then refuses instead of replacing this process.
        ctypes.c_int.in_dll(lib, "resident").value = 1
        self._buffers: list[ctypes.Array[ctypes.c_char]] = []

    def allowed(self, allow: str, deny: str, address: str, name: str) -> bool:
        allow_path, deny_path = self.tmp / "hosts.allow", self.tmp / "hosts.deny"
        allow_path.write_text(allow)
        deny_path.write_text(deny)
        for symbol, path in (("hosts_allow_table", allow_path), ("hosts_deny_table", deny_path)):
            buffer = ctypes.create_string_buffer(str(path).encode())
            self._buffers.append(buffer)
            ctypes.c_void_p.in_dll(self.lib, symbol).value = ctypes.addressof(buffer)
        return bool(self.lib.hosts_ctl(b"sshd", name.encode(), address.encode(), b"unknown"))


@pytest.fixture(scope="module")
def libwrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Libwrap]:
    try:
        lib = ctypes.CDLL("libwrap.so.0")
    except OSError:
        pytest.skip("libwrap0 is not installed")
    yield _Libwrap(lib, tmp_path_factory.mktemp("libwrap"))


@pytest.mark.parametrize(("allow", "deny", "address", "name", "allowed"), CASES)
def test_libwrap_agrees(
    libwrap: _Libwrap, allow: str, deny: str, address: str, name: str, allowed: bool
) -> None:
    assert libwrap.allowed(allow, deny, address, name) is allowed


def test_libwrap_file_pattern(libwrap: _Libwrap, tmp_path: Path) -> None:
    patterns = tmp_path / "blocked"
    patterns.write_text("198.51.100.1 203.0.113.0/24\n.example.org\n")
    deny = f"sshd: {patterns}\n"
    for address, name in ((V4, "unknown"), ("198.51.100.2", "a.example.org"), (V6, "x")):
        ours = _decide("", deny, address, name, read_file=lambda p: Path(p).read_text())
        assert ours.allowed is libwrap.allowed("", deny, address, name)


# ---------------------------------------------------------------- parsing


def test_parse_keeps_line_numbers_and_raw_lines() -> None:
    text = (
        "# comment\n"
        "\n"
        "sshd: 198.51.100.1 \\\n"
        "      203.0.113.4\n"
        "no separator here\n"
        "ALL : 203.0.113.9 : DENY\n"
    )
    table = parse_table(text, "/etc/hosts.deny")
    first, second = table.entries
    assert (first.line, first.end_line) == (3, 4)
    assert first.raw == ("sshd: 198.51.100.1 \\\n", "      203.0.113.4\n")
    assert first.client_tokens == ["198.51.100.1", "203.0.113.4"]
    assert first.location() == "/etc/hosts.deny:3-4"
    assert (second.line, second.daemons, second.options) == (6, "ALL ", " DENY\n")
    assert second.location() == "/etc/hosts.deny:6"
    assert [s.line for s in table.skipped] == [5]


def test_parse_marks_sshguard_entries() -> None:
    text = "sshd: 198.51.100.1\n###sshguard###\nALL : 203.0.113.4 : DENY\n###sshguard###\n"
    table = parse_table(text, "/etc/hosts.allow")
    assert [e.owner for e in table.entries] == ["", "sshguard"]


def test_brackets_protect_colons() -> None:
    entry = parse_table("ALL: [2001:db8::4] [2001:db8::/32] : deny\n", "f").entries[0]
    assert entry.client_tokens == ["[2001:db8::4]", "[2001:db8::/32]"]
    assert entry.options == " deny\n"


# ---------------------------------------------------------------- the decision, explained


def test_decision_names_file_line_and_pattern() -> None:
    allow = "sshd: 198.51.100.0/24\n"
    deny = "# banned\nsshd: 192.0.2.1\nsshd: 203.0.113.0/24, 198.51.100.7\nALL: ALL\n"
    decision = _decide(allow, deny, V4, "unknown")
    assert decision.allowed is False
    assert decision.decided_by is not None
    assert decision.decided_by.entry.path == "/etc/hosts.deny"
    assert decision.decided_by.entry.line == 3
    assert decision.decided_by.matched_client == "203.0.113.0/24"
    assert decision.decided_by.effect == "deny"
    # every entry that refuses the address, for an editor: the /24 line and ALL: ALL
    assert [m.entry.line for m in decision.matches] == [3, 4]


def test_default_is_allow_with_no_entry() -> None:
    decision = _decide("", "sshd: 198.51.100.1\n", V4, "unknown")
    assert decision.allowed is True
    assert decision.decided_by is None
    assert decision.matches == ()


def test_sshguard_deny_in_hosts_allow() -> None:
    allow = "###sshguard###\nALL : 203.0.113.4 : DENY\n###sshguard###\nsshd: ALL\n"
    decision = _decide(allow, "", V4, "unknown")
    assert decision.allowed is False
    assert decision.decided_by is not None
    assert decision.decided_by.entry.path == "/etc/hosts.allow"
    assert decision.decided_by.entry.line == 2
    assert decision.decided_by.entry.owner == "sshguard"
    assert "deny" in decision.decided_by.reason


def test_bad_option_in_hosts_allow_refuses_and_says_why() -> None:
    decision = _decide("sshd: 203.0.113.4 : /usr/bin/logger hi\n", "", V4, "unknown")
    assert decision.allowed is False
    assert decision.decided_by is not None
    assert "unknown option '/usr/bin/logger'" in decision.decided_by.reason


def test_host_name_not_looked_up_is_maybe() -> None:
    decision = _decide("", "sshd: .example.com\n", V4, None)
    assert decision.allowed is None
    assert decision.decided_by is None
    assert [m.entry.line for m in decision.maybe] == [1]
    assert decision.maybe[0].match is Match.MAYBE
    assert depends_on_name(decision)
    # once looked up, it is decided
    assert _decide("", "sshd: .example.com\n", V4, "unknown").allowed is True
    assert _decide("", "sshd: .example.com\n", V4, "a.example.com").allowed is False


def test_address_patterns_need_no_name() -> None:
    for deny in ("sshd: 203.0.113.4\n", "sshd: 203.0.113.\n", "sshd: [2001:db8::]/64\n"):
        address = V6 if "[" in deny else V4
        decision = _decide("", deny, address, None)
        assert decision.allowed is False
        assert not depends_on_name(decision)


def test_maybe_before_a_definite_match_with_the_same_effect_is_decided() -> None:
    deny = "sshd: .example.com\nsshd: 203.0.113.4\n"
    decision = _decide("", deny, V4, None)
    assert decision.allowed is False
    assert decision.decided_by is not None and decision.decided_by.entry.line == 2
    assert [m.entry.line for m in decision.maybe] == [1]


def test_maybe_allow_before_a_deny_is_undecided() -> None:
    decision = _decide("sshd: .example.com\n", "sshd: 203.0.113.4\n", V4, None)
    assert decision.allowed is None
    assert decision.decided_by is not None and decision.decided_by.entry.line == 1


def test_except_with_an_unknown_name_is_maybe_only_when_it_matters() -> None:
    # ALL EXCEPT <name pattern>: depends on the name
    assert _decide("", "sshd: ALL EXCEPT .example.com\n", V4, None).allowed is None
    # <address> EXCEPT <name pattern> for another address: surely no match
    assert _decide("", "sshd: 198.51.100.1 EXCEPT .example.com\n", V4, None).allowed is True


def test_netgroup_and_ident_are_maybe() -> None:
    request = Request(client=Endpoint(V4, "unknown"))
    allow, deny = _tables("", "sshd: @trusted\n")
    assert evaluate(allow, deny, request).allowed is None
    allow, deny = _tables("", "sshd: root@203.0.113.4\n")
    decision = evaluate(allow, deny, request)
    assert decision.allowed is None
    assert "ident" in decision.maybe[0].uncertain[0]
    allow, deny = _tables("", "sshd: ALL@203.0.113.4\n")
    assert evaluate(allow, deny, request).allowed is False


def test_server_endpoint_patterns() -> None:
    allow, deny = _tables("", "sshd@203.0.113.1: ALL\n")
    on_it = Request(client=Endpoint(V4, "unknown"), server=Endpoint("203.0.113.1", None))
    elsewhere = Request(client=Endpoint(V4, "unknown"), server=Endpoint("198.51.100.9", None))
    unknown = Request(client=Endpoint(V4, "unknown"))
    assert evaluate(allow, deny, on_it).allowed is False
    assert evaluate(allow, deny, elsewhere).allowed is True
    assert evaluate(allow, deny, unknown).allowed is None


def test_file_pattern_unread_is_maybe() -> None:
    decision = _decide("", "sshd: /etc/blocked\n", V4, "unknown")
    assert decision.allowed is None
    decision = _decide("", "sshd: /etc/blocked\n", V4, "unknown", read_file=lambda p: None)
    assert decision.allowed is True
    decision = _decide(
        "", "sshd: /etc/blocked\n", V4, "unknown", read_file=lambda p: "203.0.113.0/24\n"
    )
    assert decision.allowed is False


def test_user_option_is_maybe() -> None:
    decision = _decide("sshd: 203.0.113.4 : user nobody\n", "", V4, "unknown")
    assert decision.allowed is None


@pytest.mark.parametrize(
    ("options", "default", "effect"),
    [
        (None, "allow", "allow"),
        (None, "deny", "deny"),
        (" deny\n", "allow", "deny"),
        (" DENY", "allow", "deny"),
        (" allow\n", "deny", "allow"),
        ("\n", "allow", "deny"),
        ("", "allow", "allow"),
        (" spawn /bin/echo %a\n", "deny", "deny"),
        (" spawn /bin/echo %a\n", "allow", "allow"),
        (" severity local0.notice : allow\n", "deny", "allow"),
        (" severity nosuch\n", "allow", "maybe"),
        (" rfc931 5\n", "allow", "allow"),
        (" nice abc\n", "allow", "deny"),
        (" banners /etc/banners\n", "allow", "allow"),
        (" twist\n", "allow", "deny"),
    ],
)
def test_option_effect(options: Optional[str], default: str, effect: str) -> None:
    assert option_effect(options, default)[0] == effect


def test_read_tables_missing_files_are_empty(tmp_path: Path) -> None:
    allow, deny = read_tables(str(tmp_path / "a"), str(tmp_path / "d"))
    assert not allow.present and not deny.present
    assert allow.entries == deny.entries == ()
    (tmp_path / "d").write_text("sshd: 203.0.113.4\n")
    allow, deny = read_tables(str(tmp_path / "a"), str(tmp_path / "d"))
    assert deny.present and deny.entries[0].path == str(tmp_path / "d")


# ---------------------------------------------------------------- editing one entry


@pytest.mark.parametrize(
    ("text", "token", "expected"),
    [
        ("sshd: 203.0.113.4\n", "203.0.113.4", ()),
        ("ALL : 203.0.113.4 : DENY\n", "203.0.113.4", ()),
        ("sshd: 198.51.100.1, 203.0.113.4, 192.0.2.7\n", "203.0.113.4",
         ("sshd: 198.51.100.1, 192.0.2.7\n",)),
        ("sshd: 198.51.100.1 203.0.113.4\n", "203.0.113.4", ("sshd: 198.51.100.1\n",)),
        ("sshd: 203.0.113.4,198.51.100.1 : spawn /bin/echo %a\n", "203.0.113.4",
         ("sshd: 198.51.100.1 : spawn /bin/echo %a\n",)),
        ("ALL: [2001:db8::4] [2001:db8::9]\n", "[2001:db8::4]", ("ALL: [2001:db8::9]\n",)),
        ("sshd: 198.51.100.1 \\\n      203.0.113.4\n", "203.0.113.4",
         ("sshd: 198.51.100.1\\\n", "\n")),
        ("sshd: 203.0.113.4 \\\n      198.51.100.1\n", "203.0.113.4",
         ("sshd: \\\n", "198.51.100.1\n")),
        ("sshd: 203.0.113.4 EXCEPT 203.0.113.9\n", "203.0.113.4", ()),
        ("sshd: ALL EXCEPT 203.0.113.4\n", "203.0.113.4", None),  # would widen the entry
        ("sshd: 198.51.100.1\n", "203.0.113.4", None),
    ],
)  # fmt: skip
def test_remove_client(text: str, token: str, expected: Optional[tuple[str, ...]]) -> None:
    entry = parse_table(text, "/etc/hosts.deny").entries[0]
    result = remove_client(entry, token)
    assert result == expected
    if result:
        edited = parse_table("".join(result), "/etc/hosts.deny").entries[0]
        others = [t for t in entry.client_tokens if t != token]
        assert edited.client_tokens == others
        assert edited.daemons.strip() == entry.daemons.strip()
        assert edited.options == entry.options
