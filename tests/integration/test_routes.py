"""Blackhole, unreachable and prohibit routes, against the real kernel in a throwaway namespace."""

from __future__ import annotations

from tests.integration.conftest import Netns, run_many
from unban import engine
from unban.address import parse_target
from unban.layers import Layer, ListQuery
from unban.layers.routes import RoutesLayer


def routes(ns: Netns, family: str = "-4") -> list[str]:
    """Every route of every table but the kernel's local/broadcast ones, as `ip` prints them."""
    out = ns.run("ip", family, "route", "show", "table", "all").stdout
    return sorted(
        " ".join(line.split())
        for line in out.splitlines()
        if not line.startswith(("local ", "broadcast ", "multicast ", "fe80::", "ff00::"))
    )


def setup(ns: Netns) -> None:
    run_many(
        ns,
        [
            ["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"],
            ["ip", "link", "set", "v0", "up"],
            ["ip", "link", "set", "v1", "up"],
            # fail2ban's route action, each block type, in main and in another table.
            ["ip", "route", "add", "unreachable", "203.0.113.4"],
            ["ip", "route", "add", "unreachable", "203.0.113.9"],
            ["ip", "route", "add", "prohibit", "203.0.113.4", "table", "100"],
            ["ip", "route", "add", "blackhole", "203.0.113.0/24", "table", "100", "metric", "7"],
            ["ip", "route", "add", "blackhole", "default", "table", "101"],
            ["ip", "route", "add", "198.51.100.0/24", "dev", "v0"],
            ["ip", "-6", "route", "add", "blackhole", "2001:db8::4/128"],
            ["ip", "-6", "route", "add", "prohibit", "2001:db8::4/128", "table", "100"],
            ["ip", "-6", "route", "add", "unreachable", "2001:db8::/64", "table", "100"],
            # A working route to the same IPv6 prefix, lower metric: it must survive.
            ["ip", "-6", "route", "add", "2001:db8::4/128", "dev", "v0", "metric", "256"],
        ],
    )


def layers() -> list[Layer]:
    return [RoutesLayer()]


def test_blocking_routes_found_removed_and_put_back(netns: Netns) -> None:
    setup(netns)
    before4, before6 = routes(netns), routes(netns, "-6")
    with netns.entered():
        used = layers()
        report = engine.find(parse_target("203.0.113.4"), used)
        assert [(f.rule, f.verdict, f.table, f.targeted, f.owner) for f in report.findings] == [
            ("unreachable 203.0.113.4/32 table main", "unreachable", "main", True, "manual"),
            ("blackhole 203.0.113.0/24 table 100 metric 7", "blackhole", "100", False, "manual"),
            ("blackhole 0.0.0.0/0 table 101", "blackhole", "101", False, "manual"),
            ("prohibit 203.0.113.4/32 table 100", "prohibit", "100", True, "manual"),
        ]
        plan = engine.plan(report, used)
        assert [(s.command, s.undo_command) for s in plan.steps] == [
            (
                "ip route del unreachable 203.0.113.4/32 table main",
                "ip route add unreachable 203.0.113.4/32 table main",
            ),
            (
                "ip route del prohibit 203.0.113.4/32 table 100",
                "ip route add prohibit 203.0.113.4/32 table 100",
            ),
        ]
        engine.apply(plan, used)
        assert [r for r in before4 if r not in routes(netns)] == [
            "prohibit 203.0.113.4 table 100",
            "unreachable 203.0.113.4",
        ]
        assert [r for r in routes(netns) if r not in before4] == []
        used[0].revert(plan.batches[0])
        assert routes(netns) == before4

        broad = engine.plan(engine.find(parse_target("203.0.113.4"), used), used, broad=True)
        assert [s.command for s in broad.steps] == [
            "ip route del unreachable 203.0.113.4/32 table main",
            "ip route del blackhole 203.0.113.0/24 table 100 metric 7",
            "ip route del blackhole 0.0.0.0/0 table 101",
            "ip route del prohibit 203.0.113.4/32 table 100",
        ]
        engine.apply(broad, used)
        assert [r for r in routes(netns) if r.split()[0] in ("unreachable", "blackhole")] == [
            "unreachable 203.0.113.9"
        ]
        used[0].revert(broad.batches[0])
    assert routes(netns) == before4
    assert routes(netns, "-6") == before6


