"""iptables and ip6tables, both backends (legacy libiptc and nft), read and changed as text.

Reading: one `*-save` per backend and family (measured: 90x faster than walking the rules with
python-iptables). Changing: one commit per table that deletes each rule by its identity (its
exact spec, at its number or where it slid), so a rule that slid to another number is still the
one deleted and a missing one fails the whole table: under the xtables lock for legacy
(python-iptables deletes in-process while the lock is held), by nft handle for nft. Deleting by
number (`unban delete`) takes the rule at that number now and deletes it the same way. The undo
is one `*-restore --noflush` per table.

Deleting iptables-nft rules a find just read: its dumps are bracketed by two reads of
nftables' generation id (unban.nftgen); equal, they are generation G, and the rules at their
positions in that read are deleted by nft handle in one netlink batch that the kernel commits
only while nftables is still at G (unban.nftnl): no `iptables-nft` run. The handles come from a
rule dump at G: one the find took beside its save (`take_handles`, as `me` asks), else one of
the chain at the delete. When the kernel refuses the batch (something committed since), the
delete goes by spec or by handles mapped afresh, as without a known generation.

Reading again after a change (`me`'s final check): the nft backend's rules are not dumped again
when the generation id proves what they are. After that one-commit delete (or a one-rule
`iptables-nft -D` by spec) the rules are G's minus those rules, as generation G+1; the next
find keeps them only when the id is then exactly G+1 (that delete, and no other commit by
anyone), else it dumps afresh.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Optional, cast

from unban.address import Network, family_of, is_targeted, overlaps, parse_network, show
from unban.errors import InputError, LayerError, RuleChangedError
from unban.layers import Listing, ListQuery, owner_of
from unban.layers.xtables_plan import (
    ADMIT,
    RuleTarget,
    build_batches,
    clamp_inserts,
    format_chain,
    locate,
    only_copy,
    restore_input,
    targets_of,
    without_rule,
    without_rules_at,
)
from unban.layers.xtables_rules import (
    BACKENDS,
    FAMILIES,
    LAYER,
    display_tool,
    find_in_ruleset,
    tool,
    verdict_of,
)
from unban.locking import FileLock
from unban.model import Batch, Finding, LayerStatus
from unban.nftgen import before_reads, following, generation, steady, still
from unban.nftnl import Handles, Spot, UnknownOutcome, delete_at, rule_handles, without_handles_at
from unban.path.iptables import (
    Chain,
    Ruleset,
    Table,
    option_value,
    parse_save,
    split_spec,
    walk_ruleset,
)
from unban.path.model import ChainWalk, Lookups, Packet
from unban.system import concurrently, first_line, run, which

XTABLES_LOCK = "/run/xtables.lock"


# ---------------------------------------------------------------- adapter


class XtablesLayer:
    """iptables/ip6tables in both backends. Caches what it read until it changes something."""

    name = LAYER

    def __init__(
        self,
        backends: Sequence[str] = BACKENDS,
        families: Sequence[str] = FAMILIES,
        *,
        take_handles: bool = False,
    ):
        """`take_handles`: beside each iptables-nft save, dump the family's nft rule handles
        over netlink (on the other core, mostly kernel time), so that deleting what the find
        read needs no dump of its own (`unban me`: about one `iptables-nft -D` less at
        100,000 rules)."""
        self.backends = tuple(backends)
        self.families = tuple(families)
        self.take_handles = take_handles
        self._cache: dict[tuple[str, str], Ruleset] = {}
        # The nftables generation the cached nft-backend rulesets are the kernel's state at
        # (None: not known, so the next find dumps them again), and the handles of their
        # rules at that generation, per family, where `take_handles` dumped them (only
        # while the generation is known).
        self._generation: Optional[int] = None
        self._handles: dict[str, Handles] = {}

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
            if backend == "nft":
                self._generation = None  # read alone, not between two reads of the id
                self._handles.clear()
            self._cache[key] = _dumped(backend, family)
        return self._cache[key]

    def rulesets(self) -> list[Ruleset]:
        """Every backend's and family's rules; the ones not read yet are read at once. When
        any nft one is read, all nft ones are, between two reads of nftables' generation id."""
        pairs = list(self._pairs())
        missing = [pair for pair in pairs if pair not in self._cache]
        nft = any(backend == "nft" for backend, _ in missing)
        handled: list[str] = []
        if nft:
            missing += [p for p in pairs if p[0] == "nft" and p in self._cache]
            if self.take_handles:
                handled = [family for backend, family in missing if backend == "nft"]
            before = before_reads()
        jobs: list[Callable[[], object]] = [partial(_dumped, *pair) for pair in missing]
        jobs += [partial(rule_handles, family) for family in handled]
        read: list[object] = concurrently(jobs)
        self._cache.update(zip(missing, cast("list[Ruleset]", read[: len(missing)])))
        if nft:
            self._generation = steady(before, generation())
            dumped = cast("list[Optional[Handles]]", read[len(missing) :])
            self._handles = {
                family: handles
                for family, handles in zip(handled, dumped)
                if handles is not None and self._generation is not None
            }
        return [self._cache[pair] for pair in pairs]

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
        """Reads the rules afresh (fail2ban may have changed them since the last find), but
        for the nft backend's when nftables' generation id says they are still what this
        layer holds (see the module's docstring). The ipset and xt_recent layers, which run
        after this one, share what it read."""
        self._forget_unless_current()
        family = family_of(target)
        return [
            finding
            for ruleset in self.rulesets()
            if ruleset.family == family
            for finding in find_in_ruleset(ruleset, target)
        ]

    def _forget_unless_current(self) -> None:
        """Drop every cached ruleset but the nft backend's, which stay while no commit to
        nftables came after the generation they are."""
        # Only a layer that holds a known generation asks the kernel (every find, heal's too).
        current = self._generation is not None and still(self._generation, generation())
        for key in list(self._cache):
            if key[0] != "nft" or not current:
                del self._cache[key]
        if not current:
            self._generation = None
            self._handles.clear()

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
            self._delete(batch, targets_of(batch.payload))

    def revert(self, batch: Batch) -> None:
        if batch.scope.endswith(f" {ADMIT}"):
            self._delete(batch, targets_of(batch.undo_payload))
            return
        backend, family, table = batch.scope.split(" ")[:3]
        chains = self._table_now(backend, family, table)
        self._restore(batch, clamp_inserts(batch.undo_payload, chains))

    def _delete(self, batch: Batch, targets: list[RuleTarget]) -> None:
        """Delete the rules in one commit, each only if it is still there.

        legacy: hold the xtables lock (fail2ban's `iptables -w` waits for it) from reading the
        table to libiptc's commit, so nothing can move between the check and the delete.
        nft: when the find's read is of a known generation, the rules at their positions in
        it are deleted by handle in one netlink batch that the kernel commits only at that
        generation (`_deleted_at_generation`). Otherwise, or when the kernel refuses it: one
        target whose spec the find's read held once is deleted by spec (the rule equal to it
        is the one found); else positions are mapped to nft handles (never reused) read
        before and after the check, and deleted by handle in one transaction.
        """
        backend, family, table = batch.scope.split(" ")[:3]
        read = self._cache.pop((backend, family), None)
        if backend == "legacy":
            with xtables_lock():
                spots = locate(self._table_now(backend, family, table), targets)
                _libiptc_delete(family, table, spots)
            return
        known = self._generation
        self._generation = None
        handles = self._handles.pop(family, None)
        if read is not None and known is not None:
            if self._deleted_at_generation(family, table, targets, read, known, handles):
                return  # the other families' handles hold at the next generation too
        self._handles.clear()
        if read is not None and only_copy(read, table, targets):
            if not _deleted_by_spec(family, table, targets[0]):
                self._delete_nft(family, table, targets)
            elif known is not None:  # the find's rules less this one: generation known + 1
                self._cache[(backend, family)] = without_rule(
                    read, table, targets[0].chain, targets[0].spec
                )
                self._generation = following(known)
        else:
            self._delete_nft(family, table, targets)

    def _deleted_at_generation(
        self,
        family: str,
        table: str,
        targets: Sequence[RuleTarget],
        read: Ruleset,
        known: int,
        handles: Optional[Handles],
    ) -> bool:
        """Delete the targets where the find's `read` (generation `known`) has them, by nft
        handle, in one commit the kernel makes only while nftables is still at that
        generation (unban.nftnl); then keep `read` less those rules as the next generation.
        False when nothing was deleted: the caller's slower ways go on from there."""
        chains = read.tables.get(table, Table(table)).chains
        spots = at_their_lines(chains, targets)
        if spots is None:
            try:
                spots = locate(chains, targets)
            except RuleChangedError:
                return False  # not in the find's read: deleting by spec says so
        at = [Spot(chain, index, len(chains[chain].rules)) for chain, index in spots]
        try:
            deleted = delete_at(family, table, at, known, handles)
        except UnknownOutcome as exc:
            raise LayerError(
                LAYER,
                f"could not tell whether nftables deleted the rules from table {table} ({exc}); "
                "see `unban find` for what is there now",
            ) from None
        if deleted:
            self._cache[("nft", family)] = without_rules_at(read, table, spots)
            self._generation = following(known)
            if handles is not None:
                self._handles[family] = without_handles_at(handles, table, spots)
        return deleted

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
        else:
            self._generation = None
            self._handles.clear()
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


def at_their_lines(
    chains: dict[str, Chain], targets: Sequence[RuleTarget]
) -> Optional[list[tuple[str, int]]]:
    """Where `locate` puts targets that are each at their own line of `chains` (the read they
    were found in), without indexing a chain of 100,000 rules; None when one is not. Pure."""
    spots = set()
    for target in targets:
        rules = chains[target.chain].rules if target.chain in chains else []
        if not 0 < target.line <= len(rules) or rules[target.line - 1] != target.spec:
            return None
        spots.add((target.chain, target.line - 1))
    if len(spots) != len(targets):
        return None
    return sorted(spots, key=lambda spot: (spot[0], -spot[1]))


def _dumped(backend: str, family: str) -> Ruleset:
    out = run(LAYER, [tool(backend, family, "-save")]).stdout
    return parse_save(out, backend, family)


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
