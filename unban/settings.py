"""The settings of one run: the CLI's global options, made once by its root callback and handed
down (`engine.default_layers(settings)`, `confdir=`/`state_dir=` arguments); no module keeps
them."""

from __future__ import annotations

from dataclasses import dataclass

from unban.fail2ban import DEFAULT_CONFDIR
from unban.reverter import DEFAULT_STATE_DIR


@dataclass(frozen=True)
class Settings:
    fail2ban_conf: str = DEFAULT_CONFDIR  # fail2ban's config dir (--fail2ban-conf)
    state_dir: str = DEFAULT_STATE_DIR  # change sets, backups, the command lock (--state-dir)
    debug: bool = False  # tracebacks on errors (--debug)
