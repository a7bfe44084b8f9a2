"""Native nftables against the real kernel and nft 1.0.6 in a throwaway namespace."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest

from tests.contract import owner_of
from tests.integration.conftest import Netns
from unban.address import parse_target
from unban.errors import RuleChangedError
from unban.layers.nftables import NftablesLayer
from unban.system import which

# fail2ban's nftables-multiport layout (with a timeout on the v4 set, as CrowdSec's sets have),
# an interval set, plain rules for the address and its /24, an anonymous set, a negated match.
RULESET = """\
table inet f2b-table {
    set addr-set-sshd {
        type ipv4_addr; flags timeout;
        elements = { 203.0.113.4 timeout 1h, 198.51.100.9 timeout 1h }
    }
    set addr6-set-sshd { type ipv6_addr; elements = { 2001:db8::4, 2001:db8::9 } }
    chain f2b-chain {
        type filter hook input priority filter - 1; policy accept;
        tcp dport 22 ip saddr @addr-set-sshd reject
        tcp dport 22 ip6 saddr @addr6-set-sshd reject
    }
}
table ip blocks {
    set ranges { type ipv4_addr; flags interval; elements = { 203.0.112.0/22, 192.0.2.0/28 } }
    chain input {
        type filter hook input priority 0; policy accept;
        ip saddr 198.51.100.1 drop
        ip saddr 203.0.113.4 drop
        ip saddr 203.0.113.0/24 counter drop
        ip saddr { 203.0.113.4, 192.0.2.1 } drop
        ip saddr != 203.0.113.4 tcp dport 25 drop
        ip saddr @ranges drop
        ip saddr 203.0.113.4 accept
        ip saddr 203.0.113.4 tcp dport 22 log prefix "ssh ban: " reject comment "by hand"
        ip saddr 198.51.100.2 drop
    }
}
"""
# How nft prints that reject rule.
REJECT_RULE = 'ip saddr 203.0.113.4 tcp dport 22 log prefix "ssh ban: " reject comment "by hand"'


def load(ns: Netns, ruleset: str = RULESET) -> None:
    ns.run("nft", "-f", "-", input=ruleset)


def ruleset(ns: Netns) -> list[str]:
    """The ruleset as `nft -s` prints it, without handles or set elements (checked apart)."""
    out = ns.run("nft", "-s", "-t", "list", "ruleset").stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def handles(ns: Netns, family: str, table: str) -> dict[str, int]:
    """Rule text -> handle."""
    out = ns.run("nft", "-a", "-s", "list", "table", family, table).stdout
    found = {}
    for line in out.splitlines():
        if " # handle " in line and not line.strip().startswith(("table ", "chain ", "set ")):
            text, _, handle = line.strip().rpartition(" # handle ")
            found[text] = int(handle)
    return found


def elements(ns: Netns, family: str, table: str, set_name: str) -> list[str]:
    """The set's elements, each with its timeout when it has one (expiry left out)."""
    doc = json.loads(ns.run("nft", "-j", "list", "set", family, table, set_name).stdout)
    (obj,) = [item["set"] for item in doc["nftables"] if "set" in item]
    found = []
    for item in obj.get("elem", []):
        if isinstance(item, dict) and "elem" in item:
            found.append(f"{item['elem']['val']} timeout {item['elem'].get('timeout')}")
        elif isinstance(item, dict) and "prefix" in item:
            found.append(f"{item['prefix']['addr']}/{item['prefix']['len']}")
        else:
            found.append(str(item))
    return sorted(found)


def nft_findings(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["layer"] == "nftables"]


def summary(findings: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            f["family"],
            f["table"],
            f["chain"],
            f["handle"],
            f["set_name"],
            f["element"],
            f["network"],
            f["verdict"],
            owner_of(f),
            f["targeted"],
        )
        for f in findings
    ]


