"""A real fail2ban-server in a throwaway network namespace, with everything under a temp dir.

    def test_x(fail2ban_factory):
        f2b = fail2ban_factory(jails={"sshd": {"banaction": "nftables-multiport"}})
        f2b.fail("203.0.113.4")            # two failure lines in the log the sshd jail reads
        f2b.wait_banned("sshd", "203.0.113.4")
        f2b.unban("remove", "203.0.113.4")  # the real CLI, inside the namespace

The config dir is a copy of the Debian package's /etc/fail2ban (action.d, filter.d, jail.conf,
paths-*.conf; its jail.d is left out), plus a fail2ban.local pointing the socket, pidfile, log
and database into the temp dir, and a jail.local (`backend = polling`, `maxretry = 2`). The host's
/etc/fail2ban and firewall are never touched; every server started is stopped at teardown.
Use it in a test module with
`fail2ban_factory = fail2ban_fixtures.fail2ban_factory` (or import it in a conftest).
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from tests.integration.conftest import Netns
from unban.fail2ban.client import Client, ServerNotRunning

PACKAGE_CONF = Path("/etc/fail2ban")
CONF_PARTS = ("action.d", "filter.d", "fail2ban.conf", "jail.conf")

DEFAULTS = {
    "backend": "polling",
    "usedns": "no",
    "maxretry": "2",
    "findtime": "1h",
    "bantime": "1h",
    "banaction": "iptables-multiport",
    "banaction_allports": "iptables-allports",
}


def failure_line(ip: str, when: Optional[float] = None) -> str:
    """An sshd failure line as syslog writes it (fail2ban's sshd filter matches it)."""
    stamp = time.strftime("%b %e %H:%M:%S", time.localtime(when))
    return f"{stamp} host sshd[4242]: Failed password for root from {ip} port 42421 ssh2\n"


def render_ini(sections: Mapping[str, Mapping[str, str]]) -> str:
    out = []
    for name, options in sections.items():
        out.append(f"[{name}]")
        out.extend(f"{key} = {value}" for key, value in options.items())
        out.append("")
    return "\n".join(out)


class Fail2ban:
    """One fail2ban-server's files, and helpers to drive and inspect it."""

    def __init__(self, ns: Netns, root: Path) -> None:
        self.ns = ns
        self.root = root
        self.confdir = root / "conf"
        self.authlog = root / "auth.log"
        self.log = root / "fail2ban.log"
        self.socket = root / "run" / "fail2ban.sock"
        self.pidfile = root / "run" / "fail2ban.pid"
        self.dbfile = root / "lib" / "fail2ban.sqlite3"
        self.state_dir = root / "state"

    # -- the config

    def write_config(
        self,
        *,
        jails: Mapping[str, Mapping[str, str]],
        default: Optional[Mapping[str, str]] = None,
        files: Optional[Mapping[str, str]] = None,
        jail_local: Optional[str] = None,
    ) -> None:
        self.confdir.mkdir(mode=0o755)
        for part in CONF_PARTS:
            source = PACKAGE_CONF / part
            if source.is_dir():
                shutil.copytree(source, self.confdir / part)
            else:
                shutil.copy2(source, self.confdir / part)
        for paths in PACKAGE_CONF.glob("paths-*.conf"):
            shutil.copy2(paths, self.confdir / paths.name)
        (self.confdir / "jail.d").mkdir(mode=0o755)
        (self.root / "run").mkdir(mode=0o755)
        (self.root / "lib").mkdir(mode=0o755)
        self.authlog.touch()
        self.log.touch()
        (self.confdir / "fail2ban.local").write_text(
            render_ini(
                {
                    "Definition": {
                        "loglevel": "INFO",
                        "logtarget": str(self.log),
                        "socket": str(self.socket),
                        "pidfile": str(self.pidfile),
                        "dbfile": str(self.dbfile),
                    }
                }
            )
        )
        if jail_local is None:
            sections: dict[str, dict[str, str]] = {"DEFAULT": {**DEFAULTS, **(default or {})}}
            for name, options in jails.items():
                section = {"enabled": "true"}
                if name == "recidive":
                    section.update({"logpath": str(self.log), "maxretry": "1", "findtime": "1d"})
                else:
                    section.update({"logpath": str(self.authlog)})
                section.update(options)
                sections[name] = section
            jail_local = render_ini(sections)
        (self.confdir / "jail.local").write_text(jail_local)
        for relative, text in (files or {}).items():
            path = self.confdir / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    # -- the server

    def client(self, *args: str, check: bool = True) -> Any:
        return self.ns.run("fail2ban-client", "-c", str(self.confdir), *args, check=check)

    def call(self, *command: str) -> Any:
        """One command over the socket (the socket is a file: no need to enter the namespace)."""
        with Client(str(self.socket)) as client:
            return client.call(list(command))

    def running(self) -> bool:
        try:
            return self.call("ping") == "pong"
        except ServerNotRunning:
            return False

    def start(self) -> None:
        self.client("start")
        deadline = time.monotonic() + 20
        while not self.running():
            if time.monotonic() > deadline:
                raise AssertionError(f"fail2ban did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        pid = self._pid()
        self.client("stop", check=False)
        deadline = time.monotonic() + 20
        while pid and _alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.05)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _pid(self) -> int:
        try:
            return int(self.pidfile.read_text().strip() or 0)
        except (OSError, ValueError):
            return 0

    # -- bans

    def fail(self, ip: str, count: int = 2) -> None:
        with self.authlog.open("a") as handle:
            for _ in range(count):
                handle.write(failure_line(ip))

    def banned(self, jail: str) -> list[str]:
        return [str(ip) for ip in self.call("get", jail, "banip")]

    def ignoreip(self, jail: str) -> list[str]:
        return [str(ip) for ip in self.call("get", jail, "ignoreip")]

    def wait_banned(self, jail: str, ip: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while ip not in self.banned(jail):
            if time.monotonic() > deadline:
                raise AssertionError(f"{ip} not banned in {jail}: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def db_rows(self, table: str = "bips") -> list[tuple[str, str]]:
        conn = sqlite3.connect(f"file:{self.dbfile}?mode=ro", uri=True)
        try:
            return [(str(r[0]), str(r[1])) for r in conn.execute(f"SELECT ip, jail FROM {table}")]
        finally:
            conn.close()

    # -- the CLI

    def unban(self, *args: str) -> Any:
        return self.ns.unban(
            "--fail2ban-conf", str(self.confdir), "--state-dir", str(self.state_dir), *args
        )

    def unban_json(self, *args: str) -> Any:
        import json

        proc = self.unban(*args, "--json")
        assert proc.returncode in (0, 3), proc.stderr
        return json.loads(proc.stdout)

    def snapshot(self) -> dict[str, tuple[bytes, int, int, int]]:
        """Every file of the config dir: bytes, mode, uid, gid."""
        result = {}
        for path in sorted(self.confdir.rglob("*")):
            if path.is_file():
                info = path.stat()
                result[str(path)] = (path.read_bytes(), info.st_mode, info.st_uid, info.st_gid)
        return result


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


Factory = Callable[..., Fail2ban]


@pytest.fixture
def fail2ban_factory(netns: Netns, tmp_path: Path) -> Iterator[Factory]:
    """Start fail2ban servers in `netns`: factory(jails=..., default=..., files=..., start=True)."""
    if shutil.which("fail2ban-client") is None or not PACKAGE_CONF.is_dir():
        pytest.fail("fail2ban is not installed (Debian package fail2ban)")
    servers: list[Fail2ban] = []

    def make(
        *,
        jails: Optional[Mapping[str, Mapping[str, str]]] = None,
        default: Optional[Mapping[str, str]] = None,
        files: Optional[Mapping[str, str]] = None,
        jail_local: Optional[str] = None,
        start: bool = True,
    ) -> Fail2ban:
        root = tmp_path / f"f2b{len(servers)}"
        root.mkdir(mode=0o755)
        server = Fail2ban(netns, root)
        servers.append(server)
        server.write_config(
            jails={"sshd": {}} if jails is None else jails,
            default=default,
            files=files,
            jail_local=jail_local,
        )
        if start:
            server.start()
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.stop()
