"""Network namespaces, a private mount namespace beside one, and a server and a client
namespace joined by a veth pair."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

SERVER4, CLIENT4 = "203.0.113.1", "203.0.113.4"
SERVER6, CLIENT6 = "2001:db8::1", "2001:db8::4"
REPO = Path(__file__).resolve().parents[2]


# How long a check that expects the way open waits for an answer and for the banner (it
# returns as soon as the banner comes): on a loaded machine sshd's re-exec for a new connection
# has taken over 2 s. The fixtures' checks that expect a refusal wait 2-3 s, since every refused
# check costs all of it.
OPEN_WITHIN = 5.0


@dataclass(frozen=True)
class Seen:
    """What one `unban probe` from the client saw: true when it read sshd's banner. The repr
    names the outcome and why, so a failed `assert link.opens(...)` says what the client met."""

    host: str
    outcome: str
    detail: str

    def __bool__(self) -> bool:
        return self.outcome == "banner"


class SandboxError(Exception):
    """A namespace, sshd or fail2ban could not be set up."""


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

    def sees(self, host: str, timeout: float, *args: str) -> Seen:
        """One connection from the client to `host`, waiting up to `timeout` seconds."""
        result = self.probe(host, "--timeout", f"{timeout:g}", *args)
        details = [attempt["detail"] for attempt in result["attempts"]]
        return Seen(host, result["outcome"], "; ".join(details) or result["summary"])

    def opens(self, host: str, *args: str) -> Seen:
        """A check that expects the client to read sshd's banner."""
        return self.sees(host, OPEN_WITHIN, *args)

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
