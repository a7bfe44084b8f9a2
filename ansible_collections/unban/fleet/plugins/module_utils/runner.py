# -*- coding: utf-8 -*-
# Copyright: unban contributors
# MIT License
"""Runs `unban ... --json` on the managed host for the unban.fleet modules.

One argv list per run (never a shell), the global path options in front, and the one JSON
object unban prints on stdout whatever its exit code (schema_version 1, unban/schema/ in the
unban repository). A run that prints no such object fails the task with what unban said.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

SCHEMA_VERSION = 1

# The exit codes of unban (README, "Exit codes").
EXIT_OK = 0
EXIT_STILL_BLOCKED = 3

# Options every module takes: where unban is and where it keeps and reads its state.
COMMON_ARGUMENT_SPEC = dict(
    executable=dict(type="path"),
    fail2ban_conf=dict(type="path"),
    state_dir=dict(type="path"),
)


class UnbanResult(object):
    """One run: its exit code and the JSON object it printed."""

    def __init__(self, argv, rc, data, stderr):
        self.argv = argv
        self.rc = rc
        self.data = data
        self.stderr = stderr

    @property
    def error(self):
        """unban's own error object, or None when it did not fail."""
        error = self.data.get("error")
        return error if isinstance(error, dict) else None

    def error_message(self):
        error = self.error
        if error is not None:
            return "unban failed (exit %d, %s): %s" % (
                self.rc,
                error.get("kind", "error"),
                error.get("message", ""),
            )
        return "unban exited %d: %s" % (self.rc, self.data.get("summary", self.stderr.strip()))


class Unban(object):
    """The unban CLI on the managed host, as the module's options point at it."""

    def __init__(self, module):
        self.module = module
        executable = module.params.get("executable")
        if executable is None:
            executable = module.get_bin_path("unban", required=True, opt_dirs=["/usr/sbin"])
        self.executable = executable

    def global_args(self):
        args = []
        if self.module.params.get("fail2ban_conf") is not None:
            args += ["--fail2ban-conf", self.module.params["fail2ban_conf"]]
        if self.module.params.get("state_dir") is not None:
            args += ["--state-dir", self.module.params["state_dir"]]
        return args

    def run(self, command, *args):
        """`unban GLOBALS COMMAND ARGS --json`; fails the task unless unban printed its JSON."""
        argv = [self.executable] + self.global_args() + [command] + list(args) + ["--json"]
        rc, stdout, stderr = self.module.run_command(argv, environ_update={"NO_COLOR": "1"})
        try:
            data = json.loads(stdout)
        except ValueError:
            self.module.fail_json(
                msg="unban printed no JSON (exit %d): %s" % (rc, (stderr or stdout).strip()),
                rc=rc,
                cmd=argv,
                stdout=stdout,
                stderr=stderr,
            )
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
            self.module.fail_json(
                msg="unban at %s prints JSON schema_version %r; this collection reads %d: "
                "install the unban this collection came with"
                % (self.executable, data.get("schema_version") if isinstance(data, dict) else None,
                   SCHEMA_VERSION),
                rc=rc,
                cmd=argv,
            )
        return UnbanResult(argv, rc, data, stderr)

    def fail(self, result, **extra):
        """Fail the task with unban's own message, its exit code and its whole JSON."""
        self.module.fail_json(
            msg=result.error_message(), rc=result.rc, cmd=result.argv, unban=result.data, **extra
        )


def file_diffs(plan):
    """Ansible diffs (before/after) for the files the plan's steps write, else None."""
    diffs = []
    for step in plan.get("steps", []):
        edit = step.get("file")
        if not isinstance(edit, dict):
            continue
        diffs.append(
            dict(
                before_header=edit.get("path", ""),
                after_header=edit.get("path", ""),
                before=edit.get("before") or "",
                after=edit.get("after") or "",
            )
        )
    return diffs or None


def plan_diff(plan, address):
    """The whole plan as a diff: the file edits before/after, the other steps as a list."""
    diffs = file_diffs(plan) or []
    others = [step for step in plan.get("steps", []) if not isinstance(step.get("file"), dict)]
    if others:
        lines = ["unban plan for %s:" % address]
        lines += ["  %s" % step.get("text", "") for step in others]
        diffs.append(dict(prepared="\n".join(lines) + "\n"))
    return diffs
