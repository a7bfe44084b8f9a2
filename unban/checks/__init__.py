"""What doctor, find and me say about one possible cause of a refusal: a judged `Check`, and
the order a new connection meets the causes in. Pure values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from unban.path.model import BLOCKS, CLEAR, MAY_BLOCK, NOT_PRESENT

VERDICT_RANK = {BLOCKS: 0, MAY_BLOCK: 1, CLEAR: 2, NOT_PRESENT: 3}

# What the client sees for each way of refusing it (measured: ../shared/field-notes.md).
SEES_TIMEOUT = "ssh: connect to host ... port 22: Connection timed out"
SEES_REFUSED = "ssh: connect to host ... port 22: Connection refused"
SEES_UNREACHABLE = "ssh: connect to host ... port 22: No route to host"
SEES_RESET = "kex_exchange_identification: read: Connection reset by peer"
SEES_DENIED = "Permission denied (publickey,password)"


@dataclass(frozen=True)
class Check:
    """One possible cause, judged.

    `key` is stable (scripts and `--json` readers can rely on it): fail2ban, firewall,
    route, listen, tcpwrappers, maxstartups, penalties, users, logs, sshd.
    `data` holds the machine-readable details (rule references, file and line).
    """

    key: str
    title: str
    verdict: str
    summary: str
    evidence: tuple[str, ...] = ()
    fix: tuple[str, ...] = ()
    client_sees: str = ""
    data: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


# The order a new connection meets the causes in; among equal verdicts, earlier comes first.
CHECK_ORDER = (
    "fail2ban",
    "firewall",
    "route",
    "listen",
    "tcpwrappers",
    "maxstartups",
    "penalties",
    "sshd",
    "users",
    "logs",
)


def ordered(checks: Sequence[Check]) -> list[Check]:
    """Most likely cause first: blocks, may block, clear, not present; then by path order."""
    position = {key: i for i, key in enumerate(CHECK_ORDER)}
    indexed = list(enumerate(checks))
    indexed.sort(
        key=lambda item: (
            VERDICT_RANK[item[1].verdict],
            position.get(item[1].key, len(CHECK_ORDER)),
            item[0],
        )
    )
    return [check for _i, check in indexed]


@dataclass(frozen=True)
class Diagnosis:
    address: str
    port: int
    user: Optional[str]
    server_address: Optional[str]
    checks: tuple[Check, ...]
    notes: tuple[str, ...] = ()

    @property
    def verdict(self) -> str:
        verdicts = {c.verdict for c in self.checks}
        if BLOCKS in verdicts:
            return BLOCKS
        return MAY_BLOCK if MAY_BLOCK in verdicts else CLEAR

    @property
    def cause(self) -> Optional[Check]:
        """The most likely cause, when something blocks or may block."""
        first = self.checks[0] if self.checks else None
        return first if first is not None and first.verdict in (BLOCKS, MAY_BLOCK) else None
