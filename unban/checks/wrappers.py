"""doctor's TCP wrappers check: hosts.allow / hosts.deny as libwrap evaluates them for sshd, and
the edit that lets the address in. Pure."""

from __future__ import annotations

import shlex
from typing import Any, Optional

from unban.checks import SEES_RESET, Check
from unban.hostsedit import client_pattern
from unban.path.model import BLOCKS, CLEAR, MAY_BLOCK, NOT_PRESENT, Match
from unban.tcpwrappers import Decision, EntryMatch


def tcpwrappers_check(
    decision: Decision,
    address: str,
    *,
    libwrap: Optional[bool],
    allow_path: str,
    deny_path: str,
    allow_empty: bool = True,
    daemon: str = "sshd",
) -> Check:
    title = "TCP wrappers (hosts.allow / hosts.deny)"
    data: dict[str, Any] = {
        "allowed": decision.allowed,
        "decided_by": _entry_data(decision.decided_by),
        "matches": [_entry_data(m) for m in decision.matches],
    }
    decided: Optional[EntryMatch] = decision.decided_by
    refused = decision.allowed is False
    if libwrap is False:
        extra = (
            f" ({decided.entry.location()} would refuse {address}, but this sshd does not read it)"
            if refused and decided
            else ""
        )
        return Check(
            "tcpwrappers",
            title,
            NOT_PRESENT,
            f"this sshd is not linked with libwrap: {allow_path} and {deny_path} do not apply{extra}",
            data=data,
        )
    note = (
        ()
        if libwrap
        else ("ldd could not tell whether sshd uses libwrap; evaluated as if it does",)
    )
    if decision.allowed is True:
        if decided is not None:
            summary = f"{decided.entry.location()} grants {address}: {decided.entry.display()}"
        else:
            summary = f"no entry in {allow_path} or {deny_path} refuses {address}"
        return Check("tcpwrappers", title, CLEAR, summary, note, data=data)
    evidence = list(note)
    for m in decision.maybe:
        evidence.append(f"{m.entry.location()}: {m.entry.display()}  ({m.reason})")
        evidence.extend(f"  unknown: {u}" for u in m.uncertain)
    if decided is not None:
        evidence.append(
            f"{decided.entry.location()}: {decided.entry.display()}  ({decided.reason})"
        )
    for m in decision.matches:
        if m is not decided and m not in decision.maybe and m.decides_deny:
            evidence.append(
                f"also refuses it after that: {m.entry.location()}: {m.entry.display()}"
            )
    fixes = _tcpwrappers_fixes(decision, address, allow_path, allow_empty, daemon)
    sees = SEES_RESET + " (after about 5 s: libwrap waits before closing)"
    if refused and decided is not None:
        summary = f"{decided.entry.location()} refuses {address}: {decided.entry.display()}"
        return Check("tcpwrappers", title, BLOCKS, summary, tuple(evidence), fixes, sees, data)
    summary = f"{allow_path} / {deny_path} may refuse {address}"
    return Check("tcpwrappers", title, MAY_BLOCK, summary, tuple(evidence), fixes, sees, data)


def _entry_data(match: Optional[EntryMatch]) -> Optional[dict[str, Any]]:
    if match is None:
        return None
    entry = match.entry
    return {
        "file": entry.path,
        "line": entry.line,
        "end_line": entry.end_line,
        "entry": entry.display(),
        "matched": match.matched_client,
        "effect": match.effect,
        "certain": match.match is Match.YES,
        "owner": entry.owner,
        "reason": match.reason,
    }


def _tcpwrappers_fixes(
    decision: Decision, address: str, allow_path: str, allow_empty: bool, daemon: str
) -> tuple[str, ...]:
    """Remove the refusing entry (only that entry), or grant the address in hosts.allow."""
    fixes: list[str] = []
    token = client_pattern(address)
    decided = decision.decided_by
    if decided is not None and decided.effect == "deny":
        entry = decided.entry
        span = f"{entry.line}" if entry.line == entry.end_line else f"{entry.line},{entry.end_line}"
        if len(entry.client_tokens) == 1 and decided.matched_client is not None:
            fixes.append(f"sed -i '{span}d' {shlex.quote(entry.path)}")
        elif decided.matched_client:
            fixes.append(
                f"edit {entry.path} line {entry.line}: take '{decided.matched_client}' out of "
                f"'{entry.clients.strip()}'"
            )
        if entry.owner == "sshguard":
            fixes.append("sshguard wrote that entry: it may write it again until its block expires")
    # A grant at the very top of hosts.allow comes before every refusal.
    grant = f"{daemon}: {token}"
    if allow_empty:
        fixes.append(f"echo '{grant}' >> {allow_path}")
    else:
        fixes.append(f"sed -i '1i {grant}' {shlex.quote(allow_path)}")
    return tuple(dict.fromkeys(fixes))
