"""CrowdSec's exemption: an allowlist entry (cscli 1.6+), else a whitelist parser.

- cscli with `allowlists` (1.6+): the address in allowlist `unban` (created when missing), which
  the local API applies at once to log alerts, blocklists and `cscli decisions add`.
- older cscli (Debian 12 has 1.4.6): unban's own whitelist parser,
  PARSERS/s02-enrich/unban-whitelists.yaml (ip and cidr lists), then a reload: the agent drops
  the events of a whitelisted address, so its logs ban it no more. A manual `cscli decisions
  add` still bans it (a parser whitelist only sees log events). The reload is `systemctl reload
  crowdsec` under systemd, else SIGHUP to the agent, which 1.4 survives only with
  `daemonize: true` in config.yaml (with `daemonize: false` it exits: unban does not send it
  then and says so).

Whether the address is exempt now is read from the same places (and from every other
whitelist parser in s02-enrich: the stock one whitelists private ranges).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import time
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from unban.address import Network, parse_network, show
from unban.exemptions import (
    EXEMPTION_KIND,
    IGNORE,
    Command,
    ExemptionError,
    ExemptionPlan,
    ExemptionState,
    FileEdit,
)
from unban.owners.crowdsec import CONFIG, agent_pid, nested_scalar
from unban.owners.sshguard import covers
from unban.procfs import read_text
from unban.reverter import APPLIED, FILES_FIRST, PENDING, ChangeSet
from unban.system import run, which

NAME = "crowdsec"
FILE_NAME = "unban-whitelists.yaml"
FILE_KIND = "crowdsec-whitelist-parser"
ALLOWLIST = "unban"
SYSTEMD_RUNNING = "/run/systemd/system"
RELOAD_WAIT = 20.0
HEADER = (
    "# Written by unban (`unban ignore`, `unban me`): addresses CrowdSec's agent never bans\n"
    "# from its logs. `unban unignore ADDRESS` takes one out.\n"
)


# ---------------------------------------------------------------- the parser file (pure)


def whitelist_values(text: str) -> list[str]:
    """The `ip:` and `cidr:` items under `whitelist:` of a parser YAML (simple block lists)."""
    values: list[str] = []
    inside = False
    listing = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not line[0].isspace():
            inside = stripped.startswith("whitelist:")
            listing = False
            continue
        if not inside:
            continue
        if stripped.endswith(":") or (":" in stripped and not stripped.startswith("-")):
            listing = stripped.split(":", 1)[0].strip() in ("ip", "cidr")
            continue
        if listing and stripped.startswith("-"):
            values.append(stripped[1:].split(" #", 1)[0].strip().strip("\"'"))
    return values


def render_parser(values: Sequence[str]) -> Optional[str]:
    """unban's whitelist parser for `values` (None: no value left, the file goes)."""
    ips = [v for v in values if "/" not in v]
    cidrs = [v for v in values if "/" in v]
    if not ips and not cidrs:
        return None
    lines = [
        HEADER.rstrip("\n"),
        "name: unban/whitelists",
        'description: "Addresses unban keeps out of CrowdSec\'s bans"',
        "whitelist:",
        '  reason: "unban: protected address"',
    ]
    if ips:
        lines += ["  ip:", *(f'    - "{v}"' for v in ips)]
    if cidrs:
        lines += ["  cidr:", *(f'    - "{v}"' for v in cidrs)]
    return "\n".join(lines) + "\n"


