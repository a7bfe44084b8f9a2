"""Everything that talks to fail2ban: its socket, its config, its ignoreip, its database.

The rest of unban sees fail2ban only through `unban.layers.fail2ban.Fail2banLayer` and the
`ignore`/`unignore` operations in `unban.fail2ban.ignoreip`.
"""

from __future__ import annotations

from dataclasses import dataclass

from unban.defaults import DEFAULT_STATE_DIR

LAYER = "fail2ban"
DEFAULT_CONFDIR = "/etc/fail2ban"


@dataclass(frozen=True)
class Settings:
    """Where fail2ban's config is and where unban keeps its backups (global CLI options)."""

    confdir: str = DEFAULT_CONFDIR
    state_dir: str = DEFAULT_STATE_DIR


_settings = Settings()


def configure(settings: Settings) -> None:
    """Set by the CLI's root callback; `engine.default_layers()` reads it."""
    global _settings
    _settings = settings


def settings() -> Settings:
    return _settings
