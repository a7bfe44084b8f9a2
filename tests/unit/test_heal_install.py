"""`unban heal --install cron|systemd` and `--uninstall`, into temp dirs (never the host's /etc),
with a recording systemctl."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from unban import healschedule
from unban.errors import InputError, LayerError
from unban.healschedule import Interval, Places

COMMAND = ["/usr/local/sbin/unban", "heal"]


@pytest.fixture
def places(tmp_path: Path) -> Places:
    (tmp_path / "cron.d").mkdir()
    (tmp_path / "system").mkdir()
    return Places(str(tmp_path / "cron.d"), str(tmp_path / "system"))


class Systemctl:
    def __init__(self, fail_on: str = "") -> None:
        self.calls: list[list[str]] = []
        self.fail_on = fail_on

    def __call__(self, args: Sequence[str]) -> None:
        self.calls.append(list(args))
        if self.fail_on and self.fail_on in args:
            raise LayerError("systemd", f"'systemctl {' '.join(args)}' failed: not loaded")


def mode_and_owner(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return info.st_mode & 0o7777, info.st_uid, info.st_gid


def test_cron_install_writes_one_root_owned_0644_file(places: Places) -> None:
    result = healschedule.install("cron", Interval(10), COMMAND, places)
    path = places.cron_file()
    assert result.written == (str(path),)
    assert path.read_text() == healschedule.render_cron(Interval(10), COMMAND)
    assert mode_and_owner(path) == (0o644, 0, 0)
    assert result.lines() == [
        f"wrote {path}",
        "cron runs `/usr/local/sbin/unban heal` every 10m (*/10 * * * *)",
        "`unban heal --uninstall` removes it",
    ]
    assert [p.name for p in Path(places.cron_dir).iterdir()] == ["unban"]  # no temp file left


def test_installing_again_is_unchanged_and_a_new_interval_rewrites(places: Places) -> None:
    healschedule.install("cron", Interval(5), COMMAND, places)
    again = healschedule.install("cron", Interval(5), COMMAND, places)
    assert again.written == () and again.unchanged == (str(places.cron_file()),)
    other = healschedule.install("cron", Interval(15), COMMAND, places)
    assert other.written == (str(places.cron_file()),)
    assert "*/15 * * * * root" in places.cron_file().read_text()


def test_systemd_install_without_systemd_prints_the_commands(places: Places) -> None:
    result = healschedule.install("systemd", Interval(5), COMMAND, places)
    service, timer = places.units()
    assert result.written == (str(service), str(timer))
    assert service.read_text() == healschedule.render_service(COMMAND)
    assert timer.read_text() == healschedule.render_timer(Interval(5))
    assert mode_and_owner(service) == mode_and_owner(timer) == (0o644, 0, 0)
    assert result.ran == ()
    assert result.todo == ("systemctl daemon-reload", "systemctl enable --now unban-heal.timer")
    assert "  systemctl enable --now unban-heal.timer" in result.lines()


def test_systemd_install_and_uninstall_drive_systemctl(places: Places) -> None:
    systemctl = Systemctl()
    managed = Places(places.cron_dir, places.systemd_dir, systemctl)
    result = healschedule.install("systemd", Interval(30), COMMAND, managed)
    assert systemctl.calls == [["daemon-reload"], ["enable", "--now", "unban-heal.timer"]]
    assert result.todo == ()
    assert result.lines()[2:4] == [
        "$ systemctl daemon-reload",
        "$ systemctl enable --now unban-heal.timer",
    ]
    systemctl.calls.clear()
    removed = healschedule.uninstall(managed)
    assert systemctl.calls == [["disable", "--now", "unban-heal.timer"], ["daemon-reload"]]
    assert removed.lines() == [
        "$ systemctl disable --now unban-heal.timer",
        *(f"removed {p}" for p in places.units()),
        "$ systemctl daemon-reload",
    ]
    assert removed.removed == tuple(str(p) for p in places.units())
    assert not any(p.exists() for p in places.units())


def test_uninstall_without_systemctl_removes_the_enable_link_and_says_what_to_run(
    places: Places,
) -> None:
    healschedule.install("systemd", Interval(5), COMMAND, places)
    wants = Path(places.systemd_dir) / "timers.target.wants"
    wants.mkdir()
    (wants / "unban-heal.timer").symlink_to(places.units()[1])
    removed = healschedule.uninstall(places)
    service, timer = places.units()
    assert removed.lines() == [
        f"removed {wants / 'unban-heal.timer'}",
        f"removed {service}",
        f"removed {timer}",
        "if systemd still runs the timer (it does not manage this host here), run:",
        "  systemctl stop unban-heal.timer",
        "  systemctl daemon-reload",
    ]
    assert list(Path(places.systemd_dir).rglob("*")) == [wants]


def test_uninstall_goes_on_when_the_timer_is_not_loaded(places: Places) -> None:
    healschedule.install("systemd", Interval(5), COMMAND, places)
    systemctl = Systemctl(fail_on="disable")
    removed = healschedule.uninstall(Places(places.cron_dir, places.systemd_dir, systemctl))
    assert len(removed.removed) == 2
    assert removed.ran == ("systemctl daemon-reload",)


def test_uninstall_says_what_it_removed_or_that_there_was_nothing(places: Places) -> None:
    healschedule.install("cron", Interval(5), COMMAND, places)
    removed = healschedule.uninstall(places)
    assert removed.lines() == [f"removed {places.cron_file()}"]
    assert not places.cron_file().exists()
    nothing = healschedule.uninstall(places)
    service, timer = places.units()
    assert nothing.lines() == [f"nothing to remove: no {places.cron_file()}, {service}, {timer}"]


def test_one_schedule_at_a_time(places: Places) -> None:
    healschedule.install("cron", Interval(5), COMMAND, places)
    with pytest.raises(InputError, match="already installed for cron .* would run it twice"):
        healschedule.install("systemd", Interval(5), COMMAND, places)
    assert not any(p.exists() for p in places.units())


def test_files_unban_did_not_write_are_left_alone(places: Places) -> None:
    foreign = places.cron_file()
    foreign.write_text("0 3 * * * root /usr/local/bin/backup\n")
    with pytest.raises(InputError, match="was not written by `unban heal --install`"):
        healschedule.install("cron", Interval(5), COMMAND, places)
    with pytest.raises(InputError, match="was not written by `unban heal --install`"):
        healschedule.uninstall(places)
    assert foreign.read_text() == "0 3 * * * root /usr/local/bin/backup\n"


def test_a_missing_target_dir_is_refused(tmp_path: Path) -> None:
    places = Places(str(tmp_path / "no-cron.d"), str(tmp_path / "no-system"))
    with pytest.raises(InputError, match="does not exist: is cron installed here"):
        healschedule.install("cron", Interval(5), COMMAND, places)
    with pytest.raises(InputError, match="is systemd installed here"):
        healschedule.install("systemd", Interval(5), COMMAND, places)


def test_host_systemctl_only_for_the_real_dir(places: Places) -> None:
    assert healschedule.host_systemctl(places) is None
    real = Places()
    expected = os.path.isdir(healschedule.SYSTEMD_RUNNING)
    assert (healschedule.host_systemctl(real) is not None) == expected


def test_schedule_checks_interval_then_config(
    places: Places, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "unban.toml"
    with pytest.raises(InputError, match="cron cannot run every 7m"):
        healschedule.schedule("cron", "7m", str(config), places, program="/x/unban")
    with pytest.raises(InputError, match="no such file"):
        healschedule.schedule("cron", "5m", str(config), places, program="/x/unban")
    config.write_text('protect = ["203.0.113.4"]\n')
    config.chmod(0o600)
    monkeypatch.chdir(tmp_path)
    result = healschedule.schedule(
        "systemd", "7m", "unban.toml", places, program="/x/unban", global_args=["--state-dir", "/s"]
    )
    assert result.command == ("/x/unban", "--state-dir", "/s", "heal", "--config", str(config))
    assert "OnUnitActiveSec=7min" in places.units()[1].read_text()
