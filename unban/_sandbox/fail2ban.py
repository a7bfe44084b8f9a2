"""A real fail2ban-server with its config, socket, pidfile, log and database in a temp dir."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from unban._sandbox.netns import Netns, SandboxError, alive, json_document
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
        if shutil.which("fail2ban-client") is None or not PACKAGE_CONF.is_dir():
            raise SandboxError("fail2ban is not installed (Debian package fail2ban)")
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
                # jail.conf's [sshd] says `backend = %(sshd_backend)s`, which Debian 13's
                # paths-debian.conf sets to systemd: a jail's own backend wins over DEFAULT's
                section = {"enabled": "true", "backend": sections["DEFAULT"]["backend"]}
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
            return bool(self.call("ping") == "pong")
        except ServerNotRunning:
            return False

    def start(self) -> None:
        self.client("start")
        deadline = time.monotonic() + 20
        while not self.running():
            if time.monotonic() > deadline:
                raise SandboxError(f"fail2ban did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        pid = self._pid()
        self.client("stop", check=False)
        deadline = time.monotonic() + 20
        while pid and alive(pid):
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
                raise SandboxError(f"{ip} not banned in {jail}: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)

    def db_rows(self, table: str = "bips") -> list[tuple[str, str]]:
        conn = sqlite3.connect(f"file:{self.dbfile}?mode=ro", uri=True)
        try:
            return [(str(r[0]), str(r[1])) for r in conn.execute(f"SELECT ip, jail FROM {table}")]
        finally:
            conn.close()

    # -- the CLI

    def global_args(self) -> list[str]:
        """The CLI's global options that point it at this server and a temp state dir."""
        return ["--fail2ban-conf", str(self.confdir), "--state-dir", str(self.state_dir)]

    def unban(self, *args: str) -> Any:
        return self.ns.unban(*self.global_args(), *args)

    def unban_json(self, *args: str) -> Any:
        proc = self.unban(*args, "--json")
        assert proc.returncode in (0, 3), proc.stderr
        return json_document(proc)

    def snapshot(self) -> dict[str, tuple[bytes, int, int, int]]:
        """Every file of the config dir: bytes, mode, uid, gid."""
        result = {}
        for path in sorted(self.confdir.rglob("*")):
            if path.is_file():
                info = path.stat()
                result[str(path)] = (path.read_bytes(), info.st_mode, info.st_uid, info.st_gid)
        return result
