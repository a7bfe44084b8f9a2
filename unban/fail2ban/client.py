"""fail2ban's socket protocol, spoken directly (no fail2ban-client process per call).

A request is `pickle.dumps(argv_list)` followed by `<F2B_END_COMMAND>`; the reply is a pickled
`(0, result)` or `(1, exception)` with the same terminator; `<F2B_CLOSE_COMMAND>` ends the
session. Pickle runs code on load, so: talk only to a socket owned by root, in a directory only
root can write, whose peer process runs as root; and unpickle replies with `SafeUnpickler`, which
knows plain builtin values and exceptions, and turns fail2ban's own exception classes into
`RemoteFailure` messages without importing anything.
"""

from __future__ import annotations

import builtins
import io
import os
import pickle
import re
import shlex
import socket
import stat
import struct
from collections.abc import Sequence
from typing import Any, Optional

from unban.errors import LayerError
from unban.fail2ban import DEFAULT_CONFDIR, LAYER

END = b"<F2B_END_COMMAND>"
CLOSE = b"<F2B_CLOSE_COMMAND>"
DEFAULT_TIMEOUT = 5.0
MAX_REPLY = 256 * 1024 * 1024


class ServerNotRunning(LayerError):
    """Nothing listens on the socket (no socket file, or connection refused)."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(LAYER, f"fail2ban-server is not running ({path}: {why})")
        self.path = path


class ServerError(LayerError):
    """fail2ban answered a command with an error."""

    def __init__(self, command: Sequence[str], failure: BaseException) -> None:
        name = getattr(failure, "remote_name", type(failure).__name__)
        detail = str(failure) or name
        super().__init__(LAYER, f"fail2ban refused '{_short(command)}': {name}: {_clip(detail)}")
        self.command = tuple(command)
        self.failure = failure


class RemoteFailure(Exception):
    """Stand-in for an exception class of fail2ban's, rebuilt as a plain message."""

    remote_name = "fail2ban error"

    def __str__(self) -> str:
        if len(self.args) == 1:
            return str(self.args[0])
        return ", ".join(str(a) for a in self.args)


_SAFE_BUILTINS = frozenset(
    {"set", "frozenset", "list", "dict", "tuple", "str", "bytes", "int", "float", "bool", "complex"}
)
_EXCEPTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:Error|Exception|Warning)")
_stand_ins: dict[str, type[RemoteFailure]] = {}


def _stand_in(module: str, name: str) -> type[RemoteFailure]:
    key = f"{module}.{name}"
    if key not in _stand_ins:
        _stand_ins[key] = type(name, (RemoteFailure,), {"remote_name": key})
    return _stand_ins[key]


class SafeUnpickler(pickle.Unpickler):
    """Loads builtin values and exceptions only; fail2ban's exceptions become RemoteFailure."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins":
            if name in _SAFE_BUILTINS:
                return getattr(builtins, name)
            value = getattr(builtins, name, None)
            if isinstance(value, type) and issubclass(value, BaseException):
                if issubclass(value, (SystemExit, KeyboardInterrupt, GeneratorExit)):
                    return _stand_in(module, name)
                return value
        if (module == "fail2ban" or module.startswith("fail2ban.")) and _EXCEPTION_NAME.fullmatch(
            name
        ):
            return _stand_in(module, name)
        raise pickle.UnpicklingError(
            f"fail2ban's reply holds {module}.{name}, which unban does not unpickle"
        )


def safe_loads(data: bytes) -> Any:
    return SafeUnpickler(io.BytesIO(data)).load()


def check_socket(path: str) -> None:
    """Refuse a socket a non-root user could have made or could replace."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise ServerNotRunning(path, "no such socket") from None
    except OSError as exc:
        raise LayerError(LAYER, f"cannot inspect socket {path}: {exc.strerror}") from None
    if not stat.S_ISSOCK(info.st_mode):
        raise LayerError(LAYER, f"{path} is not a socket; not talking to it")
    _check_root_owned(path, info, "socket")
    parent = os.path.dirname(os.path.abspath(path)) or "/"
    _check_root_owned(parent, os.stat(parent), "directory of the socket")


