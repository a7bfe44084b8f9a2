"""The native nft path walk on JSON captured from nft 1.0.6 (tests/data/nft: corpus.nft loaded
in a netns by capture.py; corpus.json is `nft -j -t list table` of each table, corpus.txt the
`nft -a -s -t` text). Rules are picked by the text nft prints for them, so a test reads as the
ruleset does. Set members come from a table of answers, as the kernel would give them."""

from __future__ import annotations

import copy
import ipaddress
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import pytest

from unban.layers.nft_listing import parse_table_text
from unban.path import nft
from unban.path.model import (
    BLOCKS,
    CLEAR,
    MAY_BLOCK,
    ChainWalk,
    NftElement,
    NoLookups,
    Packet,
    SourceKey,
)
from unban.path.nft import walk_tables
from unban.path.nft_syntax import render_rule

DATA = Path(__file__).parent.parent / "data" / "nft"
DOCS: dict[str, Any] = json.loads((DATA / "corpus.json").read_text())
TEXT = (DATA / "corpus.txt").read_text()
CLIENT = "203.0.113.4"
CLIENT6 = "2001:db8::4"
DEVICES = {
    ("inet", "ti", "ingress"): ("eth9",),
    ("inet", "tinet", "ingress"): ("eth9",),
    ("netdev", "nd", "ing"): ("eth9",),
    ("inet", "early", "ing"): ("eth9",),
}


class Answers(NoLookups):
    """Set and map members as `nft -c delete element` / `get element` report them."""

    def __init__(self, members: Optional[Mapping[tuple[str, str], NftElement]] = None) -> None:
        self.members = dict(members or {})
        self.asked: list[tuple[str, str, str, str]] = []

    def nft_element(self, family: str, table: str, name: str, key: str) -> NftElement:
        self.asked.append((family, table, name, key))
        return self.members.get((name, key), NftElement(False))


def packet(
    source: str = CLIENT,
    dport: int = 22,
    destination: Optional[str] = "203.0.113.1",
    interface: Optional[str] = "eth9",
) -> Packet:
    return Packet(
        ipaddress.ip_address(source),
        dport,
        ipaddress.ip_address(destination) if destination else None,
        interface,
    )


def only(table: str, chain: str, texts: Sequence[str]) -> dict[str, Any]:
    """The captured table with chain `chain` holding only the rules printed as `texts`."""
    doc = copy.deepcopy(DOCS[table])
    items = doc["nftables"]
    kept = [
        i
        for i in items
        if "rule" not in i or i["rule"]["chain"] != chain or render_rule(i["rule"]) in texts
    ]
    shown = [render_rule(i["rule"]) for i in kept if "rule" in i and i["rule"]["chain"] == chain]
    assert sorted(t for t in shown if t) == sorted(texts), "a text is not in the corpus"
    doc["nftables"] = kept
    return dict(doc)


def walk_of(
    doc: Mapping[str, Any],
    chain: str,
    pkt: Optional[Packet] = None,
    lookups: Optional[NoLookups] = None,
    devices: Any = DEVICES,
) -> ChainWalk:
    walks = walk_tables([doc], pkt or packet(), lookups or Answers(), devices)
    (walk,) = [w for w in walks if w.chain == chain]
    return walk


def ways(walk: ChainWalk) -> list[tuple[str, str, str]]:
    return [(o.verdict, o.hop.rule, o.detail) for o in walk.outcomes]


def test_every_captured_rule_renders_as_nft_prints_it() -> None:
    texts = {}
    for table in parse_table_text(TEXT):
        for handle, (_chain, text) in table.rule_texts().items():
            texts[(table.family, table.name, handle)] = text
    rules = [i["rule"] for d in DOCS.values() for i in d["nftables"] if "rule" in i]
    assert len(rules) == len(texts) > 120
    for rule in rules:
        assert nft.rule_text(rule) == texts[(rule["family"], rule["table"], rule["handle"])]


