"""Owners' parsers and editors on files captured from the real tools (tests/unit/data/owners:
iptables-save, ip6tables-save and ipset save output, ufw 0.36.2's user.rules and user6.rules,
an nftables.conf in nft 1.0.6 syntax). Pure: the tools' own checks run in the integration
tests; here `check` is the one thing a subclass replaces, to test the editing alone."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from unban.address import parse_target
from unban.errors import LayerError, RuleChangedError
from unban.layers.xtables_rules import recent_rules
from unban.owners.files import apply_edits, edit_command, inverse, line_edits, unsafe_reason
from unban.owners.firewalld import (
    blocks,
    dropping_ipsets,
    parse_ipset_entries,
    parse_zones,
    rich_action,
)
from unban.owners.nftconf import NftConfOwner, flattened, includes
from unban.owners.nftconf_scan import cut_text, find_cuts
from unban.owners.persistent import (
    IpsetPersistentOwner,
    RulesPersistentOwner,
    dropping_sets,
    ipset_hits,
    rule_hits,
)
from unban.owners.ufw import UfwOwner, blocking_hits, enabled, insert_argv, parse_rules
from unban.path.iptables import parse_save
from unban.reverter import Reverter

DATA = Path(__file__).parent / "data" / "owners"
T4 = parse_target("203.0.113.4")
T6 = parse_target("2001:db8::4")


def data(name: str) -> str:
    return (DATA / name).read_text()


def without_lines(text: str, *numbers: int) -> str:
    lines = text.splitlines(keepends=True)
    return "".join(line for n, line in enumerate(lines, 1) if n not in numbers)


# ---------------------------------------------------------------- line edits


def test_line_edits_and_their_inverse_give_back_every_byte() -> None:
    before = data("rules.v4")
    after = without_lines(before, 5, 18)
    edits = line_edits(before, after)
    assert [(e[0], e[1]) for e in edits] == [
        (5, ("-A PREROUTING -s 203.0.113.4/32 -j DROP\n",)),
        (18, (before.splitlines(keepends=True)[17],)),
    ]
    assert apply_edits(before, edits) == after
    assert apply_edits(after, inverse(edits)) == before


def test_an_edit_follows_its_lines_when_others_moved_and_refuses_when_they_changed() -> None:
    before = "a\nb\nc\nd\n"
    edits = line_edits(before, "a\nb\nd\n")  # take out c
    assert apply_edits("new\na\nb\nc\nd\n", edits) == "new\na\nb\nd\n"
    undo = inverse(edits)
    assert apply_edits("new\na\nb\nd\n", undo) == "new\na\nb\nc\nd\n"
    with pytest.raises(ValueError, match="not where it was"):
        apply_edits("a\nb\nC\nd\n", edits)


def test_edit_commands_are_sed_for_the_file_as_read() -> None:
    edits = line_edits("a\nb\nc\n", "a\nc\n")
    assert edit_command("/etc/iptables/rules.v4", edits[0]) == "sed -i '2d' /etc/iptables/rules.v4"
    assert edit_command("/f", inverse(edits)[0]) == "sed -i '2i \\b' /f"
    changed = line_edits("x = { 1, 2 }\n", "x = { 1 }\n")
    assert edit_command("/f", changed[0]) == "sed -i '1c\\x = { 1 }' /f"


def test_unsafe_files(tmp_path: Path) -> None:
    good = tmp_path / "rules.v4"
    good.write_text("*filter\nCOMMIT\n")
    good.chmod(0o640)
    assert unsafe_reason(str(good)) == ""
    good.chmod(0o664)
    assert "writable by group or others (mode 0664)" in unsafe_reason(str(good))
    good.chmod(0o640)
    link = tmp_path / "link.v4"
    link.symlink_to(good)
    assert "is a symlink" in unsafe_reason(str(link))
    assert "does not exist" in unsafe_reason(str(tmp_path / "none"))


# ---------------------------------------------------------------- rules.v4, rules.v6, ipsets


def test_rules_v4_hits_blocking_rules_whose_source_covers_the_address() -> None:
    hits = rule_hits(data("rules.v4"), "ipv4", T4)
    assert [(h.line, h.table, h.chain, h.verdict, h.targeted) for h in hits] == [
        (5, "raw", "PREROUTING", "DROP", True),
        (18, "filter", "INPUT", "DROP", True),  # -p tcp --dport 22 and a quoted comment
    ]  # not the LOG rule, not the ACCEPT through set "trusted", not 198.51.100.0/24
    assert rule_hits(data("rules.v4"), "ipv4", T6) == []
    broad = rule_hits(data("rules.v4"), "ipv4", parse_target("198.51.100.7"))
    assert [(h.line, h.network, h.targeted) for h in broad] == [(19, "198.51.100.0/24", False)]


def test_rules_v6_hits() -> None:
    hits = rule_hits(data("rules.v6"), "ipv6", T6)
    assert [(h.rule, h.targeted) for h in hits] == [("-A INPUT -s 2001:db8::4/128 -j DROP", True)]


def test_ipsets_hits_only_sets_that_a_saved_rule_drops() -> None:
    sets = dropping_sets([(data("rules.v4"), "ipv4"), (data("rules.v6"), "ipv6")])
    assert sets == {"blacklist", "nets", "blacklist6"}  # not "trusted": its rule accepts
    hits = ipset_hits(data("ipsets"), sets, T4)
    assert [(h.line, h.set_name, h.element, h.targeted) for h in hits] == [
        (3, "blacklist", "203.0.113.4", True),
        (9, "nets", "203.0.113.0/28", False),
    ]
    assert [h.line for h in ipset_hits(data("ipsets"), sets, T6)] == [5]


class _Checked(RulesPersistentOwner):
    """The editing alone: the file's check is iptables-restore --test in the integration tests."""

    complaint = ""

    def check(self, path: str, text: str) -> str:
        return self.complaint


