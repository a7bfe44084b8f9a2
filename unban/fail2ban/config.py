"""fail2ban's configuration, read the way fail2ban 1.0 reads it, remembering where values come from.

What fail2ban does (client/configreader.py, client/configparserinc.py), and so this module:
- `NAME` is read from NAME.conf, NAME.d/*.conf (sorted), NAME.local, NAME.d/*.local (sorted);
  later files win. Each file may pull in others with `[INCLUDES] before = / after =`, and an
  included file brings its `.local` sibling along.
- Each file is parsed alone by Python's ConfigParser (no interpolation yet, `;` starts an inline
  comment, duplicate sections or options in one file are errors); then the files are merged:
  [DEFAULT] options into the defaults, sections option by option. A value a later file overrides
  stays reachable as `%(known/OPTION)s` (section `KNOWN/<section>`).
- Values are interpolated when read: `%(option)s` from the section or the defaults, `%(__name__)s`
  the section's name, `%(default/option)s`, `%(known/option)s` (falls back to the default) and
  `%(section/option)s`; `%%` is a percent sign.
- A jail's ignoreip is its own, or [DEFAULT]'s; its entries are split on spaces, commas and
  newlines (helpers.splitwords).

Everything here is pure except `read_tree`, which reads files (and accepts overrides, so a
planned edit can be checked before it is written).
"""

from __future__ import annotations

import configparser
import glob
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Optional

from unban.errors import InputError

INCLUDES = "INCLUDES"
_SECTION_OPT = re.compile(r"%\(([\w\-]+/([^)]+))\)s")
_CONDITIONAL = re.compile(r"^(\w+)(\?.+)$")
_INTERPOLATE = re.compile(r"%\(([^)]+)\)s")
MAX_DEPTH = 10


class ConfigError(InputError):
    """A config file fail2ban could not read either (says file and line)."""


@dataclass(frozen=True)
class Origin:
    """Where an option's value was set: file, section as written there, and line."""

    path: str
    section: str
    line: int


@dataclass
class ParsedFile:
    path: str
    defaults: dict[str, str]
    sections: dict[str, dict[str, str]]  # in file order
    lines: dict[tuple[str, str], int]  # (section, option) -> line number
    includes_before: list[str] = field(default_factory=list)
    includes_after: list[str] = field(default_factory=list)


def _parser() -> configparser.ConfigParser:
    return configparser.ConfigParser(
        interpolation=None, inline_comment_prefixes=(";",), strict=True
    )


def parse_text(text: str, path: str) -> ParsedFile:
    """Parse one file as fail2ban's ConfigParser does; ConfigError with file and line if not."""
    parser = _parser()
    try:
        parser.read_string(text, source=path)
    except (
        configparser.DuplicateSectionError,
        configparser.DuplicateOptionError,
        configparser.MissingSectionHeaderError,
    ) as exc:
        lineno = getattr(exc, "lineno", None) or "?"
        reason = str(exc).split("]: ", 1)[-1].replace("\n", " ")
        if isinstance(exc, configparser.MissingSectionHeaderError):
            reason = f"no section header before {exc.line.strip()!r}"
        raise ConfigError(
            f"{path}, line {lineno}: {reason}; fix the file first, unban changes nothing "
            "until it parses"
        ) from None
    except configparser.ParsingError as exc:
        first_lineno, first_line = exc.errors[0]
        raise ConfigError(
            f"{path}, line {first_lineno}: cannot parse {first_line.strip()}; fix the file "
            "first, unban changes nothing until it parses"
        ) from None
    except configparser.Error as exc:
        raise ConfigError(f"{path}: {exc}".replace("\n", " ")) from None
    defaults = dict(parser._defaults)  # type: ignore[attr-defined]
    sections = {name: dict(parser._sections[name]) for name in parser.sections()}  # type: ignore[attr-defined]
    parsed = ParsedFile(path, defaults, sections, option_lines(text))
    if INCLUDES in sections:
        directory = os.path.dirname(path)
        for key, target in (("before", parsed.includes_before), ("after", parsed.includes_after)):
            raw = sections[INCLUDES].get(key)
            if raw:
                for name in raw.split("\n"):
                    name = name.strip()
                    if name:
                        target.append(
                            name if os.path.isabs(name) else os.path.join(directory, name)
                        )
    return parsed


_SECTION_LINE = re.compile(r"^\[(?P<name>[^\]]+)\]")
_OPTION_LINE = re.compile(r"^(?P<key>[^\s=:;#\[][^=:]*?)\s*[=:]")


def option_lines(text: str) -> dict[tuple[str, str], int]:
    """(section, lowercased option) -> the line its definition starts on."""
    result: dict[tuple[str, str], int] = {}
    section = ""
    for number, line in enumerate(text.splitlines(), 1):
        match = _SECTION_LINE.match(line)
        if match:
            section = match.group("name")
            continue
        match = _OPTION_LINE.match(line)
        if match:
            result.setdefault((section, match.group("key").strip().lower()), number)
    return result