def test_find_reports_every_kind_of_native_block(netns: Netns) -> None:
    load(netns)
    # An iptables-nft rule (in `table ip filter`): the iptables layer's, never this one's.
    netns.run("iptables-nft", "-A", "INPUT", "-s", "203.0.113.4", "-j", "DROP")
    h = handles(netns, "ip", "blocks")

    report = netns.unban_json("find", "203.0.113.4")
    assert summary(nft_findings(report)) == [
        ("inet", "f2b-table", "f2b-chain", None, "addr-set-sshd", "203.0.113.4",
         "203.0.113.4/32", "reject", "fail2ban:sshd", True),
        ("ipv4", "blocks", "input", h["ip saddr 203.0.113.4 drop"], None, None,
         "203.0.113.4/32", "drop", "manual", True),
        ("ipv4", "blocks", "input", h["ip saddr 203.0.113.0/24 counter drop"], None, None,
         "203.0.113.0/24", "drop", "manual", False),
        ("ipv4", "blocks", "input", h["ip saddr { 192.0.2.1, 203.0.113.4 } drop"], None, None,
         "203.0.113.4/32", "drop", "manual", False),
        ("ipv4", "blocks", "input", h[REJECT_RULE], None, None, "203.0.113.4/32", "reject",
         "manual", True),
        ("ipv4", "blocks", "input", None, "ranges", "203.0.112.0/22",
         "203.0.112.0/22", "drop", "manual", False),
    ]  # fmt: skip
    rules = {f["rule"] for f in nft_findings(report)}
    # nft 0.9.8 (Debian 11) prints a plain `reject` without its default type
    assert rules & {
        "tcp dport 22 ip saddr @addr-set-sshd reject with icmp port-unreachable",
        "tcp dport 22 ip saddr @addr-set-sshd reject",
    }
    assert "ip saddr @ranges drop" in rules
    # The iptables-nft rule is reported once, by the iptables layer.
    assert [(f["layer"], f["table"]) for f in report["findings"] if f["table"] == "filter"] == [
        ("iptables", "filter")
    ]
    text = netns.unban("find", "203.0.113.4").stdout
    assert (
        "nftables inet f2b-table f2b-chain set addr-set-sshd  reject  owner fail2ban:sshd" in text
    )
    assert "element 203.0.113.4 of addr-set-sshd" in text


def test_find_ipv6_and_a_cidr_target(netns: Netns) -> None:
    load(netns)
    report = netns.unban_json("find", "2001:db8::4")
    assert summary(nft_findings(report)) == [
        ("inet", "f2b-table", "f2b-chain", None, "addr6-set-sshd", "2001:db8::4",
         "2001:db8::4/128", "reject", "fail2ban:sshd", True),
    ]  # fmt: skip
    # A /24 target: the set elements inside it, and the rules on it are all targeted.
    cidr = netns.unban_json("find", "203.0.113.0/24")
    found = {(f["set_name"], f["element"], f["network"], f["targeted"]) for f in nft_findings(cidr)}
    assert ("addr-set-sshd", "203.0.113.4", "203.0.113.4/32", True) in found
    assert ("ranges", "203.0.112.0/22", "203.0.112.0/22", False) in found
    assert (None, None, "203.0.113.0/24", True) in found
    assert len(nft_findings(cidr)) == 6


def test_remove_deletes_exactly_the_targeted_blocks_and_revert_restores_them(
    netns: Netns,
) -> None:
    load(netns)
    before = ruleset(netns)
    before_elements = elements(netns, "inet", "f2b-table", "addr-set-sshd")
    target = parse_target("203.0.113.4")
    with netns.entered():
        layer = NftablesLayer()
        findings = [f for f in layer.find(target) if f.targeted]
        batches = layer.plan(findings)
        assert [b.scope for b in batches] == ["inet f2b-table", "ip blocks"]
        for batch in batches:
            layer.apply(batch)

    after = ruleset(netns)
    gone = [line for line in before if line not in after]
    assert gone == ["ip saddr 203.0.113.4 drop", REJECT_RULE]
    assert [line for line in after if line not in before] == []
    assert elements(netns, "inet", "f2b-table", "addr-set-sshd") == ["198.51.100.9 timeout 3600"]
    assert elements(netns, "ip", "blocks", "ranges") == ["192.0.2.0/28", "203.0.112.0/22"]
    assert elements(netns, "inet", "f2b-table", "addr6-set-sshd") == ["2001:db8::4", "2001:db8::9"]

    with netns.entered():
        for batch in reversed(batches):
            layer.revert(batch)
    assert ruleset(netns) == before  # every rule back, at its place
    assert elements(netns, "inet", "f2b-table", "addr-set-sshd") == before_elements
    got = netns.run(
        "nft", "get", "element", "inet", "f2b-table", "addr-set-sshd", "{ 203.0.113.4 }"
    )
    # The element is back with its timeout and about the expiry it had, not a fresh hour.
    match = re.search(r"203\.0\.113\.4 timeout 1h expires 59m(\d+)s", got.stdout)
    assert match, got.stdout


