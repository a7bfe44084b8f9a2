"""iptables and ip6tables, both backends (legacy libiptc and nft), read and changed as text.

Reading: one `*-save` per backend and family (measured: 90x faster than walking the rules with
python-iptables). Changing: one commit per table that deletes each rule by its identity (its
exact spec, at its number or where it slid), so a rule that slid to another number is still the
one deleted and a missing one fails the whole table: under the xtables lock for legacy
(python-iptables deletes in-process while the lock is held), by nft handle for nft. Deleting by
number (`unban delete`) takes the rule at that number now and deletes it the same way. The undo
is one `*-restore --noflush` per table.
"""

from __future__ import annotations

import shlex
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Optional

from unban.address import Network, family_of, is_targeted, overlaps, parse_network, show
from unban.errors import InputError, LayerError, RuleChangedError
from unban.layers import Listing, ListQuery, owner_of
from unban.locking import FileLock
from unban.model import Batch, Finding, LayerStatus, Step
from unban.path.iptables import (
    Chain,
    Ruleset,
    Table,
    option_value,
    parse_save,
    rules_naming,
    split_spec,
    walk_ruleset,
)
from unban.path.model import ChainWalk, Lookups, Packet
from unban.system import concurrently, first_line, run, which

LAYER = "iptables"
BACKENDS = ("legacy", "nft")
FAMILIES = ("ipv4", "ipv6")
BLOCKING = ("DROP", "REJECT")
XTABLES_LOCK = "/run/xtables.lock"


def tool(backend: str, family: str, suffix: str = "") -> str:
    """`iptables-legacy`, `ip6tables-nft-save`, ..."""
    base = "iptables" if family == "ipv4" else "ip6tables"
    return f"{base}-{backend}{suffix}"


def display_tool(backend: str, family: str) -> str:
    """The command a person types: the backend's own binary (`iptables-nft`), since the backend
    plain `iptables` runs differs between hosts (nft on Debian 11+)."""
    return tool(backend, family)


# ---------------------------------------------------------------- findings (pure)


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


@dataclass(frozen=True)
class RuleTarget:
    """A rule to delete: its chain, the number it had when read, and its exact spec."""

    chain: str
    line: int
    spec: str


def build_batches(findings: Sequence[Finding], *, by_number: bool = False) -> list[Batch]:
    """One batch per backend, family and table, committed at once by the adapter. Pure.

    The shell commands delete by spec, or by number with `by_number` (the article's
    `iptables -D CHAIN NUMBER`, right only while nothing else changes the chain).
    """
    groups: dict[tuple[str, str, str], list[Finding]] = {}
    admits: list[Finding] = []
    for finding in findings:
        if finding.lift == ADMIT:
            admits.append(finding)
            continue
        groups.setdefault((finding.backend, finding.family, finding.table), []).append(finding)
    batches = admit_batches(admits)
    for (backend, family, table), group in groups.items():
        group.sort(key=lambda f: (f.chain or "", f.line or 0))
        steps = []
        targets = []
        inserts = []
        for finding in group:
            spec = finding.rule.split(" ", 2)[2]
            chain = finding.chain or ""
            line = finding.line or 0
            targets.append(RuleTarget(chain, line, spec))
            inserts.append(f"-I {chain} {line} {spec}")
            head = [display_tool(backend, family), "-t", table]
            tokens = split_spec(spec)
            delete = [*head, "-D", chain, *([str(line)] if by_number else tokens)]
            steps.append(
                Step(
                    finding=finding,
                    command=shlex.join(delete),
                    undo_command=shlex.join([*head, "-I", chain, str(line), *tokens]),
                )
            )
        batches.append(
            Batch(
                layer=LAYER,
                scope=f"{backend} {family} {table}",
                steps=tuple(steps),
                payload=tuple(targets),
                # Re-inserting in ascending line order puts every rule back at its number.
                undo_payload=(f"*{table}", *inserts, "COMMIT"),
            )
        )
    return batches


ADMIT = "admit"
ADMIT_COMMENT = "unban-admit"


def admit_spec(network: str, ports: Sequence[int]) -> str:
    """The accept rule for exactly `network` to sshd's ports, as iptables-save prints it."""
    listed = sorted(set(ports)) or [22]
    if len(listed) == 1:
        port = f"-m tcp --dport {listed[0]}"
    else:
        port = f"-m multiport --dports {','.join(str(p) for p in listed)}"
    return f"-s {network} -p tcp {port} -m comment --comment {ADMIT_COMMENT} -j ACCEPT"


