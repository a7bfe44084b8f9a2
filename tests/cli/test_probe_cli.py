"""`unban probe` through typer's runner, against small servers on the loopback interface (no root,
no namespace): one that answers like sshd, one that closes, one that resets, one that stays
silent. A dropped SYN and an ICMP unreachable cannot be made on loopback without root: those go
through a fake socket (tests/integration/test_probe.py has the real ones)."""

from __future__ import annotations

import errno
import json
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any, Callable, Optional

import pytest

from tests.clirunner import make_runner
from unban import cli, probe, system

runner = make_runner()

Handler = Callable[[socket.socket], None]


class Server:
    """A listener on 127.0.0.1 that runs `handler` on each accepted connection."""

    def __init__(self, handler: Handler) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.handler = handler
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)
            self.handler(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.connections:
            conn.close()


def banner(conn: socket.socket) -> None:
    conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10\r\n")


def exceeded(conn: socket.socket) -> None:
    # sshd 9.2 over MaxStartups: one line, then close (after reading what the client sent)
    conn.sendall(b"Exceeded MaxStartups\r\n")
    conn.recv(256)
    conn.shutdown(socket.SHUT_RDWR)
    conn.close()


def reset(conn: socket.socket) -> None:
    conn.recv(256)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()  # SO_LINGER 0: RST instead of FIN


def silent(conn: socket.socket) -> None:
    pass


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], Server]]:
    servers: list[Server] = []

    def make(handler: Handler) -> Server:
        server = Server(handler)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture(autouse=True)
def not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """probe must not need root: run every test as if unprivileged."""
    monkeypatch.setattr(system.os, "geteuid", lambda: 1000)


def invoke(*args: str) -> tuple[int, Any]:
    result = runner.invoke(cli.app, ["probe", *args, "--json"])
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else None


def test_banner(serve: Callable[[Handler], Server]) -> None:
    server = serve(banner)
    code, data = invoke("127.0.0.1", "--port", str(server.port))
    assert code == 0
    assert data["ok"] is True
    (attempt,) = data["attempts"]
    assert attempt["outcome"] == "banner"
    assert attempt["banner"] == "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10"
    assert any("ssh -c aes256-ctr 127.0.0.1" in hint for hint in data["hints"])
    assert any("ssh-keygen -R 127.0.0.1" in hint for hint in data["hints"])


def test_closed_after_exceeded_maxstartups(serve: Callable[[Handler], Server]) -> None:
    server = serve(exceeded)
    code, data = invoke("127.0.0.1", "--port", str(server.port), "--count", "2")
    assert code == 3
    attempts = data["attempts"]
    assert [a["outcome"] for a in attempts] == ["closed", "closed"]
    assert attempts[0]["before_banner"] == ["Exceeded MaxStartups"]
    assert "read returned 0" in attempts[0]["detail"]
    assert data["summary"] == "2/2 closed"
    assert any("sshd's MaxStartups limit" in hint for hint in data["hints"])


def test_reset_says_econnreset(serve: Callable[[Handler], Server]) -> None:
    server = serve(reset)
    code, data = invoke("127.0.0.1", "--port", str(server.port))
    assert code == 3
    (attempt,) = data["attempts"]
    assert attempt["outcome"] == "reset"
    assert attempt["error"] == "ECONNRESET"
    assert "ECONNRESET" in attempt["detail"]
    assert any("hosts.deny" in hint for hint in data["hints"])


def test_silent(serve: Callable[[Handler], Server]) -> None:
    server = serve(silent)
    code, data = invoke("127.0.0.1", "--port", str(server.port), "--timeout", "0.3")
    assert code == 3
    assert data["attempts"][0]["outcome"] == "silent"


def test_refused() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, data = invoke("127.0.0.1", "--port", str(port))
    assert code == 3
    assert data["attempts"][0]["outcome"] == "refused"
    assert data["attempts"][0]["error"] == "ECONNREFUSED"


def test_ipv6_loopback(serve: Callable[[Handler], Server]) -> None:
    with socket.socket(socket.AF_INET6) as sock:
        try:
            sock.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback here")
        sock.listen(1)
        port = sock.getsockname()[1]

        def accept_and_answer() -> None:
            conn, _ = sock.accept()
            with conn:
                banner(conn)
                conn.recv(64)

        thread = threading.Thread(target=accept_and_answer, daemon=True)
        thread.start()
        code, data = invoke("[::1]", "--port", str(port))
        thread.join(5)
    assert code == 0
    assert data["attempts"][0]["address"] == "::1"


