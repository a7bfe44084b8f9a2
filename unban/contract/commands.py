"""Each command's JSON document (schema in unban/schema), built from its internal result.

The CLI computes (finds, plans, applies) and calls one of these; nothing here touches the
system. Every document starts with core.envelope.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from unban.contract import core
from unban.contract.core import Json
from unban.model import Finding, Plan, Report


def _judged(report: Optional[Report]) -> Optional[bool]:
    """True, or None when nothing could be judged (a network, not one address, and no way to
    sshd judged)."""
    if report is None or (not report.reach and "/" in report.target):
        return None
    return True


def _open(report: Optional[Report], refused: Sequence[Any]) -> Optional[bool]:
    """The verdict on `report`: nothing refuses the address (`refused`: what does, with the
    fixes) and every judged way to sshd is open."""
    if refused or (report is not None and report.refused):
        return False
    return _judged(report)


def _would_open(report: Optional[Report], refused: Sequence[Any]) -> Optional[bool]:
    """A dry run's verdict once the plan is applied: `refused` is what the plan would leave."""
    return False if refused else _judged(report)


def find(report: Report, refused: Sequence[Any], exit_code: int) -> Json:
    """`refused`: refusals.refusals (and path_refusals) of the report: what refuses it, with fixes."""
    return core.envelope(
        "find",
        exit_code,
        address=report.target,
        open=_open(report, refused),
        still_refused=[core.refusal(r) for r in refused],
        findings=core.findings_with_fixes(report.findings, refused),
        reach=[core.way(w) for w in report.reach],
        layers=[core.layer_status(s) for s in report.layers],
        exemptions=[exemption_state(s) for s in report.exemptions],
    )


def listing(listings: Sequence[Any], statuses: Sequence[Any]) -> Json:
    return core.envelope(
        "list",
        0,
        listings=[
            {"layer": x.layer, "title": x.title, "lines": list(x.lines), "data": _plain(x.data)}
            for x in listings
        ],
        layers=[core.layer_status(s) for s in statuses],
    )


