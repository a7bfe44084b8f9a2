"""A server namespace with sshd and a firewall manager's files, for the owners' tests.

    box = owners_box          # the fixture: sshd with an /etc overlay, a client namespace
    box.write("/etc/iptables/rules.v4", text)
    box.boot_persistent()     # netfilter-persistent's own plugins load the files
    box.me(CLIENT4)           # `python -m unban --state-dir ... me ADDR --no-ignore --json`
    box.opens(SERVER4)        # the client reads sshd's banner (within 5 s)

Everything runs in sshd's private mount namespace (`Sshd.start(isolate=True)`): /etc is an
overlay whose writes land in a temp dir, /lib/ufw gets one too (`overlay`), and the .debs of
netfilter-persistent, iptables-persistent and ipset-persistent (downloaded by
scripts/install.d/40-owners.sh; Debian's ufw Breaks them, so they are never installed) are
unpacked into a temp dir whose plugins (`plugins.d/*`) are run as `netfilter-persistent start`
runs them (`run-parts -a start`).
"""

from __future__ import annotations

import glob
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from tests.integration.sshd_fixtures import Link, Sshd
from unban._sandbox import Seen, json_document

DEBS = "/var/cache/unban-tests/debs"
PERSISTENT = ("netfilter-persistent", "iptables-persistent", "ipset-persistent")


class Box:
    def __init__(self, link: Link, sshd: Sshd, root: Path) -> None:
        self.link = link
        self.sshd = sshd
        self.root = root
        self.state_dir = root / "state"
        self.empty_conf = root / "no-fail2ban"
        self.empty_conf.mkdir()
        self._persistent: Optional[Path] = None
        self._firewalld: Optional[subprocess.Popen[bytes]] = None
        self._bus = False

    def run(
        self, *argv: str, check: bool = True, input: Optional[str] = None
    ) -> subprocess.CompletedProcess[str]:
        return self.sshd.mount_ns.run(*argv, check=check, input=input)

    def write(self, path: str, text: str, mode: str = "0640") -> None:
        self.run("mkdir", "-p", str(Path(path).parent))
        self.run("tee", path, input=text)
        self.run("chmod", mode, path)

    def read(self, path: str) -> str:
        return self.run("cat", path).stdout

    def overlay(self, path: str) -> None:
        """An overlay on `path` in this mount namespace only."""
        name = path.strip("/").replace("/", "-")
        upper, work = self.root / f"{name}-upper", self.root / f"{name}-work"
        upper.mkdir()
        work.mkdir()
        self.run(
            "mount", "-t", "overlay", "overlay", "-o",
            f"lowerdir={path},upperdir={upper},workdir={work}", path,
        )  # fmt: skip

    def unban(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(
            sys.executable, "-m", "unban", "--state-dir", str(self.state_dir),
            "--fail2ban-conf", str(self.empty_conf), *args, check=False,
        )  # fmt: skip

    def me(self, address: str, *args: str) -> tuple[int, Any]:
        proc = self.unban("me", address, "--no-ignore", "--json", *args)
        assert proc.returncode in (0, 3), proc.stdout + proc.stderr
        return proc.returncode, json_document(proc)

    def undo(self) -> None:
        proc = self.unban("undo")
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def change_sets(self) -> list[str]:
        changes = self.state_dir / "changes"
        return sorted(p.name for p in changes.iterdir()) if changes.is_dir() else []

    def reachable(self, host: str) -> bool:
        return bool(self.link.probe(host, "--timeout", "2")["ok"])

    def opens(self, host: str) -> Seen:
        return self.link.opens(host)

    # -- firewalld on a private system bus

    def start_firewalld(self) -> None:
        """dbus-daemon --system and firewalld in this mount namespace: /run and /var/log are
        tmpfs here (sshd's /run/sshd is made again in it), the config is the /etc overlay's."""
        if self._firewalld is None and self._bus is False:
            self.run("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run")
            self.run("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/var/log")
            self.run("mkdir", "-m", "0755", "/run/sshd", "/run/dbus")
            self.run("dbus-daemon", "--system", "--fork")
            self._bus = True
        argv = ["firewalld", "--nofork", "--nopid"]
        if "--log-target" in self.run("firewalld", "--help").stdout:
            argv += ["--log-target", "console"]  # 1.x on; 0.9 (Debian 11) logs to its file only
        log = open(self.root / "firewalld.log", "ab")  # noqa: SIM115 - the daemon's stdout
        self._firewalld = subprocess.Popen(
            self.sshd.mount_ns.argv(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 30
        while self.run("firewall-cmd", "--state", check=False).stdout.strip() != "running":
            if time.monotonic() > deadline or self._firewalld.poll() is not None:
                raise AssertionError((self.root / "firewalld.log").read_text())
            time.sleep(0.2)

    def stop_firewalld(self) -> None:
        if self._firewalld is not None:
            self._firewalld.terminate()
            self._firewalld.wait(timeout=30)
            self._firewalld = None

    # -- boot-time loads

    def flush_kernel(self) -> None:
        """What a reboot leaves: no rules, no sets."""
        for tool in ("iptables", "ip6tables"):
            for table in ("filter", "raw"):
                self.run(tool, "-t", table, "-F")
                self.run(tool, "-t", table, "-X")
            self.run(tool, "-P", "INPUT", "ACCEPT")
        self.run("ipset", "destroy", check=False)
        self.run("nft", "flush", "ruleset")

    def boot_persistent(self) -> None:
        """`netfilter-persistent start`: its plugins, from the unpacked packages."""
        root = self._unpacked()
        self.run("run-parts", "-a", "start", str(root / "usr/share/netfilter-persistent/plugins.d"))

    def _unpacked(self) -> Path:
        if self._persistent is None:
            root = self.root / "persistent"
            for package in PERSISTENT:
                debs = glob.glob(f"{DEBS}/{package}_*.deb")
                if not debs:
                    pytest.fail(f"{package} .deb missing: run scripts/install.d/40-owners.sh")
                subprocess.run(["dpkg-deb", "-x", debs[0], str(root)], check=True)
            self._persistent = root
        return self._persistent


@pytest.fixture
def owners_box(link: Link, sshd_factory: Callable[..., Sshd], tmp_path: Path) -> Iterator[Box]:
    sshd = sshd_factory(isolate=True)
    box = Box(link, sshd, tmp_path)
    box.write("/etc/hosts.allow", "# hosts.allow (test)\n", "0644")
    box.write("/etc/hosts.deny", "# hosts.deny (test)\n", "0644")
    try:
        yield box
    finally:
        box.stop_firewalld()
