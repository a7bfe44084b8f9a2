"""/etc/hosts.allow and /etc/hosts.deny, evaluated the way libwrap (Debian's tcp-wrappers 7.6.q,
linked into Debian's and Ubuntu's sshd) evaluates them. Pure code, except `read_tables` and
`resolve_client_name` at the end.

The rules follow hosts_access(5) and hosts_options(5); where those pages are vague, the behaviour
was measured against the real library (tests/unit/test_tcpwrappers.py compares this module with
libwrap's own `hosts_ctl` on every case it lists). What libwrap does, and this module copies:

- hosts.allow first, then hosts.deny; the first entry whose daemon list AND client list match
  decides; no match at all grants access. A missing file is an empty file.
- A logical line is joined from physical lines ending in a backslash (nothing is put in place of
  the backslash-newline). It is a comment only when its FIRST character is `#`: a line that starts
  with blanks and then `#` is parsed as an entry. A line without a `:` is skipped. The last line
  counts even without a newline.
- Lists are split at blanks and commas. `EXCEPT` (any case) nests: `a EXCEPT b EXCEPT c` means
  `a EXCEPT (b EXCEPT c)`. Every comparison ignores case.
- Daemon patterns: `sshd`, `ALL`, wildcards `s*d`, and `daemon@host` (host: the server address).
- Client patterns: the address itself; `ALL`; `a.b.c.` (prefix); `.example.com` (suffix, of the
  address string too); `n.n.n.n/m.m.m.m` and `n.n.n.n/len` (matched when `address AND mask ==
  net`, so a net with host bits set never matches, and `/0` is invalid; `0.0.0.0/0.0.0.0` is not);
  `[v6]` and `[v6]/len` (brackets required; an unbracketed IPv6 address is cut at its first `:`);
  `*` and `?` wildcards; `/path` (patterns read from a file); `@netgroup`; `user@host`;
  `KNOWN`, `LOCAL`, `UNKNOWN`, `PARANOID`. `UNKNOWN` and `PARANOID` are plain words compared
  with the host name libwrap looked up ("unknown" when there is no PTR record, "paranoid" when the
  name does not map back to the address).
- Debian builds libwrap with PROCESS_OPTIONS: everything after a second `:` is an option list
  (`allow`, `deny`, `spawn ...`, `twist ...`, `severity ...`). `allow` in hosts.deny grants,
  `deny` in hosts.allow refuses (sshguard writes `ALL : ADDR : DENY` into hosts.allow). An option
  libwrap does not accept (an unknown name, a missing or extra value, `allow`/`deny` not last, an
  empty option field such as a trailing `:`) makes libwrap refuse the connection, even in
  hosts.allow.

What this module cannot know without asking the live system makes an entry match "maybe": host
name patterns when no name lookup was done, ident (`user@host`) lookups, NIS netgroups, options
that change the daemon's user or group. A decision reached past a "maybe" entry that would
decide differently is reported as undecided, never guessed.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Callable, Optional

from unban.path.model import Match

ALLOW_FILE = "/etc/hosts.allow"
DENY_FILE = "/etc/hosts.deny"
SSHGUARD_MARKER = "###sshguard###"

_SEP = re.compile(r"[, \t\r\n]+")
_WHITESPACE = " \t\r\n"
# More unknown tokens than this in one list and the list is reported as "maybe" outright.
_MAX_UNKNOWN_TOKENS = 10

FileReader = Callable[[str], Optional[str]]


# ---------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Entry:
    """One access rule as libwrap reads it.

    `line` is the first physical line of the entry (1-based) and `end_line` its last one (they
    differ when backslashes continue it); `raw` holds those physical lines exactly as in the file,
    so an editor can replace just them. `text` is the joined logical line.
    """

    path: str
    line: int
    end_line: int
    raw: tuple[str, ...]
    text: str
    daemons: str
    clients: str
    options: Optional[str]  # everything after the second ':' (libwrap keeps the newline)
    owner: str = ""  # "sshguard" between sshguard's markers

    @property
    def daemon_tokens(self) -> list[str]:
        return _tokens(self.daemons)

    @property
    def client_tokens(self) -> list[str]:
        return _tokens(self.clients)

    def location(self) -> str:
        span = f"{self.line}" if self.end_line == self.line else f"{self.line}-{self.end_line}"
        return f"{self.path}:{span}"

    def display(self) -> str:
        return self.text.rstrip("\n")


@dataclass(frozen=True)
class Skipped:
    """A non-comment line libwrap ignores (it only logs a warning)."""

    path: str
    line: int
    text: str
    reason: str


@dataclass(frozen=True)
class Table:
    path: str
    entries: tuple[Entry, ...]
    skipped: tuple[Skipped, ...] = ()
    present: bool = True


def parse_table(text: str, path: str) -> Table:
    """Parse one access-control file."""
    entries: list[Entry] = []
    skipped: list[Skipped] = []
    in_sshguard = False
    for first, last, raw, logical in _logical_lines(text):
        stripped = logical.rstrip("\n")
        if stripped.startswith(SSHGUARD_MARKER):
            in_sshguard = not in_sshguard
        if logical.startswith("#") or not logical.strip(_WHITESPACE):
            continue
        split = _split_at(logical, ":")
        if split is None:
            skipped.append(Skipped(path, first, stripped, 'missing ":" separator'))
            continue
        daemons, rest = split
        split = _split_at(rest, ":")
        clients, options = (rest, None) if split is None else split
        entries.append(
            Entry(
                path=path,
                line=first,
                end_line=last,
                raw=tuple(raw),
                text=logical,
                daemons=daemons,
                clients=clients,
                options=options,
                owner="sshguard" if in_sshguard else "",
            )
        )
    return Table(path, tuple(entries), tuple(skipped))


def _logical_lines(text: str) -> Iterator[tuple[int, int, list[str], str]]:
    """(first line, last line, physical lines, joined text) like libwrap's xgets()."""
    physical = text.splitlines(keepends=True)
    index = 0
    while index < len(physical):
        first = index
        raw: list[str] = []
        joined = ""
        while index < len(physical):
            line = physical[index]
            raw.append(line)
            index += 1
            if line.endswith("\\\n"):
                joined += line[:-2]
                continue
            joined += line
            break
        yield first + 1, index, raw, joined


