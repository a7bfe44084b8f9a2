"""Native nftables: every table iptables-nft does not own, read with `nft -j`, changed with one
`nft -f -` transaction per table.

Reading (nft 1.0.6, measured in a netns with a 100k-element set, 10k native rules and 100k
iptables-nft rules; `nft list tables` and `nft -t list ruleset` fetch every rule: 2.6 s / 3.8 s):
- Tables: `nft -j -t list chains` and `list sets` (5 ms each at any size). Tables of family
  ip/ip6 named filter/nat/mangle/raw/security (ebtables-nft's bridge tables, arp tables) are the
  xtables layer's and never listed. A table without chains cannot drop anything: find skips it.
- Each other table: `nft -j -t list table F T`, one nft per table, run side by side. nft 1.0.6
  still fetches (not prints) the table's set elements: 0.33 s for 100k.
- One address in a named set: `nft -c delete element F T S { ADDR }`, the kernel's lookup in a
  transaction that is then aborted: 15 ms at 100k, nothing listed, rc 1 when absent. `nft get
  element` fetches every element of every set first (0.3 s per 100k), so it runs only where it
  tells more: the range of an interval set that holds the address, and a found element's
  timeout and expiry (kept for the undo). A CIDR target lists the set (`nft -j list set`).
- Rule text: rendered from the JSON for the rule that drops a set's members; for a rule to
  delete, the exact `nft -a -s` text (one more listing of that table), which the undo re-adds
  and apply checks: deleting is by handle, and a rebuilt table reuses handles.
firewalld: findings in `table inet firewalld` have owner "firewalld", and `plan` leaves them out
(firewalld rewrites that table from its own config: change it with firewall-cmd); `status` and
`listings` say so.
The path evaluator (unban.path.nft) walks the same documents `find` read (`walks`,
`path_documents`); `path_finding` turns a hop it reports into a finding this layer lifts, and
unban.layers.nft_lifts says how each kind is lifted (set or map element, rule, anonymous
element, admit).
Plans are pure (build_batches), but use what `find` read (each chain's rule order, each
element's timeout) for the undo; for findings the evaluator made, `plan` first reads what the
undo needs (`get element` for the element, `nft -a -s -t list chain` for the chain).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

from unban.address import Network
from unban.errors import LayerError, RuleChangedError
from unban.layers import Listing, ListQuery, owner_of
from unban.layers.nft_lifts import (
    FIREWALLD,
    Key,
    build_batches,
    chain_of,
    is_changeable,
    nft_family,
    resolve,
)
from unban.model import Batch, Finding, LayerStatus
from unban.path.model import ChainWalk, Hop, Lookups, Packet, SourceKey
from unban.path.nft_syntax import (
    PROTOCOLS,
    display_family,
    is_native,
    objects,
    quote_name,
    render_rule,
    span_of,
)
from unban.system import first_line, run, which

if TYPE_CHECKING:  # imported where used: a host without native tables loads none of them
    from unban.layers.nft_listing import TextTable
    from unban.layers.nft_ruleset import Element, RuleHit, SetInfo, SourceMatch, TableJson

LAYER = "nftables"
BACKEND = "nft"
# ---------------------------------------------------------------- findings and plans (pure)

T = TypeVar("T")
U = TypeVar("U")


def owner(family: str, table: str, chain: Optional[str], set_name: Optional[str]) -> str:
    """Who made the block: firewalld, fail2ban (jail from the set name), sshguard, CrowdSec ..."""
    if (family, table) == FIREWALLD:
        return "firewalld"
    if set_name:
        by_set = owner_of(set_name)
        if by_set != "manual":
            return by_set
    if table == "f2b-table" or chain == "f2b-chain":
        return "fail2ban"
    return owner_of(table)


def rule_finding(table: TableJson, hit: RuleHit, rule: str) -> Finding:
    m = hit.match
    return Finding(
        layer=LAYER,
        backend=BACKEND,
        family=display_family(table.family),
        table=table.name,
        chain=m.chain,
        line=None,
        handle=m.handle,
        rule=rule,
        verdict=m.verdict,
        owner=owner(table.family, table.name, m.chain, None),
        network=hit.span.network(),
        targeted=hit.targeted,
    )


def set_finding(
    table: TableJson, set_name: str, m: SourceMatch, element: Element, rule: str, target: Network
) -> Finding:
    return Finding(
        layer=LAYER,
        backend=BACKEND,
        family=display_family(table.family),
        table=table.name,
        chain=m.chain,
        line=None,
        handle=None,
        rule=rule,
        verdict=m.verdict,
        owner=owner(table.family, table.name, m.chain, set_name),
        network=element.span.network(),
        targeted=element.span.inside(target),
        set_name=set_name,
        element=element.value,
    )


def path_finding(
    hop: Hop,
    key: Optional[SourceKey],
    verdict: str,
    network: str,
    *,
    lift: str = "",
    ports: tuple[int, ...] = (),
) -> Finding:
    """A Finding this layer can lift, for a native nft hop the path evaluator reports.

    `key` (one of hop.keys) says what to take away: a named set or map element (`set`), an
    element of the rule's anonymous set or map (`anonymous`), or the rule itself (`address`,
    or None: e.g. `ip saddr ADDR goto deny`). `lift="admit"`: insert an accept for `network`
    to `ports` at the top of hop.chain, which must be the base chain that decides."""
    set_name = key.name if key is not None and key.kind == "set" else None
    element = key.value if key is not None and key.kind in ("set", "anonymous") else None
    return Finding(
        layer=LAYER,
        backend=BACKEND,
        family=display_family(hop.family),
        table=hop.table,
        chain=hop.chain,
        line=None,
        handle=hop.handle,
        rule=hop.rule,
        verdict=verdict,
        owner=owner(hop.family, hop.table, hop.chain, set_name),
        network=network,
        targeted=key.targeted if key is not None and not lift else False,
        set_name=set_name,
        element=element,
        lift=lift,
        ports=ports,
        on_path=True,
    )


# ---------------------------------------------------------------- adapter


class NftablesLayer:
    """Native nftables through the `nft` binary. Remembers what `find` read, for `plan`."""

    name = LAYER

    def __init__(self) -> None:
        self._tables: Optional[dict[tuple[str, str], bool]] = None  # table -> has chains
        self._error = ""
        self._orders: dict[Key, list[int]] = {}
        self._extras: dict[tuple[str, str, str, str], str] = {}
        self._docs: dict[tuple[str, str], dict[str, Any]] = {}
        self._devices: dict[tuple[str, str, str], tuple[str, ...]] = {}
        self._texts: dict[Key, list[str]] = {}
        self._docs_version: Optional[int] = None  # the IP version `_docs` were read for

    # ------------------------------------------------------------ reading

    def _present(self) -> bool:
        return which("nft") is not None

    def tables(self, *, with_chains: bool = False) -> list[tuple[str, str]]:
        """Native tables (nft family, name) that have chains or sets (only those with chains,
        the ones that can drop anything, with `with_chains`); two cheap listings."""
        if self._tables is None:
            self._error = ""
            found: dict[tuple[str, str], bool] = {}
            try:
                for kind in ("chains", "sets"):
                    doc = json.loads(run(LAYER, ["nft", "-j", "-t", "list", kind]).stdout)
                    for obj in objects(doc, kind[:-1]):
                        key = (obj["family"], obj["table"])
                        found[key] = found.get(key, False) or kind == "chains"
            except LayerError as exc:
                self._error = str(exc)
                return []
            self._tables = {t: chains for t, chains in found.items() if is_native(*t)}
        return [t for t, chains in self._tables.items() if chains or not with_chains]

    def status(self) -> list[LayerStatus]:
        if not self._present():
            return [LayerStatus(LAYER, False, "nft not installed")]
        tables = self.tables()
        if self._error:
            return [LayerStatus(LAYER, False, self._error)]
        detail = ""
        if FIREWALLD in tables:
            detail = (
                "table inet firewalld: blocks there are reported, not changed (use firewall-cmd)"
            )
        return [LayerStatus(LAYER, True, detail)]

    def _table_json(self, family: str, table: str) -> Optional[TableJson]:
        argv = ["nft", "-j", "-t", "list", "table", family, quote_name(table)]
        result = run(LAYER, argv, check=False)
        if result.returncode != 0:
            if "No such file or directory" in result.stderr:
                return None  # deleted since the table list was read
            raise LayerError(
                LAYER, f"'nft list table {family} {table}' failed: {first_line(result.stderr)}"
            )
        from unban.layers.nft_ruleset import parse_table_json

        doc = json.loads(result.stdout)
        self._docs[(family, table)] = doc
        return parse_table_json(doc, family, table)

    def _table_text(self, family: str, table: str, *, full: bool = False) -> Optional[TextTable]:
        from unban.layers.nft_listing import parse_table_text

        argv = ["nft", "-a", "-s", "list", "table", family, quote_name(table)]
        if not full:
            argv.insert(1, "-t")
        result = run(LAYER, argv, check=False)
        if result.returncode != 0:
            if "No such file or directory" in result.stderr:
                return None
            raise LayerError(LAYER, f"'{' '.join(argv)}' failed: {first_line(result.stderr)}")
        parsed = parse_table_text(result.stdout)
        return parsed[0] if parsed else None

    def walks(
        self, packet: Packet, lookups: Lookups, *, see_through: bool = False
    ) -> list[ChainWalk]:
        """The SYN's way through every native base chain, from what `find` read (the tables
        are read here when `find` did not run for the packet's family)."""
        if not self._present():
            return []
        if self._docs_version != packet.version:
            self._tables = None
            for family, name in self._tables_seeing(packet.version):
                self._table_json(family, name)
            self._read_devices(packet.version)
        documents = self.path_documents()
        if not documents:
            return []  # no native table that sees the packet: the walker is not even imported
        from unban.path.nft import walk_tables

        return walk_tables(documents, packet, lookups, self._devices, see_through=see_through)

    def path_documents(self) -> list[dict[str, Any]]:
        """The `nft -j -t list table` documents the last `find` read (every native table with
        chains of a family that sees the target), for unban.path.nft.walk_tables."""
        return list(self._docs.values())

    def find(self, target: Network) -> list[Finding]:
        if not self._present():
            return []
        self._tables = None
        tables = self._tables_seeing(target.version)
        # One nft process per table, run side by side: each waits mostly on the kernel's dump.
        found = _side_by_side(lambda t: self._find_in(t[0], t[1], target), tables)
        findings = [finding for findings in found for finding in findings]
        self._read_devices(target.version)
        return findings

    def _tables_seeing(self, version: int) -> list[tuple[str, str]]:
        """The native tables with chains of a family that sees an IPv`version` packet; starts
        a new set of documents for the walk."""
        self._docs = {}
        return [
            (family, name)
            for family, name in self.tables(with_chains=True)
            if family not in ("ip", "ip6") or family == PROTOCOLS[version]
        ]

    def _read_devices(self, version: int) -> None:
        """nft 1.0.6's JSON leaves an ingress chain's device out: `nft list chains` says it."""
        ingress = any(
            "chain" in item and item["chain"].get("hook") == "ingress"
            for doc in self._docs.values()
            for item in doc.get("nftables", [])
        )
        if ingress:
            from unban.path.nft_lookups import ingress_devices

            self._devices = ingress_devices()
        else:
            self._devices = {}
        self._docs_version = version

    def _find_in(self, family: str, name: str, target: Network) -> list[Finding]:
        table = self._table_json(family, name)
        return self._find_in_table(table, target) if table is not None else []

    def _find_in_table(self, table: TableJson, target: Network) -> list[Finding]:
        from unban.layers.nft_ruleset import rule_hits, set_refs

        hits = rule_hits(table, target)
        members: list[tuple[str, SourceMatch, Element]] = []
        for set_name, matches in set_refs(table, target).items():
            for element in self._members(table, table.sets[set_name], target):
                members.append((set_name, matches[0], element))
        if not hits and not members:
            return []
        for chain, handles in table.chains.items():
            self._orders[(table.family, table.name, chain)] = list(handles)
        shown = {m.handle: render_rule(table.rules[m.handle]) for _s, m, _e in members}
        texts: dict[int, tuple[str, str]] = {}
        if hits or None in shown.values():
            # Deleting a rule needs its exact text (for the undo), so ask nft for it.
            text = self._table_text(table.family, table.name)
            texts = text.rule_texts() if text else {}
        findings = []
        for hit in hits:
            if hit.match.handle in texts:  # else the rule went away between the two reads
                findings.append(rule_finding(table, hit, texts[hit.match.handle][1]))
        for set_name, m, element in members:
            rule = shown[m.handle] or texts.get(m.handle, ("", f"... saddr @{set_name} ..."))[1]
            self._extras[(table.family, table.name, set_name, element.value)] = element.extras
            findings.append(set_finding(table, set_name, m, element, rule, target))
        return findings

    def _members(self, table: TableJson, info: SetInfo, target: Network) -> list[Element]:
        """Elements of the set that hold part of the target; for one address, without listing
        the set: a kernel lookup, then `get element` only where it tells more (the range of an
        interval set, an element's timeout and expiry)."""
        from unban.layers.nft_ruleset import Element, elements_from_json, elements_from_text

        base = [table.family, quote_name(table.name), quote_name(info.name)]
        if target.prefixlen != target.max_prefixlen:
            listed = run(LAYER, ["nft", "-j", "list", "set", *base])
            return elements_from_json(json.loads(listed.stdout), target)
        address = str(target.network_address)
        probe = f"{{ {address} }}"
        if not info.interval:
            check = run(LAYER, ["nft", "-c", "delete", "element", *base, probe], check=False)
            if check.returncode != 0:
                self._raise_unless_absent(check.stderr, info.name)
                return []
            if not info.expiring:
                span = span_of(address)
                return [Element(address, "", span)] if span else []
        got = run(LAYER, ["nft", "get", "element", *base, probe], check=False)
        if got.returncode != 0:
            self._raise_unless_absent(got.stderr, info.name)
            return []
        return [e for e in elements_from_text(got.stdout) if e.span.overlaps(target)]

    @staticmethod
    def _raise_unless_absent(stderr: str, set_name: str) -> None:
        if "No such file or directory" not in stderr:
            raise LayerError(LAYER, f"could not look up set {set_name}: {first_line(stderr)}")

    def listings(self, query: ListQuery) -> list[Listing]:
        """One listing per native table: chains with their rules and handles, sets with their
        type, flags and element count (nft lists the elements; only their number is kept)."""
        if not self._present():
            return []
        from unban.layers.nft_listing import format_table, table_data

        self._tables = None
        wanted = [
            (family, name)
            for family, name in self.tables()
            if not (
                query.family and family in ("ip", "ip6") and display_family(family) != query.family
            )
            and not (query.table and name != query.table)
        ]
        tables = _side_by_side(lambda t: self._table_text(t[0], t[1], full=True), wanted)
        listings = []
        for table in tables:
            if table is None or (query.chain and all(c.name != query.chain for c in table.chains)):
                continue
            title = f"nft list table {table.family} {table.name}"
            if (table.family, table.name) == FIREWALLD:
                title += "  (firewalld's table: change it with firewall-cmd)"
            listings.append(
                Listing(
                    layer=LAYER,
                    title=title,
                    lines=tuple(format_table(table, chain=query.chain)),
                    data=table_data(table, chain=query.chain),
                )
            )
        return listings

    # ------------------------------------------------------------ changing

    def plan(self, findings: Sequence[Finding]) -> list[Batch]:
        self._learn(findings)
        return build_batches(findings, self._orders, self._extras, self._texts)

    def _learn(self, findings: Sequence[Finding]) -> None:
        """What the undo needs that `find` did not read, for findings another reader (the
        path evaluator) made: an element's timeout, comment and map value (`get element`),
        the order and texts of a chain whose rule is deleted or swapped (`nft -a -s -t list
        chain`)."""
        for finding in findings:
            if finding.layer != LAYER or not is_changeable(finding) or finding.lift:
                continue
            family = nft_family(finding.family)
            if finding.set_name is not None and finding.element is not None:
                key = (family, finding.table, finding.set_name, finding.element)
                if key not in self._extras:
                    self._extras[key] = self._element_extras(*key)
            elif finding.handle is not None and finding.chain:
                chain_key = (family, finding.table, finding.chain)
                if chain_key not in self._texts:
                    rules = self._chain_rules(*chain_key)
                    self._orders[chain_key] = [h for h, _t in rules]
                    self._texts[chain_key] = [t for _h, t in rules]

    def _element_extras(self, family: str, table: str, set_name: str, element: str) -> str:
        """`timeout 1h expires 59m comment "x"` and a map's ` : VALUE` for the re-add."""
        from unban.path.nft_lookups import parse_get_element

        base = [family, quote_name(table), quote_name(set_name), f"{{ {element} }}"]
        got = run(LAYER, ["nft", "get", "element", *base], check=False)
        if got.returncode != 0:
            return ""
        for shown, value, extras in parse_get_element(got.stdout):
            if shown == element:
                return " ".join(filter(None, [extras, f": {value}" if value else ""]))
        return ""

    def _chain_rules(self, family: str, table: str, chain: str) -> list[tuple[int, str]]:
        """(handle, text) of the chain's rules, in order, as `nft -a -s` prints them."""
        from unban.layers.nft_listing import parse_table_text

        argv = ["nft", "-a", "-s", "-t", "list", "chain", family, quote_name(table)]
        result = run(LAYER, [*argv, quote_name(chain)], check=False)
        tables = parse_table_text(result.stdout) if result.returncode == 0 else []
        return [r for c in (tables[0].chains if tables else []) for r in c.rules]

    def apply(self, batch: Batch) -> None:
        self._check_rules(batch)
        self._transaction(batch, batch.payload, "changes")

    def revert(self, batch: Batch) -> None:
        """The undo lines; one that finds its rule by text (a replaced rule, an admit) gets
        that rule's handle from a fresh listing of the chain."""
        family, table = batch.scope.split(" ", 1)
        listed: dict[str, list[tuple[int, str]]] = {}
        lines = []
        for line in batch.undo_payload:
            chain = chain_of(str(line))
            if chain is not None and chain not in listed:
                listed[chain] = self._chain_rules(family, table, chain)
            resolved = resolve(str(line), listed.get(chain or "", []))
            if resolved is None:
                if chain is not None and "delete rule" in str(line):
                    continue  # the admitted rule is gone already: nothing to take out
                raise LayerError(
                    LAYER,
                    f"cannot undo in table {batch.scope}: no rule in chain {chain} is now "
                    f"{str(line)!r}; nothing in that table was changed",
                )
            lines.append(resolved)
        self._transaction(batch, lines, "undo")

    def _transaction(self, batch: Batch, lines: Sequence[str], what: str) -> None:
        self._tables = None
        result = run(LAYER, ["nft", "-f", "-"], stdin="\n".join(lines) + "\n", check=False)
        if result.returncode != 0:
            error = RuleChangedError if what == "changes" else LayerError
            raise error(
                LAYER,
                f"nft refused the {what} for table {batch.scope} ({_nft_error(result.stderr)}); "
                "nothing in that table was changed"
                + (". It changed meanwhile: run `unban find` again" if what == "changes" else ""),
            )

    def _check_rules(self, batch: Batch) -> None:
        """Each rule to delete is still the rule `find` saw at that handle (a table rebuilt with
        new contents reuses handles)."""
        from unban.layers.nft_listing import parse_table_text

        family, table = batch.scope.split(" ", 1)
        wanted = {
            (s.finding.chain, s.finding.handle): s.finding.rule
            for s in batch.steps
            if s.finding.set_name is None and s.finding.lift != "admit"
        }
        for chain in sorted({c for c, _h in wanted if c}):
            result = run(
                LAYER,
                ["nft", "-a", "-s", "list", "chain", family, quote_name(table), quote_name(chain)],
                check=False,
            )
            tables = parse_table_text(result.stdout) if result.returncode == 0 else []
            now = tables[0].rule_texts() if tables else {}
            for (c, handle), rule in wanted.items():
                if c != chain or handle is None:
                    continue
                current = now.get(handle)
                if current is None or current[1] != rule:
                    where = f"it is now '{current[1]}'" if current else "it is gone"
                    raise RuleChangedError(
                        LAYER,
                        f"rule handle {handle} of {family} {table} {chain} is no longer "
                        f"'{rule}' ({where}); nothing in that table was changed. "
                        "Run `unban find` again",
                    )


def _nft_error(stderr: str) -> str:
    """nft's error and the command it refused, on one line."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    lines = [line for line in lines if set(line) - set("^~ ")]
    if not lines:
        return "no message"
    message = lines[0].split(": ", 1)[1] if lines[0].startswith("/dev/stdin:") else lines[0]
    return f"{message}: {lines[1]}" if len(lines) > 1 else message


def _side_by_side(job: Callable[[T], U], items: Sequence[T]) -> list[U]:
    """`job` over `items`, up to four at once; a host without native tables (most) does not
    import the thread pool at all."""
    if len(items) < 2:
        return [job(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(4, len(items))) as pool:
        return list(pool.map(job, items))
