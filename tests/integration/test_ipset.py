"""ipsets dropped by iptables rules, against the real kernel in a throwaway namespace."""

from __future__ import annotations

import dataclasses

import pytest

from tests.integration.conftest import Netns, run_many
from unban import engine
from unban.address import parse_target
from unban.errors import ApplyError, LayerError
from unban.layers import Layer, ListQuery
from unban.layers.ipset import IpsetLayer
from unban.layers.xtables import XtablesLayer


def members(ns: Netns, name: str) -> dict[str, str]:
    """Element -> the rest of its `ipset save` line (timeout, comment...)."""
    out = ns.run("ipset", "save", name).stdout
    result = {}
    for line in out.splitlines():
        if line.startswith(f"add {name} "):
            element, _, rest = line[len(f"add {name} ") :].partition(" ")
            result[element] = rest
    return result


def timeout_of(rest: str) -> int:
    tokens = rest.split()
    return int(tokens[tokens.index("timeout") + 1])


def layers() -> list[Layer]:
    xtables = XtablesLayer()
    return [xtables, IpsetLayer(xtables)]


def fail2ban_ipset(ns: Netns, ipt: str, hosts: dict[str, int]) -> None:
    """fail2ban's iptables-ipset action: a hash:ip set with timeouts and one REJECT rule."""
    ns.run("ipset", "create", "f2b-sshd", "hash:ip", "timeout", "600")
    for host, timeout in hosts.items():
        ns.run("ipset", "add", "f2b-sshd", host, "timeout", str(timeout))
    ns.run(ipt, "-w", "-I", "INPUT", "-m", "set", "--match-set", "f2b-sshd", "src", "-j", "REJECT")


@pytest.mark.parametrize("ipt", ["iptables-nft", "iptables-legacy"])
def test_fail2ban_ipset_element_found_removed_and_put_back(netns: Netns, ipt: str) -> None:
    fail2ban_ipset(netns, ipt, {"203.0.113.4": 300, "203.0.113.9": 600})
    # The same address in a set no rule uses is not a finding, and is left alone.
    run_many(
        netns, [["ipset", "create", "spare", "hash:ip"], ["ipset", "add", "spare", "203.0.113.4"]]
    )

    with netns.entered():
        used = layers()
        report = engine.find(parse_target("203.0.113.4"), used)
        found = [f for f in report.findings if f.layer == "ipset"]
        assert [
            (f.backend, f.family, f.table, f.chain, f.line, f.verdict, f.owner, f.set_name)
            for f in found
        ] == [("ipset", "ipv4", "filter", "INPUT", 1, "REJECT", "fail2ban:sshd", "f2b-sshd")]
        assert (found[0].element, found[0].network, found[0].targeted) == (
            "203.0.113.4",
            "203.0.113.4/32",
            True,
        )
        assert found[0].rule.startswith("-A INPUT -m set --match-set f2b-sshd src -j REJECT")
        # The ipset layer never deletes the rule itself: the iptables layer finds nothing.
        assert [f.layer for f in report.findings] == ["ipset"]

        plan = engine.plan(report, used)
        [batch] = plan.batches
        [step] = batch.steps
        assert step.command == "ipset del f2b-sshd 203.0.113.4"
        assert step.undo_command.startswith("ipset add f2b-sshd 203.0.113.4 timeout ")
        assert 290 <= timeout_of(step.undo_command) <= 300  # what was left, not the set's 600

        engine.apply(plan, used)
        assert list(members(netns, "f2b-sshd")) == ["203.0.113.9"]
        assert list(members(netns, "spare")) == ["203.0.113.4"]

        used[1].revert(batch)
    after = members(netns, "f2b-sshd")
    assert sorted(after) == ["203.0.113.4", "203.0.113.9"]
    assert 280 <= timeout_of(after["203.0.113.4"]) <= 300


