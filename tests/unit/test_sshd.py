"""sshd -T parsing and OpenSSH's user/host matching.

DUMP_92 is the real output of OpenSSH 9.2p1 (Debian 12) for

    Port 22 / Port 2222 / ListenAddress 203.0.113.1 / ListenAddress [2001:db8::1]:22
    MaxStartups 1:100:1 / PerSourceMaxStartups 3 / PerSourceNetBlockSize 24:64
    DenyUsers bob alice@203.0.113.*
    AllowUsers *@203.0.113.0/24,!203.0.113.9 root
    DenyGroups nogroup
    Match Address 203.0.113.4
      DenyUsers mallory carol@!203.0.113.4,*

run as `sshd -T -f CONFIG -C addr=203.0.113.4,user=root,host=203.0.113.4,laddr=203.0.113.1,
lport=22`: the Match block's DenyUsers replaced the global one.
"""

from __future__ import annotations

import pytest

from unban.sshd import (
    Listen,
    MaxStartups,
    PatternError,
    addr_match_list,
    check_user,
    connection_spec,
    dump_argv,
    in_exempt_list,
    listens_for,
    match_host_and_ip,
    match_pattern_list,
    match_user,
    parse_dump,
    parse_listen,
    parse_max_startups,
    session_binary,
)

DUMP_92 = """\
port 22
port 2222
addressfamily any
listenaddress 203.0.113.1:22
listenaddress 203.0.113.1:2222
listenaddress [2001:db8::1]:22
usepam no
logingracetime 120
x11displayoffset 10
maxauthtries 6
maxsessions 10
clientaliveinterval 0
clientalivecountmax 3
requiredrsasize 1024
streamlocalbindmask 0177
unusedconnectiontimeout none
permitrootlogin without-password
ignorerhosts yes
ignoreuserknownhosts no
hostbasedauthentication no
hostbasedusesnamefrompacketonly no
pubkeyauthentication yes
kerberosauthentication no
kerberosorlocalpasswd yes
kerberosticketcleanup yes
gssapiauthentication no
gssapicleanupcredentials yes
gssapikeyexchange no
gssapistrictacceptorcheck yes
gssapistorecredentialsonrekey no
gssapikexalgorithms gss-group14-sha256-,gss-group16-sha512-,gss-nistp256-sha256-,gss-curve25519-sha256-,gss-group14-sha1-,gss-gex-sha1-
passwordauthentication yes
kbdinteractiveauthentication yes
printmotd yes
printlastlog yes
x11forwarding no
x11uselocalhost yes
permittty yes
permituserrc yes
strictmodes yes
tcpkeepalive yes
permitemptypasswords no
compression yes
gatewayports no
usedns no
allowtcpforwarding yes
allowagentforwarding yes
disableforwarding no
allowstreamlocalforwarding yes
streamlocalbindunlink no
fingerprinthash SHA256
exposeauthinfo no
pidfile /run/sshd.pid
modulifile /etc/ssh/moduli
xauthlocation /usr/bin/xauth
ciphers chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com
macs umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1
banner none
forcecommand none
chrootdirectory none
trustedusercakeys none
revokedkeys none
securitykeyprovider internal
authorizedprincipalsfile none
versionaddendum none
authorizedkeyscommand none
authorizedkeyscommanduser none
authorizedprincipalscommand none
authorizedprincipalscommanduser none
hostkeyagent none
kexalgorithms sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256
casignaturealgorithms ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,sk-ssh-ed25519@openssh.com,sk-ecdsa-sha2-nistp256@openssh.com,rsa-sha2-512,rsa-sha2-256
hostbasedacceptedalgorithms ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com,ecdsa-sha2-nistp384-cert-v01@openssh.com,ecdsa-sha2-nistp521-cert-v01@openssh.com,sk-ssh-ed25519-cert-v01@openssh.com,sk-ecdsa-sha2-nistp256-cert-v01@openssh.com,rsa-sha2-512-cert-v01@openssh.com,rsa-sha2-256-cert-v01@openssh.com,ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,sk-ssh-ed25519@openssh.com,sk-ecdsa-sha2-nistp256@openssh.com,rsa-sha2-512,rsa-sha2-256
hostkeyalgorithms ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com,ecdsa-sha2-nistp384-cert-v01@openssh.com,ecdsa-sha2-nistp521-cert-v01@openssh.com,sk-ssh-ed25519-cert-v01@openssh.com,sk-ecdsa-sha2-nistp256-cert-v01@openssh.com,rsa-sha2-512-cert-v01@openssh.com,rsa-sha2-256-cert-v01@openssh.com,ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,sk-ssh-ed25519@openssh.com,sk-ecdsa-sha2-nistp256@openssh.com,rsa-sha2-512,rsa-sha2-256
pubkeyacceptedalgorithms ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com,ecdsa-sha2-nistp384-cert-v01@openssh.com,ecdsa-sha2-nistp521-cert-v01@openssh.com,sk-ssh-ed25519-cert-v01@openssh.com,sk-ecdsa-sha2-nistp256-cert-v01@openssh.com,rsa-sha2-512-cert-v01@openssh.com,rsa-sha2-256-cert-v01@openssh.com,ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,sk-ssh-ed25519@openssh.com,sk-ecdsa-sha2-nistp256@openssh.com,rsa-sha2-512,rsa-sha2-256
loglevel INFO
syslogfacility AUTH
authorizedkeysfile .ssh/authorized_keys .ssh/authorized_keys2
hostkey /tmp/exp/hk
allowusers *@203.0.113.0/24,!203.0.113.9
allowusers root
denyusers mallory
denyusers carol@!203.0.113.4,*
denygroups nogroup
authenticationmethods any
maxstartups 1:100:1
persourcemaxstartups 3
persourcenetblocksize 24:64
permittunnel no
ipqos lowdelay throughput
rekeylimit 0 0
permitopen any
permitlisten any
permituserenvironment no
pubkeyauthoptions none
"""

