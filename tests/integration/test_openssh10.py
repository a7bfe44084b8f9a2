"""OpenSSH 9.8+ (Debian 13's sshd 10), for real: libwrap in sshd-session, PerSourcePenalties
earned by failed logins, and MaxStartups' new words. CI runs these in a Debian 13 root
(scripts/debian-root trixie); on an older sshd they are skipped.

sshd runs with an overlay /etc (`isolate=True`) and a tmpfs /var/log in its mount namespace,
where /var/log/auth.log is sshd's own `-E` log: `unban me` reads it as it reads a real one.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.integration import sshd_fixtures
from tests.integration.sshd_fixtures import (
    CLIENT4,
    MAXSTARTUPS_LOGGED,
    MAXSTARTUPS_SAID,
    OPENSSH,
    PENALTIES,
    SERVER4,
    Link,
    Sshd,
    SshdFactory,
)
from unban._sandbox import json_document

link = sshd_fixtures.link
sshd_factory = sshd_fixtures.sshd_factory

pytestmark = pytest.mark.skipif(
    not PENALTIES, reason=f"needs OpenSSH 9.8+ (this is {OPENSSH}); CI runs it on Debian 13"
)

# Short penalties: one failed login earns 60 s (enforced from 5 s on), nothing lasts past 120 s.
PENALTY_CONFIG = (
    "LogLevel VERBOSE\n"
    "PasswordAuthentication yes\n"
    "KbdInteractiveAuthentication no\n"
    "PerSourcePenalties authfail:60 noauth:1 min:5 max:120\n"
)


class Box:
    """One sshd and the unban CLI beside it, with their own state dir and auth.log."""

    def __init__(self, link: Link, sshd: Sshd, root: Path) -> None:
        self.link = link
        self.sshd = sshd
        self.state_dir = root / "state"
        sshd.run("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/var/log")
        sshd.run("ln", "-s", str(sshd.log_path), "/var/log/auth.log")

    def me(self, *args: str) -> Any:
        proc = self.sshd.unban(
            "--state-dir", str(self.state_dir), "me", CLIENT4, "--no-ignore",
            "--sshd-config", str(self.sshd.config_path), *args, "--json",
        )  # fmt: skip
        assert proc.returncode in (0, 3), proc.stderr
        return json_document(proc)

    def undo(self) -> subprocess.CompletedProcess[str]:
        return self.sshd.unban("--state-dir", str(self.state_dir), "undo")

    def doctor(self) -> Any:
        return self.sshd.doctor(CLIENT4)

    def penalties(self) -> dict[str, Any]:
        return _check(self.doctor(), "penalties")

    def banner(self) -> bool:
        return bool(self.link.probe(SERVER4, "--timeout", "3")["ok"])


@pytest.fixture
def box(link: Link, sshd_factory: SshdFactory, tmp_path: Path) -> Iterator[Box]:
    yield Box(link, sshd_factory(PENALTY_CONFIG, isolate=True), tmp_path)


def _check(result: Any, key: str) -> dict[str, Any]:
    return next(c for c in result["checks"] if c["key"] == key)


def eventually(check: Callable[[], bool], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)
    return True


def fail_a_login(link: Link, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """One real ssh login with a wrong password, from the client (SSH_ASKPASS answers)."""
    askpass = tmp_path / "askpass"
    askpass.write_text("#!/bin/sh\necho wrong-password\n")
    askpass.chmod(0o755)
    argv = [
        "env", f"SSH_ASKPASS={askpass}", "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0",
        "setsid", "-w", "ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "-o", "PreferredAuthentications=password",
        "-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=5", f"nobody@{SERVER4}", "true",
    ]  # fmt: skip
    return link.client.run(*argv, check=False, timeout=60)


def test_a_penalty_for_failed_logins_is_found_and_lifted(box: Box, tmp_path: Path) -> None:
    assert box.banner()
    failed = fail_a_login(box.link, tmp_path)
    assert "Permission denied" in failed.stderr
    refused = box.link.probe(SERVER4, "--timeout", "3")
    assert refused["ok"] is False
    said = [line for a in refused["attempts"] for line in a["before_banner"]]
    assert "Not allowed at this time" in said

    found = box.doctor()
    penalties = _check(found, "penalties")
    assert penalties["verdict"] == "blocks", penalties
    assert found["returncode"] == 3
    assert any("srclimit_penalise" in line for line in penalties["evidence"])

    config_before = box.sshd.config_path.read_bytes()
    result = box.me()
    assert any(s["layer"] == "sshd" for s in result["plan"]["steps"])
    assert result["exit_code"] == 0, result["still_refused"]
    config = box.sshd.config_path.read_text()
    assert config.endswith(f"PerSourcePenaltyExemptList {CLIENT4}\n")  # no Include: main file
    assert eventually(box.banner), "the client still gets no banner after unban me"
    assert box.penalties()["verdict"] == "clear"

    again = box.me()  # idempotent: nothing to change, nothing written
    assert again["plan"]["steps"] == [] and again["changed"] is False
    assert box.sshd.config_path.read_text() == config

    undone = box.undo()
    assert undone.returncode == 0, undone.stderr
    assert box.sshd.config_path.read_bytes() == config_before
    assert "is in PerSourcePenaltyExemptList" not in box.penalties()["summary"]


def test_the_exemption_goes_into_the_included_drop_in(
    link: Link, sshd_factory: SshdFactory, tmp_path: Path
) -> None:
    include = "Include /etc/ssh/sshd_config.d/*.conf\n"
    box = Box(link, sshd_factory(include + PENALTY_CONFIG, isolate=True), tmp_path)
    failed = fail_a_login(link, tmp_path)
    penalties = box.penalties()
    assert penalties["verdict"] == "blocks", (failed.stderr, penalties)
    main_before = box.sshd.config_path.read_bytes()
    result = box.me()
    assert result["exit_code"] == 0, result["still_refused"]
    drop_in = box.sshd.run("cat", "/etc/ssh/sshd_config.d/unban.conf").stdout
    assert drop_in.splitlines()[-1] == f"PerSourcePenaltyExemptList {CLIENT4}"
    assert box.sshd.config_path.read_bytes() == main_before
    assert eventually(box.banner)
    assert box.undo().returncode == 0
    gone = box.sshd.run("test", "-e", "/etc/ssh/sshd_config.d/unban.conf", check=False)
    assert gone.returncode != 0  # it did not exist before: undo removes it


def test_hosts_deny_through_sshd_session(
    link: Link, sshd_factory: SshdFactory, tmp_path: Path
) -> None:
    sshd = sshd_factory(isolate=True)
    assert "sshdsessionpath" in sshd.run("sshd", "-T", "-f", str(sshd.config_path)).stdout
    sshd.mount_ns.run("tee", "/etc/hosts.deny", input=f"sshd: {CLIENT4}\n")
    box = Box(link, sshd, tmp_path)
    refused = link.probe(SERVER4, "--timeout", "10")
    assert refused["outcome"] in ("closed", "reset")
    found = box.doctor()
    tcpwrappers = _check(found, "tcpwrappers")
    assert tcpwrappers["verdict"] == "blocks", tcpwrappers
    assert found["returncode"] == 3
    result = box.me()
    assert result["exit_code"] == 0, result["still_refused"]
    assert any(s["layer"] == "hosts" for s in result["plan"]["steps"])
    assert box.banner()
    assert CLIENT4 not in sshd.run("cat", "/etc/hosts.deny").stdout


def test_maxstartups_in_openssh_10_words(link: Link, sshd_factory: SshdFactory) -> None:
    server = sshd_factory("MaxStartups 1:100:1")
    link.hold(SERVER4)
    refused = link.probe(SERVER4)
    said = [line for a in refused["attempts"] for line in a["before_banner"]]
    assert MAXSTARTUPS_SAID == "Not allowed at this time" and MAXSTARTUPS_SAID in said
    assert any("'Not allowed at this time' (OpenSSH 10)" in h for h in refused["hints"])
    first = server.doctor(CLIENT4)["checks"][0]
    assert (first["key"], first["verdict"]) == ("maxstartups", "blocks")
    assert any(line.endswith(MAXSTARTUPS_LOGGED) for line in first["evidence"])


def test_heal_s_keep_exempt_adds_a_protected_address_before_any_penalty(
    link: Link, sshd_factory: SshdFactory, tmp_path: Path
) -> None:
    from unban.address import parse_target
    from unban.layers.sshd_penalty import SshdPenaltyLayer

    sshd = sshd_factory(PENALTY_CONFIG)
    target = parse_target(CLIENT4)
    plain = SshdPenaltyLayer(str(sshd.config_path), str(tmp_path / "state"))
    assert plain.find(target) == []  # no penalty: `unban me` has nothing to do
    keep = SshdPenaltyLayer(str(sshd.config_path), str(tmp_path / "state"), keep_exempt=True)
    (finding,) = keep.find(target)
    (batch,) = keep.plan([finding])
    keep.apply(batch)
    assert sshd.config_path.read_text().endswith(f"PerSourcePenaltyExemptList {CLIENT4}\n")
    assert keep.find(target) == []  # kept: the next heal run changes nothing
    assert eventually(lambda: _check(sshd.doctor(CLIENT4), "penalties")["verdict"] == "clear")
    keep.revert(batch)
    assert f"PerSourcePenaltyExemptList {CLIENT4}" not in sshd.config_path.read_text()
