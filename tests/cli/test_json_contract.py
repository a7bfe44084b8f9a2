"""The --json contract (README "JSON output", unban/schema) through typer's runner: every
command's document is valid against the shipped schema (conftest checks each --json run),
errors are a JSON object with the exit code, dry runs say would_change (ignoreip edits
included), and the text and the JSON count the same changes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.clirunner import make_runner
from tests.conffiles import write
from tests.contract import validated
from tests.fakes import MemoryLayer
from unban import cli, engine, me, system
from unban.contract import core
from unban.model import Finding

runner = make_runner()
IP = "203.0.113.4"
JAILS = {
    "jail.conf": "[DEFAULT]\nignoreip = 127.0.0.1/8\n[sshd]\n",
    "jail.local": "[sshd]\nenabled = true\n",
}


class Box:
    def __init__(self, tmp_path: Path, confdir: Path) -> None:
        self.memory = MemoryLayer("iptables", [("filter", f"{IP}/32")])
        self.confdir = confdir
        self.args = ["--fail2ban-conf", str(confdir), "--state-dir", str(tmp_path / "s")]

    def run(self, *args: str) -> Any:
        return runner.invoke(cli.app, [*self.args, *args])

    def json(self, *args: str) -> dict[str, Any]:
        result = self.run(*args, "--json")
        return validated(result.stdout, result.exit_code)


def _box(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, confdir: Path) -> Box:
    box = Box(tmp_path, confdir)
    monkeypatch.setattr(engine, "default_layers", lambda *_a, **_k: [box.memory])
    monkeypatch.setattr(system.os, "geteuid", lambda: 0)
    monkeypatch.setattr(me, "sshd_checks", lambda *args: [])
    return box


@pytest.fixture
def box(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Box:
    """No fail2ban here: nothing to exempt the address from."""
    return _box(monkeypatch, tmp_path, tmp_path / "no-fail2ban")


@pytest.fixture
def jails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Box:
    """A fail2ban config (server stopped) whose sshd jail does not ignore the address yet."""
    return _box(monkeypatch, tmp_path, Path(write(tmp_path / "fail2ban", JAILS)))


def _planned(text: str) -> int:
    """The count the text plan says ("plan for X: N change(s)..."), 0 for "nothing to"."""
    head = text.splitlines()[0]
    found = re.match(r"plan for \S+: (\d+) change\(s\)", head)
    return int(found.group(1)) if found else 0


# ---------------------------------------------------------------- the envelope, every command


def test_every_command_carries_the_envelope(box: Box) -> None:
    documents = [
        box.json("find", IP),
        box.json("list"),
        box.json("me", IP, "--dry-run"),
        box.json("remove", IP, "--dry-run"),
        box.json("me", IP),
        box.json("history"),
        box.json("rollback", "--list"),
        box.json("undo", "--dry-run"),
        box.json("undo"),
    ]
    assert [d["command"] for d in documents] == [
        "find",
        "list",
        "me",
        "remove",
        "me",
        "history",
        "rollback",
        "undo",
        "undo",
    ]
    assert {d["schema_version"] for d in documents} == {1}
    assert [d["changed"] for d in documents] == [False] * 4 + [True] + [False] * 3 + [True]


def test_find_names_owner_jail_source_and_the_fix(box: Box) -> None:
    box.memory.blocks.append(("filter", "203.0.113.0/24"))
    data = box.json("find", IP)
    assert data["exit_code"] == 3 and data["open"] is False
    targeted, broad = data["findings"]
    assert (targeted["owner"], targeted["jail"], targeted["source"]) == ("manual", None, None)
    assert targeted["fix"] == {"argv": ["unblock", f"{IP}/32"], "text": f"unblock {IP}/32"}
    assert broad["targeted"] is False
    assert broad["fix"]["argv"] == ["unban", "me", IP, "--broad"]
    assert broad["fix"]["text"] == f"unban me {IP} --broad  (or: unblock 203.0.113.0/24)"
    assert [f["detail"] for f in data["still_refused"]] == [f["detail"] for f in data["findings"]]


def test_a_ban_s_times_are_iso_8601_with_a_zone() -> None:
    ban = Finding(
        layer="fail2ban",
        backend="server",
        family="ipv4",
        table="",
        chain="sshd",
        line=None,
        handle=None,
        rule="banned in jail sshd since 2026-12-01 07:30:21 until 08:30:21",
        verdict="ban",
        owner="fail2ban:sshd",
        network=f"{IP}/32",
        targeted=True,
        banned_at=1_796_110_221.0,
        expires_at=1_796_113_821.0,
    )
    shaped = core.finding(ban)
    assert (shaped["kind"], shaped["owner"], shaped["jail"]) == ("ban", "fail2ban", "sshd")
    zoned = r"^2026-12-0\dT\d\d:\d\d:21([+-]\d\d:\d\d)$"
    assert re.match(zoned, shaped["banned_at"]) and re.match(zoned, shaped["expires_at"])
    assert shaped["permanent"] is False
    from datetime import datetime

    span = datetime.fromisoformat(shaped["expires_at"]) - datetime.fromisoformat(
        shaped["banned_at"]
    )
    assert span.total_seconds() == 3600


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("command", ["me", "find", "remove", "doctor", "ignore"])
def test_a_bad_address_is_exit_2_and_the_error_object(box: Box, command: str) -> None:
    result = box.run(command, "banana", "--json")
    assert result.exit_code == 2
    data = validated(result.stdout, 2)
    assert data["command"] == command and data["changed"] is False
    assert data["error"]["exit_code"] == 2 and data["error"]["kind"] == "InputError"
    assert "banana" in data["error"]["message"]
    assert set(data) == {"schema_version", "command", "exit_code", "dry_run", "changed", "error"}
    assert result.stderr.startswith("unban: ")  # people still read it on stderr
    assert box.memory.blocks == [("filter", f"{IP}/32")]


def test_not_root_is_exit_4_in_json(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system.os, "geteuid", lambda: 1000)
    result = box.run("me", IP, "--dry-run", "--json")
    data = validated(result.stdout, 4)
    assert data["error"]["kind"] == "NotRootError" and data["dry_run"] is True
    assert data["would_change"] is False


def test_a_failed_apply_is_exit_1_with_nothing_changed(
    box: Box, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = MemoryLayer("route", [("main", f"{IP}/32")], fail_on="main")
    monkeypatch.setattr(engine, "default_layers", lambda *_a, **_k: [box.memory, failing])
    result = box.run("me", IP, "--json")
    data = validated(result.stdout, 1)
    assert data["error"]["kind"] == "ApplyError" and data["changed"] is False
    assert "rolled back" in data["error"]["message"]


def test_undo_with_nothing_to_undo_is_a_json_error(box: Box) -> None:
    result = box.run("undo", "--json")
    data = validated(result.stdout, 2)
    assert "no change set to undo" in data["error"]["message"]


def test_a_usage_error_with_json_is_the_error_object(box: Box) -> None:
    result = box.run("me", IP, "--json", "--no-such-option")
    assert result.exit_code == 2
    data = validated(result.stdout, 2)
    assert data["command"] == "me" and data["error"]["kind"] == "UsageError"
    assert "--no-such-option" in data["error"]["message"]


# ---------------------------------------------------------------- dry runs and counts


def test_dry_run_would_change_with_an_ignoreip_edit_only(jails: Box) -> None:
    jails.memory.blocks.clear()  # nothing blocks it: the exemption is the whole plan
    data = jails.json("me", IP, "--dry-run")
    assert data["dry_run"] is True and data["would_change"] is True and data["changed"] is False
    (step,) = data["plan"]["steps"]
    assert (step["layer"], step["scope"], step["action"]) == ("exemption", "fail2ban", "write")
    assert step["file"]["path"] == f"{jails.confdir}/jail.local"
    assert step["file"]["before"] == JAILS["jail.local"]
    assert IP in step["file"]["after"] and IP not in step["file"]["before"]
    assert any(line.startswith("+") and IP in line for line in step["file"]["diff"])
    assert data["plan"]["changes"] == 1
    assert (jails.confdir / "jail.local").read_text() == JAILS["jail.local"]  # dry: unchanged


def test_a_second_run_would_change_nothing(jails: Box) -> None:
    assert jails.json("me", IP)["changed"] is True
    again = jails.json("me", IP, "--dry-run")
    assert again["would_change"] is False and again["plan"] == {"changes": 0, "steps": []}
    assert again["open"] is True


def test_text_and_json_count_the_same_changes(jails: Box) -> None:
    jails.memory.blocks.append(("raw", "203.0.113.0/24"))
    text = jails.run("me", IP, "--broad", "--dry-run").stdout
    data = jails.json("me", IP, "--broad", "--dry-run")
    steps = data["plan"]["steps"]
    assert _planned(text) == data["plan"]["changes"] == len(steps) == 3
    assert [s["layer"] for s in steps] == ["iptables", "iptables", "exemption"]
    assert f"dry run, {len(steps)} change(s) planned" in data["summary"]

    done = jails.json("me", IP, "--broad")
    assert done["plan"]["changes"] == len(done["plan"]["steps"]) == 3
    assert f"({len(steps)} change(s), `unban undo" in done["summary"]
    assert done["changed"] is True and done["change_set"] == "1" and done["open"] is True
    assert [f["network"] for f in done["findings"]] == [f"{IP}/32", "203.0.113.0/24"]


def test_remove_dry_run_and_run(box: Box) -> None:
    box.memory.blocks.append(("raw", "203.0.113.0/24"))
    dry = box.json("remove", IP, "--dry-run")
    assert dry["exit_code"] == 3 and dry["would_change"] is True
    assert [s["argv"] for s in dry["plan"]["steps"]] == [["unblock", f"{IP}/32"]]
    assert [f["network"] for f in dry["left_alone"]] == ["203.0.113.0/24"]
    assert [f["fix"]["argv"] for f in dry["still_refused"]] == [["unban", "me", IP, "--broad"]]
    done = box.json("remove", IP)
    assert done["changed"] is True and done["change_set"] == "1" and done["open"] is False
    assert [s["undo"]["argv"] for s in done["plan"]["steps"]] == [["block", f"{IP}/32"]]


def test_history_times_have_a_zone(box: Box) -> None:
    box.run("me", IP)
    (entry,) = box.json("history")["change_sets"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d([+-]\d\d:\d\d)$", entry["created"])
    assert entry["kind"] == "me" and entry["undo"] == "yes"


def test_the_schema_ships_with_the_package() -> None:
    from unban.schema import SCHEMA_VERSION, schema

    loaded = schema()
    assert loaded["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    assert json.loads(json.dumps(loaded)) == loaded


def test_the_readme_s_examples_are_valid() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### JSON output", 1)[1].split("\n## ", 1)[0]
    examples = re.findall(r"```json\n(.*?)```", section, re.S)
    assert len(examples) == 2
    dry, failed = (validated(text) for text in examples)
    assert dry["plan"]["changes"] == len(dry["plan"]["steps"]) and dry["would_change"] is True
    assert failed["error"]["exit_code"] == failed["exit_code"] == 2


def test_doctor_s_document_maps_a_check_s_findings() -> None:
    from unban.checks import Check, Diagnosis
    from unban.contract import commands as contract
    from unban.path.model import BLOCKS

    ban = Finding("fail2ban", "server", "ipv4", "", "sshd", None, None, "banned", "ban",
                  "fail2ban:sshd", f"{IP}/32", True)  # fmt: skip
    check = Check(
        "fail2ban",
        "fail2ban",
        BLOCKS,
        "banned in jail sshd",
        ("banned",),
        (f"unban me {IP}", "sshd -t  (shows what is wrong)"),
        data={"findings": [ban]},
    )
    data = validated(json.dumps(contract.doctor(Diagnosis(IP, 22, None, None, (check,)), 3)), 3)
    (shaped,) = data["checks"]
    assert shaped["data"]["findings"][0]["jail"] == "sshd"
    assert [f["argv"] for f in shaped["fix"]] == [["unban", "me", IP], None]
    assert data["open"] is False and data["cause"]["key"] == "fail2ban"


def test_sshguard_s_exemption_is_a_plan_step_too(
    box: Box, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 10's ban sources: sshguard's whitelist edit is a step like fail2ban's ignoreip."""
    from unban.exemptions.sshguard import SshguardExemption

    whitelist = tmp_path / "whitelist"
    whitelist.write_text("127.0.0.0/8\n")
    conf = tmp_path / "sshguard.conf"
    conf.write_text(f"BACKEND=/x/sshg-fw-nft-sets\nWHITELIST_FILE={whitelist}\n")
    sshguard = SshguardExemption(str(conf), proc=str(tmp_path / "p"), require_running=False)
    monkeypatch.setattr(me, "_default_exemptions", lambda confdir: [sshguard])
    text = box.run("me", IP, "--dry-run").stdout
    data = box.json("me", IP, "--dry-run")
    steps = data["plan"]["steps"]
    assert [(s["layer"], s["scope"], s["action"]) for s in steps] == [
        ("iptables", "filter", "remove"),
        ("exemption", "sshguard", "write"),
    ]
    assert steps[1]["file"]["after"] == f"127.0.0.0/8\n{IP}\n"
    assert _planned(text) == data["plan"]["changes"] == 2 and data["would_change"] is True
    done = box.json("me", IP)
    assert done["plan"]["changes"] == 2 and done["changed"] is True
    assert whitelist.read_text() == f"127.0.0.0/8\n{IP}\n"