def test_base_chains_of_the_families_that_see_the_packet_in_hook_and_priority_order() -> None:
    walks = walk_tables(list(DOCS.values()), packet(), Answers(), DEVICES)
    assert [(w.family, w.table, w.chain, w.hook, w.priority) for w in walks] == [
        ("inet", "ti", "ingress", "ingress", -500),
        ("inet", "tinet", "ingress", "ingress", -500),
        ("netdev", "nd", "ing", "ingress", -100),
        ("inet", "early", "ing", "ingress", 0),
        ("inet", "ti", "pre", "prerouting", -300),
        ("inet", "early", "pre", "prerouting", -300),
        ("ip", "natty", "pre", "prerouting", -100),
        ("ip", "caps", "ways", "prerouting", 20),
        ("inet", "m", "input", "input", 0),
        ("ip", "t4", "input", "input", 5),
        ("inet", "tinet", "input", "input", 10),
        ("ip", "caps", "deep", "input", 20),
        ("inet", "r", "c", "input", 50),
    ]
    assert all(w.backend == "nftables" for w in walks)
    assert walks[2].device == "eth9"
    six = walk_tables(list(DOCS.values()), packet(CLIENT6, destination=None), Answers(), DEVICES)
    assert {(w.family, w.table) for w in six} >= {("ip6", "t6"), ("ip6", "r6")}
    assert not {w.family for w in six} & {"ip"}


def test_a_jump_to_a_dropping_chain_and_its_source_key() -> None:
    doc = only("ip t4", "input", ["ip saddr 203.0.113.4 jump deny"])
    walk = walk_of(doc, "input")
    ((verdict, rule, detail),) = ways(walk)
    assert (verdict, rule, detail, walk.verdict) == ("drop", "drop", "drop", BLOCKS)
    (outcome,) = walk.outcomes
    assert [(h.chain, h.rule) for h in outcome.path] == [
        ("input", "ip saddr 203.0.113.4 jump deny"),
        ("deny", "drop"),
    ]
    assert outcome.path[0].keys == (SourceKey("address", CLIENT, True),)
    assert outcome.hop.where() == f"nft ip t4 deny handle {outcome.hop.handle}"
    # another client: the jump does not match, the policy (drop) decides
    (other,) = walk_of(doc, "input", packet("198.51.100.1")).outcomes
    assert (other.verdict, other.detail, other.hop.is_policy) == ("drop", "policy drop", True)


def test_goto_then_the_chain_end_is_the_base_chains_policy() -> None:
    doc = only("ip t4", "input", ["ip saddr 203.0.113.4 goto deny2"])
    assert ways(walk_of(doc, "input")) == [
        ("reject", "meta l4proto tcp counter reject with tcp reset", "reject with tcp reset")
    ]
    doc = only("inet m", "input", ["ip saddr @cidrs jump sub"])
    lookups = Answers({("cidrs", CLIENT): NftElement(True, "203.0.113.0/24")})
    (outcome,) = walk_of(doc, "input", lookups=lookups).outcomes
    assert (outcome.verdict, outcome.detail) == ("accept", "policy accept")
    assert outcome.path[0].keys == (SourceKey("set", "203.0.113.0/24", False, "cidrs"),)
    assert [h.rule for h in outcome.path] == ["ip saddr @cidrs jump sub", "return"]