def test_remove_broad_with_the_cli_and_its_commands(netns: Netns) -> None:
    load(netns)
    netns.run("iptables-nft", "-A", "INPUT", "-s", "198.51.100.77", "-j", "DROP")
    before = ruleset(netns)

    plan = netns.unban_json("remove", "203.0.113.4", "--broad", "--dry-run")
    assert ruleset(netns) == before
    steps = [s for s in plan["plan"]["steps"] if s["layer"] == "nftables"]
    commands = [s["text"] for s in steps]
    h = handles(netns, "ip", "blocks")
    assert commands == [
        "nft delete element inet f2b-table addr-set-sshd '{ 203.0.113.4 }'",
        f"nft delete rule ip blocks input handle {h['ip saddr 203.0.113.4 drop']}",
        f"nft delete rule ip blocks input handle {h['ip saddr 203.0.113.0/24 counter drop']}",
        f"nft delete rule ip blocks input handle {h['ip saddr { 192.0.2.1, 203.0.113.4 } drop']}",
        f"nft delete rule ip blocks input handle {h[REJECT_RULE]}",
        "nft delete element ip blocks ranges '{ 203.0.112.0/22 }'",
    ]

    done = netns.unban_json("remove", "203.0.113.4", "--broad")
    scopes = [s["scope"] for s in done["plan"]["steps"] if s["layer"] == "nftables"]
    assert list(dict.fromkeys(scopes)) == ["inet f2b-table", "ip blocks"]
    assert done["changed"] is True and done["change_set"]
    assert [f for f in done["still_refused"] if f["layer"] == "nftables"] == []
    assert handles(netns, "ip", "blocks") == {
        "ip saddr 198.51.100.1 drop": h["ip saddr 198.51.100.1 drop"],
        "ip saddr != 203.0.113.4 tcp dport 25 drop": h["ip saddr != 203.0.113.4 tcp dport 25 drop"],
        "ip saddr @ranges drop": h["ip saddr @ranges drop"],
        "ip saddr 203.0.113.4 accept": h["ip saddr 203.0.113.4 accept"],
        "ip saddr 198.51.100.2 drop": h["ip saddr 198.51.100.2 drop"],
    }
    assert elements(netns, "ip", "blocks", "ranges") == ["192.0.2.0/28"]
    assert "-A INPUT -s 198.51.100.77/32 -j DROP" in netns.run("iptables-nft", "-S").stdout

    # A person running the printed undo commands, in order, gets the same ruleset back.
    for step in steps:
        netns.run(*step["undo"]["argv"])
    assert ruleset(netns) == before
    assert "203.0.112.0/22" in elements(netns, "ip", "blocks", "ranges")


def test_a_rule_that_changed_after_find_is_not_deleted(netns: Netns) -> None:
    load(netns)
    target = parse_target("203.0.113.4")
    with netns.entered():
        layer = NftablesLayer()
        batches = layer.plan([f for f in layer.find(target) if f.targeted])
        (batch,) = [b for b in batches if b.scope == "ip blocks"]
        # The table is rebuilt meanwhile (as a service restart does): handles start again,
        # so the handles planned now hold other rules.
        other = "".join(
            f"add rule ip blocks input ip saddr 198.51.100.{i} drop\n" for i in range(20)
        )
        subprocess.run(["nft", "delete", "table", "ip", "blocks"], check=True)
        subprocess.run(
            ["nft", "-f", "-"],
            input="add table ip blocks\nadd chain ip blocks input\n" + other,
            text=True,
            check=True,
        )
        before = ruleset(netns)
        with pytest.raises(RuleChangedError, match=r"it is now 'ip saddr 198\.51\.100\.\d+ drop'"):
            layer.apply(batch)
    assert ruleset(netns) == before


def test_one_failing_deletion_changes_nothing_in_its_table(netns: Netns) -> None:
    """Several deletions in one table are one transaction: an element fail2ban lifted
    meanwhile makes the whole table's batch fail, and the other element stays."""
    load(netns)
    netns.run("nft", "add", "element", "inet", "f2b-table", "addr-set-sshd", "{ 203.0.113.9 }")
    target = parse_target("203.0.113.0/24")
    with netns.entered():
        layer = NftablesLayer()
        (batch,) = [b for b in layer.plan(layer.find(target)) if b.scope == "inet f2b-table"]
        assert len(batch.steps) == 2
        subprocess.run(
            ["nft", "delete", "element", "inet", "f2b-table", "addr-set-sshd", "{ 203.0.113.9 }"],
            check=True,
        )
        with pytest.raises(RuleChangedError, match="nothing in that table was changed") as exc:
            layer.apply(batch)
    assert "inet f2b-table" in str(exc.value) and "\n" not in str(exc.value)
    assert "203.0.113.4 timeout 3600" in elements(netns, "inet", "f2b-table", "addr-set-sshd")


