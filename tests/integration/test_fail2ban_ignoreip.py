"""`unban ignore` / `unignore` / `rollback` against real config trees and a real fail2ban-server.

Every result is checked with fail2ban's own view: the running server (`get JAIL ignoreip`,
after a restart too, so the files are read again) and `fail2ban-client -d`."""

from __future__ import annotations

import ast
import os
import stat

import pytest

from tests.integration import fail2ban_fixtures
from tests.integration.fail2ban_fixtures import DEFAULTS, Factory, Fail2ban

fail2ban_factory = fail2ban_fixtures.fail2ban_factory  # the fixture, for this module

IP = "203.0.113.4"


def dump_ignoreip(f2b: Fail2ban) -> dict[str, list[str]]:
    """fail2ban-client -d: what fail2ban itself would set up, jail by jail."""
    out = f2b.client("-d").stdout
    result: dict[str, list[str]] = {}
    for line in out.splitlines():
        if line.startswith("['set'") and "'addignoreip'" in line:
            command = ast.literal_eval(line)
            result.setdefault(command[1], []).extend(command[3:])
    return result


def jail_local(f2b: Fail2ban, default_extra: str = "", jails: str = "") -> str:
    base = {**DEFAULTS}
    lines = ["[DEFAULT]", *(f"{k} = {v}" for k, v in base.items())]
    return "\n".join(lines) + "\n" + default_extra + "\n" + jails


def recidive_section(f2b: Fail2ban, extra: str = "") -> str:
    return (
        f"[recidive]\nenabled = true\nlogpath = {f2b.log}\nmaxretry = 1\nfindtime = 1d\n{extra}\n"
    )


def sshd_section(f2b: Fail2ban, extra: str = "") -> str:
    return f"[sshd]\nenabled = true\nlogpath = {f2b.authlog}\n{extra}\n"


def make(factory: Factory, build: object) -> Fail2ban:
    """A server whose jail.local is built by `build(f2b)` (it needs the temp paths)."""
    f2b = factory(start=False)
    text = build(f2b)  # type: ignore[operator]
    (f2b.confdir / "jail.local").write_text(text)
    return f2b


def test_jail_with_own_ignoreip_and_default(fail2ban_factory: Factory) -> None:
    def build(f2b: Fail2ban) -> str:
        return jail_local(
            f2b,
            "ignoreip = 127.0.0.1/8 ::1\n",
            sshd_section(f2b, "ignoreip = 10.9.8.7  ; the jump host\n") + recidive_section(f2b),
        )

    f2b = make(fail2ban_factory, build)
    f2b.start()
    proc = f2b.unban("ignore", IP)
    assert proc.returncode == 0, proc.stderr
    text = (f2b.confdir / "jail.local").read_text()
    # sshd's own value got it (inline comment kept), and [DEFAULT] for recidive
    assert "ignoreip = 10.9.8.7 203.0.113.4  ; the jump host" in text
    assert "ignoreip = 127.0.0.1/8 ::1 203.0.113.4" in text
    view = dump_ignoreip(f2b)
    assert IP in view["sshd"] and "10.9.8.7" in view["sshd"]
    assert IP in view["recidive"]
    assert IP in f2b.ignoreip("sshd") and IP in f2b.ignoreip("recidive")
    f2b.restart()
    assert IP in f2b.ignoreip("sshd") and IP in f2b.ignoreip("recidive")


def test_later_jail_d_local_wins_and_is_the_one_edited(fail2ban_factory: Factory) -> None:
    def build(f2b: Fail2ban) -> str:
        return jail_local(f2b, "", sshd_section(f2b, "ignoreip = 10.0.0.1\n"))

    f2b = make(fail2ban_factory, build)
    override = f2b.confdir / "jail.d" / "zz-sshd.local"
    override.write_text("# site override\n[sshd]\nignoreip = 192.0.2.10 192.0.2.11\n")
    f2b.start()
    assert set(f2b.ignoreip("sshd")) == {"192.0.2.10", "192.0.2.11"}
    before_local = (f2b.confdir / "jail.local").read_bytes()

    proc = f2b.unban("ignore", IP, "--jail", "sshd")
    assert proc.returncode == 0, proc.stderr
    assert (f2b.confdir / "jail.local").read_bytes() == before_local
    assert override.read_text() == (
        "# site override\n[sshd]\nignoreip = 192.0.2.10 192.0.2.11 203.0.113.4\n"
    )
    assert set(dump_ignoreip(f2b)["sshd"]) == {"192.0.2.10", "192.0.2.11", IP}
    f2b.restart()
    assert set(f2b.ignoreip("sshd")) == {"192.0.2.10", "192.0.2.11", IP}


