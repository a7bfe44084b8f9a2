"""sshd's effective configuration for one connection, and what it says about a client.

`sshd -T -C addr=...,user=...,host=...,laddr=...,lport=...` prints the configuration with the
Match blocks that apply to that connection already applied, one `keyword value` per line
(lowercase keywords; list options such as DenyUsers get one line per pattern). The parsing and
the checks below are pure; `read_config`, `version`, `uses_libwrap` and `user_groups` read the
system.

AllowUsers / DenyUsers / AllowGroups / DenyGroups are evaluated the way OpenSSH's
`allowed_user()` does (auth.c): DenyUsers first, then AllowUsers, then the groups; a pattern is
`USER` or `USER@HOST`, USER a glob (`*`, `?`, case-sensitive; no `!`), HOST a comma list of
globs, addresses and CIDRs where `!` negates (match.c `match_user` / `match_host_and_ip`,
addrmatch.c `addr_match_list`). With `UseDNS no` (the default) sshd compares HOST with the
client's address only.
"""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
import re
from dataclasses import dataclass
from typing import Optional, Sequence

from unban.address import Network
from unban.errors import LayerError
from unban.system import run, which

LAYER = "sshd"


# ---------------------------------------------------------------- the -T dump (pure)


@dataclass(frozen=True)
class MaxStartups:
    """`MaxStartups start:rate:full`: from `start` unauthenticated connections on, sshd drops a
    new one with probability `rate`%, rising linearly to 100% at `full`."""

    start: int
    rate: int
    full: int

    def drop_percent(self, startups: int) -> int:
        """sshd's should_drop_connection() for `startups` connections already waiting."""
        if startups < self.start:
            return 0
        if startups >= self.full or self.rate == 100:
            return 100
        span = self.full - self.start
        return (100 - self.rate) * (startups - self.start) // span + self.rate

    def __str__(self) -> str:
        return f"{self.start}:{self.rate}:{self.full}"


@dataclass(frozen=True)
class Listen:
    host: str  # "0.0.0.0", "::", or an address
    port: int

    @property
    def wildcard(self) -> bool:
        return self.host in ("0.0.0.0", "::")

    @property
    def version(self) -> int:
        return 6 if ":" in self.host else 4

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.version == 6 else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class SshdConfig:
    """The effective configuration: keyword (lowercase) -> one value per line, in order."""

    options: dict[str, tuple[str, ...]]

    def values(self, key: str) -> tuple[str, ...]:
        return self.options.get(key, ())

    def value(self, key: str) -> Optional[str]:
        values = self.values(key)
        return values[0] if values else None

    def has(self, key: str) -> bool:
        return key in self.options

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.values("port") if p.isdigit())

    @property
    def listen(self) -> tuple[Listen, ...]:
        result = []
        for text in self.values("listenaddress"):
            parsed = parse_listen(text)
            if parsed is not None:
                result.append(parsed)
        return tuple(result)

    @property
    def allow_users(self) -> tuple[str, ...]:
        return self._words("allowusers")

    @property
    def deny_users(self) -> tuple[str, ...]:
        return self._words("denyusers")

    @property
    def allow_groups(self) -> tuple[str, ...]:
        return self._words("allowgroups")

    @property
    def deny_groups(self) -> tuple[str, ...]:
        return self._words("denygroups")

    def _words(self, key: str) -> tuple[str, ...]:
        return tuple(word for value in self.values(key) for word in value.split())

    @property
    def max_startups(self) -> MaxStartups:
        return parse_max_startups(self.value("maxstartups") or "10:30:100")

    @property
    def per_source_max_startups(self) -> Optional[int]:
        value = self.value("persourcemaxstartups")
        return int(value) if value and value.isdigit() else None

    @property
    def per_source_netblock(self) -> tuple[int, int]:
        value = self.value("persourcenetblocksize") or "32:128"
        v4, _, v6 = value.partition(":")
        return (int(v4) if v4.isdigit() else 32, int(v6) if v6.isdigit() else 128)

    @property
    def per_source_penalties(self) -> Optional[str]:
        """None when this sshd has no PerSourcePenalties (OpenSSH before 9.8)."""
        return self.value("persourcepenalties")

    @property
    def penalty_max(self) -> int:
        """The longest penalty sshd gives (`PerSourcePenalties max:N`, default 600 s)."""
        for word in (self.per_source_penalties or "").split():
            key, _, value = word.partition(":")
            if key == "max" and value.isdigit():
                return int(value)
        return 600

    @property
    def penalty_exempt(self) -> Optional[str]:
        value = self.value("persourcepenaltyexemptlist")
        return None if value in (None, "none") else value

    @property
    def use_dns(self) -> bool:
        return (self.value("usedns") or "no") == "yes"

    @property
    def address_family(self) -> str:
        return self.value("addressfamily") or "any"

    @property
    def permit_root_login(self) -> str:
        return self.value("permitrootlogin") or "prohibit-password"


