"""The only place that starts programs. argv lists only, never a shell."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Optional, Sequence

from unban.errors import LayerError, NotRootError

# Tools live in sbin; cron and sudo's secure_path may not have it.
_SEARCH_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"]
)


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def which(name: str) -> Optional[str]:
    return shutil.which(name, path=_SEARCH_PATH)


def run(
    layer: str,
    argv: Sequence[str],
    *,
    stdin: Optional[str] = None,
    check: bool = True,
    timeout: float = 120.0,
) -> Completed:
    """Run argv (no shell) and return its output; raise LayerError naming `layer` on failure."""
    binary = which(argv[0])
    if binary is None:
        raise LayerError(layer, f"'{argv[0]}' is not installed")
    try:
        proc = subprocess.run(
            [binary, *argv[1:]],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
    except subprocess.TimeoutExpired:
        raise LayerError(layer, f"'{' '.join(argv)}' did not finish in {timeout:.0f} s") from None
    except OSError as exc:
        raise LayerError(layer, f"could not run '{argv[0]}': {exc.strerror}") from None
    result = Completed(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise LayerError(layer, f"'{' '.join(argv)}' failed: {first_line(proc.stderr)}")
    return result


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "(no message)"


def require_root() -> None:
    if os.geteuid() != 0:
        raise NotRootError("unban reads and changes the firewall: run it as root (sudo unban ...)")
