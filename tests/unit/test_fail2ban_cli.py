"""The fail2ban commands' command line: options, refusals before anything is read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from unban.cli import app

runner = CliRunner()


def test_help_lists_the_commands_and_global_options() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for word in ("ignore", "unignore", "rollback", "--fail2ban-conf", "--state-dir"):
        assert word in result.output


@pytest.mark.parametrize("wide", ["0.0.0.0/0", "::/0", "10.0.0.0/8", "2001:db8::/32"])
def test_wide_ranges_are_refused_before_anything_else(wide: str) -> None:
    result = runner.invoke(app, ["ignore", wide])
    assert result.exit_code == 2
    assert "--force" in result.output


def test_garbage_address() -> None:
    result = runner.invoke(app, ["unignore", "not-an-ip"])
    assert result.exit_code == 2 and "not an IPv4 or IPv6 address" in result.output


def test_global_options_reach_the_command(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("rollback needs root")
    state = tmp_path / "state"
    result = runner.invoke(
        app,
        [
            "--fail2ban-conf",
            str(tmp_path),
            "--state-dir",
            str(state),
            "rollback",
            "--list",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["change_sets"] == []
    result = runner.invoke(app, ["--state-dir", str(state), "rollback"])
    assert result.exit_code == 2 and f"no change set to undo in {state}" in result.output


def test_ignore_with_missing_config_dir(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    result = runner.invoke(
        app, ["--fail2ban-conf", str(tmp_path / "nope"), "ignore", "203.0.113.4"]
    )
    assert result.exit_code == 2 and "no fail2ban config dir" in result.output
