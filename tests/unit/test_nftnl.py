"""The netlink messages unban.nftnl sends and the kernel's answers it reads, from byte strings
the kernel sent (tests/data/nftnl/capture.py: a three-rule iptables-nft chain f2b-sshd, in
table ip filter, at generation 5)."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from unban import nftnl

DATA = Path(__file__).parent.parent / "data" / "nftnl"
HEADER = struct.Struct("=IHHII")
NFGEN = struct.Struct("=BBH")


def datagrams(name: str) -> list[bytes]:
    return [bytes.fromhex(line) for line in (DATA / name).read_text().split()]


def messages(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, seq, payload) of each message of a datagram."""
    out = []
    offset = 0
    while offset < len(data):
        length, kind, flags, seq, _pid = HEADER.unpack_from(data, offset)
        out.append((kind, flags, seq, data[offset + HEADER.size : offset + length]))
        offset += (length + 3) & ~3
    return out


def attributes(payload: bytes) -> dict[int, bytes]:
    out = {}
    offset = 0
    while offset < len(payload):
        size, kind = struct.unpack_from("=HH", payload, offset)
        out[kind] = payload[offset + 4 : offset + size]
        offset += (size + 3) & ~3
    return out


def walked(grams: list[bytes], seq: int = 1) -> nftnl.HandleWalk:
    walk = nftnl.HandleWalk(seq)
    for gram in grams:
        if walk.going:  # the kernel sends no more once a walk has stopped reading
            walk.feed(gram, len(gram))
    return walk


def test_the_dump_gives_each_chain_s_handles_in_order() -> None:
    walk = walked(datagrams("dump-3-rules.hex"))
    assert not walk.going
    assert walk.result() == {("filter", "f2b-sshd"): [2, 3, 4]}  # the chain's handle is 1


def test_a_datagram_is_read_only_up_to_its_size() -> None:
    buffer = bytearray(65536)
    walk = nftnl.HandleWalk(1)
    for gram in datagrams("dump-3-rules.hex"):
        buffer[: len(gram)] = gram
        walk.feed(buffer, len(gram))  # the rest of the buffer holds an older datagram's bytes
    assert walk.result() == {("filter", "f2b-sshd"): [2, 3, 4]}


def message_at(gram: bytes, index: int) -> int:
    offset = 0
    for _ in range(index):
        offset += (HEADER.unpack_from(gram, offset)[0] + 3) & ~3
    return offset


def with_flags(gram: bytes, index: int, flags: int) -> bytes:
    """`gram` with message `index`'s flags or-ed with `flags`."""
    offset = message_at(gram, index)
    current = struct.unpack_from("=H", gram, offset + 6)[0]
    return gram[: offset + 6] + struct.pack("=H", current | flags) + gram[offset + 8 :]


def test_rules_of_other_chains_and_rules_laid_out_otherwise_are_decoded_whole() -> None:
    rules, done = datagrams("dump-3-rules.hex")
    second = message_at(rules, 1)
    renamed = rules.replace(b"f2b-sshd", b"f2b-sshX")
    other = rules[:second] + renamed[second:]  # rules 2 and 3 in another chain, same length
    assert walked([other, done]).result() == {
        ("filter", "f2b-sshd"): [2],
        ("filter", "f2b-sshX"): [3, 4],
    }
    # the handle first, then the table and the chain: found the slow way
    length = HEADER.unpack_from(rules)[0]
    attrs = attributes(rules[20:length])
    body = b"".join(
        struct.pack("=HH", 4 + len(attrs[kind]), kind)
        + attrs[kind]
        + b"\x00" * (-len(attrs[kind]) % 4)
        for kind in (3, 1, 2)
    )
    reordered = HEADER.pack(20 + len(body), (10 << 8) | 6, 2, 1, 0) + rules[16:20] + body
    assert walked([reordered + reordered, done]).result() == {("filter", "f2b-sshd"): [2, 2]}


def test_an_interrupted_dump_an_error_or_another_request_s_answer_is_no_dump() -> None:
    rules, done = datagrams("dump-3-rules.hex")
    assert walked([with_flags(rules, 1, 0x10), done]).result() is None  # NLM_F_DUMP_INTR
    assert walked([rules, done], seq=2).result() is None
    (error,) = datagrams("reply-enoent.hex")
    assert walked([error]).result() is None
    unfinished = nftnl.HandleWalk(1)
    unfinished.feed(rules, len(rules))
    assert unfinished.going and unfinished.result() is None
    cut = nftnl.HandleWalk(1)
    cut.feed(rules, len(rules) - 8)  # a message cut short
    assert cut.result() is None


def test_a_rule_message_without_its_handle_is_not_named() -> None:
    rules, _done = datagrams("dump-3-rules.hex")
    length = HEADER.unpack_from(rules)[0]
    first = rules[:length]
    assert nftnl.rule_names(first, 20, length) == ("filter", "f2b-sshd", 2)
    attrs = attributes(first[20:])
    without = b"".join(
        struct.pack("=HH", 4 + len(value), kind) + value + b"\x00" * (-len(value) % 4)
        for kind, value in attrs.items()
        if kind != 3
    )
    assert nftnl.rule_names(without, 0, len(without)) is None
    assert nftnl.rule_names(first, 20, length - 30) is None  # an attribute runs past the end


