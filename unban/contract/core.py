"""The parts every command's JSON shares: the envelope, findings, plan steps, errors, times.

Each function maps one internal value to its contract shape field by field (unban/schema has
the schema; README's "JSON output" says what the fields mean). The internal model may change;
these shapes change only with SCHEMA_VERSION.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any, Optional

from unban.errors import ExitStatus, UnbanError
from unban.model import Finding, LayerStatus, Plan, Step
from unban.schema import SCHEMA_VERSION
from unban.shellwords import argv_of

Json = dict[str, Any]


def envelope(
    command: str,
    exit_code: int,
    *,
    dry_run: bool = False,
    changed: bool = False,
    would_change: Optional[bool] = None,
    **fields: Any,
) -> Json:
    """The fields every command's JSON starts with, then the command's own `fields`.
    `would_change` is there exactly on a dry run."""
    doc: Json = {
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "exit_code": int(exit_code),
        "dry_run": dry_run,
        "changed": changed and not dry_run,
    }
    if dry_run:
        doc["would_change"] = bool(would_change)
    doc.update(fields)
    return doc


def error_document(
    command: str, message: str, kind: str, exit_code: int, *, dry_run: bool = False
) -> Json:
    """A failed command: the error and nothing else of the command's. A run that could not
    put its changes back (exit 5) may have changed something."""
    failed = envelope(
        command,
        exit_code,
        dry_run=dry_run,
        changed=exit_code == ExitStatus.ROLLBACK_FAILED,
        would_change=False,
    )
    failed["error"] = {"message": message, "kind": kind, "exit_code": int(exit_code)}
    return failed


def error_kind(exc: BaseException) -> str:
    """The class name a reader can branch on (InputError, ApplyError, NotRootError, ...)."""
    if isinstance(exc, UnbanError):
        return type(exc).__name__
    if isinstance(exc, KeyboardInterrupt):
        return "Interrupted"
    if isinstance(exc, OSError):
        return "OSError"
    return "UnexpectedError"


def iso_time(epoch: Optional[float]) -> Optional[str]:
    """Epoch seconds as ISO 8601 in this host's time zone, with its offset."""
    if epoch is None:
        return None
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc).astimezone()
    return moment.isoformat(timespec="seconds")


def command(text: str, argv: Optional[Sequence[str]] = None) -> Json:
    """A command a person could run: its argv (given, or read back from `text` when that is
    one plain command; else null) and its text."""
    words = list(argv) if argv else argv_of(text)
    return {"argv": words, "text": text}


def advice(text: str) -> Json:
    """A fix in words (edit this file, ...): no argv."""
    return {"argv": None, "text": text}


# What doctor's fixes start with when they are a command to run, not words.
PROGRAMS = frozenset(
    (
        "unban", "iptables", "iptables-nft", "iptables-legacy", "ip6tables", "ip6tables-nft",
        "ip6tables-legacy", "nft", "ipset", "ip", "fail2ban-client", "sqlite3", "systemctl",
        "sshd", "ufw", "firewall-cmd", "cscli", "sed",
    )
)  # fmt: skip


def suggestion(text: str) -> Json:
    """A fix that may be a command (`unban me X --broad`) or words: argv only for a plain
    command of one of PROGRAMS."""
    words = argv_of(text)
    if words is None or words[0] not in PROGRAMS:
        return advice(text)
    return {"argv": words, "text": text}


# ---------------------------------------------------------------- findings


def _kind(finding: Finding) -> str:
    by_layer = {
        "fail2ban": "ban",
        "sshd": "penalty",
        "hosts": "hosts-entry",
        "route": "route",
        "xt_recent": "recent-entry",
        "sshguard": "ban",
        "crowdsec": "ban",
    }
    if finding.layer in by_layer:
        return by_layer[finding.layer]
    if finding.lift == "admit":
        return "admit"
    if finding.element:
        return "set-element"
    return "rule"


def _jail(finding: Finding) -> Optional[str]:
    if finding.layer == "fail2ban":
        return finding.chain or None
    owner, _, jail = finding.owner.partition(":")
    return jail or None if owner == "fail2ban" else None


def detail(finding: Finding) -> str:
    text = f"{finding.location()}: {finding.rule}"
    if finding.element:
        text += f" (element {finding.element})"
    return text


def finding(value: Finding, fix: Optional[Json] = None) -> Json:
    """One finding. `fix`: what would lift it (a `command`), or None."""
    return {
        "layer": value.layer,
        "kind": _kind(value),
        "owner": value.owner.partition(":")[0] or "manual",
        "jail": _jail(value),
        "source": value.source or None,
        "detail": detail(value),
        "on_path": value.on_path,
        "targeted": value.targeted,
        "banned_at": iso_time(value.banned_at),
        "expires_at": iso_time(value.expires_at),
        "permanent": value.permanent,
        "fix": fix,
        "network": value.network,
        "backend": value.backend or None,
        "family": value.family or None,
        "table": value.table or None,
        "chain": value.chain,
        "line": value.line,
        "handle": value.handle,
        "rule": value.rule,
        "verdict": value.verdict,
        "set_name": value.set_name,
        "element": value.element,
        "lift": value.lift or None,
        "clears": list(value.clears),
        "lifts_own": value.lifts_own,
    }


