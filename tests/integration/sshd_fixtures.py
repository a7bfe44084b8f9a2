"""A client and a server namespace joined by a veth pair, and real sshd servers in the server.

    link = sshd_fixtures.link  # in the test module, so pytest finds the fixtures
    sshd_factory = sshd_fixtures.sshd_factory

    def test_x(link, sshd_factory):
        server = sshd_factory(config="MaxStartups 1:100:1", hosts_deny="sshd: 203.0.113.4\\n")
        link.probe(SERVER4)                      # `unban probe` in the client namespace
        server.doctor(CLIENT4)                   # `unban doctor --json` where sshd runs

Layout: the server namespace is conftest's `netns` fixture (so fail2ban_factory, which also uses
`netns`, runs its fail2ban-server beside sshd) with 203.0.113.1/24 and 2001:db8::1/64; the client
namespace has 203.0.113.4/24 and 2001:db8::4/64 (IPv6 with `nodad`, usable at once).

Mount namespace: each server gets a holder process started with
`ip netns exec SERVER unshare -m --propagation private sleep infinity`. Bind mounts
(`hosts_deny=`, `hosts_allow=`: temp files over /etc/hosts.deny and /etc/hosts.allow) are made
in the holder's mount namespace with `nsenter -t HOLDER -m`, and sshd and the unban CLI are
started there too (`nsenter -t HOLDER -m -n`): sshd and doctor see the same /etc, and the host's
/etc is never touched. sshd gets its own config, a temporary ed25519 host key, a pidfile and a
log file (`-E`), listens on port 22 of the server addresses, and is killed at teardown, then the
holder. /run/sshd (sshd's privilege separation directory) is created if missing.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from tests.integration.conftest import Netns

SERVER4, CLIENT4 = "203.0.113.1", "203.0.113.4"
SERVER6, CLIENT6 = "2001:db8::1", "2001:db8::4"
SSHD = "/usr/sbin/sshd"
REPO = Path(__file__).resolve().parents[2]

# A connection that reads sshd's banner and then just waits: an unauthenticated "startup".
_HOLD = (
    "import socket, sys, time\n"
    "s = socket.create_connection((sys.argv[1], int(sys.argv[2])))\n"
    "s.recv(256)\n"
    "sys.stdout.write('held\\n'); sys.stdout.flush()\n"
    "time.sleep(float(sys.argv[3]))\n"
)


def as_user(name: str) -> list[str]:
    """argv prefix that runs a command as `name` with no supplementary groups (no root)."""
    entry = pwd.getpwnam(name)
    return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]


class Link:
    """The server namespace (conftest's `netns`) and a client namespace, joined by a veth."""

    def __init__(self, server: Netns, client: Netns) -> None:
        self.server = server
        self.client = client
        self._holds: list[subprocess.Popen[str]] = []

    def unban_client(
        self, *args: str, user: Optional[str] = None
    ) -> subprocess.CompletedProcess[str]:
        """The real CLI in the client namespace; `user` runs it without root (setpriv)."""
        argv = [sys.executable, "-m", "unban", *args]
        if user is not None:
            argv = [*as_user(user), *argv]
        return self.client.run(*argv, check=False, timeout=180)

    def probe(self, host: str, *args: str, user: Optional[str] = "nobody") -> dict[str, Any]:
        """`unban probe HOST --json` from the client, as an unprivileged user."""
        proc = self.unban_client("probe", host, *args, "--json", user=user)
        assert proc.returncode in (0, 3), proc.stderr
        result: dict[str, Any] = json.loads(proc.stdout)
        return result

    def hold(self, host: str, port: int = 22, seconds: float = 120) -> subprocess.Popen[str]:
        """Open a connection from the client and leave it unauthenticated."""
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.client.name, sys.executable, "-c", _HOLD, host,
             str(port), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self._holds.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "held", "the held connection did not get sshd's banner"
        return proc

    def close(self) -> None:
        for proc in self._holds:
            proc.kill()
            proc.wait()


def _create_client() -> Netns:
    name = f"unban-c-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    ns = Netns(name)
    ns.run("ip", "link", "set", "lo", "up")
    return ns


@pytest.fixture
def link(netns: Netns) -> Iterator[Link]:
    client = _create_client()
    veth_s, veth_c = f"us{uuid.uuid4().hex[:8]}", f"uc{uuid.uuid4().hex[:8]}"
    try:
        subprocess.run(
            ["ip", "link", "add", veth_s, "type", "veth", "peer", "name", veth_c], check=True
        )
        subprocess.run(["ip", "link", "set", veth_s, "netns", netns.name], check=True)
        subprocess.run(["ip", "link", "set", veth_c, "netns", client.name], check=True)
        for ns, dev, v4, v6 in (
            (netns, veth_s, SERVER4, SERVER6),
            (client, veth_c, CLIENT4, CLIENT6),
        ):
            ns.run("ip", "addr", "add", f"{v4}/24", "dev", dev)
            ns.run("ip", "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            ns.run("ip", "link", "set", dev, "up")
        pair = Link(netns, client)
        try:
            yield pair
        finally:
            pair.close()
    finally:
        subprocess.run(["ip", "netns", "del", client.name], check=False)


class Sshd:
    """One real sshd in the server namespace, in its own mount namespace."""

    def __init__(self, link: Link, root: Path) -> None:
        self.link = link
        self.root = root
        self.config_path = root / "sshd_config"
        self.log_path = root / "sshd.log"
        self.pidfile = root / "sshd.pid"
        self.hostkey = root / "ssh_host_ed25519_key"
        self._holder: Optional[subprocess.Popen[bytes]] = None

    # -- setup

    def start(
        self,
        config: str = "",
        *,
        hosts_deny: Optional[str] = None,
        hosts_allow: Optional[str] = None,
        listen: tuple[str, ...] = (SERVER4, SERVER6),
    ) -> None:
        if not Path(SSHD).exists():
            pytest.fail("openssh-server is not installed (Debian package openssh-server)")
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.hostkey)], check=True
        )
        lines = [
            "Port 22",
            *(f"ListenAddress {address}" for address in listen),
            f"HostKey {self.hostkey}",
            f"PidFile {self.pidfile}",
            "UsePAM no",
            config,
        ]
        self.config_path.write_text("\n".join(lines) + "\n")
        self.log_path.touch()
        self._holder = subprocess.Popen(
            ["ip", "netns", "exec", self.link.server.name, "unshare", "-m",
             "--propagation", "private", "sleep", "infinity"],
        )  # fmt: skip
        self._wait_for_namespace()
        for name, text in (("hosts.deny", hosts_deny), ("hosts.allow", hosts_allow)):
            if text is not None:
                self.bind(name, text)
        self.run(SSHD, "-f", str(self.config_path), "-E", str(self.log_path))
        self._wait_listening()

    def bind(self, name: str, text: str) -> Path:
        """Put `text` over /etc/NAME, inside this server's mount namespace only."""
        source = self.root / name
        source.write_text(text)
        target = f"/etc/{name}"
        if not Path(target).exists():
            pytest.fail(f"{target} is missing on this host: nothing to bind-mount over")
        self.run("mount", "--bind", str(source), target)
        return source

    def _wait_for_namespace(self) -> None:
        assert self._holder is not None
        own = os.readlink("/proc/self/ns/mnt")
        deadline = time.monotonic() + 10
        while True:
            try:
                if os.readlink(f"/proc/{self._holder.pid}/ns/mnt") != own:
                    comm = Path(f"/proc/{self._holder.pid}/comm").read_text().strip()
                    if comm == "sleep":
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the mount-namespace holder did not start")
            time.sleep(0.02)

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            out = self.run("ss", "-Htln", "( sport = :22 )", check=False).stdout
            if out.strip() and self.pidfile.exists():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"sshd did not start: {self.log_path.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            pid = 0
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if self._holder is not None:
            self._holder.kill()
            self._holder.wait()
            self._holder = None

    # -- running things where sshd runs

    def run(
        self, *argv: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        assert self._holder is not None
        proc = subprocess.run(
            ["nsenter", "-t", str(self._holder.pid), "-m", "-n", f"--wd={REPO}", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{argv} failed ({proc.returncode}): {proc.stderr}")
        return proc

    def unban(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "unban", *args, check=False, timeout=180)

    def unban_json(self, *args: str) -> Any:
        proc = self.unban(*args, "--json")
        assert proc.returncode in (0, 3), proc.stderr
        return json.loads(proc.stdout)

    def doctor(self, address: str, *args: str, global_args: tuple[str, ...] = ()) -> Any:
        """`unban doctor ADDRESS --json` against this sshd's config and log."""
        proc = self.unban(
            *global_args,
            "doctor",
            address,
            "--sshd-config",
            str(self.config_path),
            "--log",
            str(self.log_path),
            *args,
            "--json",
        )
        assert proc.returncode in (0, 3), proc.stderr
        result = json.loads(proc.stdout)
        result["returncode"] = proc.returncode
        return result


SshdFactory = Callable[..., Sshd]


@pytest.fixture
def sshd_factory(link: Link, tmp_path: Path) -> Iterator[SshdFactory]:
    """Start real sshd servers in the server namespace; every one is stopped at teardown."""
    servers: list[Sshd] = []

    def make(config: str = "", **kwargs: Any) -> Sshd:
        root = tmp_path / f"sshd{len(servers)}"
        root.mkdir(mode=0o755)
        server = Sshd(link, root)
        servers.append(server)
        server.start(config, **kwargs)
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.stop()
