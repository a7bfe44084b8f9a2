"""Reading the system: both files, a `/file` pattern, and the client's host name."""

from __future__ import annotations

import ipaddress
import socket
import threading
from pathlib import Path
from typing import Optional

from unban.tcpwrappers.table import Table, parse_table

ALLOW_FILE = "/etc/hosts.allow"
DENY_FILE = "/etc/hosts.deny"


def read_tables(allow_path: str = ALLOW_FILE, deny_path: str = DENY_FILE) -> tuple[Table, Table]:
    """Read and parse both files; a missing file is an empty table (as libwrap treats it)."""
    return _read_table(allow_path), _read_table(deny_path)


def _read_table(path: str) -> Table:
    try:
        text = Path(path).read_bytes().decode("utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return Table(path, (), (), present=False)
    return parse_table(text, path)


def read_pattern_file(path: str) -> Optional[str]:
    """A `/file` pattern's contents; None when it cannot be read (libwrap: no match)."""
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def resolve_client_name(address: str, timeout: float = 3.0) -> Optional[str]:
    """The host name libwrap would see for `address`: a name that maps back to the address,
    "paranoid" when it does not, "unknown" when there is none; None when DNS did not answer in
    `timeout` seconds (so the caller keeps name-based patterns as "maybe")."""
    result: list[Optional[str]] = []

    def lookup() -> None:
        try:
            name = socket.gethostbyaddr(address)[0]
        except (socket.herror, socket.gaierror, OSError):
            result.append("unknown")
            return
        try:
            infos = socket.getaddrinfo(name, None)
        except (socket.gaierror, OSError):
            result.append("paranoid")
            return
        wanted = ipaddress.ip_address(address)
        for info in infos:
            try:
                if ipaddress.ip_address(str(info[4][0]).split("%")[0]) == wanted:
                    result.append(name)
                    return
            except ValueError:
                continue
        result.append("paranoid")

    worker = threading.Thread(target=lookup, daemon=True)
    worker.start()
    worker.join(timeout)
    return result[0] if result else None