def test_continuation_lines_with_comments(fail2ban_factory: Factory) -> None:
    block = (
        "ignoreip = 127.0.0.1/8 ::1   ; loopback\n"
        "           # the office\n"
        "           198.51.100.0/25\n"
        "           ; the vpn\n"
        "           192.0.2.7\n"
    )

    def build(f2b: Fail2ban) -> str:
        return jail_local(f2b, block, sshd_section(f2b))

    f2b = make(fail2ban_factory, build)
    f2b.start()
    proc = f2b.unban("ignore", IP)
    assert proc.returncode == 0, proc.stderr
    text = (f2b.confdir / "jail.local").read_text()
    assert block + "           203.0.113.4\n" in text
    assert set(dump_ignoreip(f2b)["sshd"]) == {
        "127.0.0.1/8",
        "::1",
        "198.51.100.0/25",
        "192.0.2.7",
        IP,
    }
    f2b.restart()
    assert IP in f2b.ignoreip("sshd")

    # an address inside a listed CIDR is already present: nothing written
    before = f2b.snapshot()
    inside = f2b.unban("ignore", "198.51.100.9")
    assert inside.returncode == 0 and "already ignored (through 198.51.100.0/25)" in inside.stdout
    assert f2b.snapshot() == before

    # unignore takes exactly that line back out, comments stay
    proc = f2b.unban("unignore", IP)
    assert proc.returncode == 0, proc.stderr
    assert block in (f2b.confdir / "jail.local").read_text()
    assert IP not in (f2b.confdir / "jail.local").read_text()
    assert IP not in f2b.ignoreip("sshd")


def test_jail_conf_is_never_edited(fail2ban_factory: Factory) -> None:
    f2b = fail2ban_factory(start=False)
    jail_conf = f2b.confdir / "jail.conf"
    # the article's advice: ignoreip in jail.conf's [DEFAULT]
    text = jail_conf.read_text().replace(
        "#ignoreip = 127.0.0.1/8 ::1", "ignoreip = 127.0.0.1/8 ::1 192.0.2.55", 1
    )
    jail_conf.write_text(text)
    (f2b.confdir / "jail.local").write_text(jail_local(f2b, "", sshd_section(f2b)))
    f2b.start()
    before = jail_conf.read_bytes()
    proc = f2b.unban("ignore", IP)
    assert proc.returncode == 0, proc.stderr
    assert jail_conf.read_bytes() == before
    assert "jail.conf alone" in proc.stdout and "now comes from" in proc.stdout
    local = (f2b.confdir / "jail.local").read_text()
    assert "ignoreip = 127.0.0.1/8 ::1 192.0.2.55 203.0.113.4" in local
    assert set(dump_ignoreip(f2b)["sshd"]) == {"127.0.0.1/8", "::1", "192.0.2.55", IP}


