"""Layers: one module per kind of block, each behind the same small interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Protocol, Sequence

from unban.address import Network
from unban.model import Batch, Finding, LayerStatus


@dataclass(frozen=True)
class ListQuery:
    """What `unban list` asks for."""

    table: Optional[str] = None
    chain: Optional[str] = None
    family: Optional[str] = None  # ipv4 | ipv6 | None for both


@dataclass(frozen=True)
class Listing:
    """One section of `unban list`: a title, its text lines, and the same as JSON data."""

    layer: str
    title: str
    lines: tuple[str, ...]
    data: dict[str, Any]


class Layer(Protocol):
    """What every layer offers. Only `apply`/`revert` (and reads) touch the system."""

    name: str

    def status(self) -> Sequence[LayerStatus]: ...

    def listings(self, query: ListQuery) -> Sequence[Listing]: ...

    def find(self, target: Network) -> Sequence[Finding]: ...

    def plan(self, findings: Sequence[Finding]) -> Sequence[Batch]: ...

    def apply(self, batch: Batch) -> None: ...

    def revert(self, batch: Batch) -> None: ...


def owner_of(name: str) -> str:
    """Who made a chain, set or list, judged by its name."""
    lowered = name.lower()
    for prefix in ("f2b-", "addr-set-", "addr6-set-"):
        if lowered.startswith(prefix) and len(name) > len(prefix):
            return f"fail2ban:{name[len(prefix) :]}"
    if lowered.startswith(("ufw-", "ufw6-")):
        return "ufw"
    if "sshguard" in lowered:
        return "sshguard"
    if "crowdsec" in lowered:
        return "crowdsec"
    return "manual"
