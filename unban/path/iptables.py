"""iptables and ip6tables rulesets, both backends, as plain data; and the way a new TCP SYN
to sshd takes through them. Pure code.

The ruleset is `iptables-{legacy,nft}-save` text, parsed once (`parse_save`). `walk_ruleset`
follows the SYN through each table's built-in chain of the hooks it meets, in netfilter's
priority order (raw -300, mangle -150, nat -100 at prerouting; mangle -150, filter 0,
security 50 at input), each a `ChainWalk` of every way it can leave that chain: jumps, gotos,
RETURN, the end of a chain (an implicit RETURN) and the built-in chain's policy are followed;
a match that cannot be evaluated (`-m limit`, an ipset that could not be tested, an unknown
destination) branches both ways, each way carrying the `Assumption` it made. It never
guesses: what it cannot evaluate makes a way's verdict depend on it, never a silent accept.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
import shlex
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional

from unban.path.model import (
    ACCEPT,
    UNKNOWN,
    Assumption,
    ChainWalk,
    Hop,
    IPAddress,
    Lookups,
    Match,
    Outcome,
    Packet,
    SourceKey,
)

# ---------------------------------------------------------------- the ruleset


@dataclass
class Chain:
    name: str
    policy: str  # ACCEPT/DROP for built-in chains, "-" for user chains
    rules: list[str] = field(default_factory=list)  # specs, without "-A CHAIN "
    # The walk's `SourceTest.candidates` of each (source, rule count): the real walk and the
    # see-through walk of every packet scan a chain of 100k ban rules once, not each.
    near: dict[tuple[object, int], list[int]] = field(
        default_factory=dict, compare=False, repr=False
    )


@dataclass
class Table:
    name: str
    chains: dict[str, Chain] = field(default_factory=dict)


@dataclass
class Ruleset:
    backend: str
    family: str
    tables: dict[str, Table] = field(default_factory=dict)


def parse_save(text: str, backend: str, family: str) -> Ruleset:
    """Parse `iptables-save` output. Rules keep the exact spec text the tool printed.

    iptables-save prints a chain's rules one after another: after a chain's first rule, the
    run of lines with the same `-A NAME ` is cut out and split in one go (a chain of 100k ban
    rules costs two string operations, not 100k Python steps).
    """
    ruleset = Ruleset(backend, family)
    table: Optional[Table] = None
    chains: dict[str, Chain] = {}
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    pos, size = 0, len(text)
    while pos < size:
        end = text.find("\n", pos)
        if end < 0:
            end = size
        line = text[pos:end]
        pos = end + 1
        if line.startswith("-A "):
            name, _, spec = line[3:].partition(" ")
            chain = chains.get(name)
            if chain is None:  # a rule before its chain header: tolerate it
                chain = chains[name] = Chain(name, "-")
            chain.rules.append(spec)
            prefix = f"\n-A {name} "
            run_end = _end_of_run(text, end, prefix)
            if run_end > end:
                chain.rules.extend(text[end + len(prefix) : run_end].split(prefix))
                pos = run_end + 1
        elif line.startswith(":"):
            name, _, rest = line[1:].partition(" ")
            chains[name] = Chain(name, rest.split(" ", 1)[0])
        elif line.startswith("*"):
            table = Table(line[1:].strip())
            chains = table.chains
            ruleset.tables[table.name] = table
        elif line.startswith("COMMIT"):
            table = None
    return ruleset


def rules_naming(joined: str, sources: frozenset[str], *, leading: bool = False) -> list[int]:
    """Indices of the rules (`joined` by newlines) holding `-s SOURCE` for one of `sources`,
    followed by a space or the rule's end (`leading`: only at the rule's start). One regex
    over the whole text: a prefilter, each hit is then judged as before."""
    alternatives = "|".join(re.escape(s) for s in sorted(sources, key=len, reverse=True))
    # A literal start ("\n-s "), not `^`, lets the regex engine skip ahead to each candidate.
    pattern = re.compile(f"{chr(10) if leading else ''}-s (?:{alternatives})(?= |$)", re.M)
    text = "\n" + joined if leading else joined
    hits: list[int] = []
    line = last = 0
    for match in pattern.finditer(text):
        # the newlines before the hit number its rule (a leading hit starts at the newline)
        line += text.count("\n", last, match.start())
        last = match.start()
        if not hits or hits[-1] != line:
            hits.append(line)
    return hits


def _end_of_run(text: str, end: int, prefix: str) -> int:
    """Where the run of lines starting with `prefix` (`\\n-A NAME `) that follows the line
    ending at `end` ends: the first newline after `end` not followed by the same start."""
    other = re.compile(f"\n(?!{re.escape(prefix[1:])})").search(text, end)
    return other.start() if other is not None else len(text)


def split_spec(spec: str) -> list[str]:
    """Split a rule spec the way iptables-restore does (quotes only around comments)."""
    return shlex.split(spec) if '"' in spec or "'" in spec else spec.split()


def option_value(tokens: Sequence[str], *names: str) -> Optional[str]:
    """The value after the first of `names` that is not negated, or None."""
    for i, token in enumerate(tokens[:-1]):
        if token in names and (i == 0 or tokens[i - 1] != "!"):
            return tokens[i + 1]
    return None


# ---------------------------------------------------------------- the walk

# The built-in chains a locally delivered packet passes: (table, chain, hook, priority).
HOOK_PATH = (
    ("raw", "PREROUTING", "prerouting", -300),
    ("mangle", "PREROUTING", "prerouting", -150),
    ("nat", "PREROUTING", "prerouting", -100),
    ("mangle", "INPUT", "input", -150),
    ("filter", "INPUT", "input", 0),
    ("security", "INPUT", "input", 50),
)

_NON_TERMINAL_TARGETS = frozenset(
    """LOG NFLOG ULOG MARK CONNMARK CT NOTRACK TRACE AUDIT CLASSIFY TCPMSS DSCP TOS TTL HL SET
    SECMARK CONNSECMARK CHECKSUM IDLETIMER LED TEE RATEEST HMARK""".split()
)
_UNKNOWN_TARGETS = {
    "NFQUEUE": "a userspace program decides (NFQUEUE)",
    "QUEUE": "a userspace program decides (QUEUE)",
    "DNAT": "the destination is rewritten (DNAT)",
    "REDIRECT": "the destination port is rewritten (REDIRECT)",
    "NETMAP": "the destination is rewritten (NETMAP)",
    "SYNPROXY": "SYNPROXY answers the SYN itself",
}
MAX_OUTCOMES = 256
MAX_DEPTH = 64


def walk_ruleset(
    ruleset: Ruleset, packet: Packet, lookups: Lookups, *, see_through: bool = False
) -> list[ChainWalk]:
    """Follow the SYN through every built-in chain of the hook path that this ruleset has.

    `see_through`: a drop or reject is recorded as an outcome and the walk goes on past it, as
    if it were lifted: what the SYN would meet once the refusals before it are gone (a DROP
    after fail2ban's REJECT is on the way too). The verdict of such walks means nothing.
    """
    if (packet.version == 4) != (ruleset.family == "ipv4"):
        return []
    walks = []
    for table_name, chain, hook, priority in HOOK_PATH:
        table = ruleset.tables.get(table_name)
        if table is None or chain not in table.chains:
            continue
        outcomes = walk_chain(ruleset, table, chain, packet, lookups, see_through)
        walks.append(
            ChainWalk(
                ruleset.backend, ruleset.family, table_name, chain, hook, priority, tuple(outcomes)
            )
        )
    return walks


def walk_chain(
    ruleset: Ruleset,
    table: Table,
    start: str,
    packet: Packet,
    lookups: Lookups,
    see_through: bool = False,
) -> list[Outcome]:
    """Every way the SYN can leave built-in chain `start`, branching at unevaluable matches."""
    # The matcher is imported by the walks that need it: parsing a dump (every layer read)
    # does not, nor does a ruleset without built-in chains to walk.
    from unban.path.iptables_match import match_rule

    outcomes: list[Outcome] = []

    def hop(chain: str, index: int, tokens: Sequence[str]) -> Hop:
        spec = table.chains[chain].rules[index]
        return Hop(
            ruleset.backend,
            ruleset.family,
            table.name,
            chain,
            f"-A {chain} {spec}",
            line=index + 1,
            keys=source_keys(tokens, packet, lookups),
        )

    def policy() -> Outcome:
        verdict = table.chains[start].policy.upper()
        policy_hop = Hop(
            ruleset.backend, ruleset.family, table.name, start, f"-P {start} {verdict}", line=0
        )
        return Outcome(ACCEPT if verdict == "ACCEPT" else "drop", policy_hop, f"policy {verdict}")

    # A way's state: chain, rule index, return stack, rules taken, assumptions made. The way
    # where an unknown match is assumed to match goes on first, so outcomes come out in the
    # order the SYN meets them; the other branch waits in `pending`.
    State = tuple[str, int, tuple[tuple[str, int], ...], tuple[Hop, ...], tuple[Assumption, ...]]
    pending: list[State] = [(start, 0, (), (), ())]
    source_test = SourceTest(packet.source)
    candidates: dict[str, list[int]] = {}

    def next_candidate(chain: str, index: int) -> int:
        """The first rule at or after `index` whose source may be the packet's (others are
        skipped unparsed: a chain of 100k ban rules costs one scan)."""
        if chain not in candidates:
            rules = table.chains[chain]
            key = (packet.source, len(rules.rules))
            if key not in rules.near:
                rules.near[key] = source_test.candidates(rules.rules)
            candidates[chain] = rules.near[key]
        spots = candidates[chain]
        at = bisect.bisect_left(spots, index)
        return spots[at] if at < len(spots) else len(table.chains[chain].rules)

    while pending:
        chain, index, stack, path, assumed = pending.pop(0)
        while True:
            if len(outcomes) >= MAX_OUTCOMES:
                last = policy()
                outcomes.append(Outcome(UNKNOWN, last.hop, "too many ways through the chain"))
                pending.clear()
                break
            rules = table.chains[chain].rules
            index = next_candidate(chain, index)
            if index >= len(rules):
                kind = "return"  # the end of a chain is an implicit RETURN
            else:
                tokens = split_spec(rules[index])
                result, why = match_rule(tokens, packet, lookups)
                if result is Match.NO:
                    index += 1
                    continue
                kind, target, detail = classify_target(tokens, table)
                if kind == "continue":  # LOG, MARK, ...: the same either way
                    index += 1
                    continue
                here = hop(chain, index, tokens)
                if result is Match.MAYBE:
                    skipped = (*assumed, Assumption(here, False, why))
                    pending.append((chain, index + 1, stack, path, skipped))
                    assumed = (*assumed, Assumption(here, True, why))
            if kind == "return":  # back to the calling chain, or the built-in chain's policy
                if not stack:
                    last = policy()
                    outcomes.append(Outcome(last.verdict, last.hop, last.detail, path, assumed))
                    break
                chain, index = stack[-1]
                stack = stack[:-1]
                continue
            if kind in ("drop", "reject") and see_through:
                outcomes.append(Outcome(kind, here, detail, (*path, here), assumed))
                index += 1
                continue
            if kind in ("accept", "drop", "reject", UNKNOWN):
                outcomes.append(Outcome(kind, here, detail, (*path, here), assumed))
                break
            if len(stack) >= MAX_DEPTH:
                outcomes.append(
                    Outcome(UNKNOWN, here, "chains nest too deep", (*path, here), assumed)
                )
                break
            if kind == "jump":
                stack = (*stack, (chain, index + 1))
            path = (*path, here)
            chain, index = target, 0
    return outcomes


class SourceTest:
    """Does a rule's leading `-s NET` (iptables-save puts it first) leave the packet's source
    out? Integer arithmetic on inet_pton, no parsing of the rest: 100k rules in ~0.1 s."""

    def __init__(self, source: IPAddress) -> None:
        self._af = socket.AF_INET if source.version == 4 else socket.AF_INET6
        self._bits = source.max_prefixlen
        self._value = int(source)
        # iptables-save prints an IPv4 source as its canonical network: one that holds the
        # packet's source is one of its 33 supernets, a set lookup on the text.
        self._supernets: Optional[frozenset[str]] = None
        if source.version == 4:
            network = ipaddress.ip_network(source)
            self._supernets = frozenset(
                str(network.supernet(new_prefix=p)) for p in range(0, 33)
            ) | {str(source)}

    def candidates(self, rules: Sequence[str]) -> list[int]:
        """Indices of the rules whose source may be the packet's, in order."""
        if self._supernets is None:
            return [i for i, spec in enumerate(rules) if not self.misses(spec)]
        near = self._supernets
        joined = "\n".join(rules)
        if rules and joined.startswith("-s ") + joined.count("\n-s ") == len(rules):
            return rules_naming(joined, near, leading=True)  # a ban chain: every rule has -s
        return [
            i
            for i, spec in enumerate(rules)
            if not spec.startswith("-s ") or spec[3:].partition(" ")[0] in near
        ]

    def misses(self, spec: str) -> bool:
        if not spec.startswith("-s "):
            return False
        end = spec.find(" ", 3)
        address, _, plen = spec[3 : end if end > 0 else None].partition("/")
        try:
            value = int.from_bytes(socket.inet_pton(self._af, address), "big")
        except OSError:
            return False  # another family or a host name: the full match decides
        shift = self._bits - (int(plen) if plen.isdigit() else self._bits)
        return shift >= 0 and (value >> shift) != (self._value >> shift)