def refusal(value: Any) -> Json:
    """Something that still refuses the address (me.Refusal) as a finding: a layer's finding
    with its fix, or a way to sshd or an sshd check no layer could make a finding of."""
    fix = (
        (command(value.fix, value.argv) if value.argv else advice(value.fix)) if value.fix else None
    )
    if value.finding is not None:
        return finding(value.finding, fix)
    return {
        "layer": value.key,
        "kind": "way" if value.key == "firewall" else "sshd-check",
        "owner": "manual" if value.key == "firewall" else "sshd",
        "jail": None,
        "source": None,
        "detail": value.what,
        "on_path": True,
        "targeted": value.key != "firewall",
        "banned_at": None,
        "expires_at": None,
        "permanent": False,
        "fix": fix,
    }


def findings_with_fixes(found: Sequence[Finding], refused: Sequence[Any]) -> list[Json]:
    """`found`, each with the fix of its refusal (none for those off the way)."""
    fixes = {r.finding: refusal(r)["fix"] for r in refused if r.finding is not None}
    return [finding(f, fixes.get(f)) for f in found]


def layer_status(status: LayerStatus) -> Json:
    return {"layer": status.layer, "present": status.present, "detail": status.detail}


def way(summary: Any) -> Json:
    """One way to sshd, as the path evaluator judged it (path.evaluate.PathSummary)."""
    return {
        "source": summary.source,
        "destination": summary.destination or None,
        "port": summary.port,
        "interface": summary.interface or None,
        "verdict": summary.verdict,
        "open": summary.is_open,
        "stops": list(summary.stops),
        "path": list(summary.path),
        "text": summary.line(),
    }


# ---------------------------------------------------------------- plans


def _action(step: Step) -> str:
    found = step.finding
    if found.layer == "fail2ban":
        return "unban"
    if found.layer == "sshd":
        return "exempt"
    if found.layer == "hosts":
        return "edit" if found.targeted else "grant"
    return "admit" if found.lift == "admit" else "remove"


def step(value: Step, layer: str, scope: str, what: str) -> Json:
    """One layer step; `what` says in words what it does."""
    fix = command(value.command)
    return {
        "layer": layer,
        "scope": scope,
        "action": _action(value),
        "argv": fix["argv"],
        "text": value.command,
        "what": what,
        "undo": command(value.undo_command) if value.undo_command else None,
        "finding": finding(value.finding, fix),
        "file": None,
    }


def file_edit(path: str, before: Optional[str], after: Optional[str], diff: list[str]) -> Json:
    return {"path": path, "before": before, "after": after, "diff": diff}


def exemption_steps(
    source: str, edits: Sequence[Any], runs: Sequence[tuple[str, str]]
) -> list[Json]:
    """An exemption (fail2ban's ignoreip, ...) as plan steps: one per file it writes (`edits`,
    with the file's text before and after), one per live command it runs (`runs`: the
    command's text and its undo's)."""
    steps: list[Json] = []
    for edit in edits:
        verb = "remove" if edit.after is None else "write"
        steps.append(
            {
                "layer": "exemption",
                "scope": source,
                "action": verb,
                "argv": None,
                "text": f"{verb} {edit.path}",
                "what": f"exempt the address from {source}: {verb} {edit.path}",
                "undo": advice("unban undo (puts the file back from the change set)"),
                "finding": None,
                "file": file_edit(edit.path, edit.before, edit.after, edit.diff()),
            }
        )
    for shell, undo in runs:
        steps.append(
            {
                "layer": "exemption",
                "scope": source,
                "action": "run",
                "argv": argv_of(shell),
                "text": shell,
                "what": f"exempt the address from {source} at once: {shell}",
                "undo": command(undo) if undo else advice("unban undo"),
                "finding": None,
                "file": None,
            }
        )
    return steps


def plan(value: Plan, what: Any, extra: Sequence[Json] = ()) -> Json:
    """The plan's steps in the order they are applied, then `extra` (exemption steps);
    `what(step)` says in words what a layer step does."""
    steps = [
        step(s, batch.layer, batch.scope, what(s)) for batch in value.batches for s in batch.steps
    ]
    steps.extend(extra)
    return {"changes": len(steps), "steps": steps}


def planned_findings(value: Plan) -> list[Json]:
    """The findings the plan lifts, once each, in plan order, each with its step's command
    as the fix."""
    first: dict[Finding, Step] = {}
    for s in value.steps:
        first.setdefault(s.finding, s)
    return [finding(f, command(s.command)) for f, s in first.items()]
