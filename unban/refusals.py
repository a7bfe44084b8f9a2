"""What still refuses the address after a run (or would, on a dry run): each finding still on
the way with the command that clears it, the path evaluator's stops no finding names, and
sshd's own admission (AllowUsers/DenyUsers, MaxStartups).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from unban.errors import LayerError
from unban.layers import Layer
from unban.model import Finding, Report
from unban.shellwords import argv_of


@dataclass(frozen=True)
class Refusal:
    """Something that still refuses the address after the run, and how to clear it."""

    key: str  # a layer name (iptables, hosts, ...) or a doctor check key (users, maxstartups)
    what: str
    fix: str  # a command a person can run, or what to change
    finding: Optional[Finding] = None  # what refuses it, when a layer found it
    argv: tuple[str, ...] = ()  # the fix as one command's argv, when it is one


def refusals(
    report: Report,
    findings: Sequence[Finding],
    layers: Optional[Sequence[Layer]] = None,
) -> list[Refusal]:
    """Each finding that still refuses the address, with the command that would clear it."""
    shown = report.target
    fixes: dict[Finding, str] = {}
    if layers is not None:
        for layer in layers:
            mine = [f for f in findings if f.layer == layer.name]
            if not mine:
                continue
            try:
                for batch in layer.plan(mine):
                    for step in batch.steps:
                        fixes.setdefault(step.finding, step.command)
            except Exception:  # noqa: BLE001 - no command then; the finding still shows
                continue
    out = []
    for finding in findings:
        if finding.on_path is False:
            continue  # it names the address, but a new SYN never meets it: not a refusal
        fix = fixes.get(finding, "")
        argv = tuple(argv_of(fix) or ())
        if not finding.targeted:
            argv = ("unban", "me", shown, "--broad")
            fix = f"unban me {shown} --broad" + (f"  (or: {fix})" if fix else "")
        elif not fix:
            argv, fix = ("unban", "me", shown), f"unban me {shown}"
            if finding.owner not in ("manual", "") and not finding.owner.startswith("fail2ban"):
                argv, fix = (), f"change it with {finding.owner.split(':')[0]}, which owns it"
        what = f"{finding.location()}: {finding.rule}"
        if finding.element:
            what += f" (element {finding.element})"
        kind = "broad" if not finding.targeted else "targeted"
        out.append(
            Refusal(finding.layer, f"{what} [{kind}, owner {finding.owner}]", fix, finding, argv)
        )
    return out


def path_refusals(report: Report, already: Sequence[Refusal]) -> list[Refusal]:
    """The evaluator's verdict, read afresh with `report`: each way to sshd that is not open
    and that no refusal already names (a stop no layer could make a finding of)."""
    if any(r.key in ("iptables", "nftables", "xt_recent", "ipset") for r in already):
        return []
    broad = ("unban", "me", report.target, "--broad")
    return [
        Refusal("firewall", way.line(), " ".join(broad), argv=broad)
        for way in report.reach
        if not way.is_open
    ]


def sshd_checks(
    address: str, user: Optional[str], sshd_config: Optional[str], notes: list[str]
) -> list[Refusal]:
    """sshd's AllowUsers/DenyUsers (for `user`) and MaxStartups, through the doctor's checks.

    Only a check that surely refuses counts; one that only may (no --user given while
    AllowUsers is set, MaxStartups throttling at random) goes to `notes`.
    """
    import ipaddress

    from unban import sshd as sshd_mod
    from unban import sshd_runtime
    from unban.checks.sshd import maxstartups_check, users_check
    from unban.path.model import BLOCKS, MAY_BLOCK

    try:
        binary = sshd_mod.sshd_binary()
        config = sshd_mod.read_config(address, user=user, config_file=sshd_config, sshd=binary)
    except LayerError as exc:
        notes.append(f"sshd not checked: {exc}")
        return []
    port = config.ports[0] if config.ports else 22
    checks = [users_check(sshd_runtime.user_access(config, user, address), user)]
    try:
        load = sshd_runtime.startup_load(
            port, ipaddress.ip_address(address), config.per_source_netblock
        )
        checks.append(maxstartups_check(config, load, address, (), port))
    except LayerError as exc:
        notes.append(f"MaxStartups not checked: {exc}")
    out = []
    for check in checks:
        if check.verdict == BLOCKS:
            out.append(Refusal(check.key, check.summary, check.fix[0] if check.fix else ""))
        elif check.verdict == MAY_BLOCK:
            notes.append(f"{check.title}: {check.summary}")
    return out
