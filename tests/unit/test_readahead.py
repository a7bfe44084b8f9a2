"""The rule dumps find and me start early are exactly the reads the layers make first."""

from __future__ import annotations

from typing import Any

import pytest

from unban import readahead, system
from unban.address import parse_target
from unban.layers import nftables, xtables


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
