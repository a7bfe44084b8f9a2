"""Owners: where a block is *kept*, beside the layers that read and change the kernel.

A kernel entry deleted by a layer comes back at the next reload or boot when a firewall manager
or a boot-time rules file still holds it. Each owner here reads one such place and lifts the
block there, behind the same Layer protocol (status/listings/find/plan/apply/revert), so the
engine plans, applies, journals and undoes it like every layer:

- `ufw` (unban.owners.ufw): /etc/ufw/user.rules and user6.rules, changed through ufw itself.
  ufw's delete also removes its kernel rule: `lifts_own`, owner "ufw".
- `netfilter-persistent` and `ipset-persistent` (unban.owners.persistent): the lines of
  /etc/iptables/rules.v4, rules.v6 and ipsets; the kernel layers delete the live entry.
- `nftables.conf` (unban.owners.nftconf): /etc/nftables.conf and its includes.
- `firewalld` (unban.owners.firewalld): sources of dropping zones, rich rules, ipset entries,
  runtime and permanent, changed with firewall-cmd (firewall-offline-cmd when it is stopped),
  which also removes its kernel entries: `lifts_own`, owner "firewalld".
- `sshguard` (unban.owners.sshguard): its BLACKLIST_FILE lines.
- `crowdsec` (unban.owners.crowdsec): its local API's decisions.

Kernel findings keep the owner their layer gives them (a hand-made rule saved into rules.v4 is
still "manual"); the owner's own finding names where it is kept (`Finding.source`).
"""

from __future__ import annotations

from unban.layers import Layer


def default_owners(state_dir: str) -> list[Layer]:
    """Every owner, with its default paths under /etc and the run's state dir."""
    from unban.owners.crowdsec import CrowdsecOwner
    from unban.owners.firewalld import FirewalldOwner
    from unban.owners.nftconf import NftConfOwner
    from unban.owners.persistent import IpsetPersistentOwner, RulesPersistentOwner
    from unban.owners.sshguard import SshguardOwner
    from unban.owners.ufw import UfwOwner

    return [
        UfwOwner(),
        RulesPersistentOwner(state_dir=state_dir),
        IpsetPersistentOwner(state_dir=state_dir),
        NftConfOwner(state_dir=state_dir),
        FirewalldOwner(),
        SshguardOwner(state_dir=state_dir),
        CrowdsecOwner(),
    ]
