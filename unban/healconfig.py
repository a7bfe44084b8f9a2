"""/etc/unban/unban.toml: the addresses `unban heal` keeps unblocked. Reading and checks only.

    # Addresses, CIDRs and host names (resolved at every run, every A and AAAA record).
    protect = ["203.0.113.4", "2001:db8::/64", "home.example.net"]
    # Entries wider than /16 (IPv4) or /48 (IPv6) are refused unless listed here too.
    wide_ok = []
    # Which layers to heal: firewall, fail2ban, hosts, owners, sshd (default: all).
    layers = ["firewall", "fail2ban", "hosts", "owners", "sshd"]
    # Also exempt the protected addresses in every ban source of those layers (fail2ban's
    # ignoreip; sshguard's whitelist and CrowdSec's whitelist with "owners").
    ignoreip = true

Whoever can write this file can exempt any address from every ban, so it must be owned by root
and writable by nobody else, and so must every directory above it.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unban.address import Network, parse_target, width
from unban.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9 and 3.10
    import tomli as tomllib

DEFAULT_PATH = Path("/etc/unban/unban.toml")
LAYERS = ("firewall", "fail2ban", "hosts", "owners", "sshd")
WIDEST = {4: 16, 6: 48}


@dataclass(frozen=True)
class HealConfig:
    path: Path
    addresses: tuple[Network, ...]
    hostnames: tuple[str, ...]
    layers: tuple[str, ...]
    ignoreip: bool


def load(path: Path, *, check_owner: bool = True) -> HealConfig:
    """Read and check the config; raise InputError naming the file (and line) on any problem."""
    if check_owner:
        check_trusted(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; create it (see `unban heal --help`)") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        if "at end of document" in message:  # tomllib gives no line there: the last one
            message = message.replace(
                "at end of document", f"at line {len(text.splitlines())}, end of file"
            )
        raise InputError(f"{path}: {message}") from None
    return parse(path, data)


def parse(path: Path, data: dict[str, Any]) -> HealConfig:
    unknown = set(data) - {"protect", "wide_ok", "layers", "ignoreip"}
    if unknown:
        raise InputError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}")
    protect = _strings(path, data, "protect")
    if not protect:
        raise InputError(f"{path}: 'protect' lists no address; nothing to heal")
    wide_ok = {str(_network(path, text)) for text in _strings(path, data, "wide_ok")}
    layers = _strings(path, data, "layers") if "layers" in data else list(LAYERS)
    bad_layers = [layer for layer in layers if layer not in LAYERS]
    if bad_layers:
        raise InputError(
            f"{path}: unknown layer(s) {', '.join(bad_layers)}; use {', '.join(LAYERS)}"
        )
    ignoreip = data.get("ignoreip", True)
    if not isinstance(ignoreip, bool):
        raise InputError(f"{path}: 'ignoreip' must be true or false")

    addresses: list[Network] = []
    hostnames: list[str] = []
    for text in protect:
        if _looks_like_address(text):
            network = _network(path, text)
            version, prefix = width(network)
            if prefix < WIDEST[version] and str(network) not in wide_ok:
                covers = "" if version == network.version else f" (an IPv4 /{prefix})"
                raise InputError(
                    f"{path}: {network}{covers} is wider than /{WIDEST[version]}; exempting that "
                    f'many addresses from every ban must be meant: add "{network}" to wide_ok too'
                )
            addresses.append(network)
        elif _valid_hostname(text):
            hostnames.append(text.rstrip(".").lower())
        else:
            raise InputError(f"{path}: '{text}' in protect is neither an address nor a host name")
    return HealConfig(path, tuple(addresses), tuple(hostnames), tuple(layers), ignoreip)


def _strings(path: Path, data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{path}: '{key}' must be a list of strings")
    return list(value)


def _looks_like_address(text: str) -> bool:
    return ":" in text or text.replace(".", "").replace("/", "").isdigit()


def _network(path: Path, text: str) -> Network:
    """Any network but /0 (and but one covering every IPv4 address); WIDEST is checked after."""
    try:
        return parse_target(text, min_prefix={4: 1, 6: 1})
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def _valid_hostname(text: str) -> bool:
    name = text.rstrip(".")
    labels = name.split(".")
    return (
        0 < len(name) <= 253
        and name.isascii()
        and all(
            0 < len(label) <= 63
            and label.replace("-", "").isalnum()
            and not label.startswith("-")
            and not label.endswith("-")
            for label in labels
        )
    )


def check_trusted(path: Path) -> None:
    """Refuse a file (or a directory above it) not owned by root or writable by group/others."""
    try:
        resolved = path.resolve(strict=True)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    for candidate in (resolved, *resolved.parents):
        info = candidate.stat()
        if info.st_uid != 0:
            raise InputError(
                f"{candidate} is not owned by root; refusing {path}: its owner could "
                "exempt any address from every ban"
            )
        sticky_dir = stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_ISVTX
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky_dir:
            raise InputError(
                f"{candidate} is writable by group or others; refusing {path} "
                f"(fix with: chmod go-w {candidate})"
            )
        if candidate == candidate.parent:
            break
    if not stat.S_ISREG(os.stat(resolved).st_mode):
        raise InputError(f"{path} is not a regular file")


def resolve_hostnames(names: Sequence[str]) -> tuple[list[Network], list[str]]:
    """Every A and AAAA record of each name, and the names that did not resolve (with why)."""
    networks: list[Network] = []
    problems: list[str] = []
    for name in names:
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
        except socket.gaierror as exc:
            problems.append(f"{name}: {exc.strerror}")
            continue
        for info in infos:
            network = ipaddress.ip_network(str(info[4][0]).split("%")[0])
            if network not in networks:
                networks.append(network)
    return networks, problems
