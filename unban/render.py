"""Text for people. JSON output is model.as_json; nothing here touches the system."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from unban.layers import Listing
from unban.model import Finding, LayerStatus, Plan, Report


def finding_lines(finding: Finding) -> list[str]:
    kind = "targeted" if finding.targeted else "broad"
    head = f"  {finding.location()}  {finding.verdict}  owner {finding.owner}  {kind}"
    if finding.source:
        head += f"  kept in {finding.source}"
    lines = [head, f"      {finding.rule}"]
    if finding.lift == "admit":
        lines.append(f"      nothing names {finding.network} alone: --broad admits it here")
    if finding.element:
        lines.append(f"      element {finding.element} of {finding.set_name}")
    return lines


def report_text(report: Report) -> list[str]:
    refusing = [f for f in report.findings if f.on_path is not False]
    aside = [f for f in report.findings if f.on_path is False]
    if not refusing and report.path_open:
        lines = [
            f"nothing blocks {report.target}: no fail2ban ban, firewall rule, set element, route, "
            "xt_recent entry or hosts.allow/hosts.deny entry"
        ]
    else:
        lines = [f"{report.target} is blocked by {len(refusing)} finding(s):"]
        for finding in refusing:
            lines.extend(finding_lines(finding))
    if aside:
        lines.append(f"naming {report.target}, but off the way a new connection takes:")
        for finding in aside:
            lines.extend(finding_lines(finding))
    lines.extend(way.line() for way in report.reach)
    lines.extend(exemption_lines(report.exemptions))
    lines.extend(absent_lines(report.layers))
    return lines


def exemption_lines(states: Sequence[Any]) -> list[str]:
    """One line per ban source here: is the target exempt from its future bans."""
    present = [s for s in states if s.present]
    if not present:
        return []
    parts = [f"{s.source}: {'yes' if s.exempt else 'no'} ({s.detail})" for s in present]
    return [f"exempt from future bans: {'; '.join(parts)}"]


def absent_lines(statuses: Sequence[LayerStatus]) -> list[str]:
    return [f"  (not present: {s.layer}: {s.detail})" for s in statuses if not s.present]


def plan_text(plan: Plan) -> list[str]:
    steps = plan.steps
    if not steps:
        lines = [f"nothing to remove for {plan.target}"]
    else:
        lines = [f"plan for {plan.target}: {len(steps)} change(s) in {len(plan.batches)} batch(es)"]
        for batch in plan.batches:
            lines.append(f"  [{batch.layer} {batch.scope}]")
            for step in batch.steps:
                finding = step.finding
                if finding.lift == "admit":
                    lines.append(
                        f"    admit {finding.network} at the top of {finding.table} "
                        f"{finding.chain} (refused there by: {finding.rule})"
                    )
                elif finding.element:
                    lines.append(f"    remove {finding.element} from {finding.set_name}")
                    lines.append(f"      (dropped by: {finding.rule})")
                else:
                    lines.append(f"    remove {finding.rule}")
                lines.append(f"      $ {step.command}")
                lines.append(f"      undo: {step.undo_command}")
    lines.extend(left_alone_lines(plan, remove="remove"))
    return lines


def left_alone_lines(plan: Plan, *, remove: str) -> list[str]:
    """What a plan does not lift, and why: broader than the target (`--broad` would `remove`
    them too), owned by another tool, or off the way the target's connection takes."""
    lines: list[str] = []
    broad = [f for f in plan.skipped if not f.targeted]
    declined = [f for f in plan.skipped if f.targeted]
    sections = (
        (broad, f"left alone, broader than {plan.target} (add --broad to {remove} them too):"),
        (declined, "left alone, owned by another tool (change them with that tool):"),
        (plan.aside, f"left alone, off the way a new connection from {plan.target} takes:"),
    )
    for findings, title in sections:
        if findings:
            lines.append(title)
            for finding in findings:
                lines.extend(finding_lines(finding))
    return lines


def listing_text(listings: Sequence[Listing]) -> list[str]:
    lines: list[str] = []
    for listing in listings:
        lines.append(f"== {listing.title}")
        lines.extend(listing.lines)
        lines.append("")
    return lines
