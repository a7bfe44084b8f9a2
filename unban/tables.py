"""Aligned tables for a person at a terminal (find, list, history, the plan).

The same content as unban/render.py's and unban/history.py's plain lines, which are what a pipe
gets. rich is imported here only, when a table is printed: `unban find ... | grep` and cron
never load it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from unban.layers import Listing
from unban.model import Finding, LayerStatus, Plan, Report
from unban.render import absent_lines, exemption_lines

_NUMBERED = re.compile(r"^\s*(\d+)\s{2}(.*)$")


def _table(*columns: str, title: str = "") -> Any:
    from rich import box
    from rich.table import Table

    table = Table(title=title or None, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def findings_table(findings: Sequence[Finding], title: str = "") -> Any:
    table = _table("where", "verdict", "owner", "kind", "rule", title=title)
    for finding in findings:
        rule = [finding.rule]
        if finding.element:
            rule.insert(0, f"element {finding.element} of {finding.set_name}")
        if finding.source:
            rule.append(f"kept in {finding.source}")
        if finding.lift == "admit":
            rule.append(f"nothing names {finding.network} alone: --broad admits it here")
        kind = "targeted" if finding.targeted else "broad"
        table.add_row(finding.location(), finding.verdict, finding.owner, kind, "\n".join(rule))
    return table


def _absent(statuses: Sequence[LayerStatus]) -> list[Any]:
    from rich.text import Text

    return [Text(line, style="dim") for line in absent_lines(statuses)]


def report_tables(report: Report) -> list[Any]:
    from rich.text import Text

    refusing = [f for f in report.findings if f.on_path is not False]
    aside = [f for f in report.findings if f.on_path is False]
    out: list[Any] = []
    if not refusing and report.path_open:
        out.append(Text(f"nothing blocks {report.target}", style="green"))
    else:
        title = f"{report.target} is blocked by {len(refusing)} finding(s)"
        out.append(findings_table(refusing, title))
    if aside:
        title = f"naming {report.target}, but off the way a new connection takes"
        out.append(findings_table(aside, title))
    out.extend(Text(way.line()) for way in report.reach)
    out.extend(Text(line) for line in exemption_lines(report.exemptions))
    return [*out, *_absent(report.layers)]


def plan_tables(plan: Plan) -> list[Any]:
    from rich.text import Text

    out: list[Any] = []
    if not plan.steps:
        out.append(Text(f"nothing to remove for {plan.target}"))
    else:
        title = (
            f"plan for {plan.target}: {len(plan.steps)} change(s) in {len(plan.batches)} batch(es)"
        )
        table = _table("batch", "change", "command", "undo", title=title)
        for batch in plan.batches:
            for step in batch.steps:
                finding = step.finding
                if finding.lift == "admit":
                    change = (
                        f"admit {finding.network} at the top of {finding.table} {finding.chain}"
                    )
                elif finding.element:
                    change = f"remove {finding.element} from {finding.set_name}"
                else:
                    change = f"remove {finding.rule}"
                table.add_row(
                    f"{batch.layer} {batch.scope}", change, step.command, step.undo_command
                )
        out.append(table)
    broad = [f for f in plan.skipped if not f.targeted]
    declined = [f for f in plan.skipped if f.targeted]
    sections = (
        (broad, f"left alone, broader than {plan.target} (--broad removes them too)"),
        (declined, "left alone, owned by another tool (change them with that tool)"),
        (plan.aside, f"left alone, off the way a new connection from {plan.target} takes"),
    )
    out.extend(findings_table(found, title) for found, title in sections if found)
    return out


def history_table(entries: Sequence[Any]) -> list[Any]:
    """`history.Entry` rows: id, when, command, status, undo, and what it changed."""
    from rich.text import Text

    if not entries:
        return [Text("no change sets yet")]
    table = _table("id", "when", "command", "status", "undo", "what it changed")
    for entry in entries:
        info = entry.info
        what = "\n".join([info.description, *(f"  {line}" for line in entry.changed)])
        table.add_row(info.id, entry.when(), entry.kind, info.status, entry.undo, what)
    return [table]


def listing_tables(listings: Sequence[Listing], statuses: Sequence[LayerStatus]) -> list[Any]:
    """One table per section of `unban list`: the rule number (where there is one), the line."""
    out: list[Any] = []
    for listing in listings:
        table = _table("#", listing.layer, title=listing.title)
        for line in listing.lines:
            numbered = _NUMBERED.match(line)
            if numbered:
                table.add_row(numbered.group(1), numbered.group(2))
            else:
                table.add_row("", line.strip())
        out.append(table)
    return [*out, *_absent(statuses)]
