# -*- coding: utf-8 -*-
# Copyright: unban contributors
# MIT License

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """The options every unban.fleet module takes: where unban is, and its path options."""

    DOCUMENTATION = r"""
options:
  executable:
    description:
      - The C(unban) program on the managed host.
      - Default is C(unban) on the PATH or C(/usr/sbin/unban), where the Debian package
        installs it.
    type: path
  fail2ban_conf:
    description:
      - fail2ban's config dir on the managed host (unban's C(--fail2ban-conf)).
      - Default is unban's own, C(/etc/fail2ban).
    type: path
  state_dir:
    description:
      - Where unban keeps its change sets and backups (unban's C(--state-dir)).
      - Default is unban's own, C(/var/lib/unban) (or C($UNBAN_STATE_DIR)).
    type: path
requirements:
  - unban on the managed host, run as root (C(become) where the connection is not root).
notes:
  - The module runs C(unban ... --json) with an argument list, never through a shell, and reads
    the JSON object unban prints (schema_version 1).
"""
