"""Which entry decides a connection, evaluated as libwrap's hosts_access(5) does (pure)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Callable, Optional

from unban.path.model import Match
from unban.path.tristate import and_, bool_, or_
from unban.tcpwrappers.options import option_effect
from unban.tcpwrappers.table import Entry, Table, split_at

# More unknown tokens than this in one list and the list is reported as "maybe" outright.
_MAX_UNKNOWN_TOKENS = 10

FileReader = Callable[[str], Optional[str]]


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
    at = split_at(tok[1:], "@")
    if at is None:
        return bool_(_string_match(tok, request.daemon))
    daemon_part = tok[0] + at[0]
    if not _string_match(daemon_part, request.daemon):
        return Match.NO
    return _host_match(at[1], request.server, notes, read_file, "server")


def _client_match(
    tok: str, request: Request, notes: list[str], read_file: Optional[FileReader]
) -> Match:
    at = split_at(tok[1:], "@")
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
    user = bool_(_string_match(user_part, request.user))
    return and_(host, user)


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
    mask = split_at(tok, "/")
    if mask is not None:
        if host.address is None:
            notes.append(f"the {side} address is not known here")
            return Match.MAYBE
        return bool_(_masked_match(mask[0], mask[1], host.address))
    if host.address is None:
        if upper == "ALL":
            return Match.YES
        by_address = Match.MAYBE
        notes.append(f"the {side} address is not known here")
    else:
        by_address = bool_(_string_match(tok, host.address))
    if by_address is Match.YES or not _not_inaddr(tok) or _is_bracketed(tok):
        return by_address
    by_name = _by_name(host, notes, side, tok, lambda n: _string_match(tok, n))
    return or_((by_address, by_name))


def _by_name(
    host: Endpoint, notes: list[str], side: str, tok: str, test: Callable[[str], bool]
) -> Match:
    if host.name is None:
        notes.append(f"'{tok}' depends on the {side}'s host name (DNS), which was not looked up")
        return Match.MAYBE
    return bool_(test(host.name))


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
        result = or_((result, _host_match(pattern, host, notes, None, side)))
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


def depends_on_name(decision: Decision) -> bool:
    """True when looking up the client's host name could settle an undecided answer."""
    return any("host name" in note for m in decision.maybe for note in m.uncertain) or (
        decision.decided_by is not None
        and any("host name" in note for note in decision.decided_by.uncertain)
    )