def test_rollback_restores_every_file_byte_for_byte(fail2ban_factory: Factory) -> None:
    def build(f2b: Fail2ban) -> str:
        return jail_local(
            f2b,
            "ignoreip = 127.0.0.1/8\n    ::1 ; keep\n",
            sshd_section(f2b, "ignoreip = %(known/ignoreip)s 10.1.1.1\n") + recidive_section(f2b),
        )

    f2b = make(fail2ban_factory, build)
    extra = f2b.confdir / "jail.d" / "50-recidive.local"
    extra.write_text("[recidive]\n# from the config team\nignoreip = 10.2.2.2,10.3.3.3\n")
    os.chmod(extra, 0o640)
    f2b.start()
    before = f2b.snapshot()
    live_before = {j: sorted(f2b.ignoreip(j)) for j in ("sshd", "recidive")}

    proc = f2b.unban("ignore", IP)
    assert proc.returncode == 0, proc.stderr
    changed = [p for p, v in f2b.snapshot().items() if before.get(p) != v]
    assert sorted(changed) == sorted([str(f2b.confdir / "jail.local"), str(extra)])
    assert stat.S_IMODE(extra.stat().st_mode) == 0o640
    for jail in ("sshd", "recidive"):
        assert IP in f2b.ignoreip(jail)
        assert IP in dump_ignoreip(f2b)[jail]

    listed = f2b.unban_json("rollback", "--list")["change_sets"]
    assert listed[-1]["status"] == "done"
    proc = f2b.unban("rollback", listed[-1]["id"])
    assert proc.returncode == 0, proc.stderr
    assert f2b.snapshot() == before
    assert {j: sorted(f2b.ignoreip(j)) for j in ("sshd", "recidive")} == live_before
    assert f2b.unban_json("rollback", "--list")["change_sets"][-1]["status"] == "rolled-back"
    again = f2b.unban("rollback", listed[-1]["id"])
    assert again.returncode == 2 and "was undone already" in again.stderr


def test_dry_run_changes_nothing(fail2ban_factory: Factory) -> None:
    f2b = fail2ban_factory(jails={"sshd": {}})
    before = f2b.snapshot()
    data = f2b.unban_json("ignore", IP, "--dry-run")
    assert data["dry_run"] is True and data["would_change"] is True
    write, live = data["plan"]["steps"]
    assert write["file"]["path"] == str(f2b.confdir / "jail.local")
    assert any(line.startswith("+") and IP in line for line in write["file"]["diff"])
    assert live["text"].endswith(f"set sshd addignoreip {IP}")
    assert live["argv"][-4:] == ["set", "sshd", "addignoreip", IP]
    assert live["undo"]["text"].endswith(f"set sshd delignoreip {IP}")
    assert f2b.snapshot() == before
    assert IP not in f2b.ignoreip("sshd")
    assert not f2b.state_dir.exists()


# ---------------------------------------------------------------- refusals (server not needed)


@pytest.fixture
def stopped(fail2ban_factory: Factory) -> Fail2ban:
    return fail2ban_factory(start=False)


def test_parse_error_refused_with_file_and_line(stopped: Fail2ban) -> None:
    local = stopped.confdir / "jail.local"
    local.write_text(local.read_text() + "\nthis line is not ini\n")
    before = stopped.snapshot()
    proc = stopped.unban("ignore", IP)
    assert proc.returncode == 2
    line = len(local.read_text().splitlines())
    assert f"{local}, line {line}" in proc.stderr
    assert stopped.snapshot() == before


def test_group_writable_file_refused(stopped: Fail2ban) -> None:
    local = stopped.confdir / "jail.local"
    os.chmod(local, 0o664)
    proc = stopped.unban("ignore", IP)
    assert proc.returncode == 2 and "writable by group or others" in proc.stderr


def test_symlink_out_of_confdir_refused(stopped: Fail2ban) -> None:
    local = stopped.confdir / "jail.local"
    outside = stopped.root / "elsewhere.local"
    outside.write_text(local.read_text())
    local.unlink()
    local.symlink_to(outside)
    proc = stopped.unban("ignore", IP)
    assert proc.returncode == 2 and "outside" in proc.stderr and "symlink" in proc.stderr
    assert IP not in outside.read_text()


@pytest.mark.parametrize("wide", ["0.0.0.0/0", "::/0", "10.0.0.0/8"])
def test_huge_ranges_need_force(stopped: Fail2ban, wide: str) -> None:
    before = stopped.snapshot()
    proc = stopped.unban("ignore", wide)
    assert proc.returncode == 2 and "--force" in proc.stderr
    assert stopped.snapshot() == before
    forced = stopped.unban("ignore", wide, "--force")
    assert forced.returncode == 0, forced.stderr
    assert wide in (stopped.confdir / "jail.local").read_text()
