"""The pure parts of the nftables layer, fed with output captured from nft 1.0.6 in a netns."""

from __future__ import annotations

import ipaddress
import json
import shlex

import pytest

from unban.layers.nft_lifts import (
    build_batches,
)
from unban.layers.nft_listing import (
    format_table,
    parse_table_text,
    table_data,
)
from unban.layers.nft_ruleset import (
    TableJson,
    elements_from_json,
    elements_from_text,
    parse_table_json,
    rule_hits,
    set_refs,
)
from unban.layers.nftables import (
    owner,
    rule_finding,
    set_finding,
)
from unban.model import Finding
from unban.path.nft_syntax import (
    is_native,
    render_rule,
    span_of,
)

# `nft -j -t list table inet f2b-table`: fail2ban's nftables-multiport layout.
F2B_JSON = r"""{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "f2b-table", "handle": 1}}, {"set": {"family": "inet", "name": "addr-set-sshd", "table": "f2b-table", "type": "ipv4_addr", "handle": 2}}, {"set": {"family": "inet", "name": "addr6-set-sshd", "table": "f2b-table", "type": "ipv6_addr", "handle": 3}}, {"chain": {"family": "inet", "table": "f2b-table", "name": "f2b-chain", "handle": 1, "type": "filter", "hook": "input", "prio": -1, "policy": "accept"}}, {"rule": {"family": "inet", "table": "f2b-table", "chain": "f2b-chain", "handle": 4, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@addr-set-sshd"}}, {"reject": {"type": "icmp", "expr": "port-unreachable"}}]}}, {"rule": {"family": "inet", "table": "f2b-table", "chain": "f2b-chain", "handle": 5, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": "@addr6-set-sshd"}}, {"reject": {"type": "icmpv6", "expr": "port-unreachable"}}]}}]}"""  # noqa: E501

# `nft -j -t list table ip t`: one rule of each kind a source match comes in.
T_JSON = r"""{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "ip", "name": "t", "handle": 2}}, {"set": {"family": "ip", "name": "iv", "table": "t", "type": "ipv4_addr", "handle": 3, "flags": ["interval"]}}, {"set": {"family": "ip", "name": "cc", "table": "t", "type": ["ipv4_addr", "inet_service"], "handle": 4}}, {"chain": {"family": "ip", "table": "t", "name": "c", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, {"chain": {"family": "ip", "table": "t", "name": "other", "handle": 2}}, {"rule": {"family": "ip", "table": "t", "chain": "c", "handle": 5, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "203.0.113.4"}}, {"drop": null}]}}, {"rule": {"family": "ip", "table": "t", "chain": "c", "handle": 6, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "203.0.113.0", "len": 24}}}}, {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}}, {"rule": {"family": "ip", "table": "t", "chain": "c", "handle": 8, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"set": ["192.0.2.1", "203.0.113.4"]}}}, {"drop": null}]}}, {"rule": {"family": "ip", "table": "t", "chain": "c", "handle": 9, "expr": [{"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "203.0.113.4"}}, {"drop": null}]}}, {"rule": {"family": "ip", "table": "t", "chain": "c", "handle": 10, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "@iv"}}, {"drop": null}]}}, {"rule": {"family": "ip", "table": "t", "chain": "c", "handle": 11, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "203.0.113.4"}}, {"accept": null}]}}, {"rule": {"family": "ip", "table": "t", "chain": "c", "handle": 12, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"range": ["203.0.113.1", "203.0.113.9"]}}}, {"drop": null}]}}, {"rule": {"family": "ip", "table": "t", "chain": "c", "handle": 13, "expr": [{"match": {"op": "==", "left": {"concat": [{"payload": {"protocol": "ip", "field": "saddr"}}, {"payload": {"protocol": "tcp", "field": "dport"}}]}, "right": "@cc"}}, {"drop": null}]}}, {"rule": {"family": "ip", "table": "t", "chain": "c", "handle": 14, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "10.0.0.0", "len": 8}}}}, {"jump": {"target": "other"}}]}}]}"""  # noqa: E501