def test_negations_ranges_and_anonymous_sets() -> None:
    doc = only("ip t4", "input", ["ip saddr != 198.51.100.0/24 drop"])
    (outcome,) = walk_of(doc, "input").outcomes
    assert outcome.detail == "drop" and outcome.path[0].keys == ()  # no key: not the address
    assert ways(walk_of(doc, "input", packet("198.51.100.7")))[0][2] == "policy drop"
    doc = only("ip t4", "input", ["ip saddr 10.0.0.1-10.0.0.5 drop"])
    assert walk_of(doc, "input", packet("10.0.0.3")).outcomes[0].path[0].keys == (
        SourceKey("address", "10.0.0.1-10.0.0.5", False),
    )
    assert walk_of(doc, "input").outcomes[0].detail == "policy drop"
    doc = only("ip t4", "input", ["ip saddr { 192.0.2.0/24, 203.0.113.4 } drop"])
    (outcome,) = walk_of(doc, "input").outcomes
    assert outcome.hop.keys == (SourceKey("anonymous", CLIENT, True),)
    (outcome,) = walk_of(doc, "input", packet("192.0.2.9")).outcomes
    assert outcome.hop.keys == (SourceKey("anonymous", "192.0.2.0/24", False),)
    doc = only("inet m", "input", ["ip saddr != { 192.0.2.1, 203.0.113.4 } counter",
                                   "tcp dport != 22 counter", "iifname != \"lo\" counter"])  # fmt: skip
    (outcome,) = walk_of(doc, "input").outcomes
    assert [h.rule for h in outcome.path] == ['iifname != "lo" counter']


def test_concatenations_named_and_anonymous() -> None:
    doc = only("ip t4", "input", ["ip saddr . tcp dport @blk drop",
                                  "ip saddr . meta l4proto . tcp dport @cm"])  # fmt: skip
    lookups = Answers({("blk", "203.0.113.4 . 22"): NftElement(True, "203.0.113.4 . 22")})
    (outcome,) = walk_of(doc, "input", lookups=lookups).outcomes
    assert outcome.hop.keys == (SourceKey("set", "203.0.113.4 . 22", True, "blk"),)
    lookups = Answers()
    assert walk_of(doc, "input", packet(dport=2222), lookups).outcomes[0].detail == "policy drop"
    assert ("ip", "t4", "blk", "203.0.113.4 . 2222") in lookups.asked
    assert ("ip", "t4", "cm", "203.0.113.4 . tcp . 2222") in lookups.asked
    doc = only("ip t4", "input", ["ip saddr . tcp dport { 203.0.113.4 . 22 } drop"])
    (outcome,) = walk_of(doc, "input").outcomes
    assert outcome.hop.keys == (SourceKey("anonymous", "203.0.113.4 . 22", True),)
    assert walk_of(doc, "input", packet(dport=23)).outcomes[0].detail == "policy drop"
    doc = only("inet m", "input", ["ip6 saddr . tcp dport { 2001:db8::4 . 22 } drop"])
    (outcome,) = walk_of(doc, "input", packet(CLIENT6, destination=None)).outcomes
    assert outcome.verdict == "drop"
    assert outcome.hop.keys == (SourceKey("anonymous", "2001:db8::4 . 22", True),)
    assert walk_of(doc, "input").outcomes[0].verdict == "accept"  # an IPv4 packet


VMAP = (
    "ip saddr vmap { 198.51.100.3 : accept, 198.51.100.4 : jump deny, 198.51.100.5 : goto deny,"
    " 198.51.100.6 : continue, 198.51.100.7 : return, 203.0.113.4 : drop }"
)


def test_anonymous_verdict_maps() -> None:
    doc = only("ip t4", "input", [VMAP, "tcp dport 22 log prefix \"x \" level info counter accept"])  # fmt: skip
    found = {}
    for source in ("203.0.113.4", "198.51.100.3", "198.51.100.4", "198.51.100.5",
                   "198.51.100.6", "198.51.100.7", "198.51.100.8"):  # fmt: skip
        (outcome,) = walk_of(doc, "input", packet(source)).outcomes
        found[source] = (outcome.verdict, outcome.detail)
    assert found == {
        "203.0.113.4": ("drop", "drop (vmap 203.0.113.4 : drop)"),
        "198.51.100.3": ("accept", "accept (vmap 198.51.100.3 : accept)"),
        "198.51.100.4": ("drop", "drop"),
        "198.51.100.5": ("drop", "drop"),
        "198.51.100.6": ("accept", "accept"),  # continue: the next rule accepts port 22
        "198.51.100.7": ("drop", "policy drop"),  # return from the base chain: its policy
        "198.51.100.8": ("accept", "accept"),
    }
    (outcome,) = walk_of(doc, "input").outcomes
    assert outcome.hop.keys == (SourceKey("anonymous", CLIENT, True),)


