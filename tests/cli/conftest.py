"""Every CLI test keeps its change sets in its own temp dir, never in /var/lib/unban."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def private_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    state = tmp_path / "default-state"
    monkeypatch.setenv("UNBAN_STATE_DIR", str(state))
    return state