class CrowdsecExemption:
    name = NAME

    def __init__(
        self, config: str = CONFIG, *, proc: str = "/proc", require_running: bool = True
    ) -> None:
        self.config = config
        self.proc = proc
        self.require_running = require_running

    # -- reading

    def installed(self) -> bool:
        return which("cscli") is not None and os.path.isfile(self.config)

    def present(self) -> bool:
        """Installed, and (unless asked by name) its agent runs here: an agent that is not
        running bans nobody, and its config may not be this host's to change."""
        if not self.installed():
            return False
        return not self.require_running or agent_pid(self.proc) is not None

    def parsers_dir(self) -> str:
        text = read_text(self.config) or ""
        base = nested_scalar(text, "config_paths", "config_dir") or "/etc/crowdsec/"
        return os.path.join(base, "parsers", "s02-enrich")

    def parser_path(self) -> str:
        return os.path.join(self.parsers_dir(), FILE_NAME)

    def has_allowlists(self) -> bool:
        proc = run(NAME, ["cscli", "-c", self.config, "allowlists", "--help"], check=False)
        return proc.returncode == 0 and "unknown command" not in (proc.stdout + proc.stderr)

    def _allowlisted(self) -> Optional[list[str]]:
        """The values of allowlist `unban` (None: it does not exist)."""
        proc = run(
            NAME,
            ["cscli", "-c", self.config, "allowlists", "inspect", ALLOWLIST, "-o", "json"],
            check=False,
        )
        if proc.returncode != 0:
            return None
        return [str(v) for v in _values(json.loads(proc.stdout or "null"))]

    def _whitelisted(self, target: Network) -> str:
        directory = self.parsers_dir()
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return ""
        for name in names:
            if not name.endswith((".yaml", ".yml")):
                continue
            path = os.path.join(directory, name)
            for value in whitelist_values(read_text(path) or ""):
                if covers(value, target):
                    return f"whitelist parser {path} ({value})"
        return ""

    def state(self, target: Network) -> ExemptionState:
        if not self.installed():
            return ExemptionState(NAME, False, False, "CrowdSec is not installed")
        if not self.present():
            return ExemptionState(NAME, False, False, "its agent is not running here")
        if self.has_allowlists():
            values = self._allowlisted() or []
            if any(covers(v, target) for v in values):
                return ExemptionState(NAME, True, True, f"in allowlist {ALLOWLIST}")
        where = self._whitelisted(target)
        if where:
            return ExemptionState(NAME, True, True, where)
        return ExemptionState(NAME, True, False, "in no allowlist or whitelist parser")

    # -- planning

    def plan(self, operation: str, target: Network) -> Optional[ExemptionPlan]:
        if not self.present():
            return None
        if self.has_allowlists():
            return self._allowlist_plan(operation, target)
        return self._parser_plan(operation, target)

    def _allowlist_plan(self, operation: str, target: Network) -> ExemptionPlan:
        address = show(target)
        values = self._allowlisted()
        base = ["cscli", "allowlists"]
        commands: list[Command] = []
        if operation == IGNORE:
            if values is None:
                create = (*base, "create", ALLOWLIST, "-d", "addresses unban keeps unbanned")
                commands.append(Command(create, shlex.join(create)))
            if not any(covers(v, target) for v in values or []):
                add = (*base, "add", ALLOWLIST, address, "-d", "unban")
                commands.append(Command(add, " ".join(add), (*base, "remove", ALLOWLIST, address)))
        elif any(parse_network(v) == target for v in values or []):
            remove = (*base, "remove", ALLOWLIST, address)
            commands.append(Command(remove, " ".join(remove), (*base, "add", ALLOWLIST, address)))
        verb = "add" if operation == IGNORE else "take out"
        lines = (f"{verb} {address} in CrowdSec allowlist {ALLOWLIST}",) if commands else ()
        return ExemptionPlan(NAME, operation, address, (), tuple(commands), lines)

    def _parser_plan(self, operation: str, target: Network) -> ExemptionPlan:
        address = show(target)
        path = self.parser_path()
        text = read_text(path)
        values = whitelist_values(text or "")
        if operation == IGNORE:
            if self._whitelisted(target):
                return ExemptionPlan(NAME, operation, address)
            after = render_parser([*values, address])
        else:
            kept = [v for v in values if parse_network(v) != target]
            if len(kept) == len(values):
                return ExemptionPlan(NAME, operation, address)
            after = render_parser(kept)
        edit = FileEdit(path, text, after)
        verb = "add" if operation == IGNORE else "take"
        lines = [
            f"{verb} {address} {'to' if operation == IGNORE else 'out of'} whitelist parser {path}"
        ]
        notes = [
            "a parser whitelist stops bans from CrowdSec's logs; `cscli decisions add` still bans"
        ]
        commands: tuple[Command, ...] = ()
        reload = self._reload_command()
        if isinstance(reload, str):
            notes.append(reload)
        elif reload is not None:
            commands = (reload,)
            lines.append("reload crowdsec: it reads its parsers at start and on reload")
        return ExemptionPlan(
            NAME, operation, address, (edit,), commands, tuple(lines), tuple(notes)
        )

    def _reload_command(self) -> Any:
        """The reload as a Command, a note (str) when unban must not send it, or None."""
        if os.path.isdir(SYSTEMD_RUNNING):
            argv = ("systemctl", "reload", "crowdsec.service")
            return Command(argv, " ".join(argv))
        pid = agent_pid(self.proc)
        if pid is None:
            return None  # not running: the parser is read at its next start
        daemonize = nested_scalar(read_text(self.config) or "", "common", "daemonize")
        if daemonize != "true":
            return (
                f"crowdsec (pid {pid}) runs with daemonize: {daemonize or 'unset'}, and 1.4 exits "
                "on SIGHUP then: restart it yourself to load the whitelist"
            )
        return Command(("kill", "-HUP", str(pid)), f"kill -HUP {pid}")

    # -- changing

    def apply(self, plan: ExemptionPlan, change_set: ChangeSet) -> list[str]:
        """Each change is recorded before it is made: the parser file goes through the change
        set (`ChangeSet.write`), its reload an action with the file as FILES_FIRST (undo puts
        the file back, then reloads), each `cscli allowlists` call an action with its inverse."""
        done = []
        for edit in plan.edits:
            if read_text(edit.path) != edit.before:
                raise ExemptionError(f"{edit.path} changed while unban was working; run it again")
        reload = next((c.argv for c in plan.commands if c.argv[0] in ("kill", "systemctl")), ())
        reloading = None
        if plan.edits and reload:
            reloading = change_set.record_action(
                EXEMPTION_KIND,
                source=NAME,
                reload=list(reload),
                state=PENDING,
                summary=f"crowdsec reloaded for its whitelist parser ({plan.address})",
                **{FILES_FIRST: [edit.path for edit in plan.edits]},
            )
        for edit in plan.edits:
            data = None if edit.after is None else edit.after.encode("utf-8")
            change_set.write(edit.path, data, mode=0o644, kind=FILE_KIND)
            done.append(f"crowdsec: {'removed' if data is None else 'wrote'} {edit.path}")
        for command in plan.commands:
            if command.argv[0] == "cscli":
                index = None
                if command.undo:
                    index = change_set.record_action(
                        EXEMPTION_KIND,
                        source=NAME,
                        undo=list(command.undo),
                        state=PENDING,
                        summary=f"crowdsec: {command.shell}",
                    )
                run(NAME, ["cscli", "-c", self.config, *command.argv[1:]])
                if index is not None:
                    change_set.update_action(index, state=APPLIED)
                done.append(f"crowdsec: $ {command.shell}")
        if reloading is not None:
            self._reload(reload)
            change_set.update_action(reloading, state=APPLIED)
            done.append(f"crowdsec: reloaded ($ {' '.join(reload)})")
        return done

    def revert(self, action: Mapping[str, Any]) -> None:
        """A cscli call's inverse (a pending one may not have run: its inverse may fail), or
        the reload once the parser file is back."""
        undo = [str(a) for a in action.get("undo") or ()]
        if undo:
            pending = action.get("state") == PENDING
            run(NAME, ["cscli", "-c", self.config, *undo[1:]], check=not pending)
            return
        reload = [str(a) for a in action.get("reload") or ()]
        if reload and (reload[0] == "systemctl" or agent_pid(self.proc) is not None):
            if reload[0] == "kill":
                reload = ["kill", "-HUP", str(agent_pid(self.proc))]
            self._reload(reload)

    def _reload(self, argv: Sequence[str]) -> None:
        """Reload and wait until the agent says the reload is finished (its log), bounded."""
        log = self._log_path()
        start = os.path.getsize(log) if log and os.path.exists(log) else 0
        if argv[0] == "kill":
            try:
                os.kill(int(argv[-1]), signal.SIGHUP)
            except (ProcessLookupError, ValueError) as exc:
                raise ExemptionError(f"crowdsec reload ($ {' '.join(argv)}): {exc}") from None
        else:
            run(NAME, list(argv), timeout=60)
        if not log:
            return
        deadline = time.monotonic() + RELOAD_WAIT
        while time.monotonic() < deadline:
            with open(log, "rb") as handle:
                handle.seek(start)
                if b"Reload is finished" in handle.read():
                    return
            time.sleep(0.2)
        raise ExemptionError(
            f"crowdsec did not finish its reload within {RELOAD_WAIT:.0f} s ({log})"
        )

    def _log_path(self) -> str:
        text = read_text(self.config) or ""
        if (nested_scalar(text, "common", "log_media") or "file") != "file":
            return ""
        directory = nested_scalar(text, "common", "log_dir") or "/var/log/"
        return os.path.join(directory, "crowdsec.log")


def _values(data: Any) -> list[str]:
    """Every `value` field anywhere in cscli's JSON (allowlist items)."""
    out: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "value" and isinstance(value, str):
                out.append(value)
            else:
                out.extend(_values(value))
    elif isinstance(data, list):
        for item in data:
            out.extend(_values(item))
    return out