def test_named_verdict_maps_and_sets_ask_the_kernel() -> None:
    doc = only("ip t4", "input", ["ip saddr vmap @vm", "ip saddr @bad goto deny",
                                  "ip saddr @plain drop"])  # fmt: skip
    lookups = Answers({("vm", "198.51.100.2"): NftElement(True, "198.51.100.2", "jump deny")})
    (outcome,) = walk_of(doc, "input", packet("198.51.100.2"), lookups).outcomes
    assert [h.rule for h in outcome.path] == ["ip saddr vmap @vm", "drop"]
    assert outcome.path[0].keys == (SourceKey("set", "198.51.100.2", True, "vm"),)
    lookups = Answers({("vm", CLIENT): NftElement(True, CLIENT, "drop")})
    (outcome,) = walk_of(doc, "input", lookups=lookups).outcomes
    assert outcome.detail == "drop (vmap 203.0.113.4 : drop)"
    assert outcome.hop.keys == (SourceKey("set", CLIENT, True, "vm"),)
    # an interval set gives the element that holds the address
    lookups = Answers({("bad", CLIENT): NftElement(True, "203.0.113.0/24")})
    (outcome,) = walk_of(doc, "input", lookups=lookups).outcomes
    assert outcome.path[0].keys == (SourceKey("set", "203.0.113.0/24", False, "bad"),)
    assert outcome.hop.chain == "deny"
    # nothing in any set: the policy
    assert walk_of(doc, "input").outcomes[0].detail == "policy drop"


def test_a_lookup_that_fails_is_maybe_never_a_silent_pass() -> None:
    doc = only("ip t4", "input", ["ip saddr @plain drop"])
    walk = walk_of(doc, "input", lookups=NoLookups())
    assert walk.verdict == BLOCKS  # both ways drop: the set's rule, and the policy
    assert [(o.detail, [(a.matched, a.why) for a in o.assumptions]) for o in walk.outcomes] == [
        ("drop", [(True, "could not look up 203.0.113.4 in set plain")]),
        ("policy drop", [(False, "could not look up 203.0.113.4 in set plain")]),
    ]
    doc = only("inet tinet", "input", ["ip saddr @s4 reject with icmpx admin-prohibited"])
    walk = walk_of(doc, "input", lookups=NoLookups())
    assert walk.verdict == MAY_BLOCK
    assert [o.verdict for o in walk.outcomes] == ["reject", "accept"]


