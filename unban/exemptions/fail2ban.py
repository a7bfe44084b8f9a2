"""fail2ban's exemption: the address in the effective ignoreip of every enabled jail.

A wrapper around unban.fail2ban.ignoreip (which plans, writes, checks with `fail2ban-client -d`
and adds live). fail2ban counts as present only where it is installed and configured (its
binaries, and jail.conf or jail.local in the config dir): a host without fail2ban gets no
jail.local.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from unban.address import Network
from unban.exemptions import (
    IGNORE,
    Command,
    ExemptionPlan,
    ExemptionState,
    FileEdit,
)
from unban.reverter import ChangeSet
from unban.system import which

NAME = "fail2ban"


def installed() -> bool:
    return which("fail2ban-server") is not None or which("fail2ban-client") is not None


def configured(confdir: str) -> bool:
    return any(os.path.isfile(os.path.join(confdir, name)) for name in ("jail.conf", "jail.local"))


class Fail2banExemption:
    """`strict`: a missing or broken config is an error (`unban ignore`), not "not here" (`me`).
    `jails`: only these jails (`--jail`); `force`: ranges wider than /16 or /48 too."""

    name = NAME

    def __init__(
        self,
        confdir: str,
        *,
        strict: bool = False,
        jails: Sequence[str] = (),
        force: bool = False,
    ) -> None:
        self.confdir = confdir
        self.strict = strict
        self.jails = tuple(jails)
        self.force = force
        self.results: list[Any] = []  # ignoreip.IgnoreResult of each apply, in order

    def _present(self) -> bool:
        if self.strict:
            return True  # ignoreip.plan says what is missing
        return installed() and configured(self.confdir)

    def state(self, target: Network) -> ExemptionState:
        from unban.errors import UnbanError
        from unban.fail2ban import ignoreip
        from unban.fail2ban.config import ConfigError

        if not installed():
            return ExemptionState(NAME, False, False, "fail2ban is not installed")
        if not configured(self.confdir):
            return ExemptionState(
                NAME, False, False, f"no jail.conf or jail.local in {self.confdir}"
            )
        try:
            jails = ignoreip.ignored_in(self.confdir, target, self.jails)
        except (UnbanError, ConfigError) as exc:
            return ExemptionState(NAME, True, False, f"ignoreip could not be read: {exc}")
        if not jails:
            return ExemptionState(NAME, True, False, "no enabled jail")
        missing = [jail for jail, entry in jails if entry is None]
        if missing:
            return ExemptionState(NAME, True, False, f"not in the ignoreip of {', '.join(missing)}")
        names = ", ".join(jail for jail, _entry in jails)
        return ExemptionState(NAME, True, True, f"in the ignoreip of {names}")

    def plan(self, operation: str, target: Network) -> Optional[ExemptionPlan]:
        from unban.fail2ban import ignoreip, ignorelist
        from unban.fail2ban.config import ConfigError

        if not self._present():
            return None
        if operation == IGNORE:
            ignorelist.check_range(target, force=self.force)
        try:
            planned = ignoreip.plan(operation, self.confdir, target, self.jails)
        except ConfigError as exc:
            from unban.errors import InputError

            raise InputError(str(exc)) from None
        return from_ignore_plan(planned)

    def apply(self, plan: ExemptionPlan, change_set: ChangeSet) -> list[str]:
        from unban.address import parse_network
        from unban.fail2ban import ignoreip

        target = parse_network(plan.address)
        assert target is not None
        result = ignoreip.apply_into(plan.payload, change_set, target)
        self.results.append(result)
        return done_lines(plan.payload, result)

    def revert(self, action: Mapping[str, Any]) -> None:
        from unban.fail2ban.ignoreip import undo_live

        undo_live(action)


def from_ignore_plan(planned: Any) -> ExemptionPlan:
    """ignoreip's plan as an exemption plan (the IgnorePlan stays its payload)."""
    verb = "add" if planned.operation == IGNORE else "take out"
    lines = [
        f"{state.jail}: {verb} {planned.address} ({state.detail})"
        for state in planned.jails
        if state.status in ("added", "removed")
    ]
    return ExemptionPlan(
        source=NAME,
        operation=planned.operation,
        address=planned.address,
        edits=tuple(FileEdit(e.path, e.before, e.after) for e in planned.edits),
        commands=tuple(Command(c.command, c.shell, c.undo) for c in planned.live),
        lines=tuple(lines),
        notes=tuple(planned.notes),
        payload=planned,
    )


def done_lines(planned: Any, result: Any) -> list[str]:
    """What the ignoreip step did, one line each."""
    lines = []
    for state in planned.jails:
        if state.status in ("added", "removed"):
            lines.append(f"fail2ban ignoreip: {planned.address} {state.detail} ({state.jail})")
    for edit in planned.edits:
        lines.append(f"fail2ban ignoreip: wrote {edit.path}")
    for change in planned.live:
        lines.append(f"fail2ban ignoreip: live, $ {change.shell}")
    if result is not None and result.verified:
        lines.append(f"fail2ban ignoreip: {result.verified}")
    return lines
