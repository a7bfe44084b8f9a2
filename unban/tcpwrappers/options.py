"""An entry's option list (hosts_options(5), Debian's PROCESS_OPTIONS build): what it grants
or refuses, and the options libwrap rejects (which refuse the connection). Pure."""

from __future__ import annotations

import re
from typing import Optional

from unban.tcpwrappers.table import WHITESPACE

_NEED_ARG, _OPT_ARG, _USE_LAST = 1, 2, 4
_OPTIONS = {
    "user": _NEED_ARG,
    "group": _NEED_ARG,
    "umask": _NEED_ARG,
    "linger": _NEED_ARG,
    "keepalive": 0,
    "spawn": _NEED_ARG,
    "twist": _NEED_ARG | _USE_LAST,
    "rfc931": _OPT_ARG,
    "setenv": _NEED_ARG,
    "nice": _OPT_ARG,
    "severity": _NEED_ARG,
    "allow": _USE_LAST,
    "deny": _USE_LAST,
    "banners": _NEED_ARG,
}
_FACILITIES = {
    "auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "syslog",
    "user", "uucp", *(f"local{i}" for i in range(8)),
}  # fmt: skip
_LEVELS = {"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}


def option_effect(options: Optional[str], default_effect: str) -> tuple[str, str, list[str]]:
    """(effect, reason, uncertainties) of an entry's option list once the entry matches."""
    where = "hosts.allow grants" if default_effect == "allow" else "hosts.deny refuses"
    if options is None:
        return default_effect, where, []
    fields = _option_fields(options)
    notes: list[str] = []
    effect = default_effect
    reason = where
    for position, raw_field in enumerate(fields):
        text = raw_field.strip(WHITESPACE)
        key, value = _key_value(text)
        last = position == len(fields) - 1
        refused = "libwrap refuses the connection"
        if not key:
            return "deny", f"an empty option field (a stray ':'): {refused}", notes
        flags = _OPTIONS.get(key.lower())
        if flags is None:
            return "deny", f"unknown option '{key}': {refused}", notes
        if value is None and flags & _NEED_ARG:
            return "deny", f"option '{key}' needs a value: {refused}", notes
        if value is not None and not flags & (_NEED_ARG | _OPT_ARG):
            return "deny", f"option '{key}' takes no value: {refused}", notes
        if flags & _USE_LAST and not last:
            return "deny", f"option '{key}' must be the last one: {refused}", notes
        lowered = key.lower()
        if lowered == "allow":
            return "allow", "option 'allow' grants", notes
        if lowered == "deny":
            return "deny", "option 'deny' refuses", notes
        if lowered == "twist":
            return "deny", f"option 'twist' runs '{value}' in place of sshd", notes
        if lowered in ("user", "group"):
            notes.append(f"option '{key} {value}' changes sshd's credentials before it starts")
            effect, reason = "maybe", f"{where}, but option '{key}' may break sshd"
        elif lowered == "severity" and value is not None and not _valid_severity(value):
            notes.append(f"libwrap refuses the connection if it does not know severity '{value}'")
            effect, reason = "maybe", f"{where}, unless severity '{value}' is unknown to libwrap"
        elif lowered == "umask" and value is not None and not re.fullmatch(r"[0-7]{1,3}", value):
            return "deny", f"bad umask '{value}': {refused}", notes
        elif lowered in ("linger", "nice", "rfc931") and value is not None:
            if not re.fullmatch(r"[+-]?\d+", value):
                return "deny", f"bad number for '{key}': {refused}", notes
    return effect, reason, notes


def _option_fields(options: str) -> list[str]:
    """libwrap's get_field(): split at ':' not preceded by a backslash; '\\:' becomes ':'."""
    fields: list[str] = []
    rest = options
    while rest:
        out = []
        i = 0
        while i < len(rest) and rest[i] != ":":
            if rest[i] == "\\" and i + 1 < len(rest) and rest[i + 1] == ":":
                i += 1
            out.append(rest[i])
            i += 1
        fields.append("".join(out))
        rest = rest[i + 1 :] if i < len(rest) else ""
    return fields


def _key_value(text: str) -> tuple[str, Optional[str]]:
    cut = len(text)
    for i, ch in enumerate(text):
        if ch in "= \t\r\n":
            cut = i
            break
    key, rest = text[:cut], text[cut:]
    if rest and rest[0] != "=":
        rest = rest[1:].lstrip(WHITESPACE)
    if rest.startswith("="):
        rest = rest[1:].lstrip(WHITESPACE)
    return key, rest or None


def _valid_severity(value: str) -> bool:
    facility, dot, level = value.lower().partition(".")
    if dot:
        return facility in _FACILITIES and level in _LEVELS
    return facility in _LEVELS
