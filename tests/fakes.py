"""An in-memory layer for unit and CLI tests of the engine and the CLI (not of any firewall)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable, Optional

from unban.address import Network, is_targeted, overlaps, parse_network
from unban.errors import LayerError
from unban.layers import Listing, ListQuery
from unban.model import Batch, Finding, LayerStatus, Step


@dataclass
class MemoryLayer:
    """Blocks are (scope, network) pairs; one batch per scope."""

    name: str
    blocks: list[tuple[str, str]] = field(default_factory=list)
    fail_on: Optional[str] = None  # scope whose apply fails
    on_apply: Callable[[Batch], None] = lambda batch: None
    journal: list[str] = field(default_factory=list)

    def status(self) -> list[LayerStatus]:
        return [LayerStatus(self.name, True)]

    def listings(self, query: ListQuery) -> list[Listing]:
        lines = tuple(f"{scope} {net}" for scope, net in self.blocks)
        return [Listing(self.name, self.name, lines, {"blocks": [list(b) for b in self.blocks]})]

    def find(self, target: Network) -> list[Finding]:
        found = []
        for scope, text in self.blocks:
            network = parse_network(text)
            if network is not None and overlaps(network, target):
                found.append(
                    Finding(
                        layer=self.name,
                        backend="memory",
                        family="ipv4",
                        table=scope,
                        chain=None,
                        line=None,
                        handle=None,
                        rule=f"block {text}",
                        verdict="DROP",
                        owner="manual",
                        network=str(network),
                        targeted=is_targeted(network, target),
                    )
                )
        return found

    def plan(self, findings: Sequence[Finding]) -> list[Batch]:
        scopes: dict[str, list[Finding]] = {}
        for finding in findings:
            scopes.setdefault(finding.table, []).append(finding)
        return [
            Batch(
                layer=self.name,
                scope=scope,
                steps=tuple(Step(f, f"unblock {f.network}", f"block {f.network}") for f in group),
                payload=tuple(f.network for f in group),
                undo_payload=tuple(f.network for f in group),
            )
            for scope, group in scopes.items()
        ]

    def apply(self, batch: Batch) -> None:
        if batch.scope == self.fail_on:
            raise LayerError(self.name, f"{batch.scope} refused the batch")
        self.on_apply(batch)
        for network in batch.payload:
            self.blocks.remove((batch.scope, network))
        self.journal.append(f"apply {batch.scope}")

    def revert(self, batch: Batch) -> None:
        for network in batch.undo_payload:
            self.blocks.append((batch.scope, network))
        self.journal.append(f"revert {batch.scope}")
