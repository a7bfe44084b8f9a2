"""The unban.fleet collection, run by Debian's ansible-core over real SSH against three hosts.

Each host (tests/integration/fleet_fixtures.py) is a throwaway namespace with its own sshd and
a different block on the client 203.0.113.4: a real fail2ban ban, a hand-made iptables rule, an
nft set element. The client namespace of each host reads sshd's banner: that is "open".
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.fleet_fixtures import (
    COLLECTION_SOURCE,
    Fleet,
    Host,
    build_fleet,
    require_ansible,
)
from unban._sandbox import CLIENT4

PLAYBOOKS = Path(__file__).with_name("playbooks")
NAMES = ("banned", "ruled", "setted")
NFT_BLOCK = f"""table inet blocklist {{
    set banned {{ type ipv4_addr; elements = {{ {CLIENT4} }} }}
    chain input {{ type filter hook input priority 0; policy accept; ip saddr @banned tcp dport 22 reject with tcp reset; }}
}}
"""


def _block(host: Host) -> None:
    """Refuse the client on this host, each in its own way, and see that it is refused."""
    if host.name == "banned":
        host.fail2ban.start()
        host.fail2ban.fail(CLIENT4)
        host.fail2ban.wait_banned("sshd", CLIENT4)
    elif host.name == "ruled":
        host.sshd.run(
            "iptables", "-I", "INPUT", "-s", CLIENT4, "-p", "tcp", "--dport", "22",
            "-j", "REJECT", "--reject-with", "tcp-reset",
        )  # fmt: skip
    else:
        host.sshd.mount_ns.run("nft", "-f", "-", input=NFT_BLOCK)


def _wait_refused(host: Host) -> None:
    """fail2ban reports a ban before its action's rule is in (Debian 11): wait for the refusal."""
    import time

    deadline = time.monotonic() + 20
    while True:
        ok, said = host.banner()
        if not ok:
            return
        assert time.monotonic() < deadline, f"{host.name}: the client still reads {said}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    if os.geteuid() != 0:
        pytest.fail("integration tests need root (they make network namespaces)")
    yield from build_fleet(tmp_path_factory.mktemp("fleet"), NAMES)


def _results(directory: Path) -> dict[str, dict[str, object]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}


