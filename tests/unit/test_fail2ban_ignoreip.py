"""ignoreip edits: tricky files, idempotence, where the value is written, refusals."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from tests.conffiles import write
from unban.errors import InputError
from unban.fail2ban.config import read_tree, splitwords
from unban.fail2ban.ignoreip import refusal
from unban.fail2ban.ignorelist import (
    append_token,
    check_range,
    covering,
    entry_network,
    parse_ignore_target,
    remove_tokens,
)
from unban.fail2ban.ignoreplan import plan_edits, plan_removals

IP = ipaddress.ip_network("203.0.113.4")


def effective(confdir: str, jail: str, overrides: dict[str, str]) -> list[str]:
    return splitwords(read_tree(confdir, "jail", overrides).get(jail, "ignoreip"))


def apply_texts(texts: dict[str, str]) -> None:
    for path, text in texts.items():
        Path(path).write_text(text)


# ---------------------------------------------------------------- lines


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["ignoreip = 127.0.0.1/8 ::1\n"], ["ignoreip = 127.0.0.1/8 ::1 203.0.113.4\n"]),
        (["ignoreip =\n"], ["ignoreip = 203.0.113.4\n"]),
        (["ignoreip=\n"], ["ignoreip= 203.0.113.4\n"]),
        (
            ["ignoreip = 10.0.0.1   ; office\n"],
            ["ignoreip = 10.0.0.1 203.0.113.4   ; office\n"],
        ),
        (["ignoreip = 10.0.0.1"], ["ignoreip = 10.0.0.1 203.0.113.4\n"]),
        (
            ["ignoreip = 127.0.0.1/8\n", "    # office\n", "    10.0.0.1 ; vpn\n", "\n"],
            [
                "ignoreip = 127.0.0.1/8\n",
                "    # office\n",
                "    10.0.0.1 ; vpn\n",
                "    203.0.113.4\n",
                "\n",
            ],
        ),
        (
            ["ignoreip = 127.0.0.1/8\n", "\t10.0.0.1\n", "  ; trailing comment\n"],
            [
                "ignoreip = 127.0.0.1/8\n",
                "\t10.0.0.1\n",
                "  ; trailing comment\n",
                "\t203.0.113.4\n",
            ],
        ),
    ],
)
def test_append_token(lines: list[str], expected: list[str]) -> None:
    assert append_token(lines, "203.0.113.4") == expected


def test_remove_tokens_keeps_comments_and_other_entries() -> None:
    lines = [
        "ignoreip = 127.0.0.1/8 203.0.113.4,::1 ; local\n",
        "    # office\n",
        "    203.0.113.4\n",
        "    10.0.0.1 203.0.113.4 ; vpn\n",
        "    203.0.113.4 ; only this\n",
    ]
    out, removed = remove_tokens(lines, lambda t: entry_network(t) == IP)
    assert removed == 4
    assert out == [
        "ignoreip = 127.0.0.1/8 ::1 ; local\n",
        "    # office\n",
        "    10.0.0.1 ; vpn\n",
        "     ; only this\n",
    ]
    assert remove_tokens(out, lambda t: entry_network(t) == IP) == (out, 0)


def test_remove_only_entry_leaves_empty_value() -> None:
    out, removed = remove_tokens(["ignoreip = 203.0.113.4\n"], lambda t: entry_network(t) == IP)
    assert (out, removed) == (["ignoreip =\n"], 1)


# ---------------------------------------------------------------- addresses


def test_covering_counts_cidrs_masks_and_mapped() -> None:
    assert covering(["127.0.0.1/8", "203.0.113.0/24"], IP) == "203.0.113.0/24"
    assert covering(["203.0.113.0/255.255.255.0"], IP) == "203.0.113.0/255.255.255.0"
    assert covering(["::ffff:203.0.113.4"], IP) == "::ffff:203.0.113.4"
    assert covering(["example.org", "203.0.113.5", "::1"], IP) is None
    wide = ipaddress.ip_network("203.0.113.0/24")
    assert covering(["203.0.113.4"], wide) is None


def test_ranges() -> None:
    with pytest.raises(InputError, match="--force"):
        parse_ignore_target("0.0.0.0/0", force=False)
    assert str(parse_ignore_target("0.0.0.0/0", force=True)) == "0.0.0.0/0"
    assert str(parse_ignore_target("::/0", force=True)) == "::/0"
    with pytest.raises(InputError, match="--force"):
        check_range(ipaddress.ip_network("10.0.0.0/15"), force=False)
    check_range(ipaddress.ip_network("10.0.0.0/16"), force=False)
    check_range(ipaddress.ip_network("2001:db8::/48"), force=False)
    with pytest.raises(InputError, match="--force"):
        check_range(ipaddress.ip_network("2001:db8::/40"), force=False)
    with pytest.raises(InputError):
        parse_ignore_target("not-an-address", force=True)


# ---------------------------------------------------------------- plans


def test_default_in_jail_local_is_edited_in_place_once(tmp_path: Path) -> None:
    confdir = write(
        tmp_path,
        {
            "jail.conf": "[DEFAULT]\n#ignoreip = 127.0.0.1/8 ::1\n[sshd]\n[recidive]\n",
            "jail.local": "# mine\n[DEFAULT]\nignoreip = 127.0.0.1/8 ::1\n\n"
            "[sshd]\nenabled = true\n[recidive]\nenabled = true\n",
        },
    )
    tree = read_tree(confdir, "jail")
    texts, states, notes = plan_edits(tree, ["sshd", "recidive"], IP, restricted=False)
    assert list(texts) == [f"{confdir}/jail.local"]
    assert texts[f"{confdir}/jail.local"].startswith(
        "# mine\n[DEFAULT]\nignoreip = 127.0.0.1/8 ::1 203.0.113.4\n\n[sshd]"
    )
    assert [s.status for s in states] == ["added", "added"] and not notes
    for jail in ("sshd", "recidive"):
        assert "203.0.113.4" in effective(confdir, jail, texts)


def test_idempotent_second_plan_is_empty(tmp_path: Path) -> None:
    confdir = write(
        tmp_path,
        {
            "jail.conf": "[DEFAULT]\nignoreip = 127.0.0.1/8\n[sshd]\nignoreip = 10.0.0.1\n",
            "jail.local": "[sshd]\nenabled = true\n[web]\nenabled = true\n",
            "jail.d/x.local": "[web]\nignoreip = 10.0.0.2 ; web\n    10.0.0.3\n",
        },
    )
    tree = read_tree(confdir, "jail")
    texts, _states, _notes = plan_edits(tree, ["sshd", "web"], IP, restricted=False)
    assert set(texts) == {f"{confdir}/jail.local", f"{confdir}/jail.d/x.local"}
    apply_texts(texts)
    again, states, _ = plan_edits(read_tree(confdir, "jail"), ["sshd", "web"], IP, restricted=False)
    assert again == {}
    assert {s.status for s in states} == {"already"}


def test_jail_conf_values_are_overridden_in_jail_local(tmp_path: Path) -> None:
    jail_conf = "[DEFAULT]\nignoreip = 127.0.0.1/8 %(extra)s\nextra = 192.0.2.9\n[sshd]\n[ftp]\nignoreip = 10.0.0.9\n"
    confdir = write(tmp_path, {"jail.conf": jail_conf})
    tree = read_tree(confdir, "jail")
    texts, states, notes = plan_edits(tree, ["sshd", "ftp"], IP, restricted=False)
    assert list(texts) == [f"{confdir}/jail.local"]
    assert texts[f"{confdir}/jail.local"] == (
        "[DEFAULT]\nignoreip = 127.0.0.1/8 %(extra)s 203.0.113.4\n\n"
        "[ftp]\nignoreip = %(known/ignoreip)s 203.0.113.4\n"
    )
    assert len(notes) == 2 and all("jail.conf alone" in n for n in notes)
    assert effective(confdir, "sshd", texts) == ["127.0.0.1/8", "192.0.2.9", "203.0.113.4"]
    assert effective(confdir, "ftp", texts) == ["10.0.0.9", "203.0.113.4"]
    assert (tmp_path / "jail.conf").read_text() == jail_conf


def test_restricted_never_changes_shared_default(tmp_path: Path) -> None:
    confdir = write(
        tmp_path,
        {
            "jail.conf": "[sshd]\n[web]\n",
            "jail.local": "[DEFAULT]\nignoreip = 127.0.0.1/8\n[sshd]\nenabled = true\n[web]\nenabled = true\n",
        },
    )
    tree = read_tree(confdir, "jail")
    texts, _states, _notes = plan_edits(tree, ["sshd"], IP, restricted=True)
    assert effective(confdir, "sshd", texts) == ["127.0.0.1/8", "203.0.113.4"]
    assert effective(confdir, "web", texts) == ["127.0.0.1/8"]


def test_nothing_set_anywhere_goes_to_default_of_a_new_jail_local(tmp_path: Path) -> None:
    confdir = write(tmp_path, {"jail.conf": "[sshd]\nenabled = true\n"})
    texts, _states, _notes = plan_edits(read_tree(confdir, "jail"), ["sshd"], IP, restricted=False)
    assert texts == {f"{confdir}/jail.local": "[DEFAULT]\nignoreip = 203.0.113.4\n"}


def test_later_local_override_is_the_one_edited(tmp_path: Path) -> None:
    confdir = write(
        tmp_path,
        {
            "jail.conf": "[sshd]\n",
            "jail.local": "[sshd]\nenabled = true\nignoreip = 10.0.0.1\n",
            "jail.d/zz.local": "[sshd]\nignoreip = 10.0.0.2\n",
        },
    )
    texts, _s, _n = plan_edits(read_tree(confdir, "jail"), ["sshd"], IP, restricted=False)
    assert texts == {f"{confdir}/jail.d/zz.local": "[sshd]\nignoreip = 10.0.0.2 203.0.113.4\n"}


def test_removal_round_trip(tmp_path: Path) -> None:
    original = {
        "jail.conf": "[sshd]\n[web]\n",
        "jail.local": "[DEFAULT]\nignoreip = 127.0.0.1/8 ; lo\n    # x\n    10.0.0.1\n"
        "[sshd]\nenabled = true\n[web]\nenabled = true\nignoreip = %(known/ignoreip)s 10.0.0.2\n",
    }
    confdir = write(tmp_path, original)
    texts, _s, _n = plan_edits(read_tree(confdir, "jail"), ["sshd", "web"], IP, restricted=False)
    apply_texts(texts)
    back, states, _notes = plan_removals(
        read_tree(confdir, "jail"), ["sshd", "web"], IP, restricted=False
    )
    assert {s.status for s in states} == {"removed"}
    apply_texts(back)
    assert (tmp_path / "jail.local").read_text() == original["jail.local"]


def test_removal_reports_covering_cidr_and_conf_files(tmp_path: Path) -> None:
    confdir = write(
        tmp_path,
        {
            "jail.conf": "[sshd]\nignoreip = 203.0.113.4\n[web]\nignoreip = 203.0.113.0/24\n",
            "jail.local": "[sshd]\nenabled = true\n[web]\nenabled = true\n",
        },
    )
    texts, states, _ = plan_removals(
        read_tree(confdir, "jail"), ["sshd", "web"], IP, restricted=False
    )
    assert texts == {}
    by_jail = {s.jail: s for s in states}
    assert by_jail["sshd"].status == "kept" and "jail.conf" in by_jail["sshd"].detail
    assert by_jail["web"].status == "kept" and "203.0.113.0/24" in by_jail["web"].detail


# ---------------------------------------------------------------- refusals


def test_refusal_symlink_out_group_writable_and_dir(tmp_path: Path) -> None:
    confdir = tmp_path / "conf"
    confdir.mkdir(mode=0o755)
    os.chmod(confdir, 0o755)
    outside = tmp_path / "outside.local"
    outside.write_text("[DEFAULT]\n")
    link = confdir / "jail.local"
    link.symlink_to(outside)
    assert "outside" in (refusal(str(link), str(confdir)) or "")
    link.unlink()
    inside = confdir / "real.local"
    inside.write_text("")
    os.chmod(inside, 0o644)
    link.symlink_to(inside)
    assert refusal(str(link), str(confdir)) is None
    os.chmod(inside, 0o664)
    assert "writable by group or others" in (refusal(str(link), str(confdir)) or "")
    os.chmod(inside, 0o644)
    os.chmod(confdir, 0o777)
    assert "writable by group or others" in (
        refusal(str(confdir / "new.local"), str(confdir)) or ""
    )


def test_plan_raises_refusal(tmp_path: Path) -> None:
    confdir = write(
        tmp_path, {"jail.conf": "[sshd]\n", "jail.local": "[DEFAULT]\nignoreip = 1.2.3.4\n"}
    )
    with pytest.raises(InputError, match="nope"):
        plan_edits(
            read_tree(confdir, "jail"), ["sshd"], IP, restricted=False, refuse=lambda p: "nope"
        )


# ---------------------------------------------------------------- apply rolls back


@pytest.mark.skipif(os.geteuid() != 0, reason="the socket must be root's")
def test_apply_rolls_back_files_when_going_live_fails(tmp_path: Path) -> None:
    import pickle
    import shutil
    import socket
    import threading

    from unban.fail2ban.client import END
    from unban.fail2ban.ignoreip import IgnoreError, apply
    from unban.fail2ban.ignoreplan import FileEdit, IgnorePlan, LiveChange
    from unban.reverter import Reverter

    if shutil.which("fail2ban-client") is None:
        pytest.skip("fail2ban-client is not installed")
    confdir = tmp_path / "conf"
    confdir.mkdir(mode=0o755)
    os.chmod(confdir, 0o755)
    (confdir / "fail2ban.conf").write_text("[Definition]\nloglevel = INFO\n")
    (confdir / "jail.conf").write_text("[DEFAULT]\n")
    local = confdir / "jail.local"
    local.write_text("[DEFAULT]\nignoreip = 127.0.0.1/8\n")
    os.chmod(local, 0o644)
    original = local.read_bytes()

    run = tmp_path / "run"
    run.mkdir(mode=0o755)
    os.chmod(run, 0o755)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(run / "f.sock"))
    server.listen(1)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while True:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                    while END in data:
                        message, data = data.split(END, 1)
                        if message.startswith(b"<F2B"):
                            continue
                        request = pickle.loads(message)
                        if request == ["status"]:
                            reply: object = (0, [("Number of jail", 0), ("Jail list", "")])
                        else:
                            reply = (1, KeyError("sshd"))
                        conn.sendall(pickle.dumps(reply) + END)

    threading.Thread(target=serve, daemon=True).start()
    change = ("set", "sshd", "addignoreip", "203.0.113.4")
    plan = IgnorePlan(
        operation="ignore",
        address="203.0.113.4",
        confdir=str(confdir),
        jails=(),
        edits=(
            FileEdit(
                str(local), original.decode(), "[DEFAULT]\nignoreip = 127.0.0.1/8 203.0.113.4\n"
            ),
        ),
        live=(LiveChange("sshd", change, ("set", "sshd", "delignoreip", "203.0.113.4"), "x"),),
        socket=str(run / "f.sock"),
    )
    reverter = Reverter(tmp_path / "state")
    with pytest.raises(IgnoreError, match="rolled back, nothing changed"):
        apply(plan, reverter, IP)
    server.close()
    assert local.read_bytes() == original
    assert reverter.list()[-1].status == "failed"  # put back after a failure: nothing left to undo


@pytest.mark.parametrize("local", [None, "[DEFAULT]\nbantime = 1h\n"])
def test_two_jails_nothing_set_share_one_new_default_entry(tmp_path: Path, local: str) -> None:
    files = {"jail.conf": "[sshd]\nenabled = true\n[recidive]\nenabled = true\n"}
    if local is not None:
        files["jail.local"] = local
    confdir = write(tmp_path, files)
    texts, states, _notes = plan_edits(
        read_tree(confdir, "jail"), ["sshd", "recidive"], IP, restricted=False
    )
    (text,) = texts.values()
    assert text.count("203.0.113.4") == 1
    assert [s.status for s in states] == ["added", "added"]
    for jail in ("sshd", "recidive"):
        assert effective(confdir, jail, texts) == ["203.0.113.4"]


def test_an_unknown_jail_names_only_the_enabled_ones(tmp_path: Path) -> None:
    from unban.fail2ban import ignoreip

    disabled = "".join(f"[jail{n}]\n" for n in range(90))
    confdir = write(
        tmp_path,
        {"jail.conf": f"[DEFAULT]\n[sshd]\n{disabled}", "jail.local": "[sshd]\nenabled = true\n"},
    )
    with pytest.raises(InputError) as caught:
        ignoreip.plan("ignore", confdir, IP, ["nosuch"])
    assert str(caught.value) == (
        f"no jail nosuch in {confdir} (enabled jails: sshd; 90 more defined, not enabled)"
    )
