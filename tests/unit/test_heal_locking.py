"""unban.locking.FileLock: the one flock helper behind the xtables lock, the state dir's lock
and `unban heal`'s run lock."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from unban import reverter
from unban.errors import LayerError
from unban.layers import xtables
from unban.locking import FileLock, LockBusy


def test_acquire_release_and_reacquire(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "lock", 1.0)
    assert lock.acquire() is True
    assert lock.held
    lock.release()
    assert not lock.held
    with lock:
        assert lock.held
    assert not lock.held
    assert (tmp_path / "lock").stat().st_mode & 0o777 == 0o600


def test_a_second_holder_waits_out_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with FileLock(path, 1.0):
        other = FileLock(path, 0.3)
        start = time.monotonic()
        assert other.acquire() is False
        assert 0.3 <= time.monotonic() - start < 2.0
        assert not other.held
        with pytest.raises(LockBusy, match=f"another program held {path} for 0 s"):
            other.__enter__()
    assert other.acquire() is True
    other.release()


def test_the_caller_chooses_the_error_and_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with FileLock(path, 1.0):
        lock = FileLock(path, 0.1, error=lambda m: LayerError("iptables", m), holder="somebody")
        with pytest.raises(LayerError, match=f"iptables: somebody held {path}"):
            with lock:
                pass


def test_a_lock_held_by_another_process_is_seen_and_freed_when_it_dies(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time\n"
         f"fd = os.open({str(path)!r}, os.O_CREAT | os.O_RDWR)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "print('held', flush=True)\n"
         "time.sleep(60)\n"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert FileLock(path, 0.2).acquire() is False
    finally:
        holder.kill()
        holder.wait()
    lock = FileLock(path, 2.0)
    assert lock.acquire() is True
    lock.release()


def test_xtables_and_reverter_use_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xtables, "XTABLES_LOCK", str(tmp_path / "xtables.lock"))
    lock = xtables.xtables_lock(timeout=0.1)
    assert isinstance(lock, FileLock)
    with lock, pytest.raises(LayerError, match="^iptables: another program held"):
        with xtables.xtables_lock(timeout=0.1):
            pass
    state = reverter.Reverter(tmp_path / "state")
    with state._lock() as held:
        assert isinstance(held, FileLock)
        assert held.path == str(tmp_path / "state" / "lock")
        assert held.holder == "another unban"


def test_heal_yields_to_a_manual_command_between_addresses(tmp_path: Path) -> None:
    """heal holds the command lock; a person's `unban me` waits for it, and heal stops after
    the address it is healing, so the person waits one address, not the whole list."""
    import threading

    from unban import heal
    from unban.heal import CLEAR, Healed
    from unban.locking import CommandLock

    config = tmp_path / "unban.toml"
    config.write_text('protect = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]\n')
    state = tmp_path / "state"
    healing = threading.Event()
    healed: list[str] = []

    def slow(target: object, _config: object) -> Healed:
        healed.append(str(target))
        healing.set()
        time.sleep(0.5)
        return Healed(str(target), CLEAR)

    logged: list[tuple[int, str]] = []
    reports: list[heal.HealReport] = []
    runner = threading.Thread(
        target=lambda: reports.append(
            heal.run(
                config,
                log=lambda p, m: logged.append((p, m)),
                lock_path=str(tmp_path / "heal.lock"),
                heal_one=slow,
                check_owner=False,
                state_dir=str(state),
            )
        )
    )
    runner.start()
    assert healing.wait(5)
    said: list[str] = []
    started = time.monotonic()
    with CommandLock(state, say=said.append):
        waited = time.monotonic() - started
    runner.join(5)
    assert said and said[0].startswith("waiting for unban (pid ")
    assert waited < 1.5  # one address (0.5 s), not four
    (report,) = reports
    assert len(report.results) == 1 and healed == ["192.0.2.1/32"]
    assert "a manual unban is waiting: stopped after 1 of 4 address(es)" in report.yielded
    assert any("a manual unban is waiting" in message for _p, message in logged)
