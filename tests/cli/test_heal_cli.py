"""`unban heal` through typer's runner, with a temp config and a stubbed `me` (the one seam:
`unban.heal.heal_address`). Syslog is the stdlib module's, recorded; the lock and the schedule
files go to temp paths through the hidden options."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.clirunner import make_runner
from unban import cli, heal, system
from unban.address import Network, show
from unban.errors import ApplyError
from unban.heal import CLEAR, HEALED, STILL_BLOCKED, Healed
from unban.healconfig import HealConfig
from unban.locking import FileLock
from unban.refusals import Refusal

runner = make_runner()


class FakeMe:
    """Stands in for `unban me`: answers per address, remembers what it was asked."""

    def __init__(self) -> None:
        self.answers: dict[str, Healed] = {}
        self.calls: list[str] = []
        self.configs: list[HealConfig] = []

    def __call__(self, target: Network, config: HealConfig, **options: object) -> Healed:
        address = show(target)
        self.calls.append(address)
        self.configs.append(config)
        if address == "192.0.2.66":
            raise ApplyError("iptables: restore failed; nothing is changed", rollback_failed=False)
        return self.answers.get(address, Healed(address, CLEAR))


class Syslog:
    def __init__(self) -> None:
        self.idents: list[str] = []
        self.records: list[tuple[int, str]] = []

    def openlog(self, ident: str, logoption: int = 0, facility: int = 0) -> None:
        self.idents.append(ident)

    def syslog(self, priority: int, message: str) -> None:
        self.records.append((priority, message))

    def closelog(self) -> None:
        pass


@pytest.fixture
def me(monkeypatch: pytest.MonkeyPatch) -> FakeMe:
    fake = FakeMe()
    monkeypatch.setattr(heal, "heal_address", fake)
    monkeypatch.setattr(system.os, "geteuid", lambda: 0)
    return fake


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> Syslog:
    import syslog

    recorder = Syslog()
    for name in ("openlog", "syslog", "closelog"):
        monkeypatch.setattr(syslog, name, getattr(recorder, name))
    return recorder


def write_config(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "unban.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def invoke(tmp_path: Path, *args: str) -> object:
    return runner.invoke(cli.app, ["heal", "--lock-file", str(tmp_path / "heal.lock"), *args])


PROTECT = 'protect = ["203.0.113.4", "198.51.100.0/24", "192.0.2.66"]\nignoreip = false\n'


def test_silent_when_nothing_was_blocked_but_logged(
    tmp_path: Path, me: FakeMe, logged: Syslog
) -> None:
    config = write_config(tmp_path, 'protect = ["203.0.113.4", "2001:db8::/64"]\n')
    result = runner.invoke(
        cli.app, ["heal", "--config", str(config), "--lock-file", str(tmp_path / "l")]
    )
    assert result.exit_code == 0
    assert result.stdout == "" and result.stderr == ""
    assert me.calls == ["203.0.113.4", "2001:db8::/64"]
    assert me.configs[0].layers == ("firewall", "fail2ban", "hosts", "owners", "sshd")
    assert me.configs[0].ignoreip
    assert logged.idents == ["unban"]
    assert logged.records == [
        (6, f"heal {config}: 2 address(es) checked, nothing was blocked (exit 0)")
    ]


def test_one_line_per_healed_address_errors_on_stderr_worst_exit(
    tmp_path: Path, me: FakeMe, logged: Syslog
) -> None:
    config = write_config(tmp_path, PROTECT)
    me.answers["203.0.113.4"] = Healed(
        "203.0.113.4", HEALED, changes=("fail2ban unban in sshd (server)",), change_set="3"
    )
    me.answers["198.51.100.0/24"] = Healed(
        "198.51.100.0/24", STILL_BLOCKED, 3, refused=(Refusal("users", "DenyUsers", ""),)
    )
    result = runner.invoke(
        cli.app, ["heal", "--config", str(config), "--lock-file", str(tmp_path / "l")]
    )
    assert result.stdout == (
        "healed 203.0.113.4: fail2ban unban in sshd (server) "
        "(change set 3: `unban undo 3` puts it back)\n"
        "198.51.100.0/24 is still refused by: users: DenyUsers\n"
    )
    assert result.stderr == (
        "unban: heal 192.0.2.66: iptables: restore failed; nothing is changed\n"
    )
    assert result.exit_code == 1  # a failure outranks "still refused" (3)
    assert [priority for priority, _ in logged.records] == [5, 4, 3, 6]


def test_still_refused_only_exits_3(tmp_path: Path, me: FakeMe, logged: Syslog) -> None:
    config = write_config(tmp_path, 'protect = ["203.0.113.4"]\n')
    me.answers["203.0.113.4"] = Healed(
        "203.0.113.4", STILL_BLOCKED, 3, refused=(Refusal("users", "x", ""),)
    )
    result = runner.invoke(
        cli.app, ["heal", "--config", str(config), "--lock-file", str(tmp_path / "l")]
    )
    assert result.exit_code == 3


def test_json_summary(tmp_path: Path, me: FakeMe, logged: Syslog) -> None:
    config = write_config(tmp_path, PROTECT)
    me.answers["203.0.113.4"] = Healed("203.0.113.4", HEALED, changes=("route removed",))
    result = runner.invoke(
        cli.app, ["heal", "--config", str(config), "--lock-file", str(tmp_path / "l"), "--json"]
    )
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["config"] == str(config)
    assert data["protected"] == ["203.0.113.4", "198.51.100.0/24", "192.0.2.66"]
    assert data["healed"] == ["203.0.113.4"]
    assert [r["status"] for r in data["results"]] == ["healed", "clear", "failed"]
    assert data["results"][2]["exit_code"] == 1
    assert data["exit_code"] == 1
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("text", "mode", "message"),
    [
        ('protect = ["203.0.113.4"]\nlayers = [firewall]\n', 0o600, "line 2"),
        ('protect = ["10.0.0.0/8"]\n', 0o600, 'add "10.0.0.0/8" to wide_ok too'),
        ('protect = ["203.0.113.4"]\n', 0o620, "is writable by group or others"),
    ],
)
def test_a_broken_config_exits_2_naming_the_file_and_heals_nothing(
    tmp_path: Path, me: FakeMe, logged: Syslog, text: str, mode: int, message: str
) -> None:
    config = write_config(tmp_path, text, mode)
    result = runner.invoke(
        cli.app, ["heal", "--config", str(config), "--lock-file", str(tmp_path / "l")]
    )
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("unban: ") and result.stderr.count("\n") == 1
    assert str(config) in result.stderr and message in result.stderr
    assert me.calls == []
    assert logged.records == [(3, f"heal: {result.stderr[len('unban: ') :].strip()}")]


def test_a_missing_config_exits_2(tmp_path: Path, me: FakeMe, logged: Syslog) -> None:
    missing = tmp_path / "nope.toml"
    result = runner.invoke(
        cli.app, ["heal", "--config", str(missing), "--lock-file", str(tmp_path / "l")]
    )
    assert result.exit_code == 2
    assert result.stderr == f"unban: {missing}: no such file\n"


def test_a_held_lock_exits_0_silently_and_logs(
    tmp_path: Path, me: FakeMe, logged: Syslog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(heal, "LOCK_TIMEOUT", 0.2)
    config = write_config(tmp_path, 'protect = ["203.0.113.4"]\n')
    lock = tmp_path / "l"
    with FileLock(lock, 1):
        result = runner.invoke(cli.app, ["heal", "--config", str(config), "--lock-file", str(lock)])
    assert result.exit_code == 0
    assert result.stdout == "" and result.stderr == ""
    assert me.calls == []
    assert logged.records == [
        (5, f"heal: another unban heal held {lock} for 0 s; this run is skipped")
    ]


def test_not_root_exits_4(tmp_path: Path, me: FakeMe, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system.os, "geteuid", lambda: 1000)
    config = write_config(tmp_path, 'protect = ["203.0.113.4"]\n')
    result = runner.invoke(cli.app, ["heal", "--config", str(config)])
    assert result.exit_code == 4
    assert me.calls == []


# ---------------------------------------------------------------- --install / --uninstall


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    program = tmp_path / "sbin" / "unban"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    monkeypatch.setattr(sys, "argv", [str(program)])
    monkeypatch.setattr(system.os, "geteuid", lambda: 0)
    for name in ("cron.d", "system"):
        (tmp_path / name).mkdir()
    return ["--cron-dir", str(tmp_path / "cron.d"), "--systemd-dir", str(tmp_path / "system")]


def test_install_cron_then_uninstall(tmp_path: Path, dirs: list[str]) -> None:
    config = write_config(tmp_path, 'protect = ["203.0.113.4"]\n')
    result = runner.invoke(
        cli.app,
        ["--state-dir", "/srv/unban", "heal", "--install", "cron", "--every", "15m",
         "--config", str(config), *dirs],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    cron = tmp_path / "cron.d" / "unban"
    command = f"{tmp_path}/sbin/unban --state-dir /srv/unban heal --config {config}"
    assert cron.read_text().endswith(f"\n*/15 * * * * root {command}\n")
    assert result.stdout == (
        f"wrote {cron}\n"
        f"cron runs `{command}` every 15m (*/15 * * * *)\n"
        "`unban heal --uninstall` removes it\n"
    )
    result = runner.invoke(cli.app, ["heal", "--uninstall", *dirs])
    assert result.exit_code == 0
    assert result.stdout == f"removed {cron}\n"
    assert not cron.exists()


def test_install_systemd_json(tmp_path: Path, dirs: list[str]) -> None:
    config = write_config(tmp_path, 'protect = ["203.0.113.4"]\n')
    result = runner.invoke(
        cli.app,
        ["heal", "--install", "systemd", "--every", "7m", "--config", str(config), "--json", *dirs],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["kind"] == "systemd" and data["every"] == "7m"
    assert data["files"] == [
        f"{tmp_path}/system/unban-heal.service",
        f"{tmp_path}/system/unban-heal.timer",
    ]
    assert data["todo"] == ["systemctl daemon-reload", "systemctl enable --now unban-heal.timer"]
    assert "OnUnitActiveSec=7min" in (tmp_path / "system" / "unban-heal.timer").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--every", "5m"], "--every goes with --install"),
        (["--install", "cron", "--uninstall"], "give one of them"),
        (["--install", "cron", "--every", "7m"], "cron cannot run every 7m at equal gaps"),
        (["--install", "cron", "--every", "30s"], "give minutes or hours"),
        (["--install", "cron", "--every", "2d"], "give minutes or hours"),
    ],
)
def test_install_refusals_exit_2_and_write_nothing(
    tmp_path: Path, dirs: list[str], args: list[str], message: str
) -> None:
    config = write_config(tmp_path, 'protect = ["203.0.113.4"]\n')
    result = runner.invoke(cli.app, ["heal", *args, "--config", str(config), *dirs])
    assert result.exit_code == 2
    assert message in result.stderr
    assert not any((tmp_path / "cron.d").iterdir()) and not any((tmp_path / "system").iterdir())


def test_install_refuses_a_broken_config(tmp_path: Path, dirs: list[str]) -> None:
    config = write_config(tmp_path, 'protect = ["203.0.113.4"]\n', 0o666)
    result = runner.invoke(cli.app, ["heal", "--install", "cron", "--config", str(config), *dirs])
    assert result.exit_code == 2
    assert "writable by group or others" in result.stderr
    assert not (tmp_path / "cron.d" / "unban").exists()


def test_install_kind_is_checked_by_typer(tmp_path: Path, dirs: list[str]) -> None:
    result = runner.invoke(cli.app, ["heal", "--install", "anacron", *dirs])
    assert result.exit_code == 2
