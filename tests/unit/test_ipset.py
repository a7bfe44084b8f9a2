"""ipset parsing and planning, on output captured from ipset 7.17 (Debian 12)."""

from __future__ import annotations

from unban.address import parse_target
from unban.layers.ipset import (
    SetHeader,
    add_line_of,
    build_batch,
    failed_line,
    listing_line,
    members_overlapping,
    parse_headers,
    parse_set_members,
)
from unban.layers.xtables_rules import RuleRef
from unban.model import Finding

LIST_T = """\
Name: f2b-sshd
Type: hash:ip
Revision: 6
Header: family inet hashsize 1024 maxelem 65536 timeout 600 bucketsize 12 initval 0xc14c2beb
Size in memory: 344
References: 1
Number of entries: 2

Name: crowdsec-blacklists
Type: hash:net
Revision: 7
Header: family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x14610aeb
Size in memory: 600
References: 0
Number of entries: 3

Name: sshguard6
Type: hash:ip
Revision: 6
Header: family inet6 hashsize 1024 maxelem 65536 bucketsize 12 initval 0x0665314f
Size in memory: 288
References: 0
Number of entries: 1

Name: ports
Type: hash:ip,port
Revision: 7
Header: family inet hashsize 1024 maxelem 65536 comment bucketsize 12 initval 0x349675ee
Size in memory: 216
References: 0
Number of entries: 0

Name: lists
Type: list:set
Revision: 3
Header: size 8
Size in memory: 128
References: 0
Number of entries: 1
"""

LIST_SET = """\
Name: lists
Type: list:set
Revision: 3
Header: size 8
Size in memory: 128
References: 0
Number of entries: 2
Members:
f2b-sshd
sshguard6
"""

SAVE = """\
create f2b-sshd hash:ip family inet hashsize 1024 maxelem 65536 timeout 600 bucketsize 12 initval 0xc14c2beb
add f2b-sshd 203.0.113.9 timeout 599
add f2b-sshd 203.0.113.4 timeout 299
add f2b-sshd 203.0.113.40 timeout 12
create crowdsec-blacklists hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x14610aeb
add crowdsec-blacklists 198.18.0.0/22
add crowdsec-blacklists 198.18.1.7
add crowdsec-blacklists 198.18.2.0/24 nomatch
create ports hash:ip,port family inet hashsize 1024 maxelem 65536 comment bucketsize 12 initval 0x349675ee
add ports 203.0.113.4,tcp:22 comment "ssh brute"
create nm hash:ip family inet hashsize 1024 maxelem 65536 netmask 24 bucketsize 12 initval 0xca1f3d2f
add nm 5.6.7.0
"""

RULE = RuleRef(
    backend="nft",
    family="ipv4",
    table="filter",
    chain="INPUT",
    line=1,
    rule="-A INPUT -m set --match-set f2b-sshd src -j REJECT --reject-with icmp-port-unreachable",
    verdict="REJECT",
    name="f2b-sshd",
)


def finding(set_name: str, element: str, network: str, targeted: bool = True) -> Finding:
    return Finding(
        layer="ipset",
        backend="ipset",
        family="ipv4",
        table="filter",
        chain="INPUT",
        line=1,
        handle=None,
        rule=RULE.rule,
        verdict="REJECT",
        owner="fail2ban:sshd",
        network=network,
        targeted=targeted,
        set_name=set_name,
        element=element,
    )


def test_headers_give_type_family_count_and_timeout() -> None:
    headers = parse_headers(LIST_T)
    assert list(headers) == ["f2b-sshd", "crowdsec-blacklists", "sshguard6", "ports", "lists"]
    f2b = headers["f2b-sshd"]
    assert (f2b.type, f2b.family, f2b.entries, f2b.timeout) == ("hash:ip", "ipv4", 2, 600)
    assert f2b.has_extensions and f2b.netmask is None
    crowdsec = headers["crowdsec-blacklists"]
    assert (crowdsec.family, crowdsec.timeout, crowdsec.has_extensions) == ("ipv4", None, False)
    assert headers["sshguard6"].family == "ipv6"
    assert headers["ports"].has_extensions  # comment
    assert headers["lists"].family is None
    assert SetHeader("b", "bitmap:ip", "range 10.0.0.0-10.0.0.255", 0).family == "ipv4"
    assert SetHeader("nm", "hash:ip", "family inet netmask 24", 1).netmask == 24


def test_full_listing_parses_like_headers_and_gives_list_set_members() -> None:
    assert parse_headers(LIST_SET)["lists"].entries == 2
    assert parse_set_members(LIST_SET) == ["f2b-sshd", "sshguard6"]
    assert parse_set_members(LIST_T) == []


