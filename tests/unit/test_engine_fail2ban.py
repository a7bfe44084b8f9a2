"""The engine leaves to fail2ban what fail2ban's own unban removes."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from unban import engine
from unban.layers.fail2ban import build_batches, clears_of, parse_with_time
from unban.model import Batch, Finding, Report
from unban.settings import Settings


def finding(layer: str, owner: str, network: str = "203.0.113.4/32", **kw: object) -> Finding:
    values: dict[str, object] = {
        "layer": layer,
        "backend": "nft",
        "family": "ipv4",
        "table": "filter",
        "chain": "f2b-sshd",
        "line": 1,
        "handle": None,
        "rule": f"{layer} rule",
        "verdict": "REJECT",
        "owner": owner,
        "network": network,
        "targeted": True,
    }
    values.update(kw)
    return Finding(**values)  # type: ignore[arg-type]


def ban(jail: str, backend: str = "server", clears: tuple[str, ...] = ()) -> Finding:
    return finding(
        "fail2ban",
        f"fail2ban:{jail}",
        backend=backend,
        table="",
        chain=jail,
        line=None,
        verdict="ban",
        rule=f"banned in jail {jail}",
        clears=clears,
    )


class Recorder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[Finding] = []

    def plan(self, findings: Sequence[Finding]) -> list[Batch]:
        self.seen.extend(findings)
        if not findings:
            return []
        return [Batch(self.name, "x", (), (), ())]


def plan_with(findings: list[Finding]) -> dict[str, list[Finding]]:
    layers = {
        name: Recorder(name) for name in ("fail2ban", "iptables", "nftables", "route", "ipset")
    }
    engine.plan(Report("203.0.113.4/32", tuple(findings)), list(layers.values()))  # type: ignore[arg-type]
    return {name: layer.seen for name, layer in layers.items()}


def test_rules_of_a_jail_being_unbanned_are_left_to_fail2ban() -> None:
    seen = plan_with(
        [
            ban("sshd"),
            finding("iptables", "fail2ban:sshd"),
            finding("nftables", "fail2ban:sshd", chain="f2b-chain", set_name="addr-set-sshd"),
            finding("iptables", "fail2ban:recidive", chain="f2b-recidive"),  # not banned there
            finding("iptables", "manual", chain="INPUT"),
        ]
    )
    assert [f.chain for f in seen["fail2ban"]] == ["sshd"]
    assert [f.owner for f in seen["iptables"]] == ["fail2ban:recidive", "manual"]
    assert seen["nftables"] == []


def test_route_left_only_when_the_jail_uses_the_route_action() -> None:
    route = finding("route", "manual", table="main", chain=None)
    assert plan_with([ban("sshd"), route])["route"] == [route]
    assert plan_with([ban("sshd", clears=("route",)), route])["route"] == []
    broader = finding("route", "manual", network="203.0.113.0/24", table="main", chain=None)
    assert plan_with([ban("sshd", clears=("route",)), broader])["route"] == [broader]


def test_database_unban_does_not_remove_rules() -> None:
    rule = finding("iptables", "fail2ban:sshd")
    assert plan_with([ban("sshd", backend="database"), rule])["iptables"] == [rule]


def test_other_addresses_in_the_jail_chain_are_not_left() -> None:
    wide = finding("iptables", "fail2ban:sshd", network="203.0.113.0/24", targeted=False)
    seen = plan_with([ban("sshd"), wide])
    assert seen["iptables"] == []  # broad: skipped, not planned
    report = Report("203.0.113.4/32", (ban("sshd"), wide))
    layers = [Recorder("fail2ban"), Recorder("iptables")]
    engine.plan(report, layers, broad=True)  # type: ignore[arg-type]
    assert layers[1].seen == [wide]


def test_default_layers_put_fail2ban_first() -> None:
    assert engine.default_layers(Settings())[0].name == "fail2ban"


def test_clears_of() -> None:
    assert clears_of(["route"], []) == ("route",)
    assert clears_of(["myroute"], ["ip route del blackhole <ip>"]) == ("route",)
    assert clears_of(["hostsdeny"], []) == ("hosts",)
    assert (
        clears_of(["iptables-multiport"], ["<iptables> -D f2b-sshd -s <ip> -j <blocktype>"]) == ()
    )


def test_parse_with_time() -> None:
    assert parse_with_time("203.0.113.4 \t2026-11-24 14:27:23 + 3600 = 2026-11-24 15:27:23") == (
        "203.0.113.4",
        "2026-11-24 14:27:23",
        "2026-11-24 15:27:23",
    )
    assert parse_with_time("2001:db8::1 \t2026-11-24 14:27:23 + -1 = 9999-12-31 23:59:59") == (
        "2001:db8::1",
        "2026-11-24 14:27:23",
        "forever",
    )
    assert parse_with_time("garbage") is None


def test_build_batches_commands() -> None:
    server, stored = ban("sshd"), ban("recidive", backend="database")
    batches = build_batches([server, stored], "/etc/fail2ban", "/var/lib/fail2ban/f.sqlite3")
    assert [b.scope for b in batches] == ["server", "database /var/lib/fail2ban/f.sqlite3"]
    step = batches[0].steps[0]
    assert step.command == "fail2ban-client set sshd unbanip 203.0.113.4"
    assert step.undo_command == "fail2ban-client set sshd banip 203.0.113.4"
    assert batches[0].payload == (("unbanip", "sshd", "203.0.113.4"),)
    assert batches[1].payload == (
        ("delete", "/var/lib/fail2ban/f.sqlite3", "recidive", "203.0.113.4"),
    )
    assert ipaddress.ip_network(server.network)
