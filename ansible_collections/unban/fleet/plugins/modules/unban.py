#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: unban contributors
# MIT License

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: unban
short_description: Get an address back in to sshd on the managed host
description:
  - Runs C(unban me ADDRESS --json) on the managed host, which lifts every block on ADDRESS (fail2ban
    bans, firewall rules, nft set elements, ipsets, routes, hosts.deny entries, sshd penalties),
    exempts it from future fail2ban bans, and checks again whether a new connection from it
    reaches sshd.
  - In check mode it runs C(unban me ADDRESS --dry-run) and reports C(changed) when applying the
    plan would change something.
  - In diff mode it shows each file the plan edits (fail2ban's jail.local, hosts.deny,
    hosts.allow, sshd's drop-in) before and after, and the other steps (rules, set elements,
    bans) as the plan's list of commands.
  - The whole run is one change set on the managed host; M(unban.fleet.unban_undo) puts it back.
version_added: "0.1.0"
author:
  - unban contributors
extends_documentation_fragment:
  - unban.fleet.common
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
options:
  address:
    description:
      - The IPv4 or IPv6 address (or CIDR network) to let in.
    type: str
    required: true
  state:
    description:
      - C(unblocked) lifts what refuses I(address).
    type: str
    choices: [unblocked]
    default: unblocked
  broad:
    description:
      - Also lift blocks on wider networks that hold I(address) (a policy, an allow-list, a broad
        rule gets an accept for exactly this address; a broad hosts.deny entry gets a grant in
        hosts.allow). Without it they are reported in C(still_refused).
    type: bool
    default: false
  exempt:
    description:
      - Also put I(address) into fail2ban's ignoreip (and the other ban daemons' allow-lists),
        so it is not banned again. C(false) is unban's C(--no-ignore).
    type: bool
    default: true
  sshd_penalties:
    description:
      - Lift an active sshd PerSourcePenalties penalty (OpenSSH 9.8+) by adding the address to
        C(PerSourcePenaltyExemptList). C(false) is unban's C(--no-sshd).
    type: bool
    default: true
  user:
    description:
      - The login name to check sshd's AllowUsers/DenyUsers for (unban's C(--user)).
    type: str
  sshd_config:
    description:
      - The sshd config file to check (unban's C(--sshd-config), C(sshd -f FILE)).
    type: path
  fail_if_still_blocked:
    description:
      - Fail the task when something still refuses I(address) after the run (unban's exit 3).
      - By default the task succeeds and returns C(still_blocked=true), for the playbook to test.
    type: bool
    default: false
seealso:
  - module: unban.fleet.unban_info
  - module: unban.fleet.unban_undo
"""

EXAMPLES = r"""
- name: Let the office back in, everywhere
  unban.fleet.unban:
    address: 203.0.113.4
  register: lifted

- name: Say where it is still refused
  ansible.builtin.debug:
    msg: "{{ lifted.still_refused | map(attribute='detail') | list }}"
  when: lifted.still_blocked

- name: Lift broad blocks too, and fail where that is not enough
  unban.fleet.unban:
    address: 2001:db8::4
    broad: true
    fail_if_still_blocked: true

- name: Only look at what would be done (check mode), with file diffs
  unban.fleet.unban:
    address: 203.0.113.4
    exempt: false
  check_mode: true
  diff: true
"""

RETURN = r"""
changed:
  description: Something was changed (in check mode, applying the plan would change something).
  returned: always
  type: bool
still_blocked:
  description: Something still refuses the address after the run (unban exited 3).
  returned: always
  type: bool
open:
  description:
    - The verdict read afresh after the run; nothing refuses the address and a new SYN from it
      reaches sshd. In check mode, the verdict as it is now.
    - C(null) when it could not be judged.
  returned: always
  type: bool
would_open:
  description:
    - In check mode, the verdict once the plan is applied (what C(still_refused) says would be left).
  returned: check mode
  type: bool
findings:
  description: What refused the address and the plan acted on (unban's finding objects).
  returned: always
  type: list
  elements: dict
  sample:
    - layer: iptables
      kind: rule
      owner: manual
      jail: null
      source: null
      detail: "iptables-nft filter INPUT #1: -A INPUT -s 203.0.113.4/32 -j DROP"
      on_path: true
      targeted: true
      banned_at: null
      expires_at: null
      fix:
        argv: [unban, me, 203.0.113.4]
        text: unban me 203.0.113.4
still_refused:
  description:
    - What still refuses the address after the run (in check mode, what would be left after the
      plan), each with the command that would clear it.
  returned: always
  type: list
  elements: dict
change_set:
  description: The change set this run made, the ID M(unban.fleet.unban_undo) takes; null when nothing changed.
  returned: always
  type: str
  sample: "7"
plan:
  description: The plan (C(changes) and C(steps), each step with its argv, text and undo).
  returned: always
  type: dict
summary:
  description: unban's one-line summary.
  returned: always
  type: str
  sample: "203.0.113.4: unblocked (1 change(s), `unban undo 7` puts them back)"
exit_code:
  description: unban's exit code (0 open, 3 still refused).
  returned: always
  type: int
cmd:
  description: The argv unban was run with.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.unban.fleet.plugins.module_utils.runner import (
    COMMON_ARGUMENT_SPEC,
    EXIT_OK,
    EXIT_STILL_BLOCKED,
    Unban,
    plan_diff,
)


def me_args(params, check_mode):
    """`unban me` as the options say."""
    args = [params["address"]]
    if params["broad"]:
        args.append("--broad")
    if not params["exempt"]:
        args.append("--no-ignore")
    if not params["sshd_penalties"]:
        args.append("--no-sshd")
    if params["user"] is not None:
        args += ["--user", params["user"]]
    if params["sshd_config"] is not None:
        args += ["--sshd-config", params["sshd_config"]]
    if check_mode:
        args.append("--dry-run")
    return args


def main():
    argument_spec = dict(
        address=dict(type="str", required=True),
        state=dict(type="str", choices=["unblocked"], default="unblocked"),
        broad=dict(type="bool", default=False),
        exempt=dict(type="bool", default=True),
        sshd_penalties=dict(type="bool", default=True),
        user=dict(type="str"),
        sshd_config=dict(type="path"),
        fail_if_still_blocked=dict(type="bool", default=False),
    )
    argument_spec.update(COMMON_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    unban = Unban(module)
    result = unban.run("me", *me_args(module.params, module.check_mode))
    if result.rc not in (EXIT_OK, EXIT_STILL_BLOCKED) or result.error is not None:
        unban.fail(result)
    data = result.data
    plan = data.get("plan") or {}
    changed = bool(data.get("would_change") if module.check_mode else data.get("changed"))
    still_blocked = result.rc == EXIT_STILL_BLOCKED
    output = dict(
        changed=changed,
        still_blocked=still_blocked,
        open=data.get("open"),
        findings=data.get("findings", []),
        still_refused=data.get("still_refused", []),
        change_set=data.get("change_set"),
        plan=plan,
        summary=data.get("summary", ""),
        exit_code=result.rc,
        cmd=result.argv,
    )
    if module.check_mode:
        output["would_open"] = data.get("would_open")
    if module._diff and changed:
        output["diff"] = plan_diff(plan, module.params["address"])
    if still_blocked and module.params["fail_if_still_blocked"]:
        refused = "; ".join(item.get("detail", "") for item in output["still_refused"])
        module.fail_json(
            msg="%s is still refused: %s" % (module.params["address"], refused or data.get("summary")),
            **output
        )
    module.exit_json(**output)


if __name__ == "__main__":
    main()