def test_playbook_lifts_every_block_then_undo_restores(fleet: Fleet, tmp_path: Path) -> None:
    for host in fleet.hosts:
        assert host.banner()[0], f"{host.name}: sshd does not answer before any block"
        _block(host)
        _wait_refused(host)

    # check mode: reports changed on every host, and nothing changes
    before = {host.name: (host.kernel_state(), host.files_state()) for host in fleet.hosts}
    checked = tmp_path / "check"
    checked.mkdir()
    run = fleet.playbook(
        PLAYBOOKS / "lift.yml", "--check", "--diff",
        extra={"client": CLIENT4, "report_dir": str(checked)},
    )  # fmt: skip
    assert run.returncode == 0, run.output()
    for host in fleet.hosts:
        assert run.recap[host.name]["changed"] == 1, run.output()
        assert host.kernel_state() == before[host.name][0], host.name
        assert host.files_state() == before[host.name][1], host.name
        assert not host.banner()[0], f"{host.name}: check mode let the client in"
    results = _results(checked)
    for host in fleet.hosts:
        lifted = results[host.name]["lifted"]
        facts = results[host.name]["facts"]
        assert isinstance(lifted, dict) and isinstance(facts, dict)
        assert lifted["changed"] is True and lifted["change_set"] is None, lifted
        assert lifted["open"] is False and lifted["would_open"] is True, lifted
        assert lifted["plan"]["changes"] == len(lifted["plan"]["steps"]) > 0, lifted
        assert facts["blocked"] is True and facts["findings"], facts
        doctor = facts["doctor"]
        assert isinstance(doctor, dict) and doctor["verdict"] == "blocks", doctor
        assert doctor["open"] is False and doctor["checks"], doctor
    banned = results["banned"]["lifted"]
    assert isinstance(banned, dict)
    layers = {finding["layer"] for finding in banned["findings"]}
    assert "fail2ban" in layers, banned["findings"]
    assert any(f["jail"] == "sshd" for f in banned["findings"] if f["layer"] == "fail2ban")
    # diff mode: each file edit before/after (fail2ban's jail.local gets ignoreip), the other
    # steps as the plan's commands
    for host in fleet.hosts:
        assert f"--- before: {host.fail2ban.confdir}/jail.local" in run.stdout, run.output()
    assert f"+ignoreip = {CLIENT4}" in run.stdout, run.output()
    assert f"unban plan for {CLIENT4}:" in run.stdout, run.output()
    assert f"nft delete element inet blocklist banned '{{ {CLIENT4} }}'" in run.stdout

    # the real run: every block lifted, the client reads the banner everywhere
    lifted_dir = tmp_path / "real"
    lifted_dir.mkdir()
    run = fleet.playbook(
        PLAYBOOKS / "lift.yml", extra={"client": CLIENT4, "report_dir": str(lifted_dir)}
    )
    assert run.returncode == 0, run.output()
    results = _results(lifted_dir)
    for host in fleet.hosts:
        assert run.recap[host.name]["changed"] == 1, run.output()
        ok, said = host.banner()
        assert ok, f"{host.name}: the client still cannot read the banner ({said})"
        lifted = results[host.name]["lifted"]
        assert isinstance(lifted, dict)
        assert lifted["still_blocked"] is False and lifted["open"] is True, lifted
        assert lifted["still_refused"] == [] and lifted["change_set"], lifted
    assert CLIENT4 not in fleet.hosts[0].fail2ban.banned("sshd")
    assert CLIENT4 in fleet.hosts[0].fail2ban.ignoreip("sshd")

    # a second run: ok, nothing changed, nothing written
    after = {host.name: (host.kernel_state(), host.files_state()) for host in fleet.hosts}
    again = tmp_path / "again"
    again.mkdir()
    run = fleet.playbook(
        PLAYBOOKS / "lift.yml", extra={"client": CLIENT4, "report_dir": str(again)}
    )
    assert run.returncode == 0, run.output()
    for host in fleet.hosts:
        assert run.recap[host.name]["changed"] == 0, run.output()
        assert host.kernel_state() == after[host.name][0], host.name
        assert host.files_state() == after[host.name][1], host.name
        second = _results(again)[host.name]["lifted"]
        assert isinstance(second, dict) and second["change_set"] is None, second

    # undo: each block is back, the client is refused again; a second undo is ok, unchanged
    undone_dir = tmp_path / "undone"
    undone_dir.mkdir()
    extra = {"lifted_dir": str(lifted_dir), "report_dir": str(undone_dir)}
    run = fleet.playbook(PLAYBOOKS / "undo.yml", extra=extra)
    assert run.returncode == 0, run.output()
    for host in fleet.hosts:
        assert run.recap[host.name]["changed"] == 1, run.output()
        _wait_refused(host)
    assert CLIENT4 in fleet.hosts[0].fail2ban.banned("sshd")
    assert CLIENT4 not in fleet.hosts[0].fail2ban.ignoreip("sshd")
    assert "ip saddr @banned" in fleet.hosts[2].sshd.run("nft", "list", "ruleset").stdout
    run = fleet.playbook(PLAYBOOKS / "undo.yml", extra=extra)
    assert run.returncode == 0, run.output()
    for host in fleet.hosts:
        assert run.recap[host.name]["changed"] == 0, run.output()
        undone = _results(undone_dir)[host.name]
        assert undone["already_undone"] is True, undone


def test_still_blocked_is_a_result_and_errors_fail_with_unbans_message(
    fleet: Fleet, tmp_path: Path
) -> None:
    host = next(host for host in fleet.hosts if host.name == "ruled")
    broad = ["INPUT", "-s", "203.0.113.0/24", "-p", "tcp", "--dport", "22", "-j", "REJECT"]
    host.sshd.run("iptables", "-I", *broad)
    try:
        run = fleet.playbook(
            PLAYBOOKS / "edges.yml", "--limit", host.name,
            extra={"client": CLIENT4, "report_dir": str(tmp_path)},
        )  # fmt: skip
        assert run.returncode == 0, run.output()  # the failures were ignored, nothing else failed
        assert run.recap[host.name]["failed"] == 0 and "...ignoring" in run.stdout, run.output()
        results = _results(tmp_path)[host.name]
        soft, hard, bad = (results[key] for key in ("soft", "hard", "bad"))
        assert isinstance(soft, dict) and isinstance(hard, dict) and isinstance(bad, dict)
        assert soft["still_blocked"] is True and soft["exit_code"] == 3, soft
        assert soft.get("failed") is not True and soft["open"] is False, soft
        refused = soft["still_refused"]
        assert isinstance(refused, list) and refused, soft
        assert any("203.0.113.0/24" in item["detail"] for item in refused), refused
        assert hard["failed"] is True and hard["still_blocked"] is True, hard
        assert f"{CLIENT4} is still refused" in str(hard["msg"]), hard
        assert bad["failed"] is True and bad["rc"] == 2, bad
        assert "unban failed (exit 2, " in str(bad["msg"]), bad
        assert "203.0.113.999" in str(bad["msg"]) and bad["unban"]["error"]["message"], bad
        assert not host.banner()[0], "the broad rule should still refuse the client"
    finally:
        host.sshd.run("iptables", "-D", *broad)


