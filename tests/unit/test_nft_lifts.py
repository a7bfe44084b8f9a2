"""The nftables layer's lifts for the path evaluator's findings, and the lookups' parsers (pure).
The texts are as nft 1.0.6 printed them in a netns (`nft get element`, `nft list chains`)."""

from __future__ import annotations

import json
from typing import Any, Optional

from unban.layers.nft_lifts import (
    admit_rule,
    build_batches,
    by_text,
    chain_of,
    resolve,
    without_element,
)
from unban.layers.nftables import path_finding
from unban.model import Finding
from unban.path.model import Hop, SourceKey
from unban.path.nft_lookups import parse_chain_devices, parse_get_element

ADDR = "203.0.113.4"


def hop(rule: str, handle: Optional[int] = 7, chain: str = "input", family: str = "ip") -> Hop:
    return Hop("nftables", family, "t", chain, rule, handle=handle)


def test_without_element_cuts_one_element_out_of_the_rule_text() -> None:
    rule = "ip saddr { 192.0.2.0/24, 203.0.113.4, 198.51.100.1 } drop"
    assert without_element(rule, ADDR) == "ip saddr { 192.0.2.0/24, 198.51.100.1 } drop"
    assert without_element("ip saddr { 192.0.2.0/24, 203.0.113.4 } drop", ADDR) == (
        "ip saddr 192.0.2.0/24 drop"  # nft prints a one-element set as its value
    )
    assert without_element("ip saddr . tcp dport { 192.0.2.1 . 22, 203.0.113.4 . 22 } drop",
                           "203.0.113.4 . 22") == "ip saddr . tcp dport { 192.0.2.1 . 22 } drop"  # fmt: skip
    assert without_element("ip saddr vmap { 198.51.100.3 : accept, 203.0.113.4 : drop }", ADDR) == (
        "ip saddr vmap { 198.51.100.3 : accept }"
    )
    assert without_element("ip saddr { 203.0.113.4 } drop", ADDR) == ""  # the rule goes
    assert without_element("ip saddr { 203.0.113.40, 192.0.2.1 } drop", ADDR) is None
    twice = "ip saddr { 203.0.113.4, 192.0.2.1 } ip daddr { 203.0.113.4, 192.0.2.2 } drop"
    assert without_element(twice, ADDR) is None
    quoted = 'ip saddr { 192.0.2.1, 203.0.113.4 } drop comment "{ 203.0.113.4 }"'
    assert without_element(quoted, ADDR) == 'ip saddr 192.0.2.1 drop comment "{ 203.0.113.4 }"'


def test_admit_rule_is_printed_as_nft_prints_it() -> None:
    assert admit_rule("203.0.113.4/32", (22,)) == (
        'ip saddr 203.0.113.4 tcp dport 22 accept comment "unban-admit"'
    )
    assert admit_rule("2001:db8::4/128", (2222, 22, 22)) == (
        'ip6 saddr 2001:db8::4 tcp dport { 22, 2222 } accept comment "unban-admit"'
    )
    assert admit_rule("198.18.0.0/22", ()) == 'ip saddr 198.18.0.0/22 accept comment "unban-admit"'


def steps(findings: list[Finding], **kwargs: Any) -> list[tuple[str, str]]:
    return [(s.command, s.undo_command) for b in build_batches(findings, **kwargs) for s in b.steps]


def test_a_named_map_element_goes_back_with_its_value_timeout_and_comment() -> None:
    key = SourceKey("set", ADDR, True, "m")
    finding = path_finding(hop("ip saddr vmap @m"), key, "drop", f"{ADDR}/32")
    assert (finding.set_name, finding.element, finding.family, finding.targeted) == (
        "m", ADDR, "ipv4", True)  # fmt: skip
    extras = {("ip", "t", "m", ADDR): 'timeout 1h expires 59m58s comment "by hand" : drop'}
    (batch,) = build_batches([finding], extras=extras)
    assert batch.payload == ("delete element ip t m { 203.0.113.4 }",)
    assert batch.undo_payload == (
        'add element ip t m { 203.0.113.4 timeout 1h expires 59m58s comment "by hand" : drop }',
    )
    concat = path_finding(
        hop("ip saddr . tcp dport @blk drop", family="inet"),
        SourceKey("set", f"{ADDR} . 22", True, "blk"),
        "drop",
        f"{ADDR}/32",
    )
    assert steps([concat]) == [
        ("nft delete element inet t blk '{ 203.0.113.4 . 22 }'",
         "nft add element inet t blk '{ 203.0.113.4 . 22 }'"),
    ]  # fmt: skip


def test_the_rule_that_goes_to_a_dropping_chain_is_deleted_and_put_back_in_place() -> None:
    rule = f"ip saddr {ADDR} goto filter_IN_drop"
    finding = path_finding(hop(rule), SourceKey("address", ADDR, True), "drop", f"{ADDR}/32")
    assert steps([finding], orders={("ip", "t", "input"): [5, 7, 9]}) == [
        ("nft delete rule ip t input handle 7",
         f"nft insert rule ip t input position 9 '{rule}'"),
    ]  # fmt: skip