# OpenSSH 9.8 added these two lines (format of its servconf.c dump; not run here: 9.2 is
# what Debian 12 ships).
PENALTY_LINES = """\
persourcepenalties crash:90 authfail:5 noauth:1 grace-exceeded:10 max:600 min:15 max-sources4:65536 max-sources6:65536 overflow:permissive overflow6:permissive
persourcepenaltyexemptlist 198.51.100.0/24,203.0.113.4
"""


def test_parse_dump_92() -> None:
    config = parse_dump(DUMP_92)
    assert config.ports == (22, 2222)
    assert config.listen == (
        Listen("203.0.113.1", 22),
        Listen("203.0.113.1", 2222),
        Listen("2001:db8::1", 22),
    )
    assert config.allow_users == ("*@203.0.113.0/24,!203.0.113.9", "root")
    assert config.deny_users == ("mallory", "carol@!203.0.113.4,*")
    assert config.deny_groups == ("nogroup",)
    assert config.allow_groups == ()
    assert config.max_startups == MaxStartups(1, 100, 1)
    assert config.per_source_max_startups == 3
    assert config.per_source_netblock == (24, 64)
    assert config.use_dns is False
    assert config.permit_root_login == "without-password"
    # OpenSSH 9.2 has no penalties: absent, not "off"
    assert config.per_source_penalties is None
    assert config.penalty_exempt is None
    assert not config.has("persourcepenalties")


def test_defaults_when_unset() -> None:
    config = parse_dump("port 22\nmaxstartups 10:30:100\npersourcemaxstartups none\n")
    assert config.max_startups == MaxStartups(10, 30, 100)
    assert config.per_source_max_startups is None
    assert config.per_source_netblock == (32, 128)
    assert config.listen == ()


def test_penalties_when_present() -> None:
    config = parse_dump(DUMP_92 + PENALTY_LINES)
    assert config.per_source_penalties is not None
    assert config.per_source_penalties.startswith("crash:90")
    assert in_exempt_list(config, "203.0.113.4")
    assert in_exempt_list(config, "198.51.100.77")
    assert not in_exempt_list(config, "203.0.113.5")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10:30:100", MaxStartups(10, 30, 100)),
        ("1:100:1", MaxStartups(1, 100, 1)),
        ("20", MaxStartups(20, 100, 20)),
    ],
)
def test_parse_max_startups(text: str, expected: MaxStartups) -> None:
    assert parse_max_startups(text) == expected


