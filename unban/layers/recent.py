"""xt_recent lists (`-m recent --name NAME --rcheck|--update ... -j DROP`), in /proc/net/xt_recent.

Each network namespace has its own lists; one file per list, one line per source:
`src=203.0.113.4 ttl: 0 last_seen: 4296361319 oldest_pkt: 1 4296361319` (IPv6 sources are
printed in full, `src=2001:0db8:0000:...`). Only a list that a blocking rule checks counts, and
only its entries of that rule's family. Writing `-ADDR` to the file removes an entry, `+ADDR`
adds one. Putting an entry back cannot restore its hit times: it comes back with one hit at the
time of the undo, so a rule with `--hitcount N` does not block it again until it has N hits.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from unban.address import Network, family_of, is_targeted, overlaps
from unban.errors import LayerError
from unban.layers import Listing, ListQuery, owner_of
from unban.layers.xtables import XtablesLayer
from unban.layers.xtables_rules import (
    RuleRef,
    by_name,
    distinct_elements,
    dropped_by,
    recent_rules,
    rules_shown,
)
from unban.model import Batch, Finding, LayerStatus, Step, as_json
from unban.path.iptables import option_value, split_spec

LAYER = "xt_recent"
PROC_DIR = "/proc/net/xt_recent"


# ---------------------------------------------------------------- parsing (pure)


@dataclass(frozen=True)
class Entry:
    """One source in a list."""

    address: str  # compressed, as written back: 203.0.113.4, 2001:db8::4
    family: str


def parse_list(text: str) -> list[Entry]:
    """Parse a /proc/net/xt_recent/NAME file."""
    entries = []
    for line in text.splitlines():
        tokens = line.split()
        if not tokens or not tokens[0].startswith("src="):
            continue
        try:
            address = ipaddress.ip_address(tokens[0][4:])
        except ValueError:
            continue
        entries.append(Entry(str(address), "ipv4" if address.version == 4 else "ipv6"))
    return entries


def mask_prefix(rule: RuleRef) -> int:
    """The prefix length of the rule's `--mask` (a list keeps sources masked by it)."""
    bits = 32 if rule.family == "ipv4" else 128
    mask = option_value(split_spec(rule.rule), "--mask")
    if mask is None:
        return bits
    try:
        value = int(ipaddress.ip_address(mask))
    except ValueError:
        return bits
    return bin(value).count("1")


def entry_network(entry: Entry, rule: RuleRef) -> Network:
    return ipaddress.ip_network(f"{entry.address}/{mask_prefix(rule)}", strict=False)


def command(path: Path, line: str) -> str:
    """The shell command a person types: `echo -203.0.113.4 > /proc/net/xt_recent/NAME`."""
    return f"echo {shlex.quote(line)} > {shlex.quote(str(path))}"


def build_batch(findings: Sequence[Finding], proc_dir: Path) -> Batch:
    """One batch for every entry. Payload lines are `NAME -ADDR` (undo `NAME +ADDR`). Pure."""
    steps = []
    removes = []
    adds = []
    for finding, name, address in distinct_elements(findings):
        removes.append(f"{name} -{address}")
        adds.append(f"{name} +{address}")
        steps.append(
            Step(
                finding=finding,
                command=command(proc_dir / name, f"-{address}"),
                undo_command=command(proc_dir / name, f"+{address}"),
            )
        )
    return Batch(
        layer=LAYER,
        scope="lists",
        steps=tuple(steps),
        payload=tuple(removes),
        undo_payload=tuple(adds),
    )


# ---------------------------------------------------------------- adapter


