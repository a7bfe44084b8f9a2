"""What `unban ignore` / `unban unignore` would write into fail2ban's jail files, as values (pure):
for each jail, the edit that puts the address into (or takes it out of) its effective ignoreip,
and the live `fail2ban-client set JAIL addignoreip/delignoreip` that makes a running server agree.
unban.fail2ban.ignoreip checks, writes and applies them (where to write: its docstring).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

from unban.address import Network
from unban.errors import InputError
from unban.fail2ban.config import (
    ConfigError,
    Origin,
    Tree,
    read_tree,
    splitwords,
    static_values,
)
from unban.fail2ban.ignorelist import (
    append_token,
    covering,
    entry_network,
    exact,
    remove_tokens,
    spelling,
)

if TYPE_CHECKING:
    from configupdater import ConfigUpdater
    from configupdater.option import Option


@dataclass(frozen=True)
class JailState:
    jail: str
    status: str  # already | added | removed | absent | kept
    detail: str
    source: str = ""  # where the effective value comes from, after the change


@dataclass(frozen=True)
class FileEdit:
    path: str
    before: Optional[str]  # None: the file is new
    after: str

    def diff(self) -> list[str]:
        old = (self.before or "").splitlines(keepends=True)
        new = self.after.splitlines(keepends=True)
        return [
            line.rstrip("\n")
            for line in difflib.unified_diff(
                old, new, self.path if self.before is not None else "/dev/null", self.path
            )
        ]


@dataclass(frozen=True)
class LiveChange:
    jail: str
    command: tuple[str, ...]
    undo: tuple[str, ...]
    shell: str


@dataclass(frozen=True)
class IgnorePlan:
    operation: str  # ignore | unignore
    address: str
    confdir: str
    jails: tuple[JailState, ...]
    edits: tuple[FileEdit, ...]
    live: tuple[LiveChange, ...] = ()
    notes: tuple[str, ...] = ()
    socket: Optional[str] = None

    def is_empty(self) -> bool:
        return not self.edits and not self.live


def _where(origin: Optional[Origin]) -> str:
    if origin is None:
        return "not set anywhere"
    line = f" line {origin.line}" if origin.line else ""
    return f"{origin.path} [{origin.section}]{line}"


def _editable_name(path: str) -> bool:
    return path.endswith(".local")


class _Editor:
    """configupdater documents for the files being changed, keyed by path."""

    def __init__(self, texts: Mapping[str, Optional[str]]) -> None:
        self.texts = dict(texts)
        self.docs: dict[str, ConfigUpdater] = {}
        self.changed: set[str] = set()

    def doc(self, path: str) -> ConfigUpdater:
        if path not in self.docs:
            from configupdater import ConfigUpdater  # only an edit needs it (slow to import)

            updater = ConfigUpdater()
            text = self.texts.get(path)
            if text is None and os.path.isfile(path):
                with open(path, encoding="utf-8") as handle:
                    text = handle.read()
                self.texts[path] = text
            try:
                updater.read_string(text or "", source=path)
            except Exception as exc:  # noqa: BLE001 - configupdater raises configparser errors
                lineno = getattr(exc, "lineno", None)
                where = f", line {lineno}" if lineno else ""
                raise ConfigError(f"{path}{where}: configupdater cannot parse it: {exc}") from None
            self.docs[path] = updater
        return self.docs[path]

    def option(self, path: str, section: str) -> Option:
        from configupdater.option import Option

        section_block = self.doc(path)[section]
        option = section_block.get("ignoreip")
        assert isinstance(option, Option)
        return option

    def append(self, path: str, section: str, token: str) -> None:
        option = self.option(path, section)
        option.lines[:] = append_token(option.lines, token)
        self.changed.add(path)

    def remove(self, path: str, section: str, matches: Callable[[str], bool]) -> int:
        option = self.option(path, section)
        lines, removed = remove_tokens(option.lines, matches)
        if removed:
            option.lines[:] = lines
            self.changed.add(path)
        return removed

    def set_new(self, path: str, section: str, value: str) -> None:
        from configupdater import ConfigUpdater

        doc = self.doc(path)
        if not doc.has_section(section):
            text = str(doc)
            if text and not text.endswith("\n"):
                text += "\n"
            if text.strip() and not text.endswith("\n\n"):
                text += "\n"
            text += f"[{section}]\nignoreip = {value}\n"
            fresh = ConfigUpdater()
            fresh.read_string(text, source=path)
            self.docs[path] = fresh
        else:
            doc[section]["ignoreip"] = value
            # read it back: an option set this way has no lines yet, and a later append
            # (another jail sharing this section) edits its lines
            fresh = ConfigUpdater()
            fresh.read_string(str(doc), source=path)
            self.docs[path] = fresh
        self.changed.add(path)

    def results(self) -> dict[str, str]:
        return {path: str(self.docs[path]) for path in sorted(self.changed)}


def plan_edits(
    tree: Tree,
    jails: Sequence[str],
    target: Network,
    *,
    restricted: bool,
    refuse: Callable[[str], Optional[str]] = lambda path: None,
) -> tuple[dict[str, str], list[JailState], list[str]]:
    """Config edits that put `target` into every jail's effective ignoreip. Pure.

    Returns (new texts by path, per-jail states, notes). `refuse(path)` says why a file must not
    be written (symlink out, group-writable), or None.
    """
    confdir = tree.confdir
    local = os.path.join(confdir, "jail.local")
    token = spelling(target)
    editor = _Editor({})
    states: list[JailState] = []
    notes: list[str] = []
    done_default: Optional[str] = None
    for jail in jails:
        entries = splitwords(tree.get(jail, "ignoreip", static_values(tree)))
        cover = covering(entries, target)
        origin = tree.origin(jail, "ignoreip")
        if cover is not None:
            how = "" if cover == token else f" (through {cover})"
            states.append(JailState(jail, "already", f"already ignored{how}", _where(origin)))
            continue
        own = tree.own(jail, "ignoreip")
        shared = origin.path if origin is not None else (None if restricted else local)
        if not own and done_default is not None and done_default == shared:
            states.append(JailState(jail, "added", "added through [DEFAULT]", _where(origin)))
            continue
        if origin is not None and _editable_name(origin.path) and (own or not restricted):
            why = refuse(origin.path)
            if why:
                raise InputError(why)
            editor.append(origin.path, origin.section, token)
            if not own:
                done_default = origin.path
            states.append(JailState(jail, "added", f"added to {_where(origin)}", _where(origin)))
            continue
        why = refuse(local)
        if why:
            raise InputError(why)
        if origin is None:
            section = jail if restricted else "DEFAULT"
            value = token
        elif own or restricted:
            section = jail
            value = f"%(known/ignoreip)s {token}"
        else:
            section = "DEFAULT"
            raw = tree.raw("DEFAULT", "ignoreip") or ""
            value = " ".join([*splitwords(raw), token]) if "%" not in raw else f"{raw} {token}"
        if editor.doc(local).has_section(section) and editor.doc(local)[section].has_option(
            "ignoreip"
        ):
            editor.append(local, section, token)
        else:
            editor.set_new(local, section, value)
        if section == "DEFAULT":
            done_default = local
        if origin is not None and not _editable_name(origin.path):
            notes.append(
                f"{_where(origin)} sets ignoreip for {jail}; unban leaves "
                f"{os.path.basename(origin.path)} alone (package upgrades overwrite it): "
                f"the effective value now comes from {local} [{section}]"
            )
        states.append(
            JailState(jail, "added", f"added to {local} [{section}]", f"{local} [{section}]")
        )
    return editor.results(), states, notes


def plan_removals(
    tree: Tree,
    jails: Sequence[str],
    target: Network,
    *,
    restricted: bool,
    refuse: Callable[[str], Optional[str]] = lambda path: None,
) -> tuple[dict[str, str], list[JailState], list[str]]:
    """Config edits that take `target` (exact entries) out of every jail's ignoreip. Pure."""
    editor = _Editor({})
    states: list[JailState] = []
    notes: list[str] = []
    overrides: dict[str, str] = {}
    for jail in jails:
        current = tree if not overrides else read_tree(tree.confdir, "jail", overrides)
        entries = splitwords(current.get(jail, "ignoreip", static_values(current)))
        if not exact(entries, target):
            cover = covering(entries, target)
            if cover:
                states.append(
                    JailState(jail, "kept", f"not listed itself, but {cover} still covers it")
                )
            else:
                states.append(JailState(jail, "absent", "not in ignoreip"))
            continue
        candidates: list[Origin] = []
        if current.own(jail, "ignoreip"):
            own = current.origins.get((jail, "ignoreip"))
            if own:
                candidates.append(own)
            history = current.history.get((jail, "ignoreip"), [])
            if len(history) > 1:
                candidates.append(history[-2])
        default = current.origins.get(("DEFAULT", "ignoreip"))
        if default:
            candidates.append(default)
        removed_from: list[str] = []
        for origin in candidates:
            if not _editable_name(origin.path):
                continue
            if origin.section == "DEFAULT" and restricted:
                notes.append(
                    f"{target} is in [DEFAULT] ignoreip of {origin.path}, which other jails "
                    f"share: run without --jail to take it out there"
                )
                continue
            why = refuse(origin.path)
            if why:
                raise InputError(why)
            if editor.remove(origin.path, origin.section, lambda t: entry_network(t) == target):
                removed_from.append(_where(origin))
        overrides = editor.results()
        after = read_tree(tree.confdir, "jail", overrides) if overrides else tree
        left = exact(splitwords(after.get(jail, "ignoreip", static_values(after))), target)
        if left:
            where = [o for o in candidates if not _editable_name(o.path)]
            place = _where(where[0]) if where else _where(after.origin(jail, "ignoreip"))
            states.append(
                JailState(jail, "kept", f"still listed in {place}; unban does not edit it")
            )
        else:
            states.append(JailState(jail, "removed", "removed from " + ", ".join(removed_from)))
    return editor.results(), states, notes
