"""The SYN's way through native nftables: every base chain of a table of a family that sees it
(ip for IPv4, ip6 for IPv6, inet, netdev), at the hooks ingress, prerouting and input, of type
filter or nat. Pure code over `nft -j -t list table` documents; set and map members come from
`Lookups.nft_element` (a kernel lookup per key: no big set is ever listed).

It follows accept, drop, reject, return, continue, jump, goto, verdict maps and the chain
policy. A match it cannot evaluate branches: the way that assumes it matched goes on first, so
outcomes come out in the order the SYN meets them, each with its Assumptions. A statement it
does not know ends that way "unknown"; nothing is ever an accept by omission.

An ingress chain is on the path only for the interface the client's packets arrive on. nft
1.0.6 leaves a chain's device out of its JSON (newer nft writes `"dev"`); `devices` gives it
(unban.path.nft_lookups.ingress_devices reads it from `nft list chains`). Device or interface
unknown: the chain may or may not see the SYN, and both ways are outcomes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from unban.path.model import (
    ACCEPT,
    DROP,
    HOOKS,
    REJECT,
    UNKNOWN,
    Assumption,
    ChainWalk,
    Hop,
    Lookups,
    Match,
    Outcome,
    Packet,
    SourceKey,
)
from unban.path.nft_match import Action, Context, evaluate_rule
from unban.path.nft_syntax import render_rule, render_statement

BACKEND = "nftables"
WALKED_TYPES = ("filter", "nat")
MAX_WAYS = 256
MAX_DEPTH = 16  # the kernel's jump stack (NFT_JUMP_STACK_SIZE): no ruleset nests deeper
MAX_STEPS = 100_000

DeviceMap = Mapping[tuple[str, str, str], Sequence[str]]  # (family, table, chain) -> devices


@dataclass
class NftTable:
    """One table's chains (in order), their rules, from one `nft -j -t list table`."""

    family: str
    name: str
    chains: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    rules: dict[str, list[Mapping[str, Any]]] = field(default_factory=dict)


def read_table(doc: Mapping[str, Any]) -> Optional[NftTable]:
    table: Optional[NftTable] = None
    for item in doc.get("nftables", []):
        if "table" in item and table is None:
            table = NftTable(str(item["table"]["family"]), str(item["table"]["name"]))
        elif "chain" in item and table is not None:
            chain = item["chain"]
            table.chains[chain["name"]] = chain
            table.rules.setdefault(chain["name"], [])
        elif "rule" in item and table is not None:
            table.rules.setdefault(item["rule"]["chain"], []).append(item["rule"])
    return table


def sees(family: str, packet: Packet) -> bool:
    """Does a table of this nft family see the client's packet at all?"""
    if family == "ip":
        return packet.version == 4
    if family == "ip6":
        return packet.version == 6
    return family in ("inet", "netdev")


def walk_tables(
    docs: Sequence[Mapping[str, Any]],
    packet: Packet,
    lookups: Lookups,
    devices: Optional[DeviceMap] = None,
    *,
    see_through: bool = False,
) -> list[ChainWalk]:
    """One ChainWalk per base chain the SYN may pass, in hook and priority order.

    `see_through`: a drop or reject is recorded as an outcome and the walk goes on past it, as
    if it were lifted: what the SYN would meet once the refusals before it are gone. The
    verdict of such walks means nothing (as unban.path.iptables.walk_ruleset's)."""
    walks: list[ChainWalk] = []
    for doc in docs:
        table = read_table(doc)
        if table is None or not sees(table.family, packet):
            continue
        for name, chain in table.chains.items():
            hook = chain.get("hook")
            if hook not in HOOKS or chain.get("type") not in WALKED_TYPES:
                continue
            if table.family == "netdev" and hook != "ingress":
                continue
            walk = _walk_base_chain(table, name, chain, packet, lookups, devices or {}, see_through)
            if walk is not None:
                walks.append(walk)
    walks.sort(key=lambda w: w.order())
    return walks


def _devices(table: NftTable, name: str, chain: Mapping[str, Any], devices: DeviceMap) -> list[str]:
    dev = chain.get("dev")
    if isinstance(dev, str):
        return [dev]
    if isinstance(dev, list):
        return [str(d) for d in dev]
    return list(devices.get((table.family, table.name, name), ()))