def test_state_protocol_interface_and_port_matches() -> None:
    texts = [
        "ct state established,related accept", "ct state != new drop", 'iifname "lo" accept',
        'iifname "eth*" counter', 'iif "lo" accept', "tcp dport { 22, 2222 } counter",
        "tcp dport 20-30 counter", "tcp sport 0-65535 counter",
        "tcp flags syn tcp dport 22 counter", "tcp flags syn / syn,ack counter",
        "fib daddr type local counter", "meta pkttype host counter",
        'tcp dport 22 log prefix "x " level info counter accept',
    ]  # fmt: skip
    doc = only("ip t4", "input", texts)
    (outcome,) = walk_of(doc, "input").outcomes
    assert outcome.verdict == "accept"
    assert [h.rule for h in outcome.path] == [
        'iifname "eth*" counter', "tcp dport { 22, 2222 } counter", "tcp dport 20-30 counter",
        "tcp sport 0-65535 counter", "tcp flags syn tcp dport 22 counter",
        "tcp flags syn / syn,ack counter", "fib daddr type local counter",
        "meta pkttype host counter", 'tcp dport 22 log prefix "x " level info counter accept',
    ]  # fmt: skip
    # on lo: the iifname accept
    (outcome,) = walk_of(doc, "input", packet(interface="lo")).outcomes
    assert outcome.hop.rule == 'iifname "lo" accept'
    # interface unknown: iifname "lo" accept may match
    walk = walk_of(doc, "input", packet(interface=None))
    assert [(o.verdict, o.hop.rule) for o in walk.outcomes][:2] == [
        ("accept", 'iifname "lo" accept'),
        ("accept", 'iif "lo" accept'),
    ]
    assert walk.verdict == CLEAR
    doc = only("inet m", "input", [
        "ct state new counter", "ct state { established, new } counter",
        "ct state invalid drop", "ct status dnat counter", "meta l4proto { tcp, udp } counter",
        "meta l4proto != tcp drop", "ip protocol tcp counter", "ip6 nexthdr tcp counter",
        "th dport 22 counter", "udp dport 53 drop", "meta nfproto ipv4 counter",
        "meta nfproto { ipv4, ipv6 } counter", "ip6 saddr 2001:db8::/64 drop",
        "tcp flags syn / fin,syn,rst,ack counter", "tcp flags { syn | ack, syn } counter",
        "ip ttl 64 counter", "meta skuid 0 counter",
    ])  # fmt: skip
    (outcome,) = walk_of(doc, "input").outcomes
    assert (outcome.verdict, outcome.detail) == ("accept", "policy accept")
    assert [h.rule for h in outcome.path] == [
        "ct state new counter", "ct state { established, new } counter",
        "meta l4proto { tcp, udp } counter", "ip protocol tcp counter", "th dport 22 counter",
        "meta nfproto ipv4 counter", "meta nfproto { ipv4, ipv6 } counter",
        "tcp flags syn / fin,syn,rst,ack counter", "tcp flags { syn | ack, syn } counter",
    ]  # fmt: skip


def test_source_ports_and_destinations() -> None:
    doc = only("ip t4", "input", ["tcp sport 1024-65535 counter", "ip daddr 203.0.113.1 counter",
                                  "ip daddr { 203.0.113.1, 203.0.113.2 } counter"])  # fmt: skip
    (outcome,) = walk_of(doc, "input").outcomes
    assert [h.rule for h in outcome.path] == [
        "ip daddr 203.0.113.1 counter",
        "ip daddr { 203.0.113.1, 203.0.113.2 } counter",
    ]  # the sport rule is "maybe" and has no verdict: nothing to branch on
    doc = only("inet tinet", "input", [
        "ip saddr 203.0.113.4 ip daddr 203.0.113.1 tcp dport 22 accept"])  # fmt: skip
    assert ways(walk_of(doc, "input", packet(destination="203.0.113.9"))) == [
        ("accept", "policy accept", "policy accept")
    ]
    walk = walk_of(doc, "input", packet(destination=None))
    assert [(o.verdict, o.assumptions[0].matched, o.assumptions[0].why) for o in walk.outcomes] == [
        ("accept", True, "ip daddr: the server address the client uses is not known"),
        ("accept", False, "ip daddr: the server address the client uses is not known"),
    ]


