"""`unban me` and `unban undo` end to end: a real sshd and a real fail2ban-server in a server
namespace, a client namespace at the banned address reading sshd's banner over a veth pair.

sshd, fail2ban-server and the unban CLI run in one private mount namespace whose /etc is an
overlay (`Sshd.start(isolate=True)`): fail2ban's hostsdeny action and unban's hosts edits land
in a temp dir, never in the host's /etc.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import pytest

from tests.integration import sshd_fixtures
from tests.integration.sshd_fixtures import CLIENT4, CLIENT6, SERVER4, SERVER6, Link, Sshd
from unban._sandbox import Fail2ban, Seen

link = sshd_fixtures.link
sshd_factory = sshd_fixtures.sshd_factory

EMPTY_ALLOW = "# hosts.allow (test)\n"
EMPTY_DENY = "# hosts.deny (test)\n"


class Server:
    """sshd (isolated /etc) with a fail2ban-server beside it, in the same namespaces."""

    def __init__(self, link: Link, sshd: Sshd, root: Path) -> None:
        self.link = link
        self.sshd = sshd
        self.root = root
        self.f2b: Optional[Fail2ban] = None

    def run(self, *argv: str, check: bool = True, input: Optional[str] = None) -> Any:
        return self.sshd.mount_ns.run(*argv, check=check, input=input)

    def write(self, path: str, text: str) -> None:
        self.run("tee", path, input=text)

    def read(self, path: str) -> bytes:
        proc = self.run("cat", path, check=False)
        return proc.stdout.encode("utf-8", "surrogateescape") if proc.returncode == 0 else b""

    def fail2ban(self, jails: dict[str, dict[str, str]]) -> Fail2ban:
        root = self.root / "f2b"
        root.mkdir()
        self.f2b = Fail2ban(self.sshd.mount_ns, root)
        self.f2b.write_config(jails=jails)
        self.f2b.start()
        return self.f2b

    def unban(self, *args: str, env: Optional[dict[str, str]] = None) -> Any:
        assert self.f2b is not None
        prefix = ["env", *(f"{k}={v}" for k, v in (env or {}).items())] if env else []
        return self.run(
            *prefix,
            sys.executable,
            "-m",
            "unban",
            *self.f2b.global_args(),
            *args,
            check=False,
        )

    def wait_ban_applied(self, ip: str, timeout: float = 15) -> None:
        """fail2ban reports a ban before its action has run: wait until the kernel (or
        hosts.deny) holds the address, so a snapshot taken now has the ban in it."""

        assert eventually(lambda: action_ran(self, ip), timeout), f"no ban action for {ip} ran"

    def me(self, *args: str, env: Optional[dict[str, str]] = None) -> Any:
        return self.unban("me", *args, "--sshd-config", str(self.sshd.config_path), env=env)

    def reachable(self, host: str) -> bool:
        result = self.link.probe(host, "--timeout", "3")
        return bool(result["ok"])

    def opens(self, host: str) -> Seen:
        return self.link.opens(host)

    def change_sets(self) -> list[str]:
        assert self.f2b is not None
        changes = self.f2b.state_dir / "changes"
        return sorted(p.name for p in changes.iterdir()) if changes.is_dir() else []

    def snapshot(self) -> dict[str, Any]:
        """The state `unban me` may change, normalised where the kernel's own bookkeeping moves
        (counters, ipset timeouts and hash seeds)."""
        state: dict[str, Any] = {}
        for argv in (
            ["iptables-save"],
            ["ip6tables-save"],
            ["nft", "list", "ruleset"],
            ["ipset", "save"],
            ["ip", "-4", "route", "show", "table", "all"],
            ["ip", "-6", "route", "show", "table", "all"],
        ):
            text = self.run(*argv, check=False).stdout
            text = re.sub(r"^#.*\n", "", text, flags=re.M)
            text = re.sub(r"\[\d+:\d+\]", "[0:0]", text)
            text = re.sub(r"counter packets \d+ bytes \d+", "counter", text)
            text = re.sub(r" timeout \d+", " timeout N", text)
            text = re.sub(r" initval 0x[0-9a-f]+", "", text)
            if argv[0] == "ip":  # blocking routes only (link-local ones come and go)
                text = "".join(
                    line
                    for line in text.splitlines(keepends=True)
                    if line.startswith(("unreachable", "blackhole", "prohibit"))
                )
            state[" ".join(argv)] = text
        for path in ("/etc/hosts.allow", "/etc/hosts.deny"):
            state[path] = self.read(path)
        if self.f2b is not None:
            state["banned"] = sorted(self.f2b.banned("sshd"))
            state["jail.local"] = (self.f2b.confdir / "jail.local").read_bytes()
        return state


@pytest.fixture
def server(link: Link, sshd_factory: Callable[..., Sshd], tmp_path: Path) -> Iterator[Server]:
    sshd = sshd_factory(isolate=True)
    box = Server(link, sshd, tmp_path)
    box.write("/etc/hosts.allow", EMPTY_ALLOW)
    box.write("/etc/hosts.deny", EMPTY_DENY)
    try:
        yield box
    finally:
        if box.f2b is not None:
            box.f2b.stop()


def action_ran(server: Server, ip: str) -> bool:
    """Something beside fail2ban's own lists (a rule, an element, a route, a hosts.deny line)
    names `ip`."""
    for key, value in server.snapshot().items():
        if key in ("banned", "jail.local"):
            continue
        if (ip.encode() if isinstance(value, bytes) else ip) in value:
            return True
    return False


def eventually(check: Callable[[], bool], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def sorted_lines(state: dict[str, Any]) -> dict[str, Any]:
    """The same state with every listing's lines sorted (rule order after a restart)."""
    return {
        key: sorted(value.splitlines()) if isinstance(value, str) else value
        for key, value in state.items()
    }