# `nft -j -t list table ip6 t6`.
T6_JSON = r"""{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "ip6", "name": "t6", "handle": 3}}, {"chain": {"family": "ip6", "table": "t6", "name": "c", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, {"rule": {"family": "ip6", "table": "t6", "chain": "c", "handle": 2, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": {"prefix": {"addr": "2001:db8::", "len": 32}}}}, {"reject": {"type": "icmpv6", "expr": "admin-prohibited"}}]}}, {"rule": {"family": "ip6", "table": "t6", "chain": "c", "handle": 3, "comment": "by hand", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": "2001:db8::4"}}, {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"log": {"prefix": "ban: "}}, {"drop": null}]}}]}"""  # noqa: E501

# `nft -a -s -t list table ip t` (the text unban shows and re-adds).
T_TEXT = """\
table ip t { # handle 2
\tset iv { # handle 3
\t\ttype ipv4_addr
\t\tflags interval
\t}

\tset cc { # handle 4
\t\ttype ipv4_addr . inet_service
\t}

\tchain c { # handle 1
\t\ttype filter hook input priority filter; policy accept;
\t\tip saddr 203.0.113.4 drop # handle 5
\t\tip saddr 203.0.113.0/24 counter drop # handle 6
\t\tip saddr { 192.0.2.1, 203.0.113.4 } drop # handle 8
\t\tip saddr != 203.0.113.4 drop # handle 9
\t\tip saddr @iv drop # handle 10
\t\tip saddr 203.0.113.4 accept # handle 11
\t\tip saddr 203.0.113.1-203.0.113.9 drop # handle 12
\t\tip saddr . tcp dport @cc drop # handle 13
\t\tip saddr 10.0.0.0/8 jump other # handle 14
\t}

\tchain other { # handle 2
\t}
}
"""

# `nft -a -s list table inet tm`: elements wrap lines, a comment holds a comma and a brace.
TM_TEXT = """\
table inet tm { # handle 4
\tset s { # handle 1
\t\ttype ipv4_addr
\t\tflags timeout
\t\telements = { 192.0.2.77 timeout 1h comment "a, b } c", 192.0.2.78,
\t\t\t     203.0.113.4 timeout 10m }
\t}
}
"""

# `nft get element inet tm s '{ 192.0.2.77 }'`.
GET_TIMEOUT = """\
table inet tm {
\tset s {
\t\ttype ipv4_addr
\t\tflags timeout
\t\telements = { 192.0.2.77 timeout 1h expires 59m59s996ms comment "a, b } c" }
\t}
}
"""

# `nft get element ip t iv '{ 198.18.1.5 }'`: the interval holding the address.
GET_INTERVAL = """\
table ip t {
\tset iv {
\t\ttype ipv4_addr
\t\tflags interval
\t\telements = { 198.18.0.0/22 }
\t}
}
"""

# `nft -j list set inet tm s` and `nft -j list set ip t iv`.
TM_SET_JSON = r"""{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"set": {"family": "inet", "name": "s", "table": "tm", "type": "ipv4_addr", "handle": 1, "flags": ["timeout"], "elem": [{"elem": {"val": "192.0.2.77", "timeout": 3600, "expires": 3599, "comment": "a, b } c"}}, "192.0.2.78", {"elem": {"val": "203.0.113.4", "timeout": 600, "expires": 599}}]}}]}"""  # noqa: E501
IV_SET_JSON = r"""{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"set": {"family": "ip", "name": "iv", "table": "t", "type": "ipv4_addr", "handle": 3, "flags": ["interval"], "elem": ["10.0.0.1", {"prefix": {"addr": "198.18.0.0", "len": 22}}]}}]}"""  # noqa: E501


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def table(doc: str, family: str, name: str) -> TableJson:
    return parse_table_json(json.loads(doc), family, name)


def test_rule_hits_are_positive_blocking_source_matches() -> None:
    t = table(T_JSON, "ip", "t")
    hits = {h.match.handle: h for h in rule_hits(t, net("203.0.113.4/32"))}
    # 5: the address itself; 6: its /24; 8: an anonymous set that also holds 192.0.2.1;
    # 12: a range around it. Not 9 (negated), 10 (named set), 11 (accept), 13 (concatenation),
    # 14 (jump: no blocking verdict).
    assert sorted(hits) == [5, 6, 8, 12]
    assert hits[5].targeted and hits[5].span.network() == "203.0.113.4/32"
    assert not hits[6].targeted and hits[6].span.network() == "203.0.113.0/24"
    assert not hits[8].targeted and hits[8].anonymous
    assert hits[8].span.network() == "203.0.113.4/32"
    assert not hits[12].targeted and hits[12].span.network() == "203.0.113.1-203.0.113.9"
    assert all(h.match.verdict == "drop" for h in hits.values())