def _walk_base_chain(
    table: NftTable,
    name: str,
    chain: Mapping[str, Any],
    packet: Packet,
    lookups: Lookups,
    devices: DeviceMap,
    see_through: bool,
) -> Optional[ChainWalk]:
    hook = str(chain["hook"])
    priority = int(chain.get("prio", 0))
    interface = packet.in_interface
    device: Optional[str] = None
    entry: Optional[str] = None  # why it is not known whether this chain sees the SYN
    if hook == "ingress":
        on = _devices(table, name, chain, devices)
        device = ",".join(on) if on else None
        if on and interface is not None:
            if interface not in on:
                return None  # another interface's chain
        elif on:
            entry = f"the chain is on {device}; the interface the client's packets arrive on is not known"
            interface = on[0] if len(on) == 1 else None
        else:
            entry = "the chain's device is not known"
    ctx = Context(table.family, table.name, hook, priority, packet, lookups, interface)
    outcomes = ChainWalker(table, name, chain, ctx, see_through).walk()
    if entry is not None:
        hop = Hop(BACKEND, table.family, table.name, name, _hook_text(chain, device))
        outcomes = [
            Outcome(
                o.verdict, o.hop, o.detail, o.path, (Assumption(hop, True, entry), *o.assumptions)
            )
            for o in outcomes
        ] + [Outcome(ACCEPT, hop, "not on this interface", (), (Assumption(hop, False, entry),))]
    return ChainWalk(
        BACKEND, table.family, table.name, name, hook, priority, tuple(outcomes), device
    )


def _hook_text(chain: Mapping[str, Any], device: Optional[str]) -> str:
    on = f' device "{device}"' if device else ""
    return f"type {chain.get('type')} hook {chain.get('hook')}{on} priority {chain.get('prio')}"


def rule_text(rule: Mapping[str, Any]) -> str:
    """The rule as `nft -s` prints it; a statement this printer does not know as its JSON."""
    text = render_rule(rule)
    if text is not None:
        return text
    family = str(rule.get("family", ""))
    return " ".join(
        render_statement(e, family) or json.dumps(e, separators=(",", ":"))
        for e in rule.get("expr", [])
    )


# A way through the chains: chain, rule index, return stack, rules matched, assumptions made.
_State = tuple[str, int, tuple[tuple[str, int], ...], tuple[Hop, ...], tuple[Assumption, ...]]


class ChainWalker:
    """Every way the SYN can leave one base chain."""

    def __init__(
        self,
        table: NftTable,
        start: str,
        chain: Mapping[str, Any],
        ctx: Context,
        see_through: bool = False,
    ) -> None:
        self.table = table
        self.see_through = see_through
        self.start = start
        self.ctx = ctx
        policy = str(chain.get("policy", "accept"))
        self.policy_hop = Hop(BACKEND, table.family, table.name, start, f"policy {policy}")
        self.policy = ACCEPT if policy == "accept" else DROP

    def hop(self, chain: str, rule: Mapping[str, Any], keys: tuple[SourceKey, ...]) -> Hop:
        return Hop(
            BACKEND,
            self.table.family,
            self.table.name,
            chain,
            rule_text(rule),
            handle=int(rule["handle"]),
            keys=keys,
        )

    def walk(self) -> list[Outcome]:
        outcomes: list[Outcome] = []
        pending: list[_State] = [(self.start, 0, (), (), ())]
        steps = 0
        while pending:
            chain, index, stack, path, assumed = pending.pop(0)
            while True:
                steps += 1
                if len(outcomes) >= MAX_WAYS or steps > MAX_STEPS:
                    why = "too many ways through the chains to follow"
                    outcomes.append(Outcome(UNKNOWN, self.policy_hop, why, path, assumed))
                    pending.clear()
                    break
                rules = self.table.rules.get(chain, [])
                here: Optional[Hop] = None
                if index >= len(rules):
                    action = Action("return")  # the end of a chain returns to its caller
                else:
                    result = evaluate_rule(rules[index], self.ctx)
                    if result.match is Match.NO:
                        index += 1
                        continue
                    here = self.hop(chain, rules[index], result.keys)
                    action = result.action
                    if action.kind == "next":  # matched, no verdict: the same either way
                        if result.match is Match.YES:
                            path = (*path, here)
                        index += 1
                        continue
                    if result.match is Match.MAYBE:
                        skipped = (*assumed, Assumption(here, False, result.why))
                        pending.append((chain, index + 1, stack, path, skipped))
                        assumed = (*assumed, Assumption(here, True, result.why))
                    path = (*path, here)
                kind = action.kind
                if kind == "continue":
                    index += 1
                    continue
                if kind == "return":
                    if not stack:
                        detail = f"policy {self.policy}"
                        outcomes.append(
                            Outcome(self.policy, self.policy_hop, detail, path, assumed)
                        )
                        break
                    chain, index = stack[-1]
                    stack = stack[:-1]
                    continue
                assert here is not None
                if kind in (DROP, REJECT) and self.see_through:
                    outcomes.append(Outcome(kind, here, action.detail, path, assumed))
                    index += 1
                    continue
                if kind in (ACCEPT, DROP, REJECT, UNKNOWN):
                    outcomes.append(Outcome(kind, here, action.detail, path, assumed))
                    break
                if action.target not in self.table.rules:
                    detail = f"{kind} to a missing chain {action.target}"
                    outcomes.append(Outcome(UNKNOWN, here, detail, path, assumed))
                    break
                if kind == "jump" and len(stack) >= MAX_DEPTH:
                    outcomes.append(Outcome(UNKNOWN, here, "chains nest too deep", path, assumed))
                    break
                if kind == "jump":
                    stack = (*stack, (chain, index + 1))
                chain, index = action.target, 0
        return outcomes
