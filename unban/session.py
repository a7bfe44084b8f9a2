"""Which address is this SSH session coming from? For `unban me` without an address.

In order: SSH_CONNECTION / SSH_CLIENT in our environment; the same variables in an ancestor's
environment (sudo resets ours, but the login shell that ran sudo still has them); the utmp
record of our terminal (what `who` shows).
"""

from __future__ import annotations

import ipaddress
import os
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

UTMP_PATH = Path("/var/run/utmp")
# struct utmp on Linux (glibc, 64-bit and 32-bit alike): 384 bytes.
_UTMP = struct.Struct("<hxxi32s4s32s256shhiii4i20x")
_USER_PROCESS = 7


@dataclass(frozen=True)
class Origin:
    address: str
    source: str  # where it was found, said to the user


def from_environment(
    environ: Mapping[str, str], source: str = "SSH_CONNECTION"
) -> Optional[Origin]:
    for name in ("SSH_CONNECTION", "SSH_CLIENT"):
        value = environ.get(name, "").split()
        if value and _is_address(value[0]):
            return Origin(_unmapped(value[0]), f"{name} of {source}" if source != name else name)
    return None


def _ancestors(proc: Path, pid: int) -> Iterator[int]:
    seen = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        try:
            status = (proc / str(pid) / "status").read_text()
        except OSError:
            return
        ppid = next(
            (int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:")), 0
        )
        if ppid <= 1:
            return
        yield ppid
        pid = ppid


def _environ_of(proc: Path, pid: int) -> dict[str, str]:
    try:
        raw = (proc / str(pid) / "environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def from_utmp(utmp: bytes, tty: str) -> Optional[Origin]:
    """The remote host of the login on `tty` (e.g. "pts/0")."""
    for offset in range(0, len(utmp) - _UTMP.size + 1, _UTMP.size):
        fields = _UTMP.unpack_from(utmp, offset)
        ut_type, line, host, addr = fields[0], fields[2], fields[5], fields[11:15]
        if ut_type != _USER_PROCESS or line.rstrip(b"\0").decode(errors="replace") != tty:
            continue
        if any(addr[1:]):
            packed = struct.pack("<4i", *addr)
            return Origin(_unmapped(str(ipaddress.IPv6Address(packed))), f"utmp record of {tty}")
        if addr[0]:
            return Origin(
                str(ipaddress.IPv4Address(struct.pack("<i", addr[0]))), f"utmp record of {tty}"
            )
        text = host.rstrip(b"\0").decode(errors="replace")
        if _is_address(text):
            return Origin(_unmapped(text), f"utmp record of {tty}")
    return None


def find_origin(
    environ: Mapping[str, str] = os.environ,
    proc: Path = Path("/proc"),
    utmp_path: Path = UTMP_PATH,
) -> Optional[Origin]:
    origin = from_environment(environ, "this shell")
    if origin:
        return origin
    for pid in _ancestors(proc, os.getpid()):
        origin = from_environment(_environ_of(proc, pid), f"process {pid}")
        if origin:
            return origin
    tty = _our_tty()
    if tty and utmp_path.exists():
        return from_utmp(utmp_path.read_bytes(), tty)
    return None


def _our_tty() -> Optional[str]:
    for fd in (0, 1, 2):
        try:
            return os.ttyname(fd).removeprefix("/dev/")
        except OSError:
            continue
    return None


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return False
    return True


def _unmapped(text: str) -> str:
    address = ipaddress.ip_address(text.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)