def test_mixed_outcomes_report_the_failure(serve: Callable[[Handler], Server]) -> None:
    answers = iter([banner, exceeded, banner, exceeded])
    server = serve(lambda conn: next(answers)(conn))
    code, data = invoke("127.0.0.1", "--port", str(server.port), "--count", "4")
    assert code == 3
    assert data["outcome"] == "closed"
    assert data["summary"] == "2/4 banner, 2/4 closed"


def test_text_output(serve: Callable[[Handler], Server]) -> None:
    server = serve(reset)
    result = runner.invoke(cli.app, ["probe", "127.0.0.1", "--port", str(server.port)])
    assert result.exit_code == 3
    assert f"probe 127.0.0.1 port {server.port}: 1/1 reset" in result.stdout
    assert (
        "ssh prints: kex_exchange_identification: read: Connection reset by peer" in result.stdout
    )
    assert "hints:" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-host.invalid"], "cannot resolve"),
        (["127.0.0.1", "--count", "0"], "--count"),
        (["127.0.0.1", "--timeout", "0"], "--timeout"),
        (["127.0.0.1", "--port", "70000"], "not a TCP port"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    result = runner.invoke(cli.app, ["probe", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


# ---------------------------------------------------------------- without a network


class FakeSocket:
    """Stands in for socket.socket: connect() raises, or recv() returns what it is given."""

    def __init__(self, connect_error: Optional[BaseException] = None, data: tuple[bytes, ...] = ()):
        self.connect_error = connect_error
        self.data = list(data)

    def __call__(self, *args: object) -> FakeSocket:
        return self

    def settimeout(self, value: float) -> None:
        pass

    def connect(self, sockaddr: object) -> None:
        if self.connect_error is not None:
            raise self.connect_error

    def getsockname(self) -> tuple[str, int]:
        return ("192.0.2.10", 40000)

    def sendall(self, data: bytes) -> None:
        pass

    def recv(self, size: int) -> bytes:
        item = self.data.pop(0) if self.data else b""
        return item

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("error", "outcome", "name"),
    [
        (socket.timeout(), "timeout", "ETIMEDOUT"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "unreachable", "EHOSTUNREACH"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "unreachable", "ENETUNREACH"),
        (
            ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
            "refused",
            "ECONNREFUSED",
        ),
        (OSError(errno.EADDRNOTAVAIL, "Cannot assign"), "error", "EADDRNOTAVAIL"),
    ],
)
def test_connect_failures(error: BaseException, outcome: str, name: str) -> None:
    fake = FakeSocket(connect_error=error)
    result = probe.attempt(("198.51.100.1", 22), socket.AF_INET, 1.0, make_socket=fake)  # type: ignore[arg-type]
    assert (result.outcome, result.error) == (outcome, name)


def test_pre_banner_lines_are_kept() -> None:
    fake = FakeSocket(data=(b"Welcome\r\n", b"SSH-2.0-Other_1.0\r\n"))
    result = probe.attempt(("198.51.100.1", 22), socket.AF_INET, 1.0, make_socket=fake)  # type: ignore[arg-type]
    assert result.outcome == "banner"
    assert result.banner == "SSH-2.0-Other_1.0"
    assert result.before_banner == ("Welcome",)


def test_not_ssh() -> None:
    fake = FakeSocket(data=(b"x" * 5000, b"y" * 5000))
    result = probe.attempt(("198.51.100.1", 22), socket.AF_INET, 1.0, make_socket=fake)  # type: ignore[arg-type]
    assert result.outcome == "error"
    assert "not an SSH server" in result.detail


def test_timeout_hint_through_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        probe, "resolve", lambda host, port: [(socket.AF_INET, ("198.51.100.1", port))]
    )
    real_attempt = probe.attempt
    fake = FakeSocket(connect_error=socket.timeout())
    monkeypatch.setattr(
        probe,
        "attempt",
        lambda sockaddr, family, timeout: real_attempt(
            sockaddr,
            family,
            timeout,
            make_socket=fake,  # type: ignore[arg-type]
        ),
    )
    code, data = invoke("server.example", "--timeout", "0.1")
    assert code == 3
    assert data["outcome"] == "timeout"
    hints = " ".join(data["hints"])
    assert "DROP" in hints
    assert "sudo unban doctor 192.0.2.10" in hints
