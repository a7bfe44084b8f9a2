"""doctor's checks of what the engine's layers found: fail2ban's bans and blocking routes.
Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from unban.checks import SEES_TIMEOUT, Check
from unban.model import Finding
from unban.path.model import BLOCKS, CLEAR, MAY_BLOCK, NOT_PRESENT


@dataclass(frozen=True)
class LayerResult:
    """What one engine layer (fail2ban, nftables, route) said about the address."""

    name: str
    present: bool
    detail: str
    findings: tuple[Finding, ...] = ()
    fixes: tuple[str, ...] = ()
    error: str = ""


def _layer_unread_or_clear(
    result: LayerResult,
    key: str,
    title: str,
    tool: str,
    clear: str,
    evidence: tuple[str, ...] = (),
) -> Optional[Check]:
    """The check of a layer that could not be read, is not here, or found nothing (`clear`
    says so); None when it has findings."""
    if result.error:
        return Check(key, title, MAY_BLOCK, f"{title} could not be read: {result.error}")
    if not result.present:
        return Check(key, title, NOT_PRESENT, result.detail or f"{tool} is not installed")
    if not result.findings:
        return Check(key, title, CLEAR, clear, evidence)
    return None


def fail2ban_check(result: LayerResult, address: str) -> Check:
    title = "fail2ban"
    early = _layer_unread_or_clear(
        result,
        "fail2ban",
        title,
        "fail2ban",
        f"no fail2ban jail has {address} banned",
        (result.detail,),
    )
    if early is not None:
        return early
    jails = sorted({f.owner.split(":", 1)[-1] for f in result.findings})
    stored = all(f.backend == "database" for f in result.findings)
    evidence = [f"{f.owner}: {f.rule}" for f in result.findings]
    fixes = list(result.fixes)
    if stored:
        summary = (
            f"fail2ban is stopped, but its database bans {address} in {', '.join(jails)}: "
            "it bans it again when it starts"
        )
        verdict = MAY_BLOCK
    else:
        summary = f"fail2ban has {address} banned in jail {', '.join(jails)}"
        verdict = BLOCKS
        if not any("unbanip" in fix for fix in fixes):  # the layer's own, with its -c, first
            fixes[:0] = [f"fail2ban-client set {jail} unbanip {address}" for jail in jails]
    return Check(
        "fail2ban",
        title,
        verdict,
        summary,
        tuple(evidence),
        tuple(fixes),
        "depends on the ban action (a REJECT rule: Connection refused; hostsdeny: reset)",
        {"findings": list(result.findings)},
    )


def route_check(result: LayerResult, address: str) -> Check:
    title = "routes"
    early = _layer_unread_or_clear(
        result,
        "route",
        title,
        "ip",
        f"no blackhole, unreachable or prohibit route covers {address}",
    )
    if early is not None:
        return early
    first = result.findings[0]
    return Check(
        "route",
        title,
        BLOCKS,
        f"replies to {address} cannot leave: route '{first.rule}'",
        tuple(f"{f.location()}: {f.rule} (owner {f.owner})" for f in result.findings),
        result.fixes,
        SEES_TIMEOUT,
        {"findings": list(result.findings)},
    )
