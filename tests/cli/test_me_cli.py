"""`unban me` and `unban undo` through typer's runner over in-memory layers: the plan first,
each step, the last line, exit codes, --json, --dry-run, the session's address."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.clirunner import make_runner
from tests.fakes import MemoryLayer
from unban import cli, engine, me, session, system

runner = make_runner()
IP = "203.0.113.4"


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.memory = MemoryLayer("iptables", [("filter", f"{IP}/32")])
        self.args = ["--fail2ban-conf", str(tmp_path / "none"), "--state-dir", str(tmp_path / "s")]

    def invoke(self, *args: str) -> object:
        return runner.invoke(cli.app, [*self.args, *args])


@pytest.fixture
def setup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Setup:
    box = Setup(tmp_path)
    monkeypatch.setattr(engine, "default_layers", lambda *_a, **_k: [box.memory])
    monkeypatch.setattr(system.os, "geteuid", lambda: 0)
    monkeypatch.setattr(me, "sshd_checks", lambda *args: [])
    return box


def test_plan_then_steps_then_the_last_line(setup: Setup) -> None:
    result = runner.invoke(cli.app, [*setup.args, "me", IP])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"plan for {IP}: 1 change(s), in this order:"
    assert "      $ unblock 203.0.113.4/32" in lines
    done = lines.index(f"done: removed iptables memory/ipv4 filter: block {IP}/32")
    assert done > lines.index("      $ unblock 203.0.113.4/32")
    assert lines[-2] == "change set 1: `unban undo 1` puts it all back"
    assert lines[-1] == f"{IP} is now unblocked everywhere unban looks (checked again)"
    assert setup.memory.blocks == []

    again = runner.invoke(cli.app, [*setup.args, "me", IP])
    assert again.exit_code == 0
    assert again.stdout.splitlines()[0] == f"nothing to change for {IP}"

    undone = runner.invoke(cli.app, [*setup.args, "undo"])
    assert undone.exit_code == 0, undone.output
    assert undone.stdout.splitlines()[0] == f"undid change set 1 (unban me {IP}):"
    assert (
        "cannot restore: rules put back start with zero packet and byte counters" in undone.stdout
    )
    assert setup.memory.blocks == [("filter", f"{IP}/32")]
    nothing = runner.invoke(cli.app, [*setup.args, "undo"])
    assert nothing.exit_code == 2 and "no change set to undo" in nothing.stderr


def test_still_refused_exits_3_with_the_fix(setup: Setup) -> None:
    setup.memory.blocks.append(("filter", "203.0.113.0/24"))
    result = runner.invoke(cli.app, [*setup.args, "me", IP])
    assert result.exit_code == 3
    assert f"      fix: unban me {IP} --broad  (or: unblock 203.0.113.0/24)" in result.stdout
    assert (
        result.stdout.splitlines()[-1]
        == f"{IP} is still refused by: iptables (see the fixes above)"
    )
    wide = runner.invoke(cli.app, [*setup.args, "me", IP, "--broad"])
    assert wide.exit_code == 0 and setup.memory.blocks == []


def test_json_is_the_only_stdout(setup: Setup) -> None:
    result = runner.invoke(cli.app, [*setup.args, "me", IP, "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert (data["exit_code"], data["blocked"], data["changed"], data["change_set"]) == (
        0,
        True,
        True,
        "1",
    )
    assert data["summary"].startswith(f"{IP}: unblocked")
    assert [s["layer"] for s in data["plan"]["steps"]] == ["iptables"]
    undone = json.loads(runner.invoke(cli.app, [*setup.args, "undo", "1", "--json"]).stdout)
    assert undone["change_set"] == "1"


def test_dry_run_changes_nothing(setup: Setup) -> None:
    result = runner.invoke(cli.app, [*setup.args, "me", IP, "--dry-run"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-2:] == [
        "dry run: nothing changed",
        f"{IP} would be unblocked everywhere unban looks",
    ]
    assert setup.memory.blocks == [("filter", f"{IP}/32")]


def test_a_failure_exits_1_and_puts_back(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    second = MemoryLayer("route", [("main", f"{IP}/32")], fail_on="main")
    monkeypatch.setattr(engine, "default_layers", lambda *_a, **_k: [setup.memory, second])
    result = runner.invoke(cli.app, [*setup.args, "me", IP])
    assert result.exit_code == 1
    assert result.stderr.startswith("unban: route: main refused the batch")
    assert "rolled back" in result.stderr
    assert setup.memory.blocks == [("filter", f"{IP}/32")]


def test_without_address_the_session_s_is_used(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session, "find_origin", lambda: session.Origin(IP, "SSH_CONNECTION"))
    result = runner.invoke(cli.app, [*setup.args, "me"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == f"address {IP} (from SSH_CONNECTION)"
    monkeypatch.setattr(session, "find_origin", lambda: None)
    none = runner.invoke(cli.app, [*setup.args, "me"])
    assert none.exit_code == 2
    assert "give your address, `unban me ADDRESS`" in none.stderr


@pytest.mark.parametrize("bad", ["banana", "0.0.0.0/0", ""])
def test_bad_address_exit_2(setup: Setup, bad: str) -> None:
    result = runner.invoke(cli.app, [*setup.args, "me", bad])
    assert result.exit_code == 2 and result.stdout == ""
    assert setup.memory.blocks == [("filter", f"{IP}/32")]


def test_not_root_exit_4(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system.os, "geteuid", lambda: 1000)
    assert runner.invoke(cli.app, [*setup.args, "me", IP]).exit_code == 4
    assert runner.invoke(cli.app, [*setup.args, "undo"]).exit_code == 4


def test_rollback_also_undoes_a_me_run(setup: Setup) -> None:
    assert runner.invoke(cli.app, [*setup.args, "me", IP]).exit_code == 0
    result = runner.invoke(cli.app, [*setup.args, "rollback"])
    assert result.exit_code == 0, result.output
    assert setup.memory.blocks == [("filter", f"{IP}/32")]


def test_help_names_the_exit_codes() -> None:
    result = runner.invoke(cli.app, ["me", "--help"])
    text = " ".join(result.output.replace("│", " ").split())
    assert "3 when something still does" in text and "--no-ignore" in text


def test_no_sshd_leaves_the_sshd_layer_alone(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    penalty = MemoryLayer("sshd", [("/etc/ssh/sshd_config.d/unban.conf", f"{IP}/32")])
    monkeypatch.setattr(engine, "default_layers", lambda *_a, **_k: [setup.memory, penalty])
    result = runner.invoke(cli.app, [*setup.args, "me", IP, "--no-sshd"])
    assert result.exit_code == 0, result.output
    assert setup.memory.blocks == []
    assert penalty.blocks == [("/etc/ssh/sshd_config.d/unban.conf", f"{IP}/32")]
    lifted = runner.invoke(cli.app, [*setup.args, "me", IP])
    assert lifted.exit_code == 0, lifted.output
    assert penalty.blocks == []
