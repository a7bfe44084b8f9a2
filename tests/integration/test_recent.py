"""xt_recent lists checked by dropping rules, against the real kernel in a throwaway namespace.

/proc/net/xt_recent is per network namespace: inside `netns.entered()` it is the namespace's.
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import Netns, run_many
from unban import engine
from unban.address import parse_target
from unban.layers import Layer, ListQuery
from unban.layers.recent import RecentLayer
from unban.layers.xtables import XtablesLayer


def sources(ns: Netns, name: str) -> list[str]:
    out = ns.run("cat", f"/proc/net/xt_recent/{name}").stdout
    return sorted(line.split()[0][len("src=") :] for line in out.splitlines())


def add(ns: Netns, name: str, *addresses: str) -> None:
    for address in addresses:
        ns.run("sh", "-c", f"echo +{address} > /proc/net/xt_recent/{name}")


def layers() -> list[Layer]:
    xtables = XtablesLayer()
    return [xtables, RecentLayer(xtables)]


V6_4 = "2001:0db8:0000:0000:0000:0000:0000:0004"


@pytest.mark.parametrize("backend", ["legacy", "nft"])
def test_ssh_rate_limit_list_entry_found_removed_and_put_back(netns: Netns, backend: str) -> None:
    run_many(
        netns,
        [
            [f"iptables-{backend}", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-m", "recent",
             "--name", "SSH", "--set"],
            [f"iptables-{backend}", "-A", "INPUT", "-p", "tcp", "--dport", "22", "-m", "recent",
             "--name", "SSH", "--rcheck", "--seconds", "60", "--hitcount", "4", "-j", "DROP"],
            [f"ip6tables-{backend}", "-A", "INPUT", "-m", "recent", "--name", "SSH", "--update",
             "-j", "REJECT"],
        ],
    )  # fmt: skip
    add(netns, "SSH", "203.0.113.4", "203.0.113.9", "2001:db8::4")

    with netns.entered():
        used = layers()
        report = engine.find(parse_target("203.0.113.4"), used)
        assert [
            (f.layer, f.family, f.chain, f.line, f.verdict, f.set_name, f.element, f.targeted)
            for f in report.findings
        ] == [("xt_recent", "ipv4", "INPUT", 2, "DROP", "SSH", "203.0.113.4", True)]
        assert "--rcheck --seconds 60 --hitcount 4 --name SSH" in report.findings[0].rule

        plan = engine.plan(report, used)
        [step] = plan.steps
        assert step.command == "echo -203.0.113.4 > /proc/net/xt_recent/SSH"
        assert step.undo_command == "echo +203.0.113.4 > /proc/net/xt_recent/SSH"
        engine.apply(plan, used)
        assert sources(netns, "SSH") == [V6_4, "203.0.113.9"]
        used[1].revert(plan.batches[0])
        assert sources(netns, "SSH") == [V6_4, "203.0.113.4", "203.0.113.9"]

        six = engine.find(parse_target("2001:db8::4"), used)
        assert [(f.family, f.element, f.verdict) for f in six.findings] == [
            ("ipv6", "2001:db8::4", "REJECT")
        ]
        plan6 = engine.plan(six, used)
        engine.apply(plan6, used)
        assert sources(netns, "SSH") == ["203.0.113.4", "203.0.113.9"]
        used[1].revert(plan6.batches[0])
    assert sources(netns, "SSH") == [V6_4, "203.0.113.4", "203.0.113.9"]


def test_a_list_no_rule_drops_is_not_a_finding(netns: Netns) -> None:
    run_many(
        netns,
        [
            ["iptables-nft", "-A", "INPUT", "-m", "recent", "--name", "track", "--set"],
            ["iptables-nft", "-A", "INPUT", "-m", "recent", "--name", "seen", "--rcheck", "-j",
             "ACCEPT"],
            ["iptables-legacy", "-A", "INPUT", "-m", "recent", "--name", "dst", "--rcheck",
             "--rdest", "-j", "DROP"],
        ],
    )  # fmt: skip
    add(netns, "track", "203.0.113.4")
    add(netns, "seen", "203.0.113.4")
    add(netns, "dst", "203.0.113.4")
    with netns.entered():
        layer = RecentLayer(XtablesLayer())
        assert layer.find(parse_target("203.0.113.4")) == []
        [listing] = layer.listings(ListQuery())
    assert listing.lines == (
        "dst  1 entries  (no rule drops its sources)",
        "seen  1 entries  (no rule drops its sources)",
        "track  1 entries  (no rule drops its sources)",
    )


def test_fail2ban_xt_recent_list_and_cli(netns: Netns) -> None:
    """fail2ban's iptables-xt_recent-echo: `--rcheck --seconds BANTIME --name f2b-JAIL -j DROP`."""
    netns.run(
        "iptables-nft", "-I", "INPUT", "-m", "recent", "--update", "--seconds", "3600",
        "--name", "f2b-sshd", "-j", "DROP",
    )  # fmt: skip
    add(netns, "f2b-sshd", "203.0.113.4", "198.51.100.7")
    report = netns.unban_json("find", "203.0.113.0/24")
    recent = [f for f in report["findings"] if f["layer"] == "xt_recent"]
    assert [
        (f["set_name"], f["element"], f["owner"], f["jail"], f["targeted"]) for f in recent
    ] == [("f2b-sshd", "203.0.113.4", "fail2ban", "sshd", True)]
    proc = netns.unban("remove", "203.0.113.4")
    assert proc.returncode == 0, proc.stderr
    assert "echo -203.0.113.4 > /proc/net/xt_recent/f2b-sshd" in proc.stdout
    assert sources(netns, "f2b-sshd") == ["198.51.100.7"]