def config_files(confdir: str, name: str) -> list[str]:
    """NAME.conf, NAME.d/*.conf, NAME.local, NAME.d/*.local: those that exist, in that order."""
    base = os.path.join(confdir, name)
    files = [base + ".conf"]
    files += sorted(glob.glob(glob.escape(base + ".d") + "/*.conf"))
    files.append(base + ".local")
    files += sorted(glob.glob(glob.escape(base + ".d") + "/*.local"))
    return [f for f in files if os.path.exists(f)]


@dataclass
class Tree:
    """Every file of one config name, merged as fail2ban merges them."""

    confdir: str
    files: list[ParsedFile]
    defaults: dict[str, str] = field(default_factory=dict)
    sections: dict[str, dict[str, str]] = field(default_factory=dict)
    origins: dict[tuple[str, str], Origin] = field(default_factory=dict)  # ("DEFAULT", opt) too
    history: dict[tuple[str, str], list[Origin]] = field(default_factory=dict)

    # -- reading values

    def raw(self, section: str, option: str) -> Optional[str]:
        option = option.lower()
        value = self.sections.get(section, {}).get(option)
        if value is None:
            value = self.defaults.get(option)
        return value

    def own(self, section: str, option: str) -> bool:
        """True when `section` sets `option` itself (not through [DEFAULT])."""
        return option.lower() in self.sections.get(section, {})

    def get(
        self, section: str, option: str, extra: Optional[Mapping[str, str]] = None
    ) -> Optional[str]:
        """The interpolated value, or None when neither the section nor [DEFAULT] has it."""
        value = self.raw(section, option)
        if value is None:
            return None
        return self.interpolate(section, option, value, extra or {})

    def origin(self, section: str, option: str) -> Optional[Origin]:
        """Where the value `get` returns was set (the section's own, else [DEFAULT]'s)."""
        option = option.lower()
        if self.own(section, option):
            return self.origins.get((section, option))
        return self.origins.get(("DEFAULT", option))

    def jails(self) -> list[str]:
        return [s for s in self.sections if s != INCLUDES and not s.startswith("KNOWN/")]

    def enabled(self, section: str) -> bool:
        value = (self.get(section, "enabled", _STATIC) or "false").strip().lower()
        return value in ("1", "yes", "true", "on")

    # -- interpolation, as BasicInterpolation plus fail2ban's section/option names

    def interpolate(
        self, section: str, option: str, value: str, extra: Mapping[str, str], depth: int = 0
    ) -> str:
        if depth > MAX_DEPTH:
            raise ConfigError(
                f"[{section}] {option}: interpolation deeper than {MAX_DEPTH} levels (a loop?)"
            )
        out: list[str] = []
        rest = value
        while rest:
            pos = rest.find("%")
            if pos < 0:
                out.append(rest)
                break
            out.append(rest[:pos])
            rest = rest[pos:]
            if rest.startswith("%%"):
                out.append("%")
                rest = rest[2:]
                continue
            match = _INTERPOLATE.match(rest)
            if not match:
                raise ConfigError(f"[{section}] {option}: bad '%' in {value!r} (use %% for %)")
            name = match.group(1)
            rest = rest[match.end() :]
            replacement = self._lookup(section, name, extra)
            if replacement is None:
                raise ConfigError(f"[{section}] {option}: %({name})s is not defined (in {value!r})")
            if "%" in replacement:
                replacement = self.interpolate(section, option, replacement, extra, depth + 1)
            out.append(replacement)
        return "".join(out)

    def _lookup(self, section: str, name: str, extra: Mapping[str, str]) -> Optional[str]:
        key = name.lower() if "/" not in name else name
        if key in extra:
            return extra[key]
        if key == "__name__":
            return section
        if "/" in key:
            sec, _, opt = key.partition("/")
            opt = opt.lower()
            lowered = sec.lower()
            if lowered == "known":
                known = self.sections.get(f"KNOWN/{section}", {})
                if opt in known:
                    return known[opt]
                return self.defaults.get(opt)
            if lowered == "default":
                return self.defaults.get(opt)
            other = self.sections.get(sec)
            if other is not None and opt in other:
                return other[opt]
            return self.defaults.get(opt)
        own = self.sections.get(section, {})
        if key in own:
            return own[key]
        return self.defaults.get(key)


_STATIC = {"fail2ban_version": "1.0.2"}


