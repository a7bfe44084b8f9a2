"""The conventions admins expect, through typer's runner: --version, -h, completion, global
options after the command, help panels with the rescue commands first, one-line summaries with
examples, NO_COLOR, find's exit codes, history/undo of every kind, --dry-run everywhere."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest
from typer.main import get_command

import unban
from tests.clirunner import make_runner
from tests.fakes import MemoryLayer
from unban import cli, engine, me, progress, system
from unban.cli.base import PANELS, hoist_global_options

runner = make_runner()
IP = "203.0.113.4"


class Box:
    def __init__(self, tmp_path: Path) -> None:
        self.memory = MemoryLayer("iptables", [("filter", f"{IP}/32")])
        self.state = tmp_path / "state"
        self.args = ["--fail2ban-conf", str(tmp_path / "none"), "--state-dir", str(self.state)]

    def invoke(self, *args: str) -> object:
        return runner.invoke(cli.app, [*self.args, *args])


@pytest.fixture
def box(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Box:
    made = Box(tmp_path)
    monkeypatch.setattr(engine, "default_layers", lambda *_a, **_k: [made.memory])
    monkeypatch.setattr(system.os, "geteuid", lambda: 0)
    monkeypatch.setattr(me, "sshd_checks", lambda *args: [])
    return made


def flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


# ---------------------------------------------------------------- version, help, completion


def test_version() -> None:
    result = runner.invoke(cli.app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"unban {unban.__version__}\n"


@pytest.mark.parametrize("args", [["-h"], ["--help"], ["find", "-h"], ["heal", "-h"]])
def test_dash_h_is_help(args: list[str]) -> None:
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 0
    assert "Usage: unban" in result.stdout


@pytest.mark.parametrize(
    ("shell", "marker"),
    [("bash", "complete -o default -F _unban_completion unban"), ("zsh", "#compdef unban")],
)
def test_show_completion(shell: str, marker: str) -> None:
    """SHELL's own script, whatever shell (if any) runs the test."""
    result = runner.invoke(cli.app, ["--show-completion", shell], prog_name="unban")
    assert result.exit_code == 0, result.stderr
    assert "_UNBAN_COMPLETE" in result.stdout
    assert marker in result.stdout
    assert "--install-completion" in runner.invoke(cli.app, ["--help"]).stdout


def test_completion_completes_commands_and_options() -> None:
    words = {"_UNBAN_COMPLETE": "complete_bash", "COMP_WORDS": "unban hi", "COMP_CWORD": "1"}
    assert runner.invoke(cli.app, [], env=words, prog_name="unban").stdout == "history\n"
    words.update(COMP_WORDS="unban undo --d", COMP_CWORD="2")
    assert runner.invoke(cli.app, [], env=words, prog_name="unban").stdout == "--dry-run\n"


def test_rescue_commands_come_first_in_help() -> None:
    text = runner.invoke(cli.app, ["--help"]).stdout
    panels = [text.index(f"─ {panel} ") for panel in PANELS]
    assert panels == sorted(panels)
    rows = [m.group(1) for m in re.finditer(r"^│ (\w+) ", text, re.M)]
    assert rows[:4] == ["me", "undo", "doctor", "probe"]
    assert set(rows) == set(get_command(cli.app).commands)  # type: ignore[attr-defined]


