#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: unban contributors
# MIT License

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: unban_info
short_description: What refuses an address on the managed host, as facts
description:
  - Runs C(unban find ADDRESS --json) on the managed host (and, with I(doctor=true),
    C(unban doctor ADDRESS --json)) and returns what it found as the fact C(unban).
  - Changes nothing; runs the same in check mode.
version_added: "0.1.0"
author:
  - unban contributors
extends_documentation_fragment:
  - unban.fleet.common
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    platforms: posix
options:
  address:
    description:
      - The IPv4 or IPv6 address (or CIDR network) to look up.
    type: str
    required: true
  doctor:
    description:
      - Also run C(unban doctor), which checks sshd itself (AllowUsers, MaxStartups,
        PerSourcePenalties, its log) and names the most likely cause.
    type: bool
    default: false
  user:
    description:
      - With I(doctor), the login name to check AllowUsers/DenyUsers for.
    type: str
  port:
    description:
      - With I(doctor), the sshd port to check.
    type: int
  sshd_config:
    description:
      - With I(doctor), the sshd config file (C(sshd -f FILE)).
    type: path
  log:
    description:
      - With I(doctor), the sshd log file to read for lines about I(address).
    type: path
seealso:
  - module: unban.fleet.unban
"""

EXAMPLES = r"""
- name: What refuses the office?
  unban.fleet.unban_info:
    address: 203.0.113.4
    doctor: true

- name: List the hosts where it is refused
  ansible.builtin.debug:
    msg: "{{ ansible_facts.unban.findings | map(attribute='detail') | list }}"
  when: ansible_facts.unban.blocked
"""

RETURN = r"""
ansible_facts:
  description: Facts about the address on this host.
  returned: always
  type: complex
  contains:
    unban:
      description: What unban found.
      returned: always
      type: complex
      contains:
        address:
          description: The address looked up.
          type: str
          returned: always
          sample: 203.0.113.4
        blocked:
          description: Something refuses the address (unban find exited 3).
          type: bool
          returned: always
        open:
          description: A new SYN from the address reaches sshd (null when not judged).
          type: bool
          returned: always
        findings:
          description: Every block on the address (unban's finding objects, each with its fix as argv and text).
          type: list
          elements: dict
          returned: always
        still_refused:
          description: What refuses the address now, as the path evaluator judges it.
          type: list
          elements: dict
          returned: always
        reach:
          description: The verdict for each address and port sshd listens on.
          type: list
          elements: dict
          returned: always
        doctor:
          description: C(unban doctor)'s verdict, cause and checks (null without I(doctor)).
          type: dict
          returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.unban.fleet.plugins.module_utils.runner import (
    COMMON_ARGUMENT_SPEC,
    EXIT_OK,
    EXIT_STILL_BLOCKED,
    Unban,
)


def doctor_args(params):
    args = [params["address"]]
    for option, name in (
        ("--user", "user"),
        ("--port", "port"),
        ("--sshd-config", "sshd_config"),
        ("--log", "log"),
    ):
        if params[name] is not None:
            args += [option, str(params[name])]
    return args


def main():
    argument_spec = dict(
        address=dict(type="str", required=True),
        doctor=dict(type="bool", default=False),
        user=dict(type="str"),
        port=dict(type="int"),
        sshd_config=dict(type="path"),
        log=dict(type="path"),
    )
    argument_spec.update(COMMON_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    unban = Unban(module)
    found = unban.run("find", module.params["address"])
    if found.rc not in (EXIT_OK, EXIT_STILL_BLOCKED) or found.error is not None:
        unban.fail(found)
    facts = dict(
        address=found.data.get("address", module.params["address"]),
        blocked=found.rc == EXIT_STILL_BLOCKED,
        open=found.data.get("open"),
        findings=found.data.get("findings", []),
        still_refused=found.data.get("still_refused", []),
        reach=found.data.get("reach", []),
        doctor=None,
    )
    if module.params["doctor"]:
        doctor = unban.run("doctor", *doctor_args(module.params))
        if doctor.rc not in (EXIT_OK, EXIT_STILL_BLOCKED) or doctor.error is not None:
            unban.fail(doctor)
        facts["doctor"] = dict(
            (key, doctor.data.get(key)) for key in ("verdict", "open", "cause", "checks", "notes")
        )
    module.exit_json(changed=False, ansible_facts=dict(unban=facts))


if __name__ == "__main__":
    main()
