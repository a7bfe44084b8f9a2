"""Every CLI test keeps its change sets in its own temp dir, never in /var/lib/unban."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def private_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    state = tmp_path / "default-state"
    monkeypatch.setenv("UNBAN_STATE_DIR", str(state))
    return state


@pytest.fixture(autouse=True)
def no_read_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """find and me start the host's rule dumps before importing the layers; these tests'
    layers live in memory, so nothing of the host is read."""
    from unban import readahead

    monkeypatch.setattr(readahead, "start_reads", lambda *_args: None)


@pytest.fixture(autouse=True)
def json_is_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every `--json` run through typer's runner in these tests prints one document that the
    shipped schema accepts, carrying the exit code the run returned."""
    from typer.testing import CliRunner

    from tests.contract import validated

    invoke = CliRunner.invoke

    def checked(self: CliRunner, app: Any, args: Any = None, *more: Any, **options: Any) -> Any:
        result = invoke(self, app, args, *more, **options)
        words = [str(a) for a in (args or [])]
        if "--json" in words and "--help" not in words and result.stdout.strip():
            validated(result.stdout, result.exit_code)
        return result

    monkeypatch.setattr(CliRunner, "invoke", checked)
