"""Plans for iptables (pure): the batches that delete rules by their identity or admit an
address at the top of a chain, where a rule is now, and the restore scripts that undo them."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from unban.errors import RuleChangedError
from unban.layers.xtables_rules import LAYER, display_tool
from unban.model import Batch, Finding, Step
from unban.path.iptables import (
    Chain,
    Ruleset,
    Table,
    split_spec,
)
from unban.system import first_line, run


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


def targets_of(payload: Sequence[object]) -> list[RuleTarget]:
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


def without_rule(ruleset: Ruleset, table: str, chain: str, spec: str) -> Ruleset:
    """`ruleset` once the rule of `chain` equal to `spec` is deleted: what `iptables -D CHAIN
    SPEC` leaves when the ruleset holds that spec once (`only_copy`). Pure: a new ruleset,
    sharing the chains it does not change; `ruleset` is left as it was."""
    tables = dict(ruleset.tables)
    chains = dict(tables[table].chains)
    old = chains[chain]
    rules = list(old.rules)
    rules.remove(spec)
    chains[chain] = Chain(old.name, old.policy, rules)
    tables[table] = Table(table, chains)
    return Ruleset(ruleset.backend, ruleset.family, tables)


def without_rules_at(ruleset: Ruleset, table: str, spots: Sequence[tuple[str, int]]) -> Ruleset:
    """`ruleset` once the rules at `spots` ((chain, 0-based index), as `locate` gives them)
    are deleted. Pure: a new ruleset, sharing the chains it does not change."""
    tables = dict(ruleset.tables)
    chains = dict(tables[table].chains)
    for name in {chain for chain, _ in spots}:
        gone = {index for chain, index in spots if chain == name}
        old = chains[name]
        rules = [rule for index, rule in enumerate(old.rules) if index not in gone]
        chains[name] = Chain(old.name, old.policy, rules)
    tables[table] = Table(table, chains)
    return Ruleset(ruleset.backend, ruleset.family, tables)


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
