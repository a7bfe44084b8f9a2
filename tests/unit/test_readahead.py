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


@pytest.mark.parametrize("sshd_config", [None, "/etc/ssh/sshd_config.other"])
def test_the_system_reads_are_what_the_layers_and_the_evaluator_make(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, sshd_config: Optional[str]
) -> None:
    """Every read started ahead is one a layer or the path evaluator then asks for, argv for
    argv (a read nobody asks for would only cost its run; one that differs would run twice)."""
    asked: list[tuple[str, ...]] = []

    def once(_self: Any, key: tuple[str, ...], _start: Any) -> Any:
        asked.append(key)
        out = "[]" if key[0] == "ip" else "port 22\nlistenaddress 0.0.0.0:22\n"
        return system.subprocess.CompletedProcess(list(key), 0, out, "")

    monkeypatch.setattr(system.SharedReads, "once", once)
    monkeypatch.setattr(readahead, "TCP_WRAPPERS", (str(tmp_path / "hosts.deny"),))
    (tmp_path / "hosts.deny").write_text("")
    target = parse_target("203.0.113.4")
    with system.shared_reads():
        RoutesLayer().find(target)
        verdict.system_packets(target.network_address, sshd_config)
        SshdPenaltyLayer(sshd_config, str(tmp_path)).status()
        HostsLayer(state_dir=str(tmp_path)).libwrap()
    reads = readahead.system_reads(target, sshd_config)
    assert ("ip", "-j", "route", "get", "203.0.113.4") in reads
    assert set(reads) <= set(asked)
    assert (readahead.ROUTE_TYPES, readahead.SESSION_BINARY) == (TYPES, SESSION_BINARY)