def _split_at(text: str, delimiter: str) -> Optional[tuple[str, str]]:
    """libwrap's split_at(): the first delimiter outside [brackets]."""
    depth = 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif depth == 0 and ch == delimiter:
            return text[:i], text[i + 1 :]
    return None


def _tokens(text: str) -> list[str]:
    return [t for t in _SEP.split(text) if t]


# ---------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Endpoint:
    """One end of the connection as libwrap sees it.

    `name` is what libwrap's host name lookup gives: a verified name, "unknown" (no name) or
    "paranoid" (the name does not map back to the address); None means it was not looked up, so
    every pattern that needs it matches "maybe". `address` None: the address is not known here.
    """

    address: Optional[str]
    name: Optional[str] = None


@dataclass(frozen=True)
class Request:
    """What hosts_access() is asked about: daemon, client, server, and the ident user if known."""

    client: Endpoint
    daemon: str = "sshd"
    server: Endpoint = field(default_factory=lambda: Endpoint(None, None))
    user: Optional[str] = None  # the RFC 931 (ident) user name; None: not looked up


@dataclass(frozen=True)
class EntryMatch:
    """An entry that matches the request (or may), and what it does then."""

    entry: Entry
    match: Match  # YES or MAYBE
    effect: str  # "allow", "deny" or "maybe" (an option whose effect cannot be known here)
    reason: str
    matched_client: Optional[str]  # the client-list pattern that matched, when one did
    uncertain: tuple[str, ...] = ()

    @property
    def decides_deny(self) -> bool:
        return self.effect == "deny"