def test_crowdsec_hash_net_wider_element_is_broad(netns: Netns) -> None:
    run_many(
        netns,
        [
            ["ipset", "create", "crowdsec-blacklists", "hash:net"],
            ["ipset", "add", "crowdsec-blacklists", "198.18.0.0/22"],
            ["ipset", "add", "crowdsec-blacklists", "198.18.1.7"],
            ["ipset", "add", "crowdsec-blacklists", "192.0.2.0/24"],
            ["iptables-nft", "-I", "INPUT", "-m", "set", "--match-set", "crowdsec-blacklists",
             "src", "-j", "DROP"],
        ],
    )  # fmt: skip
    with netns.entered():
        used = layers()
        report = engine.find(parse_target("198.18.1.7"), used)
        assert [
            (f.element, f.network, f.targeted, f.owner, f.verdict) for f in report.findings
        ] == [
            ("198.18.0.0/22", "198.18.0.0/22", False, "crowdsec", "DROP"),
            ("198.18.1.7", "198.18.1.7/32", True, "crowdsec", "DROP"),
        ]
        # Without --broad only the /32 goes; the /22 is left and reported.
        plan = engine.plan(report, used)
        assert [s.command for s in plan.steps] == ["ipset del crowdsec-blacklists 198.18.1.7"]
        assert [f.element for f in plan.skipped] == ["198.18.0.0/22"]
        engine.apply(plan, used)
        assert sorted(members(netns, "crowdsec-blacklists")) == ["192.0.2.0/24", "198.18.0.0/22"]

        broad = engine.plan(engine.find(parse_target("198.18.1.7"), layers()), used, broad=True)
        assert [s.command for s in broad.steps] == ["ipset del crowdsec-blacklists 198.18.0.0/22"]
        engine.apply(broad, used)
        assert list(members(netns, "crowdsec-blacklists")) == ["192.0.2.0/24"]
        used[1].revert(broad.batches[0])
    assert sorted(members(netns, "crowdsec-blacklists")) == ["192.0.2.0/24", "198.18.0.0/22"]


def test_cidr_target_lists_the_set_once(netns: Netns) -> None:
    fail2ban_ipset(netns, "iptables-nft", {"203.0.113.4": 600, "203.0.113.9": 600, "192.0.2.1": 60})
    with netns.entered():
        found = IpsetLayer(XtablesLayer()).find(parse_target("203.0.113.0/24"))
    assert sorted((f.element, f.targeted) for f in found) == [
        ("203.0.113.4", True),
        ("203.0.113.9", True),
    ]


def test_inet6_set_in_ip6tables(netns: Netns) -> None:
    run_many(
        netns,
        [
            ["ipset", "create", "sshguard6", "hash:ip", "family", "inet6", "timeout", "0"],
            ["ipset", "add", "sshguard6", "2001:db8::4"],
            ["ipset", "add", "sshguard6", "2001:db8::5", "timeout", "100"],
            ["ip6tables-legacy", "-A", "INPUT", "-m", "set", "--match-set", "sshguard6", "src",
             "-j", "DROP"],
        ],
    )  # fmt: skip
    with netns.entered():
        used = layers()
        report = engine.find(parse_target("2001:db8:0:0::4"), used)
        assert [(f.family, f.element, f.owner, f.targeted) for f in report.findings] == [
            ("ipv6", "2001:db8::4", "sshguard", True)
        ]
        assert engine.find(parse_target("203.0.113.4"), used).findings == ()
        plan = engine.plan(report, used)
        # timeout 0 in a set with timeouts is "never expires": the undo keeps it so.
        assert plan.steps[0].undo_command == "ipset add sshguard6 2001:db8::4 timeout 0"
        engine.apply(plan, used)
        assert list(members(netns, "sshguard6")) == ["2001:db8::5"]
        used[1].revert(plan.batches[0])
    assert members(netns, "sshguard6")["2001:db8::4"] == "timeout 0"


