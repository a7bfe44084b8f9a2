"""The fast paths over big chains (one split per run of a chain's rules, one regex per chain)
give what the plain line-by-line reading gives, on random mixes of awkward rules."""

from __future__ import annotations

import ipaddress
import random

import pytest

from unban.address import parse_target
from unban.layers import xtables_plan, xtables_rules
from unban.path.iptables import Chain, Ruleset, SourceTest, Table, parse_save

AWKWARD = [
    "-s 203.0.113.4/32 -j DROP",
    "-s 203.0.113.0/24 -j REJECT --reject-with icmp-port-unreachable",
    "-j ACCEPT",
    "-s 10.0.0.1/32 -j DROP",
    "-p tcp -s 203.0.113.4/32 -j DROP",
    "! -s 203.0.113.4/32 -j DROP",
    '-m comment --comment "x-s -A X y" -s 203.0.113.4/32 -j DROP',
    "-s 203.0.113.4",
    "-s 203.0.113.40/32 -j DROP",
    "-s 203.0.113.4/32",
    "",
]


def mixes() -> list[list[str]]:
    rng = random.Random(15)
    out = [[rng.choice(AWKWARD) for _ in range(rng.randint(0, 400))] for _ in range(150)]
    out.append([spec for spec in AWKWARD if spec.startswith("-s ")] * 60)
    return out


def reference_parse(text: str) -> dict[str, dict[str, tuple[str, list[str]]]]:
    tables: dict[str, dict[str, tuple[str, list[str]]]] = {}
    chains: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        if line.startswith("-A "):
            name, _, spec = line[3:].partition(" ")
            chains.setdefault(name, ("-", []))[1].append(spec)
        elif line.startswith(":"):
            name, _, rest = line[1:].partition(" ")
            chains[name] = (rest.split(" ", 1)[0], [])
        elif line.startswith("*"):
            chains = tables[line[1:].strip()] = {}
    return tables


def parsed(ruleset: Ruleset) -> dict[str, dict[str, tuple[str, list[str]]]]:
    return {
        t: {c: (chain.policy, chain.rules) for c, chain in table.chains.items()}
        for t, table in ruleset.tables.items()
    }


@pytest.mark.parametrize("seed", range(20))
def test_parse_save_reads_interleaved_chains_as_lines_do(seed: int) -> None:
    rng = random.Random(seed)
    names = ["INPUT", "X", "f2b-sshd", "f2b-sshd2"]
    lines = ["*filter", *(f":{n} {'ACCEPT' if n == 'INPUT' else '-'} [0:0]" for n in names)]
    for _ in range(rng.randint(0, 300)):
        name = rng.choice(names)
        spec = rng.choice(AWKWARD)
        lines.append(f"-A {name} {spec}" if spec else f"-A {name}")
    lines += ["COMMIT", "*nat", ":PREROUTING ACCEPT [0:0]", "-A PREROUTING -j ACCEPT", "COMMIT"]
    text = "\n".join(lines) + rng.choice(["\n", ""])
    assert parsed(parse_save(text, "legacy", "ipv4")) == reference_parse(text)
    crlf = text.replace("\n", "\r\n")
    assert parsed(parse_save(crlf, "nft", "ipv4")) == reference_parse(crlf)


def test_the_walk_candidates_are_every_rule_that_may_hold_the_source() -> None:
    test = SourceTest(ipaddress.ip_address("203.0.113.4"))
    for rules in mixes():
        expected = [i for i, spec in enumerate(rules) if not test.misses(spec)]
        assert test.candidates(rules) == expected


def test_find_over_a_big_chain_finds_what_a_rule_by_rule_scan_finds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = parse_target("203.0.113.4")

    def found(rules: list[str]) -> list[tuple[object, ...]]:
        ruleset = Ruleset("legacy", "ipv4")
        ruleset.tables["filter"] = Table("filter", {"X": Chain("X", "-", rules)})
        return [
            (f.line, f.rule, f.network, f.targeted)
            for f in xtables_rules.find_in_ruleset(ruleset, target)
        ]

    for rules in mixes():
        fast = found(rules)
        monkeypatch.setattr(xtables_rules, "PREFILTER_FROM", 10**9)
        assert found(rules) == fast
        monkeypatch.setattr(xtables_rules, "PREFILTER_FROM", 100)


def test_a_lone_rule_is_deleted_by_spec_only_when_the_read_held_it_once() -> None:
    spec = "-s 203.0.113.4/32 -j REJECT --reject-with icmp-port-unreachable"
    read = parse_save(
        f"*filter\n:f2b-sshd - [0:0]\n-A f2b-sshd -s 10.0.0.1/32 -j REJECT\n-A f2b-sshd {spec}\n"
        f"-A f2b-twice {spec}\n-A f2b-twice {spec}\nCOMMIT\n",
        "nft",
        "ipv4",
    )
    lone = xtables_plan.RuleTarget("f2b-sshd", 2, spec)
    assert xtables_plan.only_copy(read, "filter", [lone])
    assert not xtables_plan.only_copy(None, "filter", [lone])  # nothing read in this run: by handle
    assert not xtables_plan.only_copy(
        read, "filter", [lone, xtables_plan.RuleTarget("f2b-sshd", 1, "x")]
    )
    assert not xtables_plan.only_copy(
        read, "filter", [xtables_plan.RuleTarget("f2b-twice", 1, spec)]
    )
    assert not xtables_plan.only_copy(read, "nat", [lone])