def test_every_command_has_a_one_line_summary_and_examples() -> None:
    group = get_command(cli.app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        summary = command.help.split("\n\n")[0]
        assert "\n" not in summary and len(summary) <= 64, name
        assert "\nExamples:\n  unban " in command.help, name
        for paragraph in command.help.split("\n\n")[1:]:
            assert paragraph.startswith("Examples:") or "\n" not in paragraph, name


def test_optional_id_reads_as_one_pair_of_brackets() -> None:
    for name in ("rollback", "undo"):
        usage = runner.invoke(cli.app, [name, "--help"]).stdout
        assert f"unban {name} [OPTIONS] [ID]" in usage
        assert "[[ID]]" not in usage


def test_no_color_keeps_help_free_of_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    coloured = runner.invoke(cli.app, ["--help"]).stdout
    assert re.search(r"\x1b\[[0-9;]*3[0-9]m", coloured)
    monkeypatch.setenv("NO_COLOR", "1")
    plain = runner.invoke(cli.app, ["--help"]).stdout
    assert not re.search(r"\x1b\[[0-9;]*3[0-9]m", plain)


# ---------------------------------------------------------------- global options anywhere


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["find", IP, "--debug"], ["--debug", "find", IP]),
        (["find", IP, "--state-dir", "/s", "--json"], ["--state-dir", "/s", "find", IP, "--json"]),
        (["me", "--fail2ban-conf=/f", IP], ["--fail2ban-conf=/f", "me", IP]),
        (["--json", "find", IP], ["find", "--json", IP]),
        (["--debug", "undo", "3"], ["--debug", "undo", "3"]),
        (["probe", "h", "--", "--debug"], ["probe", "h", "--", "--debug"]),
        (["--version"], ["--version"]),
    ],
)
def test_global_options_are_moved_before_the_command(args: list[str], expected: list[str]) -> None:
    assert hoist_global_options(args) == expected


