from __future__ import annotations

import ipaddress

import pytest

from unban.address import is_targeted, overlaps, parse_target
from unban.errors import ExitStatus, InputError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.4", "203.0.113.4/32"),
        (" 203.0.113.4 ", "203.0.113.4/32"),
        ("203.0.113.0/24", "203.0.113.0/24"),
        ("::ffff:203.0.113.4", "203.0.113.4/32"),
        ("::ffff:203.0.113.0/120", "203.0.113.0/24"),
        ("2001:DB8::4", "2001:db8::4/128"),
        ("2001:db8:0:0:0:0:0:4", "2001:db8::4/128"),
        ("[2001:db8::4]", "2001:db8::4/128"),
        ("2001:db8::/64", "2001:db8::/64"),
        ("fe80::1%eth0", "fe80::1/128"),
    ],
)
def test_valid_spellings(text: str, expected: str) -> None:
    assert str(parse_target(text)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty address"),
        ("   ", "empty address"),
        ("banana", "not an IPv4 or IPv6 address"),
        ("203.0.113.256", "not an IPv4 or IPv6 address"),
        ("0.0.0.0/0", "/0 is every address"),
        ("::/0", "/0 is every address"),
        ("10.0.0.0/4", "wider than /8"),
        ("203.0.113.4/24", "host bits set; did you mean 203.0.113.0/24"),
        ("203.0.113.4/33", "longer than /32"),
        ("203.0.113.4/x", "must be a number"),
        ("2001:db8::4%eth0", "link-local"),
        ("203.0.113.4%eth0", "only goes with an IPv6"),
        ("fe80::1%", "empty zone index"),
        ("203.0.113.4 203.0.113.5", "whitespace"),
    ],
)
def test_bad_input_is_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_target(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert caught.value.exit_status == ExitStatus.USAGE


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def test_a_wider_rule_matches_but_is_broad() -> None:
    target = net("203.0.113.4/32")
    assert overlaps(net("203.0.113.0/24"), target)
    assert not is_targeted(net("203.0.113.0/24"), target)
    assert is_targeted(net("203.0.113.4/32"), target)
    assert not overlaps(net("203.0.113.5/32"), target)


def test_rules_inside_a_cidr_target_are_targeted() -> None:
    target = net("198.18.0.0/22")
    assert is_targeted(net("198.18.1.7/32"), target)
    assert overlaps(net("198.16.0.0/12"), target)
    assert not is_targeted(net("198.16.0.0/12"), target)


def test_families_never_match_each_other() -> None:
    assert not overlaps(net("2001:db8::/32"), net("203.0.113.4/32"))
    assert not is_targeted(net("203.0.113.4/32"), net("2001:db8::4/128"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("203.0.113.4/\u0663\u0662", "only ASCII"),  # Arabic-Indic 32
        ("203.0.113.4/\u00b3\u00b2", "only ASCII"),  # superscript digits
        ("203.0.113.4/0032", "must be a number"),
        ("203.0.113.4/" + "1" * 5000, "longer than 100 characters"),
        ("::ffff:0.0.0.0/96", "/0 is every address"),
        ("64:ff9b::/96", "every NAT64 address, so every IPv4 address"),
        ("64:ff9b::/64", "every NAT64 address"),
        ("::/80", "every IPv4-mapped address"),
        ("2002::/16", "every 6to4 address"),
        ("2002:c000::/20", "covers an IPv4 /4 (6to4), wider than /8"),
        ("64:ff9b::/100", "covers an IPv4 /4 (NAT64)"),
        ("2001::/32", "every Teredo address"),
        ("1.2.3.4\x1b[2J", "only ASCII"),
    ],
)
def test_hostile_input_is_refused(text: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_target(text)
    assert message in str(caught.value)
    assert len(str(caught.value)) < 300


def test_embedded_ipv4_narrow_enough_is_an_ipv6_target() -> None:
    assert str(parse_target("64:ff9b::cb00:7104")) == "64:ff9b::cb00:7104/128"
    assert str(parse_target("2002:cb00:7100::/40")) == "2002:cb00:7100::/40"


def test_width_measures_embedded_networks_as_ipv4() -> None:
    from unban.address import width

    assert width(net("64:ff9b::c000:0/104")) == (4, 8)
    assert width(net("2002:cb00:7100::/40")) == (4, 24)
    assert width(net("64:ff9b:1::/56")) == (4, 8)  # RFC 6052 /48: bits 48-63, then 72-87
    assert width(net("64:ff9b:1:ff00::/80")) == (4, 24)
    assert width(net("2001:db8::/64")) == (6, 64)
    assert width(net("203.0.113.0/24")) == (4, 24)


def test_printable_escapes_what_a_terminal_would_act_on() -> None:
    from unban.errors import printable

    assert printable("a\x1b[31mb\nc\u202ed\r\x07 é") == "a\\x1b[31mb\\nc\\u202ed\\r\\x07 é"