@dataclass(frozen=True)
class Decision:
    """libwrap's answer, with the entry that gave it.

    `allowed` is None when the answer depends on something only a live lookup knows (see
    `maybe`). `decided_by` is None when no entry matched: access is granted by default.
    `matches` lists every entry in both files that matches or may, in file order, for editing.
    """

    allowed: Optional[bool]
    decided_by: Optional[EntryMatch]
    maybe: tuple[EntryMatch, ...]
    matches: tuple[EntryMatch, ...]


def evaluate(
    allow: Table, deny: Table, request: Request, *, read_file: Optional[FileReader] = None
) -> Decision:
    """Evaluate hosts.allow then hosts.deny for `request`, as hosts_access() does."""
    decided: Optional[EntryMatch] = None
    maybe: list[EntryMatch] = []
    matches: list[EntryMatch] = []
    for table, default_effect in ((allow, "allow"), (deny, "deny")):
        for entry in table.entries:
            result = match_entry(entry, request, default_effect, read_file=read_file)
            if result is None:
                continue
            matches.append(result)
            if decided is not None:
                continue
            if result.match is Match.YES:
                decided = result
            else:
                maybe.append(result)
    final = decided.effect if decided is not None else "allow"
    allowed: Optional[bool] = None if final == "maybe" else final == "allow"
    if any(m.effect != final for m in maybe):
        allowed = None
    return Decision(allowed, decided, tuple(maybe), tuple(matches))


def match_entry(
    entry: Entry,
    request: Request,
    default_effect: str,
    *,
    read_file: Optional[FileReader] = None,
) -> Optional[EntryMatch]:
    """The entry's match against `request`, or None when it certainly does not match."""
    notes: list[str] = []
    daemon_result, _ = _list_match(
        entry.daemon_tokens, lambda tok: _server_match(tok, request, notes, read_file)
    )
    if daemon_result is Match.NO:
        return None
    client_tokens = entry.client_tokens
    client_result, index = _list_match(
        client_tokens, lambda tok: _client_match(tok, request, notes, read_file)
    )
    if client_result is Match.NO:
        return None
    match = Match.YES if daemon_result is Match.YES and client_result is Match.YES else Match.MAYBE
    effect, reason, option_notes = option_effect(entry.options, default_effect)
    matched = client_tokens[index] if index is not None else None
    what = f"'{matched}'" if matched else "the client list"
    verb = "matches" if client_result is Match.YES else "may match"
    client = request.client.address or "the client"
    return EntryMatch(
        entry=entry,
        match=match,
        effect=effect,
        reason=f"{client} {verb} {what}; {reason}",
        matched_client=matched,
        uncertain=tuple(dict.fromkeys([*notes, *option_notes])),
    )


def _list_match(
    tokens: Sequence[str], match_fn: Callable[[str], Match]
) -> tuple[Match, Optional[int]]:
    """libwrap's list_match() over three-valued token matches.

    Tokens whose match is unknown are tried both ways; the list matches "maybe" when the answers
    differ. Returns the index of the token that made the list match (when it surely does).
    """
    cache: dict[int, Match] = {}

    def token_match(i: int) -> Match:
        if i not in cache:
            cache[i] = match_fn(tokens[i])
        return cache[i]

    # Evaluate every token once (tokens after an EXCEPT may not be reached, but evaluating them
    # has no side effect here) to learn which ones are unknown.
    unknown = [
        i
        for i, tok in enumerate(tokens)
        if tok.upper() != "EXCEPT" and token_match(i) is Match.MAYBE
    ]
    if len(unknown) > _MAX_UNKNOWN_TOKENS:
        return Match.MAYBE, None
    outcomes: dict[tuple[bool, ...], Optional[int]] = {}
    known = {
        i: tok.upper() != "EXCEPT" and token_match(i) is Match.YES
        for i, tok in enumerate(tokens)
        if i not in unknown
    }
    for values in product((True, False), repeat=len(unknown)):
        truth = {**known, **dict(zip(unknown, values))}
        outcomes[values] = _list_match_exact(tokens, truth.__getitem__)
    results = {index is not None for index in outcomes.values()}
    if results == {False}:
        return Match.NO, None
    # The token to name: the one that matches when every unknown token is assumed not to.
    none_known = outcomes[(False,) * len(unknown)]
    if results == {True}:
        return Match.YES, none_known
    first = next(index for index in outcomes.values() if index is not None)
    return Match.MAYBE, first