def test_role_writes_the_heal_config_and_schedules_heal(fleet: Fleet) -> None:
    run = fleet.playbook(PLAYBOOKS / "role.yml", "--check", extra={"client": CLIENT4})
    assert run.returncode == 0, run.output()
    for host in fleet.hosts:
        assert run.recap[host.name]["changed"] >= 1, run.output()
        assert not (host.upper / "unban").exists() and not (host.upper / "cron.d").exists()
        if not Path("/etc/cron.d").is_dir():  # a system without cron (Debian 13's root): its dir
            host.sshd.run("mkdir", "-p", "/etc/cron.d")  # in the host's /etc overlay only
    run = fleet.playbook(PLAYBOOKS / "role.yml", extra={"client": CLIENT4})
    assert run.returncode == 0, run.output()
    for host in fleet.hosts:
        assert run.recap[host.name]["changed"] >= 2, run.output()
        config = (host.upper / "unban" / "unban.toml").read_text()
        assert f'protect = ["{CLIENT4}", "2001:db8::/64"]' in config, config
        cron = (host.upper / "cron.d" / "unban").read_text()
        assert "heal" in cron and str(host.fail2ban.state_dir) in cron, cron
        assert "*/10 " in cron, cron
    run = fleet.playbook(PLAYBOOKS / "role.yml", extra={"client": CLIENT4})
    assert run.returncode == 0, run.output()
    for host in fleet.hosts:
        assert run.recap[host.name]["changed"] == 0, run.output()


@pytest.mark.parametrize("module", ["unban", "unban_info", "unban_undo"])
def test_ansible_doc_renders(module: str, fleet: Fleet) -> None:
    proc = subprocess.run(
        ["ansible-doc", f"unban.fleet.{module}"],
        capture_output=True, text=True, env=fleet.environment(), timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # ansible-core 2.14 (Debian 12): "> UNBAN.FLEET.UNBAN"; 2.19 (Debian 13): "> MODULE unban.fleet.unban"
    assert re.search(rf"^> (MODULE )?unban\.fleet\.{module}\b", proc.stdout, re.I | re.M), (
        proc.stdout
    )
    assert "EXAMPLES:" in proc.stdout and "RETURN VALUES:" in proc.stdout
    assert "- executable" in proc.stdout and "- state_dir" in proc.stdout
    assert "ERROR" not in proc.stderr, proc.stderr


def test_role_doc_renders(fleet: Fleet) -> None:
    proc = subprocess.run(
        ["ansible-doc", "-t", "role", "unban.fleet.server"],
        capture_output=True, text=True, env=fleet.environment(), timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "unban_protect" in proc.stdout and "unban_heal_schedule" in proc.stdout


def test_collection_tarball_holds_the_plugins_and_the_role(fleet: Fleet) -> None:
    (tarball,) = (fleet.root / "built").glob("unban-fleet-*.tar.gz")
    listing = subprocess.run(
        ["tar", "-tzf", str(tarball)], capture_output=True, text=True, check=True
    ).stdout.split()
    sources = {
        str(path.relative_to(COLLECTION_SOURCE))
        for path in COLLECTION_SOURCE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.name != "galaxy.yml"
    }  # galaxy.yml becomes MANIFEST.json
    assert sources <= set(listing), sorted(sources - set(listing))
    assert "MANIFEST.json" in listing and "FILES.json" in listing


# ansible-test's sanity tests that need a venv (ansible-doc, import, pep8, pylint,
# runtime-metadata, validate-modules, yamllint) bootstrap pip from ci-files.testing.ansible.com
# first, so they cannot run offline; the others run on a copy of the collection.
NEEDS_NETWORK = (
    "ansible-doc", "import", "pep8", "pylint", "runtime-metadata", "validate-modules", "yamllint",
)  # fmt: skip


def _sanity(tmp_path: Path, *extra_files: tuple[str, bytes]) -> subprocess.CompletedProcess[str]:
    """`ansible-test sanity` (the offline tests) on a copy, with HOME in tmp_path (its venvs)."""
    import shutil

    copy = tmp_path / "ansible_collections" / "unban" / "fleet"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(COLLECTION_SOURCE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for relative, data in extra_files:
        (copy / relative).write_bytes(data)
    skips = [arg for test in NEEDS_NETWORK for arg in ("--skip-test", test)]
    python = subprocess.run(
        ["/usr/bin/python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LC_ALL": "C.UTF-8"}
    return subprocess.run(
        ["ansible-test", "sanity", "--python", python, *skips],
        cwd=copy, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_ansible_test_sanity_offline(tmp_path: Path) -> None:
    require_ansible()
    proc = _sanity(tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert 'Running sanity test "shebang"' in proc.stdout + proc.stderr
    # the same run sees a module it must refuse (so the pass above looked at the files)
    bad = _sanity(tmp_path, ("plugins/modules/crlf.py", b"#!/usr/bin/python\r\nx = 1\r\n"))
    assert bad.returncode != 0 and "line-endings" in bad.stdout + bad.stderr, bad.stderr
