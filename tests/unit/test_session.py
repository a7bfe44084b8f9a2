from __future__ import annotations

import ipaddress
import os
import struct
from pathlib import Path

from unban.session import _UTMP, find_origin, from_environment, from_utmp


def record(ut_type: int, line: str, host: str, addr: str | None) -> bytes:
    words = (0, 0, 0, 0)
    if addr:
        ip = ipaddress.ip_address(addr)
        raw = ip.packed + b"\0" * (16 - len(ip.packed))
        words = struct.unpack("<4i", raw)
    return _UTMP.pack(
        ut_type, 1234, line.encode(), b"ts/0", b"alice", host.encode(), 0, 0, 0, 0, 0, *words
    )


def test_ssh_connection_wins_and_mapped_addresses_are_unmapped() -> None:
    origin = from_environment(
        {"SSH_CONNECTION": "::ffff:203.0.113.4 51234 203.0.113.1 22"}, "this shell"
    )
    assert origin is not None and origin.address == "203.0.113.4"
    assert origin.source == "SSH_CONNECTION of this shell"
    assert from_environment({"SSH_CLIENT": "2001:db8::4 51234 22"}, "x").address == "2001:db8::4"  # type: ignore[union-attr]
    assert from_environment({"SSH_CONNECTION": "garbage"}, "x") is None
    assert from_environment({}, "x") is None


def test_utmp_record_of_the_terminal() -> None:
    data = (
        record(8, "pts/0", "198.51.100.9", "198.51.100.9")  # a dead process: ignored
        + record(7, "pts/1", "other", "198.51.100.7")
        + record(7, "pts/0", "host.example", "203.0.113.4")
        + record(7, "pts/2", "2001:db8::4", "2001:db8::4")
        + record(7, "pts/3", "203.0.113.5", None)
    )
    assert from_utmp(data, "pts/0").address == "203.0.113.4"  # type: ignore[union-attr]
    assert from_utmp(data, "pts/2").address == "2001:db8::4"  # type: ignore[union-attr]
    assert from_utmp(data, "pts/3").address == "203.0.113.5"  # type: ignore[union-attr]
    assert from_utmp(data, "pts/9") is None


def test_an_ancestor_environment_is_found_under_sudo(tmp_path: Path) -> None:
    """sudo resets SSH_CONNECTION; the login shell above it still has it."""
    me = os.getpid()
    (tmp_path / str(me)).mkdir()
    (tmp_path / str(me) / "status").write_text("Name:\tunban\nPPid:\t500\n")
    (tmp_path / "500").mkdir()
    (tmp_path / "500" / "status").write_text("Name:\tsudo\nPPid:\t400\n")
    (tmp_path / "500" / "environ").write_bytes(b"PATH=/usr/bin\0")
    (tmp_path / "400").mkdir()
    (tmp_path / "400" / "status").write_text("Name:\tbash\nPPid:\t1\n")
    (tmp_path / "400" / "environ").write_bytes(
        b"HOME=/root\0SSH_CONNECTION=203.0.113.4 5 203.0.113.1 22\0"
    )
    origin = find_origin({}, tmp_path, tmp_path / "no-utmp")
    assert origin is not None
    assert (origin.address, origin.source) == ("203.0.113.4", "SSH_CONNECTION of process 400")