def test_drop_percent_follows_sshd() -> None:
    ms = MaxStartups(10, 30, 100)
    assert ms.drop_percent(9) == 0
    assert ms.drop_percent(10) == 30
    assert ms.drop_percent(55) == 65
    assert ms.drop_percent(100) == 100
    assert MaxStartups(1, 100, 1).drop_percent(1) == 100
    assert MaxStartups(1, 100, 1).drop_percent(0) == 0


@pytest.mark.parametrize(
    ("text", "listen"),
    [
        ("0.0.0.0:22", Listen("0.0.0.0", 22)),
        ("[::]:22", Listen("::", 22)),
        ("[2001:db8::1]:2222", Listen("2001:db8::1", 2222)),
        ("203.0.113.1:22 rdomain blue", Listen("203.0.113.1", 22)),
        ("garbage", None),
    ],
)
def test_parse_listen(text: str, listen: Listen) -> None:
    assert parse_listen(text) == listen


def test_connection_spec_and_argv() -> None:
    spec = connection_spec("203.0.113.4", user="root", laddr="203.0.113.1", lport=22)
    assert spec == "addr=203.0.113.4,user=root,host=203.0.113.4,laddr=203.0.113.1,lport=22"
    assert connection_spec("2001:db8::4") == "addr=2001:db8::4,host=2001:db8::4"
    assert dump_argv("/usr/sbin/sshd", spec, "/tmp/c") == [
        "/usr/sbin/sshd",
        "-T",
        "-f",
        "/tmp/c",
        "-C",
        spec,
    ]


@pytest.mark.parametrize(
    ("address", "patterns", "result"),
    [
        ("203.0.113.4", "203.0.113.0/24", 1),
        ("203.0.113.4", "203.0.113.0/24,!203.0.113.4", -1),
        ("203.0.113.4", "!203.0.113.4,*", -1),
        ("203.0.113.5", "!203.0.113.4,*", 1),
        ("203.0.113.4", "203.0.113.*", 1),
        ("203.0.113.4", "198.51.100.0/24", 0),
        ("2001:db8::4", "2001:db8::/32", 1),
        ("2001:db8::4", "203.0.113.0/24", 0),
    ],
)
def test_addr_match_list(address: str, patterns: str, result: int) -> None:
    assert addr_match_list(address, patterns) == result


def test_addr_match_list_refuses_host_bits() -> None:
    with pytest.raises(PatternError):
        addr_match_list("203.0.113.4", "203.0.113.4/24")


def test_match_pattern_list() -> None:
    assert match_pattern_list("host.example.com", "*.example.com") == 1
    assert match_pattern_list("host.example.com", "*.EXAMPLE.com", lower=True) == 1
    assert match_pattern_list("host.example.com", "*.example.com,!host.*") == -1


@pytest.mark.parametrize(
    ("user", "address", "pattern", "matched"),
    [
        ("bob", "203.0.113.4", "bob", True),
        ("Bob", "203.0.113.4", "bob", False),  # user names are case-sensitive
        ("bob", "203.0.113.4", "b?b", True),
        ("bob", "203.0.113.4", "*", True),
        ("bob", "203.0.113.4", "!bob", False),  # no negation for the user part
        ("alice", "203.0.113.4", "alice@203.0.113.*", True),
        ("alice", "198.51.100.1", "alice@203.0.113.*", False),
        ("alice", "203.0.113.4", "alice@203.0.113.0/24", True),
        ("carol", "203.0.113.4", "carol@!203.0.113.4,*", False),
        ("carol", "203.0.113.5", "carol@!203.0.113.4,*", True),
        ("dave", "203.0.113.4", "*@203.0.113.0/24,!203.0.113.9", True),
        ("dave", "203.0.113.9", "*@203.0.113.0/24,!203.0.113.9", False),
        ("ed", "2001:db8::4", "ed@2001:db8::/64", True),
    ],
)
def test_match_user(user: str, address: str, pattern: str, matched: bool) -> None:
    assert match_user(user, address, address, pattern) is matched


def test_match_host_and_ip_by_name() -> None:
    assert match_host_and_ip("host.example.com", "203.0.113.4", "*.example.com")
    assert not match_host_and_ip("host.example.com", "203.0.113.4", "*.example.com,!203.0.113.4")


