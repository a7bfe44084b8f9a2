"""Default paths the CLI's options name. Kept apart so `unban --help` imports no more."""

from __future__ import annotations

DEFAULT_STATE_DIR = "/var/lib/unban"
HEAL_CONFIG = "/etc/unban/unban.toml"
HEAL_LOCK = "/run/unban-heal.lock"
CRON_DIR = "/etc/cron.d"
SYSTEMD_DIR = "/etc/systemd/system"