def parse_dump(text: str) -> SshdConfig:
    """Parse `sshd -T` output."""
    options: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            options.setdefault(key.lower(), []).append(value.strip())
    return SshdConfig({k: tuple(v) for k, v in options.items()})


def parse_listen(text: str) -> Optional[Listen]:
    """`0.0.0.0:22`, `[::]:22`, `203.0.113.1:2222`; a trailing `rdomain X` is ignored."""
    spec = text.split()[0] if text.split() else ""
    match = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\s]+):(\d+)", spec)
    if match is None:
        return None
    host = match.group(1) or match.group(3)
    port = match.group(2) or match.group(4)
    return Listen(host, int(port))


def parse_max_startups(text: str) -> MaxStartups:
    parts = text.split(":")
    try:
        if len(parts) == 3:
            return MaxStartups(int(parts[0]), int(parts[1]), int(parts[2]))
        value = int(parts[0])
    except ValueError:
        value = 10
    return MaxStartups(value, 100, value)


def connection_spec(
    address: str,
    *,
    user: Optional[str] = None,
    host: Optional[str] = None,
    laddr: Optional[str] = None,
    lport: Optional[int] = None,
) -> str:
    """The `-C` argument: addr=...,user=...,host=...,laddr=...,lport=..."""
    parts = [f"addr={address}"]
    if user:
        parts.append(f"user={user}")
    parts.append(f"host={host or address}")
    if laddr:
        parts.append(f"laddr={laddr}")
    if lport is not None:
        parts.append(f"lport={lport}")
    return ",".join(parts)


def dump_argv(sshd: str, spec: str, config_file: Optional[str] = None) -> list[str]:
    argv = [sshd, "-T"]
    if config_file:
        argv += ["-f", config_file]
    return [*argv, "-C", spec]


# ---------------------------------------------------------------- OpenSSH's matching (pure)