def test_check_user_deny_users_from_match_block() -> None:
    config = parse_dump(DUMP_92)
    access = check_user(config, "mallory", "203.0.113.4", groups=["mallory"])
    assert access.allowed is False
    assert access.directive == "DenyUsers"
    assert access.pattern == "mallory"


def test_check_user_allow_users() -> None:
    config = parse_dump(DUMP_92)
    assert check_user(config, "dave", "203.0.113.4", groups=["dave"]).allowed is True
    # root is allowed by AllowUsers, and PermitRootLogin without-password lets keys in
    root = check_user(config, "root", "203.0.113.4", groups=["root"])
    assert root.allowed is True
    assert "key only" in root.reason
    outside = check_user(config, "dave", "203.0.113.9", groups=["dave"])
    assert outside.allowed is False
    assert outside.directive == "AllowUsers"


def test_check_user_groups() -> None:
    config = parse_dump(DUMP_92)
    denied = check_user(config, "dave", "203.0.113.4", groups=["dave", "nogroup"])
    assert denied.allowed is False and denied.directive == "DenyGroups"
    unknown = check_user(config, "dave", "203.0.113.4", groups=None)
    assert unknown.allowed is None
    allow_groups = parse_dump("allowgroups wheel\nallowgroups adm\n")
    assert check_user(allow_groups, "eve", "203.0.113.4", groups=["eve"]).allowed is False
    assert check_user(allow_groups, "eve", "203.0.113.4", groups=["eve", "adm"]).allowed


def test_check_user_without_a_name() -> None:
    config = parse_dump(DUMP_92)
    access = check_user(config, None, "203.0.113.4")
    assert access.allowed is None
    assert "--user" in access.reason
    assert check_user(parse_dump("port 22\n"), None, "203.0.113.4").allowed is True


def test_check_user_missing_user_and_root_login() -> None:
    config = parse_dump("permitrootlogin no\n")
    assert check_user(config, "ghost", "203.0.113.4", exists=False).allowed is False
    root = check_user(config, "root", "203.0.113.4", groups=["root"])
    assert root.allowed is False and root.directive == "PermitRootLogin"


def test_check_user_use_dns_compares_the_name() -> None:
    config = parse_dump("usedns yes\ndenyusers *@*.example.com\n")
    by_name = check_user(config, "u", "203.0.113.4", hostname="h.example.com", groups=["u"])
    assert by_name.allowed is False
    no_dns = parse_dump("usedns no\ndenyusers *@*.example.com\n")
    assert check_user(no_dns, "u", "203.0.113.4", hostname="h.example.com", groups=["u"]).allowed


def test_listens_for() -> None:
    config = parse_dump(DUMP_92)
    assert listens_for(config, 4, 22, "203.0.113.1")[0]
    assert listens_for(config, 6, 22, "2001:db8::1")[0]
    ok, why = listens_for(config, 6, 2222, None)
    assert not ok and "port 22" in why
    ok, why = listens_for(config, 4, 22, "198.51.100.1")
    assert not ok and "not on 198.51.100.1" in why
    wildcard = parse_dump("port 22\nlistenaddress [::]:22\nlistenaddress 0.0.0.0:22\n")
    assert listens_for(wildcard, 4, 22, "198.51.100.1")[0]
    inet = parse_dump("addressfamily inet\nlistenaddress 0.0.0.0:22\n")
    ok, why = listens_for(inet, 6, 22, None)
    assert not ok and "AddressFamily inet" in why


def test_session_binary_is_where_connections_are_served() -> None:
    ten = parse_dump("sshdsessionpath /usr/lib/openssh/sshd-session\nport 22\n")
    assert session_binary("/usr/sbin/sshd", ten) == "/usr/lib/openssh/sshd-session"
    nine = parse_dump("port 22\n")  # before 9.8: sshd serves each connection itself
    assert session_binary("/usr/sbin/sshd", nine) == "/usr/sbin/sshd"


def test_penalty_max() -> None:
    assert parse_dump("persourcepenalties crash:90 max:120 min:5\n").penalty_max == 120
    assert parse_dump("persourcepenalties crash:90\n").penalty_max == 600
