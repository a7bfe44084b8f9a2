"""sshguard's and CrowdSec's files and outputs as unban reads them, and the plans it makes."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from unban.address import parse_network
from unban.exemptions import IGNORE, UNIGNORE, ExemptionPlan, FileEdit, plan_lines, select
from unban.exemptions.crowdsec import render_parser, whitelist_values
from unban.exemptions.sshguard import SshguardExemption, journaled_restart, restart_cost
from unban.model import Batch
from unban.owners.crowdsec import (
    CrowdsecOwner,
    Decision,
    add_argv,
    decisions_from_json,
    go_duration,
    nested_scalar,
    parse_duration,
    yaml_scalar,
)
from unban.owners.sshguard import (
    SshguardOwner,
    blacklist_lines,
    blacklist_path,
    blocker_options,
    covers,
    parse_conf,
    read_config,
    whitelist_entries,
    with_lines,
    without_lines,
)
from unban.procfs import process_tree, still_running

ADDR = ipaddress.ip_network("203.0.113.4/32")

# ---------------------------------------------------------------- sshguard


def test_conf_is_read_as_sh_assigns_it() -> None:
    text = (
        '# comment\nBACKEND="/usr/libexec/sshguard/sshg-fw-nft-sets"\n'
        'LOGREADER="LANG=C journalctl -afb -p info -n1 -t sshd -o cat"\n'
        "THRESHOLD=30 # inline\nBLACKLIST_FILE=120:/var/lib/sshguard/blacklist.db\n"
        "not an assignment\n"
    )
    values = parse_conf(text)
    assert values["BACKEND"] == "/usr/libexec/sshguard/sshg-fw-nft-sets"
    assert values["THRESHOLD"] == "30"
    assert values["LOGREADER"].startswith("LANG=C journalctl")
    assert blacklist_path(values["BLACKLIST_FILE"]) == "/var/lib/sshguard/blacklist.db"
    assert blacklist_path("/plain/path") == "/plain/path"


def test_blocker_options_as_getopt_reads_them() -> None:
    argv = ["/usr/libexec/sshguard/sshg-blocker", "-a", "30", "-b120:/bl.db", "-w", "/wl", "-w",
            "198.51.100.7", "-p", "120"]  # fmt: skip
    options = blocker_options(argv)
    assert options["b"] == ["120:/bl.db"] and options["w"] == ["/wl", "198.51.100.7"]


def test_running_blockers_options_win(tmp_path: Path) -> None:
    conf = tmp_path / "sshguard.conf"
    conf.write_text('BACKEND="/x/sshg-fw-ipset"\nWHITELIST_FILE=/etc/sshguard/whitelist\n')
    config = read_config(str(conf), str(tmp_path / "no-proc"))
    assert config.installed and config.pid is None and config.blacklist is None
    assert config.whitelist_file == "/etc/sshguard/whitelist"


def test_blacklist_lines_and_edits() -> None:
    text = (
        "1700000000|100|4|203.0.113.4\n# comment\n 1700000001|100|4|198.51.100.1\n"
        "garbage|x|4|1.2.3.4\n1700000002|100|6|2001:db8::4\n1700000003|100|4|203.0.113.4\n"
    )
    lines = blacklist_lines(text)
    assert [(line.number, line.address, line.family) for line in lines] == [
        (1, "203.0.113.4", "ipv4"),
        (5, "2001:db8::4", "ipv6"),
        (6, "203.0.113.4", "ipv4"),
    ]
    mine = [line for line in lines if line.address == "203.0.113.4"]
    after = without_lines(text, [m.number for m in mine], [m.text for m in mine])
    assert "203.0.113.4" not in after and after.count("\n") == 4
    with pytest.raises(ValueError, match="line 1"):
        without_lines(text, [1], ["1700000000|100|4|203.0.113.5"])
    assert with_lines(after, [m.text for m in mine]).endswith("1700000003|100|4|203.0.113.4\n")
    assert with_lines(text, [mine[0].text]) == text  # already there: unchanged


def test_owner_finds_and_plans_the_blacklist_lines(tmp_path: Path) -> None:
    blacklist = tmp_path / "blacklist.db"
    blacklist.write_text("1700000000|100|4|203.0.113.4\n1700000001|100|4|198.51.100.1\n")
    conf = tmp_path / "sshguard.conf"
    conf.write_text(f"BACKEND=/x/sshg-fw-nft-sets\nBLACKLIST_FILE=30:{blacklist}\n")
    owner = SshguardOwner(str(conf), proc=str(tmp_path / "no-proc"), state_dir=str(tmp_path / "s"))
    found = owner.find(ADDR)
    assert [(f.line, f.source, f.owner, f.lifts_own) for f in found] == [
        (1, f"{blacklist}:1", "sshguard", False)
    ]
    (batch,) = owner.plan(found)
    assert batch.payload == ((1, "1700000000|100|4|203.0.113.4"),)
    assert batch.steps[0].command == f"sed -i 1d {blacklist}"


def test_whitelist_entries_as_sshguard_reads_them() -> None:
    text = "# Address blocks in CIDR notation\n127.0.0.0/8\n::1/128\n\n203.0.113.0/28 # office\n"
    entries = whitelist_entries(text)
    assert entries == [(2, "127.0.0.0/8"), (3, "::1/128"), (5, "203.0.113.0/28")]
    assert covers("203.0.113.0/28", ADDR) and not covers("::1/128", ADDR)
    assert not covers("home.example.net", ADDR)  # a name: not guessed


def test_sshguard_exemption_plans_an_append_and_nothing_twice(tmp_path: Path) -> None:
    whitelist = tmp_path / "whitelist"
    whitelist.write_text("127.0.0.0/8\n::1/128\n")
    conf = tmp_path / "sshguard.conf"
    conf.write_text(f"BACKEND=/x/sshg-fw-nft-sets\nWHITELIST_FILE={whitelist}\n")
    exemption = SshguardExemption(str(conf), proc=str(tmp_path / "p"), require_running=False)
    plan = exemption.plan(IGNORE, ADDR)
    assert plan is not None
    assert plan.edits == (
        FileEdit(str(whitelist), "127.0.0.0/8\n::1/128\n", "127.0.0.0/8\n::1/128\n203.0.113.4\n"),
    )
    assert plan.commands == ()  # not running: nothing to restart
    assert "not running" in plan.notes[0]
    whitelist.write_text(plan.edits[0].after or "")
    again = exemption.plan(IGNORE, ADDR)
    assert again is not None and again.is_empty()
    assert exemption.state(ADDR).exempt
    out = exemption.plan(UNIGNORE, ADDR)
    assert out is not None and out.edits[0].after == "127.0.0.0/8\n::1/128\n"
    # a running sshguard is needed for `me` to count it as present
    assert SshguardExemption(str(conf), proc=str(tmp_path / "p")).plan(IGNORE, ADDR) is None


def test_restart_cost_names_what_the_backend_drops(tmp_path: Path) -> None:
    config = read_config(str(tmp_path / "none"), str(tmp_path))
    text = restart_cost(
        dataclasses.replace(config, backend="/usr/libexec/sshguard/sshg-fw-nft-sets")
    )
    assert "deletes table ip sshguard and table ip6 sshguard" in text
    assert "nothing is blocked again at start" in text


def test_restart_commands_read_back_from_the_journal() -> None:
    stop_start = [["/etc/init.d/sshguard", "stop"], ["/etc/init.d/sshguard", "start"]]
    assert journaled_restart(stop_start) == (
        ("/etc/init.d/sshguard", "stop"),
        ("/etc/init.d/sshguard", "start"),
    )
    assert journaled_restart(["systemctl", "restart", "sshguard.service"]) == (
        ("systemctl", "restart", "sshguard.service"),
    )  # one flat argv: how unban 0.x recorded its one restart command
    assert journaled_restart([]) == ()


def test_process_tree_follows_children_until_they_exit() -> None:
    """What the sshguard restart waits for: a shell and what it started, as /proc shows them."""
    shell = subprocess.Popen(["sh", "-c", "sleep 30 & wait"])
    try:
        deadline = time.monotonic() + 5
        while len(tree := process_tree(shell.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert shell.pid in tree and len(tree) == 2
        assert sorted(still_running(tree)) == sorted(tree)
        shell.kill()
        shell.wait()
        (sleeper,) = set(tree) - {shell.pid}
        assert still_running(tree) == [sleeper]  # the child outlives its shell
        os.kill(sleeper, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while still_running(tree) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert still_running(tree) == []
    finally:
        shell.kill()
        shell.wait()


# ---------------------------------------------------------------- CrowdSec


LISTED = [
    {
        "id": 1,
        "decisions": [
            {"duration": "1h59m57.067633702s", "id": 7, "origin": "cscli", "scenario": "test-ban",
             "scope": "Ip", "type": "ban", "value": "203.0.113.4"},
            {"duration": "59m59.36s", "id": 8, "origin": "crowdsec",
             "scenario": "crowdsecurity/ssh-bf", "scope": "Range", "type": "captcha",
             "value": "203.0.113.0/24"},
        ],
    }
]  # fmt: skip


def test_durations_both_ways() -> None:
    assert parse_duration("1h59m57.067633702s") == 7197
    assert parse_duration("59m59.36s") == 3599
    assert parse_duration("-3m") == -180
    assert go_duration(7197) == "1h59m57s" and go_duration(59) == "59s"


def test_decisions_from_cscli_json_and_their_undo() -> None:
    assert decisions_from_json("null") == []
    found = decisions_from_json(json.dumps(LISTED))
    assert found[0] == Decision(7, "Ip", "203.0.113.4", "ban", "test-ban", 7197, "cscli")
    assert add_argv(found[0]) == [
        "cscli", "decisions", "add", "--ip", "203.0.113.4", "--duration", "1h59m57s",
        "--type", "ban", "--reason", "test-ban",
    ]  # fmt: skip
    assert add_argv(found[1])[3:5] == ["--range", "203.0.113.0/24"]


def test_owner_plans_deletes_by_id_and_declines_database_ones() -> None:
    owner = CrowdsecOwner()
    decisions = decisions_from_json(json.dumps(LISTED))
    owner._seen = {d.id: d for d in decisions}
    from unban.model import Finding

    def finding(decision: Decision, backend: str) -> Finding:
        network = parse_network(decision.value)
        assert network is not None
        return Finding("crowdsec", backend, "ipv4", "decisions", None, None, decision.id, "r",
                       decision.type, "crowdsec", str(network), network.num_addresses == 1,
                       source=f"cscli decision {decision.id}", lifts_own=backend == "lapi")  # fmt: skip

    (batch,) = owner.plan([finding(decisions[0], "lapi"), finding(decisions[1], "database")])
    assert isinstance(batch, Batch) and len(batch.steps) == 1
    assert batch.steps[0].command == "cscli decisions delete --id 7"
    assert batch.steps[0].undo_command.startswith("cscli decisions add --ip 203.0.113.4")
    assert owner.plan([finding(decisions[0], "database")]) == []


def test_simple_yaml_values() -> None:
    text = "common:\n  daemonize: true\n  log_dir: /var/log/\nupdate_frequency: 10s # poll\n"
    assert nested_scalar(text, "common", "daemonize") == "true"
    assert nested_scalar(text, "db_config", "db_path") is None
    assert yaml_scalar(text, "update_frequency") == "10s"


def test_whitelist_parser_round_trip() -> None:
    stock = (
        'name: crowdsecurity/whitelists\nwhitelist:\n  reason: "private"\n  ip: \n'
        '    - "127.0.0.1"\n    - "::1"\n  cidr:\n    - "192.168.0.0/16"\n'
        "  # expression:\n  #   - \"'foo.com' in evt.Meta.source_ip.reverse\"\n"
    )
    assert whitelist_values(stock) == ["127.0.0.1", "::1", "192.168.0.0/16"]
    text = render_parser(["203.0.113.4", "198.18.0.0/22"])
    assert text is not None and whitelist_values(text) == ["203.0.113.4", "198.18.0.0/22"]
    assert render_parser([]) is None


# ---------------------------------------------------------------- the protocol


def test_select_and_plan_lines() -> None:
    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

    chosen = select([Named("fail2ban"), Named("sshguard")], ["sshguard"])  # type: ignore[list-item]
    assert [e.name for e in chosen] == ["sshguard"]
    from unban.errors import InputError

    with pytest.raises(InputError, match="--only nope"):
        select([Named("fail2ban")], ["nope"])  # type: ignore[list-item]
    plan = ExemptionPlan("sshguard", IGNORE, "203.0.113.4", (FileEdit("/w", "a\n", "a\nb\n"),),
                         lines=("add 203.0.113.4 to /w",), notes=("restarting drops",))  # fmt: skip
    assert plan_lines(plan) == ["add 203.0.113.4 to /w", "  write /w", "note: restarting drops"]
    assert "  +b" in plan_lines(plan, diff=True)


def test_fail2ban_exemption_only_where_fail2ban_is_installed_and_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unban.exemptions import fail2ban as exemption

    confdir = tmp_path / "fail2ban"
    confdir.mkdir()
    monkeypatch.setattr(exemption, "which", lambda name: f"/usr/bin/{name}")
    assert exemption.Fail2banExemption(str(confdir)).plan(IGNORE, ADDR) is None  # no jail.conf
    (confdir / "jail.conf").write_text("[DEFAULT]\n[sshd]\nenabled = true\n")
    monkeypatch.setattr(exemption, "which", lambda name: None)
    assert exemption.Fail2banExemption(str(confdir)).plan(IGNORE, ADDR) is None  # not installed
    assert not exemption.Fail2banExemption(str(confdir)).state(ADDR).present
    assert not (confdir / "jail.local").exists()


def test_find_says_where_the_address_is_exempt() -> None:
    from unban.exemptions import ExemptionState
    from unban.model import Report
    from unban.render import report_text

    states = (
        ExemptionState("fail2ban", True, True, "in the ignoreip of sshd"),
        ExemptionState("sshguard", True, False, "not in its whitelist"),
        ExemptionState("crowdsec", False, False, "CrowdSec is not installed"),
    )
    lines = report_text(Report("203.0.113.4", (), exemptions=states))
    assert (
        "exempt from future bans: fail2ban: yes (in the ignoreip of sshd); "
        "sshguard: no (not in its whitelist)"
    ) in lines