def _copy(tmp_path: Path, *names: str, mode: int = 0o640) -> list[Path]:
    paths = []
    for name in names:
        path = tmp_path / name
        path.write_bytes((DATA / name).read_bytes())
        path.chmod(mode)
        paths.append(path)
    return paths


def test_rules_owner_plans_applies_and_reverts_byte_for_byte(tmp_path: Path) -> None:
    v4, v6 = _copy(tmp_path, "rules.v4", "rules.v6")
    owner = _Checked(str(v4), str(v6), state_dir=str(tmp_path / "state"))
    before = v4.read_bytes()
    findings = owner.find(T4)
    assert [(f.layer, f.owner, f.source, f.lifts_own) for f in findings] == [
        ("netfilter-persistent", "netfilter-persistent", f"{v4}:5", False),
        ("netfilter-persistent", "netfilter-persistent", f"{v4}:18", False),
    ]
    (batch,) = owner.plan(findings)
    assert [s.command for s in batch.steps] == [f"sed -i '5d' {v4}", f"sed -i '18d' {v4}"]
    owner.apply(batch)
    assert v4.read_bytes() == without_lines(before.decode(), 5, 18).encode()
    assert stat.S_IMODE(os.stat(v4).st_mode) == 0o640
    assert owner.find(T4) == []
    fresh = _Checked(str(v4), str(v6), state_dir=str(tmp_path / "state"))
    fresh.revert(batch)  # as `unban undo` does in a later process: by the inverse edits
    assert v4.read_bytes() == before


def test_undo_puts_back_only_what_unban_took_out(tmp_path: Path) -> None:
    v4, v6 = _copy(tmp_path, "rules.v4", "rules.v6")
    owner = _Checked(str(v4), str(v6), state_dir=str(tmp_path / "state"))
    (batch,) = owner.plan(owner.find(T4))
    owner.apply(batch)
    edited = "# edited by hand after unban\n" + v4.read_text()
    v4.write_text(edited)
    _Checked(str(v4), str(v6), state_dir=str(tmp_path / "state")).revert(batch)
    assert v4.read_text() == "# edited by hand after unban\n" + data("rules.v4")


def test_a_failed_run_restores_the_file_from_its_backup(tmp_path: Path) -> None:
    v4, v6 = _copy(tmp_path, "rules.v4", "rules.v6")
    owner = _Checked(str(v4), str(v6), state_dir=str(tmp_path / "state"))
    (batch,) = owner.plan(owner.find(T4))
    owner.apply(batch)
    owner.revert(batch)  # the engine's rollback, in the same process: the change set's backup
    assert v4.read_bytes() == (DATA / "rules.v4").read_bytes()
    assert [i.status for i in Reverter(str(tmp_path / "state")).list()] == ["rolled-back"]