CASES = [
    ("iptables-multiport", 4),
    ("nftables-multiport", 4),
    ("iptables-ipset-proto6", 4),
    ("route", 4),
    ("hostsdeny", 4),
    ("iptables-multiport", 6),
    ("nftables-multiport", 6),
    ("hostsdeny", 6),
]


@pytest.mark.parametrize(("banaction", "version"), CASES)
def test_me_gets_the_client_back_in_and_undo_puts_every_block_back(
    server: Server, banaction: str, version: int
) -> None:
    ip, host = (CLIENT4, SERVER4) if version == 4 else (CLIENT6, SERVER6)
    iptables = "iptables" if version == 4 else "ip6tables"
    f2b = server.fail2ban({"sshd": {"banaction": banaction}})
    assert server.opens(host)
    f2b.fail(ip)
    f2b.wait_banned("sshd", ip)
    server.wait_ban_applied(ip)
    server.run(iptables, "-I", "INPUT", "-s", ip, "-j", "DROP")
    if banaction == "hostsdeny":
        pattern = ip if version == 4 else f"[{ip}]"
        assert eventually(lambda: f"ALL: {pattern}".encode() in server.read("/etc/hosts.deny"))
    if banaction.startswith("nftables"):  # fail2ban lists the ban before its action has run
        assert eventually(lambda: "elements = {" in server.run("nft", "list", "ruleset").stdout)
    before = server.snapshot()
    assert not server.reachable(host)

    proc = server.me(ip)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout.splitlines()
    assert out[0].startswith(f"plan for {ip}:")
    assert any(line.startswith("done: fail2ban unbanned") for line in out)
    assert any(line.startswith("done: removed") and "DROP" in line for line in out)
    assert any("fail2ban ignoreip" in line for line in out)
    assert out[-1].startswith(
        f"{ip} is now unblocked everywhere unban looks (checked again); open:"
    )
    assert server.opens(host)
    assert ip not in f2b.banned("sshd")
    assert ip in f2b.ignoreip("sshd")

    # idempotent: a second run changes nothing and leaves no change set
    sets = server.change_sets()
    again = server.me(ip)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0] == f"nothing to change for {ip}"
    assert server.change_sets() == sets

    f2b.restart()
    assert server.opens(host)
    f2b.fail(ip, count=4)
    time.sleep(2.5)  # the polling backend reads the log every second
    assert ip not in f2b.banned("sshd")
    assert server.opens(host)

    undone = server.unban("undo")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert "cannot restore: fail2ban bans again in sshd" in undone.stdout
    after = server.snapshot()
    # fail2ban's restart rebuilt its chain and sets, so rules may come back in another order
    assert sorted_lines(after) == sorted_lines(before)
    assert ip not in f2b.ignoreip("sshd")
    assert not server.reachable(host)


def test_undo_right_after_me_restores_exactly(server: Server) -> None:
    f2b = server.fail2ban({"sshd": {"banaction": "iptables-multiport"}})
    f2b.fail(CLIENT4)
    f2b.wait_banned("sshd", CLIENT4)
    server.wait_ban_applied(CLIENT4)
    server.run("iptables", "-I", "INPUT", "-s", CLIENT4, "-j", "DROP")
    server.write("/etc/hosts.deny", EMPTY_DENY + f"sshd: 198.51.100.7, {CLIENT4}\n")
    before = server.snapshot()
    proc = server.me(CLIENT4)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert server.read("/etc/hosts.deny") == (EMPTY_DENY + "sshd: 198.51.100.7\n").encode()
    assert server.opens(SERVER4)
    undone = server.unban("undo", "--json")
    assert undone.returncode == 0, undone.stderr
    assert json.loads(undone.stdout)["cannot"]
    assert server.snapshot() == before
    again = server.unban("undo")
    assert again.returncode == 2 and "no change set to undo" in again.stderr


