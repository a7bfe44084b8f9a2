"""A full or read-only state dir is one line naming it and why (exit 1), never "unexpected
error: OSError". A real tmpfs, filled or remounted read-only, in a private mount namespace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conffiles import write

SCRIPT = """
set -eu
mount -t tmpfs -o size=64k tmpfs "$STATE"
dd if=/dev/zero of="$STATE/fill" bs=4k 2>/dev/null || true
"$PY" -m unban --state-dir "$STATE/s" --fail2ban-conf "$CONF" ignore 203.0.113.4 || echo "rc=$?"
mount -o remount,ro "$STATE"
"$PY" -m unban --state-dir "$STATE/s" --fail2ban-conf "$CONF" ignore 203.0.113.4 || echo "rc=$?"
"""


def test_full_and_read_only_state_dir(tmp_path: Path) -> None:
    conf = write(tmp_path / "conf", {"jail.conf": "[sshd]\nenabled = true\n"})
    state = tmp_path / "state"
    state.mkdir()
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", SCRIPT],
        env={
            "STATE": str(state),
            "CONF": conf,
            "PY": sys.executable,
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == ["rc=1", "rc=1"]
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    assert (
        lines[0]
        == f"unban: cannot write unban's state dir {state}/s/changes/0001: No space left on device"
    )
    assert lines[1].startswith("unban: ") and lines[1].endswith(": Read-only file system")
    assert "unexpected" not in done.stderr
    assert not (Path(conf) / "jail.local").exists()
