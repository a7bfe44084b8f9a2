"""A real sshguard or a real CrowdSec (agent, local API, firewall bouncer) beside a real sshd.

Everything runs in the server namespace's private mount namespace (`Sshd.start(isolate=True)`:
/etc is an overlay whose writes land in a temp dir); /run is a private tmpfs there (the
daemons' pidfiles), and for CrowdSec /var/lib/crowdsec is an overlay too (its database). The
unban CLI runs in the same namespaces, with its state dir and an empty fail2ban config dir in
the test's temp dir, so nothing reaches the host's /etc, /run, /var or firewall.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from unban._sandbox import Link, Seen, Sshd, failure_line

SERVER4, CLIENT4 = "203.0.113.1", "203.0.113.4"


def require_installed(tools: dict[str, str]) -> None:
    """Skip when a tool's Debian package (the value) is not in this release's archive at all
    (Debian 11 has no sshguard and no crowdsec-firewall-bouncer, so 30-bans.sh installs neither
    sshguard nor crowdsec there); fail when the package is there but a tool is missing."""
    for tool, package in tools.items():
        shown = subprocess.run(["apt-cache", "show", package], capture_output=True, text=True)
        if shutil.which(tool) is None and (shown.returncode != 0 or not shown.stdout.strip()):
            pytest.skip(f"{tool}: this release's archive has no package {package}")
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (scripts/install.d/30-bans.sh)")


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

    def pgrep(self, pattern: str) -> list[int]:
        """The pids of this host's processes whose command line matches: in its own mount and
        network namespaces only, not another test's (a Debian root's suite may run beside)."""
        holder = str(self.sshd.mount_ns.pid)
        argv = ("pgrep", "--ns", holder, "--nslist", "mnt,net", "-f", pattern)
        return [int(p) for p in self.run(*argv, check=False).stdout.split()]

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

    def opens(self) -> Seen:
        return self.link.opens(SERVER4)

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
        pids = self.host.pgrep("^/usr/libexec/sshguard/sshg-blocker")
        return pids[0] if pids else None

    def processes(self) -> list[int]:
        return self.host.pgrep("/usr/libexec/sshguard/")

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
        """Stop, wait for every sshguard process to exit, start: the init script's `restart`
        starts the new one while the old backend may still tear its table down."""
        old = self.blocker()
        self.host.run("/etc/init.d/sshguard", "stop")
        wait_for("the old sshguard to exit", lambda: not self.processes())
        self.host.run("/etc/init.d/sshguard", "start")
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


class Crowdsec:
    """The crowdsec agent with its local API on 127.0.0.1:8080 of the server namespace, and the
    firewall bouncer (nftables mode) polling it every second. The package's own config, with
    the central API left out (offline), the log and acquisition pointed at the test's files."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.logs = host.root / "crowdsec-log"
        self.logs.mkdir()
        upper, work = host.root / "var-upper", host.root / "var-work"
        upper.mkdir()
        work.mkdir()
        host.run(
            "mount", "-t", "overlay", "overlay", "-o",
            f"lowerdir=/var/lib/crowdsec,upperdir={upper},workdir={work}", "/var/lib/crowdsec",
        )  # fmt: skip
        config = host.read("/etc/crowdsec/config.yaml")
        config = config.replace(
            "    online_client: # Central API credentials (to push signals and receive bad IPs)\n"
            "      credentials_path: /etc/crowdsec/online_api_credentials.yaml\n",
            "",
        )
        config = config.replace("log_dir: /var/log/", f"log_dir: {self.logs}/")
        config = config.replace("prometheus:\n  enabled: true", "prometheus:\n  enabled: false")
        assert "online_client" not in config and str(self.logs) in config
        host.write("/etc/crowdsec/config.yaml", config)
        host.write(
            "/etc/crowdsec/acquis.yaml", f"filenames:\n  - {host.log}\nlabels:\n  type: syslog\n"
        )
        local = host.read("/etc/crowdsec/bouncers/crowdsec-firewall-bouncer.yaml.local")
        assert "api_key:" in local, "the bouncer was not registered at install"
        host.write(
            "/etc/crowdsec/bouncers/crowdsec-firewall-bouncer.yaml.local",
            "mode: nftables\n"
            + "".join(line + "\n" for line in local.splitlines() if line.startswith("api_key"))
            + f"update_frequency: 1s\nlog_dir: {self.logs}/\nprometheus:\n  enabled: false\n",
        )
        self.agent: Optional[subprocess.Popen[bytes]] = None
        self.bouncer: Optional[subprocess.Popen[bytes]] = None

    def _spawn(self, *argv: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.host.sshd.mount_ns.argv(list(argv)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def cscli(self, *args: str) -> Any:
        return self.host.run("cscli", *args)

    def start(self) -> None:
        self.agent = self._spawn("crowdsec", "-c", "/etc/crowdsec/config.yaml")
        wait_for(
            "crowdsec's local API",
            lambda: self.host.run("cscli", "decisions", "list", check=False).returncode == 0,
            timeout=30,
        )
        wait_for("crowdsec's agent reading its log", self._processing, timeout=30)
        self.start_bouncer()

    def _processing(self) -> bool:
        log = self.logs / "crowdsec.log"
        return log.exists() and "Starting processing data" in log.read_text()

    def start_bouncer(self) -> None:
        self.bouncer = self._spawn(
            "crowdsec-firewall-bouncer",
            "-c",
            "/etc/crowdsec/bouncers/crowdsec-firewall-bouncer.yaml",
        )
        wait_for("the bouncer's nft set", lambda: self.elements() is not None)

    def restart_bouncer(self) -> None:
        assert self.bouncer is not None
        self.bouncer.terminate()
        self.bouncer.wait(timeout=10)
        wait_for("the bouncer's cleanup", lambda: self.elements() is None)
        self.start_bouncer()
        time.sleep(2)  # two polls: it has pulled every decision

    def elements(self) -> Optional[str]:
        listed = self.host.run(
            "nft", "list", "set", "ip", "crowdsec", "crowdsec-blacklists", check=False
        )
        return listed.stdout if listed.returncode == 0 else None

    def blocks(self, ip: str = CLIENT4) -> bool:
        return ip in (self.elements() or "")

    def decisions(self, ip: str = CLIENT4) -> list[Any]:
        out = self.cscli("decisions", "list", "-i", ip, "-o", "json").stdout
        return [d for alert in json.loads(out or "null") or [] for d in alert["decisions"] or []]

    def stop(self) -> None:
        for proc in (self.bouncer, self.agent):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
