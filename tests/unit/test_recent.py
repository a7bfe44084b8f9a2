"""xt_recent parsing and planning, and the adapter against a list directory in a temp dir."""

from __future__ import annotations

from pathlib import Path

from unban.address import parse_target
from unban.layers import ListQuery
from unban.layers.recent import RecentLayer, build_batch, mask_prefix, parse_list
from unban.layers.xtables import XtablesLayer
from unban.layers.xtables_rules import RuleRef
from unban.path.iptables import Ruleset, parse_save

# /proc/net/xt_recent/SSH, captured (kernel 6.1): IPv6 sources are printed in full.
SSH_LIST = """\
src=2001:0db8:0000:0000:0000:0000:0000:0004 ttl: 0 last_seen: 4296550608 oldest_pkt: 1 4296550608
src=203.0.113.4 ttl: 0 last_seen: 4296550608 oldest_pkt: 1 4296550608
src=203.0.113.5 ttl: 64 last_seen: 4296551608 oldest_pkt: 2 4296550608, 4296551608
"""

SAVE4 = """\
*filter
:INPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 22 -m recent --rcheck --seconds 60 --hitcount 4 --name SSH \
--mask 255.255.255.255 --rsource -j DROP
-A INPUT -m recent --set --name track --mask 255.255.255.255 --rsource
-A INPUT -m recent --update --seconds 600 --name net24 --mask 255.255.255.0 --rsource -j REJECT
COMMIT
"""

SAVE6 = """\
*filter
:INPUT ACCEPT [0:0]
-A INPUT -m recent --rcheck --name SSH --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff \
--rsource -j DROP
COMMIT
"""


class FixedXtables(XtablesLayer):
    """Rulesets given as text instead of read from the kernel."""

    def __init__(self, *rulesets: Ruleset) -> None:
        super().__init__()
        self._fixed = list(rulesets)

    def rulesets(self) -> list[Ruleset]:
        return self._fixed


def layer(tmp_path: Path, *rulesets: Ruleset) -> RecentLayer:
    return RecentLayer(FixedXtables(*rulesets), proc_dir=tmp_path)


def test_parse_list_compresses_ipv6_sources() -> None:
    entries = parse_list(SSH_LIST + "garbage\nsrc=nonsense ttl: 0\n")
    assert [(e.address, e.family) for e in entries] == [
        ("2001:db8::4", "ipv6"),
        ("203.0.113.4", "ipv4"),
        ("203.0.113.5", "ipv4"),
    ]


def test_mask_prefix_reads_the_rule_mask() -> None:
    def ref(rule: str, family: str = "ipv4") -> RuleRef:
        return RuleRef("nft", family, "filter", "INPUT", 1, rule, "DROP", "x")

    assert mask_prefix(ref("-A INPUT -m recent --rcheck --name x --mask 255.255.255.0")) == 24
    assert mask_prefix(ref("-A INPUT -m recent --rcheck --name x")) == 32
    assert mask_prefix(ref("-A INPUT -m recent --rcheck --mask ffff:ffff::", "ipv6")) == 32


def test_find_reports_entries_of_lists_a_dropping_rule_checks(tmp_path: Path) -> None:
    (tmp_path / "SSH").write_text(SSH_LIST)
    (tmp_path / "track").write_text("src=203.0.113.4 ttl: 0 last_seen: 1 oldest_pkt: 1 1\n")
    recent = layer(tmp_path, parse_save(SAVE4, "legacy", "ipv4"), parse_save(SAVE6, "nft", "ipv6"))

    found = recent.find(parse_target("203.0.113.4"))
    assert [(f.set_name, f.element, f.network, f.targeted, f.line, f.verdict) for f in found] == [
        ("SSH", "203.0.113.4", "203.0.113.4/32", True, 1, "DROP")
    ]
    assert found[0].owner == "manual" and found[0].layer == "xt_recent"

    found6 = recent.find(parse_target("2001:db8::4"))
    assert [(f.family, f.element, f.rule.startswith("-A INPUT -m recent")) for f in found6] == [
        ("ipv6", "2001:db8::4", True)
    ]
    wide = recent.find(parse_target("203.0.113.0/24"))
    assert [f.element for f in wide] == ["203.0.113.4", "203.0.113.5"]


def test_an_ipv4_entry_is_not_blocked_by_an_ipv6_rule(tmp_path: Path) -> None:
    (tmp_path / "SSH").write_text(SSH_LIST)
    recent = layer(tmp_path, parse_save(SAVE6, "nft", "ipv6"))
    assert recent.find(parse_target("203.0.113.4")) == []


def test_a_masked_list_entry_is_a_broad_finding(tmp_path: Path) -> None:
    (tmp_path / "net24").write_text("src=198.51.100.0 ttl: 0 last_seen: 1 oldest_pkt: 1 1\n")
    recent = layer(tmp_path, parse_save(SAVE4, "nft", "ipv4"))
    found = recent.find(parse_target("198.51.100.7"))
    assert [(f.element, f.network, f.targeted, f.verdict) for f in found] == [
        ("198.51.100.0", "198.51.100.0/24", False, "REJECT")
    ]


def test_plan_apply_and_revert_write_the_list_file(tmp_path: Path) -> None:
    (tmp_path / "SSH").write_text(SSH_LIST)
    recent = layer(tmp_path, parse_save(SAVE4, "legacy", "ipv4"))
    findings = recent.find(parse_target("203.0.113.4"))
    [batch] = recent.plan(findings + findings)
    assert (batch.layer, batch.scope) == ("xt_recent", "lists")
    assert batch.payload == ("SSH -203.0.113.4",)
    assert batch.undo_payload == ("SSH +203.0.113.4",)
    [step] = batch.steps
    assert step.command == f"echo -203.0.113.4 > {tmp_path}/SSH"
    assert step.undo_command == f"echo +203.0.113.4 > {tmp_path}/SSH"
    # A plain file only keeps the last write; the kernel's file acts on each one.
    recent.apply(batch)
    assert (tmp_path / "SSH").read_text().startswith("-203.0.113.4\n")
    recent.revert(batch)
    assert (tmp_path / "SSH").read_text().startswith("+203.0.113.4\n")


def test_steps_quote_odd_paths(tmp_path: Path) -> None:
    (tmp_path / "SSH").write_text(SSH_LIST)
    findings = layer(tmp_path, parse_save(SAVE4, "legacy", "ipv4")).find(
        parse_target("203.0.113.4")
    )
    batch = build_batch(findings, Path("/tmp/a dir"))
    assert batch.steps[0].command == "echo -203.0.113.4 > '/tmp/a dir/SSH'"
    assert RecentLayer(FixedXtables()).plan([]) == []


def test_status_and_listings(tmp_path: Path) -> None:
    missing = RecentLayer(FixedXtables(), proc_dir=tmp_path / "absent")
    assert not missing.status()[0].present
    assert missing.find(parse_target("203.0.113.4")) == []
    (tmp_path / "SSH").write_text(SSH_LIST)
    (tmp_path / "track").write_text("")
    recent = layer(tmp_path, parse_save(SAVE4, "legacy", "ipv4"))
    assert recent.status()[0].present
    [listing] = recent.listings(ListQuery())
    assert listing.lines == (
        "SSH  3 entries  dropped by legacy ipv4 filter INPUT #1",
        "track  0 entries  (no rule drops its sources)",
    )
    [listing6] = recent.listings(ListQuery(family="ipv6"))
    assert listing6.lines[0] == "SSH  1 entries  (no rule drops its sources)"