def _list_match_exact(tokens: Sequence[str], truth: Callable[[int], bool]) -> Optional[int]:
    """list_match() exactly as in hosts_access.c, with the strtok state shared by recursion."""
    stream = iter(range(len(tokens)))

    def walk() -> Optional[int]:
        for i in stream:
            if tokens[i].upper() == "EXCEPT":
                return None
            if truth(i):
                for j in stream:
                    if tokens[j].upper() == "EXCEPT":
                        break
                else:
                    return i
                if walk() is None:
                    return i
        return None

    return walk()


def _server_match(
    tok: str, request: Request, notes: list[str], read_file: Optional[FileReader]
) -> Match:
    at = _split_at(tok[1:], "@")
    if at is None:
        return _bool(_string_match(tok, request.daemon))
    daemon_part = tok[0] + at[0]
    if not _string_match(daemon_part, request.daemon):
        return Match.NO
    return _host_match(at[1], request.server, notes, read_file, "server")


def _client_match(
    tok: str, request: Request, notes: list[str], read_file: Optional[FileReader]
) -> Match:
    at = _split_at(tok[1:], "@")
    if at is None:
        return _host_match(tok, request.client, notes, read_file, "client")
    user_part = tok[0] + at[0]
    host = _host_match(at[1], request.client, notes, read_file, "client")
    if host is Match.NO:
        return Match.NO
    if request.user is None:
        if user_part.upper() == "ALL":
            return host
        notes.append(f"'{tok}' needs an ident (RFC 931) lookup of the client's user name")
        return Match.MAYBE
    user = _bool(_string_match(user_part, request.user))
    return _and(host, user)


def _host_match(
    tok: str,
    host: Endpoint,
    notes: list[str],
    read_file: Optional[FileReader],
    side: str,
) -> Match:
    if tok.startswith("@"):
        notes.append(f"'{tok}' is an NIS netgroup; membership is not checked here")
        return Match.MAYBE
    if tok.startswith("/"):
        return _file_match(tok, host, notes, read_file, side)
    upper = tok.upper()
    if upper == "KNOWN":
        return _by_name(host, notes, side, tok, lambda n: n.lower() not in ("unknown", "paranoid"))
    if upper == "LOCAL":
        return _by_name(
            host,
            notes,
            side,
            tok,
            lambda n: "." not in n and n.lower() not in ("unknown", "paranoid"),
        )
    mask = _split_at(tok, "/")
    if mask is not None:
        if host.address is None:
            notes.append(f"the {side} address is not known here")
            return Match.MAYBE
        return _bool(_masked_match(mask[0], mask[1], host.address))
    if host.address is None:
        if upper == "ALL":
            return Match.YES
        by_address = Match.MAYBE
        notes.append(f"the {side} address is not known here")
    else:
        by_address = _bool(_string_match(tok, host.address))
    if by_address is Match.YES or not _not_inaddr(tok) or _is_bracketed(tok):
        return by_address
    by_name = _by_name(host, notes, side, tok, lambda n: _string_match(tok, n))
    return _or(by_address, by_name)


def _by_name(
    host: Endpoint, notes: list[str], side: str, tok: str, test: Callable[[str], bool]
) -> Match:
    if host.name is None:
        notes.append(f"'{tok}' depends on the {side}'s host name (DNS), which was not looked up")
        return Match.MAYBE
    return _bool(test(host.name))


def _file_match(
    tok: str, host: Endpoint, notes: list[str], read_file: Optional[FileReader], side: str
) -> Match:
    if read_file is None:
        notes.append(f"patterns in {tok} were not read")
        return Match.MAYBE
    content = read_file(tok)
    if content is None:  # libwrap: a missing file matches nothing
        return Match.NO
    result = Match.NO
    for pattern in content.split():
        result = _or(result, _host_match(pattern, host, notes, None, side))
        if result is Match.YES:
            break
    return result


