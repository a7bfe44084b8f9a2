"""The exemptions of one run as batches of the engine's plan, so they roll back with the rest.

`unban me` (and `heal`) append one batch per exemption plan that changes something, after every
layer's batches; `unban ignore` applies the same batches alone. Each batch's payload is its
ExemptionPlan. The stage records each live change in the change set (EXEMPTION_KIND, or
fail2ban's IGNORE_KIND) while it applies it; `revert` undoes those, newest first, in this
process (the change set's file backups then put the files back).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from unban.address import Network
from unban.exemptions import EXEMPTION_KIND, Exemption, ExemptionPlan
from unban.model import Batch, Finding, LayerStatus
from unban.reverter import ChangeSet

STAGE = "exemption"  # the batches' layer name


def batches(plans: Sequence[ExemptionPlan]) -> list[Batch]:
    """One batch per plan that changes something."""
    return [Batch(STAGE, p.source, (), (p,), ()) for p in plans if not p.is_empty()]


def changes(plans: Sequence[ExemptionPlan]) -> int:
    return sum(p.change_count() for p in plans)


class ExemptionStage:
    """A pseudo-layer for engine.apply: applies and reverts exemption batches."""

    name = STAGE

    def __init__(self, change_set: ChangeSet, exemptions: Sequence[Exemption]) -> None:
        self.change_set = change_set
        self.by_name = {e.name: e for e in exemptions}
        self.done: dict[str, list[str]] = {}  # what each source's apply did
        self._recorded: dict[Batch, list[dict[str, Any]]] = {}

    def status(self) -> list[LayerStatus]:
        return []

    def listings(self, query: Any) -> list[Any]:
        return []

    def find(self, target: Network) -> list[Finding]:
        return []

    def plan(self, findings: Sequence[Finding]) -> list[Batch]:
        return []

    def apply(self, batch: Batch) -> None:
        plan: ExemptionPlan = batch.payload[0]
        first = len(self.change_set.info.actions)
        try:
            self.done[plan.source] = self.by_name[plan.source].apply(plan, self.change_set)
        finally:
            self._recorded[batch] = [dict(a) for a in self.change_set.info.actions[first:]]

    def revert(self, batch: Batch) -> None:
        exemption = self.by_name[batch.payload[0].source]
        for action in reversed(self._recorded.pop(batch, [])):
            exemption.revert(action)


def handler(exemptions: Sequence[Exemption]) -> Any:
    """The change-set handler for EXEMPTION_KIND actions (undo, rollback)."""
    from unban.exemptions import undo_action

    def undo(action: Mapping[str, Any]) -> None:
        undo_action(action, exemptions)

    return undo


def plan_text(plans: Sequence[ExemptionPlan]) -> list[str]:
    """The exemption part of `unban me`'s plan: one section per source that changes."""
    from unban.exemptions import plan_lines

    lines = []
    for plan in plans:
        if plan.is_empty():
            continue
        lines.append(f"  [exempt from {plan.source}]")
        lines.extend(f"    {line}" for line in plan_lines(plan))
    return lines


def notes(plans: Sequence[ExemptionPlan]) -> list[str]:
    """Notes of the plans that change nothing (why sshguard is not exempted, ...)."""
    return [f"{p.source}: {note}" for p in plans if p.is_empty() for note in p.notes]


__all__ = ["EXEMPTION_KIND", "STAGE", "ExemptionStage", "batches", "changes", "handler", "notes"]