def test_rules_owner_declines_an_unsafe_or_invalid_file(tmp_path: Path) -> None:
    (v4,) = _copy(tmp_path, "rules.v4", mode=0o666)
    owner = _Checked(str(v4), str(tmp_path / "none"), state_dir=str(tmp_path / "state"))
    findings = owner.find(T4)
    assert len(findings) == 2 and owner.plan(findings) == []
    assert "writable by group or others" in findings[0].rule
    assert "it comes back at the next boot" in findings[0].rule
    assert f"clear it by hand: sed -i '5d' {v4}" in findings[0].rule
    v4.chmod(0o640)
    owner.complaint = "line 3 failed"
    findings = owner.find(T4)
    assert owner.plan(findings) == []
    assert "fails its own check before any change (line 3 failed)" in findings[0].rule


def test_rules_owner_refuses_a_file_that_changed_where_it_edits(tmp_path: Path) -> None:
    v4, v6 = _copy(tmp_path, "rules.v4", "rules.v6")
    owner = _Checked(str(v4), str(v6), state_dir=str(tmp_path / "state"))
    (batch,) = owner.plan(owner.find(T4))
    changed = v4.read_text().replace("-A PREROUTING -s 203.0.113.4/32 -j DROP", "-A X -j DROP")
    v4.write_text(changed)
    with pytest.raises(RuleChangedError, match="nothing in it was changed"):
        owner.apply(batch)
    assert v4.read_text() == changed


def test_rules_owner_does_not_write_a_result_that_fails_the_check(tmp_path: Path) -> None:
    v4, v6 = _copy(tmp_path, "rules.v4", "rules.v6")
    owner = _Checked(str(v4), str(v6), state_dir=str(tmp_path / "state"))
    (batch,) = owner.plan(owner.find(T4))
    owner.complaint = "COMMIT expected"
    with pytest.raises(LayerError, match="would fail its own check"):
        owner.apply(batch)
    assert v4.read_bytes() == (DATA / "rules.v4").read_bytes()


def test_ipset_owner_edits_only_the_add_line(tmp_path: Path) -> None:
    ipsets, v4, v6 = _copy(tmp_path, "ipsets", "rules.v4", "rules.v6")

    class Checked(IpsetPersistentOwner):
        def check(self, path: str, text: str) -> str:
            return ""

    owner = Checked(str(ipsets), str(v4), str(v6), state_dir=str(tmp_path / "state"))
    findings = [f for f in owner.find(T4) if f.targeted]
    (batch,) = owner.plan(findings)
    owner.apply(batch)
    assert ipsets.read_text() == without_lines(data("ipsets"), 3)


# ---------------------------------------------------------------- nftables.conf


def test_nft_finds_dropped_set_elements_and_dropping_rules() -> None:
    cuts = find_cuts(data("nftables.conf"), T4)
    assert [(h.line, h.set_name, h.chain, h.element) for h, _c in cuts] == [
        (13, "blocklist", None, "203.0.113.4"),  # not in "friends": its rule accepts
        (34, None, "input", None),
        (35, None, "input", "203.0.113.4"),  # an anonymous set of the rule
    ]  # not the `log ... accept` rule
    assert [h.table for h, _c in cuts] == ["inet filter"] * 3


def test_nft_cut_keeps_every_other_byte() -> None:
    text = data("nftables.conf")
    after = cut_text(text, [c for _h, c in find_cuts(text, T4)])
    expected = (
        text.replace("{ 198.51.100.7, 203.0.113.4,\n", "{ 198.51.100.7,\n")
        .replace(
            "\t\tip saddr 203.0.113.4 tcp dport $ssh_port reject with icmp type "
            "admin-prohibited # 2026-11-30\n",
            "",
        )
        .replace("{ 203.0.113.4, 198.51.100.9 }", "{ 198.51.100.9 }")
    )
    assert after == expected


def test_nft_last_element_takes_its_elements_statement_with_it() -> None:
    text = data("nftables.conf")
    after = cut_text(text, [c for _h, c in find_cuts(text, T6)])
    expected = text.replace("\t\telements = { 2001:db8::4 }\n", "").replace(
        "\t\tip6 saddr 2001:db8::4 counter packets 0 bytes 0 drop\n", ""
    )
    assert after == expected
    extra = data("extra.nft")
    one_line = cut_text(extra, [c for _h, c in find_cuts(extra, T4)])
    assert one_line == extra.replace(" elements = { 203.0.113.4 } ;", "")


