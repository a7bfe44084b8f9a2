from __future__ import annotations

import os
from pathlib import Path

import pytest

from unban.errors import ExitStatus, InputError
from unban.healconfig import check_trusted, load, resolve_hostnames


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "unban.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_addresses_networks_and_hostnames(tmp_path: Path) -> None:
    config = load(
        write(tmp_path, 'protect = ["203.0.113.4", "2001:db8::/64", "Home.Example.NET."]\n')
    )
    assert [str(n) for n in config.addresses] == ["203.0.113.4/32", "2001:db8::/64"]
    assert config.hostnames == ("home.example.net",)
    assert config.layers == ("firewall", "fail2ban", "hosts", "owners", "sshd")
    assert config.ignoreip is True


def test_a_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'protect = ["203.0.113.4"]\nlayers = [firewall]\n')
    with pytest.raises(InputError) as caught:
        load(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert "line 2" in str(caught.value)
    assert caught.value.exit_status == ExitStatus.USAGE


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('protect = ["0.0.0.0/0"]', "is every address"),
        ('protect = ["::/0"]', "is every address"),
        (
            'protect = ["10.0.0.0/8"]',
            'wider than /16; exempting that many addresses from every ban must be meant: add "10.0.0.0/8" to wide_ok',
        ),
        ('protect = ["2001:db8::/32"]', "wider than /48"),
        ("protect = []", "lists no address"),
        ('protect = ["bad_host!"]', "neither an address nor a host name"),
        ('protect = ["203.0.113.4/24"]', "host bits set"),
        ('protect = ["203.0.113.4"]\nlayers = ["iptables"]', "unknown layer(s) iptables"),
        ('protect = ["203.0.113.4"]\nignoreip = "yes"', "'ignoreip' must be true or false"),
        ('protect = "203.0.113.4"', "'protect' must be a list of strings"),
        ('protect = ["203.0.113.4"]\nprotected = []', "unknown setting(s) protected"),
    ],
)
def test_refusals_say_why(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError, match=None) as caught:
        load(write(tmp_path, text + "\n"))
    assert message in str(caught.value)


def test_an_error_at_the_end_still_names_a_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'protect = ["203.0.113.4",\n')
    with pytest.raises(InputError, match="at line 1, end of file"):
        load(path)


def test_wide_entries_are_accepted_when_meant(tmp_path: Path) -> None:
    config = load(write(tmp_path, 'protect = ["10.0.0.0/8"]\nwide_ok = ["10.0.0.0/8"]\n'))
    assert [str(n) for n in config.addresses] == ["10.0.0.0/8"]


def test_a_config_others_can_write_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, 'protect = ["203.0.113.4"]\n', mode=0o666)
    with pytest.raises(InputError, match="writable by group or others"):
        load(path)
    path.chmod(0o644)
    tmp_path.chmod(0o777)
    try:
        with pytest.raises(InputError, match=f"{tmp_path} is writable by group or others"):
            check_trusted(path)
    finally:
        tmp_path.chmod(0o700)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_a_config_not_owned_by_root_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, 'protect = ["203.0.113.4"]\n')
    os.chown(path, 65534, 65534)
    with pytest.raises(InputError, match="is not owned by root"):
        load(path)


def test_hostnames_resolve_to_every_record() -> None:
    networks, problems = resolve_hostnames(["localhost", "no-such-host.invalid"])
    assert "127.0.0.1/32" in [str(n) for n in networks]
    assert len(problems) == 1 and problems[0].startswith("no-such-host.invalid: ")


@pytest.mark.parametrize(
    ("protect", "message"),
    [
        ('["::ffff:0.0.0.0/96"]', "/0 is every address"),
        ('["64:ff9b::/96"]', "every IPv4 address"),
        ('["2002::/16"]', "every IPv4 address"),
        ('["64:ff9b::a00:0/104"]', "(an IPv4 /8) is wider than /16; exempting that many"),
        ('["::ffff:10.0.0.0/104"]', 'add "10.0.0.0/8" to wide_ok'),
        ('["h\\u0131.example"]', "neither an address nor a host name"),
    ],
)
def test_embedded_ipv4_networks_are_as_wide_as_what_they_cover(
    tmp_path: Path, protect: str, message: str
) -> None:
    with pytest.raises(InputError) as caught:
        load(write(tmp_path, f"protect = {protect}\n"), check_owner=False)
    assert message in str(caught.value)


def test_wide_ok_admits_an_embedded_ipv4_network_that_is_meant(tmp_path: Path) -> None:
    text = 'protect = ["64:ff9b::a00:0/104"]\nwide_ok = ["64:ff9b::a00:0/104"]\n'
    config = load(write(tmp_path, text), check_owner=False)
    assert [str(n) for n in config.addresses] == ["64:ff9b::a00:0/104"]