def test_debug_after_the_command_shows_the_traceback(
    box: Box, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(target: object, layers: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(engine, "find", broken)
    assert runner.invoke(cli.app, ["find", IP]).exit_code == 1
    debug = runner.invoke(cli.app, ["find", IP, "--debug"])
    assert isinstance(debug.exception, KeyError)


def test_state_dir_after_the_command(box: Box, tmp_path: Path) -> None:
    assert runner.invoke(cli.app, ["me", IP, "--state-dir", str(box.state)]).exit_code == 0
    listed = runner.invoke(cli.app, ["history", "--json", "--state-dir", str(box.state)])
    assert [c["kind"] for c in json.loads(listed.stdout)["change_sets"]] == ["me"]


# ---------------------------------------------------------------- exit codes


def test_find_exits_3_when_something_blocks_and_0_when_nothing_does(box: Box) -> None:
    blocked = box.invoke("find", IP)
    assert blocked.exit_code == 3
    assert blocked.stdout.startswith(f"{IP} is blocked by 1 finding(s):")
    clear = box.invoke("find", "198.51.100.9")
    assert clear.exit_code == 0
    assert clear.stdout.startswith("nothing blocks 198.51.100.9")
    assert "Exit 0 when nothing blocks ADDRESS, 3 when something does" in flat(
        box.invoke("find", "--help").stdout
    )


# ---------------------------------------------------------------- one history


def test_history_names_every_change_set_and_undo_takes_any(box: Box) -> None:
    box.memory.blocks.append(("raw", "203.0.113.9/32"))
    assert box.invoke("me", IP).exit_code == 0
    assert box.invoke("remove", "203.0.113.9").exit_code == 0
    listed = json.loads(box.invoke("history", "--json").stdout)["change_sets"]
    assert [(c["id"], c["kind"], c["description"], c["undo"]) for c in listed] == [
        ("1", "me", f"unban me {IP}", "yes"),
        ("2", "remove", "unban remove 203.0.113.9", "yes"),
    ]
    assert listed[1]["changed"] == [
        "iptables raw: remove iptables memory/ipv4 raw: block 203.0.113.9/32"
    ]
    text = box.invoke("history").stdout.splitlines()
    assert re.match(
        r"^   1  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  me +done +undo: yes +unban me ", text[0]
    )

    undone = box.invoke("undo")  # the last one: the remove
    assert undone.exit_code == 0, undone.output
    assert undone.stdout.splitlines()[:2] == [
        "undid change set 2 (unban remove 203.0.113.9):",
        "  put back rule block 203.0.113.9/32 (iptables memory/ipv4 raw)",
    ]
    assert ("raw", "203.0.113.9/32") in box.memory.blocks
    again = json.loads(box.invoke("history", "--json").stdout)["change_sets"]
    assert [c["undo"] for c in again] == ["yes", "no: undone already"]
    assert box.invoke("rollback", "1").exit_code == 0  # the documented alias
    assert ("filter", f"{IP}/32") in box.memory.blocks
    assert box.invoke("undo").exit_code == 2


def test_rollback_list_is_history(box: Box) -> None:
    box.invoke("me", IP)
    assert box.invoke("rollback", "--list").stdout == box.invoke("history").stdout


# ---------------------------------------------------------------- dry runs


def test_undo_dry_run_shows_the_plan_and_changes_nothing(box: Box) -> None:
    box.invoke("me", IP)
    dry = box.invoke("undo", "--dry-run")
    assert dry.exit_code == 0
    assert dry.stdout.splitlines() == [
        f"undo change set 1 (unban me {IP}):",
        f"  put back rule block {IP}/32 (iptables memory/ipv4 filter)",
        "  cannot restore: rules put back start with zero packet and byte counters",
        "dry run: nothing changed",
    ]
    assert box.memory.blocks == []
    data = json.loads(box.invoke("rollback", "--dry-run", "--json").stdout)
    assert data["dry_run"] is True and data["change_set"] == "1"
    assert data["would_change"] is True and data["changed"] is False
    assert box.memory.blocks == []
    real = json.loads(box.invoke("undo", "--json").stdout)
    assert real["steps"] == data["steps"]  # the plan the dry run showed is the one undone
    assert real["changed"] is True and real["undone"]
    assert box.memory.blocks == [("filter", f"{IP}/32")]


def test_heal_dry_run_plans_each_address_and_changes_nothing(box: Box, tmp_path: Path) -> None:
    config = tmp_path / "unban.toml"
    config.write_text(f'protect = ["{IP}"]\nignoreip = false\n')
    config.chmod(0o600)
    result = box.invoke(
        "heal", "--dry-run", "--config", str(config), "--lock-file", str(tmp_path / "l")
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"plan for {IP}: 1 change(s), in this order:"
    assert result.stdout.splitlines()[-1] == "dry run: nothing changed"
    assert box.memory.blocks == [("filter", f"{IP}/32")]
    assert not (box.state / "changes").exists() or not list((box.state / "changes").iterdir())


def test_heal_runs_are_recorded_as_heal(box: Box, tmp_path: Path) -> None:
    config = tmp_path / "unban.toml"
    config.write_text(f'protect = ["{IP}"]\nignoreip = false\n')
    config.chmod(0o600)
    heal = box.invoke("heal", "--config", str(config), "--lock-file", str(tmp_path / "l"))
    assert heal.exit_code == 0, heal.output
    listed = json.loads(box.invoke("history", "--json").stdout)["change_sets"]
    assert [(c["kind"], c["description"]) for c in listed] == [("heal", f"unban heal {IP}")]


def test_heal_install_and_uninstall_dry_runs(
    box: Box, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = tmp_path / "sbin" / "unban"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    monkeypatch.setattr(sys, "argv", [str(program)])
    for name in ("cron.d", "system"):
        (tmp_path / name).mkdir()
    dirs = ["--cron-dir", str(tmp_path / "cron.d"), "--systemd-dir", str(tmp_path / "system")]
    config = tmp_path / "unban.toml"
    config.write_text(f'protect = ["{IP}"]\n')
    config.chmod(0o600)
    args = ["heal", "--install", "systemd", "--config", str(config), *dirs]
    dry = box.invoke(*args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    lines = dry.stdout.splitlines()
    assert lines[0] == f"write {tmp_path}/system/unban-heal.service (root, 0644):"
    assert "$ systemctl enable --now unban-heal.timer" in lines
    assert lines[-1] == "dry run: nothing changed"
    assert list((tmp_path / "system").iterdir()) == []
    assert box.invoke(*args).exit_code == 0
    written = sorted(p.name for p in (tmp_path / "system").iterdir())
    assert written == ["unban-heal.service", "unban-heal.timer"]
    removal = box.invoke("heal", "--uninstall", "--dry-run", *dirs)
    assert removal.stdout.splitlines() == [
        "$ systemctl disable --now unban-heal.timer",
        f"remove {tmp_path}/system/unban-heal.service",
        f"remove {tmp_path}/system/unban-heal.timer",
        "$ systemctl daemon-reload",
        "dry run: nothing changed",
    ]
    assert sorted(p.name for p in (tmp_path / "system").iterdir()) == written


# ---------------------------------------------------------------- progress on slow steps


def slow_find(monkeypatch: pytest.MonkeyPatch) -> None:
    real = engine.find

    def find(target: object, layers: object) -> object:
        time.sleep(0.4)
        return real(target, layers)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "find", find)
    monkeypatch.setattr(progress, "DELAY", 0.1)
    monkeypatch.setattr(progress, "TICK", 0.05)


def test_a_slow_step_shows_progress_on_a_terminal_only(
    box: Box, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_find(monkeypatch)
    piped = box.invoke("find", IP)  # stderr is not a terminal here: cron's case
    assert piped.stderr == ""
    monkeypatch.setattr(progress, "stderr_is_terminal", lambda: True)
    monkeypatch.setattr(cli.base, "stderr_is_terminal", lambda: True)
    shown = box.invoke("find", IP)
    assert f"unban: reading every layer for {IP}..." in shown.stderr
    assert shown.stdout == piped.stdout
    quiet = box.invoke("find", IP, "--json")
    assert quiet.stderr == ""


# ---------------------------------------------------------------- tables on a terminal


def test_tables_on_a_terminal_plain_lines_in_a_pipe(
    box: Box, monkeypatch: pytest.MonkeyPatch
) -> None:
    box.memory.blocks.append(("raw", "203.0.113.0/24"))
    piped = box.invoke("find", IP).stdout
    assert piped.splitlines()[1].startswith("  iptables memory/ipv4 filter  DROP  owner manual")
    monkeypatch.setattr(cli.base, "stdout_is_terminal", lambda: True)
    table = [line.rstrip() for line in box.invoke("find", IP).stdout.splitlines()]
    assert table[0] == f"{IP} is blocked by 2 finding(s)"
    assert ["where", "verdict", "owner", "kind", "rule"] in [line.split() for line in table]
    rows = [line for line in table if "memory/ipv4" in line]
    assert len(rows) == 2
    assert len({row.index("DROP") for row in rows}) == 1  # aligned columns
    plan = box.invoke("remove", IP, "--dry-run").stdout.splitlines()
    assert ["batch", "change", "command", "undo"] in [line.split() for line in plan]
    assert plan[-1] == "dry run: nothing changed"
    assert box.memory.blocks == [("filter", f"{IP}/32"), ("raw", "203.0.113.0/24")]
    box.invoke("me", IP, "--broad")
    history = [line.split() for line in box.invoke("history").stdout.splitlines()]
    assert ["id", "when", "command", "status", "undo", "what", "it", "changed"] in history
    row = next(words for words in history if words[:1] == ["1"])
    assert row[3:] == ["me", "done", "yes", "unban", "me", IP]
    listed = [line.split() for line in box.invoke("list").stdout.splitlines()]
    assert ["#", "iptables"] in listed


def test_rich_is_not_imported_when_output_is_piped(tmp_path: Path) -> None:
    import subprocess

    code = f"""
import sys
from typer.testing import CliRunner
from tests.clirunner import make_runner
from tests.fakes import MemoryLayer
from unban import cli, engine, system
engine.default_layers = lambda *_a, **_k: [MemoryLayer("iptables", [("filter", "{IP}/32")])]
system.os.geteuid = lambda: 0
result = CliRunner().invoke(cli.app, ["--state-dir", "{tmp_path}", "find", "{IP}"])
assert result.exit_code == 3, result.output
print(sorted(m for m in sys.modules if m == "rich" or m.startswith("rich.")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "[]\n"
