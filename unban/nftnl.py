"""iptables-nft rules deleted by nft handle over raw netlink, in one transaction that the kernel
commits only while nftables is still at the generation a find read (unban.nftgen).

The find's `iptables-nft-save` ran between two equal reads of the generation id, G. The
handles come from a rule dump (NFT_MSG_GETRULE) taken at G too: beside that save, of the whole
family (`rule_handles`, when the layer was asked to take them), or at the delete, of each
chain, between two more reads of G. Either way the dump's Nth rule of a chain is the save's
Nth, when the chain has as many rules in both. The deletes go in one batch whose
NFNL_MSG_BATCH_BEGIN carries NFNL_BATCH_GENID = G: the kernel checks it under its commit
mutex and refuses the whole batch with ERESTART when anything committed since
(net/netfilter/nfnetlink.c, nf_tables_valid_genid). No rule that was not the one found can go:
a rule count that differs from the save's, a generation that moved, or any answer but the
expected ones means nothing is sent, or nothing is committed, and the caller falls back to
deleting by spec.

Measured at 100,000 rules in one chain: a dump costs about what one `iptables-nft -D` does,
nearly all of it kernel time (each 32 KiB datagram of about 120 rules walks the chain from its
start again), so the delete at a dump of its own saves only iptables-nft's own parsing; the
dump beside the save runs on the other core. Walking the dump's 100,000 messages takes well
under 0.2 s here: only a chain's first rule has its attributes decoded.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from unban.nftgen import (
    ATTR,
    HEADER,
    NETLINK_NETFILTER,
    NFGENMSG,
    NFNL_SUBSYS_NFTABLES,
    NLA_TYPE_MASK,
    NLM_F_REQUEST,
    generation,
)

_NFNL_MSG_BATCH_BEGIN = 16  # NLMSG_MIN_TYPE
_NFNL_MSG_BATCH_END = 17
_NFNL_BATCH_GENID = 1
_NFT_MSG_NEWRULE = (NFNL_SUBSYS_NFTABLES << 8) | 6
_NFT_MSG_GETRULE = (NFNL_SUBSYS_NFTABLES << 8) | 7
_NFT_MSG_DELRULE = (NFNL_SUBSYS_NFTABLES << 8) | 8
_NFTA_RULE_TABLE = 1
_NFTA_RULE_CHAIN = 2
_NFTA_RULE_HANDLE = 3
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_NLM_F_ACK = 0x4
_NLM_F_DUMP_INTR = 0x10
_NLM_F_DUMP = 0x300
_NFPROTO = {"ipv4": 2, "ipv6": 10}
_HEADER_NFGEN = struct.Struct("=IHHIIBBH")
_ERROR = struct.Struct("=i")
# NFTA_RULE_HANDLE's nlattr header and value read as one big-endian struct: its native
# (little-endian) size 12 and type 3 then read byte-swapped.
_HANDLE_ATTR = struct.Struct(">HHQ")
_HANDLE_ATTR_HEAD = (socket.htons(12), socket.htons(_NFTA_RULE_HANDLE))
_TIMEOUT = 5.0  # seconds; the kernel answers a batch before send() returns
_RECV = 65536  # a dump's datagrams are at most 32 KiB
_SOL_NETLINK = 270
_NETLINK_CAP_ACK = 10
_RCVBUF = 1 << 20


@dataclass(frozen=True)
class Spot:
    """A rule to delete: its chain, its 0-based index there in the find's read, and how many
    rules that chain had in that read."""

    chain: str
    index: int
    rules: int


Handles = dict[tuple[str, str], list[int]]  # (table, chain): its rules' handles, in order


class UnknownOutcome(OSError):
    """The kernel's answer to a sent batch could not be read: whether it committed is not
    known from the reply (the caller asks the generation id)."""


def delete_at(
    family: str,
    table: str,
    spots: Sequence[Spot],
    generation_id: int,
    handles: Optional[Handles] = None,
) -> bool:
    """Delete the rules at `spots` of generation `generation_id` of `table`, in one commit
    that the kernel refuses unless nftables is still at that generation. `handles`: the
    family's rule handles dumped at that generation (`rule_handles`), else each spot's chain
    is dumped now. True once it committed; False when nothing was committed (the state moved
    on, or the kernel answered otherwise than expected): the caller falls back to its slower
    ways.

    When the answer to a sent batch cannot be read, the rules are looked up by handle: all
    gone is True, any still there False. Raises UnknownOutcome when that fails too."""
    nfproto = _NFPROTO[family]
    try:
        with _socket() as sock:
            chains = sorted({spot.chain for spot in spots})
            if handles is None:
                handles = _chain_handles(sock, nfproto, table, chains, generation_id)
            named = spot_handles(handles, table, spots)
            if named is None:
                return False
            first = len(chains) + 1  # the dumps asked with 1..len(chains)
            batch, seqs = batch_message(nfproto, table, named, generation_id, first_seq=first)
            sock.send(batch)
            try:
                return _read_acks(sock, seqs)
            except (OSError, ValueError) as exc:
                unread = exc
        # The batch is all or nothing: one of its rules still there means it did not commit.
        there = _still_there(nfproto, table, named)
        if there is None:
            raise UnknownOutcome(f"no readable answer to the delete ({unread})")
        return not any(there)
    except UnknownOutcome:
        raise
    except OSError:
        return False


def _still_there(
    nfproto: int, table: str, named: Sequence[tuple[str, int]]
) -> Optional[list[bool]]:
    """Whether each (chain, handle) is a rule now (NFT_MSG_GETRULE of that handle: the rule,
    or ENOENT); None when another answer comes or none."""
    try:
        with _socket() as sock:
            there = []
            for seq, (chain, handle) in enumerate(named, 1):
                sock.send(rule_request(nfproto, table, chain, handle, seq))
                answer = sock.recv(_RECV)
                kind, seq_back = HEADER.unpack_from(answer)[1:4:2]
                if seq_back != seq:
                    return None
                if kind == _NFT_MSG_NEWRULE:
                    there.append(True)
                elif kind == _NLMSG_ERROR and _ERROR.unpack_from(answer, HEADER.size)[0] == -2:
                    there.append(False)  # ENOENT
                else:
                    return None
            return there
    except (OSError, struct.error):
        return None


def rule_handles(family: str) -> Optional[Handles]:
    """Every rule handle of the family's tables, from one dump; None when the kernel does not
    answer as expected. The caller brackets it with reads of the generation id."""
    try:
        with _socket() as sock:
            sock.send(dump_request(_NFPROTO[family], 1))
            return _read_handles(sock, 1)
    except OSError:
        return None


def _socket() -> socket.socket:
    """A netfilter netlink socket whose error answers leave out the request they answer
    (NETLINK_CAP_ACK), with room for the answers to a batch of many deletes that fail."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        sock.settimeout(_TIMEOUT)
        sock.setsockopt(_SOL_NETLINK, _NETLINK_CAP_ACK, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)  # rmem_max caps it
        sock.bind((0, 0))
    except OSError:
        sock.close()
        raise
    return sock


