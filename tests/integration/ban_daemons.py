"""A real sshguard or a real CrowdSec (agent, local API, firewall bouncer) beside a real sshd.

Everything runs in the server namespace's private mount namespace (`Sshd.start(isolate=True)`:
/etc is an overlay whose writes land in a temp dir); /run is a private tmpfs there (the
daemons' pidfiles), and for CrowdSec /var/lib/crowdsec is an overlay too (its database). The
unban CLI runs in the same namespaces, with its state dir and an empty fail2ban config dir in
the test's temp dir, so nothing reaches the host's /etc, /run, /var or firewall.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

from unban._sandbox import Link, Sshd, failure_line

SERVER4, CLIENT4 = "203.0.113.1", "203.0.113.4"


def wait_for(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


class Host:
    """The server side: sshd's mount namespace, with helpers to run things and unban there."""

    def __init__(self, link: Link, sshd: Sshd, root: Path) -> None:
        self.link = link
        self.sshd = sshd
        self.root = root
        self.log = root / "auth.log"
        self.log.touch()
        (root / "fail2ban-none").mkdir()
        self.state_dir = root / "state"
        self.run("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run")
        self.run("mkdir", "-m", "0755", "/run/sshd")

    def run(self, *argv: str, check: bool = True, input: Optional[str] = None) -> Any:
        return self.sshd.mount_ns.run(*argv, check=check, input=input)

    def write(self, path: str, text: str) -> None:
        self.run("tee", path, input=text)

    def read(self, path: str) -> str:
        proc = self.run("cat", path, check=False)
        return str(proc.stdout) if proc.returncode == 0 else ""

    def fail(self, count: int, ip: str = CLIENT4) -> None:
        """sshd failure lines for `ip` in the log the daemon tails (as syslog writes them)."""
        with self.log.open("a") as handle:
            for _ in range(count):
                handle.write(failure_line(ip))

    def unban(self, *args: str) -> Any:
        return self.run(
            sys.executable,
            "-m",
            "unban",
            "--fail2ban-conf",
            str(self.root / "fail2ban-none"),
            "--state-dir",
            str(self.state_dir),
            *args,
            check=False,
        )

    def unban_json(self, *args: str) -> Any:
        proc = self.unban(*args, "--json")
        assert proc.returncode in (0, 3), proc.stderr
        return json.loads(proc.stdout)

    def reachable(self) -> bool:
        return bool(self.link.probe(SERVER4, "--timeout", "2")["ok"])

    def change_sets(self) -> list[str]:
        changes = self.state_dir / "changes"
        return sorted(p.name for p in changes.iterdir()) if changes.is_dir() else []


SSHGUARD_CONF = """\
BACKEND="/usr/libexec/sshguard/{backend}"
FILES="{log}"
THRESHOLD=30
BLOCK_TIME=600
DETECTION_TIME=1800
WHITELIST_FILE=/etc/sshguard/whitelist
{blacklist}
"""


class Sshguard:
    """sshguard started as Debian starts it without systemd (/etc/init.d/sshguard)."""

    def __init__(self, host: Host, backend: str, blacklist: bool) -> None:
        self.host = host
        self.backend = backend
        self.blacklist = str(host.root / "blacklist.db") if blacklist else ""
        line = f"BLACKLIST_FILE=30:{self.blacklist}" if blacklist else ""
        host.write(
            "/etc/sshguard/sshguard.conf",
            SSHGUARD_CONF.format(backend=backend, log=host.log, blacklist=line),
        )

    def blocker(self) -> Optional[int]:
        proc = self.host.run("pgrep", "-f", "^/usr/libexec/sshguard/sshg-blocker", check=False)
        pids = [int(p) for p in proc.stdout.split()]
        return pids[0] if pids else None

    def start(self) -> None:
        self.host.run("/etc/init.d/sshguard", "start")
        wait_for("sshguard's blocker", lambda: self.blocker() is not None)
        wait_for("sshguard's backend", self.ready)
        if self.backend == "sshg-fw-ipset":  # the rule sshguard's docs tell you to add
            self.host.run(
                "iptables", "-I", "INPUT", "-m", "set", "--match-set", "sshguard4", "src",
                "-j", "DROP",
            )  # fmt: skip

    def restart(self) -> None:
        old = self.blocker()
        self.host.run("/etc/init.d/sshguard", "restart")
        wait_for("sshguard's new blocker", lambda: self.blocker() not in (None, old))
        wait_for("sshguard's backend", self.ready)

    def ready(self) -> bool:
        if self.backend == "sshg-fw-nft-sets":
            listed = self.host.run(
                "nft", "list", "chain", "ip", "sshguard", "blacklist", check=False
            )
            return "@attackers" in listed.stdout
        return self.host.run("ipset", "list", "-n", "sshguard4", check=False).returncode == 0

    def blocks(self, ip: str = CLIENT4) -> bool:
        if self.backend == "sshg-fw-nft-sets":
            listed = self.host.run("nft", "list", "set", "ip", "sshguard", "attackers", check=False)
            return ip in listed.stdout
        return self.host.run("ipset", "test", "sshguard4", ip, check=False).returncode == 0

    def whitelist(self) -> str:
        return self.host.read("/etc/sshguard/whitelist")
