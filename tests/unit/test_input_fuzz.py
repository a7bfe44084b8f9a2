"""hypothesis fuzzing of every reader of untrusted text: each gives a value or an InputError
(exit 2, one printable line), never anything else."""

from __future__ import annotations

import ipaddress
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unban import hostsedit, tcpwrappers
from unban.address import parse_network, parse_target
from unban.errors import InputError, printable
from unban.healconfig import load

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

address_alphabet = st.sampled_from(
    list(string.hexdigits + ".:/%[] \t\n\x1b\x00-") + ["\u0663", "\u00b3", "\u202e", "\uff11"]
)
address_like = st.one_of(
    st.text(address_alphabet, max_size=60),
    st.text(max_size=60),
    st.builds(
        lambda a, p: f"{a}/{p}",
        st.one_of(st.ip_addresses().map(str), st.text(address_alphabet, max_size=20)),
        st.one_of(st.integers(-5, 300).map(str), st.text(string.digits, max_size=400)),
    ),
)


def _one_clean_line(exc: InputError) -> None:
    assert "\n" not in printable(str(exc))
    assert "\x1b" not in printable(str(exc))


@FUZZ
@given(address_like)
def test_parse_target_gives_a_network_or_an_input_error(text: str) -> None:
    try:
        network = parse_target(text)
    except InputError as exc:
        _one_clean_line(exc)
        return
    assert isinstance(network, (ipaddress.IPv4Network, ipaddress.IPv6Network))
    assert network.prefixlen > 0
    assert text.strip().isascii()


@FUZZ
@given(st.ip_addresses())
def test_every_address_parses_to_itself(address: ipaddress._BaseAddress) -> None:
    network = parse_target(str(address))
    mapped = getattr(address, "ipv4_mapped", None)
    assert network.network_address == (mapped or address)


@FUZZ
@given(address_like)
def test_parse_network_gives_a_network_or_none(text: str) -> None:
    result = parse_network(text)
    assert result is None or isinstance(result, (ipaddress.IPv4Network, ipaddress.IPv6Network))


hosts_alphabet = st.sampled_from(
    list("sshdALLEXCEPT:, \t\n\\#[]/.*?@-0123456789abcdef") + ["\x00", "\udcff", "\u00e9"]
)


@FUZZ
@given(st.text(hosts_alphabet, max_size=300), st.ip_addresses().map(str))
def test_hosts_files_parse_evaluate_and_edit_without_surprises(text: str, address: str) -> None:
    table = tcpwrappers.parse_table(text, "/etc/hosts.deny")
    empty = tcpwrappers.parse_table("", "/etc/hosts.allow")
    request = tcpwrappers.Request(tcpwrappers.Endpoint(address, "unknown"))
    decision = tcpwrappers.evaluate(empty, table, request, read_file=lambda path: None)
    assert decision.allowed in (True, False, None)
    edits = [e for e in (hostsedit.remove_address(x, address) for x in table.entries) if e]
    edited = hostsedit.apply_edits(text, edits)
    assert isinstance(edited, str)
    granted = hostsedit.prepend(text, hostsedit.allow_line(address, "unban"))
    assert hostsedit.allow_line(address, "unban") in granted


toml_alphabet = st.sampled_from(list("protectwide_oklayersignoreip=[]\"', \n#.:/0123456789\\{}"))


@FUZZ
@given(st.text(toml_alphabet, max_size=200))
def test_heal_config_gives_a_config_or_an_input_error(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = Path(tmp_path_factory.mktemp("toml")) / "unban.toml"
    path.write_text(text)
    try:
        config = load(path, check_owner=False)
    except InputError as exc:
        _one_clean_line(exc)
        return
    assert config.addresses or config.hostnames


@FUZZ
@given(
    st.lists(st.one_of(address_like, st.text(max_size=30)), max_size=4),
    st.lists(st.one_of(address_like, st.text(max_size=30)), max_size=3),
)
def test_heal_config_values_give_a_config_or_an_input_error(
    tmp_path_factory: pytest.TempPathFactory, protect: list[str], wide_ok: list[str]
) -> None:
    import json

    path = Path(tmp_path_factory.mktemp("toml")) / "unban.toml"
    path.write_text(f"protect = {json.dumps(protect)}\nwide_ok = {json.dumps(wide_ok)}\n")
    try:
        load(path, check_owner=False)
    except InputError as exc:
        _one_clean_line(exc)