def _chain_handles(
    sock: socket.socket, nfproto: int, table: str, chains: Sequence[str], generation_id: int
) -> Optional[Handles]:
    """The handles of `chains`, from dumps that all saw generation `generation_id`; None
    otherwise."""
    if generation() != generation_id:
        return None
    handles: Handles = {}
    for seq, chain in enumerate(chains, 1):
        sock.send(dump_request(nfproto, seq, table, chain))
        dumped = _read_handles(sock, seq)
        if dumped is None:
            return None
        handles.update(dumped)
    return handles if generation() == generation_id else None


def spot_handles(
    handles: Optional[Handles], table: str, spots: Sequence[Spot]
) -> Optional[list[tuple[str, int]]]:
    """(chain, handle) of each spot, when each chain has as many rules as in the find's read
    (its save printed one line per rule); None otherwise. Pure."""
    if handles is None:
        return None
    named = []
    for spot in spots:
        chain = handles.get((table, spot.chain), [])
        if len(chain) != spot.rules:
            return None
        named.append((spot.chain, chain[spot.index]))
    return named


def without_handles_at(handles: Handles, table: str, spots: Sequence[tuple[str, int]]) -> Handles:
    """`handles` once the rules at `spots` ((chain, 0-based index)) of `table` are deleted.
    Pure: a new mapping, sharing the chains it does not change."""
    out = dict(handles)
    for name in {chain for chain, _ in spots}:
        gone = {index for chain, index in spots if chain == name}
        kept = handles.get((table, name), [])
        out[(table, name)] = [h for index, h in enumerate(kept) if index not in gone]
    return out


def _attr(kind: int, value: bytes) -> bytes:
    size = ATTR.size + len(value)
    return ATTR.pack(size, kind) + value + b"\x00" * (-size % 4)


def _name(value: str) -> bytes:
    return value.encode() + b"\x00"


def _message(kind: int, flags: int, seq: int, nfgen: bytes, attrs: bytes = b"") -> bytes:
    body = nfgen + attrs
    return HEADER.pack(HEADER.size + len(body), kind, flags, seq, 0) + body


