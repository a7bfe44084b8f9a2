"""One verdict for one packet: every base chain it meets, in the order it meets them. Pure.

The packet gets in when every base chain on its way accepts it (an accept ends only its own
base chain); the first base chain whose every way drops or rejects it stops it; any way that
refuses, or that the evaluator could not decide, in any base chain makes it "may block".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

from unban.path.model import (
    ACCEPT,
    BLOCKS,
    CLEAR,
    MAY_BLOCK,
    NOT_PRESENT,
    ChainWalk,
    Outcome,
    Packet,
)


@dataclass(frozen=True)
class Stop:
    """A way through a base chain that refuses the packet, or may (verdict unknown, or a
    refusal that depends on an assumption)."""

    walk: ChainWalk
    outcome: Outcome

    @property
    def certain(self) -> bool:
        """This base chain refuses the packet whichever way its unknowns go."""
        return self.walk.verdict == BLOCKS


@dataclass(frozen=True)
class Reach:
    """What a new TCP SYN from the client to one sshd address and port meets."""

    packet: Packet
    walks: tuple[ChainWalk, ...]

    @property
    def verdict(self) -> str:
        if not self.walks:
            return NOT_PRESENT
        verdicts = {walk.verdict for walk in self.walks}
        if BLOCKS in verdicts:
            return BLOCKS
        return MAY_BLOCK if MAY_BLOCK in verdicts else CLEAR

    @property
    def is_open(self) -> bool:
        """Nothing on the way refuses it (no packet filter at all counts as open)."""
        return self.verdict in (CLEAR, NOT_PRESENT)

    def stops(self) -> list[Stop]:
        """Every refusing or undecided way, in the order the packet meets them, up to and
        including the first base chain that surely refuses it (nothing after it is reached)."""
        result: list[Stop] = []
        for walk in self.walks:
            if walk.verdict == CLEAR:
                continue
            result.extend(Stop(walk, o) for o in walk.outcomes if o.verdict != ACCEPT)
            if walk.verdict == BLOCKS:
                break
        return result

    def first_stop(self) -> Optional[Stop]:
        stops = self.stops()
        return next((s for s in stops if s.certain), stops[0] if stops else None)

    def accepted_at(self) -> list[Outcome]:
        """For an open way: the accepting outcome of each base chain (the path, as proof)."""
        return [walk.outcomes[0] for walk in self.walks if walk.outcomes]


@dataclass(frozen=True)
class PathSummary:
    """A Reach in words, for reports and JSON: where the SYN goes and what stops it."""

    source: str
    destination: str  # "" when the server address the client uses is not known
    port: int
    interface: str
    verdict: str  # clear | blocks | may block | not present
    stops: tuple[str, ...] = ()  # each refusing or undecided way, in the order met
    path: tuple[str, ...] = ()  # for an open way: the accepting decision of each base chain

    @property
    def is_open(self) -> bool:
        return self.verdict in (CLEAR, NOT_PRESENT)

    def line(self) -> str:
        """`open: a SYN from A to B port 22 reaches sshd (path: ...)` or `refused at ...`."""
        to = f"{self.destination} port {self.port}" if self.destination else f"port {self.port}"
        syn = f"a SYN from {self.source} to {to}"
        if self.verdict == NOT_PRESENT:
            return f"open: {syn} meets no packet filter"
        if self.is_open:
            return f"open: {syn} reaches sshd (path: {'; '.join(self.path)})"
        first = self.stops[0] if self.stops else "?"
        word = "refused" if self.verdict == BLOCKS else "may be refused"
        return f"{word}: {syn} at {first}"


def describe(outcome: Outcome) -> str:
    """`filter INPUT #3: -A INPUT -s ... -j DROP => drop (DROP)`, with its assumptions."""
    text = f"{outcome.hop.where()}: {outcome.hop.rule} => {outcome.verdict} ({outcome.detail})"
    for assumption in outcome.assumptions:
        way = "matches" if assumption.matched else "does not match"
        text += f" [if {assumption.hop.where()} {way}: {assumption.why}]"
    return text


def summary(r: Reach) -> PathSummary:
    packet = r.packet
    walks = {id(w): w for w in r.walks}
    return PathSummary(
        source=str(packet.source),
        destination=str(packet.destination) if packet.destination is not None else "",
        port=packet.dport,
        interface=packet.in_interface or "",
        verdict=r.verdict,
        stops=tuple(f"{_backend_name(s.walk)} {describe(s.outcome)}" for s in r.stops()),
        path=tuple(
            f"{_backend_name(w)} {w.table} {w.chain}: {w.outcomes[0].detail or 'accept'}"
            for w in walks.values()
            if w.outcomes
        )
        if r.is_open
        else (),
    )


def _backend_name(walk: ChainWalk) -> str:
    if walk.backend == "nftables":
        return "nft"
    tool = "iptables" if walk.family == "ipv4" else "ip6tables"
    return f"{tool}-{walk.backend}"


def reach(packet: Packet, walks: Iterable[ChainWalk]) -> Reach:
    """The base chains in the order the packet meets them: by hook, then priority (a stable
    sort keeps each source's own order among equal priorities)."""
    return Reach(packet, tuple(sorted(walks, key=ChainWalk.order)))
