"""Everything that talks to fail2ban: its socket, its config, its ignoreip, its database.

The rest of unban sees fail2ban only through `unban.layers.fail2ban.Fail2banLayer` and the
`ignore`/`unignore` operations in `unban.fail2ban.ignoreip`.
"""

from __future__ import annotations

LAYER = "fail2ban"
DEFAULT_CONFDIR = "/etc/fail2ban"
