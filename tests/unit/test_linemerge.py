from __future__ import annotations

import pytest

from unban.linemerge import Conflict, take_out

BEFORE = b"# deny\nsshd: 198.51.100.7, 203.0.113.4\nALL: 192.0.2.9\n"
WRITTEN = b"# deny\nsshd: 198.51.100.7\nALL: 192.0.2.9\n"


def test_unchanged_since_gives_the_file_before() -> None:
    assert take_out(BEFORE, WRITTEN, WRITTEN) == BEFORE


def test_a_line_appended_since_stays() -> None:
    current = WRITTEN + b"ALL: 198.51.100.66\n"
    assert take_out(BEFORE, WRITTEN, current) == BEFORE + b"ALL: 198.51.100.66\n"


def test_a_line_the_admin_changed_elsewhere_stays() -> None:
    current = WRITTEN.replace(b"192.0.2.9", b"192.0.2.10")
    assert take_out(BEFORE, WRITTEN, current) == BEFORE.replace(b"192.0.2.9", b"192.0.2.10")


def test_a_deleted_entry_goes_back_between_its_neighbours() -> None:
    before = b"# deny\nsshd: 203.0.113.4\nALL: 192.0.2.9\n"
    written = b"# deny\nALL: 192.0.2.9\n"
    current = b"# deny\nALL: 192.0.2.9\nALL: 198.51.100.66\n"
    assert take_out(before, written, current) == before + b"ALL: 198.51.100.66\n"


def test_a_grant_prepended_is_taken_out_of_a_changed_file() -> None:
    before = b"ALL: 192.0.2.9 : DENY\n"
    written = b"sshd: 203.0.113.4\n" + before
    current = written + b"sshd: 198.51.100.1\n"
    assert take_out(before, written, current) == before + b"sshd: 198.51.100.1\n"


def test_the_line_unban_wrote_changed_since_is_a_conflict() -> None:
    current = WRITTEN.replace(b"sshd: 198.51.100.7\n", b"sshd: 198.51.100.7, 198.51.100.8\n")
    with pytest.raises(Conflict) as caught:
        take_out(BEFORE, WRITTEN, current)
    assert caught.value.lines == [(2, "sshd: 198.51.100.7\n")]
    assert "line 2: 'sshd: 198.51.100.7'" in str(caught.value)


def test_a_bantime_changed_next_to_unban_s_ignoreip_stays() -> None:
    before = b"[DEFAULT]\nbantime = 10m\nignoreip = 127.0.0.1/8\n"
    written = b"[DEFAULT]\nbantime = 10m\nignoreip = 127.0.0.1/8 203.0.113.4\n"
    current = b"[DEFAULT]\nbantime = 1h\nignoreip = 127.0.0.1/8 203.0.113.4\n"
    assert (
        take_out(before, written, current) == b"[DEFAULT]\nbantime = 1h\nignoreip = 127.0.0.1/8\n"
    )
