"""The log check: what the logs say about refusing the address (never more than "may block":
a line says what happened, not what holds now)."""

from __future__ import annotations

from collections.abc import Sequence

from unban.checks import Check
from unban.logs import BLOCKING_LOG_KINDS, LogHit
from unban.path.model import CLEAR, MAY_BLOCK, NOT_PRESENT


def logs_check(hits: Sequence[LogHit], sources: Sequence[str], address: str) -> Check:
    title = "logs"
    if not sources:
        return Check(
            "logs", title, NOT_PRESENT, "no journal and no auth.log, secure or fail2ban.log found"
        )
    banned = [h for h in hits if h.kind in ("fail2ban-ban", "fail2ban-unban")]
    blocking = [h for h in hits if h.kind in BLOCKING_LOG_KINDS and h.kind != "fail2ban-ban"]
    if banned and banned[-1].kind == "fail2ban-ban":
        blocking.append(banned[-1])
    failures = [h for h in hits if h.kind == "auth-failure"]
    evidence = [f"{h.line}" for h in hits if h.kind not in ("auth-failure", "admitted")][-12:]
    if failures:
        evidence.append(
            f"{len(failures)} failed login(s) from {address} (what fail2ban counts); last: "
            f"{failures[-1].line}"
        )
    data = {"sources": list(sources), "counts": _counts(hits)}
    read = f"read {', '.join(sources)}"
    if not blocking:
        return Check(
            "logs",
            title,
            CLEAR,
            f"nothing about refusing {address} ({read})",
            tuple(evidence),
            data=data,
        )
    kinds = ", ".join(dict.fromkeys(h.kind for h in blocking))
    return Check(
        "logs",
        title,
        MAY_BLOCK,
        f"{len(blocking)} line(s) about refusing {address} ({kinds}); {read}",
        tuple(evidence),
        data=data,
    )


def _counts(hits: Sequence[LogHit]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for hit in hits:
        counts[hit.kind] = counts.get(hit.kind, 0) + 1
    return counts
