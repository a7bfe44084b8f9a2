"""unban.session over a fake /proc: the address comes from the root sshd's TCP socket as the
kernel lists it, never from an environment (tests/integration/test_session.py does it for real,
with sshd, a login and sudo)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from unban.errors import InputError
from unban.session import _UTMP, find_origin, from_environment, hex_address, utmp_pid

TCP_HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


class FakeProc:
    def __init__(self, root: Path) -> None:
        self.root = root

    def process(
        self, pid: int, ppid: int, *, uid: int = 0, exe: str = "/usr/bin/bash", tty_nr: int = 0
    ) -> Path:
        path = self.root / str(pid)
        (path / "fd").mkdir(parents=True)
        (path / "net").mkdir()
        (path / "status").write_text(f"Name:\tx\nPPid:\t{ppid}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
        (path / "stat").write_text(f"{pid} (x) S {ppid} {pid} {pid} {tty_nr} -1 0\n")
        (path / "exe").symlink_to(exe)
        return path

    def connection(self, pid: int, inode: int, remote: str, state: str = "01") -> None:
        path = self.root / str(pid)
        (path / "fd" / str(inode % 100 + 3)).symlink_to(f"socket:[{inode}]")
        name = "tcp6" if len(remote.split(":")[0]) == 32 else "tcp"
        table = path / "net" / name
        old = table.read_text() if table.exists() else TCP_HEADER
        line = f"   0: 0100CB00:0016 {remote} {state} 00000000:00000000 00:00000000 00000000     0        0 {inode} 1\n"
        table.write_text(old + line)


@pytest.fixture
def proc(tmp_path: Path) -> FakeProc:
    fake = FakeProc(tmp_path / "proc")
    fake.root.mkdir()
    return fake


def session(proc: FakeProc, me: int = 900) -> None:
    """sshd (listener, root) -> sshd [priv] (root, holds the socket) -> sshd user@pts (alice)
    -> bash (alice) -> sudo (root) -> unban (root)."""
    proc.process(100, 1, exe="/usr/sbin/sshd")
    proc.connection(100, 1000, "00000000:0000", state="0A")  # the listener
    proc.process(200, 100, exe="/usr/sbin/sshd")
    proc.connection(200, 2000, "047100CB:D431")  # 203.0.113.4:54321
    proc.process(300, 200, uid=1000, exe="/usr/sbin/sshd")
    proc.process(400, 300, uid=1000)
    proc.process(500, 400, exe="/usr/bin/sudo")
    proc.process(me, 500, exe="/usr/bin/python3")


def test_the_address_is_the_peer_of_the_root_sshd_s_connection(proc: FakeProc) -> None:
    session(proc)
    origin = find_origin({}, proc.root, Path("/nonexistent"), pid=900, tty="")
    assert origin is not None and origin.address == "203.0.113.4"
    assert origin.source == "the TCP connection of sshd process 200, as the kernel has it"


def test_a_forged_ssh_connection_is_refused_when_it_disagrees(proc: FakeProc) -> None:
    session(proc)
    forged = {"SSH_CONNECTION": "198.51.100.66 1 203.0.113.1 22"}
    with pytest.raises(InputError) as caught:
        find_origin(forged, proc.root, Path("/nonexistent"), pid=900, tty="")
    assert (
        "SSH_CONNECTION says 198.51.100.66, but this session's connection comes from 203.0.113.4"
        in str(caught.value)
    )
    agreeing = {"SSH_CONNECTION": "203.0.113.4 54321 203.0.113.1 22"}
    assert find_origin(agreeing, proc.root, Path("/nonexistent"), pid=900, tty="") is not None


def test_environments_alone_are_never_a_source(proc: FakeProc) -> None:
    proc.process(400, 1, uid=1000)  # a shell not below any sshd, e.g. su or a cron job
    (proc.root / "400" / "environ").write_bytes(b"SSH_CONNECTION=198.51.100.66 1 2 22\0")
    proc.process(900, 400)
    forged = {"SSH_CONNECTION": "198.51.100.66 1 2 22"}
    assert find_origin(forged, proc.root, Path("/nonexistent"), pid=900, tty="") is None


def test_an_sshd_a_user_runs_is_not_trusted(proc: FakeProc) -> None:
    proc.process(300, 1, uid=1000, exe="/home/alice/sshd")  # named sshd, but alice's
    proc.connection(300, 3000, "426433C6:D431")  # 198.51.100.66
    proc.process(900, 300)
    assert find_origin({}, proc.root, Path("/nonexistent"), pid=900, tty="") is None
    proc.process(310, 1, uid=0, exe="/usr/local/bin/not-sshd")
    proc.connection(310, 3100, "426433C6:D431")
    proc.process(910, 310)
    assert find_origin({}, proc.root, Path("/nonexistent"), pid=910, tty="") is None


def test_ipv6_and_mapped_peers() -> None:
    assert str(hex_address("047100CB")) == "203.0.113.4"
    assert str(hex_address("B80D0120000000000000000004000000")) == "2001:db8::4"
    mapped = hex_address("0000000000000000FFFF0000047100CB")
    assert mapped == ipaddress.IPv6Address("::ffff:203.0.113.4")


def record(ut_type: int, line: str, pid: int) -> bytes:
    return _UTMP.pack(
        ut_type, pid, line.encode(), b"ts/0", b"alice", b"forged.example", 0, 0, 0, 0, 0, 0, 0, 0, 0
    )


def test_utmp_names_the_login_process_the_kernel_is_asked_about(
    proc: FakeProc, tmp_path: Path
) -> None:
    data = record(8, "pts/7", 400) + record(7, "pts/7", 400) + record(7, "pts/8", 401)
    assert utmp_pid(data, "pts/7") == 400
    assert utmp_pid(data, "pts/9") is None
    tty = "null"  # any character device stands in for the terminal: /dev/null
    session(proc)
    device = os.stat(f"/dev/{tty}").st_rdev
    tty_nr = (
        (os.minor(device) & 0xFF) | (os.major(device) << 8) | ((os.minor(device) & ~0xFF) << 12)
    )
    (proc.root / "400" / "stat").write_text(f"400 (bash) S 300 400 400 {tty_nr} -1 0\n")
    proc.process(950, 1)  # detached from the session (screen, tmux)
    utmp = tmp_path / "utmp"
    utmp.write_bytes(record(7, tty, 400))
    origin = find_origin({}, proc.root, utmp, pid=950, tty=tty)
    assert origin is not None and origin.address == "203.0.113.4"
    assert origin.source.startswith(f"utmp record of {tty}: the TCP connection of sshd process 200")


def test_utmp_pointing_at_a_process_without_our_terminal_is_ignored(
    proc: FakeProc, tmp_path: Path
) -> None:
    session(proc)
    proc.process(950, 1)
    utmp = tmp_path / "utmp"
    utmp.write_bytes(record(7, "pts/0", 400))  # 400's terminal is not /dev/pts/0
    assert find_origin({}, proc.root, utmp, pid=950, tty="pts/0") is None


def test_from_environment_is_a_hint() -> None:
    hint = from_environment({"SSH_CLIENT": "::ffff:203.0.113.4 51234 22"})
    assert hint is not None and (hint.address, hint.source) == ("203.0.113.4", "SSH_CLIENT")
    assert from_environment({"SSH_CONNECTION": "garbage"}) is None