def read_tree(confdir: str, name: str, overrides: Optional[Mapping[str, str]] = None) -> Tree:
    """Read NAME's files under `confdir` (with `overrides`: path -> text instead of the file)."""
    overrides = dict(overrides or {})
    top = config_files(confdir, name)
    for path in overrides:
        if path not in top and _is_top_level(confdir, name, path):
            top.append(path)
    top = _order(confdir, name, top)
    tree = Tree(confdir, [])
    cache: dict[str, Optional[ParsedFile]] = {}

    def load(path: str) -> Optional[ParsedFile]:
        if path not in cache:
            if path in overrides:
                cache[path] = parse_text(overrides[path], path)
            elif os.path.isfile(path):
                try:
                    with open(path, encoding="utf-8") as handle:
                        text = handle.read()
                except UnicodeDecodeError as exc:
                    raise ConfigError(f"{path}: not UTF-8 ({exc.reason})") from None
                except OSError as exc:
                    raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from None
                cache[path] = parse_text(text, path)
            else:
                cache[path] = None
        return cache[path]

    def expand(paths: list[str], seen: list[str]) -> Iterator[str]:
        with_local: list[str] = []
        for path in paths:
            with_local.append(path)
            local = os.path.splitext(path)[0] + ".local"
            if local not in paths and (os.path.isfile(local) or local in overrides):
                with_local.append(local)
        for path in with_local:
            parsed = load(path)
            if parsed is None:
                continue
            for inc in parsed.includes_before:
                if inc not in seen:
                    yield from expand([inc], [*seen, path])
            yield path
            for inc in parsed.includes_after:
                if inc not in seen:
                    yield from expand([inc], [*seen, path])

    for path in expand(top, []):
        parsed = load(path)
        assert parsed is not None
        tree.files.append(parsed)
        _merge(tree, parsed)
    return tree


def _is_top_level(confdir: str, name: str, path: str) -> bool:
    base = os.path.join(confdir, name)
    if path in (base + ".conf", base + ".local"):
        return True
    return os.path.dirname(path) == base + ".d" and path.endswith((".conf", ".local"))


def _order(confdir: str, name: str, files: list[str]) -> list[str]:
    base = os.path.join(confdir, name)

    def rank(path: str) -> tuple[int, str]:
        if path == base + ".conf":
            return (0, "")
        if path == base + ".local":
            return (2, "")
        return (1 if path.endswith(".conf") else 3, os.path.basename(path))

    return sorted(set(files), key=rank)


def _merge(tree: Tree, parsed: ParsedFile) -> None:
    for option, value in parsed.defaults.items():
        tree.defaults[option] = value
        origin = Origin(parsed.path, "DEFAULT", parsed.lines.get(("DEFAULT", option), 0))
        tree.origins[("DEFAULT", option)] = origin
        tree.history.setdefault(("DEFAULT", option), []).append(origin)
    for written, options in parsed.sections.items():
        name = written
        options = dict(options)
        cond = _CONDITIONAL.match(written)
        if cond:
            name, suffix = cond.groups()
            options = {k + suffix: v for k, v in options.items()}
        existing = tree.sections.get(name)
        if existing is not None:
            known = tree.sections.setdefault(f"KNOWN/{name}", {})
            known.update({k: v for k, v in existing.items() if k in options})
            existing.update(options)
        else:
            tree.sections[name] = dict(options)
        for option in options:
            origin = Origin(
                parsed.path, written, parsed.lines.get((written, option.split("?")[0]), 0)
            )
            tree.origins[(name, option)] = origin
            tree.history.setdefault((name, option), []).append(origin)


def static_values(tree: Tree) -> dict[str, str]:
    """The values fail2ban's reader has without any file setting them, for interpolation."""
    return {"fail2ban_version": "1.0.2", "fail2ban_confpath": tree.confdir}


def splitwords(value: Optional[str]) -> list[str]:
    """fail2ban's helpers.splitwords: split on commas, spaces and newlines."""
    if not value:
        return []
    return [v.strip() for v in re.split(r"[ ,\n]+", value) if v.strip()]


# ---------------------------------------------------------------- fail2ban.conf


@dataclass(frozen=True)
class ServerPaths:
    """What fail2ban.conf / fail2ban.local say about the server's files."""

    socket: str
    pidfile: str
    dbfile: Optional[str]  # None when the database is off (":memory:" or "None")
    logtarget: str


def server_paths(confdir: str) -> ServerPaths:
    tree = read_tree(confdir, "fail2ban")

    def value(option: str, default: str) -> str:
        got = tree.get("Definition", option) if "Definition" in tree.sections else None
        if got is None:
            got = tree.get("DEFAULT", option) if option in tree.defaults else None
        return (got or default).strip()

    dbfile: Optional[str] = value("dbfile", "/var/lib/fail2ban/fail2ban.sqlite3")
    if dbfile is not None and dbfile.lower() in (":memory:", "none", ""):
        dbfile = None
    return ServerPaths(
        socket=value("socket", "/var/run/fail2ban/fail2ban.sock"),
        pidfile=value("pidfile", "/var/run/fail2ban/fail2ban.pid"),
        dbfile=dbfile,
        logtarget=value("logtarget", "/var/log/fail2ban.log"),
    )


