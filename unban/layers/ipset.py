"""ipsets whose members an iptables rule drops (`-m set --match-set NAME src -j DROP|REJECT`).

Read and changed with the ipset binary. Measured on a 100,000-element set in a netns (one run,
best of five): `ipset test` 0.001 s, `ipset list -t` (every set's header) 0.003 s, `ipset save
SET` 0.06 s; pyroute2's netlink IPSet: import 0.08 s, test 0.0002 s, and decoding the same set
2.3 s. A lookup runs one `ipset test` per set used by a rule, so the binary stays ahead until a
host has some 80 such sets, and it lists a set 35x faster. Changes are one `ipset restore`.

Only a set that some rule (either iptables backend, IPv4 or IPv6) drops by source counts. An
address target is looked up with `ipset test` (the kernel's hash lookup); the set is listed only
on a hit, and only where the element or its extensions (timeout, comment, counters) must be read
from the listing. A CIDR target lists each candidate set once.
"""

from __future__ import annotations

import itertools
import re
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from ipaddress import ip_network
from typing import Optional

from unban.address import Network, family_of
from unban.errors import LayerError
from unban.layers import Listing, ListQuery, owner_of
from unban.layers.xtables import XtablesLayer
from unban.layers.xtables_plan import run_script
from unban.layers.xtables_rules import (
    RuleRef,
    SourceMatcher,
    by_name,
    distinct_elements,
    dropped_by,
    rules_shown,
    set_rules,
)
from unban.model import Batch, Finding, LayerStatus, Step, as_json
from unban.system import first_line, run, which

LAYER = "ipset"
FAMILIES = {"inet": "ipv4", "inet6": "ipv6"}
# Types whose elements are one address or network, so `ipset test SET ADDR` answers "is ADDR
# covered by some element" without a listing.
ADDRESS_TYPES = ("hash:ip", "hash:net", "bitmap:ip")
# Per-element data `ipset save` prints after the element; an undo must put it back.
EXTENSIONS = ("timeout", "counters", "comment", "skbinfo")


# ---------------------------------------------------------------- parsing (pure)


@dataclass(frozen=True)
class SetHeader:
    """One set as `ipset list -t` describes it."""

    name: str
    type: str
    header: str  # the text after "Header: "
    entries: int

    @property
    def family(self) -> Optional[str]:
        """ipv4/ipv6; bitmap:ip sets are IPv4; None for sets of sets, ports or MACs."""
        value = self._option("family")
        if value is not None:
            return FAMILIES.get(value)
        return "ipv4" if self.type == "bitmap:ip" else None

    @property
    def netmask(self) -> Optional[int]:
        """hash:ip/bitmap:ip with `netmask N` store networks of that prefix length."""
        value = self._option("netmask")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def timeout(self) -> Optional[int]:
        """The set's default timeout; None when its elements have no timeouts."""
        value = self._option("timeout")
        return int(value) if value is not None and value.isdigit() else None

    @property
    def has_extensions(self) -> bool:
        return any(token in EXTENSIONS for token in self.header.split())

    def _option(self, name: str) -> Optional[str]:
        tokens = self.header.split()
        for i, token in enumerate(tokens[:-1]):
            if token == name:
                return tokens[i + 1]
        return None


def parse_headers(text: str) -> dict[str, SetHeader]:
    """Parse `ipset list -t` (also accepts full `ipset list` output: members are skipped)."""
    headers: dict[str, SetHeader] = {}
    fields: dict[str, str] = {}

    def close() -> None:
        if "Name" in fields:
            name = fields["Name"]
            entries = fields.get("Number of entries", "0")
            headers[name] = SetHeader(
                name=name,
                type=fields.get("Type", ""),
                header=fields.get("Header", ""),
                entries=int(entries) if entries.isdigit() else 0,
            )
        fields.clear()

    in_members = False
    for line in text.splitlines():
        if line.startswith("Name: "):
            close()
            in_members = False
        if in_members or not line.strip():
            continue
        key, sep, value = line.partition(": ")
        if not sep and line.endswith(":"):
            key, value = line[:-1], ""
        if key == "Members":
            in_members = True
        fields[key] = value.strip()
    close()
    return headers


def parse_set_members(text: str) -> list[str]:
    """The member set names of a list:set, from `ipset list NAME`."""
    _, sep, members = text.partition("\nMembers:\n")
    return [line.strip() for line in members.splitlines() if line.strip()] if sep else []


@dataclass(frozen=True)
class Member:
    """An element of a set that overlaps the target."""

    set_name: str
    element: str  # as ipset prints it: 203.0.113.4, 198.18.0.0/22, 203.0.113.4,tcp:22
    network: str
    targeted: bool
    add_line: str  # `add SET ELEMENT ...` as `ipset save` printed it, extensions included


