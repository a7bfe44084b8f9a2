"""iptables-save text (pure): the tool names, which rules refuse a client address (by source,
through an ipset or an xt_recent list, or by jumping to a chain that refuses), and the rules a
listing shows."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Optional

from unban.address import Network, is_targeted, parse_network
from unban.layers import ListQuery, owner_of
from unban.model import Finding
from unban.path.iptables import (
    Ruleset,
    option_value,
    rules_naming,
    split_spec,
)

LAYER = "iptables"
BACKENDS = ("legacy", "nft")
FAMILIES = ("ipv4", "ipv6")
BLOCKING = ("DROP", "REJECT")


def tool(backend: str, family: str, suffix: str = "") -> str:
    """`iptables-legacy`, `ip6tables-nft-save`, ..."""
    base = "iptables" if family == "ipv4" else "ip6tables"
    return f"{base}-{backend}{suffix}"


def display_tool(backend: str, family: str) -> str:
    """The command a person types: the backend's own binary (`iptables-nft`), since the backend
    plain `iptables` runs differs between hosts (nft on Debian 11+)."""
    return tool(backend, family)


def verdict_of(tokens: Sequence[str]) -> Optional[str]:
    target = option_value(tokens, "-j", "--jump")
    return target if target in BLOCKING else None


class SourceMatcher:
    """Fast test of `-s NET` values against a target network (100k rules per call)."""

    def __init__(self, target: Network) -> None:
        self.target = target
        self._af = socket.AF_INET if target.version == 4 else socket.AF_INET6
        self._bits = target.max_prefixlen
        self._start = int(target.network_address)
        self._plen = target.prefixlen

    def match(self, source: str) -> Optional[tuple[Network, bool]]:
        """(network, targeted) when `source` overlaps the target, else None."""
        addr, _, plen_text = source.partition("/")
        try:
            value = int.from_bytes(socket.inet_pton(self._af, addr), "big")
        except OSError:
            return None
        plen = int(plen_text) if plen_text.isdigit() else self._bits
        common = min(plen, self._plen)
        shift = self._bits - common
        if (value >> shift) != (self._start >> shift):
            return None
        network = parse_network(source)
        if network is None:
            return None
        return network, plen >= self._plen


@dataclass(frozen=True)
class RuleRef:
    """A rule that drops members of a set or recent list, for the ipset and xt_recent layers."""

    backend: str
    family: str
    table: str
    chain: str
    line: int
    rule: str
    verdict: str
    name: str  # the set or recent-list name


def by_name(refs: Iterable[RuleRef]) -> dict[str, list[RuleRef]]:
    """Set or list name -> the rules that drop its members, in ruleset order."""
    rules: dict[str, list[RuleRef]] = {}
    for ref in refs:
        rules.setdefault(ref.name, []).append(ref)
    return rules


def distinct_elements(findings: Iterable[Finding]) -> Iterator[tuple[Finding, str, str]]:
    """(finding, set or list name, element) for each element once, with its first finding.

    An element that several rules drop is found once per rule; it is removed once.
    """
    seen: set[tuple[str, str]] = set()
    for finding in findings:
        name, element = finding.set_name or "", finding.element or ""
        if (name, element) in seen:
            continue
        seen.add((name, element))
        yield finding, name, element


def rules_shown(query: ListQuery, rules: Sequence[RuleRef]) -> list[RuleRef]:
    """The rules `unban list --table/--chain/-4/-6` asks for."""
    return [
        r
        for r in rules
        if (not query.table or r.table == query.table)
        and (not query.chain or r.chain == query.chain)
        and (not query.family or r.family == query.family)
    ]


def dropped_by(rules: Sequence[RuleRef]) -> str:
    """`dropped by nft ipv4 filter INPUT #1; ...` for a listing line."""
    return "dropped by " + "; ".join(
        f"{r.backend} {r.family} {r.table} {r.chain} #{r.line}" for r in rules
    )


PREFILTER_FROM = 100  # rules in a chain from which one regex over the chain finds the candidates


def find_in_ruleset(ruleset: Ruleset, target: Network) -> Iterator[Finding]:
    """Rules whose `-s` network overlaps the target and whose verdict blocks."""
    if (target.version == 4) != (ruleset.family == "ipv4"):
        return
    matcher = SourceMatcher(target)
    # iptables-save prints an IPv4 source as its canonical network, so one host can only be
    # matched by its 32 supernets: a set lookup rejects the other 100k rules cheaply.
    only = None
    if target.version == 4 and target.prefixlen == 32:
        only = frozenset(str(target.supernet(new_prefix=p)) for p in range(1, 33))
    for table in ruleset.tables.values():
        for chain in table.chains.values():
            indices: Iterable[int] = range(len(chain.rules))
            if only is not None and len(chain.rules) > PREFILTER_FROM:
                indices = rules_naming("\n".join(chain.rules), only)
            for index in indices:
                spec = chain.rules[index]
                pos = spec.find("-s ")
                if pos < 0 or (pos and spec[pos - 1] != " ") or spec[pos - 2 : pos] == "! ":
                    continue
                end = spec.find(" ", pos + 3)
                source = spec[pos + 3 : end if end > 0 else None]
                if only is not None and source not in only:
                    continue
                matched = matcher.match(source)
                if matched is None:
                    continue
                tokens = split_spec(spec)
                verdict = verdict_of(tokens)
                if verdict is None:
                    continue
                network, targeted = matched
                yield Finding(
                    layer=LAYER,
                    backend=ruleset.backend,
                    family=ruleset.family,
                    table=table.name,
                    chain=chain.name,
                    line=index + 1,
                    handle=None,
                    rule=f"-A {chain.name} {spec}",
                    verdict=verdict,
                    owner=owner_of(chain.name),
                    network=str(network),
                    targeted=targeted and is_targeted(network, target),
                )


def set_rules(ruleset: Ruleset) -> Iterator[RuleRef]:
    """Rules that drop packets whose source is in an ipset (`-m set --match-set NAME src`)."""
    return _dropping_refs(ruleset, "--match-set", _source_set)


def recent_rules(ruleset: Ruleset) -> Iterator[RuleRef]:
    """Rules that drop sources listed in an xt_recent list (`--rcheck`/`--update`)."""
    return _dropping_refs(ruleset, "-m recent", _checked_list)


def _source_set(tokens: Sequence[str]) -> Optional[str]:
    """NAME of a non-negated `--match-set NAME src[,...]`."""
    i = _index_of(tokens, "--match-set")
    if i is None or i + 2 >= len(tokens) or tokens[i - 1] == "!":
        return None
    return tokens[i + 1] if tokens[i + 2].split(",")[0] == "src" else None


def _checked_list(tokens: Sequence[str]) -> Optional[str]:
    """The list a `-m recent --rcheck|--update` checks by source (DEFAULT when unnamed)."""
    if not ({"--rcheck", "--update"} & set(tokens)) or "--rdest" in tokens:
        return None
    return option_value(tokens, "--name") or "DEFAULT"


def _dropping_refs(
    ruleset: Ruleset, needle: str, name_of: Callable[[Sequence[str]], Optional[str]]
) -> Iterator[RuleRef]:
    """Blocking rules containing `needle` for which `name_of` names a set or list."""
    for table, chain, index, spec in _rules_containing(ruleset, needle):
        tokens = split_spec(spec)
        verdict = verdict_of(tokens) or _blocking_chain(ruleset, table, tokens)
        name = name_of(tokens)
        if verdict is None or name is None:
            continue
        yield RuleRef(
            ruleset.backend,
            ruleset.family,
            table,
            chain,
            index + 1,
            f"-A {chain} {spec}",
            verdict,
            name,
        )


def _blocking_chain(ruleset: Ruleset, table: str, tokens: Sequence[str]) -> Optional[str]:
    """The verdict of a jump to a chain that only logs and then drops or rejects everything
    (ufw's `ufw-user-limit`, where `ufw limit` sends a source over its hit count)."""
    jump = option_value(tokens, "-j", "--jump")
    chain = ruleset.tables[table].chains.get(jump or "") if table in ruleset.tables else None
    if chain is None or not chain.rules:
        return None
    *logs, last = [split_spec(spec) for spec in chain.rules]
    if any(option_value(rule, "-j", "--jump") not in ("LOG", "NFLOG") for rule in logs):
        return None
    return verdict_of(last) if last[:1] == ["-j"] else None


def _rules_containing(ruleset: Ruleset, needle: str) -> Iterator[tuple[str, str, int, str]]:
    for table in ruleset.tables.values():
        for chain in table.chains.values():
            for index, spec in enumerate(chain.rules):
                if needle in spec:
                    yield table.name, chain.name, index, spec


def _index_of(tokens: Sequence[str], token: str) -> Optional[int]:
    try:
        return tokens.index(token)
    except ValueError:
        return None
