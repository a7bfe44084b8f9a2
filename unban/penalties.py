"""OpenSSH's PerSourcePenalties (9.8+), as sshd's log tells them. Pure code.

sshd keeps penalties in its listener's memory only; the log is the one place they show:

    srclimit_penalise: 203.0.113.4/32: activating ipv4 penalty of 65 seconds for penalty: failed authentication
    srclimit_penalise: ipv4: new 203.0.113.4/32 active penalty of 60 seconds for penalty: failed authentication
    drop connection #0 from [203.0.113.4]:40022 on [203.0.113.1]:22 penalty: failed authentication
    srclimit_penalise: ipv4: new 203.0.113.4/32 deferred penalty of 5 seconds for penalty: ...

The first two (LogLevel VERBOSE) say for how long; the second (INFO, the default) is a connection
refused because a penalty is active; a *deferred* penalty is not enforced (yet). A line about a
connection sshd let in (`Connection from`, a login attempt) ends what came before it: the
penalty had run out, and a new one logs its own line.

Lines carry the time they were written when their log has time stamps (the journal, syslog);
`sshd -E FILE` writes none, and then the file's modification time is the latest they can be
(`LogLine.exact` False): the penalty's end is then only known as "at most".
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

RECENT_DROP = datetime.timedelta(seconds=60)  # a refusal this recent: the penalty holds now

# "ADDR/32: activating ipv4 penalty of N seconds", "ipv4: new ADDR/32 active penalty of N
# seconds" (a first penalty already past min:), never "... deferred penalty of N seconds"
_ACTIVATING = re.compile(r"srclimit_penalise: (?!.*\bdeferred\b).*\bpenalty of (\d+) seconds?")
_DROPPED = re.compile(r"drop connection #\d+ from \S+ on \S+ penalty: (.+)$")
_ADMITTED = re.compile(
    r"Connection from \S+ port \d+ on|Accepted \S+ for|Failed \S+ for|Invalid user|"
    r"Connection closed by authenticating user|Disconnected from"
)


@dataclass(frozen=True)
class LogLine:
    text: str
    when: Optional[datetime.datetime]  # its time stamp, or the latest it can be (exact False)
    exact: bool = True


@dataclass(frozen=True)
class PenaltyState:
    """Whether sshd refuses the address for a penalty now. `active` None: it may."""

    active: Optional[bool]
    summary: str
    line: Optional[str] = None
    until: Optional[datetime.datetime] = None


def is_penalty_line(text: str) -> bool:
    return bool(_ACTIVATING.search(text) or _DROPPED.search(text))


def judge(lines: Sequence[LogLine], now: datetime.datetime, max_seconds: int = 600) -> PenaltyState:
    """The penalty state after these lines about one address (oldest first)."""
    last: Optional[LogLine] = None
    until: Optional[datetime.datetime] = None
    from_activation = False
    for line in lines:
        activating = _ACTIVATING.search(line.text)
        if activating and line.when is not None:
            last, from_activation = line, True
            until = line.when + datetime.timedelta(seconds=int(activating.group(1)))
        elif _DROPPED.search(line.text) and line.when is not None:
            if not (from_activation and until is not None and until >= line.when):
                from_activation = False
                until = line.when + datetime.timedelta(seconds=max_seconds)
            last = line
        elif _ADMITTED.search(line.text):
            last, until, from_activation = None, None, False
    if last is None or until is None or last.when is None:
        return PenaltyState(False, "no active penalty in the log")
    bound = "" if last.exact else "at most "
    shown = until.strftime("%H:%M:%S")
    if until <= now:
        return PenaltyState(False, f"the last penalty ran out ({bound}{shown})", last.text, until)
    if from_activation:
        left = int((until - now).total_seconds())
        return PenaltyState(
            True, f"penalised until {bound}{shown} ({bound}{left} s from now)", last.text, until
        )
    dropped = _DROPPED.search(last.text)
    reason = dropped.group(1) if dropped else "penalty"
    if now - last.when <= RECENT_DROP:
        return PenaltyState(
            True,
            f"sshd refused a connection for a penalty ({reason}) "
            f"{int((now - last.when).total_seconds())} s ago; penalties last up to "
            f"{max_seconds} s (`max:` of PerSourcePenalties)",
            last.text,
            until,
        )
    return PenaltyState(
        None,
        f"sshd refused a connection for a penalty ({reason}) at {bound}"
        f"{last.when.strftime('%H:%M:%S')}; it may hold until {bound}{shown}",
        last.text,
        until,
    )
