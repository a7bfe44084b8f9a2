"""The sshd PerSourcePenalties layer's pure parts: where the exemption goes, and the commands."""

from __future__ import annotations

from pathlib import Path

from unban.layers.sshd_penalty import (
    DROP_IN_HEAD,
    Reload,
    edit_command,
    first_setting,
    include_paths,
    plan_edit,
    undo_edit_command,
)

ADDR = "203.0.113.4"


def test_an_existing_setting_is_extended_in_place(tmp_path: Path) -> None:
    main = str(tmp_path / "sshd_config")
    texts = {main: "Port 22\nPerSourcePenaltyExemptList 10.0.0.0/8\nMatch User bob\n  X yes\n"}
    edit = plan_edit(main, texts, "10.0.0.0/8", ADDR)
    assert edit.how == "replace" and edit.line == 2
    assert edit.after.splitlines()[1] == f"PerSourcePenaltyExemptList 10.0.0.0/8,{ADDR}"
    assert edit.after.splitlines()[0] == "Port 22"
    assert edit_command(edit) == (
        f"sed -i '2c\\PerSourcePenaltyExemptList 10.0.0.0/8,{ADDR}' {main}"
    )
    assert undo_edit_command(edit) == f"sed -i '2c\\PerSourcePenaltyExemptList 10.0.0.0/8' {main}"


def test_a_drop_in_when_the_main_config_includes_it(tmp_path: Path) -> None:
    (tmp_path / "sshd_config.d").mkdir()
    main = str(tmp_path / "sshd_config")
    texts = {main: f"Include {tmp_path}/sshd_config.d/*.conf\nPort 22\n"}
    edit = plan_edit(main, texts, None, ADDR)
    assert edit.path == str(tmp_path / "sshd_config.d" / "unban.conf")
    assert edit.before is None
    assert edit.after == f"{DROP_IN_HEAD}PerSourcePenaltyExemptList {ADDR}\n"
    assert undo_edit_command(edit) == f"rm {edit.path}"


def test_the_first_setting_in_reading_order_wins(tmp_path: Path) -> None:
    drop = tmp_path / "sshd_config.d"
    drop.mkdir()
    (drop / "10-a.conf").write_text("PerSourcePenaltyExemptList 192.0.2.1\n")
    main = str(tmp_path / "sshd_config")
    texts = {
        main: f"Include {drop}/*.conf\nPerSourcePenaltyExemptList 10.0.0.1\n",
        str(drop / "10-a.conf"): "PerSourcePenaltyExemptList 192.0.2.1\n",
    }
    assert include_paths(f"{drop}/*.conf") == [str(drop / "10-a.conf")]
    assert first_setting(main, texts) == (str(drop / "10-a.conf"), 1, "192.0.2.1")
    edit = plan_edit(main, texts, "192.0.2.1", ADDR)
    assert edit.path == str(drop / "10-a.conf")
    assert edit.after == f"PerSourcePenaltyExemptList 192.0.2.1,{ADDR}\n"


def test_without_a_drop_in_the_line_goes_before_the_first_match(tmp_path: Path) -> None:
    main = str(tmp_path / "sshd_config")
    texts = {main: "Port 22\nMatch User bob\n  PasswordAuthentication no\n"}
    edit = plan_edit(main, texts, None, ADDR)
    assert edit.how == "insert" and edit.line == 2
    assert edit.after.splitlines() == [
        "Port 22", f"PerSourcePenaltyExemptList {ADDR}", "Match User bob",
        "  PasswordAuthentication no",
    ]  # fmt: skip
    assert edit_command(edit) == f"sed -i '2i PerSourcePenaltyExemptList {ADDR}' {main}"
    assert undo_edit_command(edit) == f"sed -i '2d' {main}"
    plain = plan_edit(main, {main: "Port 22"}, None, ADDR)
    assert plain.how == "append"
    assert plain.after == f"Port 22\nPerSourcePenaltyExemptList {ADDR}\n"


def test_a_setting_inside_a_match_block_is_not_the_global_one(tmp_path: Path) -> None:
    main = str(tmp_path / "sshd_config")
    texts = {main: "Match User bob\n  PerSourcePenaltyExemptList 10.0.0.1\n"}
    assert first_setting(main, texts) is None


def test_reload_commands() -> None:
    assert Reload("systemctl", "ssh.service").command() == "systemctl reload ssh.service"
    assert Reload("signal", "/run/sshd.pid").command() == "kill -HUP $(cat /run/sshd.pid)"
