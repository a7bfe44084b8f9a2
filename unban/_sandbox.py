"""Throwaway network namespaces with a real sshd and a real fail2ban-server.

Shared by scripts/sandbox (try unban without touching the host) and the integration tests'
fixtures (tests/integration/conftest.py, fail2ban_fixtures.py, sshd_fixtures.py), which keep
their public names by re-exporting these. Needs root; not part of unban's command line.

- `Netns`: a named network namespace (`ip netns add`); `run` executes inside it.
- `MountNs`: the same network namespace seen from a private mount namespace (a holder process
  started with `unshare -m`); `run` enters both with `nsenter`.
- `Link`: the server namespace and a client namespace joined by a veth pair: server
  203.0.113.1/24 and 2001:db8::1/64, client 203.0.113.4/24 and 2001:db8::4/64 (`nodad`).
- `Sshd`: a real sshd in the server namespace, in its own mount namespace, with its own config,
  host key, pidfile and log. With `isolate=True`, /etc is an overlay there (writes land in a
  temp dir) and /run is a private tmpfs when the host has no /run/sshd; otherwise /run/sshd is
  created on the host if missing, as the integration fixtures always did.
- `Fail2ban`: a fail2ban-server whose config dir is a copy of the package's /etc/fail2ban plus a
  fail2ban.local/jail.local pointing everything (socket, pidfile, log, database) into a temp dir.

Nothing here changes the host's /etc, firewall or services: rules made in a namespace stay there,
and every process started is stopped by `stop`/`close`.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Callable, Optional

from unban.fail2ban.client import Client, ServerNotRunning

SERVER4, CLIENT4 = "203.0.113.1", "203.0.113.4"
SERVER6, CLIENT6 = "2001:db8::1", "2001:db8::4"
SSHD = "/usr/sbin/sshd"
REPO = Path(__file__).resolve().parents[1]
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


class SandboxError(Exception):
    """A namespace, sshd or fail2ban could not be set up."""


# ---------------------------------------------------------------- namespaces


class Netns:
    """A named network namespace (`ip netns add`); commands run inside it with `ip netns exec`."""

    def __init__(self, name: str) -> None:
        self.name = name

    @classmethod
    def create(cls, prefix: str) -> Netns:
        """A new namespace `PREFIX-xxxxxxxx` with its loopback up."""
        ns = cls(f"{prefix}-{uuid.uuid4().hex[:8]}")
        try:
            subprocess.run(["ip", "netns", "add", ns.name], check=True)
            ns.run("ip", "link", "set", "lo", "up")
        except BaseException:
            ns.delete()
            raise
        return ns

    def delete(self) -> None:
        """Stop whatever still runs in the namespace (only processes started for it), then
        delete it; its veth end goes with it, and the CLI's state dir too."""
        kill_members(self.name)
        subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    @property
    def state_dir(self) -> Path:
        """The CLI's default state dir for runs in this namespace (never the host's
        /var/lib/unban; an explicit --state-dir still wins)."""
        return Path("/tmp") / f"unban-state-{self.name}"

    def argv(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(
        self, *argv: str, input: Optional[str] = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.argv(argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{list(argv)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Move this (single-threaded) process into the namespace for in-process work."""
        libc = ctypes.CDLL(None, use_errno=True)
        clone_newnet = 0x40000000
        with open("/proc/self/ns/net") as home, open(f"/run/netns/{self.name}") as target:
            if libc.setns(target.fileno(), clone_newnet) != 0:
                raise OSError(ctypes.get_errno(), "setns into the namespace failed")
            try:
                yield
            finally:
                if libc.setns(home.fileno(), clone_newnet) != 0:
                    raise OSError(ctypes.get_errno(), "setns back to the host namespace failed")

    def unban(
        self, *args: str, input: Optional[str] = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run the real CLI inside the namespace."""
        state = f"UNBAN_STATE_DIR={self.state_dir}"
        return self.run(
            "env", state, sys.executable, "-m", "unban", *args, input=input, check=False,
            timeout=timeout,
        )  # fmt: skip

    def unban_json(self, *args: str) -> Any:
        proc = self.unban(*args, "--json")
        assert proc.returncode in (0, 3), proc.stderr
        return json_document(proc)


class MountNs(Netns):
    """`netns` as seen from the private mount namespace of process `pid` (see `Sshd`)."""

    def __init__(self, netns: Netns, pid: int) -> None:
        super().__init__(netns.name)
        self.pid = pid

    def argv(self, argv: Sequence[str]) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-m", "-n", f"--wd={REPO}", *argv]


def json_document(proc: subprocess.CompletedProcess[str]) -> Any:
    """The --json document a run printed: all of its stdout, with the run's exit code in it,
    and valid against unban's schema where jsonschema is installed (the dev extra)."""
    import importlib

    from unban.schema import schema

    document = json.loads(proc.stdout)
    assert document["exit_code"] == proc.returncode, (document["exit_code"], proc.returncode)
    try:
        jsonschema: Any = importlib.import_module("jsonschema")
    except ImportError:
        return document
    jsonschema.Draft202012Validator(schema()).validate(document)
    return document


def kill_members(name: str) -> None:
    """SIGKILL every process left in network namespace `name` (the ones a sandbox started)."""
    proc = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
    for word in proc.stdout.split():
        if word.isdigit() and int(word) != os.getpid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(word), signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


# ---------------------------------------------------------------- client and server, joined

# A connection that reads sshd's banner and then just waits: an unauthenticated "startup".
HOLD_SCRIPT = (
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
    """The server namespace and a client namespace, joined by a veth pair."""

    def __init__(self, server: Netns, client: Netns) -> None:
        self.server = server
        self.client = client
        self._holds: list[subprocess.Popen[str]] = []

    @classmethod
    def create(cls, server: Netns, client_prefix: str = "unban-c") -> Link:
        """A client namespace and a veth pair; addresses as in the module docstring."""
        client = Netns.create(client_prefix)
        veth_s, veth_c = f"us{uuid.uuid4().hex[:8]}", f"uc{uuid.uuid4().hex[:8]}"
        try:
            subprocess.run(
                ["ip", "link", "add", veth_s, "type", "veth", "peer", "name", veth_c], check=True
            )
            subprocess.run(["ip", "link", "set", veth_s, "netns", server.name], check=True)
            subprocess.run(["ip", "link", "set", veth_c, "netns", client.name], check=True)
            for ns, dev, v4, v6 in (
                (server, veth_s, SERVER4, SERVER6),
                (client, veth_c, CLIENT4, CLIENT6),
            ):
                ns.run("ip", "addr", "add", f"{v4}/24", "dev", dev)
                ns.run("ip", "addr", "add", f"{v6}/64", "dev", dev, "nodad")
                ns.run("ip", "link", "set", dev, "up")
        except BaseException:
            # A veth end still on the host (moved nowhere yet) goes with its peer.
            subprocess.run(["ip", "link", "del", veth_s], check=False, capture_output=True)
            client.delete()
            raise
        return cls(server, client)

    def unban_client(
        self, *args: str, user: Optional[str] = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        """The real CLI in the client namespace; `user` runs it without root (setpriv)."""
        argv = [sys.executable, "-m", "unban", *args]
        if user is not None:
            argv = [*as_user(user), *argv]
        return self.client.run(*argv, check=False, timeout=timeout)

    def probe(self, host: str, *args: str, user: Optional[str] = "nobody") -> dict[str, Any]:
        """`unban probe HOST --json` from the client, as an unprivileged user."""
        proc = self.unban_client("probe", host, *args, "--json", user=user)
        assert proc.returncode in (0, 3), proc.stderr
        result: dict[str, Any] = json_document(proc)
        return result

    def hold(self, host: str, port: int = 22, seconds: float = 120) -> subprocess.Popen[str]:
        """Open a connection from the client and leave it unauthenticated."""
        proc = subprocess.Popen(
            self.client.argv([sys.executable, "-c", HOLD_SCRIPT, host, str(port), str(seconds)]),
            stdout=subprocess.PIPE,
            text=True,
        )
        self._holds.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "held", "the held connection did not get sshd's banner"
        return proc

    def close(self) -> None:
        """Close the held connections (the namespaces stay)."""
        for proc in self._holds:
            proc.kill()
            proc.wait()
        self._holds.clear()

    def delete(self) -> None:
        """close(), then delete the client namespace (and with it the veth pair)."""
        self.close()
        self.client.delete()


# ---------------------------------------------------------------- sshd


class Sshd:
    """One real sshd in the server namespace, in its own mount namespace.

    The mount namespace belongs to a holder process, started with
    `ip netns exec SERVER unshare -m --propagation private sleep infinity`. Bind mounts
    (`hosts_deny=`, `hosts_allow=`: temp files over /etc/hosts.deny and /etc/hosts.allow) are
    made there, and sshd and the unban CLI run there too (`nsenter -t HOLDER -m -n`): they see
    the same /etc, and the host's /etc is never touched.
    """

    def __init__(self, link: Link, root: Path) -> None:
        self.link = link
        self.root = root
        self.config_path = root / "sshd_config"
        self.log_path = root / "sshd.log"
        self.pidfile = root / "sshd.pid"
        self.hostkey = root / "ssh_host_ed25519_key"
        self._holder: Optional[subprocess.Popen[bytes]] = None

    @property
    def mount_ns(self) -> MountNs:
        """The server namespace as sshd sees it (for fail2ban or the CLI beside it)."""
        assert self._holder is not None, "sshd is not started"
        return MountNs(self.link.server, self._holder.pid)

    # -- setup

    def start(
        self,
        config: str = "",
        *,
        hosts_deny: Optional[str] = None,
        hosts_allow: Optional[str] = None,
        listen: tuple[str, ...] = (SERVER4, SERVER6),
        isolate: bool = False,
    ) -> None:
        if not Path(SSHD).exists():
            raise SandboxError("openssh-server is not installed (Debian package openssh-server)")
        private_run = isolate and not os.path.isdir("/run/sshd")
        if not private_run:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.hostkey)],
            check=True,
            capture_output=True,
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
            self.link.server.argv(
                ["unshare", "-m", "--propagation", "private", "sleep", "infinity"]
            )
        )
        self._wait_for_namespace()
        if isolate:
            upper, work = self.root / "etc-upper", self.root / "etc-work"
            upper.mkdir()
            work.mkdir()
            self.run(
                "mount", "-t", "overlay", "overlay", "-o",
                f"lowerdir=/etc,upperdir={upper},workdir={work}", "/etc",
            )  # fmt: skip
        if private_run:
            self.run("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run")
            self.run("mkdir", "-m", "0755", "/run/sshd")
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
            raise SandboxError(f"{target} is missing on this host: nothing to bind-mount over")
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
                raise SandboxError("the mount-namespace holder did not start")
            time.sleep(0.02)

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            out = self.run("ss", "-Htln", "( sport = :22 )", check=False).stdout
            if out.strip() and self.pidfile.exists():
                return
            if time.monotonic() > deadline:
                raise SandboxError(f"sshd did not start: {self.log_path.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            pid = 0
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if self._holder is not None:
            self._holder.kill()
            self._holder.wait()
            self._holder = None

    # -- running things where sshd runs

    def run(
        self, *argv: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return self.mount_ns.run(*argv, check=check, timeout=timeout)

    def unban(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return self.mount_ns.unban(*args, timeout=timeout)

    def unban_json(self, *args: str) -> Any:
        proc = self.unban(*args, "--json")
        assert proc.returncode in (0, 3), proc.stderr
        return json_document(proc)

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
        result = json_document(proc)
        result["returncode"] = proc.returncode
        return result


# ---------------------------------------------------------------- fail2ban


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


# ---------------------------------------------------------------- scripts/sandbox


class Sandbox:
    """Everything scripts/sandbox builds, and its cleanup (in reverse, even half-built).

    A temp dir; a server namespace with sshd and fail2ban in one private mount namespace whose
    /etc is an overlay (so `unban me` there can edit hosts.deny or fail2ban's files without
    touching the host's); a client namespace joined by a veth pair.
    """

    def __init__(self) -> None:
        self.root: Optional[Path] = None
        self.server: Optional[Netns] = None
        self.link: Optional[Link] = None
        self.sshd: Optional[Sshd] = None
        self.fail2ban: Optional[Fail2ban] = None
        self.cleaned: list[str] = []

    def __enter__(self) -> Sandbox:
        try:
            self.build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def build(self) -> None:
        import tempfile

        self.root = Path(tempfile.mkdtemp(prefix="unban-sandbox-"))
        self.server = Netns.create("unban-sb-s")
        self.link = Link.create(self.server, "unban-sb-c")
        (self.root / "sshd").mkdir()
        self.sshd = Sshd(self.link, self.root / "sshd")
        self.sshd.start(isolate=True)
        (self.root / "fail2ban").mkdir()
        self.fail2ban = Fail2ban(self.sshd.mount_ns, self.root / "fail2ban")
        self.fail2ban.write_config(jails={"sshd": {}})
        self.fail2ban.start()

    def close(self) -> None:
        """Stop fail2ban and sshd, delete both namespaces, remove the temp dir. Signals wait."""
        import threading

        held = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        main = threading.current_thread() is threading.main_thread()
        previous = (
            {signum: signal.signal(signum, signal.SIG_IGN) for signum in held} if main else {}
        )
        try:
            steps: list[tuple[str, Any]] = []
            if self.fail2ban is not None:
                steps.append(("fail2ban-server", self.fail2ban.stop))
            if self.sshd is not None:
                steps.append(("sshd", self.sshd.stop))
            if self.link is not None:
                steps.append((f"namespace {self.link.client.name}", self.link.delete))
            if self.server is not None:
                steps.append((f"namespace {self.server.name}", self.server.delete))
            if self.root is not None:
                root = self.root
                steps.append((f"{root}", lambda: shutil.rmtree(root, ignore_errors=True)))
            for what, step in steps:
                try:
                    step()
                    self.cleaned.append(what)
                except Exception as exc:  # noqa: BLE001 - clean up the rest regardless
                    self.cleaned.append(f"{what} (failed: {exc})")
            self.fail2ban = self.sshd = self.link = self.server = self.root = None
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    # -- what the demo shows

    def probe(self) -> tuple[bool, str, list[str]]:
        """`unban probe SERVER4` from the client: (banner came, outcome, output lines)."""
        assert self.link is not None
        proc = self.link.unban_client("probe", SERVER4, "--timeout", "5", timeout=60)
        lines = (proc.stdout + proc.stderr).rstrip("\n").splitlines()
        if "hints:" in lines:  # the demo shows what ssh would; `unban probe` alone gives hints
            lines = lines[: lines.index("hints:")]
        outcome = "error"
        prefix = f"  {SERVER4}: "
        for line in lines:
            if line.startswith(prefix):
                outcome = line[len(prefix) :].split(" ", 1)[0]
                break
        return proc.returncode == 0, outcome, lines

    def wait_rule(self, chain: str, text: str, timeout: float = 20) -> None:
        """Until the ban action has made its rule: fail2ban 0.11 (Debian 11) lists a ban
        before its action has run."""
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.server_shell("iptables", "-S", chain)):
            if time.monotonic() > deadline:
                raise SandboxError(f"fail2ban's ban action made no rule in {chain} with {text}")
            time.sleep(0.1)

    def server_shell(self, *argv: str) -> list[str]:
        assert self.sshd is not None
        proc = self.sshd.run(*argv, check=False)
        return (proc.stdout + proc.stderr).rstrip("\n").splitlines()


def demo(out: Callable[[str], None] = print, *, verb: Sequence[str] = ("me",)) -> int:
    """The scripts/sandbox walk-through. 0 when the banner failed while banned and came back
    after `unban VERB CLIENT`, 1 otherwise. Cleans up before returning (or raising)."""
    shown_verb = " ".join(verb)

    def section(title: str) -> None:
        out("")
        out(f"== {title}")

    def shell(where: str, command: str, lines: Sequence[str]) -> None:
        out(f"[{where}]$ {command}")
        for line in lines:
            out(f"    {line}")

    box = Sandbox()
    try:
        out("unban sandbox: building throwaway namespaces (the host's /etc, firewall and")
        out("services are not touched) ...")
        box.__enter__()
        assert box.link is not None and box.fail2ban is not None and box.sshd is not None
        out(
            f"server: namespace {box.link.server.name}, {SERVER4}, a real sshd and a real "
            "fail2ban-server (jail sshd, banaction iptables-multiport, maxretry 2)"
        )
        out(f"client: namespace {box.link.client.name}, {CLIENT4}, joined by a veth pair")
        out(f"files:  {box.root} (sshd and fail2ban config, logs, an overlay for /etc)")

        section("1. the client reaches sshd")
        ok, outcome, lines = box.probe()
        shell("client", f"unban probe {SERVER4}", lines)
        if not ok:
            out(f"sandbox: FAILED: sshd did not answer before any ban ({outcome})")
            return 1

        section(f"2. two failed passwords from {CLIENT4}: fail2ban bans it for real")
        box.fail2ban.fail(CLIENT4)
        out(f"appended to {box.fail2ban.authlog} (the log the sshd jail reads):")
        out(f"    {failure_line(CLIENT4).rstrip()}  (twice)")
        box.fail2ban.wait_banned("sshd", CLIENT4)
        box.wait_rule("f2b-sshd", f"-s {CLIENT4}/32")
        out(f"fail2ban banned {CLIENT4} in jail sshd; its ban action added:")
        shell("server", "iptables -S f2b-sshd", box.server_shell("iptables", "-S", "f2b-sshd"))

        section("3. the client is locked out")
        blocked_ok, blocked, lines = box.probe()
        shell("client", f"unban probe {SERVER4}", lines)
        if blocked_ok:
            out("sandbox: FAILED: the ban did not stop the banner")
            return 1

        section(f"4. on the server: unban {shown_verb} {CLIENT4}")
        out("(--fail2ban-conf and --state-dir point unban at the sandbox's fail2ban and a temp")
        out(" state dir; on a real server it is just `sudo unban me ADDRESS`)")
        args = [*box.fail2ban.global_args(), *verb, CLIENT4]
        if tuple(verb) == ("me",):  # check the sandbox's sshd, not the host's config
            args += ["--sshd-config", str(box.sshd.config_path)]
        proc = box.sshd.unban(*args)
        shell(
            "server",
            f"unban {' '.join(args)}",
            (proc.stdout + proc.stderr).rstrip("\n").splitlines(),
        )
        out(f"(exit status {proc.returncode})")

        section("5. the client again")
        back, after, lines = box.probe()
        shell("client", f"unban probe {SERVER4}", lines)
        out("")
        if not back:
            out(f"sandbox: FAILED: the SSH banner did not come back after `unban {shown_verb}`")
            return 1
        out(
            f"sandbox: the SSH banner failed ({blocked}) while {CLIENT4} was banned, and came "
            f"back after `unban {shown_verb} {CLIENT4}`."
        )
        return 0
    finally:
        box.close()
        out(f"cleaned up: {', '.join(box.cleaned)}")