def admit_batches(findings: Sequence[Finding]) -> list[Batch]:
    """One batch per backend, family and table that inserts, at the top of each base chain
    that refuses the address, an accept for exactly that address (a policy, an allow-list or a
    broad rule refuses it there). Undo deletes exactly those rules, by identity. Pure."""
    groups: dict[tuple[str, str, str], dict[str, Finding]] = {}
    ports: dict[tuple[str, str, str, str], set[int]] = {}
    for finding in findings:
        key = (finding.backend, finding.family, finding.table)
        chain = finding.chain or "INPUT"
        groups.setdefault(key, {}).setdefault(chain, finding)
        ports.setdefault((*key, chain), set()).update(finding.ports)
    batches = []
    for (backend, family, table), chains in groups.items():
        steps, inserts, targets = [], [], []
        for chain, finding in chains.items():
            spec = admit_spec(finding.network, sorted(ports[(backend, family, table, chain)]))
            head = [display_tool(backend, family), "-t", table]
            tokens = split_spec(spec)
            inserts.append(f"-I {chain} 1 {spec}")
            targets.append(RuleTarget(chain, 1, spec))
            steps.append(
                Step(
                    finding=finding,
                    command=shlex.join([*head, "-I", chain, "1", *tokens]),
                    undo_command=shlex.join([*head, "-D", chain, *tokens]),
                )
            )
        batches.append(
            Batch(
                layer=LAYER,
                scope=f"{backend} {family} {table} {ADMIT}",
                steps=tuple(steps),
                payload=(f"*{table}", *inserts, "COMMIT"),
                undo_payload=tuple(targets),
            )
        )
    return batches


def _targets(payload: Sequence[object]) -> list[RuleTarget]:
    """RuleTargets, also as a change set's record gives them back (dicts)."""
    return [t if isinstance(t, RuleTarget) else RuleTarget(**t) for t in payload]  # type: ignore[arg-type]


def locate(chains: dict[str, Chain], targets: Sequence[RuleTarget]) -> list[tuple[str, int]]:
    """Where each target rule is now, as (chain, 0-based index). Pure.

    A rule still at its number is taken there; one that slid (fail2ban inserted above it) is
    taken at the copy of its spec nearest its old number; a rule that is gone raises.
    """
    positions: dict[str, dict[str, list[int]]] = {}
    for name in {target.chain for target in targets}:
        by_spec: dict[str, list[int]] = {}
        for index, spec in enumerate(chains[name].rules if name in chains else []):
            by_spec.setdefault(spec, []).append(index)
        positions[name] = by_spec
    claimed: set[tuple[str, int]] = set()
    for target in targets:
        spots = positions[target.chain].get(target.spec, [])
        spots = [i for i in spots if (target.chain, i) not in claimed]
        if not spots:
            raise RuleChangedError(
                LAYER,
                f"'-A {target.chain} {target.spec}' (rule {target.line} when read) is gone; "
                "nothing in its table was changed. Run again to see the rules as they are now",
            )
        claimed.add((target.chain, min(spots, key=lambda i: abs(i + 1 - target.line))))
    return sorted(claimed, key=lambda spot: (spot[0], -spot[1]))


def only_copy(read: Optional[Ruleset], table: str, targets: Sequence[RuleTarget]) -> bool:
    """True when deleting by spec deletes the very rule a find just read: one target, whose
    spec its chain held exactly once in that read. (With two copies, `-D SPEC` takes the
    first, which may not be the one found; `_delete_nft` then deletes by handle.) Pure."""
    if read is None or len(targets) != 1:
        return False
    chain = read.tables.get(table, Table(table)).chains.get(targets[0].chain)
    return chain is not None and chain.rules.count(targets[0].spec) == 1


def clamp_inserts(lines: Sequence[str], chains: dict[str, Chain]) -> list[str]:
    """The undo's `-I CHAIN N spec` lines, each N at most one past the chain's end as it is
    now (rules above it went meanwhile: a restarted fail2ban drops its jump until it bans
    again), so putting a rule back never fails on `Index of insertion too big`. Pure."""
    lengths = {name: len(chain.rules) for name, chain in chains.items()}
    out = []
    for line in lines:
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[0] == "-I" and parts[2].isdigit():
            length = lengths.get(parts[1], 0)
            parts[2] = str(min(int(parts[2]), length + 1))
            lengths[parts[1]] = length + 1
            line = " ".join(parts)
        out.append(line)
    return out


def restore_input(lines: Sequence[str]) -> str:
    return "\n".join(lines) + "\n"


def run_script(layer: str, argv: Sequence[str], lines: Sequence[str]) -> Optional[str]:
    """Run `argv` with `lines` on stdin; None on success, else its first error line."""
    result = run(layer, argv, stdin=restore_input(lines), check=False)
    return None if result.returncode == 0 else first_line(result.stderr)