def test_the_dump_request_asks_for_one_chain_of_one_table_or_the_whole_family() -> None:
    ((kind, flags, seq, payload),) = messages(nftnl.dump_request(2, 7, "filter", "f2b-sshd"))
    assert (kind, flags, seq) == ((10 << 8) | 7, 0x301, 7)  # GETRULE, REQUEST | DUMP
    assert NFGEN.unpack_from(payload) == (2, 0, 0)
    assert attributes(payload[4:]) == {1: b"filter\x00", 2: b"f2b-sshd\x00"}
    ((kind, flags, seq, payload),) = messages(nftnl.dump_request(10, 1))  # all of ip6's
    assert (kind, flags, seq, payload) == ((10 << 8) | 7, 0x301, 1, NFGEN.pack(10, 0, 0))


def test_the_batch_names_the_generation_and_asks_an_ack_of_its_last_delete() -> None:
    batch, seqs = nftnl.batch_message(
        2, "filter", [("f2b-sshd", 5), ("f2b-web", 9)], 4, first_seq=2
    )
    begin, first, second, end = messages(batch)
    assert begin[:3] == (16, 1, 2) and end[:3] == (17, 1, 5)
    assert NFGEN.unpack_from(begin[3]) == (0, 0, socket.htons(10))  # res_id: nftables
    assert attributes(begin[3][4:]) == {1: struct.pack(">I", 4)}  # NFNL_BATCH_GENID
    assert NFGEN.unpack_from(end[3]) == (0, 0, socket.htons(10))
    # DELRULE; REQUEST, and ACK on the last one only
    assert [m[:3] for m in (first, second)] == [((10 << 8) | 8, 1, 3), ((10 << 8) | 8, 5, 4)]
    assert attributes(second[3][4:]) == {
        1: b"filter\x00",
        2: b"f2b-web\x00",
        3: struct.pack(">Q", 9),
    }
    assert seqs == [3, 4]
    # the batch the kernel answered with ERESTART (tests/data/nftnl/capture.py) is this one
    stale, _ = nftnl.batch_message(2, "filter", [("f2b-sshd", 5)], 4, first_seq=2)
    assert [stale] == datagrams("batch-genid-4.hex")


def acked(name: str, seqs: list[int]) -> nftnl.AckWalk:
    acks = nftnl.AckWalk(seqs)
    for gram in datagrams(name):
        nftnl.walk_acks(acks, gram)
    return acks


def test_only_every_delete_acked_and_no_error_is_a_commit() -> None:
    committed = acked("reply-ack.hex", [10])
    assert not committed.going and committed.committed()
    stale = acked("reply-erestart.hex", [3])  # BEGIN (seq 2) refused: the generation moved
    assert not stale.going and not stale.committed()
    assert stale.errors == {2: -85}
    missing = acked("reply-enoent.hex", [6])
    assert not missing.going and not missing.committed()
    assert missing.errors == {6: -2}


def test_a_commit_that_failed_is_no_commit_though_the_last_delete_was_acked() -> None:
    acks = nftnl.AckWalk([3, 4])
    acks.answer(2, -12)  # the commit's error comes first, on BEGIN
    assert not acks.going
    assert not acks.committed()


def test_a_failed_delete_before_the_last_is_no_commit() -> None:
    acks = acked("reply-enoent-then-ack.hex", [13, 14])
    assert not acks.going and not acks.committed()
    assert acks.errors == {13: -2}


def test_an_answer_to_nothing_asked_or_not_an_ack_is_an_unreadable_answer() -> None:
    with pytest.raises(ValueError):
        acked("reply-ack.hex", [4])
    rules, _done = datagrams("dump-3-rules.hex")
    with pytest.raises(ValueError):
        nftnl.walk_acks(nftnl.AckWalk([1]), rules)


def test_spots_are_named_only_where_each_chain_has_the_read_s_rule_count() -> None:
    handles = {("filter", "f2b-sshd"): [2, 3, 4], ("filter", "INPUT"): [7]}
    spots = [nftnl.Spot("f2b-sshd", 2, 3), nftnl.Spot("INPUT", 0, 1)]
    assert nftnl.spot_handles(handles, "filter", spots) == [("f2b-sshd", 4), ("INPUT", 7)]
    assert nftnl.spot_handles(handles, "filter", [nftnl.Spot("f2b-sshd", 1, 4)]) is None
    assert nftnl.spot_handles(handles, "raw", [nftnl.Spot("f2b-sshd", 1, 3)]) is None
    assert nftnl.spot_handles(None, "filter", spots) is None


def test_a_rule_is_asked_for_by_its_handle() -> None:
    ((kind, flags, seq, payload),) = messages(nftnl.rule_request(2, "filter", "f2b-sshd", 9, 3))
    assert (kind, flags, seq) == ((10 << 8) | 7, 1, 3)  # GETRULE, REQUEST: no dump
    assert attributes(payload[4:]) == {
        1: b"filter\x00",
        2: b"f2b-sshd\x00",
        3: struct.pack(">Q", 9),
    }