def test_an_anonymous_set_is_targeted_only_when_it_holds_nothing_outside_the_target() -> None:
    t = table(T_JSON, "ip", "t")
    hits = {h.match.handle: h for h in rule_hits(t, net("192.0.2.0/24"))}
    assert sorted(hits) == [8]
    assert not hits[8].targeted  # it also holds 203.0.113.4
    inside = T_JSON.replace('["192.0.2.1", "203.0.113.4"]', '["192.0.2.1", "192.0.2.7"]')
    (hit,) = rule_hits(table(inside, "ip", "t"), net("192.0.2.0/24"))
    assert hit.targeted and hit.anonymous and hit.span.network() == "192.0.2.1/32"


def test_a_cidr_target_makes_narrower_rules_targeted() -> None:
    t = table(T_JSON, "ip", "t")
    hits = {h.match.handle: h for h in rule_hits(t, net("203.0.113.0/24"))}
    assert sorted(hits) == [5, 6, 8, 12]
    assert hits[5].targeted and hits[6].targeted and hits[12].targeted
    assert not hits[8].targeted  # the anonymous set also holds 192.0.2.1


def test_ipv6_rules_and_verdicts() -> None:
    t = table(T6_JSON, "ip6", "t6")
    hits = {h.match.handle: h for h in rule_hits(t, net("2001:db8::4/128"))}
    assert sorted(hits) == [2, 3]
    assert hits[2].match.verdict == "reject" and not hits[2].targeted
    assert hits[3].match.verdict == "drop" and hits[3].targeted
    assert rule_hits(t, net("203.0.113.4/32")) == []


def test_set_refs_pick_sets_of_the_targets_address_type() -> None:
    f2b = table(F2B_JSON, "inet", "f2b-table")
    v4 = set_refs(f2b, net("203.0.113.4/32"))
    assert list(v4) == ["addr-set-sshd"]
    assert v4["addr-set-sshd"][0].handle == 4 and v4["addr-set-sshd"][0].verdict == "reject"
    assert list(set_refs(f2b, net("2001:db8::4/128"))) == ["addr6-set-sshd"]
    t = table(T_JSON, "ip", "t")
    assert list(set_refs(t, net("198.18.1.5/32"))) == ["iv"]  # not cc, a concatenation
    assert t.sets["iv"].interval and not t.sets["iv"].expiring
    assert t.chains == {"c": [5, 6, 8, 9, 10, 11, 12, 13, 14], "other": []}


def test_render_rule_prints_what_nft_prints() -> None:
    """The text of every captured rule, rendered from JSON, equals `nft -a -s` text."""
    texts = {h: text for h, (_c, text) in parse_table_text(T_TEXT)[0].rule_texts().items()}
    for item in json.loads(T_JSON)["nftables"]:
        if "rule" in item:
            assert render_rule(item["rule"]) == texts[item["rule"]["handle"]]
    rules = [i["rule"] for i in json.loads(F2B_JSON)["nftables"] if "rule" in i]
    assert [render_rule(r) for r in rules] == [
        "tcp dport 22 ip saddr @addr-set-sshd reject with icmp port-unreachable",
        "tcp dport 22 ip6 saddr @addr6-set-sshd reject with icmpv6 port-unreachable",
    ]
    rules6 = [i["rule"] for i in json.loads(T6_JSON)["nftables"] if "rule" in i]
    assert [render_rule(r) for r in rules6] == [
        "ip6 saddr 2001:db8::/32 reject with icmpv6 admin-prohibited",
        'ip6 saddr 2001:db8::4 tcp dport 22 log prefix "ban: " drop comment "by hand"',
    ]


