"""fail2ban's sqlite database (schema version 4), for when the server is stopped.

`bips(ip, jail, timeofban, bantime, bancount, data)` is what fail2ban restores at start: rows with
`timeofban + bantime > now` or `bantime <= -1`. `bans` is the history (ban-time increments count
it). `set JAIL unbanip` deletes the address from both; unban does the same while the server is
stopped (the server writes with synchronous=OFF: never edit under a running server).
"""

from __future__ import annotations

import base64
import re
import shlex
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

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


ROWS_KIND = "fail2ban-db-rows"  # change set action: rows deleted, re-inserted by `undo_rows`
_TABLES = ("bips", "bans")


def saved_rows(path: str, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The rows of (ip, jail) in `bips` and `bans`, every column, as JSON (blobs in base64):
    what `insert_rows` puts back. Read before `delete_rows`, so undo never needs the file."""
    conn = _connect(path, readonly=True)
    saved: dict[str, Any] = {}
    try:
        for table in _TABLES:
            cursor = conn.execute(f"SELECT * FROM {table} WHERE 0")
            columns = [c[0] for c in cursor.description]
            rows = []
            for ip, jail in pairs:
                query = f"SELECT * FROM {table} WHERE ip = ? AND jail = ?"
                rows += [[_to_json(v) for v in row] for row in conn.execute(query, (ip, jail))]
            saved[table] = {"columns": columns, "rows": rows}
    except sqlite3.Error as exc:
        raise LayerError(LAYER, f"cannot read fail2ban's database {path}: {exc}") from None
    finally:
        conn.close()
    return saved


def insert_rows(path: str, saved: dict[str, Any]) -> int:
    """Put `saved_rows` back, in one transaction; a row already there is left as it is, so
    this can run twice. Bans fail2ban recorded since are never touched. Return rows added."""
    conn = _connect(path, readonly=False)
    added = 0
    try:
        conn.execute("BEGIN IMMEDIATE")
        for table in _TABLES:
            part = saved.get(table) or {"columns": [], "rows": []}
            columns = [str(c) for c in part["columns"]]
            if not columns or not re.fullmatch(r"\w+(,\w+)*", ",".join(columns)):
                continue
            names = ", ".join(columns)
            marks = ", ".join("?" for _ in columns)
            same = " AND ".join(f"{c} IS ?" for c in ("ip", "jail", "timeofban"))
            for row in part["rows"]:
                values = [_from_json(v) for v in row]
                by_name = dict(zip(columns, values))
                key = [by_name.get("ip"), by_name.get("jail"), by_name.get("timeofban")]
                sql = (
                    f"INSERT INTO {table} ({names}) SELECT {marks} "
                    f"WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE {same})"
                )
                added += conn.execute(sql, (*values, *key)).rowcount
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise LayerError(
            LAYER, f"cannot put rows back into fail2ban's database {path}: {exc}"
        ) from None
    finally:
        conn.close()
    return added


def undo_rows(action: Mapping[str, Any]) -> None:
    """The reverter's handler for ROWS_KIND actions (the caller checked fail2ban is stopped)."""
    insert_rows(str(action["path"]), dict(action["rows"]))


def _to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict) and "base64" in value:
        return base64.b64decode(str(value["base64"]))
    return value


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
