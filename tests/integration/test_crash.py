"""`unban me` killed with SIGKILL at every write it makes, then the next command or `undo`: the
host is as it was before the run (or, for a finished run, after it), nothing else.

A full multi-layer block on one address: a fail2ban ban (running server, iptables-multiport),
a DROP rule in iptables-nft and one in iptables-legacy, an element of a hand-made nft set, an
ipset member matched by an iptables rule, a blackhole route, a hosts.deny entry, and fail2ban's
ignoreip (jail.local and live). The kill is strace's: `-e inject=rename:signal=SIGKILL:when=K`
(every durable write unban makes, its journal's and the files', ends in a rename), K = 1, 2, ...
until a run ends by itself. After each kill the next changing command (`unban remove` of an
address with no block, or `unban undo`, in turns) must put everything back, leave no temp file,
and the snapshot must be the one taken before: the same host is then killed at the next K.
"""

from __future__ import annotations

import json
import re
import sys

from tests.integration import sshd_fixtures
from tests.integration.ban_daemons import Host, Sshguard, wait_for
from tests.integration.sshd_fixtures import CLIENT4, SERVER4
from tests.integration.test_me import EMPTY_DENY, Server, eventually, server
from tests.integration.test_sshguard import host

link = sshd_fixtures.link
sshd_factory = sshd_fixtures.sshd_factory
__all__ = ["host", "link", "server", "sshd_factory"]

RENAMES = "rename,renameat,renameat2"
UNRELATED = "198.51.100.200"  # no block anywhere: `remove` of it changes nothing
WHITELIST = "/etc/sshguard/whitelist"


def block_everything(server: Server) -> None:
    f2b = server.fail2ban({"sshd": {"banaction": "iptables-multiport"}})
    f2b.fail(CLIENT4)
    f2b.wait_banned("sshd", CLIENT4)
    server.run("iptables-nft", "-I", "INPUT", "-s", CLIENT4, "-j", "DROP")
    server.run("iptables-legacy", "-I", "INPUT", "-s", CLIENT4, "-j", "DROP")
    server.run("nft", "add", "table", "inet", "handmade")
    server.run("nft", "add", "set", "inet", "handmade", "blocked", "{ type ipv4_addr; }")
    server.run("nft", "add", "element", "inet", "handmade", "blocked", f"{{ {CLIENT4} }}")
    server.run(
        "nft", "add", "chain", "inet", "handmade", "input",
        "{ type filter hook input priority 0; }",
    )  # fmt: skip
    server.run("nft", "add", "rule", "inet", "handmade", "input", "ip", "saddr", "@blocked", "drop")
    server.run("ipset", "create", "blk", "hash:ip")
    server.run("ipset", "add", "blk", CLIENT4)
    server.run(
        "iptables-nft", "-A", "INPUT", "-m", "set", "--match-set", "blk", "src", "-j", "DROP"
    )
    server.run("ip", "route", "add", "blackhole", CLIENT4)
    server.write("/etc/hosts.deny", EMPTY_DENY + f"sshd: 198.51.100.7, {CLIENT4}\n")
    assert eventually(lambda: "f2b-sshd" in server.run("iptables-save").stdout)


def state(server: Server) -> dict[str, object]:
    assert server.f2b is not None
    snapshot = server.snapshot()
    legacy = server.run("iptables-legacy-save").stdout
    snapshot["iptables-legacy-save"] = re.sub(r"^#.*\n|\[\d+:\d+\]", "", legacy, flags=re.M)
    snapshot["ignoreip"] = server.f2b.ignoreip("sshd")
    return snapshot