def test_a_failure_in_the_middle_leaves_the_host_exactly_as_before(server: Server) -> None:
    f2b = server.fail2ban({"sshd": {"banaction": "iptables-multiport"}})
    f2b.fail(CLIENT4)
    f2b.wait_banned("sshd", CLIENT4)
    server.wait_ban_applied(CLIENT4)
    server.run("iptables", "-I", "INPUT", "-s", CLIENT4, "-j", "DROP")
    server.run("nft", "add", "table", "inet", "handmade")
    server.run(
        "nft", "add", "chain", "inet", "handmade", "input",
        "{ type filter hook input priority 0; }",
    )  # fmt: skip
    server.run("nft", "add", "rule", "inet", "handmade", "input", "ip", "saddr", CLIENT4, "drop")
    server.run("ip", "route", "add", "blackhole", CLIENT4)
    deny = EMPTY_DENY + f"sshd: {CLIENT4}\n"
    server.write("/etc/hosts.deny", deny)
    before = server.snapshot()
    spec = {
        "address": CLIENT4,
        "confdir": str(f2b.confdir),
        "state_dir": str(f2b.state_dir),
        "sshd_config": str(server.sshd.config_path),
        "after": "done: removed route",
        # the hosts batch comes next: its line changes behind unban's back
        "argv": ["sed", "-i", f"s/^sshd: {CLIENT4}$/sshd: {CLIENT4} 198.51.100.9/", "/etc/hosts.deny"],
    }  # fmt: skip
    proc = server.run(sys.executable, "-m", "tests.integration.me_inject", json.dumps(spec))
    result = json.loads(proc.stdout)
    assert result["fired"], result
    assert result["exit_status"] == 1, result
    assert "changed since it was read" in result["error"]
    assert "put back" in result["error"] and "rolled back" in result["error"]
    done = [line for line in result["lines"] if line.startswith("done:")]
    # fail2ban, nftables, route (and iptables, unless the evaluator puts the handmade table's
    # drop first on the way: both hook input at priority 0) were applied, then undone
    assert len(done) >= 3, done
    after = server.snapshot()
    # unban never wrote hosts.deny (its batch failed): the change made behind its back stays
    assert after.pop("/etc/hosts.deny") == f"{EMPTY_DENY}sshd: {CLIENT4} 198.51.100.9\n".encode()
    before.pop("/etc/hosts.deny")
    assert after == before
    assert f2b.banned("sshd") == [CLIENT4]
    listed = server.unban("rollback", "--list").stdout
    assert "failed" in listed and f"unban me {CLIENT4}" in listed
    nothing = server.unban("undo")
    assert nothing.returncode == 2 and "failed and was put back: nothing to undo" in nothing.stderr


def test_me_without_an_address_never_takes_it_from_the_environment(server: Server) -> None:
    """SSH_CONNECTION alone is no source (tests/integration/test_session.py logs in for real)."""
    server.fail2ban({"sshd": {}})
    server.write("/etc/hosts.deny", EMPTY_DENY + f"ALL: {CLIENT4}\n")
    proc = server.me(env={"SSH_CONNECTION": f"{CLIENT4} 50000 {SERVER4} 22"})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no SSH connection found above this process" in proc.stderr
    assert "give your address, `unban me ADDRESS`" in proc.stderr
    assert not server.reachable(SERVER4)


def test_sshguard_entry_goes_broad_ones_need_broad(server: Server) -> None:
    server.fail2ban({"sshd": {}})
    allow = (
        EMPTY_ALLOW
        + "###sshguard###\n"
        + f"ALL : {CLIENT4} : DENY\n"
        + "ALL : 198.51.100.9 : DENY\n"
        + "###sshguard###\n"
    )
    deny = EMPTY_DENY + "sshd: 203.0.113.\n"
    server.write("/etc/hosts.allow", allow)
    server.write("/etc/hosts.deny", deny)
    proc = server.me(CLIENT4, "--no-ignore")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "took 203.0.113.4 out of /etc/hosts.allow line 3" in proc.stdout
    assert "fix: unban me 203.0.113.4 --broad" in proc.stdout
    assert proc.stdout.splitlines()[-1].startswith(f"{CLIENT4} is still refused by: hosts")
    assert server.read("/etc/hosts.deny") == deny.encode()
    assert f"{CLIENT4} :".encode() not in server.read("/etc/hosts.allow")
    assert not server.reachable(SERVER4)

    wide = server.me(CLIENT4, "--no-ignore", "--broad")
    assert wide.returncode == 0, wide.stdout + wide.stderr
    assert server.read("/etc/hosts.deny") == deny.encode()  # the /24 stays for the others
    assert f"\nsshd: {CLIENT4}\n".encode() in server.read("/etc/hosts.allow")
    assert server.opens(SERVER4)