def test_firewalld_blocks_are_reported_but_left_to_firewall_cmd(netns: Netns) -> None:
    load(netns, "table inet firewalld {\n chain filter_IN_public_deny {\n"
                "  ip saddr 203.0.113.4 reject with icmpx type admin-prohibited\n }\n}\n")  # fmt: skip
    report = netns.unban_json("find", "203.0.113.4")
    (finding,) = nft_findings(report)
    assert (finding["table"], finding["owner"], finding["targeted"]) == (
        "firewalld",
        "firewalld",
        True,
    )
    status = [s for s in report["layers"] if s["layer"] == "nftables"]
    assert status == [{"layer": "nftables", "present": True,
                       "detail": "table inet firewalld: blocks there are reported, not changed "
                                 "(use firewall-cmd)"}]  # fmt: skip
    plan = netns.unban_json("remove", "203.0.113.4", "--dry-run")
    assert [s for s in plan["plan"]["steps"] if s["layer"] == "nftables"] == []
    listed = netns.unban("list").stdout
    assert (
        "nft list table inet firewalld  (firewalld's table: change it with firewall-cmd)" in listed
    )


def test_list_shows_rules_with_handles_and_set_counts_not_elements(netns: Netns) -> None:
    load(netns)
    many = ", ".join(f"10.9.{i // 250}.{i % 250 + 1}" for i in range(2000))
    netns.run("nft", "add", "element", "ip", "blocks", "ranges", f"{{ {many} }}")
    netns.run("iptables-nft", "-A", "INPUT", "-s", "203.0.113.4", "-j", "DROP")
    h = handles(netns, "ip", "blocks")

    data = netns.unban_json("list")
    nft = {lst["title"]: lst for lst in data["listings"] if lst["layer"] == "nftables"}
    assert sorted(nft) == ["nft list table inet f2b-table", "nft list table ip blocks"]
    blocks = nft["nft list table ip blocks"]["data"]
    (ranges,) = blocks["sets"]
    assert {k: v for k, v in ranges.items() if k != "handle"} == {
        "name": "ranges",
        "kind": "set",
        "attributes": ["type ipv4_addr", "flags interval"],
        "elements": 2002,
    }
    (chain,) = blocks["chains"]
    assert chain["rules"][1] == {"handle": h["ip saddr 203.0.113.4 drop"],
                                 "rule": "ip saddr 203.0.113.4 drop"}  # fmt: skip
    f2b = nft["nft list table inet f2b-table"]["data"]
    assert [(s["name"], s["elements"]) for s in f2b["sets"]] == [
        ("addr-set-sshd", 2),
        ("addr6-set-sshd", 2),
    ]
    text = netns.unban("list").stdout
    assert "# 2002 elements" in text and "10.9.0.1" not in text
    assert f"ip saddr 203.0.113.4 drop # handle {h['ip saddr 203.0.113.4 drop']}" in text

    only_v6 = netns.unban_json("list", "-6")
    assert [lst["title"] for lst in only_v6["listings"] if lst["layer"] == "nftables"] == [
        "nft list table inet f2b-table"
    ]
    only_chain = netns.unban_json("list", "--table", "blocks", "--chain", "input")
    (listing,) = [lst for lst in only_chain["listings"] if lst["layer"] == "nftables"]
    assert listing["data"]["sets"] == [] and len(listing["data"]["chains"]) == 1


def test_a_big_set_is_searched_without_listing_it(netns: Netns) -> None:
    """20k banned addresses: the one asked for is found by a kernel lookup, and a missing one
    costs no listing either (`nft list set` would print 20k lines)."""
    load(netns)
    lines = []
    for start in range(0, 20000, 5000):
        chunk = ", ".join(
            f"10.{i // 62500}.{i // 250 % 250}.{i % 250 + 1}" for i in range(start, start + 5000)
        )
        lines.append(f"add element inet f2b-table addr-set-sshd {{ {chunk} }}")
    netns.run("nft", "-f", "-", input="\n".join(lines) + "\n")
    report = netns.unban_json("find", "10.0.40.7")
    assert summary(nft_findings(report)) == [
        ("inet", "f2b-table", "f2b-chain", None, "addr-set-sshd", "10.0.40.7", "10.0.40.7/32",
         "reject", "fail2ban:sshd", True),
    ]  # fmt: skip
    assert nft_findings(netns.unban_json("find", "10.0.40.251")) == []


def test_without_nft_the_layer_is_absent_and_finds_nothing(netns: Netns) -> None:
    """A private mount namespace hides the binary (nothing on the host is changed)."""
    nft = which("nft")
    assert nft is not None
    script = (
        "import ipaddress, json; from unban.layers.nftables import NftablesLayer; "
        "l = NftablesLayer(); "
        "print(json.dumps([[s.present, s.detail] for s in l.status()] "
        "+ [len(l.find(ipaddress.ip_network('203.0.113.4')))]))"
    )
    load(netns)
    proc = netns.run(
        "unshare", "-m", "--propagation", "private", "sh", "-c",
        'mount --bind /dev/null "$1" && exec "$2" -c "$3"', "sh", nft, sys.executable, script,
    )  # fmt: skip
    assert json.loads(proc.stdout) == [[False, "nft not installed"], 0]