def test_parse_table_text_counts_elements_and_keeps_handles() -> None:
    tm = parse_table_text(TM_TEXT)[0]
    assert (tm.family, tm.name) == ("inet", "tm")
    assert [(s.name, s.handle, s.attributes, s.elements) for s in tm.sets] == [
        ("s", 1, ["type ipv4_addr", "flags timeout"], 3)
    ]
    t = parse_table_text(T_TEXT)[0]
    assert [c.name for c in t.chains] == ["c", "other"]
    c = t.chains[0]
    assert c.header == ["type filter hook input priority filter; policy accept;"]
    assert c.rules[2] == (8, "ip saddr { 192.0.2.1, 203.0.113.4 } drop")
    assert [s.elements for s in t.sets] == [0, 0]  # -t: no elements listed


def test_format_table_shows_counts_never_elements() -> None:
    lines = format_table(parse_table_text(TM_TEXT)[0])
    assert lines == [
        "table inet tm {",
        "\tset s { # handle 1",
        "\t\ttype ipv4_addr",
        "\t\tflags timeout",
        "\t\t# 3 elements",
        "\t}",
        "}",
    ]
    only_c = format_table(parse_table_text(T_TEXT)[0], chain="c")
    assert only_c[1] == "\tchain c { # handle 1" and "set" not in "".join(only_c)
    data = table_data(parse_table_text(T_TEXT)[0], chain="other")
    assert data["family"] == "ipv4" and data["sets"] == []
    assert data["chains"] == [{"name": "other", "handle": 2, "header": [], "rules": []}]


def test_elements_from_get_element_keep_timeout_and_comment() -> None:
    (element,) = elements_from_text(GET_TIMEOUT)
    assert element.value == "192.0.2.77"
    assert element.extras == 'timeout 1h expires 59m59s996ms comment "a, b } c"'
    (interval,) = elements_from_text(GET_INTERVAL)
    assert interval.value == "198.18.0.0/22"
    assert not interval.span.inside(net("198.18.1.5/32"))
    assert interval.span.inside(net("198.18.0.0/16"))


def test_elements_from_a_listed_set_for_a_cidr_target() -> None:
    found = elements_from_json(json.loads(TM_SET_JSON), net("192.0.2.0/24"))
    assert [(e.value, e.extras) for e in found] == [
        ("192.0.2.77", 'timeout 3600s expires 3599s comment "a, b } c"'),
        ("192.0.2.78", ""),
    ]
    ranges = elements_from_json(json.loads(IV_SET_JSON), net("198.18.1.0/24"))
    assert [(e.value, e.span.inside(net("198.18.1.0/24"))) for e in ranges] == [
        ("198.18.0.0/22", False)
    ]


@pytest.mark.parametrize(
    ("value", "target", "overlaps", "inside"),
    [
        ("203.0.113.4", "203.0.113.4/32", True, True),
        ("203.0.113.0/24", "203.0.113.4/32", True, False),
        ("203.0.113.5-203.0.113.9", "203.0.113.4/32", False, False),
        ("203.0.113.4-203.0.113.7", "203.0.113.4/30", True, True),
        ("2001:db8::/64", "2001:db8::4/128", True, False),
        ("2001:db8::/64", "203.0.113.4/32", False, False),
    ],
)
def test_spans(value: str, target: str, overlaps: bool, inside: bool) -> None:
    span = span_of(value)
    assert span is not None
    assert span.overlaps(net(target)) is overlaps
    assert span.inside(net(target)) is inside


def test_span_network_names_a_range_that_is_a_prefix_as_a_prefix() -> None:
    assert span_of("203.0.113.4-203.0.113.7").network() == "203.0.113.4/30"  # type: ignore[union-attr]
    assert span_of({"range": ["10.0.0.1", "10.0.0.9"]}).network() == "10.0.0.1-10.0.0.9"  # type: ignore[union-attr]
    assert span_of("not-an-address") is None
    assert span_of({"concat": ["1.2.3.4", 22]}) is None


def test_owners() -> None:
    assert owner("inet", "f2b-table", "f2b-chain", "addr-set-sshd") == "fail2ban:sshd"
    assert owner("inet", "f2b-table", "f2b-chain", "addr6-set-recidive") == "fail2ban:recidive"
    assert owner("inet", "f2b-table", "f2b-chain", None) == "fail2ban"
    assert owner("ip", "sshguard", "blacklist", "attackers") == "sshguard"
    assert owner("ip6", "crowdsec6", "crowdsec6-chain", "crowdsec6-blacklists") == "crowdsec"
    assert owner("inet", "firewalld", "filter_IN_public_deny", None) == "firewalld"
    assert owner("ip", "t", "c", "iv") == "manual"