def test_nft_includes_are_followed_and_inlined(tmp_path: Path) -> None:
    conf = tmp_path / "nftables.conf"
    conf.write_text(data("nftables.conf").replace("/etc/nftables.d", str(tmp_path / "d")))
    (tmp_path / "d").mkdir()
    extra = tmp_path / "d" / "extra.nft"
    extra.write_text(data("extra.nft"))
    assert includes(conf.read_text(), str(conf)) == [str(extra)]
    owner = NftConfOwner(str(conf), state_dir=str(tmp_path / "state"))
    assert owner.files() == [str(conf), str(extra)]
    text = flattened(str(conf), {str(extra): "# edited\n"})
    assert "# edited\n" in text and "include" not in text.split("flush ruleset")[1]


# ---------------------------------------------------------------- ufw


def test_ufw_rules_are_numbered_as_ufw_status_numbered_does() -> None:
    v4 = parse_rules(data("user.rules"), "/etc/ufw/user.rules", "ipv4")
    v6 = parse_rules(data("user6.rules"), "/etc/ufw/user6.rules", "ipv6", len(v4) + 1)
    assert [(r.number, r.spec()) for r in (*v4, *v6)] == [
        (1, "deny from 203.0.113.4 to any"),
        (2, "allow from any to any port 22 proto tcp"),
        (3, "deny from 198.51.100.7 to any port 22 proto tcp comment 'bad bot'"),
        (4, "limit from any to any port 2222 proto tcp"),
        (5, "reject from 192.0.2.0/24 to any"),
        (6, "allow from any to any port 22 proto tcp"),
        (7, "deny from 2001:db8::4 to any"),
        (8, "limit from any to any port 2222 proto tcp"),
    ]  # the numbers and order `ufw status numbered` printed for these files
    assert [r.line for r in v4] == [20, 23, 26, 29, 34]


def test_ufw_interfaces_and_log_rules() -> None:
    text = (
        "### tuple ### deny tcp 22 ::/0 any 2001:db8::5 in_lo\n"
        "### tuple ### deny_log any any 0.0.0.0/0 any 203.0.113.9 in\n"
    )
    rules = parse_rules(text, "f", "ipv6")
    assert [r.spec() for r in rules] == [
        "deny in on lo from 2001:db8::5 to any port 22 proto tcp",
        "deny log from 203.0.113.9 to any",
    ]


def test_ufw_blocking_hits_leave_limits_and_allows() -> None:
    v4 = parse_rules(data("user.rules"), "u", "ipv4")
    assert [r.number for r, _n in blocking_hits(v4, T4)] == [1]
    assert [r.number for r, _n in blocking_hits(v4, parse_target("192.0.2.9"))] == [5]
    v6 = parse_rules(data("user6.rules"), "u6", "ipv6", 6)
    assert [r.number for r, _n in blocking_hits(v6, T6)] == [7]


def test_ufw_insert_goes_back_to_its_number_or_appends() -> None:
    spec = "deny from 203.0.113.4 to any comment 'a b'"
    assert insert_argv(spec, 1, 1, 4) == [
        "ufw", "insert", "1", "deny", "from", "203.0.113.4", "to", "any", "comment", "a b",
    ]  # fmt: skip
    assert insert_argv(spec, 5, 1, 4)[:3] == ["ufw", "deny", "from"]  # past the v4 rules


def test_ufw_owner_plans_delete_and_insert(tmp_path: Path) -> None:
    for name in ("user.rules", "user6.rules"):
        (tmp_path / name).write_text(data(name))
    (tmp_path / "ufw.conf").write_text("ENABLED=yes\nLOGLEVEL=low\n")
    owner = UfwOwner(str(tmp_path))
    findings = owner.find(T4) + owner.find(T6)
    assert [(f.rule, f.owner, f.lifts_own, f.source) for f in findings] == [
        ("ufw deny from 203.0.113.4 to any", "ufw", True, f"{tmp_path}/user.rules:20"),
        ("ufw deny from 2001:db8::4 to any", "ufw", True, f"{tmp_path}/user6.rules:23"),
    ]
    (batch,) = owner.plan(findings)
    assert [(s.command, s.undo_command) for s in batch.steps] == [
        ("ufw --force delete deny from 2001:db8::4 to any", "ufw insert 7 deny from 2001:db8::4 to any"),
        ("ufw --force delete deny from 203.0.113.4 to any", "ufw insert 1 deny from 203.0.113.4 to any"),
    ]  # fmt: skip
    (tmp_path / "ufw.conf").write_text("ENABLED=no\n")
    assert owner.find(T4) == []
    assert enabled("ENABLED='yes'\n") and not enabled("")


# ---------------------------------------------------------------- firewalld


