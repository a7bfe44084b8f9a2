"""Blocking-route parsing and planning, on `ip -d -j route show table all type T` output
captured from iproute2 6.1 (Debian 12)."""

from __future__ import annotations

import dataclasses

import pytest

from unban.address import overlaps, parse_target
from unban.layers.routes import build_batch, finding_of, parse_routes, route_of

V4_UNREACHABLE = (
    '[{"type":"unreachable","dst":"198.18.0.0/22","tos":"0x10","table":"main","protocol":"boot",'
    '"scope":"global","flags":[]},{"type":"unreachable","dst":"203.0.113.9","table":"main",'
    '"protocol":"boot","scope":"global","flags":[]}]'
)
V4_BLACKHOLE = (
    '[{"type":"blackhole","dst":"203.0.113.0/24","table":"100","protocol":"boot",'
    '"scope":"global","metric":7,"flags":[]}]'
)
V4_PROHIBIT = (
    '[{"type":"prohibit","dst":"default","table":"101","protocol":"static","scope":"global",'
    '"flags":[]}]'
)
V6_UNREACHABLE = (
    '[{"type":"unreachable","dst":"2001:db8::4","dev":"lo","table":"main","protocol":"boot",'
    '"scope":"global","metric":1024,"flags":[],"pref":"medium"}]'
)
V6_BLACKHOLE = (
    '[{"type":"blackhole","dst":"default","dev":"lo","table":"100","protocol":"bird",'
    '"scope":"global","metric":1024,"flags":[],"pref":"medium"}]'
)


def test_parse_routes_keeps_what_names_the_route() -> None:
    routes = parse_routes(V4_UNREACHABLE, "ipv4") + parse_routes(V4_BLACKHOLE, "ipv4")
    routes += parse_routes(V4_PROHIBIT, "ipv4")
    assert [r.text() for r in routes] == [
        "unreachable 198.18.0.0/22 table main tos 0x10",
        "unreachable 203.0.113.9/32 table main",
        "blackhole 203.0.113.0/24 table 100 metric 7",
        "prohibit 0.0.0.0/0 table 101 proto static",
    ]
    six = parse_routes(V6_UNREACHABLE, "ipv6") + parse_routes(V6_BLACKHOLE, "ipv6")
    assert [r.text() for r in six] == [
        "unreachable 2001:db8::4/128 table main metric 1024",
        "blackhole ::/0 table 100 metric 1024 proto bird",
    ]
    assert parse_routes("", "ipv4") == [] and parse_routes("[]", "ipv6") == []
    unicast = '[{"dst":"203.0.113.0/24","dev":"eth0","table":"main","protocol":"kernel"}]'
    assert parse_routes(unicast, "ipv4") == []


def test_owner_is_manual_unless_the_protocol_names_a_program() -> None:
    [plain] = parse_routes(V4_PROHIBIT, "ipv4")  # proto static
    [bird] = parse_routes(V6_BLACKHOLE, "ipv6")
    assert (plain.owner, bird.owner) == ("manual", "bird")


def test_matching_routes_are_targeted_inside_the_target_broad_when_wider() -> None:
    routes = parse_routes(V4_UNREACHABLE, "ipv4") + parse_routes(V4_BLACKHOLE, "ipv4")
    routes += parse_routes(V4_PROHIBIT, "ipv4")
    target = parse_target("203.0.113.9")
    found = [finding_of(r, target) for r in routes if overlaps(r.network, target)]
    assert [(f.network, f.targeted, f.verdict, f.table) for f in found] == [
        ("203.0.113.9/32", True, "unreachable", "main"),
        ("203.0.113.0/24", False, "blackhole", "100"),
        ("0.0.0.0/0", False, "prohibit", "101"),
    ]
    assert found[0].location() == "route ipv4 main"


def test_plan_deletes_by_full_spec_and_adds_back_with_the_protocol() -> None:
    routes = parse_routes(V4_PROHIBIT, "ipv4") + parse_routes(V4_UNREACHABLE, "ipv4")
    routes += parse_routes(V6_UNREACHABLE, "ipv6")
    findings = [finding_of(r, r.network) for r in routes]
    batch = build_batch(findings + findings[:1])
    assert (batch.layer, batch.scope) == ("route", "all tables")
    assert batch.payload == (
        "route del prohibit 0.0.0.0/0 table 101",
        "route del unreachable 198.18.0.0/22 table main tos 0x10",
        "route del unreachable 203.0.113.9/32 table main",
        # IPv6 deletes ignore the type: the metric keeps them off a unicast route.
        "route del unreachable 2001:db8::4/128 table main metric 1024",
    )
    assert batch.undo_payload[0] == "route add prohibit 0.0.0.0/0 table 101 proto static"
    assert [s.command for s in batch.steps][
        2
    ] == "ip route del unreachable 203.0.113.9/32 table main"
    assert batch.steps[0].undo_command == "ip route add prohibit 0.0.0.0/0 table 101 proto static"


def test_route_of_reads_back_the_finding_text() -> None:
    for route in parse_routes(V4_UNREACHABLE, "ipv4") + parse_routes(V6_BLACKHOLE, "ipv6"):
        assert route_of(finding_of(route, route.network)) == route
    [route] = parse_routes(V4_BLACKHOLE, "ipv4")
    bad = dataclasses.replace(finding_of(route, route.network), rule="blackhole nonsense")
    with pytest.raises(ValueError):
        route_of(bad)