def test_an_anonymous_element_swaps_the_rule_and_the_undo_finds_it_by_text() -> None:
    rule = f"ip saddr {{ 192.0.2.1, {ADDR} }} drop"
    key = SourceKey("anonymous", ADDR, True)
    (batch,) = build_batches([path_finding(hop(rule), key, "drop", f"{ADDR}/32")])
    assert batch.payload == (
        "insert rule ip t input position 7 ip saddr 192.0.2.1 drop",
        "delete rule ip t input handle 7",
    )
    (undo,) = batch.undo_payload
    assert chain_of(undo) == "input" and chain_of("delete rule ip t input handle 7") is None
    assert resolve(undo, [(3, "tcp dport 80 drop"), (12, "ip saddr 192.0.2.1 drop")]) == (
        f"insert rule ip t input position 12 {rule}\ndelete rule ip t input handle 12"
    )
    assert resolve(undo, [(3, "tcp dport 80 drop")]) is None
    (step,) = batch.steps
    assert step.command == (
        "nft insert rule ip t input position 7 'ip saddr 192.0.2.1 drop'; "
        "nft delete rule ip t input handle 7"
    )
    assert "H: the handle of 'ip saddr 192.0.2.1 drop'" in step.undo_command
    # the only element: the rule itself goes
    only = path_finding(hop(f"ip saddr {{ {ADDR} }} drop"), key, "drop", f"{ADDR}/32")
    assert build_batches([only])[0].payload == ("delete rule ip t input handle 7",)
    # an element that is not in the text exactly once: declined
    lost = path_finding(hop("ip saddr @s drop"), key, "drop", f"{ADDR}/32")
    assert build_batches([lost]) == []


def test_admit_inserts_at_the_top_and_the_undo_deletes_that_rule_by_text() -> None:
    policy = hop("policy drop", handle=None, family="inet")
    finding = path_finding(policy, None, "drop", f"{ADDR}/32", lift="admit", ports=(22,))
    assert not finding.targeted and finding.lift == "admit"
    (batch,) = build_batches([finding])
    text = f'ip saddr {ADDR} tcp dport 22 accept comment "unban-admit"'
    assert batch.payload == (f"insert rule inet t input {text}",)
    (undo,) = batch.undo_payload
    assert json.loads(undo[1:]) == {
        "chain": "input",
        "rule": text,
        "then": "delete rule inet t input handle {handle}",
    }
    assert resolve(undo, [(40, text), (2, "ct state established,related accept")]) == (
        "delete rule inet t input handle 40"
    )
    assert by_text("c", "r", "x {handle}") == '@{"chain": "c", "rule": "r", "then": "x {handle}"}'


def test_firewalld_findings_are_declined() -> None:
    fw = Hop("nftables", "inet", "firewalld", "filter_INPUT", f"ip saddr {ADDR} goto x", handle=3)
    finding = path_finding(fw, SourceKey("address", ADDR, True), "drop", f"{ADDR}/32")
    assert finding.owner == "firewalld" and build_batches([finding]) == []


def test_get_element_output_gives_element_value_and_extras() -> None:
    text = (
        "table ip tm {\n\tmap vm {\n\t\ttype ipv4_addr : verdict\n\t\tflags timeout\n"
        '\t\telements = { 203.0.113.4 timeout 1h expires 59m59s980ms comment "by : hand" : drop }\n'
        "\t}\n}\n"
    )
    assert parse_get_element(text) == [
        ("203.0.113.4", "drop", 'timeout 1h expires 59m59s980ms comment "by : hand"')
    ]
    concat = "table ip tm {\n\tset cc {\n\t\telements = { 198.51.100.1 . 20-30 }\n\t}\n}\n"
    assert parse_get_element(concat) == [("198.51.100.1 . 20-30", "", "")]
    jump = "\t\telements = { 198.51.100.2 : jump deny }\n"
    assert parse_get_element(jump) == [("198.51.100.2", "jump deny", "")]
    assert parse_get_element("Error: No such file or directory") == []


def test_ingress_devices_from_nft_list_chains() -> None:
    text = (
        'table inet ti {\n\tchain ingress {\n\t\ttype filter hook ingress device "lo" priority'
        " -500; policy accept;\n\t}\n\tchain pre {\n\t\ttype filter hook prerouting priority raw;"
        " policy accept;\n\t}\n}\ntable netdev nd {\n\tchain ing {\n\t\ttype filter hook ingress"
        " devices = { eth0, eth1 } priority -100; policy accept;\n\t}\n}\n"
    )
    assert parse_chain_devices(text) == {
        ("inet", "ti", "ingress"): ("lo",),
        ("netdev", "nd", "ing"): ("eth0", "eth1"),
    }


def test_a_swap_to_a_text_the_chain_already_has_is_declined() -> None:
    rule = f"ip saddr {{ 192.0.2.1, {ADDR} }} drop"
    finding = path_finding(hop(rule), SourceKey("anonymous", ADDR, True), "drop", f"{ADDR}/32")
    texts = {("ip", "t", "input"): ["ip saddr 192.0.2.1 drop", rule]}
    assert build_batches([finding], texts=texts) == []  # the undo could not tell them apart
    assert len(build_batches([finding], texts={("ip", "t", "input"): [rule]})) == 1
