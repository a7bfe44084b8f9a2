"""fail2ban's sqlite database (schema version 4), for when the server is stopped.

`bips(ip, jail, timeofban, bantime, bancount, data)` is what fail2ban restores at start: rows with
`timeofban + bantime > now` or `bantime <= -1`. `bans` is the history (ban-time increments count
it). `set JAIL unbanip` deletes the address from both; unban does the same while the server is
stopped (the server writes with synchronous=OFF: never edit under a running server).
"""

from __future__ import annotations

import re
import shlex
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from unban.address import Network, is_targeted, overlaps, parse_network
from unban.errors import LayerError
from unban.fail2ban import LAYER

SELECT_SQL = "SELECT ip, jail, timeofban, bantime, bancount FROM bips"
DELETE_SQL = (
    "DELETE FROM bips WHERE ip = ? AND jail = ?",
    "DELETE FROM bans WHERE ip = ? AND jail = ?",
)


@dataclass(frozen=True)
class BanRow:
    ip: str
    jail: str
    timeofban: int
    bantime: int
    bancount: int

    def active(self, now: float) -> bool:
        """What fail2ban restores at start (database.py _getCurrentBans)."""
        return self.bantime <= -1 or self.timeofban + self.bantime > now

    @property
    def until(self) -> Optional[int]:
        return None if self.bantime <= -1 else self.timeofban + self.bantime


def select_rows(
    rows: Sequence[BanRow], target: Network, now: float
) -> list[tuple[BanRow, Network, bool]]:
    """Active rows whose address overlaps the target, with (network, targeted). Pure."""
    chosen = []
    for row in rows:
        if not row.active(now):
            continue
        network = parse_network(row.ip)
        if network is None or not overlaps(network, target):
            continue
        chosen.append((row, network, is_targeted(network, target)))
    chosen.sort(key=lambda item: (item[0].jail, item[0].ip))
    return chosen


def _connect(path: str, *, readonly: bool) -> sqlite3.Connection:
    try:
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        else:
            conn = sqlite3.connect(path, timeout=5, isolation_level=None)
    except sqlite3.Error as exc:
        raise LayerError(LAYER, f"cannot open fail2ban's database {path}: {exc}") from None
    return conn


def read_rows(path: str, target: Optional[Network] = None) -> list[BanRow]:
    """Rows of `bips` (for a single address, only that address's rows)."""
    conn = _connect(path, readonly=True)
    try:
        if target is not None and target.num_addresses == 1:
            cursor = conn.execute(SELECT_SQL + " WHERE ip = ?", (str(target.network_address),))
        else:
            cursor = conn.execute(SELECT_SQL)
        return [BanRow(str(r[0]), str(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in cursor]
    except sqlite3.Error as exc:
        raise LayerError(LAYER, f"cannot read fail2ban's database {path}: {exc}") from None
    finally:
        conn.close()


def delete_rows(path: str, pairs: Sequence[tuple[str, str]]) -> int:
    """Delete (ip, jail) from bips and bans in one transaction; return the bips rows deleted."""
    conn = _connect(path, readonly=False)
    deleted = 0
    try:
        conn.execute("BEGIN IMMEDIATE")
        for ip, jail in pairs:
            deleted += conn.execute(DELETE_SQL[0], (ip, jail)).rowcount
            conn.execute(DELETE_SQL[1], (ip, jail))
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise LayerError(LAYER, f"cannot change fail2ban's database {path}: {exc}") from None
    finally:
        conn.close()
    return deleted


def delete_command(path: str, ip: str, jail: str) -> str:
    """The sqlite3 command a person could run instead."""
    quoted_ip = ip.replace("'", "''")
    quoted_jail = jail.replace("'", "''")
    where = f"ip = '{quoted_ip}' AND jail = '{quoted_jail}'"
    sql = f"DELETE FROM bips WHERE {where}; DELETE FROM bans WHERE {where};"
    if re.fullmatch(r"[\w .:/'=;*-]+", sql):  # nothing the shell expands inside "..."
        return f'sqlite3 {shlex.quote(path)} "{sql}"'
    return shlex.join(["sqlite3", path, sql])


def format_time(epoch: Optional[float]) -> str:
    if epoch is None:
        return "forever"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
