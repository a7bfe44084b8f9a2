"""Findings and plans: plain values shared by every layer. Pure code."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass(frozen=True)
class Finding:
    """One thing that blocks (part of) the target, and where it lives.

    `line` is the rule number as `iptables -L --line-numbers` counts it; `handle` is nft's.
    `rule` is the rule as `iptables -S` or `nft` prints it. A set or list finding also names
    the `element` that holds the address; its `rule` is the rule that drops the set's members.
    """

    layer: str  # iptables | nftables | ipset | route | xt_recent
    backend: str  # legacy | nft for iptables; the binary or library otherwise
    family: str  # ipv4 | ipv6, or the nft table family: inet, netdev, bridge
    table: str
    chain: Optional[str]
    line: Optional[int]
    handle: Optional[int]
    rule: str
    verdict: str
    owner: str
    network: str  # the source network that matched
    targeted: bool
    set_name: Optional[str] = None
    element: Optional[str] = None
    # Other layers whose block on exactly `network` goes away with this finding's removal
    # (fail2ban's route and hostsdeny actions undo their own route or hosts.deny line).
    clears: tuple[str, ...] = ()
    # How a plan lifts it. "": delete what it names (the rule, the element, the entry).
    # "admit": insert an accept for exactly `network` to `ports` at the top of base chain
    # `chain` of `table`, where a policy, an allow-list or a broad rule refuses it (a broad
    # finding: only with --broad). The evaluator (unban.path) makes these.
    lift: str = ""
    ports: tuple[int, ...] = ()
    # True: a new TCP SYN from the address to sshd meets it (unban.path says so); False: it
    # names the address, but that SYN never reaches it; None: not judged by the evaluator.
    on_path: Optional[bool] = None
    # Where the block is kept, when a manager or daemon keeps it beyond the kernel entry
    # ("/etc/ufw/user.rules:12", "firewalld zone drop (permanent)", "cscli decision 42").
    source: str = ""
    # A live manager or daemon whose lift also removes its own kernel entries for `network`
    # (ufw delete, firewall-cmd, cscli decisions delete, fail2ban's unban): kernel findings of
    # the same `owner` for the same network are left to it (see engine.left_to_owner).
    lifts_own: bool = False
    # A ban's start and end, as epoch seconds (None: unknown, or not a ban); `permanent`: a ban
    # without end (fail2ban's bantime -1).
    banned_at: Optional[float] = None
    expires_at: Optional[float] = None
    permanent: bool = False

    def location(self) -> str:
        parts = [self.layer]
        if self.layer == "iptables":
            parts.append(f"{self.backend}/{self.family}")
        else:
            parts.append(self.family)
        if self.table:
            parts.append(self.table)
        if self.chain:
            parts.append(self.chain)
        if self.set_name:
            parts.append(f"set {self.set_name}")
        if self.line is not None:
            parts.append(f"#{self.line}")
        if self.handle is not None:
            parts.append(f"handle {self.handle}")
        return " ".join(parts)


@dataclass(frozen=True)
class Step:
    """One change, with the shell command a person could run instead, and its inverse."""

    finding: Finding
    command: str
    undo_command: str


@dataclass(frozen=True)
class Batch:
    """Changes one layer applies as one unit (one restore file, one nft transaction).

    `payload` and `undo_payload` are the layer's own data (restore lines, nft commands,
    route specs); only that layer's adapter interprets them.
    """

    layer: str
    scope: str  # e.g. "legacy ipv4 filter"
    steps: tuple[Step, ...]
    payload: tuple[Any, ...]
    undo_payload: tuple[Any, ...]


@dataclass(frozen=True)
class Plan:
    target: str
    batches: tuple[Batch, ...]
    skipped: tuple[Finding, ...] = ()  # broad ones without --broad; ones a layer declined
    aside: tuple[Finding, ...] = ()  # they name the target, but its SYN to sshd never meets them

    @property
    def steps(self) -> tuple[Step, ...]:
        return tuple(step for batch in self.batches for step in batch.steps)

    def is_empty(self) -> bool:
        return not self.batches


@dataclass(frozen=True)
class LayerStatus:
    """Whether a layer could be read on this host, and why not."""

    layer: str
    present: bool
    detail: str = ""


@dataclass(frozen=True)
class Report:
    """Everything `find` learned about a target."""

    target: str
    findings: tuple[Finding, ...]
    layers: tuple[LayerStatus, ...] = field(default=())
    # The path evaluator's verdict for each address and port sshd listens on (unban.path's
    # PathSummary); empty when no packet filter was judged (a network target, no layer).
    reach: tuple[Any, ...] = field(default=())
    # Whether the target is exempt from future bans in each ban source here
    # (unban.exemptions.ExemptionState: fail2ban, sshguard, crowdsec); `find` fills it.
    exemptions: tuple[Any, ...] = field(default=())

    @property
    def refused(self) -> bool:
        """Something refuses the target: a finding the SYN meets (or one outside the packet
        filters: a ban, a hosts.deny entry, a route), or a way to sshd that is not open."""
        return any(f.on_path is not False for f in self.findings) or not self.path_open

    @property
    def path_open(self) -> bool:
        """Every judged way to sshd is open (true when nothing was judged)."""
        return all(r.is_open for r in self.reach)


def as_json(value: Any) -> Any:
    """Dataclasses (and tuples of them) as JSON-ready dicts and lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: as_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): as_json(v) for k, v in value.items()}
    return value