def killed_me(server: Server, when: int) -> tuple[int, str]:
    """`unban me CLIENT4` under strace, SIGKILLed at its `when`-th rename; (exit, output)."""
    assert server.f2b is not None
    proc = server.run(
        "strace", "-qq", "-o", "/dev/null", "-e", f"trace={RENAMES}",
        "-e", f"inject={RENAMES}:signal=SIGKILL:when={when}",
        sys.executable, "-m", "unban", *server.f2b.global_args(),
        "me", CLIENT4, "--sshd-config", str(server.sshd.config_path),
        check=False,
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


def temp_files(server: Server) -> list[str]:
    assert server.f2b is not None
    found = server.run(
        "find", "/etc", "-maxdepth", "1", "-name", "*.unban-tmp", "-o", "-path",
        f"{server.f2b.confdir}/*.unban-tmp", "-o", "-path", f"{server.f2b.state_dir}/*.unban-tmp",
        check=False,
    ).stdout  # fmt: skip
    return found.split()


def test_killed_at_every_write_the_next_command_puts_everything_back(server: Server) -> None:
    block_everything(server)
    before = state(server)
    assert not server.reachable(SERVER4)
    kills = 0
    when = 1
    while True:
        code, stderr = killed_me(server, when)
        if code != -9 and "Killed" not in stderr and code != 137:
            break  # it ran to the end without reaching the `when`-th rename
        kills += 1
        if kills % 2:
            next_command = server.unban("remove", UNRELATED)
            assert next_command.returncode == 0, next_command.stderr
        else:
            undone = server.unban("undo")
            assert undone.returncode in (0, 2), (when, undone.stdout + undone.stderr)
            if undone.returncode == 2:  # killed before its change set was on disk at all
                assert "no change set to undo" in undone.stderr, undone.stderr
        assert eventually(lambda: state(server) == before, timeout=10), (when, stderr)
        assert temp_files(server) == [], when
        when += 1
    # the run that was not killed finished ("after": 3 when a block it leaves alone, as off the
    # way a connection takes, still refuses the client), and undo puts it all back
    assert code in (0, 3), stderr
    assert state(server) != before and "done: fail2ban unbanned" in stderr
    if code == 0:
        assert server.opens(SERVER4)
    assert kills >= 20, kills  # a full run writes at least this often (journal and files)
    undone = server.unban("undo")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert eventually(lambda: state(server) == before, timeout=10)
    listed = json.loads(server.unban("rollback", "--list", "--json").stdout)["change_sets"]
    assert {c["status"] for c in listed} <= {"failed", "rolled-back"}
    assert listed[-1]["status"] == "rolled-back"
    assert not server.reachable(SERVER4)


# ---------------------------------------------------------------- killed mid-exemption


def sshguard_state(host: Host, guard: Sshguard) -> dict[str, object]:
    """sshguard's files byte for byte with mode, owner and mtime, and whether it blocks."""
    files = {}
    for path in (WHITELIST, guard.blacklist):
        stat = host.run("stat", "-c", "%a %u:%g %y", path).stdout
        files[path] = (host.read(path), stat)
    return {"files": files, "blocks": guard.blocks()}


def killed_me_on(host: Host, when: int) -> tuple[int, str]:
    """`unban me CLIENT4` in the sshguard host, SIGKILLed at its `when`-th rename (0: never)."""
    inject = ["-e", f"inject={RENAMES}:signal=SIGKILL:when={when}"] if when else []
    proc = host.run(
        "strace", "-qq", "-o", str(host.root / "renames"), "-e", f"trace={RENAMES}", *inject,
        sys.executable, "-m", "unban", "--fail2ban-conf", str(host.root / "fail2ban-none"),
        "--state-dir", str(host.state_dir), "me", CLIENT4,
        "--sshd-config", str(host.sshd.config_path),
        check=False,
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


def test_killed_mid_exemption_the_next_command_restores_sshguards_files(host: Host) -> None:
    """sshguard (nft sets, BLACKLIST_FILE) bans the client; `unban me` is killed at every
    rename from the owner's write of the blacklist through the exemption (the restart's record,
    the whitelist's backup and write, the restart's mark) to the run's last mark: the next
    command puts both files back exactly (bytes, mode, owner, mtime), restarts sshguard again
    where unban had restarted it, and the block is back."""
    guard = Sshguard(host, "sshg-fw-nft-sets", blacklist=True)
    guard.start()
    host.fail(4)
    wait_for("sshguard's block", guard.blocks)
    before = sshguard_state(host, guard)

    code, out = killed_me_on(host, 0)  # a whole run: where its exemption starts
    assert code == 0, out
    traced = (host.root / "renames").read_text().splitlines()
    renames = [line for line in traced if line.startswith("rename")]  # not signals, exits
    targets = [line.split('"')[3] if line.count('"') >= 4 else "" for line in renames]
    blacklist_write = targets.index(guard.blacklist) + 1  # the rename's number, from 1
    whitelist_write = targets.index(WHITELIST) + 1
    assert blacklist_write < whitelist_write, targets
    undone = host.unban("undo")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    wait_for("the state before", lambda: sshguard_state(host, guard) == before)

    kills = restarts = 0
    # from the blacklist's write to the marks after the restart (its own, its batch's, the end)
    for when in range(blacklist_write - 1, whitelist_write + 4):
        blocker = guard.blocker()
        code, out = killed_me_on(host, when)
        assert code in (-9, 137), (when, code, out)
        kills += 1
        killed_blocker = guard.blocker()
        if kills % 2:
            next_command = host.unban("remove", UNRELATED)
            assert next_command.returncode == 0, (when, next_command.stderr)
        else:
            next_command = host.unban("undo")
            assert next_command.returncode in (0, 2), (when, next_command.stderr)
        wait_for(f"the state before (kill {when})", lambda: sshguard_state(host, guard) == before)
        if killed_blocker != blocker:  # unban's restart happened: undo restarts it again
            restarts += 1
            assert guard.blocker() not in (None, killed_blocker), (when, next_command.stdout)
    assert kills >= 6 and restarts >= 1, (kills, restarts)
    listed = json.loads(host.unban("rollback", "--list", "--json").stdout)["change_sets"]
    assert {c["status"] for c in listed} <= {"failed", "rolled-back"}