def test_tables_of_iptables_nft_are_not_native() -> None:
    assert not is_native("ip", "filter") and not is_native("ip6", "raw")
    assert not is_native("bridge", "filter") and not is_native("arp", "filter")
    assert is_native("inet", "filter")  # Debian's /etc/nftables.conf, not iptables-nft's
    assert is_native("ip", "t") and is_native("inet", "f2b-table")


def findings_t(target: str) -> list[Finding]:
    t = table(T_JSON, "ip", "t")
    texts = parse_table_text(T_TEXT)[0].rule_texts()
    return [rule_finding(t, h, texts[h.match.handle][1]) for h in rule_hits(t, net(target))]


def test_rule_findings_carry_handles_and_text() -> None:
    by_handle = {f.handle: f for f in findings_t("203.0.113.4/32")}
    f = by_handle[5]
    assert (f.layer, f.backend, f.family, f.table, f.chain, f.line) == (
        "nftables",
        "nft",
        "ipv4",
        "t",
        "c",
        None,
    )
    assert (f.rule, f.verdict, f.owner, f.network, f.targeted) == (
        "ip saddr 203.0.113.4 drop",
        "drop",
        "manual",
        "203.0.113.4/32",
        True,
    )
    assert f.set_name is None and f.element is None
    assert by_handle[8].rule == "ip saddr { 192.0.2.1, 203.0.113.4 } drop"


def test_plan_deletes_by_handle_and_puts_rules_back_in_order() -> None:
    findings = findings_t("203.0.113.4/32")  # handles 5, 6, 8, 12 of c: 5 6 8 9 10 11 12 13 14
    orders = {("ip", "t", "c"): [5, 6, 8, 9, 10, 11, 12, 13, 14]}
    (batch,) = build_batches(findings, orders)
    assert (batch.layer, batch.scope) == ("nftables", "ip t")
    assert batch.payload == (
        "delete rule ip t c handle 5",
        "delete rule ip t c handle 6",
        "delete rule ip t c handle 8",
        "delete rule ip t c handle 12",
    )
    # Re-inserted before the next rule that stays, in order: 5, 6, 8 before 9; 12 before 13.
    assert batch.undo_payload == (
        "insert rule ip t c position 9 ip saddr 203.0.113.4 drop",
        "insert rule ip t c position 9 ip saddr 203.0.113.0/24 counter drop",
        "insert rule ip t c position 9 ip saddr { 192.0.2.1, 203.0.113.4 } drop",
        "insert rule ip t c position 13 ip saddr 203.0.113.1-203.0.113.9 drop",
    )
    step = batch.steps[2]
    assert step.command == "nft delete rule ip t c handle 8"
    assert step.undo_command == (
        "nft insert rule ip t c position 9 'ip saddr { 192.0.2.1, 203.0.113.4 } drop'"
    )
    assert shlex.split(step.undo_command)[-1] == step.finding.rule


def test_plan_without_the_chain_order_appends_and_a_tail_rule_is_appended() -> None:
    findings = findings_t("203.0.113.4/32")
    (batch,) = build_batches(findings)
    assert all(line.startswith("add rule ip t c ip saddr") for line in batch.undo_payload)
    (last,) = build_batches([f for f in findings if f.handle == 12], {("ip", "t", "c"): [5, 6, 12]})
    assert last.undo_payload == ("add rule ip t c ip saddr 203.0.113.1-203.0.113.9 drop",)


def set_finding_from(
    family: str, name: str, doc: str, set_name: str, target: str, got: str
) -> Finding:
    """The finding for `target` in `set_name`, `got` being `nft get element`'s output."""
    t = table(doc, family, name)
    (element,) = elements_from_text(got)
    m = set_refs(t, net(target))[set_name][0]
    return set_finding(t, set_name, m, element, render_rule(t.rules[m.handle]) or "", net(target))


F2B_GOT = GET_TIMEOUT.replace("192.0.2.77", "203.0.113.4")