def _check_root_owned(path: str, info: os.stat_result, what: str) -> None:
    if info.st_uid != 0:
        raise LayerError(
            LAYER,
            f"{what} {path} is owned by uid {info.st_uid}, not root: unban only talks to a "
            "fail2ban socket that only root controls",
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise LayerError(
            LAYER,
            f"{what} {path} is writable by group or others (mode "
            f"{stat.S_IMODE(info.st_mode):04o}): unban only talks to a fail2ban socket that "
            "only root controls",
        )


class Client:
    """One session on fail2ban's socket. Use as a context manager."""

    def __init__(self, path: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = path
        self.timeout = timeout
        self._sock: Optional[socket.socket] = None

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        check_socket(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except (ConnectionRefusedError, FileNotFoundError) as exc:
            sock.close()
            raise ServerNotRunning(self.path, exc.strerror or "connection refused") from None
        except socket.timeout:
            sock.close()
            raise self._timeout("connecting") from None
        except OSError as exc:
            sock.close()
            raise LayerError(LAYER, f"cannot connect to {self.path}: {exc.strerror}") from None
        uid = _peer_uid(sock)
        if uid not in (None, 0):
            sock.close()
            raise LayerError(
                LAYER, f"the process behind {self.path} runs as uid {uid}, not root; not using it"
            )
        self._sock = sock

    def close(self) -> None:
        if self._sock is None:
            return
        try:
            self._sock.sendall(CLOSE + END)
        except OSError:
            pass
        self._sock.close()
        self._sock = None

    def _timeout(self, doing: str) -> LayerError:
        return LayerError(
            LAYER,
            f"fail2ban-server did not answer within {self.timeout:g} s while {doing} "
            f"({self.path}); it may be hung or busy: check `fail2ban-client ping` and its log",
        )

    def call(self, command: Sequence[str]) -> Any:
        """Send one command; return its result or raise ServerError with fail2ban's message."""
        if self._sock is None:
            self.connect()
        assert self._sock is not None
        request = pickle.dumps([str(part) for part in command], pickle.HIGHEST_PROTOCOL)
        try:
            self._sock.sendall(request + END)
            raw = self._receive(self._sock)
        except socket.timeout:
            self.close()
            raise self._timeout(f"running '{_short(command)}'") from None
        except OSError as exc:
            self.close()
            raise LayerError(
                LAYER, f"lost the connection to {self.path}: {exc.strerror or exc}"
            ) from None
        try:
            reply = safe_loads(raw)
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
            raise LayerError(LAYER, f"unreadable reply to '{_short(command)}': {exc}") from None
        if not (isinstance(reply, tuple) and len(reply) == 2 and reply[0] in (0, 1)):
            raise LayerError(LAYER, f"unexpected reply to '{_short(command)}': {reply!r:.200}")
        status, result = reply
        if status == 1:
            failure = result if isinstance(result, BaseException) else RemoteFailure(result)
            raise ServerError(command, failure)
        return result

    def _receive(self, sock: socket.socket) -> bytes:
        chunks = bytearray()
        while not chunks.endswith(END):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionResetError(104, "connection closed by fail2ban-server")
            chunks += chunk
            if len(chunks) > MAX_REPLY:
                raise OSError(f"reply larger than {MAX_REPLY} bytes")
        return bytes(chunks[: -len(END)])


def _short(command: Sequence[str]) -> str:
    return _clip(shlex.join(command))


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _peer_uid(sock: socket.socket) -> Optional[int]:
    """The uid of the process on the other end (SO_PEERCRED, Linux)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def client_command(argv: Sequence[str], confdir: str = DEFAULT_CONFDIR) -> str:
    """The fail2ban-client command a person could run instead of a socket call."""
    prefix = ["fail2ban-client"]
    if os.path.normpath(confdir) != DEFAULT_CONFDIR:
        prefix += ["-c", confdir]
    return shlex.join([*prefix, *argv])