def test_firewalld_zones_as_list_all_zones_prints_them() -> None:
    zones = {z.name: z for z in parse_zones(data("firewalld-runtime-zones.txt"))}
    assert zones["drop"].target == "DROP"
    assert zones["drop"].sources == ("203.0.113.4", "ipset:blocked", "198.51.100.99")
    assert zones["block"].target == "%%REJECT%%" and zones["block"].sources == ("2001:db8::/64",)
    assert zones["trusted"].sources == ("ipset:ok",)
    assert len(zones["public"].rich_rules) == 5
    assert parse_ipset_entries(data("firewalld-ipset.txt")) == ("192.0.2.9", "203.0.113.4")


def test_firewalld_blocks_sources_of_dropping_zones_rich_rules_and_ipsets() -> None:
    zones = parse_zones(data("firewalld-runtime-zones.txt"))
    assert dropping_ipsets(zones) == {"blocked": "DROP"}  # not "ok": trusted accepts
    found = blocks(zones, {"blocked": ("192.0.2.9", "203.0.113.4")}, T4)
    assert [(b.kind, b.where, b.value) for b in found] == [
        ("source", "drop", "203.0.113.4"),
        ("rich-rule", "public", 'rule family="ipv4" source address="203.0.113.4" reject '
         'type="icmp-admin-prohibited"'),
        ("ipset-entry", "blocked", "203.0.113.4"),
    ]  # fmt: skip
    # not the `source NOT address=` rule, not the /24 `accept` with a limit
    assert [(b.kind, b.value[:20]) for b in blocks(zones, {}, T6)] == [
        ("source", "2001:db8::/64"),
        ("rich-rule", 'rule family="ipv6" s'),
    ]
    assert found[0].args(add=False) == ("--zone=drop", "--remove-source=203.0.113.4")
    assert found[2].args(add=True) == ("--ipset=blocked", "--add-entry=203.0.113.4")


def test_firewalld_permanent_view_is_parsed_alike() -> None:
    zones = {z.name: z for z in parse_zones(data("firewalld-permanent-zones.txt"))}
    assert zones["drop"].sources == ("203.0.113.4", "ipset:blocked")  # not the runtime-only one
    assert rich_action('rule family="ipv4" source address="x" service name="drop" accept') == (
        "accept"
    )


def test_ufw_limit_chain_makes_its_recent_list_a_blocking_one() -> None:
    """`ufw limit` jumps to ufw-user-limit (LOG, then REJECT): the xt_recent layer must see
    list DEFAULT as blocking, or a client over the limit is never cleared (ufw 0.36's rules)."""
    ruleset = parse_save(data("ufw-iptables-save.txt"), "nft", "ipv4")
    refs = list(recent_rules(ruleset))
    assert [(r.chain, r.verdict, r.name) for r in refs] == [("ufw-user-input", "REJECT", "DEFAULT")]


def test_ufw_owner_declines_a_group_writable_rules_file(tmp_path: Path) -> None:
    for name in ("user.rules", "user6.rules"):
        (tmp_path / name).write_text(data(name))
        (tmp_path / name).chmod(0o640)
    (tmp_path / "ufw.conf").write_text("ENABLED=yes\n")
    (tmp_path / "user.rules").chmod(0o660)
    owner = UfwOwner(str(tmp_path))
    (finding,) = owner.find(T4)
    assert owner.plan([finding]) == []
    assert "writable by group or others" in finding.rule
    assert "clear it by hand: ufw delete deny from 203.0.113.4 to any" in finding.rule
    assert len(owner.plan(owner.find(T6))) == 1  # user6.rules is fine


def test_rules_a_syn_to_sshd_never_meets_are_off_the_path() -> None:
    v4 = data("rules.v4").replace(
        "-A INPUT -i lo -j ACCEPT\n",
        "-A INPUT -i lo -j ACCEPT\n-A FORWARD -s 203.0.113.4/32 -j DROP\n",
    )
    assert [(h.chain, h.on_path) for h in rule_hits(v4, "ipv4", T4)] == [
        ("PREROUTING", None),
        ("FORWARD", False),
        ("INPUT", None),
    ]
    conf = data("nftables.conf").replace(
        "type filter hook forward priority filter;\n",
        "type filter hook forward priority filter;\n\t\tip saddr 203.0.113.4 drop\n",
    )
    assert [(h.chain, h.on_path) for h, _c in find_cuts(conf, T4)] == [
        (None, None),  # the set's element
        ("input", None),
        ("input", None),
        ("forward", False),
    ]
