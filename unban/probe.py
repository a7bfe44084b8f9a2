"""`unban probe HOST`: what a client sees when it opens an SSH connection. No root needed.

It connects, sends its own identification string at once (as OpenSSH's client does, so the
server reacts exactly as it does to `ssh`), and reads the server's. The outcome is one of:

- banner: the server's version string arrived (`SSH-2.0-OpenSSH_9.2p1 ...`);
- reset: the connection was reset during the identification exchange (read failed with
  ECONNRESET): `kex_exchange_identification: read: Connection reset by peer`;
- closed: read returned 0 (the server closed the connection) before any version string:
  `kex_exchange_identification: Connection closed by remote host`;
- refused: the SYN was answered with a reset (nothing listens, or REJECT with tcp-reset or
  icmp-port-unreachable): `Connection refused`;
- timeout: no answer to the SYN within the timeout (silently dropped): `Connection timed out`;
- unreachable: an ICMP unreachable/prohibited answer, or no route: `No route to host`;
- silent: connected, but no version string within the timeout;
- error: anything else (the detail says what).

Text the server sent before closing is kept: sshd 9.2 writes `Exceeded MaxStartups` to a
connection it drops, OpenSSH 10 `Not allowed at this time` (MaxStartups, or a PerSourcePenalties
penalty). `--count N` repeats the attempt, because MaxStartups drops at random between its
start and full values.

Each attempt is an unauthenticated connection. OpenSSH 9.8+ penalises every one of them
(PerSourcePenalties `noauth:1`: one second each, enforced once they add up to `min:15`), so once
a server's banner shows 9.8 or later the attempts are paced PENALTY_PACE seconds apart, which
never adds up; quicker loops earn the client a penalty (refused for up to 10 minutes). fail2ban's
sshd jail in `aggressive` or `ddos` mode counts such connections as failures too, so keep N small
against a server that uses them.
"""

from __future__ import annotations

import errno
import re
import socket
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Optional

from unban.errors import InputError

CLIENT_IDENT = b"SSH-2.0-unban_probe\r\n"
MAX_PRE_BANNER = 8192  # RFC 4253 lets a server send lines before its version; not this many
LIBWRAP_DELAY = (4.5, 7.5)  # libwrap sleeps 5 s before it closes a refused connection
PENALTY_PACE = 1.5  # s between attempts to OpenSSH 9.8+: its noauth penalty (1 s) never adds up
PENALTIES_SINCE = (9, 8)

OUTCOMES = ("banner", "reset", "closed", "refused", "timeout", "unreachable", "silent", "error")
CLIENT_MESSAGE = {
    "reset": "kex_exchange_identification: read: Connection reset by peer",
    "closed": "kex_exchange_identification: Connection closed by remote host",
    "refused": "ssh: connect to host HOST port PORT: Connection refused",
    "timeout": "ssh: connect to host HOST port PORT: Connection timed out",
    "unreachable": "ssh: connect to host HOST port PORT: No route to host",
    "silent": "Connection timed out during banner exchange",
}


@dataclass(frozen=True)
class Attempt:
    """One connection attempt to one address."""

    address: str
    outcome: str
    detail: str
    seconds: float
    banner: Optional[str] = None
    before_banner: tuple[str, ...] = ()  # lines the server sent before its version (or instead)
    error: Optional[str] = None  # errno name, e.g. ECONNRESET
    local_address: Optional[str] = None  # this end's address, as the server should see it


@dataclass(frozen=True)
class ProbeReport:
    host: str
    port: int
    attempts: tuple[Attempt, ...]
    outcome: str  # the most telling outcome over all attempts (see `summarise`)
    summary: str
    hints: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return all(a.outcome == "banner" for a in self.attempts)


# ---------------------------------------------------------------- one attempt

Connector = Callable[[int, int, int], socket.socket]


