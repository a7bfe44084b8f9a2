"""`unban heal` for real: a fail2ban-server in a namespace bans the address, heal lifts the ban;
the second run prints nothing and changes nothing; a run that cannot get the lock exits 0 and
logs it; --install/--uninstall into temp dirs (the units checked by systemd-analyze).

Syslog is caught without touching the host's /dev: the CLI runs in a private mount namespace
whose /dev is a tmpfs (a few device nodes bound back) with a datagram socket of this test bound
over /dev/log.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import fail2ban_fixtures
from tests.integration.conftest import Netns
from tests.integration.fail2ban_fixtures import Factory, Fail2ban
from unban.locking import FileLock

fail2ban_factory = fail2ban_fixtures.fail2ban_factory

CLIENT = "203.0.113.4"
REPO = Path(__file__).resolve().parents[2]

_PRIVATE_DEV = """
set -e
mount --bind /dev "$1"
mount -t tmpfs -o mode=0755 tmpfs /dev
for name in null zero full random urandom tty; do
    touch "/dev/$name"
    mount --bind "$1/$name" "/dev/$name"
done
touch /dev/log
mount --bind "$2" /dev/log
shift 2
exec "$@"
"""


class Syslog:
    """A /dev/log of our own, seen only by the commands run through `run`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.olddev = root / "olddev"
        self.olddev.mkdir()
        self.path = root / "devlog"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.setblocking(False)

    def run(self, ns: Netns, *args: str) -> subprocess.CompletedProcess[str]:
        argv = ns.argv([sys.executable, "-m", "unban", *args])
        return subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", _PRIVATE_DEV, "sh",
             str(self.olddev), str(self.path), *argv],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=REPO,
        )  # fmt: skip

    def records(self) -> list[str]:
        """Every message received since the last call."""
        out = []
        while True:
            try:
                out.append(self.sock.recv(65536).decode())
            except BlockingIOError:
                return out

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def syslog(tmp_path: Path) -> Iterator[Syslog]:
    capture = Syslog(tmp_path)
    yield capture
    capture.close()


# heal's sshd layer would edit this machine's own /etc/ssh (OpenSSH 9.8+): these tests leave it
# out; tests/integration/test_openssh10.py runs it against a test sshd
NOT_SSHD = 'layers = ["firewall", "fail2ban", "hosts"]\n'


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "unban.toml"
    path.write_text(text if "layers" in text else text + NOT_SSHD)
    path.chmod(0o600)
    return path


def heal_args(f2b: Fail2ban, config: Path, lock: Path, *more: str) -> list[str]:
    return [*f2b.global_args(), "heal", "--config", str(config), "--lock-file", str(lock), *more]


_RECORD = re.compile(r"<(\d+)>\w{3} [ \d]\d \d\d:\d\d:\d\d unban\[\d+\]: (.*)", re.DOTALL)


def messages(records: list[str]) -> list[str]:
    """The text of each record; every one must carry the ident `unban` and its pid."""
    out = []
    for record in records:
        match = _RECORD.fullmatch(record)
        assert match, record
        out.append(match.group(2))
    return out


def rules(ns: Netns) -> list[str]:
    text = ns.run("iptables-save").stdout
    return [re.sub(r"\[\d+:\d+\]", "", line) for line in text.splitlines() if line[:1] != "#"]


def state(f2b: Fail2ban) -> tuple[object, ...]:
    """Everything heal could change: fail2ban's config, bans and database, the rules, backups."""
    changes = f2b.state_dir / "changes"
    return (
        f2b.snapshot(),
        sorted(f2b.banned("sshd")),
        sorted(f2b.ignoreip("sshd")),
        sorted(f2b.db_rows()),
        rules(f2b.ns),
        sorted(p.name for p in changes.iterdir()) if changes.is_dir() else [],
    )


def ban(f2b: Fail2ban) -> None:
    """A real ban: failure lines, fail2ban's verdict, then its action's rule."""
    f2b.fail(CLIENT)
    f2b.wait_banned("sshd", CLIENT)
    deadline = time.monotonic() + 10
    while f"-A f2b-sshd -s {CLIENT}/32 -j REJECT" not in "\n".join(rules(f2b.ns)):
        assert time.monotonic() < deadline, "fail2ban's ban action added no rule"
        time.sleep(0.05)


def test_heal_twice_the_second_run_prints_nothing_and_changes_nothing(
    fail2ban_factory: Factory, tmp_path: Path, syslog: Syslog
) -> None:
    f2b = fail2ban_factory()
    ban(f2b)
    config = write_config(tmp_path, f'protect = ["{CLIENT}", "198.51.100.0/24"]\n')
    lock = tmp_path / "heal.lock"

    first = syslog.run(f2b.ns, *heal_args(f2b, config, lock))
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stderr == ""
    healed, updated = first.stdout.splitlines()
    assert healed == (
        f"healed {CLIENT}: unban {CLIENT} in fail2ban jail sshd; added to fail2ban's ignoreip "
        "(change set 1: `unban undo 1` puts it back)"
    )
    assert updated.startswith("198.51.100.0/24: added to fail2ban's ignoreip (change set ")
    assert f2b.banned("sshd") == []
    assert {CLIENT, "198.51.100.0/24"} <= set(f2b.ignoreip("sshd"))
    assert f"-s {CLIENT}/32" not in f2b.ns.run("iptables-save").stdout
    assert messages(syslog.records()) == [
        healed,
        updated,
        f"heal {config}: 2 address(es) checked: 1 healed, 1 updated (exit 0)",
    ]

    before = state(f2b)
    second = syslog.run(f2b.ns, *heal_args(f2b, config, lock))
    assert (second.returncode, second.stdout, second.stderr) == (0, "", "")
    assert state(f2b) == before
    assert messages(syslog.records()) == [
        f"heal {config}: 2 address(es) checked, nothing was blocked (exit 0)"
    ]


