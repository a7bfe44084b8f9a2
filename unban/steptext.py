"""What a plan's steps and an applied batch do, in words (`unban me`'s plan and its "done:"
lines, `unban history`, heal's log).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from unban import render
from unban.address import parse_network, show
from unban.exemptions import ExemptionPlan
from unban.exemptions.stage import STAGE, ExemptionStage, any_changes
from unban.model import Batch, Plan, Step


def step_text(step: Step) -> str:
    """What one step does, in words."""
    finding = step.finding
    if finding.layer == "fail2ban":
        where = "" if finding.backend == "server" else " (in its database: the server is stopped)"
        return f"unban {_shown(finding.network)} in fail2ban jail {finding.chain}{where}"
    if finding.layer == "sshguard":
        return f"take it out of sshguard's blacklist {finding.table} line {finding.line}"
    if finding.layer == "crowdsec":
        return f"delete CrowdSec decision {finding.handle} ({finding.rule})"
    if finding.layer == "sshd":
        from unban.layers.sshd_penalty import step_text as sshd_step

        return sshd_step(finding)
    if finding.layer == "hosts" and finding.targeted:
        return f"take it out of {finding.table} line {finding.line}: {finding.rule}"
    if finding.layer == "hosts":
        return (
            f"grant sshd to it at the top of hosts.allow (broad: {finding.table} line "
            f"{finding.line}: {finding.rule})"
        )
    if finding.lift == "admit":
        return (
            f"admit {_shown(finding.network)} at the top of {finding.location()} "
            f"(refused there by: {finding.rule})"
        )
    if finding.element:
        return f"remove {finding.element} from {finding.location()} (dropped by: {finding.rule})"
    return f"remove {finding.location()}: {finding.rule}"


def _shown(network: str) -> str:
    parsed = parse_network(network)
    return show(parsed) if parsed is not None else network


def planned_changes(plan: Plan, exempting: Sequence[ExemptionPlan]) -> int:
    """The plan's changes, each a step of the JSON plan: the layers' steps, then each
    exemption's file writes and commands (the text plan, the summary and --json say this)."""
    from unban.exemptions.stage import changes as exemption_changes

    return len(plan.steps) + exemption_changes(exempting)


def plan_lines(plan: Plan, exempting: Sequence[ExemptionPlan] = ()) -> list[str]:
    """The plan as `unban me` prints it before applying it."""
    from unban.exemptions.stage import plan_text

    changes = planned_changes(plan, exempting)
    if plan.is_empty() and not any_changes(exempting):
        lines = [f"nothing to change for {plan.target}"]
    else:
        lines = [f"plan for {plan.target}: {changes} change(s), in this order:"]
    for batch in plan.batches:
        lines.append(f"  [{batch.layer} {batch.scope}]")
        for step in batch.steps:
            lines.append(f"    {step_text(step)}")
            lines.append(f"      $ {step.command}")
    lines.extend(plan_text(exempting))
    lines.extend(render.left_alone_lines(plan, remove="lift"))
    return lines


def describe_batch(batch: Batch, stage: Optional[ExemptionStage] = None) -> list[str]:
    """What one applied batch did, one line per change."""
    if batch.layer == STAGE:
        done = stage.done.get(batch.scope, []) if stage is not None else []
        return [f"done: {line}" for line in done]
    lines = []
    for step in batch.steps:
        finding = step.finding
        if batch.layer == "fail2ban":
            where = "" if batch.scope == "server" else f" in its database ({batch.scope})"
            lines.append(
                f"done: fail2ban unbanned {_shown(finding.network)} in jail {finding.chain}{where}"
            )
        elif batch.layer == "sshd":
            lines.append(f"done: {step_text(step)}; sshd reloaded")
        elif batch.layer == "hosts" and finding.targeted:
            lines.append(
                f"done: took {finding.network} out of {finding.table} line {finding.line} "
                f"({finding.rule})"
            )
        elif batch.layer == "hosts":
            lines.append(
                f"done: granted sshd at the top of {batch.scope} (broad: {finding.table} "
                f"line {finding.line}: {finding.rule})"
            )
        elif finding.element:
            lines.append(
                f"done: removed {finding.element} from {finding.location()} ($ {step.command})"
            )
        else:
            lines.append(f"done: removed {finding.location()}: {finding.rule}")
    return lines
