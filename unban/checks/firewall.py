"""doctor's packet-filter check: the path evaluator's verdict for the client's SYN (every
iptables backend and native nft table at once), with its evidence, what the client sees and
the commands that lift it (the same ones `unban me` would run). Pure."""

from __future__ import annotations

from collections.abc import Sequence

from unban.checks import SEES_REFUSED, SEES_TIMEOUT, SEES_UNREACHABLE, Check
from unban.path.evaluate import Reach, Stop, describe
from unban.path.model import BLOCKS, CLEAR, DROP, MAY_BLOCK, NOT_PRESENT, REJECT, Outcome

KEY = "firewall"
TITLE = "packet filters (iptables-legacy, iptables-nft, nftables)"


def client_sees(outcome: Outcome) -> str:
    """What ssh prints for this refusal (measured: ../shared/field-notes.md)."""
    if outcome.verdict == DROP:
        return SEES_TIMEOUT
    if outcome.verdict != REJECT:
        return ""
    detail = outcome.detail
    for marker in ("--reject-with", "reject with"):
        if marker in detail:
            words = detail.split(marker, 1)[1].split()
            kind = words[-1] if words and words[0] in ("icmp", "icmpv6", "icmpx") else words[0]
            break
    else:
        kind = "port-unreachable"
    if kind in ("tcp-reset", "reset", "icmp-port-unreachable", "icmp6-port-unreachable") or (
        "port-unreachable" in kind
    ):
        return SEES_REFUSED
    return SEES_UNREACHABLE


def firewall_check(reaches: Sequence[Reach], address: str, fixes: Sequence[str]) -> Check:
    """One check for every way to sshd: the worst verdict among them, the stops in the order
    the SYN meets them. `fixes` are the commands the plan for the path's findings would run."""
    judged = [r for r in reaches if r.walks]
    if not judged:
        return Check(KEY, TITLE, NOT_PRESENT, "no iptables or nft rules are loaded")
    worst = min(judged, key=lambda r: {BLOCKS: 0, MAY_BLOCK: 1}.get(r.verdict, 2))
    packet = worst.packet
    to = (
        f"{packet.destination} port {packet.dport}"
        if packet.destination
        else f"port {packet.dport}"
    )
    syn = f"a TCP SYN from {address} to {to}"
    evidence: list[str] = []
    for r in judged:
        evidence.extend(_stop_lines(r.stops()))
    data = {"ways": [_way_data(r) for r in judged]}
    if worst.verdict == CLEAR:
        path = "; ".join(
            f"{w.table} {w.chain}: {w.outcomes[0].detail}" for w in worst.walks if w.outcomes
        )
        return Check(KEY, TITLE, CLEAR, f"{syn} is accepted ({path})", tuple(evidence), data=data)
    first = worst.first_stop()
    assert first is not None
    hop = first.outcome.hop
    where = f"{hop.where()}: {hop.rule} ({first.outcome.detail})"
    if worst.verdict == BLOCKS:
        summary = f"{syn} is refused at {where}"
    else:
        summary = f"{syn} may be refused at {where}"
    sees = next((client_sees(s.outcome) for s in worst.stops() if s.outcome.blocking), "")
    all_fixes = tuple(dict.fromkeys([*fixes, f"unban me {address}"]))
    return Check(KEY, TITLE, worst.verdict, summary, tuple(evidence), all_fixes, sees, data)


def _stop_lines(stops: Sequence[Stop]) -> list[str]:
    lines = []
    for stop in stops:
        lines.append(describe(stop.outcome))
        via = [h for h in stop.outcome.path if h is not stop.outcome.hop]
        if via:
            lines.append("  reached through " + " -> ".join(f"{h.where()} ({h.rule})" for h in via))
    return lines


def _way_data(r: Reach) -> dict[str, object]:
    return {
        "destination": str(r.packet.destination) if r.packet.destination else None,
        "port": r.packet.dport,
        "interface": r.packet.in_interface,
        "verdict": r.verdict,
        "stops": [_stop_data(s) for s in r.stops()],
    }


def _stop_data(stop: Stop) -> dict[str, object]:
    outcome = stop.outcome
    return {
        "backend": stop.walk.backend,
        "family": stop.walk.family,
        "table": outcome.hop.table,
        "chain": outcome.hop.chain,
        "line": outcome.hop.line,
        "handle": outcome.hop.handle,
        "rule": outcome.hop.rule,
        "verdict": outcome.verdict,
        "detail": outcome.detail,
        "via": [
            {"chain": h.chain, "line": h.line, "handle": h.handle, "rule": h.rule}
            for h in outcome.path
            if h is not outcome.hop
        ],
        "certain": stop.certain,
    }
