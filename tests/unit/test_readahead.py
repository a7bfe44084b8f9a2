"""The rule dumps find and me start early are exactly the reads the layers make first."""

from __future__ import annotations

from typing import Any, Optional

import pytest

from unban import readahead, system, verdict
from unban.address import parse_target
from unban.layers import nftables, xtables
from unban.layers.hosts import HostsLayer
from unban.layers.routes import TYPES, RoutesLayer
from unban.layers.sshd_penalty import SshdPenaltyLayer
from unban.sshd import SESSION_BINARY


def test_the_read_ahead_argvs_are_what_the_layers_run(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, ...]] = []

    def fake_run(_layer: str, argv: Any, **_kw: Any) -> system.Completed:
        asked.append(tuple(argv))
        out = '{"nftables": []}' if argv[0] == "nft" else ""
        return system.Completed(tuple(argv), 0, out, "")

    monkeypatch.setattr(xtables, "run", fake_run)
    monkeypatch.setattr(nftables, "run", fake_run)
    monkeypatch.setattr(xtables, "which", lambda name: f"/usr/sbin/{name}")
    monkeypatch.setattr(nftables, "which", lambda name: f"/usr/sbin/{name}")
    target = parse_target("203.0.113.4")
    xtables.XtablesLayer().find(target)
    nftables.NftablesLayer().find(target)
    assert set(readahead.RULE_DUMPS) <= set(asked)


def test_only_the_first_find_takes_what_was_read_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[int] = []

    def started(argv: Any, stdin: Any, timeout: float) -> Any:
        runs.append(len(runs))
        return system.subprocess.CompletedProcess(argv, 0, f"run {len(runs)}", "")

    monkeypatch.setattr(system, "_started", started)
    monkeypatch.setattr(system, "which", lambda name: f"/usr/sbin/{name}")
    system.read_ahead([("iptables-nft-save",)])
    with system.shared_reads():
        first = system.run("iptables", ["iptables-nft-save"]).stdout
        again = system.run("iptables", ["iptables-nft-save"]).stdout
    with system.shared_reads():
        later = system.run("iptables", ["iptables-nft-save"]).stdout
    assert (first, again, later) == ("run 1", "run 1", "run 2")
    assert len(runs) == 2


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> list[tuple[str, ...]]:
    """The argvs the layers then ask the shared reads for (each answered with a stand-in)."""
    asked: list[tuple[str, ...]] = []

    def once(_self: Any, key: tuple[str, ...], _start: Any) -> Any:
        asked.append(key)
        out = "[]" if key[0] == "ip" else "port 22\nlistenaddress 0.0.0.0:22\n"
        return system.subprocess.CompletedProcess(list(key), 0, out, "")

    monkeypatch.setattr(system.SharedReads, "once", once)
    monkeypatch.setattr(readahead, "TCP_WRAPPERS", (str(tmp_path / "hosts.deny"),))
    (tmp_path / "hosts.deny").write_text("")
    return asked


def read_as_find_does(sshd_config: Optional[str], state_dir: str, *, penalties: bool) -> None:
    target = parse_target("203.0.113.4")
    with system.shared_reads():
        RoutesLayer().find(target)
        verdict.system_packets(target.network_address, sshd_config)
        if penalties:
            SshdPenaltyLayer(sshd_config, state_dir).status()
        HostsLayer(state_dir=state_dir).libwrap()


@pytest.mark.parametrize("sshd_config", [None, "/etc/ssh/sshd_config.other"])
def test_the_system_reads_are_what_the_layers_and_the_evaluator_make(
    asked: list[tuple[str, ...]], tmp_path: Any, sshd_config: Optional[str]
) -> None:
    """Every read started ahead is one a layer or the path evaluator then asks for, argv for
    argv (a read nobody asks for would only cost its run; one that differs would run twice)."""
    read_as_find_does(sshd_config, str(tmp_path), penalties=True)
    reads = readahead.system_reads(parse_target("203.0.113.4"), sshd_config)
    assert ("ip", "-j", "route", "get", "203.0.113.4") in reads
    assert set(reads) <= set(asked)
    assert (readahead.ROUTE_TYPES, readahead.SESSION_BINARY) == (TYPES, SESSION_BINARY)


def test_without_the_penalty_layer_sshd_s_global_configuration_is_not_read_ahead(
    asked: list[tuple[str, ...]], tmp_path: Any
) -> None:
    """`me --no-sshd` leaves out the only layer that reads `sshd -T` without -C."""
    read_as_find_does(None, str(tmp_path), penalties=False)
    target = parse_target("203.0.113.4")
    reads = readahead.system_reads(target, penalties=False)
    assert set(reads) <= set(asked)
    assert set(readahead.system_reads(target)) - set(reads) == {("sshd", "-T")}
