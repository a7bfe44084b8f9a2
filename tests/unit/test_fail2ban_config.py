"""Reading fail2ban's config as fail2ban does: file order, includes, merging, interpolation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conffiles import write
from unban.fail2ban.config import (
    ConfigError,
    action_names,
    config_files,
    jail_configs,
    parse_dump,
    read_tree,
    server_paths,
    splitwords,
)


def test_file_order_conf_d_conf_local_d_local(tmp_path: Path) -> None:
    confdir = write(
        tmp_path,
        {
            "jail.conf": "[sshd]\nignoreip = from-conf\n",
            "jail.d/b.conf": "[sshd]\nignoreip = from-b-conf\n",
            "jail.d/a.conf": "[sshd]\nignoreip = from-a-conf\n",
            "jail.local": "[sshd]\nignoreip = from-local\n",
            "jail.d/z.local": "[sshd]\nignoreip = from-z-local\n",
            "jail.d/m.local": "[sshd]\nbantime = 1\n",
        },
    )
    names = [Path(p).relative_to(tmp_path).as_posix() for p in config_files(confdir, "jail")]
    assert names == [
        "jail.conf",
        "jail.d/a.conf",
        "jail.d/b.conf",
        "jail.local",
        "jail.d/m.local",
        "jail.d/z.local",
    ]
    tree = read_tree(confdir, "jail")
    assert tree.get("sshd", "ignoreip") == "from-z-local"
    origin = tree.origin("sshd", "ignoreip")
    assert origin is not None and origin.path.endswith("jail.d/z.local") and origin.line == 2


def test_jail_own_ignoreip_replaces_default(tmp_path: Path) -> None:
    confdir = write(
        tmp_path,
        {
            "jail.conf": "[DEFAULT]\nignoreip = 127.0.0.1/8\n[sshd]\nenabled = true\n[web]\n",
            "jail.local": "[DEFAULT]\nignoreip = 10.0.0.1\n[web]\nenabled = yes\nignoreip = 10.0.0.2\n",
        },
    )
    tree = read_tree(confdir, "jail")
    assert tree.get("sshd", "ignoreip") == "10.0.0.1"
    assert tree.get("web", "ignoreip") == "10.0.0.2"
    assert not tree.own("sshd", "ignoreip") and tree.own("web", "ignoreip")
    configs = {j.name: j for j in jail_configs(tree)}
    assert configs["sshd"].enabled and configs["web"].enabled
    assert configs["sshd"].ignoreip_origin is not None
    assert configs["sshd"].ignoreip_origin.section == "DEFAULT"


def test_interpolation_names_known_default_section(tmp_path: Path) -> None:
    confdir = write(
        tmp_path,
        {
            "jail.conf": (
                "[DEFAULT]\nbase = 10.0.0.0/8\nignoreip = %(base)s ::1\n"
                "filter = %(__name__)s[mode=normal]\n"
                "[sshd]\nignoreip = 192.0.2.1\nport = 22\n"
                "[other]\nignoreip = %(sshd/port)s %(default/base)s 100%%\n"
            ),
            "jail.local": "[sshd]\nignoreip = %(known/ignoreip)s 203.0.113.4\n"
            "[fresh]\nignoreip = %(known/ignoreip)s 198.51.100.1\n",
        },
    )
    tree = read_tree(confdir, "jail")
    assert tree.get("sshd", "ignoreip") == "192.0.2.1 203.0.113.4"
    # known/ with no earlier value in the section falls back to [DEFAULT], as fail2ban does
    assert tree.get("fresh", "ignoreip") == "10.0.0.0/8 ::1 198.51.100.1"
    assert tree.get("other", "ignoreip") == "22 10.0.0.0/8 100%"
    assert tree.get("sshd", "filter") == "sshd[mode=normal]"


def test_interpolation_errors(tmp_path: Path) -> None:
    confdir = write(tmp_path, {"jail.conf": "[a]\nx = %(missing)s\ny = %(y)s\nz = 5%\n"})
    tree = read_tree(confdir, "jail")
    with pytest.raises(ConfigError, match="not defined"):
        tree.get("a", "x")
    with pytest.raises(ConfigError, match="deeper"):
        tree.get("a", "y")
    with pytest.raises(ConfigError, match="bad '%'"):
        tree.get("a", "z")


def test_includes_before_after_and_local_sibling(tmp_path: Path) -> None:
    confdir = write(
        tmp_path,
        {
            "jail.conf": "[INCLUDES]\nbefore = paths.conf\n[DEFAULT]\nlogdir = from-jail\n",
            "paths.conf": "[INCLUDES]\nafter = paths-overrides.local\n[DEFAULT]\nlogdir = p\nx = 1\n",
            "paths.local": "[DEFAULT]\nx = from-paths-local\n",
            "paths-overrides.local": "[DEFAULT]\ny = over\nx = from-overrides\n",
        },
    )
    tree = read_tree(confdir, "jail")
    order = [Path(f.path).name for f in tree.files]
    # as fail2ban: a file's `after` includes come before its .local sibling
    assert order == ["paths.conf", "paths-overrides.local", "paths.local", "jail.conf"]
    assert tree.defaults["logdir"] == "from-jail"  # the including file comes after
    assert tree.defaults["x"] == "from-paths-local"
    assert tree.defaults["y"] == "over"


def test_continuation_lines_comments_and_inline_semicolon(tmp_path: Path) -> None:
    confdir = write(
        tmp_path,
        {
            "jail.local": (
                "[DEFAULT]\n"
                "ignoreip = 127.0.0.1/8 ::1 ; loopback\n"
                "    # a full-line comment inside the value\n"
                "    10.0.0.0/8,192.0.2.1\n"
                "    ; another\n"
                "    2001:db8::/32 # not a comment for fail2ban\n"
            )
        },
    )
    tree = read_tree(confdir, "jail")
    assert splitwords(tree.get("DEFAULT", "ignoreip")) == [
        "127.0.0.1/8",
        "::1",
        "10.0.0.0/8",
        "192.0.2.1",
        "2001:db8::/32",
        "#",
        "not",
        "a",
        "comment",
        "for",
        "fail2ban",
    ]


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("[sshd]\nenabled = true\nthis is not ini\n", 3, "cannot parse"),
        ("[sshd]\na = 1\n[sshd]\nb = 2\n", 3, "already exists"),
        ("[sshd]\na = 1\na = 2\n", 3, "already exists"),
        ("a = 1\n", 1, "section header"),
    ],
)
def test_parse_errors_name_file_and_line(tmp_path: Path, text: str, line: int, what: str) -> None:
    confdir = write(tmp_path, {"jail.conf": "[DEFAULT]\n", "jail.local": text})
    with pytest.raises(ConfigError) as caught:
        read_tree(confdir, "jail")
    message = str(caught.value)
    assert f"{tmp_path}/jail.local, line {line}" in message and what in message


def test_overrides_replace_files_without_writing(tmp_path: Path) -> None:
    confdir = write(tmp_path, {"jail.conf": "[sshd]\nignoreip = a\n"})
    local = str(tmp_path / "jail.local")
    tree = read_tree(confdir, "jail", {local: "[sshd]\nignoreip = b\n"})
    assert tree.get("sshd", "ignoreip") == "b"
    assert not Path(local).exists()


def test_conditional_sections_do_not_touch_plain_options(tmp_path: Path) -> None:
    confdir = write(tmp_path, {"jail.conf": "[Init]\nx = 1\n[Init?family=inet6]\nx = 6\n"})
    tree = read_tree(confdir, "jail")
    assert tree.sections["Init"] == {"x": "1", "x?family=inet6": "6"}


def test_action_names() -> None:
    value = (
        'iptables-multiport[port="ssh", protocol="tcp", chain="<known/chain>"]\n'
        'sendmail-whois[dest="a@b", sender="x"]\n'
        "route[blocktype=blackhole, actname=myroute]\n"
        "smtp.py[host=localhost]"
    )
    assert action_names(value) == ("iptables-multiport", "sendmail-whois", "myroute", "smtp")


def test_jail_configs_resolve_actions_like_jail_conf(tmp_path: Path) -> None:
    confdir = write(
        tmp_path,
        {
            "jail.conf": (
                "[DEFAULT]\nbanaction = iptables-multiport\nbanaction_allports = iptables-allports\n"
                'port = 0:65535\naction_ = %(banaction)s[port="%(port)s"]\naction = %(action_)s\n'
                "[sshd]\nport = ssh\n[recidive]\nbanaction = %(banaction_allports)s\n"
            ),
            "jail.local": "[DEFAULT]\nbanaction = nftables-multiport\n[sshd]\nenabled = true\n",
        },
    )
    configs = {j.name: j for j in jail_configs(read_tree(confdir, "jail"))}
    assert configs["sshd"].actions == ("nftables-multiport",)
    assert configs["recidive"].actions == ("iptables-allports",)
    assert not configs["recidive"].enabled


def test_server_paths_from_definition_and_default(tmp_path: Path) -> None:
    confdir = write(
        tmp_path,
        {
            "fail2ban.conf": "[DEFAULT]\nsocket = /run/f.sock\npidfile = /run/f.pid\n"
            "dbfile = /var/lib/f.db\n[Definition]\n",
            "fail2ban.d/10.local": "[Definition]\nsocket = /tmp/x.sock\n",
        },
    )
    paths = server_paths(confdir)
    assert (paths.socket, paths.pidfile, paths.dbfile) == (
        "/tmp/x.sock",
        "/run/f.pid",
        "/var/lib/f.db",
    )
    write(tmp_path, {"fail2ban.local": "[Definition]\ndbfile = :memory:\n"})
    assert server_paths(confdir).dbfile is None


def test_parse_dump() -> None:
    dump = "\n".join(
        [
            "['set', 'loglevel', 'INFO']",
            "['add', 'sshd', 'polling']",
            "['set', 'sshd', 'addignoreip', '127.0.0.1/8', '::1']",
            "['set', 'sshd', 'addaction', 'route']",
            "['multi-set', 'sshd', 'action', 'route', [['actionban', 'ip route add <blocktype> <ip>'],"
            " ['actionunban', 'ip route del <blocktype> <ip>']]]",
            "['start', 'sshd']",
            "garbage",
        ]
    )
    view = parse_dump(dump)
    assert view["sshd"].ignoreip == ("127.0.0.1/8", "::1")
    assert view["sshd"].actions == ("route",)
    assert view["sshd"].unban_commands == ("ip route del <blocktype> <ip>",)


FAIL2BAN_PYTHON = "/usr/bin/python3"
_THEIRS = """
import json, sys
from fail2ban.client.configreader import ConfigReaderUnshared
c = ConfigReaderUnshared(basedir=sys.argv[1])
c.read("jail")
out = {}
for section in c.sections():
    if section.startswith("KNOWN/") or section == "INCLUDES":
        continue
    try:
        out[section] = c.get(section, "ignoreip")
    except Exception as exc:
        out[section] = "ERROR " + type(exc).__name__
