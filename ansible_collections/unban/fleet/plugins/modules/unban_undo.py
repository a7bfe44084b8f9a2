#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: unban contributors
# MIT License

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: unban_undo
short_description: Put back a change set unban made on the managed host
description:
  - Runs C(unban undo CHANGE_SET --json) on the managed host, which puts back everything that
    change set changed (rules, set elements, fail2ban bans, ignoreip entries, unban's file edits).
  - A change set that was undone already is reported as ok, not changed, so the task can run again.
  - In check mode it runs C(unban undo --dry-run) and reports what would be put back.
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
    support: none
  platform:
    platforms: posix
options:
  change_set:
    description:
      - The change set ID, as M(unban.fleet.unban) returned it in C(change_set)
        (or C(unban history) lists it).
      - Without it, the newest change set not undone yet; that form is not idempotent.
    type: str
seealso:
  - module: unban.fleet.unban
"""

EXAMPLES = r"""
- name: Let the office in
  unban.fleet.unban:
    address: 203.0.113.4
  register: lifted

- name: Put it back as it was
  unban.fleet.unban_undo:
    change_set: "{{ lifted.change_set }}"
  when: lifted.change_set is not none
"""

RETURN = r"""
change_set:
  description: The change set put back (or that would be).
  returned: always
  type: str
  sample: "7"
steps:
  description: What was (or would be) put back, newest first.
  returned: always
  type: list
  elements: str
cannot:
  description: What could not be made exactly as it was (a ban's start time, rule counters).
  returned: always
  type: list
  elements: str
already_undone:
  description: The change set was undone before this run; nothing was done.
  returned: always
  type: bool
cmd:
  description: The argv unban was run with (the undo, or the history look-up for an undone set).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.unban.fleet.plugins.module_utils.runner import (
    COMMON_ARGUMENT_SPEC,
    EXIT_OK,
    Unban,
)

# How `unban history` says a change set was undone (its `undo` field).
UNDONE_ALREADY = "no: undone already"


def main():
    argument_spec = dict(change_set=dict(type="str"))
    argument_spec.update(COMMON_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    unban = Unban(module)
    wanted = module.params["change_set"]
    if wanted is not None:
        history = unban.run("history")
        if history.rc != EXIT_OK or history.error is not None:
            unban.fail(history)
        entry = None
        for candidate in history.data.get("change_sets", []):
            if candidate.get("id") == wanted:
                entry = candidate
        if entry is None:
            module.fail_json(msg="no change set %s in unban history on this host" % wanted)
        if entry.get("undo") == UNDONE_ALREADY:
            module.exit_json(
                changed=False,
                change_set=wanted,
                steps=[],
                cannot=[],
                already_undone=True,
                cmd=history.argv,
            )
    args = [] if wanted is None else [wanted]
    if module.check_mode:
        args.append("--dry-run")
    result = unban.run("undo", *args)
    if result.rc != EXIT_OK or result.error is not None:
        unban.fail(result)
    data = result.data
    module.exit_json(
        changed=bool(data.get("would_change") if module.check_mode else data.get("changed")),
        change_set=data.get("change_set"),
        steps=data.get("steps", []),
        cannot=data.get("cannot", []),
        already_undone=False,
        cmd=result.argv,
    )


if __name__ == "__main__":
    main()