def members_overlapping(
    save_text: str, name: str, target: Network, netmask: Optional[int] = None
) -> Iterator[Member]:
    """Elements of set `name` in `ipset save` output whose address part overlaps `target`.

    A set listing can hold 100k lines: each line costs a prefix test, and only overlapping
    elements are parsed further. `nomatch` elements are exceptions, not blocks: skipped.
    """
    matcher = SourceMatcher(target)
    prefix = f"add {name} "
    for line in save_text.splitlines():
        if not line.startswith(prefix):
            continue
        element, _, options = line[len(prefix) :].partition(" ")
        address = element.split(",", 1)[0]
        if netmask is not None and "/" not in address:
            address = f"{address}/{netmask}"
        matched = matcher.match(address)
        if matched is None or "nomatch" in options.split():
            continue
        network, targeted = matched
        yield Member(name, element, str(network), targeted, line)


def add_line_of(save_text: str, name: str, element: str) -> Optional[str]:
    """The `add NAME ELEMENT ...` line of one known element, found without splitting the listing."""
    text = f"\n{save_text}\n"
    head = f"\nadd {name} {element}"
    for end in (" ", "\n"):
        start = text.find(head + end)
        if start >= 0:
            return text[start + 1 : text.index("\n", start + 1)]
    return None


def build_batch(findings: Sequence[Finding], add_lines: dict[tuple[str, str], str]) -> Batch:
    """One `ipset restore` batch for every element. Pure.

    `add_lines` holds the `ipset save` line of each element as read by `find`, so the undo puts
    back its remaining timeout, comment and counters; without it the undo adds the element
    plainly (a set with a default timeout then gives it that timeout).
    """
    steps = []
    deletes = []
    adds = []
    for finding, set_name, element in distinct_elements(findings):
        add = add_lines.get((set_name, element), f"add {set_name} {element}")
        deletes.append(f"del {set_name} {element}")
        adds.append(add)
        steps.append(
            Step(
                finding=finding,
                command=shlex.join(["ipset", "del", set_name, element]),
                undo_command=shlex.join(["ipset", *shlex.split(add)]),
            )
        )
    return Batch(
        layer=LAYER,
        scope="sets",
        steps=tuple(steps),
        payload=tuple(deletes),
        undo_payload=tuple(adds),
    )


def failed_line(error: str) -> Optional[int]:
    """N from ipset's `Error in line N: ...`; lines after N were not run."""
    match = re.search(r"Error in line (\d+):", error)
    return int(match.group(1)) if match else None


def listing_line(header: SetHeader, rules: Sequence[RuleRef]) -> str:
    timeout = f"  timeout {header.timeout}" if header.timeout is not None else ""
    family = header.family or "-"
    text = f"{header.name}  {header.type}  {family}  {header.entries} entries{timeout}"
    return f"{text}  {dropped_by(rules)}" if rules else f"{text}  (no rule drops its members)"


def _network_order(member: Member) -> tuple[int, int]:
    """Hash sets list in no fixed order: report by address, then prefix length."""
    network = ip_network(member.network)
    return int(network.network_address), network.prefixlen


# ---------------------------------------------------------------- adapter