def match_pattern(string: str, pattern: str) -> bool:
    """OpenSSH match_pattern(): `*` and `?` globs, case-sensitive."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, string, re.DOTALL) is not None


def match_pattern_list(string: str, patterns: str, *, lower: bool = False) -> int:
    """1 on a positive match, -1 on a negated one, 0 otherwise (match.c)."""
    got_positive = 0
    for sub in patterns.split(","):
        negated = sub.startswith("!")
        if negated:
            sub = sub[1:]
        if lower:
            sub = sub.lower()
        if match_pattern(string, sub):
            if negated:
                return -1
            got_positive = 1
    return got_positive


class PatternError(ValueError):
    """sshd refuses to start with this pattern (an address with bits set beyond its mask)."""


def addr_match_list(address: str, patterns: str) -> int:
    """addrmatch.c addr_match_list(): 1 match, -1 negated match, 0 none; PatternError for a
    network with host bits set (sshd: "inconsistent mask length")."""
    try:
        addr = ipaddress.ip_address(address)
    except ValueError:
        return 0
    result = 0
    for entry in patterns.split(","):
        negated = entry.startswith("!")
        if negated:
            entry = entry[1:]
        if not entry:
            raise PatternError("empty entry in address list")
        network = _cidr(entry)
        if network is not None:
            matched = addr.version == network.version and addr in network
        else:
            matched = match_pattern(address, entry)
        if matched:
            if negated:
                return -1
            result = 1
    return result


def _cidr(entry: str) -> Optional[Network]:
    addr_text, slash, mask = entry.partition("/")
    if slash and (not mask.isdigit() or int(mask) > 128):
        return None
    try:
        address = ipaddress.ip_address(addr_text)
    except ValueError:
        return None
    length = int(mask) if slash else address.max_prefixlen
    if length > address.max_prefixlen:
        raise PatternError(f"'{entry}': mask length too long")
    try:
        return ipaddress.ip_network(f"{address}/{length}", strict=True)
    except ValueError:
        raise PatternError(f"'{entry}': inconsistent mask length") from None


def match_host_and_ip(host: str, address: str, patterns: str) -> bool:
    """match.c match_host_and_ip(): a negated address or host name match wins."""
    by_address = addr_match_list(address, patterns)
    if by_address == -1:
        return False
    by_name = match_pattern_list(host.lower(), patterns, lower=True)
    if by_name == -1:
        return False
    return by_name == 1 or by_address == 1


def match_user(user: str, host: str, address: str, pattern: str) -> bool:
    """match.c match_user(): `USER` or `USER@HOST` (split at the last '@')."""
    user_part, at, host_part = pattern.rpartition("@")
    if not at:
        return match_pattern(user, pattern)
    return match_pattern(user, user_part) and match_host_and_ip(host, address, host_part)


@dataclass(frozen=True)
class UserAccess:
    """Whether sshd lets USER log in from the address. `allowed` None: cannot tell here."""

    allowed: Optional[bool]
    reason: str
    directive: Optional[str] = None  # DenyUsers, AllowUsers, ..., PermitRootLogin
    pattern: Optional[str] = None


def check_user(
    config: SshdConfig,
    user: Optional[str],
    address: str,
    *,
    hostname: Optional[str] = None,
    groups: Optional[Sequence[str]] = None,
    exists: bool = True,
) -> UserAccess:
    """auth.c allowed_user() for USER from ADDRESS, plus PermitRootLogin.

    `hostname`: the verified name sshd would use with `UseDNS yes` (None: the address). `groups`:
    the user's groups (None when unknown).
    """
    lists = {
        "DenyUsers": config.deny_users,
        "AllowUsers": config.allow_users,
        "DenyGroups": config.deny_groups,
        "AllowGroups": config.allow_groups,
    }
    if user is None:
        present = [f"{name} {' '.join(v)}" for name, v in lists.items() if v]
        if present:
            return UserAccess(
                None,
                f"{'; '.join(present)} (give --user to check a login name)",
                directive=next(name for name, v in lists.items() if v),
            )
        return UserAccess(True, "no AllowUsers, DenyUsers, AllowGroups or DenyGroups")
    host = hostname if config.use_dns and hostname else address
    try:
        for pattern in config.deny_users:
            if match_user(user, host, address, pattern):
                return UserAccess(
                    False,
                    f"{user} from {address} is listed in DenyUsers ('{pattern}')",
                    "DenyUsers",
                    pattern,
                )
        if config.allow_users:
            allowed_by = next(
                (p for p in config.allow_users if match_user(user, host, address, p)), None
            )
            if allowed_by is None:
                return UserAccess(
                    False,
                    f"{user} from {address} is not listed in AllowUsers "
                    f"({' '.join(config.allow_users)})",
                    "AllowUsers",
                )
    except PatternError as exc:
        return UserAccess(None, f"sshd would refuse this pattern: {exc}")
    if not exists:
        return UserAccess(False, f"there is no user '{user}' on this host (sshd: Invalid user)")
    if config.deny_groups or config.allow_groups:
        if groups is None:
            return UserAccess(None, f"the groups of '{user}' are not known here")
        for pattern in config.deny_groups:
            hit = next((g for g in groups if match_pattern(g, pattern)), None)
            if hit is not None:
                return UserAccess(
                    False,
                    f"{user}'s group '{hit}' is listed in DenyGroups ('{pattern}')",
                    "DenyGroups",
                    pattern,
                )
        if config.allow_groups and not any(
            match_pattern(g, p) for g in groups for p in config.allow_groups
        ):
            return UserAccess(
                False,
                f"none of {user}'s groups ({', '.join(groups) or 'none'}) is listed in "
                f"AllowGroups ({' '.join(config.allow_groups)})",
                "AllowGroups",
            )
    if user == "root":
        root = config.permit_root_login
        if root == "no":
            return UserAccess(False, "PermitRootLogin no", "PermitRootLogin", root)
        if root in ("prohibit-password", "without-password", "forced-commands-only"):
            return UserAccess(
                True, f"PermitRootLogin {root}: root may log in with a key only", None
            )
    checked = [name for name, v in lists.items() if v]
    return UserAccess(
        True,
        f"{user} from {address} passes {', '.join(checked)}"
        if checked
        else "no AllowUsers, DenyUsers, AllowGroups or DenyGroups",
    )


def in_exempt_list(config: SshdConfig, address: str) -> bool:
    exempt = config.penalty_exempt
    if not exempt:
        return False
    try:
        return addr_match_list(address, exempt) == 1
    except PatternError:
        return False


def listens_for(
    config: SshdConfig, version: int, port: int, laddr: Optional[str]
) -> tuple[bool, str]:
    """Whether sshd's ListenAddress/Port cover a connection of that family to laddr:port."""
    family = config.address_family
    if (family == "inet" and version == 6) or (family == "inet6" and version == 4):
        return False, f"AddressFamily {family}: sshd takes no IPv{version} connections"
    entries = [e for e in config.listen if e.version == version]
    if not entries:
        listen = ", ".join(str(e) for e in config.listen) or "none"
        return False, f"sshd listens on no IPv{version} address (ListenAddress {listen})"
    on_port = [e for e in entries if e.port == port]
    if not on_port:
        ports = ", ".join(sorted({str(e.port) for e in entries}))
        return False, f"sshd listens on port {ports}, not {port}"
    if laddr is not None and not any(e.wildcard or _same_address(e.host, laddr) for e in on_port):
        where = ", ".join(str(e) for e in on_port)
        return False, f"sshd listens on {where}, not on {laddr}"
    return True, "sshd listens on " + ", ".join(str(e) for e in on_port)