def _plain(value: Any) -> Any:
    """A layer's listing data or a check's data (dicts, lists, tuples of plain values, and
    findings) as JSON values."""
    if isinstance(value, Finding):
        return core.finding(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def exemption_steps(plans: Sequence[Any]) -> list[Json]:
    """Each ban source's exemption plan (exemptions.ExemptionPlan) as plan steps, in the order
    they are applied; fail2ban's live commands are socket calls, so their text and undo are
    fail2ban-client's (its IgnorePlan is the payload)."""
    from unban.fail2ban.client import client_command

    steps: list[Json] = []
    for plan in plans:
        if plan.source == "fail2ban" and plan.payload is not None:
            ignore = plan.payload
            runs = [(c.shell, client_command(c.undo, ignore.confdir)) for c in ignore.live]
            steps += core.exemption_steps(plan.source, ignore.edits, runs)
        else:
            runs = [(c.shell, shlex.join(c.undo) if c.undo else "") for c in plan.commands]
            steps += core.exemption_steps(plan.source, plan.edits, runs)
    return steps


def exemption_state(state: Any) -> Json:
    """One ban source's answer (exemptions.ExemptionState): is the address exempt there."""
    return {
        "source": state.source,
        "present": state.present,
        "exempt": state.exempt,
        "detail": state.detail,
    }


def me(result: Any, address_source: Optional[str]) -> Json:
    """`unban me` from its me.MeResult."""
    from unban.steptext import step_text

    plan: Plan = result.plan
    planned = core.plan(plan, step_text, exemption_steps(result.exemptions))
    report = result.after if result.after is not None else result.before
    refused = list(result.still_refused)
    fields: Json = {}
    if result.dry_run:
        fields["would_open"] = _would_open(report, refused)
    return core.envelope(
        "me",
        int(result.status),
        dry_run=result.dry_run,
        changed=result.changed,
        would_change=planned["changes"] > 0,
        change_set=result.change_set,
        address=result.target,
        address_source=address_source or None,
        open=_open(report, refused),
        **fields,
        still_refused=[core.refusal(r) for r in refused],
        findings=core.planned_findings(plan),
        left_alone=core.findings_with_fixes([*plan.skipped, *plan.aside], refused),
        plan=planned,
        reach=[core.way(w) for w in report.reach],
        layers=[core.layer_status(s) for s in result.before.layers],
        blocked=result.blocked,
        summary=result.summary,
        notes=list(result.notes),
        events=list(result.events),
    )


def remove(
    command: str,
    plan: Plan,
    exit_code: int,
    *,
    address: Optional[str],
    dry_run: bool,
    refused: Sequence[Any],
    report: Optional[Report],
    change_set: Optional[str] = None,
) -> Json:
    """`unban remove` and `unban delete`: the plan, and after applying it what still refuses
    the address (`report`: found again after the run, or before it on a dry run)."""
    from unban.steptext import step_text

    planned = core.plan(plan, step_text)
    fields: Json = {}
    if dry_run:
        fields["would_open"] = _would_open(report, refused) if address is not None else None
    return core.envelope(
        command,
        exit_code,
        dry_run=dry_run,
        changed=change_set is not None,
        would_change=planned["changes"] > 0,
        change_set=change_set,
        address=address,
        open=_open(report, refused) if address is not None else None,
        **fields,
        still_refused=[core.refusal(r) for r in refused],
        findings=core.planned_findings(plan),
        left_alone=core.findings_with_fixes([*plan.skipped, *plan.aside], refused),
        plan=planned,
        reach=[core.way(w) for w in report.reach] if report is not None else [],
    )


def ignore(
    operation: str,
    address: str,
    plans: Sequence[Any],
    *,
    fail2ban_plan: Any,
    dry_run: bool,
    change_set: Optional[str],
    verified: str,
    still_banned: Sequence[Finding],
) -> Json:
    """`unban ignore` and `unban unignore`: every ban source's exemption plan as steps, and
    fail2ban's jails (`fail2ban_plan`: its ignoreplan.IgnorePlan, None without fail2ban)."""
    steps = exemption_steps(plans)
    jails = fail2ban_plan.jails if fail2ban_plan is not None else ()
    return core.envelope(
        operation,
        0,
        dry_run=dry_run,
        changed=change_set is not None,
        would_change=bool(steps),
        change_set=change_set,
        address=address,
        plan={"changes": len(steps), "steps": steps},
        sources=[p.source for p in plans],
        jails=[{"jail": j.jail, "status": j.status, "detail": j.detail} for j in jails],
        notes=[f"{p.source}: {note}" for p in plans for note in p.notes],
        verified=verified or None,
        still_banned=[core.finding(f) for f in still_banned],
    )


def undo(command: str, plan: Any, *, dry_run: bool, result: Any = None) -> Json:
    """`unban undo` (and `rollback ID`): history.UndoPlan's steps (what the dry run shows is
    what is undone), and once done me.UndoResult's batches and files put back."""
    return core.envelope(
        command,
        0,
        dry_run=dry_run,
        changed=result is not None,
        would_change=True,
        change_set=plan.change_set,
        kind=plan.kind,
        description=plan.description,
        steps=list(plan.steps),
        undone=list(result.undone) if result is not None else [],
        restored=list(result.restored) if result is not None else [],
        cannot=list(result.cannot) if result is not None else list(plan.cannot),
    )


def history(command: str, entries: Sequence[Any]) -> Json:
    return core.envelope(
        command,
        0,
        change_sets=[
            {
                "id": e.info.id,
                "kind": e.kind,
                "status": e.info.status,
                "created": core.iso_time(e.info.created),
                "description": e.info.description,
                "changed": list(e.changed),
                "undo": e.undo,
                "files": [r.path for r in e.info.files],
            }
            for e in entries
        ],
    )


def _check(check: Any) -> Json:
    return {
        "key": check.key,
        "title": check.title,
        "verdict": check.verdict,
        "summary": check.summary,
        "evidence": list(check.evidence),
        "fix": [core.suggestion(text) for text in check.fix],
        "client_sees": check.client_sees or None,
        "data": _plain(check.data),
    }


def doctor(diagnosis: Any, exit_code: int) -> Json:
    from unban.path.model import BLOCKS, CLEAR

    verdict = diagnosis.verdict
    cause = diagnosis.cause
    return core.envelope(
        "doctor",
        exit_code,
        address=diagnosis.address,
        open=True if verdict == CLEAR else False if verdict == BLOCKS else None,
        verdict=verdict,
        port=diagnosis.port,
        user=diagnosis.user,
        server_address=diagnosis.server_address,
        cause=_check(cause) if cause is not None else None,
        checks=[_check(c) for c in diagnosis.checks],
        notes=list(diagnosis.notes),
    )


def probe(report: Any, exit_code: int) -> Json:
    return core.envelope(
        "probe",
        exit_code,
        host=report.host,
        port=report.port,
        ok=report.ok,
        open=report.ok,
        outcome=report.outcome,
        summary=report.summary,
        hints=list(report.hints),
        attempts=[
            {
                "address": a.address,
                "outcome": a.outcome,
                "detail": a.detail,
                "seconds": a.seconds,
                "banner": a.banner,
                "before_banner": list(a.before_banner),
                "error": a.error,
                "local_address": a.local_address,
            }
            for a in report.attempts
        ],
    )


def heal(report: Any) -> Json:
    """`unban heal` from heal.HealReport."""
    from unban.heal import HEALED, STILL_BLOCKED

    changed = any(r.change_set for r in report.results)
    return core.envelope(
        "heal",
        report.exit_status,
        dry_run=report.dry_run,
        changed=changed,
        would_change=any(r.planned for r in report.results),
        change_set=None,
        change_sets=[r.change_set for r in report.results if r.change_set],
        action="heal",
        config=report.config,
        protected=list(report.protected),
        hostnames={k: list(v) for k, v in report.hostnames.items()},
        unresolved=list(report.unresolved),
        skipped=report.skipped or None,
        yielded=report.yielded or None,
        healed=[
            r.address for r in report.results if r.status in (HEALED, STILL_BLOCKED) and r.changes
        ],
        results=[
            {
                "address": r.address,
                "status": r.status,
                "exit_code": r.exit_status,
                "changes": list(r.changes),
                "still_refused": [core.refusal(x) for x in r.refused],
                "error": r.error or None,
                "change_set": r.change_set,
                "plan": list(r.plan),
            }
            for r in report.results
        ],
    )


def schedule(
    action: str,
    *,
    dry_run: bool,
    files: Sequence[str],
    commands: Sequence[str],
    todo: Sequence[str] = (),
    how: Optional[Any] = None,
) -> Json:
    """`heal --install` / `--uninstall`: the files written or removed, the systemctl calls;
    `how`: the install's plan or result (its kind, interval, schedule and command)."""
    fields: Json = {}
    if how is not None:
        fields = {
            "kind": how.kind,
            "every": how.every,
            "schedule": how.schedule,
            "heal_command": list(how.command),
        }
    return core.envelope(
        "heal",
        0,
        dry_run=dry_run,
        changed=bool(files) and not dry_run,
        would_change=bool(files),
        change_set=None,
        action=action,
        files=list(files),
        commands=[core.command(c) for c in commands],
        todo=list(todo),
        **fields,
    )
