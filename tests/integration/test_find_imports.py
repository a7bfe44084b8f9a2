"""A find loads nftables' table reader and the path evaluator's nft walker only where there is a
native table to read and walk, and the iptables walker's matcher only where there are built-in
chains to walk (tests/unit/test_lazy_imports.py has the other lazy reads)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tests.integration.conftest import Netns
from tests.unit.test_lazy_imports import NFT_TABLES

ADDRESS = "203.0.113.4"
WALKERS = (*NFT_TABLES, "unban.path.iptables_match")


def _find_imports(netns: Netns, confdir: Path) -> set[str]:
    """The modules `unban find` imported (python -X importtime), its exit code checked."""
    proc = netns.run(
        "env", f"UNBAN_STATE_DIR={netns.state_dir}", sys.executable, "-X", "importtime", "-m",
        "unban", "--fail2ban-conf", str(confdir), "find", ADDRESS, "--json", check=False,
    )  # fmt: skip
    assert proc.returncode in (0, 3), proc.stderr
    return set(re.findall(r"^import time:.*\| +(\S+)$", proc.stderr, re.MULTILINE))


def test_find_walks_only_where_there_are_rules(netns: Netns, tmp_path: Path) -> None:
    assert sorted(_find_imports(netns, tmp_path).intersection(WALKERS)) == []

    netns.run("iptables-nft", "-A", "INPUT", "-s", ADDRESS, "-j", "DROP")
    loaded = _find_imports(netns, tmp_path)
    assert "unban.path.iptables_match" in loaded
    assert sorted(loaded.intersection(NFT_TABLES)) == []  # iptables-nft's tables are not native

    netns.run("nft", "add table inet t")
    netns.run("nft", "add chain inet t input { type filter hook input priority 0; }")
    netns.run("nft", f"add rule inet t input ip saddr {ADDRESS} drop")
    loaded = _find_imports(netns, tmp_path)
    assert {"unban.layers.nft_ruleset", "unban.path.nft", "unban.path.nft_match"} <= loaded