def _same_address(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


# ---------------------------------------------------------------- reading the system


def sshd_binary() -> str:
    path = which("sshd")
    if path is None:
        raise LayerError(LAYER, "sshd is not installed (no sshd in PATH or /usr/sbin)")
    return path


def read_config(
    address: str,
    *,
    user: Optional[str] = None,
    host: Optional[str] = None,
    laddr: Optional[str] = None,
    lport: Optional[int] = None,
    config_file: Optional[str] = None,
    sshd: Optional[str] = None,
) -> SshdConfig:
    """Run `sshd -T -C ...` (root only: it reads the host keys) and parse it."""
    binary = sshd or sshd_binary()
    spec = connection_spec(address, user=user, host=host, laddr=laddr, lport=lport)
    result = run(LAYER, dump_argv(binary, spec, config_file), check=False, timeout=30)
    if result.returncode != 0:
        message = " ".join(result.stderr.split()) or f"exit status {result.returncode}"
        raise LayerError(LAYER, f"'sshd -T' failed: {message}")
    return parse_dump(result.stdout)


def version(sshd: Optional[str] = None) -> Optional[tuple[int, int]]:
    """(major, minor) of OpenSSH, from `sshd -V` (which prints it on stderr)."""
    result = run(LAYER, [sshd or sshd_binary(), "-V"], check=False, timeout=10)
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", result.stderr + result.stdout)
    return (int(match.group(1)), int(match.group(2))) if match else None


SESSION_BINARY = "/usr/lib/openssh/sshd-session"  # Debian's, from OpenSSH 9.8 on


def session_binary(sshd: str, config: Optional[SshdConfig] = None) -> str:
    """The binary that serves each connection, where libwrap is linked in: OpenSSH 9.8 moved
    that work out of sshd into sshd-session (`sshd -T` prints its `sshdsessionpath`)."""
    named = config.value("sshdsessionpath") if config is not None else None
    if named:
        return named
    if config is None and os.path.isfile(SESSION_BINARY):
        return SESSION_BINARY
    return sshd


def uses_libwrap(sshd: Optional[str] = None, config: Optional[SshdConfig] = None) -> Optional[bool]:
    """Whether this sshd's connections go through libwrap (TCP wrappers): `ldd` of the binary
    that serves them (`session_binary`); None when ldd is missing or fails."""
    if which("ldd") is None:
        return None
    binary = session_binary(sshd or sshd_binary(), config)
    result = run(LAYER, ["ldd", binary], check=False, timeout=10)
    if result.returncode != 0:
        return None
    return "libwrap" in result.stdout


def user_groups(user: str) -> Optional[list[str]]:
    """The user's primary and supplementary group names; None when there is no such user."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    names = []
    for gid in os.getgrouplist(user, entry.pw_gid):
        try:
            names.append(grp.getgrgid(gid).gr_name)
        except KeyError:
            names.append(str(gid))
    return names
