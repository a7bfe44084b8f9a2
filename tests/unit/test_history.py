"""history: change sets named by their command, and undo's plan in put-back words (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from unban import history
from unban.errors import InputError
from unban.exemptions.stage import STAGE
from unban.fail2ban.ignoreip import IGNORE_KIND
from unban.fileputback import FileRecord
from unban.journal import ME_BATCH
from unban.reverter import FAILED, ChangeSetInfo, Reverter

IP = "203.0.113.4"


def finding(layer: str, **fields: Any) -> dict[str, Any]:
    base = {
        "layer": layer, "backend": "nft", "family": "ipv4", "table": "filter", "chain": "INPUT",
        "line": 1, "handle": None, "rule": f"-A INPUT -s {IP}/32 -j DROP", "verdict": "DROP",
        "owner": "manual", "network": f"{IP}/32", "targeted": True,
    }  # fmt: skip
    return {**base, **fields}


def batch(layer: str, scope: str, steps: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    return {
        "kind": ME_BATCH, "layer": layer, "scope": scope, "summary": f"{layer} {scope}: ...",
        "steps": [{"finding": f, "command": "c", "undo_command": "u"} for f in steps], **more,
    }  # fmt: skip


def test_kinds_of_old_change_sets_come_from_their_description() -> None:
    def info(description: str, kind: str = "") -> ChangeSetInfo:
        return ChangeSetInfo("1", 0.0, description, "done", kind=kind)

    assert history.kind_of(info(f"unban me {IP}")) == "me"
    assert history.kind_of(info(f"ignore {IP} (fail2ban ignoreip)")) == "ignore"
    assert history.kind_of(info("hosts: edit /etc/hosts.deny")) == "hosts-edit"
    assert history.kind_of(info(f"unban me {IP}", kind="heal")) == "heal"


def test_undo_says_what_it_puts_back_newest_first() -> None:
    actions = [
        batch("fail2ban", "server", [finding("fail2ban", chain="sshd")],
              undo_payload=[["banip", "sshd", IP]]),
        batch("iptables", "nft ipv4 filter", [finding("iptables")]),
        batch("nftables", "inet f2b-table", [finding("nftables", element=IP, set_name="addr-set-sshd",
                                                     chain=None, line=None)]),
        batch("hosts", "/etc/hosts.deny", [finding("hosts", table="/etc/hosts.deny", line=3,
                                                   rule=f"sshd: {IP}")], by_file=True),
        batch(STAGE, "/etc/fail2ban", []),
        {"kind": IGNORE_KIND, "op": "add", "jail": "sshd", "ip": IP, "socket": "/s"},
    ]  # fmt: skip
    info = ChangeSetInfo(
        "4", 0.0, f"unban me {IP}", "done",
        files=[FileRecord("/etc/hosts.deny", True), FileRecord("/etc/fail2ban/jail.local", False)],
        actions=actions, kind="me",
    )  # fmt: skip
    assert history.put_back_lines(info) == [
        f"take {IP} back out of fail2ban jail sshd's live ignoreip",
        f"put back /etc/hosts.deny line 3: sshd: {IP}",
        f"put back {IP} into nftables ipv4 filter set addr-set-sshd",
        f"put back rule -A INPUT -s {IP}/32 -j DROP (iptables nft/ipv4 filter INPUT #1)",
        f"put back the ban of {IP} in fail2ban jail sshd",
        "remove /etc/fail2ban/jail.local (it did not exist before)",
        "restore /etc/hosts.deny byte for byte (owner, mode and times too)",
    ]


def test_undo_plan_takes_the_change_set_undo_takes(tmp_path: Path) -> None:
    """A failed run was put back already: `unban undo --dry-run` refuses it as `unban undo`
    does (it planned it before), by default or by name, and does not pass over it to an older
    change set."""
    reverter = Reverter(tmp_path)
    done = reverter.begin("unban me 203.0.113.4", kind="me")
    done.record_action("live", summary="first")
    done.finalize()
    failed = reverter.begin("unban me 203.0.113.5", kind="me")
    failed.record_action("live", summary="second")
    failed.rollback(handlers={"live": lambda action: None}, status=FAILED)
    for change_id in (None, failed.id):
        with pytest.raises(InputError, match="failed and was put back"):
            history.undo_plan(reverter, change_id)
    assert history.undo_plan(reverter, done.id).change_set == done.id
