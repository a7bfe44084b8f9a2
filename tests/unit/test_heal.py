"""`unban heal`'s pure parts: --every, the cron and systemd files (and their copies in scripts/),
the lines it prints and logs, the JSON summary, the exit status, and a run with a fake `me`."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from tests.contract import validated
from unban import heal, healconfig, healschedule, me
from unban.address import Network, show
from unban.contract import commands as contract
from unban.errors import ExitStatus, InputError, LayerError
from unban.heal import (
    CLEAR,
    FAILED,
    HEALED,
    STILL_BLOCKED,
    UPDATED,
    Healed,
    HealReport,
)
from unban.healconfig import HealConfig
from unban.healschedule import Interval
from unban.locking import FileLock
from unban.me import MeResult, Refusal
from unban.model import Batch, Finding, Plan, Report, Step

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- --every


@pytest.mark.parametrize(
    ("text", "minutes", "shown", "systemd"),
    [
        ("1m", 1, "1m", "1min"),
        ("5m", 5, "5m", "5min"),
        ("5min", 5, "5m", "5min"),
        (" 15M ", 15, "15m", "15min"),
        ("60m", 60, "1h", "1h"),
        ("90m", 90, "1h30m", "1h 30min"),
        ("1h30m", 90, "1h30m", "1h 30min"),
        ("2h", 120, "2h", "2h"),
        ("24h", 1440, "24h", "24h"),
    ],
)
def test_intervals(text: str, minutes: int, shown: str, systemd: str) -> None:
    interval = healschedule.parse_interval(text)
    assert interval == Interval(minutes)
    assert interval.text() == shown
    assert interval.systemd() == systemd


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "give minutes or hours such as 5m"),
        ("5", "give minutes or hours"),
        ("30s", "give minutes or hours"),
        ("5 minutes", "give minutes or hours"),
        ("-5m", "give minutes or hours"),
        ("0m", "at least 1m"),
        ("25h", "at most 24h"),
        ("24h1m", "at most 24h"),
    ],
)
def test_bad_intervals(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        healschedule.parse_interval(text)
    assert caught.value.exit_status == ExitStatus.USAGE


@pytest.mark.parametrize(
    ("minutes", "fields"),
    [
        (1, "* * * * *"),
        (5, "*/5 * * * *"),
        (30, "*/30 * * * *"),
        (60, "0 * * * *"),
        (120, "0 */2 * * *"),
        (720, "0 */12 * * *"),
        (1440, "0 0 * * *"),
    ],
)
def test_cron_fields(minutes: int, fields: str) -> None:
    assert Interval(minutes).cron() == fields


@pytest.mark.parametrize(
    ("minutes", "message"),
    [
        (
            7,
            "*/7 starts again at every full hour, so one gap would be shorter); use --every 6m or 10m",
        ),
        (45, "use --every 30m or 1h"),
        (90, "cron cannot count minutes across hours); use --every 1h or 2h"),
        (300, "*/5 in the hour field starts again at midnight); use --every 4h or 6h"),
    ],
)
def test_cron_refuses_uneven_gaps_and_names_the_neighbours(minutes: int, message: str) -> None:
    with pytest.raises(InputError) as caught:
        Interval(minutes).cron()
    assert message in str(caught.value)
    assert "--install systemd, whose timer takes any interval" in str(caught.value)


def test_every_interval_cron_keeps_is_accepted() -> None:
    for minutes in healschedule.cron_minutes():
        Interval(minutes).cron()
    assert healschedule.nearest_cron(1) == (1, 2)
    assert healschedule.nearest_cron(2000) == (1440, 1440)


# ---------------------------------------------------------------- the files


def test_scripts_hold_what_install_writes_for_the_default_interval() -> None:
    command = healschedule.heal_command(healschedule.INSTALLED_PROGRAM)
    interval = healschedule.parse_interval(healschedule.DEFAULT_EVERY)
    assert (REPO / "scripts/unban.cron").read_text() == healschedule.render_cron(interval, command)
    assert (REPO / "scripts/unban-heal.service").read_text() == healschedule.render_service(command)
    assert (REPO / "scripts/unban-heal.timer").read_text() == healschedule.render_timer(interval)


def test_cron_line_and_units() -> None:
    command = healschedule.heal_command("/usr/local/sbin/unban", "/etc/unban/other.toml")
    cron = healschedule.render_cron(Interval(10), command)
    assert cron.endswith(
        "\n*/10 * * * * root /usr/local/sbin/unban heal --config /etc/unban/other.toml\n"
    )
    assert cron.startswith(healschedule.MARK)
    service = healschedule.render_service(command)
    assert "\nType=oneshot\n" in service
    assert "\nExecStart=/usr/local/sbin/unban heal --config /etc/unban/other.toml\n" in service
    timer = healschedule.render_timer(Interval(90))
    assert "\nOnBootSec=1h 30min\nOnUnitActiveSec=1h 30min\n" in timer
    assert timer.endswith("[Install]\nWantedBy=timers.target\n")


def test_heal_command_repeats_global_options_and_refuses_unsafe_paths() -> None:
    assert healschedule.heal_command(
        "/x/unban", heal.DEFAULT_CONFIG, ["--state-dir", "/srv/u"]
    ) == [
        "/x/unban",
        "--state-dir",
        "/srv/u",
        "heal",
    ]
    for bad in ("/etc/my unban.toml", "/etc/100%.toml", "/etc/$x.toml", "/etc/'a'.toml"):
        with pytest.raises(InputError, match="cron and systemd would each read"):
            healschedule.heal_command("/x/unban", bad)


def test_installed_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    program = tmp_path / "bin" / "unban"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    assert healschedule.installed_program("bin/unban") == str(program)  # made absolute, link kept
    monkeypatch.setattr(healschedule, "INSTALLED_PROGRAM", str(program))
    assert healschedule.installed_program("/usr/bin/pytest") == str(program)
    monkeypatch.setattr(healschedule, "INSTALLED_PROGRAM", str(tmp_path / "missing"))
    monkeypatch.setattr(healschedule.shutil, "which", lambda name: None)
    with pytest.raises(InputError, match="scripts/install.sh links it as"):
        healschedule.installed_program("/usr/bin/pytest")


# ---------------------------------------------------------------- lines, log, JSON

REPORT = HealReport(
    config="/etc/unban/unban.toml",
    protected=("203.0.113.4", "198.51.100.7", "2001:db8::/64", "192.0.2.9"),
    hostnames={"home.example.net": ["198.51.100.7"], "gone.example.net": []},
    unresolved=("gone.example.net: Name or service not known",),
    results=(
        Healed(
            "203.0.113.4",
            HEALED,
            changes=("fail2ban unban in sshd (server)", "added to fail2ban's ignoreip"),
            change_set="7",
        ),
        Healed("198.51.100.7", CLEAR),
        Healed(
            "2001:db8::/64",
            STILL_BLOCKED,
            3,
            changes=("route ipv6: 1 removed",),
            refused=(
                Refusal("iptables", "nft/ipv6 filter INPUT #1 (-s 2001:db8::/32 -j DROP)", ""),
            ),
        ),
        Healed("192.0.2.9", FAILED, 1, error="iptables: restore failed; nothing is changed"),
    ),
)


def test_one_line_per_healed_or_refused_address_and_errors_apart() -> None:
    assert heal.output_lines(REPORT) == [
        "healed 203.0.113.4: fail2ban unban in sshd (server); added to fail2ban's ignoreip "
        "(change set 7: `unban undo 7` puts it back)",
        "healed 2001:db8::/64: route ipv6: 1 removed; still refused by: "
        "iptables: nft/ipv6 filter INPUT #1 (-s 2001:db8::/32 -j DROP)",
    ]
    assert heal.error_lines(REPORT) == [
        "unban: heal 192.0.2.9: iptables: restore failed; nothing is changed"
    ]


def test_an_address_nothing_blocked_but_newly_ignored_is_updated() -> None:
    result = Healed("198.51.100.0/24", UPDATED, changes=("added to fail2ban's ignoreip",))
    assert heal.result_line(result) == "198.51.100.0/24: added to fail2ban's ignoreip"
    report = HealReport("c", results=(result, Healed("203.0.113.4", CLEAR)))
    assert heal.summary(report) == "heal c: 2 address(es) checked: 1 updated, 1 clear (exit 0)"
    assert contract.heal(report)["healed"] == []


def test_still_refused_without_changes() -> None:
    refusal = Refusal("users", "DenyUsers root", "remove root from DenyUsers")
    result = Healed("203.0.113.4", STILL_BLOCKED, 3, refused=(refusal,))
    assert heal.result_line(result) == (
        "203.0.113.4 is still refused by: users: DenyUsers root (fix: remove root from DenyUsers)"
    )
    (listed,) = contract.heal(HealReport("c", results=(result,)))["results"][0]["still_refused"]
    assert (listed["layer"], listed["detail"], listed["fix"]["text"]) == (
        "users",
        "DenyUsers root",
        "remove root from DenyUsers",
    )


def test_silent_when_nothing_was_blocked() -> None:
    report = HealReport("c", ("203.0.113.4",), results=(Healed("203.0.113.4", CLEAR),))
    assert heal.output_lines(report) == []
    assert heal.error_lines(report) == []
    assert heal.log_records(report) == [
        (heal.LOG_INFO, "heal c: 1 address(es) checked, nothing was blocked (exit 0)")
    ]


def test_log_records() -> None:
    assert heal.log_records(REPORT) == [
        (
            heal.LOG_WARNING,
            "heal: gone.example.net: Name or service not known; not protected at this run",
        ),
        (heal.LOG_NOTICE, heal.output_lines(REPORT)[0]),
        (heal.LOG_WARNING, heal.output_lines(REPORT)[1]),
        (
            heal.LOG_ERR,
            "heal 192.0.2.9 failed: iptables: restore failed; nothing is changed",
        ),
        (
            heal.LOG_INFO,
            "heal /etc/unban/unban.toml: 4 address(es) checked: 1 healed, 1 still-blocked, "
            "1 failed, 1 clear (exit 1)",
        ),
    ]
    skipped = HealReport("c", skipped="another unban heal held /run/unban-heal.lock for 5 s")
    assert heal.log_records(skipped) == [
        (
            heal.LOG_NOTICE,
            "heal: another unban heal held /run/unban-heal.lock for 5 s; this run is skipped",
        )
    ]


def test_json_summary() -> None:
    data = validated(json.dumps(contract.heal(REPORT)), 1)
    assert data["command"] == "heal" and data["changed"] is True
    assert data["healed"] == ["203.0.113.4", "2001:db8::/64"]
    assert data["skipped"] is None
    assert data["hostnames"] == {"home.example.net": ["198.51.100.7"], "gone.example.net": []}
    results = data["results"]
    assert isinstance(results, list)
    assert results[0] == {
        "address": "203.0.113.4",
        "status": "healed",
        "exit_code": 0,
        "changes": ["fail2ban unban in sshd (server)", "added to fail2ban's ignoreip"],
        "still_refused": [],
        "error": None,
        "change_set": "7",
        "plan": [],
    }
    assert [r["status"] for r in results] == ["healed", "clear", "still-blocked", "failed"]


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        ([], 0),
        ([0, 0], 0),
        ([0, 3], 3),
        ([3, 2], 2),
        ([2, 1, 3], 1),
        ([1, 5, 3], 5),
    ],
)
def test_exit_status_is_the_gravest(codes: list[int], expected: int) -> None:
    assert heal.worst(codes) == expected


# ---------------------------------------------------------------- a run (fake `me`)


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "unban.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


class Recorder:
    def __init__(self, results: dict[str, Healed]) -> None:
        self.results = results
        self.calls: list[tuple[str, HealConfig]] = []

    def __call__(self, target: Network, config: HealConfig) -> Healed:
        text = show(target)
        self.calls.append((text, config))
        if text == "192.0.2.9":
            raise LayerError("iptables", "restore failed")
        if text == "192.0.2.10":
            raise RuntimeError("a bug")
        return self.results.get(text, Healed(text, CLEAR))


def test_run_heals_each_address_once_within_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def resolve(names: list[str]) -> tuple[list[Network], list[str]]:
        if names == ["home.example.net"]:
            return [ipaddress.ip_network("203.0.113.4"), ipaddress.ip_network("2001:db8::4")], []
        return [], [f"{names[0]}: Name or service not known"]

    monkeypatch.setattr(healconfig, "resolve_hostnames", resolve)
    path = config_file(
        tmp_path,
        'protect = ["203.0.113.4", "192.0.2.9", "192.0.2.10", "home.example.net", '
        '"gone.example.net"]\nlayers = ["firewall"]\nignoreip = false\n',
    )
    me = Recorder({"203.0.113.4": Healed("203.0.113.4", HEALED, changes=("route removed",))})
    logged: list[tuple[int, str]] = []
    report = heal.run(
        path,
        log=lambda p, m: logged.append((p, m)),
        lock_path=str(tmp_path / "lock"),
        heal_one=me,
    )
    assert [call[0] for call in me.calls] == [
        "203.0.113.4",
        "192.0.2.9",
        "192.0.2.10",
        "2001:db8::4",
    ]
    assert all(call[1].layers == ("firewall",) and not call[1].ignoreip for call in me.calls)
    assert report.hostnames == {
        "home.example.net": ["203.0.113.4", "2001:db8::4"],
        "gone.example.net": [],
    }
    assert report.unresolved == ("gone.example.net: Name or service not known",)
    assert [r.status for r in report.results] == [HEALED, FAILED, FAILED, CLEAR]
    assert report.results[1].error == "iptables: restore failed"
    assert report.results[2].error == "unexpected error: RuntimeError: a bug"
    assert report.exit_status == 1
    assert logged == heal.log_records(report)
    released = FileLock(tmp_path / "lock", 0)
    assert released.acquire()
    released.release()


def test_a_busy_lock_skips_the_run_and_logs_it(tmp_path: Path) -> None:
    path = config_file(tmp_path, 'protect = ["203.0.113.4"]\n')
    me = Recorder({})
    logged: list[tuple[int, str]] = []
    lock = str(tmp_path / "lock")
    with FileLock(lock, 1):
        report = heal.run(
            path, log=lambda p, m: logged.append((p, m)), lock_path=lock, lock_timeout=0.2,
            heal_one=me,
        )  # fmt: skip
    assert me.calls == []
    assert report.exit_status == 0
    assert report.skipped == f"another unban heal held {lock} for 0 s"
    assert logged == [(heal.LOG_NOTICE, f"heal: {report.skipped}; this run is skipped")]


def test_a_broken_config_is_logged_and_raised_before_the_lock(tmp_path: Path) -> None:
    path = config_file(tmp_path, 'protect = ["203.0.113.4"]\nlayers = [firewall]\n')
    logged: list[tuple[int, str]] = []
    with pytest.raises(InputError) as caught:
        heal.run(
            path,
            log=lambda p, m: logged.append((p, m)),
            lock_path=str(tmp_path / "lock"),
            heal_one=Recorder({}),
        )
    assert str(caught.value).startswith(f"{path}: ")
    assert "line 2" in str(caught.value)
    assert logged == [(heal.LOG_ERR, f"heal: {caught.value}")]
    assert not (tmp_path / "lock").exists()


# ---------------------------------------------------------------- what `unban me` returned


def _finding(layer: str, rule: str = "", chain: str = "sshd", targeted: bool = True) -> Finding:
    return Finding(
        layer=layer,
        backend="server" if layer == "fail2ban" else "nft",
        family="ipv4",
        table="filter",
        chain=chain,
        line=1,
        handle=None,
        rule=rule,
        verdict="REJECT",
        owner="fail2ban:sshd" if layer == "fail2ban" else "manual",
        network="203.0.113.4/32",
        targeted=targeted,
    )


def _me_result(
    *, blocked: bool, changed: bool, ignored: bool = False, refused: bool = False
) -> MeResult:
    ban = _finding("fail2ban")
    rule = _finding("iptables", "-A INPUT -s 203.0.113.4/32 -j DROP", chain="INPUT")
    before = Report("203.0.113.4", (ban, rule) if blocked else ())
    batches = (
        (
            Batch("fail2ban", "server", (Step(ban, "fail2ban-client ...", "..."),), (), ()),
            Batch("iptables", "nft ipv4 filter", (Step(rule, "iptables ...", "..."),), (), ()),
        )
        if blocked
        else ()
    )
    plan = Plan("203.0.113.4", batches)
    refusal = Refusal("iptables", "iptables nft/ipv4 filter INPUT #1 [broad]", "unban me X --broad")
    return MeResult(
        "203.0.113.4",
        False,
        before,
        plan,
        applied=batches if changed else (),
        ignored=("fail2ban ignoreip: wrote /etc/fail2ban/jail.local",) if ignored else (),
        change_set="4" if changed else None,
        still_refused=(refusal,) if refused else (),
    )


def test_from_me_healed() -> None:
    healed = heal.from_me(_me_result(blocked=True, changed=True, ignored=True))
    assert healed == Healed(
        "203.0.113.4",
        HEALED,
        0,
        (
            "unban 203.0.113.4 in fail2ban jail sshd",
            "remove iptables nft/ipv4 filter INPUT #1: -A INPUT -s 203.0.113.4/32 -j DROP",
            "added to fail2ban's ignoreip",
        ),
        (),
        "",
        "4",
    )


def test_from_me_updated_clear_and_still_refused() -> None:
    updated = heal.from_me(_me_result(blocked=False, changed=True, ignored=True))
    assert (updated.status, updated.changes) == (UPDATED, ("added to fail2ban's ignoreip",))
    clear = heal.from_me(_me_result(blocked=False, changed=False))
    assert clear == Healed("203.0.113.4", CLEAR)
    refused = heal.from_me(_me_result(blocked=True, changed=False, refused=True))
    assert (refused.status, refused.exit_status, refused.changes) == (STILL_BLOCKED, 3, ())
    assert refused.remaining == (
        "iptables: iptables nft/ipv4 filter INPUT #1 [broad] (fix: unban me X --broad)",
    )


def test_heal_address_asks_me_for_the_configs_layers_quietly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[dict[str, object]] = []

    def run_me(target: Network, **options: object) -> MeResult:
        calls.append({"target": show(target), **options})
        return _me_result(blocked=False, changed=False)

    monkeypatch.setattr(me, "run_me", run_me)
    config = HealConfig(Path("c"), (), (), ("firewall", "hosts"), False)
    healed = heal.heal_address(
        ipaddress.ip_network("203.0.113.4"), config, confdir="/conf", state_dir="/state"
    )
    assert healed.status == CLEAR
    assert calls == [
        {
            "target": "203.0.113.4",
            "ignore": False,
            "groups": ("firewall", "hosts"),
            "check_sshd": False,
            "keep_sshd_exempt": True,
            "broad": False,
            "dry_run": False,
            "change_kind": "heal",
            "confdir": "/conf",
            "state_dir": "/state",
        }
    ]