def _string_match(tok: str, string: str) -> bool:
    """libwrap's string_match(), case-insensitive."""
    if string[:7].lower() == "::ffff:" and _dot_quad(string[7:]) is not None:
        string = string[7:]
    low_tok, low = tok.lower(), string.lower()
    if tok.startswith("."):
        n = len(string) - len(tok)
        return n > 0 and low[n:] == low_tok
    if low_tok == "all":
        return True
    if low_tok == "known":
        return low != "unknown"
    if tok.endswith("."):
        return low.startswith(low_tok)
    if _is_bracketed(tok):
        return _same_v6(tok[1:-1], string)
    if "*" in tok or "?" in tok:
        return _wildcard(low_tok).fullmatch(low) is not None
    return low_tok == low


def _is_bracketed(tok: str) -> bool:
    return len(tok) >= 2 and tok.startswith("[") and tok.endswith("]")


def _same_v6(pattern: str, string: str) -> bool:
    try:
        return ipaddress.IPv6Address(pattern) == ipaddress.IPv6Address(string)
    except ValueError:
        return False


def _wildcard(pattern: str) -> re.Pattern[str]:
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), re.DOTALL)


def _not_inaddr(tok: str) -> bool:
    """libwrap's NOT_INADDR(): the token has a character other than digits, '.' and '/'."""
    return any(c not in "0123456789./" for c in tok)


def _masked_match(net: str, mask: str, address: str) -> bool:
    """libwrap's masked_match(): `net/mask`, `net/len`, `[v6net]/len`."""
    if net.startswith("["):
        if not net.endswith("]"):
            return False
        try:
            net6 = int(ipaddress.IPv6Address(net[1:-1]))
            addr6 = int(ipaddress.IPv6Address(address))
        except ValueError:
            return False
        length = _atoi(mask)
        if length < 0 or length > 128:
            return False
        shift = 128 - length
        return (net6 >> shift) == (addr6 >> shift)
    if address[:7].lower() == "::ffff:" and _dot_quad(address[7:]) is not None:
        address = address[7:]
    addr4 = _dot_quad(address)
    net4 = _dot_quad(net)
    if addr4 is None or net4 is None:
        return False
    mask4 = _dot_quad(mask)
    if mask4 is None:
        bits = _atoi(mask)
        if bits < 1 or bits > 32:
            return False
        mask4 = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
    return (addr4 & mask4) == net4


def _dot_quad(text: str) -> Optional[int]:
    """libwrap's dot_quad_addr(): four dotted parts through inet_addr(); None for INADDR_NONE."""
    runs = len([part for part in text.split(".") if part])
    if runs != 4:
        return None
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        number = _strtoul_part(part)
        if number is None or number > 255:
            return None
        value = (value << 8) | number
    return None if value == 0xFFFFFFFF else value


def _strtoul_part(part: str) -> Optional[int]:
    """One component as inet_aton reads it: decimal, 0-octal or 0x-hex, nothing after it."""
    if not part or not part[0].isdigit():
        return None
    try:
        if part[:2].lower() == "0x":
            return int(part[2:], 16) if part[2:] else None
        if part.startswith("0") and len(part) > 1:
            return int(part[1:], 8)
        return int(part, 10)
    except ValueError:
        return None


def _atoi(text: str) -> int:
    """C atoi(): leading blanks, a sign, digits; 0 when there are none."""
    match = re.match(r"\s*([+-]?\d+)", text)
    return int(match.group(1)) if match else 0


def _bool(value: bool) -> Match:
    return Match.YES if value else Match.NO


def _and(a: Match, b: Match) -> Match:
    if Match.NO in (a, b):
        return Match.NO
    return Match.YES if a is b is Match.YES else Match.MAYBE


def _or(a: Match, b: Match) -> Match:
    if Match.YES in (a, b):
        return Match.YES
    return Match.NO if a is b is Match.NO else Match.MAYBE


# ---------------------------------------------------------------- options (hosts_options(5))

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
        text = raw_field.strip(_WHITESPACE)
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
        rest = rest[1:].lstrip(_WHITESPACE)
    if rest.startswith("="):
        rest = rest[1:].lstrip(_WHITESPACE)
    return key, rest or None


