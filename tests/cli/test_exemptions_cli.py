"""`unban ignore/unignore --only`: the ban sources by name, refused before anything is read."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from unban import system
from unban.cli import app

runner = CliRunner()


def test_unknown_source_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(system.os, "geteuid", lambda: 0)
    result = runner.invoke(app, ["ignore", "203.0.113.4", "--only", "nope"])
    assert result.exit_code == 2
    assert "--only nope: use fail2ban, sshguard, crowdsec" in result.output


def test_help_names_every_source() -> None:
    result = runner.invoke(app, ["ignore", "--help"])
    assert result.exit_code == 0
    for word in ("--only", "fail2ban", "sshguard", "crowdsec"):
        assert word in result.output