def test_sets_without_a_dropping_source_rule_are_not_findings(netns: Netns) -> None:
    run_many(
        netns,
        [
            ["ipset", "create", "allow", "hash:ip"],
            ["ipset", "add", "allow", "203.0.113.4"],
            ["ipset", "create", "dsts", "hash:ip"],
            ["ipset", "add", "dsts", "203.0.113.4"],
            ["ipset", "create", "nothing", "hash:ip"],
            ["ipset", "add", "nothing", "203.0.113.4"],
            ["iptables-nft", "-A", "INPUT", "-m", "set", "--match-set", "allow", "src", "-j",
             "ACCEPT"],
            ["iptables-nft", "-A", "OUTPUT", "-m", "set", "--match-set", "dsts", "dst", "-j",
             "DROP"],
        ],
    )  # fmt: skip
    with netns.entered():
        layer = IpsetLayer(XtablesLayer())
        assert layer.find(parse_target("203.0.113.4")) == []
        [listing] = layer.listings(ListQuery())
    assert listing.lines == (
        "allow  hash:ip  ipv4  1 entries  (no rule drops its members)",
        "dsts  hash:ip  ipv4  1 entries  (no rule drops its members)",
        "nothing  hash:ip  ipv4  1 entries  (no rule drops its members)",
    )


def test_list_set_members_and_tuple_sets(netns: Netns) -> None:
    run_many(
        netns,
        [
            ["ipset", "create", "f2b-sshd", "hash:ip"],
            ["ipset", "add", "f2b-sshd", "203.0.113.4"],
            ["ipset", "create", "ports", "hash:ip,port", "comment"],
            ["ipset", "add", "ports", "203.0.113.4,tcp:22", "comment", "ssh brute"],
            ["ipset", "create", "all", "list:set"],
            ["ipset", "add", "all", "f2b-sshd"],
            ["iptables-legacy", "-A", "INPUT", "-m", "set", "--match-set", "all", "src", "-j",
             "DROP"],
            ["iptables-legacy", "-A", "INPUT", "-m", "set", "--match-set", "ports", "src,dst",
             "-j", "REJECT"],
        ],
    )  # fmt: skip
    with netns.entered():
        used = layers()
        report = engine.find(parse_target("203.0.113.4"), used)
        assert [(f.set_name, f.element, f.line) for f in report.findings] == [
            ("f2b-sshd", "203.0.113.4", 1),
            ("ports", "203.0.113.4,tcp:22", 2),
        ]
        plan = engine.plan(report, used)
        engine.apply(plan, used)
        assert members(netns, "f2b-sshd") == {} and members(netns, "ports") == {}
        used[1].revert(plan.batches[0])
    assert members(netns, "ports") == {"203.0.113.4,tcp:22": 'comment "ssh brute"'}
    assert list(members(netns, "f2b-sshd")) == ["203.0.113.4"]


def test_a_batch_failing_midway_puts_back_what_it_deleted(netns: Netns) -> None:
    fail2ban_ipset(netns, "iptables-nft", {"203.0.113.4": 300, "203.0.113.9": 600})
    netns.run("ipset", "create", "bm", "bitmap:ip", "range", "10.0.0.0/24")
    with netns.entered():
        layer = IpsetLayer(XtablesLayer())
        [batch] = layer.plan(layer.find(parse_target("203.0.113.4")))
        # A line the kernel refuses after it has deleted line 1 (ipset restore is no transaction).
        broken = dataclasses.replace(
            batch,
            payload=(*batch.payload, "del bm 10.0.1.1", "del f2b-sshd 203.0.113.9"),
            undo_payload=(*batch.undo_payload, "add bm 10.0.1.1", "add f2b-sshd 203.0.113.9"),
        )
        with pytest.raises(LayerError, match="out of the range.*no set was changed"):
            layer.apply(broken)
    after = members(netns, "f2b-sshd")
    assert sorted(after) == ["203.0.113.4", "203.0.113.9"]
    assert timeout_of(after["203.0.113.4"]) <= 300  # put back with its own timeout


