"""`unban me` without an address takes it from the kernel: a real SSH login (a key, a user made
in the server's private /etc overlay) into a real sshd, then `sudo unban me` through a sudoers
line written in that overlay (never in the host's sudoers), with a forged SSH_CONNECTION."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.integration import sshd_fixtures
from tests.integration.sshd_fixtures import CLIENT4, SERVER4, Link, Sshd
from unban._sandbox import json_document

link = sshd_fixtures.link
sshd_factory = sshd_fixtures.sshd_factory

USER = "unbantester"
FORGED = "198.51.100.66"


class Login:
    def __init__(self, link: Link, sshd: Sshd, root: Path) -> None:
        self.link, self.sshd, self.root = link, sshd, root
        self.key = root / "id_ed25519"
        self.state = root / "state"
        self.conf = root / "no-fail2ban"
        self.conf.mkdir()

    def sudoers(self, extra: str = "") -> None:
        line = f"{USER} ALL=(root) NOPASSWD: {sys.executable} -m unban *\n"
        path = "/etc/sudoers.d/unban-test"
        self.sshd.mount_ns.run("tee", path, input=extra + line)
        self.sshd.mount_ns.run("chmod", "0440", path)

    def unban_argv(self) -> list[str]:
        return [
            "sudo", "-n", sys.executable, "-m", "unban",
            "--state-dir", str(self.state), "--fail2ban-conf", str(self.conf),
            "me", "--dry-run", "--json", "--sshd-config", str(self.sshd.config_path),
        ]  # fmt: skip

    def over_ssh(self, command: str) -> subprocess.CompletedProcess[str]:
        """`command` in a real SSH session of USER, from the client at CLIENT4."""
        return self.link.client.run(
            "ssh", "-i", str(self.key), "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", f"{USER}@{SERVER4}", command,
            check=False,
        )  # fmt: skip


@pytest.fixture
def login(link: Link, sshd_factory: Callable[..., Sshd], tmp_path: Path) -> Login:
    root = tmp_path / "login"
    root.mkdir(mode=0o755)
    key = root / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    keys = "/etc/ssh/unban-test-keys"  # sshd reads it as the user: not under a 0700 tmp dir
    config = f"AuthorizedKeysFile {keys}\nStrictModes no\nPasswordAuthentication no\n"
    sshd = sshd_factory(config=config, isolate=True)
    # the user and its key exist only in the server's overlay of /etc; '*': no password, but
    # not a locked account
    sshd.mount_ns.run("useradd", "-M", "-N", "-d", "/", "-s", "/bin/sh", "-p", "*", USER)
    sshd.mount_ns.run("tee", keys, input=(root / "id_ed25519.pub").read_text())
    return Login(link, sshd, root)


def _json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode in (0, 3), proc.stdout + proc.stderr
    return json_document(proc)


def test_sudo_unban_me_takes_the_kernel_s_peer_not_a_forged_ssh_connection(login: Login) -> None:
    login.sudoers()
    command = f"SSH_CONNECTION='{FORGED} 1 {SERVER4} 22' " + shlex.join(login.unban_argv())
    data = _json(login.over_ssh(command))
    assert data["address"] == CLIENT4
    assert "the TCP connection of sshd process" in data["address_source"]
    assert FORGED not in json.dumps(data)


def test_a_forged_hint_that_sudo_keeps_is_refused(login: Login) -> None:
    login.sudoers(extra=f'Defaults:{USER} env_keep += "SSH_CONNECTION"\n')
    command = f"SSH_CONNECTION='{FORGED} 1 {SERVER4} 22' " + shlex.join(login.unban_argv())
    proc = login.over_ssh(command)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"SSH_CONNECTION says {FORGED}, but this session's connection comes from {CLIENT4}" in (
        proc.stderr
    )


def test_no_ssh_session_above_is_refused_with_the_way_to_name_it(login: Login) -> None:
    login.sudoers()
    proc = login.sshd.mount_ns.run(
        "runuser", "-u", USER, "--", "env", f"SSH_CONNECTION={FORGED} 1 {SERVER4} 22",
        *login.unban_argv(),
        check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no SSH connection found above this process" in proc.stderr
    assert "`unban me ADDRESS`" in proc.stderr
    assert FORGED not in proc.stdout