def dump_request(
    nfproto: int, seq: int, table: Optional[str] = None, chain: Optional[str] = None
) -> bytes:
    """NFT_MSG_GETRULE as a dump of the family's rules, in kernel order: of one table's chain
    with `table` and `chain`. Pure."""
    attrs = b""
    if table is not None and chain is not None:
        attrs = _attr(_NFTA_RULE_TABLE, _name(table)) + _attr(_NFTA_RULE_CHAIN, _name(chain))
    flags = NLM_F_REQUEST | _NLM_F_DUMP
    return _message(_NFT_MSG_GETRULE, flags, seq, NFGENMSG.pack(nfproto, 0, 0), attrs)


def rule_request(nfproto: int, table: str, chain: str, handle: int, seq: int) -> bytes:
    """NFT_MSG_GETRULE of one rule, by its handle. Pure."""
    attrs = _attr(_NFTA_RULE_TABLE, _name(table)) + _attr(_NFTA_RULE_CHAIN, _name(chain))
    attrs += _attr(_NFTA_RULE_HANDLE, struct.pack(">Q", handle))
    return _message(_NFT_MSG_GETRULE, NLM_F_REQUEST, seq, NFGENMSG.pack(nfproto, 0, 0), attrs)


def batch_message(
    nfproto: int,
    table: str,
    handles: Sequence[tuple[str, int]],
    generation_id: int,
    *,
    first_seq: int,
) -> tuple[bytes, list[int]]:
    """One batch: BEGIN naming the generation, a DELRULE per (chain, handle), END; and the
    DELRULEs' sequence numbers (BEGIN's is `first_seq`). Only the last DELRULE asks for an
    ack: the kernel answers a failing one anyway, in order, so the last one's answer comes
    after every other, and 1,000 acks would overflow the socket's buffer (ENOBUFS). Pure."""
    subsystem = NFGENMSG.pack(0, 0, socket.htons(NFNL_SUBSYS_NFTABLES))
    genid = _attr(_NFNL_BATCH_GENID, struct.pack(">I", generation_id))
    parts = [_message(_NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, first_seq, subsystem, genid)]
    seqs = []
    for seq, (chain, handle) in enumerate(handles, first_seq + 1):
        attrs = _attr(_NFTA_RULE_TABLE, _name(table)) + _attr(_NFTA_RULE_CHAIN, _name(chain))
        attrs += _attr(_NFTA_RULE_HANDLE, struct.pack(">Q", handle))
        nfgen = NFGENMSG.pack(nfproto, 0, 0)
        flags = NLM_F_REQUEST | (_NLM_F_ACK if seq == first_seq + len(handles) else 0)
        parts.append(_message(_NFT_MSG_DELRULE, flags, seq, nfgen, attrs))
        seqs.append(seq)
    end_seq = first_seq + len(handles) + 1
    parts.append(_message(_NFNL_MSG_BATCH_END, NLM_F_REQUEST, end_seq, subsystem))
    return b"".join(parts), seqs


def _read_handles(sock: socket.socket, seq: int) -> Optional[Handles]:
    walk = HandleWalk(seq)
    buffer = bytearray(_RECV)
    while walk.going:
        size = sock.recv_into(buffer)
        walk.feed(buffer, size)
    return walk.result()


class HandleWalk:
    """Walks a rule dump's datagrams into each chain's handles, in order, and fails on an
    error, an interrupted dump (a commit during it) or any message that is not part of the
    dump. Rules come chain by chain, so a rule whose table and chain attributes are the
    bytes of the previous rule's (the kernel puts them first, then the handle) is decoded
    no further than its handle."""

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.handles: Handles = {}
        self.going = True
        self.failed = False
        self._names = b""  # the previous rule's table and chain attributes
        self._chain: list[int] = []

    def feed(self, data: bytes | bytearray, size: int) -> None:
        """One datagram (its first `size` bytes of `data`). Pure."""
        offset = 0
        header = _HEADER_NFGEN.size
        unpack = _HEADER_NFGEN.unpack_from
        handle_at = _HANDLE_ATTR.unpack_from
        while self.going and offset + header <= size:
            length, kind, flags, seq = unpack(data, offset)[:4]
            if length < header or offset + length > size or seq != self.seq:
                return self._fail()
            if flags & _NLM_F_DUMP_INTR:
                return self._fail()
            if kind == _NFT_MSG_NEWRULE:
                start = offset + header
                names = self._names  # the fast way, inline: 100,000 times per dump
                at = start + len(names)
                if names and at + 12 <= offset + length and data.startswith(names, start):
                    attr_size, attr_kind, handle = handle_at(data, at)
                    if attr_size == _HANDLE_ATTR_HEAD[0] and attr_kind == _HANDLE_ATTR_HEAD[1]:
                        self._chain.append(handle)
                        offset += (length + 3) & ~3
                        continue
                if not self._rule(data, start, offset + length):
                    return self._fail()
            elif kind == _NLMSG_DONE:
                done = _ERROR.unpack_from(data, offset + HEADER.size)[0]
                self.going = False
                self.failed = done != 0
                return None
            else:
                return self._fail()
            offset += (length + 3) & ~3
        if self.going and offset < size:
            self._fail()  # bytes left that make no message
        return None

    def _rule(self, data: bytes | bytearray, start: int, end: int) -> bool:
        """A rule whose table and chain are decoded: the first of its chain, or one not laid
        out as the kernel lays them out."""
        named = rule_names(data, start, end)
        if named is None:
            return False
        table, chain, handle = named
        self._chain = self.handles.setdefault((table, chain), [])
        self._chain.append(handle)
        self._names = _leading_names(data, start, end)
        return True

    def _fail(self) -> None:
        self.going = False
        self.failed = True

    def result(self) -> Optional[Handles]:
        if self.going or self.failed:
            return None
        return self.handles


