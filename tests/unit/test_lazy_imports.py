"""What a read loads only when there is something for it: the nft table reader, walker and text
parser only for a native table, nftables.conf's scanner only for a file that drops something,
fail2ban's ignoreip planner only for a plan, the log readers only for a penalty lookup, and
importlib.resources only for a reader of the schema. Each module is a few dataclasses, which
Python 3.11 creates at import (about 0.7 ms each): every find, heal and me paid for them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

NFT_TABLES = (
    "unban.layers.nft_ruleset",
    "unban.layers.nft_listing",
    "unban.path.nft",
    "unban.path.nft_match",
    "unban.path.nft_lookups",
)
LATER = (
    *NFT_TABLES,
    "unban.owners.nftconf_scan",
    "unban.fail2ban.ignoreplan",
    "unban.logs",
    "unban.penalties",
    "importlib.resources",
)

DEBIAN_NFTABLES_CONF = """#!/usr/sbin/nft -f

flush ruleset

table inet filter {
\tchain input {
\t\ttype filter hook input priority filter;
\t}
}
"""

READS = """
import sys
from unban.address import parse_target
from unban.checks import sshd
from unban.contract import commands
from unban.fail2ban import ignoreip
from unban.layers.nftables import NftablesLayer
from unban.owners.nftconf import NftConfOwner

target = parse_target("203.0.113.4")
confdir, conf = sys.argv[1], sys.argv[2]
assert ignoreip.ignored_in(confdir, target) == [("sshd", None)]
owner = NftConfOwner(conf, state_dir=confdir)
assert owner.hits(conf, open(conf).read(), target) == []
print(" ".join(sorted(sys.modules)))
dropping = "table ip t {\\n chain c {\\n  ip saddr 203.0.113.4 drop\\n }\\n}\\n"
assert owner.hits(conf, dropping, target)
assert "unban.owners.nftconf_scan" in sys.modules
"""


def test_reads_with_nothing_to_read_load_none_of_it(tmp_path: Path) -> None:
    (tmp_path / "jail.conf").write_text(
        "[DEFAULT]\nignoreip = 127.0.0.1/8\n[sshd]\nenabled = true\n"
    )
    conf = tmp_path / "nftables.conf"
    conf.write_text(DEBIAN_NFTABLES_CONF)
    proc = subprocess.run(
        [sys.executable, "-c", READS, str(tmp_path), str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    loaded = set(proc.stdout.split())
    assert "unban.layers.nftables" in loaded and "unban.fail2ban.config" in loaded
    assert sorted(loaded.intersection(LATER)) == []