def format_chain(chain: Chain) -> list[str]:
    """A chain as `iptables -S` prints it, each rule with its number."""
    header = f"-P {chain.name} {chain.policy}" if chain.policy != "-" else f"-N {chain.name}"
    width = len(str(len(chain.rules)))
    lines = [header]
    lines.extend(f"{i:>{width}}  -A {chain.name} {spec}" for i, spec in enumerate(chain.rules, 1))
    return lines


# ---------------------------------------------------------------- adapter


class XtablesLayer:
    """iptables/ip6tables in both backends. Caches what it read until it changes something."""

    name = LAYER

    def __init__(self, backends: Sequence[str] = BACKENDS, families: Sequence[str] = FAMILIES):
        self.backends = tuple(backends)
        self.families = tuple(families)
        self._cache: dict[tuple[str, str], Ruleset] = {}

    def _pairs(self) -> Iterator[tuple[str, str]]:
        for backend in self.backends:
            for family in self.families:
                if which(tool(backend, family, "-save")):
                    yield backend, family

    def status(self) -> list[LayerStatus]:
        result = []
        for backend in self.backends:
            for family in self.families:
                name = tool(backend, family, "-save")
                present = which(name) is not None
                result.append(
                    LayerStatus(
                        f"{LAYER} {backend} {family}",
                        present,
                        "" if present else f"{name} not installed",
                    )
                )
        return result

    def ruleset(self, backend: str, family: str) -> Ruleset:
        key = (backend, family)
        if key not in self._cache:
            out = run(LAYER, [tool(backend, family, "-save")]).stdout
            self._cache[key] = parse_save(out, backend, family)
        return self._cache[key]

    def rulesets(self) -> list[Ruleset]:
        """Every backend's and family's rules; the ones not read yet are read at once."""
        pairs = list(self._pairs())
        missing = [pair for pair in pairs if pair not in self._cache]
        concurrently([partial(self.ruleset, *pair) for pair in missing])
        return [self.ruleset(b, f) for b, f in pairs]

    def listings(self, query: ListQuery) -> list[Listing]:
        listings = []
        for ruleset in self.rulesets():
            if query.family and ruleset.family != query.family:
                continue
            for table in ruleset.tables.values():
                if query.table and table.name != query.table:
                    continue
                chains = [
                    c for c in table.chains.values() if not query.chain or c.name == query.chain
                ]
                if not chains:
                    continue
                lines: list[str] = []
                for chain in chains:
                    lines.extend(format_chain(chain))
                listings.append(
                    Listing(
                        layer=LAYER,
                        title=f"{display_tool(ruleset.backend, ruleset.family)} -t {table.name}",
                        lines=tuple(lines),
                        data={
                            "backend": ruleset.backend,
                            "family": ruleset.family,
                            "table": table.name,
                            "chains": [
                                {
                                    "name": c.name,
                                    "policy": c.policy,
                                    "rules": [
                                        {"line": i, "rule": f"-A {c.name} {s}"}
                                        for i, s in enumerate(c.rules, 1)
                                    ],
                                }
                                for c in chains
                            ],
                        },
                    )
                )
        return listings

    def find(self, target: Network) -> list[Finding]:
        """Reads the rules afresh: fail2ban may have changed them since the last find. The
        ipset and xt_recent layers, which run after this one, share what it read."""
        self._cache.clear()
        family = family_of(target)
        return [
            finding
            for ruleset in self.rulesets()
            if ruleset.family == family
            for finding in find_in_ruleset(ruleset, target)
        ]

    def plan(self, findings: Sequence[Finding]) -> list[Batch]:
        return build_batches([f for f in findings if f.layer == LAYER])

    def walks(
        self, packet: Packet, lookups: Lookups, *, see_through: bool = False
    ) -> list[ChainWalk]:
        """The SYN's way through every backend's tables of its family, from what `find` read."""
        family = "ipv4" if packet.version == 4 else "ipv6"
        return [
            walk
            for ruleset in self.rulesets()
            if ruleset.family == family
            for walk in walk_ruleset(ruleset, packet, lookups, see_through=see_through)
        ]

    def apply(self, batch: Batch) -> None:
        if batch.scope.endswith(f" {ADMIT}"):
            self._restore(batch, batch.payload)
        else:
            self._delete(batch, _targets(batch.payload))

    def revert(self, batch: Batch) -> None:
        if batch.scope.endswith(f" {ADMIT}"):
            self._delete(batch, _targets(batch.undo_payload))
            return
        backend, family, table = batch.scope.split(" ")[:3]
        chains = self._table_now(backend, family, table)
        self._restore(batch, clamp_inserts(batch.undo_payload, chains))

    def _delete(self, batch: Batch, targets: list[RuleTarget]) -> None:
        """Delete the rules in one commit, each only if it is still there.

        legacy: hold the xtables lock (fail2ban's `iptables -w` waits for it) from reading the
        table to libiptc's commit, so nothing can move between the check and the delete.
        nft: one target whose spec the find's read held once is deleted by spec (the rule
        equal to it is the one found); otherwise positions are mapped to nft handles (never
        reused) read before and after the check, and deleted by handle in one transaction.
        """
        backend, family, table = batch.scope.split(" ")[:3]
        read = self._cache.pop((backend, family), None)
        if backend == "legacy":
            with xtables_lock():
                spots = locate(self._table_now(backend, family, table), targets)
                _libiptc_delete(family, table, spots)
        elif not (only_copy(read, table, targets) and _deleted_by_spec(family, table, targets[0])):
            self._delete_nft(family, table, targets)
        self._cache.pop((backend, family), None)

    def _table_now(self, backend: str, family: str, table: str) -> dict[str, Chain]:
        out = run(LAYER, [tool(backend, family, "-save"), "-t", table]).stdout
        return parse_save(out, backend, family).tables.get(table, Table(table)).chains

    def _delete_nft(self, family: str, table: str, targets: Sequence[RuleTarget]) -> None:
        """Map each target's position in a fresh iptables-nft-save to its nft handle, read
        before and after that save, then delete by handle. A chain that only gained rules
        meanwhile (fail2ban's `iptables -w -I f2b-JAIL 1`, ~50 a second at worst) is still
        mapped (`handles_at_save`); one that lost or reordered rules is read again, for up to
        NFT_BUDGET seconds."""
        nft_family = "ip" if family == "ipv4" else "ip6"
        chains = sorted({t.chain for t in targets})
        deadline = time.monotonic() + NFT_BUDGET
        while True:
            before = {c: _nft_handles(nft_family, table, c) for c in chains}
            saved = self._table_now("nft", family, table)
            spots = locate(saved, targets)
            after = {c: _nft_handles(nft_family, table, c) for c in chains}
            at_save: dict[str, list[int]] = {}
            for chain in chains:
                count = len(saved[chain].rules) if chain in saved else 0
                handles = handles_at_save(before[chain], after[chain], count)
                if handles is not None:
                    at_save[chain] = handles
            if len(at_save) == len(chains):
                break
            if time.monotonic() >= deadline:
                raise RuleChangedError(
                    LAYER,
                    f"table {table} kept changing while it was read (for {NFT_BUDGET:.0f} s); "
                    "nothing deleted",
                )
        script = "".join(
            f"delete rule {nft_family} {table} {chain} handle {at_save[chain][index]}\n"
            for chain, index in spots
        )
        result = run(LAYER, ["nft", "-f", "-"], stdin=script, check=False)
        if result.returncode != 0:
            raise RuleChangedError(
                LAYER,
                f"nft refused deleting from table {table} ({first_line(result.stderr)}); "
                "nothing in that table was changed. Run again",
            )

    def _restore(self, batch: Batch, lines: Sequence[str]) -> None:
        backend, family, _table = batch.scope.split(" ")[:3]
        argv = [tool(backend, family, "-restore"), "--noflush"]
        if backend == "legacy":
            argv += ["--wait", "10"]
        self._cache.pop((backend, family), None)
        result = run(LAYER, argv, stdin=restore_input(lines), check=False)
        if result.returncode != 0:
            raise RuleChangedError(
                LAYER,
                f"{argv[0]} refused the batch for table {_table} ({first_line(result.stderr)}); "
                "no rule in that table was changed. The rules changed meanwhile: run again.",
            )

    # ------------------------------------------------------------ delete by number

    def resolve(
        self,
        table: str,
        chain: str,
        number: int,
        *,
        backend: Optional[str],
        family: str,
        expect: Optional[Network],
    ) -> Finding:
        """Rule NUMBER of CHAIN as it is now; with `expect`, refuse unless it matches that address."""
        if number < 1:
            raise InputError(f"rule numbers start at 1, not {number}")
        backend = backend or self._backend_of(table, chain, family)
        self._cache.pop((backend, family), None)
        chains = self.ruleset(backend, family).tables.get(table, Table(table)).chains
        if chain not in chains:
            raise InputError(f"no chain '{chain}' in {display_tool(backend, family)} -t {table}")
        rules = chains[chain].rules
        if number > len(rules):
            raise InputError(f"chain '{chain}' has {len(rules)} rules; there is no rule {number}")
        spec = rules[number - 1]
        tokens = split_spec(spec)
        source = option_value(tokens, "-s", "--source")
        network = parse_network(source) if source else None
        if expect is not None and (network is None or not overlaps(network, expect)):
            raise InputError(
                f"rule {number} of {chain} is '-A {chain} {spec}', which does not match {show(expect)}; "
                "nothing deleted"
            )
        return Finding(
            layer=LAYER,
            backend=backend,
            family=family,
            table=table,
            chain=chain,
            line=number,
            handle=None,
            rule=f"-A {chain} {spec}",
            verdict=verdict_of(tokens) or "",
            owner=owner_of(chain),
            network=str(network) if network else "",
            targeted=bool(expect and network and is_targeted(network, expect)),
        )

    def _backend_of(self, table: str, chain: str, family: str) -> str:
        holders = [
            backend
            for backend in self.backends
            if which(tool(backend, family, "-save"))
            and chain in self.ruleset(backend, family).tables.get(table, Table(table)).chains
        ]
        if not holders:
            raise InputError(
                f"no chain '{chain}' in table {table} ({family}) in any iptables backend"
            )
        if len(holders) > 1:
            raise InputError(
                f"chain '{chain}' exists in both iptables backends; say which with --backend nft|legacy"
            )
        return holders[0]