def test_heal_json_names_what_it_did(fail2ban_factory: Factory, tmp_path: Path) -> None:
    f2b = fail2ban_factory()
    ban(f2b)
    config = write_config(
        tmp_path, f'protect = ["{CLIENT}"]\nignoreip = false\nlayers = ["fail2ban"]\n'
    )
    data = f2b.unban_json("heal", "--config", str(config), "--lock-file", str(tmp_path / "l"))
    assert data["healed"] == [CLIENT]
    (result,) = data["results"]
    assert result["status"] == "healed" and result["exit_code"] == 0
    assert not any("ignoreip" in change for change in result["changes"])
    assert CLIENT not in f2b.ignoreip("sshd")
    assert f2b.banned("sshd") == []


def test_a_run_that_cannot_get_the_lock_exits_0_changes_nothing_and_logs(
    fail2ban_factory: Factory, tmp_path: Path, syslog: Syslog
) -> None:
    f2b = fail2ban_factory()
    ban(f2b)
    config = write_config(tmp_path, f'protect = ["{CLIENT}"]\n')
    lock = tmp_path / "heal.lock"
    before = state(f2b)
    with FileLock(lock, 1):  # another heal is running
        proc = syslog.run(f2b.ns, *heal_args(f2b, config, lock))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert state(f2b) == before
    assert f2b.banned("sshd") == [CLIENT]
    assert messages(syslog.records()) == [
        f"heal: another unban heal held {lock} for 5 s; this run is skipped"
    ]


def test_a_broken_config_exits_2_changes_nothing_and_logs(
    fail2ban_factory: Factory, tmp_path: Path, syslog: Syslog
) -> None:
    f2b = fail2ban_factory()
    ban(f2b)
    config = write_config(tmp_path, f'protect = ["{CLIENT}"]\nlayers = ["firewall",\n')
    before = state(f2b)
    proc = syslog.run(f2b.ns, *heal_args(f2b, config, tmp_path / "heal.lock"))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith(f"unban: {config}: ") and proc.stderr.count("\n") == 1
    assert state(f2b) == before
    assert messages(syslog.records()) == [f"heal: {proc.stderr[len('unban: ') :].strip()}"]


# ---------------------------------------------------------------- --install / --uninstall


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed entry point, so the schedule names it (sys.argv[0])."""
    program = REPO / ".venv" / "bin" / "unban"
    return subprocess.run(
        [str(program), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_install_and_uninstall_into_temp_dirs(tmp_path: Path) -> None:
    config = write_config(tmp_path, f'protect = ["{CLIENT}"]\n')
    cron_dir, unit_dir = tmp_path / "cron.d", tmp_path / "system"
    cron_dir.mkdir()
    unit_dir.mkdir()
    dirs = ["--cron-dir", str(cron_dir), "--systemd-dir", str(unit_dir)]
    program = REPO / ".venv" / "bin" / "unban"

    proc = cli("heal", "--install", "cron", "--config", str(config), *dirs)
    assert proc.returncode == 0, proc.stderr
    cron = cron_dir / "unban"
    assert cron.read_text().endswith(f"\n*/5 * * * * root {program} heal --config {config}\n")
    info = cron.stat()
    assert (info.st_mode & 0o7777, info.st_uid, info.st_gid) == (0o644, 0, 0)

    proc = cli("heal", "--install", "systemd", "--config", str(config), *dirs)
    assert proc.returncode == 2 and "--uninstall` first" in proc.stderr
    assert proc.stdout == ""

    proc = cli("heal", "--uninstall", *dirs)
    assert (proc.returncode, proc.stdout) == (0, f"removed {cron}\n")
    assert list(cron_dir.iterdir()) == []

    proc = cli("heal", "--install", "systemd", "--every", "90m", "--config", str(config), *dirs)
    assert proc.returncode == 0, proc.stderr
    service, timer = unit_dir / "unban-heal.service", unit_dir / "unban-heal.timer"
    assert f"\nExecStart={program} heal --config {config}\n" in service.read_text()
    assert "\nOnBootSec=1h 30min\nOnUnitActiveSec=1h 30min\n" in timer.read_text()
    assert "systemctl enable --now unban-heal.timer" in proc.stdout  # printed, not run
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(
            ["systemd-analyze", "verify", str(service), str(timer)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=unit_dir,
        )
        assert verify.returncode == 0, verify.stderr

    proc = cli("heal", "--uninstall", *dirs)
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[:2] == [f"removed {service}", f"removed {timer}"]
    assert list(unit_dir.iterdir()) == []
    proc = cli("heal", "--uninstall", *dirs)
    assert proc.stdout.startswith("nothing to remove: no ")
