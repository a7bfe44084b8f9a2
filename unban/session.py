"""Which address is this SSH session coming from? For `unban me` without an address.

Only from what the caller cannot forge (under sudo, the user controls SSH_CONNECTION and
every environment above unban; such an address would be lifted from every ban and exempted):

1. The kernel. Up the parent processes to the sshd process of this session that runs as root
   (`/proc/PID/exe` is sshd or sshd-session, every uid 0), then the peer of its established TCP
   connection: its socket inodes in `/proc/PID/fd`, their peers in `/proc/PID/net/tcp{,6}`
   (that process's network namespace).
2. utmp. When unban does not run below that sshd (a detached terminal), the login record of
   our terminal names the process sshd wrote it for (`ut_pid`); that process must have our
   terminal, and the same walk runs from it. The record's host field is never taken by itself
   (a utempter user can write it).

SSH_CONNECTION (or SSH_CLIENT) in our own environment is only a hint: when it names another
address than the kernel's, nothing is guessed. Ancestors' environments are never read. No
trusted source: None (the CLI asks on a terminal, or says how to name the address).
"""

from __future__ import annotations

import ipaddress
import os
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from unban.errors import InputError

UTMP_PATH = Path("/var/run/utmp")
SSHD_NAMES = ("sshd", "sshd-session")
# struct utmp on Linux (glibc, 64-bit and 32-bit alike): 384 bytes.
_UTMP = struct.Struct("<hxxi32s4s32s256shhiii4i20x")
_USER_PROCESS = 7
_ESTABLISHED = "01"


@dataclass(frozen=True)
class Origin:
    address: str
    source: str  # where it was found, said to the user


def find_origin(
    environ: Mapping[str, str] = os.environ,
    proc: Path = Path("/proc"),
    utmp_path: Path = UTMP_PATH,
    pid: Optional[int] = None,
    tty: Optional[str] = None,
) -> Optional[Origin]:
    """The client address of the SSH connection this process runs in; None when no trusted
    source knows it. InputError when SSH_CONNECTION names another address than the kernel."""
    pid = os.getpid() if pid is None else pid
    found = from_kernel(proc, _ancestors(proc, pid))
    tty = tty if tty is not None else _our_tty()
    if found is None and tty and utmp_path.exists():
        login = utmp_pid(utmp_path.read_bytes(), tty)
        if login is not None and _has_tty(proc, login, tty):
            found = from_kernel(proc, [login, *_ancestors(proc, login)], f"utmp record of {tty}")
    if found is None:
        return None
    hint = from_environment(environ)
    if hint is not None and hint.address != found.address:
        raise InputError(
            f"{hint.source} says {hint.address}, but this session's connection comes from "
            f"{found.address} ({found.source}): not guessing which; give the address, "
            "`unban me ADDRESS`"
        )
    return found


def from_environment(environ: Mapping[str, str]) -> Optional[Origin]:
    """SSH_CONNECTION or SSH_CLIENT of `environ`: a hint, never a source by itself."""
    for name in ("SSH_CONNECTION", "SSH_CLIENT"):
        value = environ.get(name, "").split()
        if value and _is_address(value[0]):
            return Origin(_unmapped(value[0]), name)
    return None


def from_kernel(proc: Path, pids: Iterable[int], via: str = "") -> Optional[Origin]:
    """The peer of the established TCP connection of the first root sshd among `pids`."""
    for pid in pids:
        if not _root_sshd(proc, pid):
            continue
        peers = sorted(set(tcp_peers(proc, pid)))
        if len(peers) == 1:
            where = f"the TCP connection of sshd process {pid}, as the kernel has it"
            return Origin(peers[0], f"{via}: {where}" if via else where)
        if peers:
            return None  # more than one connection: not one session's
    return None


def _ancestors(proc: Path, pid: int) -> Iterator[int]:
    seen = {pid}
    while True:
        ppid = _status(proc, pid).get("PPid", "0").split()[0]
        pid = int(ppid) if ppid.isdigit() else 0
        if pid <= 1 or pid in seen:
            return
        seen.add(pid)
        yield pid


def _status(proc: Path, pid: int) -> dict[str, str]:
    try:
        text = (proc / str(pid) / "status").read_text()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def _root_sshd(proc: Path, pid: int) -> bool:
    """Runs as root (every uid) from the sshd binary: nothing a user can make."""
    uids = _status(proc, pid).get("Uid", "").split()
    if len(uids) != 4 or any(uid != "0" for uid in uids):
        return False
    try:
        exe = os.readlink(proc / str(pid) / "exe")
    except OSError:
        return False
    return os.path.basename(exe.removesuffix(" (deleted)")) in SSHD_NAMES


def tcp_peers(proc: Path, pid: int) -> list[str]:
    """The peer addresses of the established TCP connections process `pid` holds."""
    inodes = set()
    try:
        for entry in os.scandir(proc / str(pid) / "fd"):
            try:
                target = os.readlink(entry.path)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return []
    peers = []
    for name in ("tcp", "tcp6"):
        try:
            table = (proc / str(pid) / "net" / name).read_text()
        except OSError:
            continue
        for line in table.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _ESTABLISHED and fields[9] in inodes:
                peers.append(_unmapped(str(hex_address(fields[2].split(":")[0]))))
    return peers


def hex_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address as /proc/net/tcp{,6} prints it (32-bit words in host byte order)."""
    raw = bytes.fromhex(text)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    if len(words) == 4:
        return ipaddress.IPv4Address(words)
    return ipaddress.IPv6Address(words)


def utmp_pid(utmp: bytes, tty: str) -> Optional[int]:
    """The process of the login record of `tty` (e.g. "pts/0")."""
    for offset in range(0, len(utmp) - _UTMP.size + 1, _UTMP.size):
        fields = _UTMP.unpack_from(utmp, offset)
        ut_type, ut_pid, line = fields[0], fields[1], fields[2]
        if ut_type == _USER_PROCESS and line.rstrip(b"\0").decode(errors="replace") == tty:
            return int(ut_pid) if ut_pid > 1 else None
    return None


def _has_tty(proc: Path, pid: int, tty: str) -> bool:
    """Process `pid` has /dev/`tty` as its controlling terminal (a forged utmp record cannot
    point at another person's login shell)."""
    try:
        stat_line = (proc / str(pid) / "stat").read_text()
        device = os.stat(f"/dev/{tty}").st_rdev
    except OSError:
        return False
    tty_nr = int(stat_line.rpartition(")")[2].split()[4])  # the kernel's encoding of dev_t
    major, minor = (tty_nr >> 8) & 0xFFF, (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    return (major, minor) == (os.major(device), os.minor(device))


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
