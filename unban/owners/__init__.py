"""Owners: where a block is *kept*, beside the layers that read and change the kernel.

Each owner reads one such place and lifts the block there, behind the same Layer protocol
(status/listings/find/plan/apply/revert): `sshguard` (unban.owners.sshguard: its blacklist
file) and `crowdsec` (unban.owners.crowdsec: its local API's decisions).
"""

from __future__ import annotations

from unban.layers import Layer


def default_owners() -> list[Layer]:
    """Every owner, with its default paths under /etc and the run's state dir."""
    from unban.fail2ban import settings
    from unban.owners.crowdsec import CrowdsecOwner
    from unban.owners.sshguard import SshguardOwner

    return [SshguardOwner(state_dir=settings().state_dir), CrowdsecOwner()]