def _leading_names(data: bytes | bytearray, start: int, end: int) -> bytes:
    """The bytes of a rule message's table and chain attributes when they come first, as the
    kernel writes them; b"" otherwise (every rule is then decoded whole). Pure."""
    offset = start
    for expected in (_NFTA_RULE_TABLE, _NFTA_RULE_CHAIN):
        if offset + ATTR.size > end:
            return b""
        size, kind = ATTR.unpack_from(data, offset)
        if kind & NLA_TYPE_MASK != expected or size < ATTR.size:
            return b""
        offset += (size + 3) & ~3
    return bytes(data[start:offset])


def rule_names(data: bytes | bytearray, offset: int, end: int) -> Optional[tuple[str, str, int]]:
    """(table, chain, handle) from a NEWRULE message's attributes; None when one is missing
    or malformed. Pure."""
    table = chain = handle = None
    while offset + ATTR.size <= end:
        size, kind = ATTR.unpack_from(data, offset)
        if size < ATTR.size or offset + size > end:
            return None
        value = bytes(data[offset + ATTR.size : offset + size])
        kind &= NLA_TYPE_MASK
        if kind == _NFTA_RULE_TABLE:
            table = value.rstrip(b"\x00").decode(errors="replace")
        elif kind == _NFTA_RULE_CHAIN:
            chain = value.rstrip(b"\x00").decode(errors="replace")
        elif kind == _NFTA_RULE_HANDLE and len(value) == 8:
            handle = struct.unpack(">Q", value)[0]
        offset += (size + 3) & ~3
    if table is None or chain is None or handle is None:
        return None
    return table, chain, handle


def _read_acks(sock: socket.socket, seqs: Sequence[int]) -> bool:
    acks = AckWalk(seqs)
    while acks.going:
        walk_acks(acks, sock.recv(_RECV))
    return acks.committed()


class AckWalk:
    """The answers to one batch (`batch_message`), which the kernel sends once the batch is
    committed or aborted: an error for BEGIN (ERESTART: the generation moved on, nothing else
    follows; any other: the commit failed) comes first, then an error for each DELRULE that
    failed and the last DELRULE's answer, in order."""

    def __init__(self, seqs: Sequence[int]) -> None:
        self.begin = min(seqs) - 1
        self.last = max(seqs)
        self.asked = set(seqs)
        self.errors: dict[int, int] = {}
        self.going = True
        self.answered = False  # the last DELRULE's answer came

    def answer(self, seq: int, error: int) -> None:
        if seq != self.begin and seq not in self.asked:
            raise ValueError(f"an answer to no request of this batch (seq {seq})")
        if error:
            self.errors[seq] = error
        if seq == self.last:
            self.answered = True
        self.going = not (self.answered or (seq == self.begin and error))

    def committed(self) -> bool:
        return self.answered and not self.errors


def walk_acks(acks: AckWalk, data: bytes) -> None:
    """Feed one datagram of NLMSG_ERROR messages (error 0 is an ack) to `acks`. Pure."""
    offset = 0
    while offset + HEADER.size <= len(data):
        length, kind, _flags, seq = HEADER.unpack_from(data, offset)[:4]
        if length < HEADER.size or offset + length > len(data):
            raise ValueError("a truncated netlink message")
        if kind != _NLMSG_ERROR or length < HEADER.size + _ERROR.size:
            raise ValueError(f"netlink message type {kind} where an ack was expected")
        acks.answer(seq, _ERROR.unpack_from(data, offset + HEADER.size)[0])
        offset += (length + 3) & ~3
