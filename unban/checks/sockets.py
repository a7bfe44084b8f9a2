"""doctor's view of sshd's sockets: whether it listens where the client connects, and the
unauthenticated connections (startups) MaxStartups counts, from `ss` and process titles. Pure."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Optional

from unban.checks import SEES_REFUSED, Check
from unban.path.model import BLOCKS, CLEAR, IPAddress
from unban.sshd import SshdConfig, listens_for


def listen_check(
    config: SshdConfig,
    address: IPAddress,
    port: int,
    laddr: Optional[str],
    listening: Optional[Sequence[int]],
) -> Check:
    title = "sshd ListenAddress / Port"
    ok, why = listens_for(config, address.version, port, laddr)
    fix = (
        f"set `Port {port}` / `ListenAddress` in sshd_config, then `sshd -t && systemctl reload ssh`",
    )
    if not ok:
        return Check("listen", title, BLOCKS, why, (), fix, SEES_REFUSED)
    if listening is not None and port not in listening:
        return Check(
            "listen",
            title,
            BLOCKS,
            f"nothing listens on TCP port {port} here: is sshd running?",
            (why,),
            ("systemctl status ssh", "systemctl start ssh"),
            SEES_REFUSED,
        )
    return Check("listen", title, CLEAR, why)


@dataclass(frozen=True)
class Connection:
    local: str
    peer: str
    pids: tuple[int, ...]


@dataclass(frozen=True)
class Load:
    """Unauthenticated connections to sshd now."""

    startups: Optional[int]  # what MaxStartups compares with
    source: str  # where `startups` comes from
    from_address: Optional[int] = None  # how many of them come from the address's netblock
    preauth: tuple[Connection, ...] = ()
    total: int = 0  # established connections to sshd's port


SS_USERS = re.compile(r'\("([^"]*)",pid=(\d+),fd=\d+\)')
_LISTENER = re.compile(r"\[listener\]\s+(\d+)\s+of\s+(\d+)-(\d+)\s+startups")
PREAUTH_TITLES = ("[accepted]", "[net]", "[preauth]")


def parse_ss(text: str) -> list[Connection]:
    """`ss -Htnp state established ...` lines: local, peer, owning pids."""
    connections = []
    for line in text.splitlines():
        fields = line.split()
        # with `state established` ss leaves the State column out: Recv-Q Send-Q Local Peer [users]
        addresses = [f for f in fields if (":" in f and not f.startswith("users:"))]
        if len(addresses) < 2:
            continue
        pids = tuple(int(pid) for _name, pid in SS_USERS.findall(line))
        connections.append(Connection(addresses[0], addresses[1], pids))
    return connections


def listener_startups(title: str) -> Optional[int]:
    """`sshd: /usr/sbin/sshd -D [listener] 3 of 10-100 startups` -> 3 (OpenSSH 8.2+)."""
    match = _LISTENER.search(title)
    return int(match.group(1)) if match else None


def is_preauth(titles: Sequence[str]) -> bool:
    """A connection is unauthenticated while all its sshd processes are pre-auth ones."""
    return bool(titles) and all(t.rstrip().endswith(PREAUTH_TITLES) for t in titles)


def peer_address(peer: str) -> Optional[IPAddress]:
    host = peer.rsplit(":", 1)[0].strip("[]")
    host = host.split("%", 1)[0]
    try:
        parsed = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


def measure_load(
    listener_titles: Sequence[str],
    connections: Sequence[Connection],
    titles: Callable[[int], str],
    address: IPAddress,
    netblock: tuple[int, int],
) -> Load:
    """Combine the listener's own count with the socket table."""
    preauth = tuple(c for c in connections if is_preauth([titles(p) for p in c.pids]))
    bits = netblock[0] if address.version == 4 else netblock[1]
    network = ipaddress.ip_network(f"{address}/{bits}", strict=False)
    from_address = 0
    for connection in preauth:
        peer = peer_address(connection.peer)
        if peer is not None and peer.version == address.version and peer in network:
            from_address += 1
    counts = [n for n in (listener_startups(t) for t in listener_titles) if n is not None]
    if counts:
        return Load(
            sum(counts), "sshd's listener process title", from_address, preauth, len(connections)
        )
    return Load(
        len(preauth),
        "socket table: sshd processes still [accepted]/[net]/[preauth]",
        from_address,
        preauth,
        len(connections),
    )


# ---------------------------------------------------------------- reading the system