def attempt(
    sockaddr: tuple[object, ...],
    family: int,
    timeout: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    make_socket: Optional[Connector] = None,
) -> Attempt:
    """Connect to `sockaddr`, send our identification, read the server's."""
    address = str(sockaddr[0])
    start = clock()

    def elapsed() -> float:
        return round(clock() - start, 3)

    sock = (make_socket or socket.socket)(family, socket.SOCK_STREAM, 0)
    local: Optional[str] = None
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
        except socket.timeout:
            return Attempt(
                address,
                "timeout",
                f"no answer to the SYN in {timeout:g} s: the packets are silently dropped",
                elapsed(),
                error="ETIMEDOUT",
                local_address=_local(sock),
            )
        except OSError as exc:
            return _connect_error(address, exc, elapsed(), _local(sock))
        local = _local(sock)
        try:
            sock.sendall(CLIENT_IDENT)
        except OSError as exc:
            if exc.errno in (errno.ECONNRESET, errno.EPIPE):
                return Attempt(
                    address,
                    "reset",
                    f"the connection was reset before the client's identification was sent "
                    f"({errno.errorcode.get(exc.errno or 0, 'error')})",
                    elapsed(),
                    error=errno.errorcode.get(exc.errno or 0),
                    local_address=local,
                )
            return _after_connect_error(address, exc, elapsed(), (), local)
        return _read_banner(sock, address, timeout, elapsed, local)
    finally:
        sock.close()


def _read_banner(
    sock: socket.socket,
    address: str,
    timeout: float,
    elapsed: Callable[[], float],
    local: Optional[str],
) -> Attempt:
    buffer = b""
    while True:
        lines = buffer.split(b"\n")
        for raw in lines[:-1]:
            line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
            if line.startswith("SSH-"):
                before = _text_lines(buffer[: buffer.find(raw)])
                return Attempt(
                    address,
                    "banner",
                    f"the server sent its version string: {line}",
                    elapsed(),
                    banner=line,
                    before_banner=before,
                    local_address=local,
                )
        if len(buffer) > MAX_PRE_BANNER:
            return Attempt(
                address,
                "error",
                f"{len(buffer)} bytes without an SSH version line: not an SSH server?",
                elapsed(),
                before_banner=_text_lines(buffer)[:5],
                local_address=local,
            )
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            return Attempt(
                address,
                "silent",
                f"connected, but no version string within {timeout:g} s",
                elapsed(),
                before_banner=_text_lines(buffer),
                error="ETIMEDOUT",
                local_address=local,
            )
        except OSError as exc:
            return _after_connect_error(address, exc, elapsed(), _text_lines(buffer), local)
        if not chunk:
            seconds = elapsed()
            text = _text_lines(buffer)
            said = f" after the server wrote {' / '.join(repr(t) for t in text)}" if text else ""
            return Attempt(
                address,
                "closed",
                f"read returned 0 (the server closed the connection) after {seconds:.1f} s, "
                f"before any version string{said}",
                seconds,
                before_banner=text,
                local_address=local,
            )
        buffer += chunk


def _connect_error(address: str, exc: OSError, seconds: float, local: Optional[str]) -> Attempt:
    name = errno.errorcode.get(exc.errno or 0, "error")
    if isinstance(exc, ConnectionRefusedError):
        return Attempt(
            address,
            "refused",
            "the SYN was answered with a reset (or ICMP port unreachable): connection refused",
            seconds,
            error=name,
            local_address=local,
        )
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES, errno.EPERM):
        return Attempt(
            address,
            "unreachable",
            f"{exc.strerror or name}: an ICMP unreachable/prohibited answer, or no route",
            seconds,
            error=name,
            local_address=local,
        )
    if exc.errno == errno.ETIMEDOUT:
        return Attempt(
            address, "timeout", "connect timed out (the kernel's SYN retries ran out)", seconds,
            error=name, local_address=local,
        )  # fmt: skip
    return Attempt(address, "error", f"connect failed: {exc.strerror or exc}", seconds, error=name)


def _after_connect_error(
    address: str,
    exc: OSError,
    seconds: float,
    before: tuple[str, ...],
    local: Optional[str],
) -> Attempt:
    name = errno.errorcode.get(exc.errno or 0, "error")
    if exc.errno == errno.ECONNRESET:
        said = f" after the server wrote {' / '.join(repr(t) for t in before)}" if before else ""
        return Attempt(
            address,
            "reset",
            f"read failed with ECONNRESET after {seconds:.1f} s: the server reset the connection "
            f"during the identification exchange{said}",
            seconds,
            before_banner=before,
            error=name,
            local_address=local,
        )
    return Attempt(
        address,
        "error",
        f"read failed: {exc.strerror or exc}",
        seconds,
        before_banner=before,
        error=name,
        local_address=local,
    )


