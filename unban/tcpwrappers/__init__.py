"""/etc/hosts.allow and /etc/hosts.deny, evaluated the way libwrap (Debian's tcp-wrappers 7.6.q,
linked into Debian's and Ubuntu's sshd) evaluates them. Pure code, except `system`
(reading the files and the client's host name).

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

from unban.tcpwrappers.access import (
    Decision,
    Endpoint,
    EntryMatch,
    FileReader,
    Request,
    depends_on_name,
    evaluate,
    match_entry,
)
from unban.tcpwrappers.options import option_effect
from unban.tcpwrappers.system import (
    ALLOW_FILE,
    DENY_FILE,
    read_pattern_file,
    read_tables,
    resolve_client_name,
)
from unban.tcpwrappers.table import (
    SSHGUARD_MARKER,
    Entry,
    Skipped,
    Table,
    parse_table,
    remove_client,
)

__all__ = [
    "ALLOW_FILE", "DENY_FILE", "SSHGUARD_MARKER", "Decision", "Endpoint", "Entry", "EntryMatch",
    "FileReader", "Request", "Skipped", "Table", "depends_on_name", "evaluate", "match_entry",
    "option_effect", "parse_table", "read_pattern_file", "read_tables", "remove_client",
    "resolve_client_name",
]  # fmt: skip
