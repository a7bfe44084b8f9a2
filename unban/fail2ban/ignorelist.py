"""fail2ban's ignoreip value (pure): which address or network an entry is, whether one covers a
target, and its option lines with a token appended or taken out, comments and continuation
lines kept."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from typing import Callable, Optional

from unban.address import Network
from unban.errors import InputError

WIDEST = {4: 16, 6: 48}  # wider needs --force (same limits as unban.toml's wide_ok)


# ---------------------------------------------------------------- addresses (pure)


def parse_ignore_target(text: str, *, force: bool) -> Network:
    """ADDRESS for ignoreip: an address or CIDR; /0 and huge ranges only with --force."""
    from unban.address import parse_target

    try:
        return parse_target(text)
    except InputError as exc:
        try:
            network = ipaddress.ip_network(text.strip(), strict=True)
        except ValueError:
            raise exc from None
        if not force:
            raise InputError(
                f"'{text}' is {network.num_addresses:,} addresses: fail2ban would never ban any "
                "of them; refused (add --force if you really mean it)"
            ) from None
        return network


def check_range(target: Network, *, force: bool) -> None:
    from unban.address import width

    version, prefix = width(target)
    if prefix < WIDEST[version] and not force:
        covers = "" if version == target.version else f" (an IPv4 /{prefix})"
        raise InputError(
            f"{target}{covers} is {2 ** (32 - prefix if version == 4 else 128 - prefix):,} "
            "addresses: ignoring it would stop fail2ban from banning any of them; refused "
            f"(ranges wider than /{WIDEST[version]} need --force)"
        )


def entry_network(entry: str) -> Optional[Network]:
    """An ignoreip entry as a network (fail2ban accepts host bits and netmasks); None for names."""
    text = entry.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped:
        mapped = network.network_address.ipv4_mapped
        plen = max(0, network.prefixlen - 96)
        return ipaddress.ip_network(f"{mapped}/{plen}", strict=False)
    return network


def covering(entries: Iterable[str], target: Network) -> Optional[str]:
    """The first entry whose network holds all of `target` (the address counts as present)."""
    for entry in entries:
        network = entry_network(entry)
        if (
            network is not None and network.version == target.version and target.subnet_of(network)  # type: ignore[arg-type]
        ):
            return entry
    return None


def exact(entries: Iterable[str], target: Network) -> list[str]:
    return [e for e in entries if entry_network(e) == target]


def spelling(target: Network) -> str:
    """How the address is written into ignoreip: a bare address for a single host."""
    if target.num_addresses == 1:
        return str(target.network_address)
    return str(target)


# ---------------------------------------------------------------- option lines (pure)

_DELIM = re.compile(r"^(\s*[^=:\s][^=:]*?\s*[=:]\s*)")
_INLINE = re.compile(r"\s;")
_FULL_COMMENT = re.compile(r"^\s*[#;]")


def _split_comment(text: str) -> tuple[str, str]:
    """(value part, inline comment part incl. leading space) of one line without newline."""
    match = _INLINE.search(text)
    if match is None:
        return text, ""
    return text[: match.start()], text[match.start() :]


def append_token(lines: Sequence[str], token: str) -> list[str]:
    """An option's raw lines with `token` appended to its value; comments and layout kept."""
    out = list(lines)
    if out and not out[-1].endswith("\n"):
        out[-1] += "\n"
    # trailing blank lines belong to the layout, not the value
    end = len(out)
    while end > 1 and not out[end - 1].strip():
        end -= 1
    if end == 1:
        body = out[0].rstrip("\n")
        head_match = _DELIM.match(body)
        head = head_match.group(1) if head_match else body
        rest = body[len(head) :]
        value, comment = _split_comment(rest)
        gap = value[len(value.rstrip()) :] if comment else ""  # spacing before `; comment`
        value = value.rstrip()
        if not value:
            head = head.rstrip() + " "
            out[0] = f"{head}{token}{gap}{comment}\n"
        else:
            out[0] = f"{head}{value} {token}{gap}{comment}\n"
        return out
    indent = ""
    for line in reversed(out[1:end]):
        if line.strip() and not _FULL_COMMENT.match(line):
            indent = line[: len(line) - len(line.lstrip())]
            break
    if not indent:
        head = _DELIM.match(out[0])
        indent = " " * len(head.group(1)) if head else "    "
    out.insert(end, f"{indent}{token}\n")
    return out


_SEPARATED = re.compile(r"([ ,]+)")


def remove_tokens(lines: Sequence[str], matches: Callable[[str], bool]) -> tuple[list[str], int]:
    """An option's raw lines without the value tokens `matches` accepts; how many went."""
    out: list[str] = []
    removed = 0
    for index, line in enumerate(lines):
        newline = "\n" if line.endswith("\n") else ""
        body = line[: len(line) - len(newline)]
        if index > 0 and (_FULL_COMMENT.match(body) or not body.strip()):
            out.append(line)
            continue
        head = ""
        if index == 0:
            head_match = _DELIM.match(body)
            head = head_match.group(1) if head_match else ""
            body = body[len(head) :]
        else:
            head = body[: len(body) - len(body.lstrip())]
            body = body.lstrip()
        value, comment = _split_comment(body)
        parts = _SEPARATED.split(value)
        kept: list[str] = []
        dropped_here = 0
        for part in parts:
            if part and not _SEPARATED.fullmatch(part) and matches(part):
                dropped_here += 1
                continue
            kept.append(part)
        if not dropped_here:
            out.append(line)
            continue
        removed += dropped_here
        tokens = [p for p in kept if p and not _SEPARATED.fullmatch(p)]
        trailing = value[len(value.rstrip()) :]
        new_value = " ".join(tokens) + (trailing if tokens else "")
        if index > 0 and not tokens and not comment.strip():
            continue  # the continuation line held only this address: drop it
        if index == 0 and not tokens:
            head = head.rstrip() + (" " if comment else "")
        out.append(f"{head}{new_value}{comment}{newline}")
    return out, removed