print(json.dumps(out))
"""


def _fail2bans_view(confdir: str) -> dict[str, str]:
    import json
    import subprocess

    proc = subprocess.run(
        [FAIL2BAN_PYTHON, "-c", _THEIRS, confdir], capture_output=True, text=True, check=True
    )
    return dict(json.loads(proc.stdout))


def _have_fail2ban() -> bool:
    import subprocess

    try:
        return (
            subprocess.run(
                [FAIL2BAN_PYTHON, "-c", "import fail2ban"], capture_output=True
            ).returncode
            == 0
        )
    except OSError:
        return False


@pytest.mark.skipif(not _have_fail2ban(), reason="fail2ban's Python package is not installed")
@pytest.mark.parametrize(
    "files",
    [
        {
            "jail.conf": "[DEFAULT]\nignoreip = 127.0.0.1/8\n[sshd]\n[web]\nignoreip = 1.1.1.1\n",
            "jail.d/a.conf": "[sshd]\nignoreip = %(known/ignoreip)s 2.2.2.2\n",
            "jail.local": "[DEFAULT]\nignoreip = %(base)s 3.3.3.3\nbase = 4.4.4.4\n"
            "[web]\nignoreip = %(known/ignoreip)s\n    # comment\n    5.5.5.5 ; six\n",
            "jail.d/z.local": "[sshd]\nignoreip = %(known/ignoreip)s %(web/ignoreip)s\n",
        },
        {
            "jail.conf": "[INCLUDES]\nbefore = p.conf\n[DEFAULT]\nignoreip = %(site)s\n[a]\n[b]\n",
            "p.conf": "[INCLUDES]\nafter = p-o.local\n[DEFAULT]\nsite = 10.0.0.0/8\n",
            "p.local": "[DEFAULT]\nsite = 10.1.0.0/16 %(__name__)s\n",
            "p-o.local": "[DEFAULT]\nsite = never\n",
            "jail.local": "[b]\nignoreip = %(default/ignoreip)s 100%%\n",
        },
    ],
)
def test_matches_fail2bans_own_reader(tmp_path: Path, files: dict[str, str]) -> None:
    confdir = write(tmp_path, files)
    theirs = _fail2bans_view(confdir)
    tree = read_tree(confdir, "jail")
    ours = {}
    for section in tree.jails():
        try:
            ours[section] = tree.get(section, "ignoreip")
        except ConfigError:
            ours[section] = "ERROR"
    assert ours == {k: ("ERROR" if str(v).startswith("ERROR") else v) for k, v in theirs.items()}


@pytest.mark.skipif(not _have_fail2ban(), reason="fail2ban's Python package is not installed")
def test_matches_fail2bans_own_reader_on_the_package_config(tmp_path: Path) -> None:
    import shutil

    package = Path("/etc/fail2ban")
    for name in ("jail.conf", "paths-common.conf", "paths-debian.conf"):
        shutil.copy(package / name, tmp_path / name)
    write(tmp_path, {"jail.local": "[DEFAULT]\nignoreip = 127.0.0.1/8 ::1\n    192.0.2.0/24\n"})
    theirs = _fail2bans_view(str(tmp_path))
    tree = read_tree(str(tmp_path), "jail")
    assert {s: tree.get(s, "ignoreip") for s in tree.jails()} == theirs