def _local(sock: socket.socket) -> Optional[str]:
    try:
        return str(sock.getsockname()[0])
    except OSError:
        return None


def _text_lines(data: bytes) -> tuple[str, ...]:
    text = data.decode("utf-8", errors="replace")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


# ---------------------------------------------------------------- several attempts


def resolve(host: str, port: int) -> list[tuple[int, tuple[object, ...]]]:
    """(family, sockaddr) for every address of HOST, in the resolver's order."""
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not name:
        raise InputError("empty host name")
    try:
        infos = socket.getaddrinfo(name, port, 0, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise InputError(f"cannot resolve '{host}': {exc.strerror}") from None
    seen: list[tuple[int, tuple[object, ...]]] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        entry = (int(family), tuple(sockaddr))
        if entry not in seen:
            seen.append(entry)
    return seen


def probe(
    host: str,
    port: int = 22,
    *,
    count: int = 1,
    timeout: float = 10.0,
    pause: float = 0.3,
    penalty_pause: float = PENALTY_PACE,
    attempt_fn: Optional[Callable[[tuple[object, ...], int, float], Attempt]] = None,
    resolver: Optional[Callable[[str, int], list[tuple[int, tuple[object, ...]]]]] = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ProbeReport:
    """Probe every address of HOST `count` times (`attempt` and `resolve` by default), `pause`
    seconds apart, or `penalty_pause` once a banner showed OpenSSH 9.8+ (PerSourcePenalties)."""
    attempt_fn = attempt_fn or attempt
    resolver = resolver or resolve
    if count < 1:
        raise InputError("--count must be at least 1")
    if timeout <= 0:
        raise InputError("--timeout must be more than 0 seconds")
    if not 0 < port < 65536:
        raise InputError(f"--port {port} is not a TCP port")
    targets = resolver(host, port)
    attempts: list[Attempt] = []
    for family, sockaddr in targets:
        for _n in range(count):
            if attempts:
                wait = penalty_pause if any(penalises(a) for a in attempts) else pause
                if wait:
                    sleep(wait)
            attempts.append(attempt_fn(sockaddr, family, timeout))
    outcome, summary = summarise(attempts)
    return ProbeReport(host, port, tuple(attempts), outcome, summary, hints(attempts, host, port))


def openssh_version(banner: Optional[str]) -> Optional[tuple[int, int]]:
    """(major, minor) from a banner such as `SSH-2.0-OpenSSH_10.0p2 Debian-7`."""
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", banner or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def penalises(attempt: Attempt) -> bool:
    """The server's banner shows an OpenSSH with PerSourcePenalties (9.8+)."""
    version = openssh_version(attempt.banner)
    return version is not None and version >= PENALTIES_SINCE


def summarise(attempts: Sequence[Attempt]) -> tuple[str, str]:
    """The telling outcome: any failure outranks a banner (MaxStartups drops only some)."""
    counts = Counter(a.outcome for a in attempts)
    failures = [(n, o) for o, n in counts.items() if o != "banner"]
    total = len(attempts)
    if not failures:
        return "banner", f"{total}/{total} attempts got the server's version string"
    failures.sort(key=lambda item: (-item[0], OUTCOMES.index(item[1])))
    outcome = failures[0][1]
    parts = [f"{n}/{total} {o}" for o, n in sorted(counts.items(), key=lambda i: -i[1])]
    return outcome, ", ".join(parts)


def hints(attempts: Sequence[Attempt], host: str, port: int) -> tuple[str, ...]:
    """What each outcome means and what to try next (the article's client-side advice)."""
    outcomes = {a.outcome for a in attempts}
    said = {line for a in attempts for line in a.before_banner}
    local = next((a.local_address for a in attempts if a.local_address), None)
    you = local or "YOUR_ADDRESS"
    doctor = f"on the server (console or another address): sudo unban doctor {you}" + (
        "  (behind NAT the server sees another address)" if local else ""
    )
    result: list[str] = []
    if "reset" in outcomes or "closed" in outcomes:
        result.append(
            "sshd accepted the TCP connection, then dropped it before its version string: "
            "the server refuses this client. Usual causes: /etc/hosts.deny (TCP wrappers, "
            "fail2ban's hostsdeny action, sshguard), MaxStartups (too many unauthenticated "
            "connections: drops are random, try --count 10), PerSourcePenalties (OpenSSH 9.8+)"
        )
        if any("MaxStartups" in line for line in said):
            result.append("the server said 'Exceeded MaxStartups': sshd's MaxStartups limit")
        if any("Not allowed at this time" in line for line in said):
            result.append(
                "the server said 'Not allowed at this time' (OpenSSH 10): MaxStartups, or a "
                "PerSourcePenalties penalty on this client (after failed logins, or many quick "
                "connections); `unban doctor` on the server names which, `unban me` lifts a penalty"
            )
        slow = [
            a
            for a in attempts
            if a.outcome in ("reset", "closed")
            and LIBWRAP_DELAY[0] <= a.seconds <= LIBWRAP_DELAY[1]
        ]
        if slow and not said:
            result.append(
                f"it took about {slow[0].seconds:.0f} s: libwrap (TCP wrappers) waits 5 s before "
                "it closes a connection it refuses; look at /etc/hosts.deny and /etc/hosts.allow"
            )
        result.append(doctor)
    if "refused" in outcomes:
        result.append(
            f"connection refused: nothing listens on port {port} (wrong port? sshd stopped?), or "
            "a firewall rule REJECTs this client (fail2ban's iptables actions REJECT by default)"
        )
        result.append(doctor)
    if "timeout" in outcomes:
        result.append(
            "no answer at all: a DROP rule (fail2ban with blocktype DROP, a hand-made "
            "`iptables -I INPUT -s ADDR -j DROP`), a blackhole route, a cloud security group, or "
            "the host is down"
        )
        result.append(doctor)
    if "unreachable" in outcomes:
        result.append(
            "unreachable: REJECT --reject-with icmp-host-prohibited, an unreachable/prohibit route "
            "(fail2ban's route action), or no route from here"
        )
        result.append(doctor)
    if "silent" in outcomes:
        result.append(
            "connected but no version string: an overloaded sshd, slow DNS lookups on the server "
            "(UseDNS yes, or TCP wrappers' host name lookup), or not an SSH server on this port"
        )
    paced = [a for a in attempts if penalises(a)]
    if len(attempts) > 1 and paced:
        result.append(
            f"{paced[0].banner}: OpenSSH 9.8+ penalises every connection that does not log in "
            f"(PerSourcePenalties noauth); these attempts were paced {PENALTY_PACE:g} s apart so "
            "the penalty never adds up. Many quick attempts (a loop of ssh or nc) earn this "
            "client a penalty: refused for up to 10 minutes"
        )
    if "banner" in outcomes:
        result.append(
            f"the server answers. If ssh still fails: `ssh -v {host}` shows where; a changed "
            f"host key: `ssh-keygen -R {host}`; network equipment that breaks large packets: "
            f"`ssh -c aes256-ctr {host}`; 'Permission denied' comes from AllowUsers/DenyUsers "
            "or the credentials"
        )
    return tuple(dict.fromkeys(result))


# ---------------------------------------------------------------- presentation (pure)


def text_lines(report: ProbeReport) -> list[str]:
    lines = [f"probe {report.host} port {report.port}: {report.summary}"]
    for a in report.attempts:
        head = f"  {a.address}: {a.outcome} ({a.seconds:.2f} s)"
        if a.banner:
            head += f" {a.banner}"
        lines.append(head)
        if a.outcome != "banner":
            lines.append(f"      {a.detail}")
            message = CLIENT_MESSAGE.get(a.outcome)
            if message:
                host = f"[{a.address}]" if ":" in a.address else a.address
                shown = message.replace("HOST", host).replace("PORT", str(report.port))
                lines.append(f"      ssh prints: {shown}")
    if report.hints:
        lines.append("hints:")
        lines.extend(f"  - {hint}" for hint in report.hints)
    return lines