def test_ipv6_blocks_go_and_the_unicast_route_to_the_same_prefix_stays(netns: Netns) -> None:
    setup(netns)
    before = routes(netns, "-6")
    with netns.entered():
        used = layers()
        report = engine.find(parse_target("2001:db8::4"), used)
        assert [(f.rule, f.family, f.targeted) for f in report.findings] == [
            ("unreachable 2001:db8::/64 table 100 metric 1024", "ipv6", False),
            ("blackhole 2001:db8::4/128 table main metric 1024", "ipv6", True),
            ("prohibit 2001:db8::4/128 table 100 metric 1024", "ipv6", True),
        ]
        plan = engine.plan(report, used)
        engine.apply(plan, used)
        assert [r for r in before if r not in routes(netns, "-6")] == [
            "blackhole 2001:db8::4 dev lo metric 1024 pref medium",
            "prohibit 2001:db8::4 dev lo table 100 metric 1024 pref medium",
        ]
        assert "2001:db8::4 dev v0 metric 256 pref medium" in routes(netns, "-6")
        used[0].revert(plan.batches[0])
    assert routes(netns, "-6") == before


def test_a_route_gone_already_counts_as_removed(netns: Netns) -> None:
    setup(netns)
    with netns.entered():
        used = layers()
        plan = engine.plan(engine.find(parse_target("203.0.113.4"), used), used)
        netns.run("ip", "route", "del", "unreachable", "203.0.113.4")
        engine.apply(plan, used)
    assert "prohibit 203.0.113.4 table 100" not in routes(netns)


def test_listing_per_family(netns: Netns) -> None:
    setup(netns)
    with netns.entered():
        layer = RoutesLayer()
        v4, v6 = layer.listings(ListQuery())
        assert [x.title for x in layer.listings(ListQuery(family="ipv6"))] == [v6.title]
        [table100] = layer.listings(ListQuery(family="ipv4", table="100"))
    assert v4.title == "blocking routes (ipv4)"
    assert v4.lines == (
        "unreachable 203.0.113.4/32 table main  owner manual",
        "unreachable 203.0.113.9/32 table main  owner manual",
        "blackhole 203.0.113.0/24 table 100 metric 7  owner manual",
        "blackhole 0.0.0.0/0 table 101  owner manual",
        "prohibit 203.0.113.4/32 table 100  owner manual",
    )
    assert len(v6.data["routes"]) == 3
    assert table100.lines == (
        "blackhole 203.0.113.0/24 table 100 metric 7  owner manual",
        "prohibit 203.0.113.4/32 table 100  owner manual",
    )


def test_cli_finds_and_removes_a_fail2ban_route(netns: Netns) -> None:
    setup(netns)
    report = netns.unban_json("find", "203.0.113.9")
    assert [(f["layer"], f["rule"], f["targeted"]) for f in report["findings"]] == [
        ("route", "unreachable 203.0.113.9/32 table main", True),
        ("route", "blackhole 203.0.113.0/24 table 100 metric 7", False),
        ("route", "blackhole 0.0.0.0/0 table 101", False),
    ]
    proc = netns.unban("remove", "203.0.113.9")
    assert proc.returncode == 3, proc.stderr  # the /24 and the default route still block it
    assert "ip route del unreachable 203.0.113.9/32 table main" in proc.stdout
    assert "unreachable 203.0.113.9" not in routes(netns)
    assert "unreachable 203.0.113.4" in routes(netns)