NFT_BUDGET = 10.0  # seconds `_delete_nft` reads a chain again while it keeps changing


def handles_at_save(before: Sequence[int], after: Sequence[int], saved: int) -> Optional[list[int]]:
    """The chain's handles as they were when a save between the two handle reads saw
    `saved` rules; None when that cannot be known. Pure.

    nft handles only grow and are never reused, so when the chain only gained rules between
    the reads (every old handle still there, in the same order), the save saw the old rules
    plus the `saved - len(before)` new ones with the smallest handles (inserted first).
    """
    if list(before) == list(after):
        return list(after) if saved == len(after) else None
    kept = set(before)
    if [h for h in after if h in kept] != list(before):
        return None  # a rule went away or moved: positions cannot be mapped
    new = sorted(h for h in after if h not in kept)
    seen_new = saved - len(before)
    if not 0 <= seen_new <= len(new):
        return None
    later = set(new[seen_new:])
    return [h for h in after if h not in later]


def _nft_handles(nft_family: str, table: str, chain: str) -> list[int]:
    out = run(LAYER, ["nft", "-a", "list", "chain", nft_family, table, chain]).stdout
    handles = []
    for line in out.splitlines():
        stripped = line.strip()
        if " # handle " in stripped and not stripped.startswith("chain "):
            handles.append(int(stripped.rsplit(" # handle ", 1)[1].split()[0]))
    return handles