def classify_target(tokens: Sequence[str], table: Table) -> tuple[str, str, str]:
    """(kind, target, detail): kind is accept/drop/reject/return/jump/goto/continue/unknown."""
    for i, token in enumerate(tokens[:-1]):
        if token in ("-j", "--jump", "-g", "--goto"):
            target = tokens[i + 1]
            options = " ".join(tokens[i + 2 :])
            detail = f"{target} {options}".strip()
            if token in ("-g", "--goto"):
                if target in table.chains:
                    return "goto", target, detail
                return UNKNOWN, target, f"goto to a missing chain {target}"
            if target == "ACCEPT":
                return "accept", target, detail
            if target in ("DROP", "TARPIT"):
                return "drop", target, detail
            if target == "REJECT":
                if "--reject-with" not in tokens:
                    detail = "REJECT --reject-with icmp-port-unreachable"
                return "reject", target, detail
            if target == "RETURN":
                return "return", target, detail
            if target in table.chains:
                return "jump", target, detail
            if target in _NON_TERMINAL_TARGETS:
                return "continue", target, detail
            reason = _UNKNOWN_TARGETS.get(target, f"target {target} is not evaluated here")
            return UNKNOWN, target, f"{detail}: {reason}"
    return "continue", "", ""


def source_keys(tokens: Sequence[str], packet: Packet, lookups: Lookups) -> tuple[SourceKey, ...]:
    """What in a matching rule picks the client out by its source: its own `-s NET`, an
    ipset it is a member of (`--match-set NAME src`), an xt_recent list that holds it."""
    from unban.path.iptables_match import in_network, parse_matches

    keys = []
    source = option_value(tokens, "-s", "--source")
    if source is not None and in_network(packet.source, source) is Match.YES:
        network = ipaddress.ip_network(source, strict=False)
        keys.append(SourceKey("address", str(network), network.num_addresses == 1))
    _base, modules = parse_matches(tokens)
    for name, options in modules:
        for option in options:
            if name == "set" and option.name == "--match-set" and not option.negated:
                if len(option.values) == 2 and option.values[1].split(",")[0] == "src":
                    set_name = option.values[0]
                    if lookups.ipset_member(set_name, str(packet.source)):
                        keys.append(SourceKey("ipset", str(packet.source), False, set_name))
        if name == "recent" and {o.name for o in options} & {"--rcheck", "--update"}:
            list_name = next(
                (o.values[0] for o in options if o.name == "--name" and o.values), "DEFAULT"
            )
            if "--rdest" not in {o.name for o in options} and lookups.recent_member(
                list_name, str(packet.source)
            ):
                keys.append(SourceKey("recent", str(packet.source), True, list_name))
    return tuple(keys)
