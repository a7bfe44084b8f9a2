"""What a find reads first, started before the layers are imported (`system.read_ahead`): the
rule dumps, whose cost grows with the rules, while Python imports the rest. Kept apart from
the layers so the commands can start them first; tests/unit/test_readahead.py checks that the
layers run exactly these argvs."""

from __future__ import annotations

from unban.system import read_ahead

RULE_DUMPS = (
    ("iptables-legacy-save",),
    ("ip6tables-legacy-save",),
    ("iptables-nft-save",),
    ("ip6tables-nft-save",),
    ("nft", "-j", "-t", "list", "chains"),
    ("nft", "-j", "-t", "list", "sets"),
)


def start_rule_dumps() -> None:
    """Only where nothing changes the system before the first find: a read-only command, or a
    changing one once it holds the command lock and has recovered (cli.base.changing)."""
    from unban.nftgen import note_before_dumps

    note_before_dumps()  # nftables' generation before the dumps: unban.layers.xtables
    read_ahead(RULE_DUMPS)