# ---------------------------------------------------------------- jails


@dataclass(frozen=True)
class JailConfig:
    """A jail as the config defines it (what `fail2ban-client -d` would start)."""

    name: str
    enabled: bool
    ignoreip: tuple[str, ...]
    ignoreip_origin: Optional[Origin]
    actions: tuple[str, ...]  # action names (file names, or actname=...)


_ACTION_NAME = re.compile(r"^\s*([\w\-.]+)")


def action_names(value: Optional[str]) -> tuple[str, ...]:
    """Names of the actions in an interpolated `action` value (`name[opts]` per line)."""
    names: list[str] = []
    for chunk in _split_actions(value or ""):
        match = _ACTION_NAME.match(chunk)
        if not match:
            continue
        name = match.group(1)
        actname = re.search(r"actname\s*=\s*[\"']?([\w\-.]+)", chunk)
        if actname:
            name = actname.group(1)
        elif name.endswith(".py"):
            name = name[:-3]
        names.append(name)
    return tuple(names)


def _split_actions(value: str) -> Iterator[str]:
    """Split on newlines outside brackets and quotes (helpers.splitWithOptions)."""
    depth = 0
    quote = ""
    current: list[str] = []
    for char in value:
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth = max(0, depth - 1)
        elif char == "\n" and depth == 0:
            yield "".join(current)
            current = []
            continue
        current.append(char)
    if current:
        yield "".join(current)


def jail_configs(tree: Tree) -> list[JailConfig]:
    """Every jail section, enabled or not, with its effective ignoreip and actions."""
    result = []
    static = {"fail2ban_version": "1.0.2", "fail2ban_confpath": tree.confdir}
    for name in tree.jails():
        if name == "DEFAULT":
            continue
        enabled = tree.enabled(name)
        try:
            ignoreip = tuple(splitwords(tree.get(name, "ignoreip", static)))
        except ConfigError:
            if enabled:
                raise
            ignoreip = ()
        try:
            actions = action_names(tree.get(name, "action", static))
        except ConfigError:
            actions = ()
        result.append(JailConfig(name, enabled, ignoreip, tree.origin(name, "ignoreip"), actions))
    return result


# ---------------------------------------------------------------- fail2ban's own view


@dataclass(frozen=True)
class JailView:
    """A jail as fail2ban-client would set it up (from `fail2ban-client -d`)."""

    name: str
    ignoreip: tuple[str, ...]
    actions: tuple[str, ...]
    unban_commands: tuple[str, ...]  # each action's actionunban, where it has one


def parse_dump(text: str) -> dict[str, JailView]:
    """Parse `fail2ban-client -c DIR -d`: one Python list literal per line."""
    import ast

    jails: dict[str, dict[str, list[str]]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("["):
            continue
        try:
            command = ast.literal_eval(line)
        except (ValueError, SyntaxError):
            continue
        if not isinstance(command, list) or len(command) < 2:
            continue
        if command[0] == "add":
            jails.setdefault(str(command[1]), {"ignoreip": [], "actions": [], "unban": []})
        elif command[0] == "set" and len(command) >= 3 and command[1] in jails:
            jail = jails[command[1]]
            if command[2] == "addignoreip":
                jail["ignoreip"].extend(str(v) for v in command[3:])
            elif command[2] == "addaction" and len(command) >= 4:
                jail["actions"].append(str(command[3]))
        elif command[0] == "multi-set" and len(command) >= 5 and command[1] in jails:
            if command[2] == "action" and isinstance(command[4], list):
                for pair in command[4]:
                    if isinstance(pair, list) and len(pair) == 2 and pair[0] == "actionunban":
                        jails[command[1]]["unban"].append(str(pair[1]))
    return {
        name: JailView(name, tuple(v["ignoreip"]), tuple(v["actions"]), tuple(v["unban"]))
        for name, v in jails.items()
    }


def fail2ban_view(confdir: str) -> dict[str, JailView]:
    """The enabled jails as fail2ban itself parses the config (`fail2ban-client -c DIR -d`)."""
    from unban.fail2ban import LAYER
    from unban.system import run

    result = run(LAYER, ["fail2ban-client", "-c", confdir, "-d"], check=False, timeout=60)
    if result.returncode != 0:
        lines = [ln for ln in result.stderr.splitlines() if "ERROR" in ln] or [result.stderr]
        raise ConfigError(
            f"fail2ban-client cannot read the config in {confdir}: {lines[0].strip()}"
        )
    return parse_dump(result.stdout)
