"""nftables' generation id: one counter per network namespace, which the kernel bumps by one
at every committed transaction on any nftables table (iptables-nft's, ip6tables-nft's, nft's
own); reads, a failed or aborted transaction and `nft -c` leave it alone (seen here on
Debian 12's kernel). Two equal reads of it around a dump mean the dump saw one whole state; a
read of exactly one more after unban's own one-rule delete means that delete was the only
change since, so the state is the dump minus that rule (unban.layers.xtables).

Read with one NFT_MSG_GETGEN request on a raw netlink socket: under a millisecond, and
`socket` is all it imports. pyroute2's NFTSocket asks the same, but importing it costs about
0.27 s here, and the first read must come before the rule dumps `readahead` starts while
Python imports the rest.
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import Optional

# Netfilter netlink's framing, shared with unban.nftnl (which this module must not import: it
# is read before the read-ahead's dumps start).
NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NLM_F_REQUEST = 1
HEADER = struct.Struct("=IHHII")  # struct nlmsghdr
NFGENMSG = struct.Struct("=BBH")  # struct nfgenmsg: family, version, res_id
ATTR = struct.Struct("=HH")  # struct nlattr
NLA_TYPE_MASK = 0x3FFF

_NFT_MSG_GETGEN = 16
_NFT_MSG_NEWGEN = 15
_NFTA_GEN_ID = 1


def generation() -> Optional[int]:
    """The network namespace's nftables generation id now; None when the kernel does not
    answer (no nf_tables, no permission)."""
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
            sock.settimeout(2.0)
            sock.bind((0, 0))
            kind = (NFNL_SUBSYS_NFTABLES << 8) | _NFT_MSG_GETGEN
            size = HEADER.size + NFGENMSG.size
            sock.send(HEADER.pack(size, kind, NLM_F_REQUEST, 1, 0) + NFGENMSG.pack(0, 0, 0))
            return parse_reply(sock.recv(65536))
    except OSError:
        return None


def parse_reply(data: bytes) -> Optional[int]:
    """NFTA_GEN_ID of a NFT_MSG_NEWGEN reply; None for an error or anything else. Pure."""
    if len(data) < HEADER.size + NFGENMSG.size:
        return None
    length, kind = HEADER.unpack_from(data)[:2]
    if kind != (NFNL_SUBSYS_NFTABLES << 8) | _NFT_MSG_NEWGEN:
        return None
    offset = HEADER.size + NFGENMSG.size
    end = min(length, len(data))
    while offset + ATTR.size <= end:
        size, attr = ATTR.unpack_from(data, offset)
        if size < ATTR.size:
            return None
        if attr & NLA_TYPE_MASK == _NFTA_GEN_ID and size >= ATTR.size + 4:
            value: int = struct.unpack_from(">I", data, offset + ATTR.size)[0]
            return value
        offset += (size + 3) & ~3
    return None


def following(generation_id: int) -> int:
    """The id after one more commit: the kernel's 32-bit counter skips 0 when it wraps. Pure."""
    return (generation_id + 1) & 0xFFFFFFFF or 1


def steady(before: Optional[int], after: Optional[int]) -> Optional[int]:
    """The generation that reads made between two reads of the id all saw: `before`, when
    nothing was committed in between; None when something was (or either is unknown). Pure."""
    return before if before is not None and before == after else None


def still(expected: Optional[int], now: Optional[int]) -> bool:
    """True when state known to be generation `expected` is the kernel's state `now`. Pure."""
    return expected is not None and expected == now


_noted: Optional[tuple[Optional[int]]] = None  # read before the read-ahead's dumps started
_noted_lock = threading.Lock()


def note_before_dumps() -> None:
    """Read the id before `readahead` starts the rule dumps: a dump the next find takes from
    them may have begun before that find could read the id itself."""
    global _noted
    with _noted_lock:
        if _noted is None:
            _noted = (generation(),)


def before_reads() -> Optional[int]:
    """An id read before any dump this process may hand out from now on began: the one noted
    before the read-ahead when there was one (ids only grow, so an older one is a stricter
    test), else the id now."""
    with _noted_lock:
        noted = _noted
    return noted[0] if noted is not None else generation()