def test_rates_marks_quotas_and_numgen_are_maybe() -> None:
    walk = walk_of(only("inet m", "input", ["meta mark 0x00000001 drop"]), "input")
    assert [(o.verdict, o.assumptions[0].why) for o in walk.outcomes] == [
        ("drop", "meta mark: the packet's mark is not known"),
        ("accept", "meta mark: the packet's mark is not known"),
    ]
    doc = only("ip t4", "input", ["limit rate over 10/minute burst 3 packets drop",
                                  'tcp dport 22 log prefix "x " level info counter accept'])  # fmt: skip
    walk = walk_of(doc, "input")
    assert walk.verdict == MAY_BLOCK
    assert [(o.verdict, o.assumptions[0].why) for o in walk.outcomes] == [
        ("drop", "limit rate over 10/minute burst 3 packets: depends on the traffic"),
        ("accept", "limit rate over 10/minute burst 3 packets: depends on the traffic"),
    ]
    doc = only("inet r", "c", ["quota over 10 kbytes drop",
                               "update @dyn { ip saddr limit rate over 5/minute } drop",
                               "add @dyn { ip saddr }"])  # fmt: skip
    walk = walk_of(doc, "c")
    assert [(o.verdict, o.hop.rule) for o in walk.outcomes] == [
        ("drop", "quota over 10 kbytes drop"),
        ("drop", "update @dyn { ip saddr limit rate over 5/minute } drop"),
        ("accept", "policy accept"),
    ]
    doc = only("ip t4", "input", ["numgen random mod 2 0 counter", "meta mark set 0x00000005 counter",
                                  "ct mark set 0x00000006", "quota 1000 mbytes counter"])  # fmt: skip
    assert walk_of(doc, "input").verdict == BLOCKS  # policy drop either way
    doc = only("inet m", "input", ["fib saddr . iif oif missing drop"])
    # a reverse-path check passes: the SYN's interface is the one the route back leaves by ...
    assert walk_of(doc, "input").verdict == CLEAR
    # ... and depends on the routes when that interface is not known
    walk = walk_of(doc, "input", packet(interface=None))
    assert walk.outcomes[0].assumptions[0].why == "fib saddr . iif oif: depends on the routes"
    assert walk.verdict == MAY_BLOCK


def test_reject_forms_and_their_implicit_family() -> None:
    doc = only("ip t4", "input", ["reject with icmp admin-prohibited"])
    assert ways(walk_of(doc, "input"))[0][2] == "reject with icmp admin-prohibited"
    doc = only("ip t4", "input", ["reject"])
    assert ways(walk_of(doc, "input"))[0][:2] == ("reject", "reject")
    doc = only("inet r", "c", ["reject with icmp port-unreachable",
                               "reject with icmpx admin-prohibited"])  # fmt: skip
    assert ways(walk_of(doc, "c"))[0][2] == "reject with icmp port-unreachable"
    six = walk_of(doc, "c", packet(CLIENT6, destination=None))
    assert ways(six)[0][2] == "reject with icmpx admin-prohibited"  # icmp is IPv4's alone
    doc = only("ip6 r6", "c", ["reject"])
    assert ways(walk_of(doc, "c", packet(CLIENT6, destination=None)))[0][:2] == ("reject", "reject")


def test_return_continue_and_unknown_statements() -> None:
    doc = only("ip t4", "input", ["return"])
    assert ways(walk_of(doc, "input")) == [("drop", "policy drop", "policy drop")]
    doc = only("ip t4", "input", ["continue", 'counter comment "end"'])
    (outcome,) = walk_of(doc, "input").outcomes
    assert [h.rule for h in outcome.path] == ["continue", 'counter comment "end"']
    doc = only("inet r", "c", ["notrack"])
    assert ways(walk_of(doc, "c")) == [("unknown", "notrack", "notrack: not evaluated here")]


def test_nat_chains_that_rewrite_the_destination_are_unknown() -> None:
    doc = DOCS["ip natty"]
    assert ways(walk_of(doc, "pre")) == [
        ("unknown", "tcp dport 22 redirect to :2022",
         "redirect to :2022: the destination is rewritten"),
    ]  # fmt: skip
    assert walk_of(doc, "pre", packet(dport=2200)).verdict == CLEAR
    assert ways(walk_of(doc, "pre", packet(dport=2222)))[0][2] == (
        "dnat to 203.0.113.1:22: the destination is rewritten"
    )