class RecentLayer:
    """xt_recent lists checked by dropping iptables rules, read and written through procfs."""

    name = LAYER

    def __init__(self, xtables: XtablesLayer, proc_dir: Union[str, os.PathLike[str]] = PROC_DIR):
        self.xtables = xtables
        # engine reads this layer once the iptables layer has read the rules it scans
        self.reads_after = xtables
        self.proc_dir = Path(proc_dir)

    def status(self) -> list[LayerStatus]:
        present = self.proc_dir.is_dir()
        detail = "" if present else f"no {self.proc_dir} (no rule uses xt_recent)"
        return [LayerStatus(LAYER, present, detail)]

    def _dropping_rules(self) -> dict[str, list[RuleRef]]:
        return by_name(ref for ruleset in self.xtables.rulesets() for ref in recent_rules(ruleset))

    def _entries(self, name: str) -> list[Entry]:
        try:
            return parse_list((self.proc_dir / name).read_text())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise LayerError(LAYER, f"cannot read {self.proc_dir / name}: {exc.strerror}") from None

    def listings(self, query: ListQuery) -> list[Listing]:
        if not self.proc_dir.is_dir():
            return []
        rules = self._dropping_rules()
        lists = []
        for path in sorted(self.proc_dir.iterdir()):
            refs = rules_shown(query, rules.get(path.name, []))
            if (query.table or query.chain) and not refs:
                continue
            entries = [
                e for e in self._entries(path.name) if not query.family or e.family == query.family
            ]
            lists.append((path.name, entries, refs))
        if not lists:
            return []
        return [
            Listing(
                layer=LAYER,
                title=f"xt_recent lists ({self.proc_dir})",
                lines=tuple(_listing_line(name, entries, refs) for name, entries, refs in lists),
                data={
                    "lists": [
                        {
                            "name": name,
                            "entries": len(entries),
                            "rules": [as_json(r) for r in refs],
                        }
                        for name, entries, refs in lists
                    ]
                },
            )
        ]

    def find(self, target: Network) -> list[Finding]:
        if not self.proc_dir.is_dir():
            return []
        family = family_of(target)
        findings = []
        for name, refs in self._dropping_rules().items():
            refs = [r for r in refs if r.family == family]
            if not refs:
                continue
            rule = refs[0]
            for entry in self._entries(name):
                if entry.family != family:
                    continue
                network = entry_network(entry, rule)
                if not overlaps(network, target):
                    continue
                findings.append(
                    Finding(
                        layer=LAYER,
                        backend="proc",
                        family=family,
                        table=rule.table,
                        chain=rule.chain,
                        line=rule.line,
                        handle=None,
                        rule=rule.rule,
                        verdict=rule.verdict,
                        owner=owner_of(name),
                        network=str(network),
                        targeted=is_targeted(network, target),
                        set_name=name,
                        element=entry.address,
                    )
                )
        return findings

    def plan(self, findings: Sequence[Finding]) -> list[Batch]:
        chosen = [f for f in findings if f.layer == LAYER]
        return [build_batch(chosen, self.proc_dir)] if chosen else []

    def apply(self, batch: Batch) -> None:
        """Remove the entries one write each; on a failure, put back those already removed."""
        done: list[str] = []
        for line, undo in zip(batch.payload, batch.undo_payload):
            try:
                self._write(line)
            except LayerError as exc:
                try:
                    for earlier in reversed(done):
                        self._write(earlier)
                except LayerError as again:
                    raise LayerError(
                        LAYER, f"{exc}; putting back the entries already removed failed: {again}"
                    ) from None
                raise LayerError(LAYER, f"{exc}; no list was changed") from None
            done.append(undo)

    def revert(self, batch: Batch) -> None:
        """Add the entries back, each with one hit at the current time."""
        for line in batch.undo_payload:
            self._write(line)

    def _write(self, line: str) -> None:
        name, _, command_text = line.rpartition(" ")
        path = self.proc_dir / name
        try:
            fd = os.open(path, os.O_WRONLY)
        except OSError as exc:
            raise LayerError(LAYER, f"cannot open {path}: {exc.strerror}") from None
        try:
            os.write(fd, f"{command_text}\n".encode())
        except OSError as exc:
            raise LayerError(
                LAYER, f"writing '{command_text}' to {path} failed: {exc.strerror}"
            ) from None
        finally:
            os.close(fd)


def _listing_line(name: str, entries: Sequence[Entry], rules: Sequence[RuleRef]) -> str:
    text = f"{name}  {len(entries)} entries"
    return f"{text}  {dropped_by(rules)}" if rules else f"{text}  (no rule drops its sources)"
