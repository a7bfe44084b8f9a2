"""The CLI through typer's runner, over an in-memory layer (the firewall itself is tested in
tests/integration). Checks exit codes, output channels and that dry-run changes nothing."""

from __future__ import annotations

import json

import pytest

from tests.clirunner import make_runner
from tests.fakes import MemoryLayer
from unban import cli, engine, system

runner = make_runner()


@pytest.fixture
def layer(monkeypatch: pytest.MonkeyPatch) -> MemoryLayer:
    memory = MemoryLayer("memory", [("a", "203.0.113.4/32"), ("a", "203.0.113.0/24")])
    monkeypatch.setattr(engine, "default_layers", lambda *_a, **_k: [memory])
    monkeypatch.setattr(system.os, "geteuid", lambda: 0)
    return memory


def test_help_documents_the_exit_codes() -> None:
    result = runner.invoke(cli.app, ["--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.replace("│", " ").split())
    assert "3 done, but something still blocks the address" in text
    assert "4 not root" in text


def test_not_root_is_one_line_and_exit_4(
    layer: MemoryLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(system.os, "geteuid", lambda: 1000)
    result = runner.invoke(cli.app, ["remove", "203.0.113.4"])
    assert result.exit_code == 4
    assert (
        result.stderr
        == "unban: unban reads and changes the firewall: run it as root (sudo unban ...)\n"
    )
    assert len(layer.blocks) == 2


@pytest.mark.parametrize("bad", ["", "banana", "0.0.0.0/0", "::/0", "fe80::1%", "203.0.113.4/24"])
def test_bad_address_exit_2_and_nothing_changed(layer: MemoryLayer, bad: str) -> None:
    result = runner.invoke(cli.app, ["remove", bad])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("unban: ") and result.stderr.count("\n") == 1
    assert len(layer.blocks) == 2


def test_dry_run_prints_the_plan_and_changes_nothing(layer: MemoryLayer) -> None:
    result = runner.invoke(cli.app, ["remove", "203.0.113.4", "--dry-run"])
    assert result.exit_code == 3  # the /24 would still block it
    assert "$ unblock 203.0.113.4/32" in result.stdout
    assert "undo: block 203.0.113.4/32" in result.stdout
    assert "add --broad" in result.stdout
    assert "dry run: nothing changed" in result.stdout
    assert layer.journal == []


def test_json_is_the_only_thing_on_stdout(layer: MemoryLayer) -> None:
    result = runner.invoke(cli.app, ["remove", "203.0.113.4", "--broad", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["still_refused"] == [] and data["open"] is True and data["changed"] is True
    assert [s["text"] for s in data["plan"]["steps"]] == [
        "unblock 203.0.113.4/32",
        "unblock 203.0.113.0/24",
    ]
    assert data["plan"]["changes"] == 2
    assert layer.blocks == []


def test_remove_says_what_still_blocks(layer: MemoryLayer) -> None:
    result = runner.invoke(cli.app, ["remove", "203.0.113.4"])
    assert result.exit_code == 3
    assert "done: removed memory ipv4 a: block 203.0.113.4/32" in result.stdout
    assert "change set 1: `unban undo 1` puts it back" in result.stdout
    assert "still blocking 203.0.113.4:" in result.stdout
    assert layer.blocks == [("a", "203.0.113.0/24")]


def test_a_failed_apply_is_exit_1_with_what_happened(layer: MemoryLayer) -> None:
    layer.fail_on = "a"
    result = runner.invoke(cli.app, ["remove", "203.0.113.4"])
    assert result.exit_code == 1
    assert result.stderr.startswith("unban: memory: a refused the batch; nothing is changed")
    assert "change set 1 rolled back" in result.stderr
    assert len(layer.blocks) == 2


def test_find_and_list(layer: MemoryLayer) -> None:
    found = runner.invoke(cli.app, ["find", "203.0.113.4", "--json"])
    assert found.exit_code == 3  # something refuses it
    assert [f["targeted"] for f in json.loads(found.stdout)["findings"]] == [True, False]
    listed = runner.invoke(cli.app, ["list"])
    assert listed.exit_code == 0
    assert "== memory" in listed.stdout and "a 203.0.113.0/24" in listed.stdout


def test_unexpected_errors_are_one_line_unless_debug(
    layer: MemoryLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(target: object, layers: object) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(engine, "find", broken)
    result = runner.invoke(cli.app, ["find", "203.0.113.4"])
    assert result.exit_code == 1
    assert result.stderr == "unban: unexpected error: KeyError: 'boom' (--debug shows where)\n"
    debug = runner.invoke(cli.app, ["--debug", "find", "203.0.113.4"])
    assert isinstance(debug.exception, KeyError)


@pytest.mark.parametrize(
    "argument",
    ["203.0.113.4\x1b]0;pwned\x07", "203.0.113.4\nunban: all clear", "203.0.113.4/" + "9" * 5000],
)
def test_errors_are_one_escaped_line_whatever_was_typed(layer: MemoryLayer, argument: str) -> None:
    result = runner.invoke(cli.app, ["find", argument])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("unban: '203.0.113.4")
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert "unexpected error" not in result.stderr


def test_an_os_error_is_one_line_naming_the_file(
    layer: MemoryLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    def full(_target: object, _layers: object) -> object:
        raise OSError(errno.ENOSPC, "No space left on device", "/var/lib/unban/x\x1b[0m")

    monkeypatch.setattr(engine, "find", full)
    result = runner.invoke(cli.app, ["find", "203.0.113.4"])
    assert result.exit_code == 1
    assert result.stderr == "unban: /var/lib/unban/x\\x1b[0m: No space left on device\n"


def test_a_host_name_idna_refuses_is_bad_input_not_an_unexpected_error() -> None:
    result = runner.invoke(cli.app, ["probe", "ex..ample", "--timeout", "0.1"])
    assert result.exit_code == 2
    assert result.stderr == "unban: 'ex..ample' is not a host name or an address\n"


def test_a_very_long_file_name_in_an_os_error_is_shortened() -> None:
    from unban.errors import os_error_text

    text = os_error_text(OSError(36, "File name too long", "/" + "x" * 5000))
    assert text.endswith(": File name too long") and len(text) < 200
