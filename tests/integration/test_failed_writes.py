"""A write that fails (read-only file system, no space left): `unban me` puts back what it had
applied, leaves the files it never changed alone, exits 1 with the reason on one line, and
marks its change set failed, so a later `undo` has nothing to replay (no rule twice)."""

from __future__ import annotations

import json

from tests.integration import sshd_fixtures
from tests.integration.sshd_fixtures import CLIENT4
from tests.integration.test_me import EMPTY_DENY, Server, server

link = sshd_fixtures.link
sshd_factory = sshd_fixtures.sshd_factory
__all__ = ["link", "server", "sshd_factory"]


def _blocked(server: Server) -> None:
    server.fail2ban({"sshd": {}})
    server.run("iptables", "-I", "INPUT", "-s", CLIENT4, "-j", "DROP")
    server.run("ip", "route", "add", "blackhole", CLIENT4)
    server.write("/etc/hosts.deny", EMPTY_DENY + f"sshd: {CLIENT4}\n")


def _no_replay(server: Server, before: dict[str, object]) -> None:
    assert server.snapshot() == before
    listed = json.loads(server.unban("rollback", "--list", "--json").stdout)["change_sets"]
    assert [c["status"] for c in listed] == ["failed"]
    again = server.unban("undo")
    assert again.returncode == 2 and "failed and was put back: nothing to undo" in again.stderr
    assert server.snapshot() == before  # nothing undone twice: the DROP rule is there once


def test_read_only_etc(server: Server) -> None:
    _blocked(server)
    before = server.snapshot()
    # read-only as a mount point (bind): util-linux 2.41 (Debian 13) remounts through the new
    # mount API, where overlayfs refuses to reconfigure its own options
    server.run("mount", "-o", "remount,bind,ro", "/etc")
    try:
        proc = server.me(CLIENT4)
    finally:
        server.run("mount", "-o", "remount,bind,rw", "/etc")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    (line,) = proc.stderr.splitlines()
    assert "/etc/hosts.deny" in line and "Read-only file system" in line
    assert "batch(es) already applied were put back" in line and "marked failed" in line
    _no_replay(server, before)


def test_no_space_left_for_jail_local(server: Server) -> None:
    _blocked(server)
    assert server.f2b is not None
    confdir = str(server.f2b.confdir)
    before = server.snapshot()
    saved = f"{confdir}.saved"
    fill = (
        f"cp -a {confdir} {saved} && mount -t tmpfs -o size=16m tmpfs {confdir} && "
        f"cp -a {saved}/. {confdir}/ && (dd if=/dev/zero of={confdir}/.fill bs=4k || true)"
    )
    server.run("sh", "-c", fill)
    try:
        proc = server.me(CLIENT4)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        (line,) = proc.stderr.splitlines()
        assert "jail.local" in line and "No space left on device" in line, line
        server.run("rm", f"{confdir}/.fill")
        assert server.read(f"{confdir}/jail.local") == before["jail.local"]
    finally:
        server.run("sh", "-c", f"umount {confdir}; rm -rf {saved}")
    _no_replay(server, before)