def _valid_severity(value: str) -> bool:
    facility, dot, level = value.lower().partition(".")
    if dot:
        return facility in _FACILITIES and level in _LEVELS
    return facility in _LEVELS


# ---------------------------------------------------------------- editing one entry (pure)


def remove_client(entry: Entry, token: str) -> Optional[tuple[str, ...]]:
    """The entry's physical lines with one client pattern taken out, everything else kept.

    Returns () when `token` was the entry's only client pattern (delete the entry's lines), and
    None when it cannot be done safely: the pattern is not in the client list, or only after an
    EXCEPT (removing it there would widen what the entry matches).
    """
    # Map each character of the logical line to (physical line, column).
    positions: list[tuple[int, int]] = []
    for number, raw in enumerate(entry.raw):
        body = raw[:-2] if raw.endswith("\\\n") else raw
        positions.extend((number, column) for column in range(len(body)))
    split = _split_at(entry.text, ":")
    if split is None:
        return None
    start = len(split[0]) + 1
    clients = entry.clients
    spans = [(m.start() + start, m.end() + start) for m in re.finditer(r"[^, \t\r\n]+", clients)]
    words = [entry.text[a:b] for a, b in spans]
    except_at = next((i for i, w in enumerate(words) if w.upper() == "EXCEPT"), len(words))
    index = next((i for i, w in enumerate(words[:except_at]) if w == token), None)
    if index is None:
        return None
    if except_at == 1:  # the only pattern before EXCEPT (or at all): the entry goes
        return ()
    # Take the pattern and the separators after it (or, for the last one, before it).
    first, last = spans[index]
    if index + 1 < len(spans):
        last = spans[index + 1][0]
    else:
        first = spans[index - 1][1]
    lines = [list(raw) for raw in entry.raw]
    for line_number, column in sorted((positions[i] for i in range(first, last)), reverse=True):
        del lines[line_number][column]
    return tuple("".join(chars) for chars in lines)


# ---------------------------------------------------------------- reading the system


def read_tables(allow_path: str = ALLOW_FILE, deny_path: str = DENY_FILE) -> tuple[Table, Table]:
    """Read and parse both files; a missing file is an empty table (as libwrap treats it)."""
    return _read_table(allow_path), _read_table(deny_path)


def _read_table(path: str) -> Table:
    try:
        text = Path(path).read_bytes().decode("utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return Table(path, (), (), present=False)
    return parse_table(text, path)


def read_pattern_file(path: str) -> Optional[str]:
    """A `/file` pattern's contents; None when it cannot be read (libwrap: no match)."""
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def resolve_client_name(address: str, timeout: float = 3.0) -> Optional[str]:
    """The host name libwrap would see for `address`: a name that maps back to the address,
    "paranoid" when it does not, "unknown" when there is none; None when DNS did not answer in
    `timeout` seconds (so the caller keeps name-based patterns as "maybe")."""
    result: list[Optional[str]] = []

    def lookup() -> None:
        try:
            name = socket.gethostbyaddr(address)[0]
        except (socket.herror, socket.gaierror, OSError):
            result.append("unknown")
            return
        try:
            infos = socket.getaddrinfo(name, None)
        except (socket.gaierror, OSError):
            result.append("paranoid")
            return
        wanted = ipaddress.ip_address(address)
        for info in infos:
            try:
                if ipaddress.ip_address(str(info[4][0]).split("%")[0]) == wanted:
                    result.append(name)
                    return
            except ValueError:
                continue
        result.append("paranoid")

    worker = threading.Thread(target=lookup, daemon=True)
    worker.start()
    worker.join(timeout)
    return result[0] if result else None


def depends_on_name(decision: Decision) -> bool:
    """True when looking up the client's host name could settle an undecided answer."""
    return any("host name" in note for m in decision.maybe for note in m.uncertain) or (
        decision.decided_by is not None
        and any("host name" in note for note in decision.decided_by.uncertain)
    )
