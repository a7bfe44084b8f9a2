from __future__ import annotations

import pytest

from unban.hostsedit import allow_line, apply_edits, is_exact_pattern, prepend, remove_address
from unban.tcpwrappers import parse_table

DENY = """# /etc/hosts.deny
sshd: 198.51.100.7, 203.0.113.4
ALL: 203.0.113.4
sshd : 203.0.113.0/24 EXCEPT 203.0.113.9
sshd: [2001:db8::4] [2001:db8::5]/128
sshd: 203.0.113.4/255.255.255.255 \\
   203.0.113.4/32 : spawn /bin/true
in.ftpd: 203.0.113.44
"""


def entries(text: str = DENY) -> list:  # type: ignore[type-arg]
    return list(parse_table(text, "/etc/hosts.deny").entries)


@pytest.mark.parametrize(
    ("token", "exact"),
    [
        ("203.0.113.4", True),
        ("203.0.113.4/32", True),
        ("203.0.113.4/255.255.255.255", True),
        ("203.0.113.44", False),
        ("203.0.113.", False),
        ("203.0.113.0/24", False),
        ("ALL", False),
        ("[2001:db8::4]", True),
        ("[2001:db8::4]/128", True),
        ("[2001:db8::]/64", False),
    ],
)
def test_exact_patterns(token: str, exact: bool) -> None:
    address = "2001:db8::4" if token.startswith("[") else "203.0.113.4"
    assert is_exact_pattern(token, address) is exact


def test_only_the_address_goes_and_the_rest_of_the_entry_stays() -> None:
    first, second, third, v6, continued, ftp = entries()
    edit = remove_address(first, "203.0.113.4")
    assert edit is not None and edit.new == ("sshd: 198.51.100.7\n",)
    removed = remove_address(second, "203.0.113.4")
    assert removed is not None and removed.new == () and removed.line == 3
    assert remove_address(third, "203.0.113.4") is None  # the /24 is broad: not this edit's job
    v6_edit = remove_address(v6, "2001:db8::4")
    assert v6_edit is not None and v6_edit.new == ("sshd: [2001:db8::5]/128\n",)
    gone = remove_address(continued, "203.0.113.4")
    assert gone is not None and (gone.line, gone.end_line, gone.new) == (6, 7, ())
    assert remove_address(ftp, "203.0.113.4") is None


def test_except_and_options_are_kept() -> None:
    (entry,) = entries(
        "sshd: 203.0.113.4 198.51.100.0/24 EXCEPT 198.51.100.9 : severity auth.info\n"
    )
    edit = remove_address(entry, "203.0.113.4")
    assert edit is not None
    assert edit.new == ("sshd: 198.51.100.0/24 EXCEPT 198.51.100.9 : severity auth.info\n",)


def test_apply_edits_keeps_every_other_byte_and_checks_the_lines() -> None:
    edits = [e for e in (remove_address(x, "203.0.113.4") for x in entries()) if e]
    result = apply_edits(DENY, edits)
    assert result == (
        "# /etc/hosts.deny\n"
        "sshd: 198.51.100.7\n"
        "sshd : 203.0.113.0/24 EXCEPT 203.0.113.9\n"
        "sshd: [2001:db8::4] [2001:db8::5]/128\n"
        "in.ftpd: 203.0.113.44\n"
    )
    with pytest.raises(ValueError, match="changed since it was read"):
        apply_edits(DENY.replace("198.51.100.7", "198.51.100.8"), edits)


def test_allow_line_goes_before_the_first_entry() -> None:
    text = "# hosts.allow\n\nALL: 192.0.2.1 : deny\n"
    assert prepend(text, allow_line("2001:db8::4", "unban me")) == (
        "# hosts.allow\n\n# unban me\nsshd: [2001:db8::4]\nALL: 192.0.2.1 : deny\n"
    )
    assert prepend("", allow_line("203.0.113.4", "x")) == "# x\nsshd: 203.0.113.4\n"