def test_deny_users_is_said_with_its_fix(server: Server) -> None:
    server.fail2ban({"sshd": {}})
    config = server.sshd.config_path
    config.write_text(config.read_text() + "DenyUsers alice\n")
    proc = server.me(CLIENT4, "--user", "alice", "--no-ignore")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "users:" in proc.stdout and "DenyUsers" in proc.stdout
    assert proc.stdout.splitlines()[-1] == f"{CLIENT4} is refused by: users (see the fixes above)"


@pytest.mark.parametrize("action", ["hostsdeny", "hostsdeny[daemon_list=sshd]"])
def test_hand_made_entry_below_fail2ban_s_hostsdeny_line(server: Server, action: str) -> None:
    """fail2ban's own unban deletes its line first: the hand-made entry below it moves up a
    line, and unban still edits that entry (and only it)."""
    f2b = server.fail2ban({"sshd": {"banaction": action}})
    f2b.fail(CLIENT4)
    f2b.wait_banned("sshd", CLIENT4)
    server.wait_ban_applied(CLIENT4)
    assert eventually(lambda: f": {CLIENT4}\n".encode() in server.read("/etc/hosts.deny"))
    current = server.read("/etc/hosts.deny").decode()
    server.write("/etc/hosts.deny", current + f"sshd: {CLIENT4}, 198.51.100.7\n")
    before = server.snapshot()
    proc = server.me(CLIENT4, "--no-ignore")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert server.read("/etc/hosts.deny") == (EMPTY_DENY + "sshd: 198.51.100.7\n").encode()
    assert server.opens(SERVER4)
    undone = server.unban("undo")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    after = server.snapshot()
    # Banned again, fail2ban appends its own line at the end; unban took only its own edit out
    # (it never puts back a whole file over lines others wrote), so the entries are all back,
    # fail2ban's last.
    assert sorted(after.pop("/etc/hosts.deny").splitlines()) == sorted(
        before.pop("/etc/hosts.deny").splitlines()
    )
    assert after == before


def test_fail2ban_stopped_its_database_goes_into_the_same_change_set(server: Server) -> None:
    f2b = server.fail2ban({"sshd": {"banaction": "iptables-multiport"}})
    f2b.fail(CLIENT4)
    f2b.wait_banned("sshd", CLIENT4)
    server.wait_ban_applied(CLIENT4)
    f2b.stop()
    server.write("/etc/hosts.deny", EMPTY_DENY + f"sshd: {CLIENT4}\n")
    assert ("203.0.113.4", "sshd") in f2b.db_rows()
    proc = server.me(CLIENT4)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "(in its database: the server is stopped)" in proc.stdout
    assert f2b.db_rows() == []
    (change_set,) = server.change_sets()  # its journal: what `unban undo` reads
    assert server.f2b is not None
    manifest = server.f2b.state_dir / "changes" / change_set / "manifest.json"
    info = json.loads(manifest.read_text())
    assert sorted(r["kind"] for r in info["files"]) == ["file", "hosts"]  # never the database
    (rows,) = [a for a in info["actions"] if a["kind"] == "fail2ban-db-rows"]
    assert rows["rows"]["bips"]["rows"][0][:2] == [CLIENT4, "sshd"]
    f2b.start()
    time.sleep(1)
    assert f2b.banned("sshd") == []
    assert server.opens(SERVER4)
    f2b.fail("198.51.100.23")  # a ban made after the run: undo must keep it
    f2b.wait_banned("sshd", "198.51.100.23")

    refused = server.unban("undo")
    assert refused.returncode == 2 and "stop it first" in refused.stderr
    f2b.stop()
    undone = server.unban("undo")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert sorted(f2b.db_rows()) == [("198.51.100.23", "sshd"), (CLIENT4, "sshd")]
    assert server.read("/etc/hosts.deny") == (EMPTY_DENY + f"sshd: {CLIENT4}\n").encode()
    f2b.start()
    f2b.wait_banned("sshd", CLIENT4)
    server.wait_ban_applied(CLIENT4)
    f2b.wait_banned("sshd", "198.51.100.23")


def test_the_verdict_judges_the_port_of_the_sshd_config_given(server: Server) -> None:
    """`--sshd-config` is the config the running sshd reads: the SYNs judged go to the port
    it names, not to the port of /etc/ssh/sshd_config."""
    server.fail2ban({"sshd": {}})
    config = server.sshd.config_path
    config.write_text(config.read_text().replace("Port 22\n", "Port 2222\n"))
    server.run("iptables", "-A", "INPUT", "-p", "tcp", "--dport", "2222", "-j", "DROP")
    proc = server.me(CLIENT4, "--no-ignore")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    refusing = proc.stdout.split("still refusing")[1]
    assert "--dport 2222 -j DROP" in refusing, proc.stdout