def test_members_overlapping_an_address_are_targeted_or_broad() -> None:
    found = list(members_overlapping(SAVE, "crowdsec-blacklists", parse_target("198.18.1.7")))
    assert [(m.element, m.network, m.targeted, m.add_line) for m in found] == [
        ("198.18.0.0/22", "198.18.0.0/22", False, "add crowdsec-blacklists 198.18.0.0/22"),
        ("198.18.1.7", "198.18.1.7/32", True, "add crowdsec-blacklists 198.18.1.7"),
    ]


def test_members_skip_nomatch_and_other_sets() -> None:
    found = list(members_overlapping(SAVE, "crowdsec-blacklists", parse_target("198.18.2.9")))
    assert [m.element for m in found] == ["198.18.0.0/22"]
    # `add f2b-sshd 203.0.113.40` must not pass for 203.0.113.4, nor other sets' lines.
    found = list(members_overlapping(SAVE, "f2b-sshd", parse_target("203.0.113.4")))
    assert [(m.element, m.add_line) for m in found] == [
        ("203.0.113.4", "add f2b-sshd 203.0.113.4 timeout 299")
    ]


def test_members_of_a_cidr_target_and_of_tuple_and_netmask_sets() -> None:
    found = list(members_overlapping(SAVE, "f2b-sshd", parse_target("203.0.113.0/26")))
    assert [(m.element, m.targeted) for m in found] == [
        ("203.0.113.9", True),
        ("203.0.113.4", True),
        ("203.0.113.40", True),
    ]
    ports = list(members_overlapping(SAVE, "ports", parse_target("203.0.113.4")))
    assert [(m.element, m.network) for m in ports] == [("203.0.113.4,tcp:22", "203.0.113.4/32")]
    masked = list(members_overlapping(SAVE, "nm", parse_target("5.6.7.8"), netmask=24))
    assert [(m.element, m.network, m.targeted) for m in masked] == [
        ("5.6.7.0", "5.6.7.0/24", False)
    ]


def test_add_line_of_finds_exactly_one_element() -> None:
    assert add_line_of(SAVE, "f2b-sshd", "203.0.113.4") == "add f2b-sshd 203.0.113.4 timeout 299"
    assert add_line_of(SAVE, "f2b-sshd", "203.0.113.40") == "add f2b-sshd 203.0.113.40 timeout 12"
    assert add_line_of(SAVE, "f2b-sshd", "203.0.113.5") is None
    assert add_line_of("add s 1.2.3.4", "s", "1.2.3.4") == "add s 1.2.3.4"


def test_plan_is_one_restore_batch_whose_undo_keeps_timeout_and_comment() -> None:
    findings = [
        finding("f2b-sshd", "203.0.113.4", "203.0.113.4/32"),
        finding("ports", "203.0.113.4,tcp:22", "203.0.113.4/32"),
        finding("crowdsec-blacklists", "198.18.1.7", "198.18.1.7/32"),
        finding("f2b-sshd", "203.0.113.4", "203.0.113.4/32"),  # a second rule on the same set
    ]
    lines = {
        ("f2b-sshd", "203.0.113.4"): "add f2b-sshd 203.0.113.4 timeout 299",
        ("ports", "203.0.113.4,tcp:22"): 'add ports 203.0.113.4,tcp:22 comment "ssh brute"',
    }
    batch = build_batch(findings, lines)
    assert (batch.layer, batch.scope) == ("ipset", "sets")
    assert batch.payload == (
        "del f2b-sshd 203.0.113.4",
        "del ports 203.0.113.4,tcp:22",
        "del crowdsec-blacklists 198.18.1.7",
    )
    assert batch.undo_payload == (
        "add f2b-sshd 203.0.113.4 timeout 299",
        'add ports 203.0.113.4,tcp:22 comment "ssh brute"',
        "add crowdsec-blacklists 198.18.1.7",
    )
    assert [(s.command, s.undo_command) for s in batch.steps] == [
        ("ipset del f2b-sshd 203.0.113.4", "ipset add f2b-sshd 203.0.113.4 timeout 299"),
        (
            "ipset del ports 203.0.113.4,tcp:22",
            "ipset add ports 203.0.113.4,tcp:22 comment 'ssh brute'",
        ),
        ("ipset del crowdsec-blacklists 198.18.1.7", "ipset add crowdsec-blacklists 198.18.1.7"),
    ]


def test_listing_line_names_the_dropping_rules_never_the_elements() -> None:
    headers = parse_headers(LIST_T)
    assert listing_line(headers["f2b-sshd"], [RULE]) == (
        "f2b-sshd  hash:ip  ipv4  2 entries  timeout 600  dropped by nft ipv4 filter INPUT #1"
    )
    assert listing_line(headers["lists"], []) == (
        "lists  list:set  -  1 entries  (no rule drops its members)"
    )


def test_failed_line_tells_where_restore_stopped() -> None:
    error = "ipset v7.17: Error in line 2: Element is out of the range of the set"
    assert failed_line(error) == 2
    assert failed_line("ipset v7.17: Kernel error received: Operation not permitted") is None
