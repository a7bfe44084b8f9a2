"""Change sets: register before write, atomic writes keeping owner and mode, rollback."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from unban.errors import InputError, ReverterError
from unban.reverter import FILES_FIRST, Reverter, atomic_write, describe


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_write_keeps_owner_and_mode(tmp_path: Path) -> None:
    target = tmp_path / "jail.local"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    if os.geteuid() == 0:
        os.chown(target, 65534, 65534)
    inode = target.stat().st_ino
    atomic_write(target, b"new\n")
    assert target.read_bytes() == b"new\n"
    assert mode(target) == 0o640
    assert target.stat().st_ino != inode  # replaced by rename, never rewritten in place
    if os.geteuid() == 0:
        assert (target.stat().st_uid, target.stat().st_gid) == (65534, 65534)
    assert [p.name for p in tmp_path.iterdir()] == ["jail.local"]  # no temp file left


def test_atomic_write_through_symlink_keeps_the_link(tmp_path: Path) -> None:
    real = tmp_path / "real.local"
    real.write_text("a")
    link = tmp_path / "link.local"
    link.symlink_to(real)
    atomic_write(link, b"b")
    assert link.is_symlink() and real.read_text() == "b"


def test_atomic_write_new_file_mode(tmp_path: Path) -> None:
    atomic_write(tmp_path / "new", b"x", mode=0o600)
    assert mode(tmp_path / "new") == 0o600


def test_state_dir_is_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    reverter = Reverter(state)
    reverter.begin("x")
    assert mode(state) == 0o700 and mode(state / "changes") == 0o700
    os.chmod(state, 0o755)
    Reverter(state).begin("y")
    assert mode(state) == 0o700


def test_register_then_write_then_rollback_byte_for_byte(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    edited = conf / "jail.local"
    edited.write_bytes(b"[DEFAULT]\r\nignoreip = 1.2.3.4 \t\n# no newline at end")
    os.chmod(edited, 0o600)
    os.utime(edited, ns=(1_000_000_000_000_000_000, 1_500_000_000_123_456_789))
    before = edited.read_bytes(), edited.stat()
    created = conf / "jail.d" / "new.local"
    created.parent.mkdir()

    reverter = Reverter(tmp_path / "state")
    change = reverter.begin("ignore 203.0.113.4")
    change.write(edited, b"changed")
    change.write(created, b"[sshd]\n", mode=0o644)
    change.record_action("live", jail="sshd", summary="live: addignoreip")
    change.finalize()
    manifest = json.loads((change.path / "manifest.json").read_text())
    assert manifest["status"] == "done" and len(manifest["files"]) == 2

    undone: list[dict[str, Any]] = []
    info = reverter.rollback(handlers={"live": undone.append})
    assert info.id == change.id and info.status == "rolled-back"
    assert edited.read_bytes() == before[0]
    after = edited.stat()
    assert (mode(edited), after.st_uid, after.st_mtime_ns) == (
        0o600,
        before[1].st_uid,
        1_500_000_000_123_456_789,
    )
    assert not created.exists()
    assert undone == [{"kind": "live", "jail": "sshd", "summary": "live: addignoreip"}]
    with pytest.raises(InputError, match="no change set to roll back"):
        reverter.rollback()


def test_backup_is_taken_before_the_write(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("original")
    change = Reverter(tmp_path / "state").begin("x")
    record = change.register(target)
    target.write_text("clobbered by someone")  # even a non-atomic write afterwards
    assert (change.path / (record.backup or "")).read_text() == "original"
    change.rollback()
    assert target.read_text() == "clobbered by someone"  # unban never wrote it: left alone


def test_what_unban_is_about_to_write_is_kept_before_the_write(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("a\n")
    change = Reverter(tmp_path / "state").begin("x")
    change.write(target, b"a\nb\n")
    (record,) = change.info.files
    ((before, written),) = record.edits
    assert (change.path / before).read_bytes() == b"a\n"
    assert (change.path / written).read_bytes() == b"a\nb\n"
    saved = json.loads((change.path / "manifest.json").read_text())
    assert saved["files"][0]["edits"] == [[before, written]]


def test_a_file_changed_since_gets_only_unban_s_edit_taken_out(tmp_path: Path) -> None:
    target = tmp_path / "jail.local"
    target.write_text("[DEFAULT]\nbantime = 10m\nignoreip = 127.0.0.1/8\n")
    reverter = Reverter(tmp_path / "state")
    change = reverter.begin("x")
    change.write(target, b"[DEFAULT]\nbantime = 10m\nignoreip = 127.0.0.1/8 203.0.113.4\n")
    change.finalize()
    target.write_text("[DEFAULT]\nbantime = 1h\nignoreip = 127.0.0.1/8 203.0.113.4\n")
    reverter.rollback()
    assert target.read_text() == "[DEFAULT]\nbantime = 1h\nignoreip = 127.0.0.1/8\n"


def test_a_conflicting_later_edit_is_refused_naming_the_lines(tmp_path: Path) -> None:
    target = tmp_path / "hosts.deny"
    other = tmp_path / "hosts.allow"
    target.write_text("sshd: 198.51.100.7, 203.0.113.4\n")
    other.write_text("# allow\n")
    reverter = Reverter(tmp_path / "state")
    change = reverter.begin("x")
    change.write(other, b"sshd: 203.0.113.4\n# allow\n")
    change.write(target, b"sshd: 198.51.100.7\n")
    undone: list[str] = []
    change.record_action("live")
    change.finalize()
    target.write_text("sshd: 198.51.100.7, 198.51.100.8\n")
    with pytest.raises(ReverterError) as caught:
        reverter.rollback(handlers={"live": lambda a: undone.append("live")})
    assert f"{target} changed since unban wrote it" in str(caught.value)
    assert "line 1: 'sshd: 198.51.100.7'" in str(caught.value)
    assert caught.value.exit_status == 1
    assert undone == [] and other.read_text() == "sshd: 203.0.113.4\n# allow\n"
    assert reverter.get(change.id).status == "done"


def test_a_rollback_cut_short_is_finished_without_doing_anything_twice(tmp_path: Path) -> None:
    reverter = Reverter(tmp_path / "state")
    change = reverter.begin("x")
    for name in ("one", "two", "three"):
        change.record_action("step", name=name, state="applied")
    calls: list[str] = []

    def flaky(action: Any) -> None:
        if action["name"] == "two" and not calls.count("failed"):
            calls.append("failed")
            raise RuntimeError("not now")
        calls.append(action["name"])

    with pytest.raises(ReverterError, match="only partly"):
        reverter.rollback(handlers={"step": flaky})
    reverter.rollback(handlers={"step": flaky})
    assert calls == ["three", "failed", "one", "two"]


def test_a_killed_owner_makes_a_change_set_incomplete(tmp_path: Path) -> None:
    import subprocess
    import sys

    state = tmp_path / "state"
    code = "from unban.reverter import Reverter; import sys; Reverter(sys.argv[1]).begin('cut')"
    subprocess.run([sys.executable, "-c", code, str(state)], check=True)
    mine = Reverter(state).begin("running")
    assert [i.description for i in Reverter(state).incomplete()] == ["cut"]
    mine.finalize()


def test_list_get_and_ids(tmp_path: Path) -> None:
    reverter = Reverter(tmp_path / "state")
    first = reverter.begin("one")
    first.finalize()
    second = reverter.begin("two")  # in progress (interrupted): still rollback-able
    assert [i.id for i in reverter.list()] == ["1", "2"]
    assert reverter.get().id == "2" and reverter.get("0001").id == "1"
    with pytest.raises(InputError, match="no change set 7"):
        reverter.get("7")
    reverter.rollback("2")
    assert reverter.get().id == "1"
    text = "\n".join(describe(reverter.list()))
    assert "rolled-back  two" in text and "done         one" in text
    assert second.path.name == "0002"


def test_rollback_refuses_unknown_action_kinds_and_checks(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("a")
    reverter = Reverter(tmp_path / "state")
    change = reverter.begin("x")
    change.write(target, b"b")
    change.record_action("mystery")
    with pytest.raises(ReverterError, match="cannot undo here: mystery"):
        reverter.rollback()
    assert target.read_text() == "b"

    def refuse(_info: Any) -> None:
        raise InputError("not now")

    with pytest.raises(InputError, match="not now"):
        reverter.rollback(handlers={"mystery": lambda a: None}, check=refuse)
    assert target.read_text() == "b"
    reverter.rollback(handlers={"mystery": lambda a: None})
    assert target.read_text() == "a"


def test_a_failing_undo_still_restores_files_and_says_so(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("a")
    reverter = Reverter(tmp_path / "state")
    change = reverter.begin("x")
    change.write(target, b"b")
    change.record_action("live")

    def boom(_action: Any) -> None:
        raise RuntimeError("server gone")

    with pytest.raises(ReverterError, match="only partly rolled back: live: server gone"):
        reverter.rollback(handlers={"live": boom})
    assert target.read_text() == "a"


def test_an_action_s_files_first_are_put_back_right_before_it_is_undone(tmp_path: Path) -> None:
    """A daemon's restart is undone once its file is back (it must read the old one) and
    before the older actions (a kernel entry the restart would drop); other files last."""
    whitelist, blacklist = tmp_path / "whitelist", tmp_path / "blacklist"
    whitelist.write_text("127.0.0.0/8\n")
    blacklist.write_text("1|sshd|4|203.0.113.4\n")
    reverter = Reverter(tmp_path / "state")
    change = reverter.begin("x")
    change.write(blacklist, b"")
    change.record_action("live", name="element lifted", state="applied")
    change.record_action("live", name="restart", state="applied", **{FILES_FIRST: [str(whitelist)]})
    change.write(whitelist, b"127.0.0.0/8\n203.0.113.4\n")
    change.record_action("live", name="live entry", state="applied")
    change.finalize()
    seen: list[tuple[str, str, str]] = []
    reverter.rollback(
        handlers={
            "live": lambda a: seen.append((a["name"], whitelist.read_text(), blacklist.read_text()))
        }
    )
    assert seen == [
        ("live entry", "127.0.0.0/8\n203.0.113.4\n", ""),
        ("restart", "127.0.0.0/8\n", ""),
        ("element lifted", "127.0.0.0/8\n", ""),
    ]
    assert blacklist.read_text() == "1|sshd|4|203.0.113.4\n"


def test_a_file_removed_through_the_change_set_comes_back(tmp_path: Path) -> None:
    target = tmp_path / "unban-whitelists.yaml"
    target.write_text("whitelist: 203.0.113.4\n")
    os.chmod(target, 0o640)
    before = target.stat()
    reverter = Reverter(tmp_path / "state")
    change = reverter.begin("x")
    change.write(target, None)
    change.write(tmp_path / "never-there", None)  # nothing to remove: nothing recorded
    change.finalize()
    assert not target.exists() and not change.info.files[1].written
    reverter.rollback()
    assert target.read_text() == "whitelist: 203.0.113.4\n" and mode(target) == 0o640
    assert target.stat().st_mtime_ns == before.st_mtime_ns


def test_a_removed_file_made_again_since_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "unban-whitelists.yaml"
    target.write_text("a\n")
    reverter = Reverter(tmp_path / "state")
    change = reverter.begin("x")
    change.write(target, None)
    change.finalize()
    target.write_text("someone else's\n")
    with pytest.raises(ReverterError, match="made again since unban removed it"):
        reverter.rollback()
    assert target.read_text() == "someone else's\n"


def test_empty_change_set_can_be_discarded(tmp_path: Path) -> None:
    reverter = Reverter(tmp_path / "state")
    change = reverter.begin("nothing")
    change.discard()
    assert reverter.list() == []


def test_state_dir_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to chown")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 65534, 65534)
    with pytest.raises(ReverterError, match="owned by uid 65534"):
        Reverter(state).begin("x")


def _acl(*entries: tuple[int, int, int]) -> bytes:
    """A POSIX ACL as the kernel stores it in system.posix_acl_access (version 2)."""
    import struct

    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def test_atomic_write_keeps_acls_labels_and_user_xattrs(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root for a named-user ACL entry and security.* attributes")
    target = tmp_path / "hosts.deny"
    target.write_text("old\n")
    os.chmod(target, 0o640)
    undefined = 0xFFFFFFFF
    acl = _acl(
        (0x01, 6, undefined),  # user::rw-
        (0x02, 4, 65534),  # user:nobody:r--
        (0x04, 4, undefined),  # group::r--
        (0x10, 4, undefined),  # mask::r--
        (0x20, 0, undefined),  # other::---
    )
    os.setxattr(target, "system.posix_acl_access", acl)
    os.setxattr(target, "user.origin", b"admin")
    label = b"system_u:object_r:etc_t:s0\x00"
    try:
        os.setxattr(target, "security.selinux", label)
        labelled = True
    except OSError:
        labelled = False  # no LSM here stores it
    atomic_write(target, b"new\n")
    assert target.read_bytes() == b"new\n"
    assert os.getxattr(target, "system.posix_acl_access") == acl
    assert os.getxattr(target, "user.origin") == b"admin"
    assert mode(target) == 0o640
    if labelled:
        assert os.getxattr(target, "security.selinux") == label


def test_only_the_saves_recovery_relies_on_sync_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The intent before a change and the end of the run reach the disk with their directory
    fsynced; begin's empty manifest and an action's "applied" mark do not need to (a power loss
    leaves no manifest, or "pending": states recovery handles), yet are written whole."""
    import unban.atomic

    synced: list[str] = []
    real = unban.atomic.fsync_dir
    monkeypatch.setattr(unban.atomic, "fsync_dir", lambda d: (synced.append(str(d)), real(d)))
    change_set = Reverter(tmp_path / "state").begin("test")
    manifest = change_set.path / "manifest.json"

    def on_disk() -> dict[str, Any]:
        return dict(json.loads(manifest.read_text()))

    assert synced == [] and on_disk()["status"] == "in-progress"
    index = change_set.record_action("demo", undo="x", state="pending")
    assert synced == [str(change_set.path)]
    change_set.mark_applied(index, undo="y")
    assert synced == [str(change_set.path)]
    assert on_disk()["actions"] == [{"kind": "demo", "undo": "y", "state": "applied"}]
    change_set.finalize()
    assert synced == [str(change_set.path)] * 2 and on_disk()["status"] == "done"
