"""The socket protocol: restricted unpickling, socket checks, timeouts, against a fake server."""

from __future__ import annotations

import os
import pickle
import socket
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from unban.errors import LayerError
from unban.fail2ban.client import (
    CLOSE,
    END,
    Client,
    RemoteFailure,
    ServerError,
    ServerNotRunning,
    client_command,
    safe_loads,
)


def dumps_as(module: str, name: str, value_factory: Callable[[type], Any]) -> bytes:
    """Pickle an instance of a class that claims to live in `module` (which unban lacks)."""
    parts = module.split(".")
    names = [".".join(parts[: i + 1]) for i in range(len(parts))]
    added = [n for n in names if n not in sys.modules]
    for n in added:
        sys.modules[n] = types.ModuleType(n)
    cls = type(name, (Exception,), {"__module__": module})
    setattr(sys.modules[module], name, cls)
    try:
        return pickle.dumps(value_factory(cls), pickle.HIGHEST_PROTOCOL)
    finally:
        for n in added:
            del sys.modules[n]


def test_plain_values_load() -> None:
    reply = (0, [("Number of jail", 1), ("Jail list", "sshd")], {"a": {1, 2}}, frozenset())
    assert safe_loads(pickle.dumps(reply, pickle.HIGHEST_PROTOCOL)) == reply


def test_builtin_exceptions_load() -> None:
    loaded = safe_loads(pickle.dumps((1, ValueError("not banned: ['1.2.3.4']"))))
    assert isinstance(loaded[1], ValueError) and "not banned" in str(loaded[1])


def test_fail2ban_exceptions_become_messages() -> None:
    data = dumps_as(
        "fail2ban.exceptions", "UnknownJailException", lambda cls: (1, cls("nosuchjail"))
    )
    status, failure = safe_loads(data)
    assert status == 1 and isinstance(failure, RemoteFailure)
    assert failure.remote_name == "fail2ban.exceptions.UnknownJailException"
    assert str(failure) == "nosuchjail"


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("os", "system"),
        ("subprocess", "Popen"),
        ("fail2ban.server.jail", "Jail"),
        ("posix", "system"),
    ],
)
def test_anything_else_is_refused(module: str, name: str) -> None:
    class Evil:
        def __reduce__(self) -> Any:
            return (getattr(__import__(module.split(".")[0]), name, print), ("true",))

    if module.startswith("fail2ban"):
        data = dumps_as(module, name, lambda cls: cls())
    else:
        data = pickle.dumps(Evil(), pickle.HIGHEST_PROTOCOL)
    with pytest.raises(pickle.UnpicklingError, match="does not unpickle"):
        safe_loads(data)


def test_system_exit_is_only_a_message() -> None:
    status, failure = safe_loads(pickle.dumps((1, SystemExit(3))))
    assert isinstance(failure, RemoteFailure) and not isinstance(failure, SystemExit)


def test_client_command() -> None:
    assert client_command(["set", "sshd", "unbanip", "1.2.3.4"]) == (
        "fail2ban-client set sshd unbanip 1.2.3.4"
    )
    assert client_command(["ping"], "/tmp/my conf") == "fail2ban-client -c '/tmp/my conf' ping"


# ---------------------------------------------------------------- a fake server


class FakeServer:
    """Answers like fail2ban-server: one pickled reply per END-terminated request."""

    def __init__(self, path: Path, handler: Callable[[list[str]], Any], *, hang: bool = False):
        self.path = path
        self.handler = handler
        self.hang = hang
        self.requests: list[list[str]] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                buffer = b""
                while True:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    buffer += chunk
                    while END in buffer:
                        message, buffer = buffer.split(END, 1)
                        if message == CLOSE:
                            break
                        request = pickle.loads(message)
                        self.requests.append(request)
                        if self.hang:
                            time.sleep(5)
                            return
                        conn.sendall(pickle.dumps(self.handler(request)) + END)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def sockdir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "run"
    directory.mkdir()
    os.chmod(directory, 0o755)
    yield directory


def test_client_round_trip_and_errors(sockdir: Path) -> None:
    def handler(request: list[str]) -> Any:
        if request == ["ping"]:
            return (0, "pong")
        return (1, KeyError("sshd2"))

    server = FakeServer(sockdir / "f.sock", handler)
    try:
        with Client(str(server.path)) as client:
            assert client.call(["ping"]) == "pong"
            with pytest.raises(ServerError, match=r"refused 'get sshd2 banip': KeyError"):
                client.call(["get", "sshd2", "banip"])
        assert server.requests == [["ping"], ["get", "sshd2", "banip"]]
    finally:
        server.close()


def test_timeout_has_a_clear_message(sockdir: Path) -> None:
    server = FakeServer(sockdir / "f.sock", lambda r: (0, None), hang=True)
    try:
        started = time.monotonic()
        with pytest.raises(LayerError, match=r"did not answer within 0.3 s"):
            with Client(str(server.path), timeout=0.3) as client:
                client.call(["ping"])
        assert time.monotonic() - started < 2
    finally:
        server.close()


def test_not_running(sockdir: Path) -> None:
    with pytest.raises(ServerNotRunning, match="no such socket"):
        Client(str(sockdir / "missing.sock")).connect()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sockdir / "stale.sock"))
    stale.close()  # the file stays, nobody listens
    with pytest.raises(ServerNotRunning, match="not running"):
        Client(str(sockdir / "stale.sock")).connect()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own the socket as root")
def test_socket_writable_by_others_refused(sockdir: Path) -> None:
    server = FakeServer(sockdir / "f.sock", lambda r: (0, "pong"))
    try:
        os.chmod(server.path, 0o777)
        with pytest.raises(LayerError, match="writable by group or others"):
            Client(str(server.path)).connect()
        os.chmod(server.path, 0o700)
        os.chmod(sockdir, 0o777)
        with pytest.raises(LayerError, match="directory of the socket"):
            Client(str(server.path)).connect()
        os.chmod(sockdir, 0o755)
        os.chown(server.path, 65534, 65534)
        with pytest.raises(LayerError, match="not root"):
            Client(str(server.path)).connect()
    finally:
        server.close()


def test_not_a_socket_refused(sockdir: Path) -> None:
    path = sockdir / "plain"
    path.write_text("")
    with pytest.raises(LayerError, match="not a socket"):
        Client(str(path)).connect()