class IpsetLayer:
    """ipsets used by dropping iptables rules, through the ipset binary."""

    name = LAYER

    def __init__(self, xtables: XtablesLayer) -> None:
        self.xtables = xtables
        # engine reads this layer once the iptables layer has read the rules it scans
        self.reads_after = xtables
        # The `ipset save` line of each element `find` reported, for the plan's undo.
        self._add_lines: dict[tuple[str, str], str] = {}

    def status(self) -> list[LayerStatus]:
        present = which("ipset") is not None
        return [LayerStatus(LAYER, present, "" if present else "ipset not installed")]

    def _headers(self) -> dict[str, SetHeader]:
        return parse_headers(run(LAYER, ["ipset", "list", "-t"]).stdout)

    def _dropping_rules(self) -> dict[str, list[RuleRef]]:
        return by_name(ref for ruleset in self.xtables.rulesets() for ref in set_rules(ruleset))

    def _used_sets(
        self, headers: dict[str, SetHeader], rules: dict[str, list[RuleRef]]
    ) -> dict[str, list[RuleRef]]:
        """Every set whose members a rule drops, the members of a list:set included."""
        used: dict[str, list[RuleRef]] = {}
        for name, refs in rules.items():
            header = headers.get(name)
            if header is None:
                continue
            names = [name]
            if header.type == "list:set":
                names = parse_set_members(run(LAYER, ["ipset", "list", name]).stdout)
            for member in names:
                if member in headers:
                    used.setdefault(member, []).extend(refs)
        return used

    def listings(self, query: ListQuery) -> list[Listing]:
        if which("ipset") is None:
            return []
        headers = self._headers()
        if not headers:
            return []
        used = self._used_sets(headers, self._dropping_rules())
        shown = []
        for header in headers.values():
            rules = rules_shown(query, used.get(header.name, []))
            if (query.table or query.chain) and not rules:
                continue
            if query.family and header.family != query.family:
                continue
            shown.append((header, rules))
        if not shown:
            return []
        return [
            Listing(
                layer=LAYER,
                title="ipset sets",
                lines=tuple(listing_line(header, rules) for header, rules in shown),
                data={
                    "sets": [
                        {
                            "name": header.name,
                            "type": header.type,
                            "family": header.family,
                            "entries": header.entries,
                            "timeout": header.timeout,
                            "rules": [as_json(r) for r in rules],
                        }
                        for header, rules in shown
                    ]
                },
            )
        ]

    def find(self, target: Network) -> list[Finding]:
        if which("ipset") is None:
            return []
        rules = self._dropping_rules()
        if not rules:
            return []
        headers = self._headers()
        family = family_of(target)
        findings = []
        for name, refs in self._used_sets(headers, rules).items():
            header = headers[name]
            refs = [r for r in refs if r.family == family]
            if header.family != family or not refs:
                continue
            for member in self._members(header, target):
                self._add_lines[(member.set_name, member.element)] = member.add_line
                findings.append(self._finding(header, refs[0], member))
        return findings

    def _members(self, header: SetHeader, target: Network) -> list[Member]:
        name = header.name
        if target.prefixlen == target.max_prefixlen and header.type in ADDRESS_TYPES:
            address = str(target.network_address)
            if not self._test(name, address):
                return []
            if header.type == "hash:ip" and header.netmask is None:
                # The element is the address itself; only its extensions need the listing.
                line: Optional[str] = f"add {name} {address}"
                if header.has_extensions:
                    line = add_line_of(self._save(name), name, address)
                if line is None:  # it expired between the test and the listing
                    return []
                return [Member(name, address, str(target), True, line)]
        found = members_overlapping(self._save(name), name, target, header.netmask)
        return sorted(found, key=_network_order)

    def _test(self, name: str, element: str) -> bool:
        result = run(LAYER, ["ipset", "test", name, element], check=False)
        if result.returncode == 0:
            return True
        if "is NOT in set" in result.stderr:
            return False
        raise LayerError(
            LAYER, f"'ipset test {name} {element}' failed: {first_line(result.stderr)}"
        )

    def _save(self, name: str) -> str:
        return run(LAYER, ["ipset", "save", name]).stdout

    @staticmethod
    def _finding(header: SetHeader, rule: RuleRef, member: Member) -> Finding:
        return Finding(
            layer=LAYER,
            backend="ipset",
            family=header.family or "",
            table=rule.table,
            chain=rule.chain,
            line=rule.line,
            handle=None,
            rule=rule.rule,
            verdict=rule.verdict,
            owner=owner_of(header.name),
            network=member.network,
            targeted=member.targeted,
            set_name=header.name,
            element=member.element,
        )

    def plan(self, findings: Sequence[Finding]) -> list[Batch]:
        chosen = [f for f in findings if f.layer == LAYER]
        return [build_batch(chosen, self._add_lines)] if chosen else []

    def apply(self, batch: Batch) -> None:
        """Delete every element in one `ipset restore -exist`.

        `-exist` makes a delete of an element that is already gone (expired, or unbanned by
        fail2ban meanwhile) a success, so the batch can be replayed. ipset restore is not
        transactional: it stops at the failing line N, and lines before N may have been applied.
        So each element of those lines is tested, and every one that is gone is put back before
        this raises: the batch changes all or nothing.
        """
        error = self._restore(batch.payload)
        if error is None:
            return
        done = zip(batch.payload, batch.undo_payload)
        stopped = failed_line(error)
        missing = []
        for delete, add in itertools.islice(done, stopped - 1 if stopped else None):
            _del, name, element = delete.split(" ", 2)
            try:
                if not self._test(name, element):
                    missing.append(add)
            except LayerError:
                continue  # the set itself is gone: there is nothing to put the element back in
        if missing and self._restore(missing) is not None:
            undo = "; ".join(f"ipset {line}" for line in missing)
            raise LayerError(
                LAYER,
                f"ipset restore failed ({error}) after deleting some elements, and putting "
                f"them back failed too; run: {undo}",
            )
        raise LayerError(LAYER, f"ipset restore failed ({error}); no set was changed")

    def revert(self, batch: Batch) -> None:
        """Add every element back (`-exist`: one that is back already gets its timeout reset)."""
        result = self._restore(batch.undo_payload)
        if result is not None:
            raise LayerError(LAYER, f"putting the elements back failed: {result}")

    def _restore(self, lines: Sequence[str]) -> Optional[str]:
        """Run `ipset restore -exist`; None on success, else its first error line."""
        return run_script(LAYER, ["ipset", "restore", "-exist"], lines)
