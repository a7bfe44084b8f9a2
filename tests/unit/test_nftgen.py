"""nftables' generation id: the reply parser, the pure decisions, the ruleset less the one rule
`iptables-nft -D` took, and when the iptables layer keeps its nft rules for the next find
(only when the id proves they are still the kernel's) or dumps them again."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Optional

import pytest

from unban import nftgen, nftnl, system
from unban.address import parse_target
from unban.errors import LayerError
from unban.layers import xtables, xtables_plan
from unban.path.iptables import parse_save

ADDRESS = "203.0.113.4"
SPEC = f"-s {ADDRESS}/32 -j REJECT --reject-with icmp-port-unreachable"
SAVE = (
    "*filter\n:INPUT ACCEPT [0:0]\n:f2b-sshd - [0:0]\n"
    "-A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd\n"
    "-A f2b-sshd -s 10.0.0.1/32 -j REJECT --reject-with icmp-port-unreachable\n"
    f"-A f2b-sshd {SPEC}\n"
    "-A f2b-sshd -s 10.0.0.2/32 -j REJECT --reject-with icmp-port-unreachable\n"
    "-A f2b-sshd -j RETURN\nCOMMIT\n"
)


def newgen_reply(generation: int, *, kind: int = (10 << 8) | 15) -> bytes:
    """A NFT_MSG_NEWGEN message as the kernel sends it: the id, its pid and name after."""
    attrs = struct.pack("=HH", 8, 1) + struct.pack(">I", generation)
    attrs += struct.pack("=HH", 8, 2) + struct.pack(">I", 4242)
    name = b"nft\x00"
    attrs += struct.pack("=HH", 4 + len(name), 3) + name
    body = struct.pack("=BBH", 0, 0, 0) + attrs
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 1, 0) + body


def test_the_reply_s_generation_id_is_read() -> None:
    assert nftgen.parse_reply(newgen_reply(7)) == 7
    assert nftgen.parse_reply(newgen_reply(0xFFFFFFFF)) == 0xFFFFFFFF


def test_an_error_or_a_short_reply_is_no_generation() -> None:
    error = struct.pack("=IHHII", 36, 2, 0, 1, 0) + struct.pack("=i", -95) + bytes(16)
    assert nftgen.parse_reply(error) is None
    assert nftgen.parse_reply(newgen_reply(7, kind=(10 << 8) | 16)) is None
    assert nftgen.parse_reply(b"\x00" * 8) is None


def test_the_next_generation_skips_zero_as_the_kernel_does() -> None:
    assert nftgen.following(41) == 42
    assert nftgen.following(0xFFFFFFFF) == 1


def test_reads_between_two_equal_ids_saw_that_generation() -> None:
    assert nftgen.steady(5, 5) == 5
    assert nftgen.steady(5, 6) is None  # something committed meanwhile
    assert nftgen.steady(None, None) is None
    assert nftgen.still(6, 6)
    assert not nftgen.still(6, 7)
    assert not nftgen.still(None, None)


def test_the_ruleset_less_the_rule_is_what_a_save_after_the_delete_reads() -> None:
    read = parse_save(SAVE, "nft", "ipv4")
    after = xtables_plan.without_rule(read, "filter", "f2b-sshd", SPEC)
    assert after == parse_save(SAVE.replace(f"-A f2b-sshd {SPEC}\n", ""), "nft", "ipv4")
    assert read == parse_save(SAVE, "nft", "ipv4")  # the find's read is left as it was
    assert after.tables["filter"].chains["INPUT"] is read.tables["filter"].chains["INPUT"]


class Kernel:
    """What the layer's reads, its `iptables-nft -D` and its deletes by handle see: one ruleset
    text per backend and family and nftables' generation id, which a delete bumps (or
    `others` commits do). A delete by handle names the generation it was read at, and is
    refused (nothing deleted) unless the kernel is still there, or when `refuse` says so."""

    def __init__(self, generation: Optional[int] = 10) -> None:
        self.saves = {"iptables-nft-save": SAVE}
        self.generation = generation
        self.ran: list[tuple[str, ...]] = []
        self.during_save = 0  # commits by others while a save runs
        self.by_handle: list[tuple[str, str, tuple[nftnl.Spot, ...], int]] = []
        self.given: list[Optional[nftnl.Handles]] = []  # the handles each delete was given
        self.refuse = False
        self.handles = [12, 13, 14, 15]  # f2b-sshd's; rules added at the top take smaller ones
        self.handle_dumps = 0

    def rule_handles(self, family: str) -> Optional[nftnl.Handles]:
        self.handle_dumps += 1
        lines = self.saves["iptables-nft-save"].splitlines()
        count = sum(1 for line in lines if line.startswith("-A f2b-sshd "))
        return {("filter", "INPUT"): [1], ("filter", "f2b-sshd"): self.handles[-count:]}

    def delete_at(
        self,
        family: str,
        table: str,
        spots: Sequence[nftnl.Spot],
        generation: int,
        handles: Optional[nftnl.Handles] = None,
    ) -> bool:
        self.by_handle.append((family, table, tuple(spots), generation))
        self.given.append(handles)
        if self.refuse or generation != self.generation:
            return False
        lines = self.saves["iptables-nft-save"].splitlines(keepends=True)
        gone = set()
        for spot in spots:
            rules = [i for i, line in enumerate(lines) if line.startswith(f"-A {spot.chain} ")]
            assert len(rules) == spot.rules
            gone.add(rules[spot.index])
        self.saves["iptables-nft-save"] = "".join(
            line for i, line in enumerate(lines) if i not in gone
        )
        self.generation += 1
        return True

    def run(self, _layer: str, argv: Any, **_kw: Any) -> system.Completed:
        argv = tuple(argv)
        self.ran.append(argv)
        if argv[0].endswith("-save"):
            if self.generation is not None:
                self.generation += self.during_save
            return system.Completed(argv, 0, self.saves.get(argv[0], ""), "")
        assert argv[:4] == ("iptables-nft", "-t", "filter", "-D"), argv
        self.saves["iptables-nft-save"] = SAVE.replace(f"-A f2b-sshd {SPEC}\n", "")
        if self.generation is not None:
            self.generation += 1
        return system.Completed(argv, 0, "", "")

    def dumps(self) -> int:
        return sum(1 for argv in self.ran if argv == ("iptables-nft-save",))


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Kernel:
    box = Kernel()
    monkeypatch.setattr(xtables, "run", box.run)
    monkeypatch.setattr(xtables_plan, "run", box.run)
    monkeypatch.setattr(xtables, "which", lambda name: f"/usr/sbin/{name}")
    monkeypatch.setattr(xtables, "generation", lambda: box.generation)
    monkeypatch.setattr(xtables, "before_reads", lambda: box.generation)
    monkeypatch.setattr(xtables, "delete_at", box.delete_at)
    monkeypatch.setattr(xtables, "rule_handles", box.rule_handles)
    return box


def lift_once(layer: xtables.XtablesLayer) -> list[Any]:
    """find, plan and apply the one rule blocking ADDRESS; the findings of the find after."""
    target = parse_target(ADDRESS)
    found = layer.find(target)
    assert [f.rule for f in found] == [f"-A f2b-sshd {SPEC}"]
    (batch,) = layer.plan(found)
    layer.apply(batch)
    return layer.find(target)


def test_after_its_own_delete_alone_the_layer_keeps_the_rules_less_that_rule(
    kernel: Kernel,
) -> None:
    layer = xtables.XtablesLayer(backends=("nft",), families=("ipv4",))
    assert lift_once(layer) == []
    assert kernel.dumps() == 1  # the find's only: the check after is generation 11, as derived
    assert layer.rulesets()[0] == parse_save(kernel.saves["iptables-nft-save"], "nft", "ipv4")
    # deleted by handle at the find's generation: rule 2 of the chain's 4, no iptables-nft run
    assert kernel.by_handle == [("ipv4", "filter", (nftnl.Spot("f2b-sshd", 1, 4),), 10)]
    assert kernel.ran == [("iptables-nft-save",)]


def test_a_commit_by_anyone_else_after_the_find_means_reading_again(kernel: Kernel) -> None:
    layer = xtables.XtablesLayer(backends=("nft",), families=("ipv4",))
    target = parse_target(ADDRESS)
    (batch,) = layer.plan(layer.find(target))
    layer.apply(batch)
    kernel.saves["iptables-nft-save"] = SAVE  # fail2ban banned it again: one more commit
    assert kernel.generation is not None
    kernel.generation += 1
    after = layer.find(target)
    assert [f.rule for f in after] == [f"-A f2b-sshd {SPEC}"]
    assert kernel.dumps() == 2


def test_a_commit_during_the_find_s_dump_means_reading_again(kernel: Kernel) -> None:
    kernel.during_save = 1  # the dump saw generation 10 or 11: not known which
    layer = xtables.XtablesLayer(backends=("nft",), families=("ipv4",))
    assert lift_once(layer) == []
    assert kernel.dumps() == 2


def test_without_a_generation_id_every_find_dumps_again(kernel: Kernel) -> None:
    kernel.generation = None  # no nf_tables answer
    layer = xtables.XtablesLayer(backends=("nft",), families=("ipv4",))
    assert lift_once(layer) == []
    assert kernel.dumps() == 2


def test_nothing_committed_since_a_find_keeps_its_rules_and_legacy_is_read_again(
    kernel: Kernel,
) -> None:
    layer = xtables.XtablesLayer(backends=("legacy", "nft"), families=("ipv4",))
    target = parse_target(ADDRESS)
    layer.find(target)
    layer.find(target)
    assert kernel.dumps() == 1
    assert kernel.ran.count(("iptables-legacy-save",)) == 2  # not nftables: no id to prove it


def test_a_delete_by_handle_the_kernel_refuses_is_done_by_spec_instead(kernel: Kernel) -> None:
    kernel.refuse = True  # as when something committed after the find: nothing was deleted
    layer = xtables.XtablesLayer(backends=("nft",), families=("ipv4",))
    assert lift_once(layer) == []
    assert len(kernel.by_handle) == 1
    assert [argv[:5] for argv in kernel.ran[1:2]] == [
        ("iptables-nft", "-t", "filter", "-D", "f2b-sshd")
    ]
    assert kernel.saves["iptables-nft-save"] == SAVE.replace(f"-A f2b-sshd {SPEC}\n", "")


def test_rules_of_the_find_s_generation_are_deleted_in_one_commit_by_handle(
    kernel: Kernel,
) -> None:
    # a second copy of the rule: `-D SPEC` would take the first, so never by spec
    kernel.saves["iptables-nft-save"] = SAVE.replace("-A f2b-sshd -j RETURN", f"-A f2b-sshd {SPEC}")
    layer = xtables.XtablesLayer(backends=("nft",), families=("ipv4",))
    target = parse_target(ADDRESS)
    found = layer.find(target)
    assert [f.line for f in found] == [2, 4]
    (batch,) = layer.plan(found)
    layer.apply(batch)
    (call,) = kernel.by_handle
    assert sorted(call[2], key=lambda s: s.index) == [
        nftnl.Spot("f2b-sshd", 1, 4),
        nftnl.Spot("f2b-sshd", 3, 4),
    ]
    assert layer.find(target) == []
    assert kernel.ran == [("iptables-nft-save",)]  # one commit: generation 11, derived


def test_a_delete_whose_outcome_is_unknown_stops_the_apply(
    kernel: Kernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unknown(*_args: Any) -> bool:
        raise nftnl.UnknownOutcome("no readable answer to the delete (timed out)")

    monkeypatch.setattr(xtables, "delete_at", unknown)
    layer = xtables.XtablesLayer(backends=("nft",), families=("ipv4",))
    (batch,) = layer.plan(layer.find(parse_target(ADDRESS)))
    with pytest.raises(LayerError, match="could not tell whether nftables deleted"):
        layer.apply(batch)
    assert kernel.ran == [("iptables-nft-save",)]  # and no delete by spec after it


def test_a_find_that_takes_handles_gives_them_to_the_delete_and_keeps_them_less_its_rule(
    kernel: Kernel,
) -> None:
    layer = xtables.XtablesLayer(backends=("nft",), families=("ipv4",), take_handles=True)
    assert lift_once(layer) == []
    assert kernel.handle_dumps == 1 and kernel.dumps() == 1  # beside the find's save only
    assert kernel.given == [{("filter", "INPUT"): [1], ("filter", "f2b-sshd"): [12, 13, 14, 15]}]
    # generation 11 is the find's less rule 2: so are the handles the layer keeps
    assert layer._handles == {
        "ipv4": {("filter", "INPUT"): [1], ("filter", "f2b-sshd"): [12, 14, 15]}
    }


def test_handles_dumped_while_something_committed_are_not_kept(kernel: Kernel) -> None:
    kernel.during_save = 1
    layer = xtables.XtablesLayer(backends=("nft",), families=("ipv4",), take_handles=True)
    layer.find(parse_target(ADDRESS))
    assert kernel.handle_dumps == 1
    assert layer._handles == {}


def test_a_find_takes_no_handles_unless_asked(kernel: Kernel) -> None:
    layer = xtables.XtablesLayer(backends=("nft",), families=("ipv4",))
    assert lift_once(layer) == []
    assert kernel.handle_dumps == 0 and kernel.given == [None]  # the delete dumps its chain