def test_set_finding_and_its_plan_keep_the_timeout() -> None:
    f = set_finding_from("inet", "f2b-table", F2B_JSON, "addr-set-sshd", "203.0.113.4/32", F2B_GOT)
    assert (f.family, f.table, f.chain, f.handle, f.set_name, f.element) == (
        "inet",
        "f2b-table",
        "f2b-chain",
        None,
        "addr-set-sshd",
        "203.0.113.4",
    )
    assert (f.owner, f.verdict, f.targeted, f.network) == (
        "fail2ban:sshd",
        "reject",
        True,
        "203.0.113.4/32",
    )
    assert f.rule == "tcp dport 22 ip saddr @addr-set-sshd reject with icmp port-unreachable"
    extras = {("inet", "f2b-table", "addr-set-sshd", "203.0.113.4"): "timeout 1h expires 59m"}
    (batch,) = build_batches([f, f], extras=extras)  # the same element twice: deleted once
    assert batch.scope == "inet f2b-table"
    assert batch.payload == ("delete element inet f2b-table addr-set-sshd { 203.0.113.4 }",)
    assert batch.undo_payload == (
        "add element inet f2b-table addr-set-sshd { 203.0.113.4 timeout 1h expires 59m }",
    )
    (step,) = batch.steps
    assert step.command == "nft delete element inet f2b-table addr-set-sshd '{ 203.0.113.4 }'"
    assert step.undo_command == (
        "nft add element inet f2b-table addr-set-sshd '{ 203.0.113.4 timeout 1h expires 59m }'"
    )


def test_an_interval_element_is_broad_for_one_address() -> None:
    f = set_finding_from("ip", "t", T_JSON, "iv", "198.18.1.5/32", GET_INTERVAL)
    assert (f.element, f.network, f.targeted, f.family) == (
        "198.18.0.0/22",
        "198.18.0.0/22",
        False,
        "ipv4",
    )
    (batch,) = build_batches([f])
    assert batch.payload == ("delete element ip t iv { 198.18.0.0/22 }",)


def test_plan_groups_by_table_and_leaves_firewalld_alone() -> None:
    rule = findings_t("203.0.113.4/32")[0]
    elem = set_finding_from(
        "inet", "f2b-table", F2B_JSON, "addr-set-sshd", "203.0.113.4/32", F2B_GOT
    )
    firewalld = Finding(
        **{**rule.__dict__, "family": "inet", "table": "firewalld", "owner": "firewalld"}
    )
    other = Finding(**{**rule.__dict__, "layer": "iptables"})
    batches = build_batches([rule, elem, firewalld, other])
    assert [b.scope for b in batches] == ["ip t", "inet f2b-table"]


def test_odd_names_are_quoted_for_nft() -> None:
    rule = findings_t("203.0.113.4/32")[0]
    odd = Finding(**{**rule.__dict__, "table": "my table", "chain": "1st"})
    (batch,) = build_batches([odd])
    assert batch.payload == ('delete rule ip "my table" "1st" handle 5',)
    assert batch.steps[0].command == "nft delete rule ip '\"my table\"' '\"1st\"' handle 5"


# `nft -a -s list table inet x`: objects besides sets and chains, and a map.
X_TEXT = """\
table inet x { # handle 1
\tcounter cnt { # handle 2
\t}

\tquota q { # handle 3
\t\tover 10 mbytes
\t}

\tmap m { # handle 4
\t\ttype ipv4_addr : verdict
\t\telements = { 1.2.3.4 : drop, 5.6.7.8 : accept }
\t}

\tchain c { # handle 1
\t\tcomment "my chain"
\t\ttype filter hook input priority filter; policy accept;
\t\tip saddr vmap @m # handle 6
\t\tcounter name "cnt" # handle 7
\t}
}
"""


def test_other_objects_are_kept_and_do_not_end_the_table() -> None:
    (x,) = parse_table_text(X_TEXT)
    assert [(s.kind, s.name, s.elements) for s in x.sets] == [("map", "m", 2)]
    assert [(c.name, c.header, c.rules) for c in x.chains] == [
        (
            "c",
            ['comment "my chain"', "type filter hook input priority filter; policy accept;"],
            [(6, "ip saddr vmap @m"), (7, 'counter name "cnt"')],
        )
    ]
    assert format_table(x)[5:11] == [
        "\tcounter cnt { # handle 2",
        "\t}",
        "\tquota q { # handle 3",
        "\t\tover 10 mbytes",
        "\t}",
        "\tchain c { # handle 1",
    ]