def test_a_set_gone_before_apply_fails_the_plan_and_changes_nothing(netns: Netns) -> None:
    fail2ban_ipset(netns, "iptables-nft", {"203.0.113.4": 300})
    run_many(
        netns,
        [
            ["ipset", "create", "later", "hash:ip"],
            ["ipset", "add", "later", "203.0.113.4"],
            ["iptables-nft", "-A", "INPUT", "-m", "set", "--match-set", "later", "src", "-j",
             "DROP"],
        ],
    )  # fmt: skip
    with netns.entered():
        used = layers()
        plan = engine.plan(engine.find(parse_target("203.0.113.4"), used), used)
        assert plan.batches[0].payload == ("del f2b-sshd 203.0.113.4", "del later 203.0.113.4")
        run_many(
            netns,
            [
                ["iptables-nft", "-D", "INPUT", "-m", "set", "--match-set", "later", "src", "-j",
                 "DROP"],
                ["ipset", "destroy", "later"],
            ],
        )  # fmt: skip
        with pytest.raises(ApplyError, match="does not exist.*nothing is changed"):
            engine.apply(plan, used)
    assert list(members(netns, "f2b-sshd")) == ["203.0.113.4"]


def test_listing_shows_counts_and_rules_never_elements(netns: Netns) -> None:
    fail2ban_ipset(netns, "iptables-legacy", {f"198.18.0.{i}": 600 for i in range(1, 40)})
    netns.run("ipset", "create", "six", "hash:net", "family", "inet6")
    with netns.entered():
        layer = IpsetLayer(XtablesLayer())
        [listing] = layer.listings(ListQuery())
        assert layer.listings(ListQuery(family="ipv6"))[0].lines == (
            "six  hash:net  ipv6  0 entries  (no rule drops its members)",
        )
        assert layer.listings(ListQuery(chain="f2b-sshd")) == []
    assert listing.lines == (
        "f2b-sshd  hash:ip  ipv4  39 entries  timeout 600  dropped by legacy ipv4 filter INPUT #1",
        "six  hash:net  ipv6  0 entries  (no rule drops its members)",
    )
    assert listing.data["sets"][0]["rules"][0]["chain"] == "INPUT"


def test_cli_finds_and_removes_an_ipset_element(netns: Netns) -> None:
    fail2ban_ipset(netns, "iptables-nft", {"203.0.113.4": 600, "203.0.113.9": 600})
    report = netns.unban_json("find", "203.0.113.4")
    ipset = [f for f in report["findings"] if f["layer"] == "ipset"]
    assert [(f["set_name"], f["element"], f["targeted"]) for f in ipset] == [
        ("f2b-sshd", "203.0.113.4", True)
    ]
    dry = netns.unban_json("remove", "203.0.113.4", "--dry-run")
    assert [s["text"] for s in dry["plan"]["steps"]] == ["ipset del f2b-sshd 203.0.113.4"]
    assert sorted(members(netns, "f2b-sshd")) == ["203.0.113.4", "203.0.113.9"]
    proc = netns.unban("remove", "203.0.113.4")
    assert proc.returncode == 0, proc.stderr
    assert list(members(netns, "f2b-sshd")) == ["203.0.113.9"]


def test_one_finding_per_element_however_many_rules_drop_the_set(netns: Netns) -> None:
    fail2ban_ipset(netns, "iptables-nft", {"203.0.113.4": 600})
    netns.run(
        "iptables-legacy", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-m", "set",
        "--match-set", "f2b-sshd", "src", "-j", "DROP",
    )  # fmt: skip
    netns.run("iptables-nft", "-A", "FORWARD", "-m", "set", "--match-set", "f2b-sshd", "src",
              "-j", "DROP")  # fmt: skip
    with netns.entered():
        used = layers()
        report = engine.find(parse_target("203.0.113.4"), used)
        # The first dropping rule, in backend order (legacy, then nft), names the finding.
        assert [(f.set_name, f.element, f.chain, f.verdict) for f in report.findings] == [
            ("f2b-sshd", "203.0.113.4", "INPUT", "DROP")
        ]
        assert "--dport 22" in report.findings[0].rule
        plan = engine.plan(report, used)
        assert plan.batches[0].payload == ("del f2b-sshd 203.0.113.4",)
        engine.apply(plan, used)
    assert members(netns, "f2b-sshd") == {}