def test_netdev_and_inet_ingress_follow_the_interface() -> None:
    nd = DOCS["netdev nd"]
    walk = walk_of(nd, "ing")
    assert (walk.hook, walk.priority, walk.device, walk.verdict) == (
        "ingress",
        -100,
        "eth9",
        BLOCKS,
    )
    assert walk.outcomes[0].hop.keys == (SourceKey("address", CLIENT, True),)
    assert walk_tables([nd], packet(interface="eth0"), Answers(), DEVICES) == []
    assert walk_of(nd, "ing", packet("198.51.100.1")).verdict == CLEAR
    assert walk_of(nd, "ing", packet(CLIENT6, destination=None)).verdict == CLEAR  # ip only
    # the packet's interface not known: it may or may not arrive on eth9
    walk = walk_of(nd, "ing", packet(interface=None))
    assert walk.verdict == MAY_BLOCK
    assert [(o.verdict, o.assumptions[0].matched, o.assumptions[0].why) for o in walk.outcomes] == [
        ("drop", True, "the chain is on eth9; the interface the client's packets arrive on is not known"),
        ("accept", False, "the chain is on eth9; the interface the client's packets arrive on is not known"),
    ]  # fmt: skip
    # nft 1.0.6's JSON has no device: without `devices`, unknown as well
    walk = walk_of(nd, "ing", devices={})
    assert walk.verdict == MAY_BLOCK and walk.device is None
    assert walk.outcomes[0].assumptions[0].why == "the chain's device is not known"
    # a newer nft's "dev" in the JSON is used as it is
    newer = copy.deepcopy(nd)
    for item in newer["nftables"]:
        if "chain" in item:
            item["chain"]["dev"] = ["eth1", "eth9"]
    assert walk_of(newer, "ing", devices={}).device == "eth1,eth9"
    # inet ingress, conntrack not run yet: ct state is "invalid" there
    early = DOCS["inet early"]
    assert walk_of(early, "ing").verdict == CLEAR
    (outcome,) = walk_of(early, "pre").outcomes
    assert [h.rule for h in outcome.path] == ["ct state invalid counter"]
    assert outcome.detail == "policy accept"  # ct mark before conntrack: no match either


def test_depth_and_ways_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    caps = DOCS["ip caps"]
    (outcome,) = walk_of(caps, "deep").outcomes
    assert outcome.verdict == "drop" and outcome.hop.chain == "c8" and len(outcome.path) == 9
    monkeypatch.setattr(nft, "MAX_DEPTH", 4)
    (outcome,) = walk_of(caps, "deep").outcomes
    assert (outcome.verdict, outcome.detail, outcome.hop.chain) == (
        "unknown",
        "chains nest too deep",
        "c4",
    )
    walk = walk_of(caps, "ways")
    assert len(walk.outcomes) == nft.MAX_WAYS + 1
    assert walk.outcomes[-1].verdict == "unknown"
    assert walk.outcomes[-1].detail == "too many ways through the chains to follow"
    assert walk.verdict == MAY_BLOCK


def test_queue_hands_the_verdict_to_a_program() -> None:
    """This machine's kernel has no nft_queue, so the rule could not be captured: its JSON is
    the shape libnftables-json(5) documents for the queue statement."""
    doc = only("ip t4", "input", ["return"])
    for item in doc["nftables"]:
        if "rule" in item and item["rule"]["chain"] == "input":
            item["rule"]["expr"] = [{"queue": {"num": 3, "flags": ["bypass"]}}]
    ((verdict, rule, detail),) = ways(walk_of(doc, "input"))
    assert verdict == "unknown"
    assert rule == '{"queue":{"num":3,"flags":["bypass"]}}'  # not printed by render_rule
    assert detail.endswith(": a userspace program decides")


def test_see_through_walks_go_on_past_each_refusal() -> None:
    doc = only("ip t4", "input", ["ip saddr 203.0.113.4 jump deny",
                                  "ip saddr { 192.0.2.0/24, 203.0.113.4 } drop"])  # fmt: skip
    walks = walk_tables([doc], packet(), Answers(), DEVICES, see_through=True)
    (walk,) = [w for w in walks if w.chain == "input"]
    assert [(o.verdict, o.hop.chain, o.hop.rule) for o in walk.outcomes] == [
        ("drop", "deny", "drop"),
        ("drop", "input", "ip saddr { 192.0.2.0/24, 203.0.113.4 } drop"),
        ("drop", "input", "policy drop"),
    ]
    assert walk.outcomes[1].path[-1].keys == (SourceKey("anonymous", CLIENT, True),)
