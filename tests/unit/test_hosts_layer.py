"""The hosts layer over temp files: what refuses an address, targeted or broad, the commands,
and edits that keep every other byte (libwrap's own evaluation is tests/unit/test_tcpwrappers)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from unban.errors import RuleChangedError
from unban.hostsedit import Edit, remove_address
from unban.layers.hosts import (
    HostsLayer,
    edit_command,
    edited,
    grant_command,
    owner_of_entry,
    pattern_network,
    relocate,
)
from unban.reverter import Reverter
from unban.tcpwrappers import parse_table

IP = "203.0.113.4"
IP6 = "2001:db8::4"


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    allow, deny = tmp_path / "hosts.allow", tmp_path / "hosts.deny"
    allow.write_text("# allow\n")
    deny.write_text("# deny\n")
    return allow, deny


def layer_for(files: tuple[Path, Path], tmp_path: Path) -> HostsLayer:
    allow, deny = files
    return HostsLayer(
        str(allow),
        str(deny),
        str(tmp_path / "state"),
        check_libwrap=False,
        resolve_names=False,
    )


def found(files: tuple[Path, Path], tmp_path: Path, allow: str, deny: str, ip: str = IP) -> list:  # type: ignore[type-arg]
    files[0].write_text(allow)
    files[1].write_text(deny)
    return layer_for(files, tmp_path).find(net(ip))


@pytest.mark.parametrize(
    ("deny", "targeted"),
    [
        (f"sshd: {IP}\n", True),
        (f"ALL: {IP}\n", True),
        (f"sshd: 198.51.100.7, {IP} 192.0.2.1\n", True),
        (f"sshd: {IP}/32\n", True),
        (f"sshd: {IP}/32 : spawn /bin/true\n", True),
        (f"sshd: {IP}/255.255.255.255\n", None),  # libwrap: an all-ones mask never matches
        (f"sshd: {IP} \\\n   198.51.100.7\n", True),
        ("sshd: 203.0.113.\n", False),
        ("sshd: 203.0.113.0/24\n", False),
        ("ALL: ALL\n", False),
        (f"sshd: {IP}, 203.0.113.\n", False),  # the prefix still refuses it without the address
        ("sshd: ALL EXCEPT 198.51.100.7\n", False),
    ],
)
def test_targeted_when_taking_the_address_out_stops_the_entry(
    files: tuple[Path, Path], tmp_path: Path, deny: str, targeted: bool | None
) -> None:
    findings = found(files, tmp_path, "# allow\n", "# deny\n" + deny)
    if targeted is None:
        assert findings == []
        return
    (finding,) = findings
    assert finding.layer == "hosts" and finding.verdict == "deny"
    assert finding.table == str(files[1]) and finding.line == 2
    assert finding.targeted is targeted
    assert finding.rule == ("# deny\n" + deny).splitlines()[1] or "\\" in deny


def test_nothing_when_granted_or_not_listed(files: tuple[Path, Path], tmp_path: Path) -> None:
    assert found(files, tmp_path, "# allow\n", "sshd: 198.51.100.7\n") == []
    assert found(files, tmp_path, f"sshd: {IP}\n", "ALL: ALL\n") == []
    assert found(files, tmp_path, "# allow\n", f"in.ftpd: {IP}\n") == []
    assert found(files, tmp_path, "# allow\n", f"sshd: ALL EXCEPT {IP}\n") == []


def test_every_refusing_entry_up_to_a_sure_grant(files: tuple[Path, Path], tmp_path: Path) -> None:
    allow = f"###sshguard###\nALL : {IP} : DENY\n###sshguard###\nsshd: {IP}\n"
    deny = f"sshd: {IP}\n"
    (guard,) = found(files, tmp_path, allow, deny)  # hosts.deny is never reached
    assert (guard.owner, guard.line, guard.targeted) == ("sshguard", 2, True)
    both = found(files, tmp_path, f"ALL : {IP} : DENY\n", f"ALL: {IP}\nsshd: 203.0.113.\n")
    assert [(f.table.endswith("allow"), f.line, f.owner, f.targeted) for f in both] == [
        (True, 1, "manual", True),
        (False, 1, "fail2ban", True),
        (False, 2, "manual", False),
    ]


def test_ipv6_brackets_and_cidr_targets(files: tuple[Path, Path], tmp_path: Path) -> None:
    (finding,) = found(files, tmp_path, "", f"ALL: [{IP6}]\n", IP6)
    assert finding.family == "ipv6" and finding.targeted and finding.owner == "fail2ban"
    (wide,) = found(files, tmp_path, "", "sshd: [2001:db8::]/64\n", IP6)
    assert not wide.targeted and wide.network == "2001:db8::/64"
    assert found(files, tmp_path, "", f"sshd: {IP}\n", "203.0.113.0/24") == []
    status = layer_for(files, tmp_path).status()[0]
    assert status.present and "single addresses only" in status.detail


def test_owner_and_networks() -> None:
    (entry,) = parse_table(f"ALL: {IP}\n", "/etc/hosts.deny").entries
    assert owner_of_entry(entry, IP, "/etc/hosts.deny") == "fail2ban"
    assert owner_of_entry(entry, IP, "/other") == "manual"
    (hand,) = parse_table(f"sshd: {IP}\n", "/etc/hosts.deny").entries
    assert owner_of_entry(hand, IP, "/etc/hosts.deny") == "manual"
    assert pattern_network("ALL", IP) == "0.0.0.0/0"
    assert pattern_network("ALL", IP6) == "::/0"
    assert pattern_network("203.0.113.", IP) == "203.0.113.0/24"
    assert pattern_network("203.", IP) == "203.0.0.0/8"
    assert pattern_network("203.0.113.0/255.255.255.0", IP) == "203.0.113.0/24"
    assert pattern_network("[2001:db8::]/64", IP6) == "2001:db8::/64"
    assert pattern_network(".example.com", IP) == ".example.com"


def test_commands_a_person_could_run() -> None:
    text = f"# c\nsshd: 198.51.100.7, {IP}\nALL: {IP}\nsshd: {IP} \\\n  198.51.100.8\n"
    entries = parse_table(text, "/etc/hosts.deny").entries
    edits = [remove_address(e, IP) for e in entries]
    assert [edit_command(e) for e in edits if e] == [
        "sed -i '2c\\sshd: 198.51.100.7' /etc/hosts.deny",
        "sed -i '3d' /etc/hosts.deny",
        "edit /etc/hosts.deny lines 4-5: make them read 'sshd: \\\\' / '198.51.100.8'",
    ]
    assert grant_command("/etc/hosts.allow", "# c\n\nALL: x\n", IP) == (
        "sed -i '3i sshd: 203.0.113.4' /etc/hosts.allow"
    )
    assert grant_command("/etc/hosts.allow", "# only comments\n", IP6) == (
        "echo 'sshd: [2001:db8::4]' >> /etc/hosts.allow"
    )


def _edit(text: str, line: int) -> Edit:
    entry = next(e for e in parse_table(text, "/f").entries if e.line == line)
    edit = remove_address(entry, IP)
    assert edit is not None
    return edit


def test_relocate_follows_the_entry_or_refuses() -> None:
    original = f"# c\nALL: {IP}\nsshd: {IP}, 198.51.100.7\n"
    edit = _edit(original, 3)
    assert relocate(original, original, edit) == edit
    moved = relocate(original, f"# c\nsshd: {IP}, 198.51.100.7\n", edit)
    assert moved is not None and (moved.line, moved.end_line) == (2, 2)
    grown = relocate(original, "# new\n" + original, edit)
    assert grown is not None and grown.line == 4
    gone = _edit(original, 2)
    assert relocate(original, f"# c\nsshd: {IP}, 198.51.100.7\n", gone) is None
    with pytest.raises(ValueError, match="changed since it was read"):
        relocate(original, original.replace("198.51.100.7", "198.51.100.8"), edit)
    continued = f"sshd: {IP} \\\n  198.51.100.7\n"
    edit2 = _edit(continued, 1)
    with pytest.raises(ValueError):
        relocate(continued, f"sshd: {IP} \\\n# x\n  198.51.100.7\n", edit2)


def test_edited_uses_the_text_find_read() -> None:
    original = f"ALL: {IP}\nsshd: {IP}, 198.51.100.7\n"
    payload = [("read", original), ("edit", _edit(original, 2))]
    assert edited(f"sshd: {IP}, 198.51.100.7\n", payload) == "sshd: 198.51.100.7\n"
    with pytest.raises(ValueError):
        edited(f"ALL: {IP}\nsshd: {IP}, 198.51.100.9\n", payload)


def test_apply_keeps_other_bytes_owner_and_mode_and_revert_restores(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    allow, deny = files
    text = f"# deny\r\nsshd: 198.51.100.7, {IP}\n\xe9t\xe9: x\nsshd:{IP}"
    deny.write_bytes(text.encode("latin-1"))
    os.chmod(deny, 0o640)
    layer = layer_for(files, tmp_path)
    findings = layer.find(net(IP))
    assert [f.line for f in findings] == [2, 4]
    (batch,) = layer.plan(findings)
    assert batch.scope == str(deny) and len(batch.steps) == 2
    before = deny.read_bytes()
    layer.apply(batch)
    assert deny.read_bytes() == "# deny\r\nsshd: 198.51.100.7\n\xe9t\xe9: x\n".encode("latin-1")
    assert os.stat(deny).st_mode & 0o777 == 0o640
    assert layer.find(net(IP)) == []
    (info,) = Reverter(tmp_path / "state").list()
    assert info.status == "done" and info.files[0].path == str(deny)
    layer.revert(batch)
    assert deny.read_bytes() == before


def test_broad_gets_a_grant_in_hosts_allow_and_the_pattern_stays(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    allow, deny = files
    deny.write_text("sshd: 203.0.113.0/24\n")
    allow.write_text("# allow\n\nALL: 198.51.100.9 : deny\n")
    layer = layer_for(files, tmp_path)
    (finding,) = layer.find(net(IP))
    (batch,) = layer.plan([finding])
    assert batch.scope == str(allow)
    assert batch.steps[0].command == f"sed -i '3i sshd: {IP}' {allow}"
    layer.apply(batch)
    assert deny.read_text() == "sshd: 203.0.113.0/24\n"
    assert allow.read_text().splitlines()[2:5] == [
        f"# unban me: let {IP} reach sshd (broad entries refuse it below)",
        f"sshd: {IP}",
        "ALL: 198.51.100.9 : deny",
    ]
    assert layer.find(net(IP)) == []


def test_a_changed_line_is_refused_and_nothing_written(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    _allow, deny = files
    deny.write_text(f"sshd: {IP}\n")
    layer = layer_for(files, tmp_path)
    (batch,) = layer.plan(layer.find(net(IP)))
    deny.write_text(f"sshd: {IP} 198.51.100.1\n")
    with pytest.raises(RuleChangedError, match="nothing in .* was changed"):
        layer.apply(batch)
    assert deny.read_text() == f"sshd: {IP} 198.51.100.1\n"
    assert Reverter(tmp_path / "state").list() == []


def test_a_shared_change_set_gets_the_backup_and_puts_back_only_unban_s_edit(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    _allow, deny = files
    deny.write_text(f"# x\nsshd: {IP}\n")
    change_set = Reverter(tmp_path / "state").begin("unban me test")
    layer = layer_for(files, tmp_path)
    layer.change_set = change_set
    (batch,) = layer.plan(layer.find(net(IP)))
    layer.apply(batch)
    assert deny.read_text() == "# x\n"
    (record,) = change_set.info.files
    assert record.path == str(deny) and record.written
    layer.revert(batch)  # the change set's, not the layer's, to put back
    assert deny.read_text() == "# x\n"
    with deny.open("a") as handle:
        handle.write("ALL: 198.51.100.66\n")  # fail2ban's hostsdeny action, meanwhile
    Reverter(tmp_path / "state").rollback(change_set.id)
    assert deny.read_text() == f"# x\nsshd: {IP}\nALL: 198.51.100.66\n"
    assert len(Reverter(tmp_path / "state").list()) == 1


def test_listings(files: tuple[Path, Path], tmp_path: Path) -> None:
    from unban.layers import ListQuery

    files[1].write_text(f"# d\nsshd: {IP}\n")
    listings = layer_for(files, tmp_path).listings(ListQuery())
    assert [x.title for x in listings] == [str(files[0]), str(files[1])]
    assert listings[1].lines == (f"   2  sshd: {IP}",)