def _deleted_by_spec(family: str, table: str, target: RuleTarget) -> bool:
    """`iptables-nft -D CHAIN SPEC`: the first rule equal to the spec goes, in one transaction,
    without the two handle listings and the save `_delete_nft` needs (each costs about what
    this whole `-D` does). False when iptables found no equal rule: nothing was deleted."""
    argv = [tool("nft", family), "-t", table, "-D", target.chain, *split_spec(target.spec)]
    return run(LAYER, argv, check=False).returncode == 0


def xtables_lock(timeout: float = 10.0) -> FileLock:
    """The lock every `iptables -w` takes (flock on /run/xtables.lock)."""
    return FileLock(XTABLES_LOCK, timeout, error=lambda message: LayerError(LAYER, message))


def _libiptc_delete(family: str, table: str, spots: Sequence[tuple[str, int]]) -> None:
    """Delete rules by (chain, index) in-process through libiptc, in one commit.

    The caller holds the xtables lock and gives indices highest first within each chain.
    """
    try:
        import iptc  # python-iptables; imported here: it loads libxtables
    except Exception as exc:  # noqa: BLE001 - any import failure means the same thing here
        raise LayerError(LAYER, f"python-iptables is not usable here: {exc}") from None
    table_class = iptc.Table if family == "ipv4" else iptc.Table6
    handle = table_class(table, autocommit=False)
    handle.refresh()
    for chain, index in spots:
        if not handle._iptc.iptc_delete_num_entry(chain.encode(), index, handle._handle):
            handle.refresh()  # drop the uncommitted deletions
            raise LayerError(
                LAYER, f"libiptc could not delete rule {index + 1} of {chain}; nothing changed"
            )
    try:
        handle.commit()
    except iptc.IPTCError as exc:
        raise LayerError(
            LAYER, f"libiptc could not commit table {table}: {exc}; nothing changed"
        ) from None
