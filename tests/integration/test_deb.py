"""scripts/build-deb's package, installed into a throwaway root of this Debian release (never the
host's dpkg): it runs there without a compiler or network, and `dpkg --purge` leaves nothing behind but
the state dir, and that only when the admin asked to keep it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.release_root import Overlay, release_root
from unban import __version__

REPO = Path(__file__).resolve().parents[2]
IP = "203.0.113.4"
# What dpkg and the system keep about any package, not the package's own files.
SNAPSHOT = (
    "find / -xdev \\( -path /var/lib/dpkg -o -path /var/log -o -path /var/cache"
    " -o -path /mnt \\) -prune -o -print | sort"
)


def unlisted_checkout() -> str:
    """Why git cannot list this checkout's files ('' when it can): in scripts/debian-root a
    worktree's .git names a directory outside the root (a clone, as CI's, is listed)."""
    if shutil.which("git") is None:
        pytest.fail("git is missing: scripts/install.d/45-deb-package.sh installs it")
    proc = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "--error-unmatch", "pyproject.toml"],
        capture_output=True, text=True,
    )  # fmt: skip
    return "" if proc.returncode == 0 else f"git cannot list them: {proc.stderr.strip()}"


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    listed = unlisted_checkout()
    if listed:
        pytest.skip(f"scripts/build-deb packs the files git tracks, and {listed}")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([str(REPO / "scripts" / "build-deb"), str(out)], check=True, capture_output=True)
    (deb,) = out.glob("unban_*.deb")
    return deb


@pytest.fixture
def root(package: Path, tmp_path: Path) -> Overlay:
    if shutil.which("debootstrap") is None:
        pytest.fail("debootstrap is missing: scripts/install.d/45-deb-package.sh installs it")
    overlay = Overlay(release_root(tmp_path), tmp_path / "root")
    shutil.copy(package, overlay.inbox / "unban.deb")
    return overlay


def ok(root: Overlay, script: str) -> str:
    proc = root.run(script)
    assert proc.returncode == 0, f"{script}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_the_wheel_pip_installs(package: Path, tmp_path: Path) -> None:
    (wheel,) = package.parent.glob("unban-*.whl")
    assert (package.parent / f"unban-{__version__}.tar.gz").is_file()
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True)
    version = subprocess.run(
        [str(venv / "bin" / "unban"), "--version"], capture_output=True, text=True
    )
    assert version.stdout == f"unban {__version__}\n"


def test_install_run_and_purge_in_a_root_of_this_release(root: Overlay) -> None:
    before = ok(root, SNAPSHOT)
    ok(root, "dpkg -i /mnt/unban.deb >/dev/null")
    assert ok(root, "unban --version") == f"unban {__version__}\n"
    found = root.run(f"unban find {IP}")
    assert found.returncode == 0, found.stderr
    assert found.stdout.startswith(f"nothing blocks {IP}")
    dry = root.run(f"unban me --dry-run {IP}")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert dry.stdout.splitlines()[0] == f"nothing to change for {IP}"
    files = ok(root, "ls /usr/share/man/man8/unban.8.gz /usr/share/bash-completion/completions/unban"
                     " /usr/share/zsh/vendor-completions/_unban /usr/lib/systemd/system/unban-heal.timer"
                     " /etc/unban/unban.toml")  # fmt: skip
    assert len(files.split()) == 5
    # shipped, not enabled: no timer link, no cron file
    ok(root, "test ! -e /etc/systemd/system/timers.target.wants/unban-heal.timer")
    ok(root, "test ! -e /etc/cron.d/unban")
    assert "_UNBAN_COMPLETE=complete_bash" in ok(
        root, "cat /usr/share/bash-completion/completions/unban"
    )
    complete = "COMP_WORDS='unban hi' COMP_CWORD=1 _UNBAN_COMPLETE=complete_bash unban"
    assert ok(root, complete) == "history\n"
    # a real change: a rule, lifted by `unban me`, recorded in the state dir
    ok(root, f"iptables -I INPUT -s {IP} -j DROP && unban me {IP} >/dev/null")
    assert "unban me" in ok(root, "unban history")
    ok(root, "dpkg --purge unban >/dev/null")
    assert ok(root, SNAPSHOT) == before

    # the admin asked to keep the state dir: only it stays
    ok(root, "dpkg -i /mnt/unban.deb >/dev/null")
    ok(root, f"iptables -I INPUT -s {IP} -j DROP && unban me {IP} >/dev/null")
    ok(root, "touch /var/lib/unban/KEEP && dpkg --purge unban >/dev/null 2>&1")
    kept = sorted(set(ok(root, SNAPSHOT).splitlines()) - set(before.splitlines()))
    assert kept[0] == "/var/lib/unban" and all(p.startswith("/var/lib/unban") for p in kept)
    assert "/var/lib/unban/KEEP" in kept
