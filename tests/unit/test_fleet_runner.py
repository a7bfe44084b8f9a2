"""The pure parts of the Ansible collection's runner (the modules need ansible-core itself;
tests/integration/test_ansible.py runs them for real)."""

from __future__ import annotations

from ansible_collections.unban.fleet.plugins.module_utils.runner import plan_diff

JAIL_LOCAL = "/etc/fail2ban/jail.local"


def _step(text: str, file: object = None) -> dict[str, object]:
    return {"layer": "x", "scope": "x", "action": "remove", "argv": None, "text": text,
            "undo": None, "finding": None, "file": file}  # fmt: skip


def test_file_edits_are_before_after_diffs_and_other_steps_one_prepared_list() -> None:
    plan = {
        "changes": 3,
        "steps": [
            _step("nft delete element inet t s '{ 203.0.113.4 }'"),
            _step("add ignoreip", {"path": JAIL_LOCAL, "before": "[sshd]\n", "after": "x\n"}),
            _step("iptables-nft -t filter -D INPUT -s 203.0.113.4/32 -j DROP"),
        ],
    }
    assert plan_diff(plan, "203.0.113.4") == [
        {"before_header": JAIL_LOCAL, "after_header": JAIL_LOCAL, "before": "[sshd]\n",
         "after": "x\n"},
        {"prepared": "unban plan for 203.0.113.4:\n"
                     "  nft delete element inet t s '{ 203.0.113.4 }'\n"
                     "  iptables-nft -t filter -D INPUT -s 203.0.113.4/32 -j DROP\n"},
    ]  # fmt: skip


def test_a_new_file_diffs_from_empty_and_an_empty_plan_has_no_diff() -> None:
    plan = {"changes": 1, "steps": [_step("write", {"path": "/x", "before": None, "after": "a"})]}
    assert plan_diff(plan, "203.0.113.4") == [
        {"before_header": "/x", "after_header": "/x", "before": "", "after": "a"}
    ]
    assert plan_diff({"changes": 0, "steps": []}, "203.0.113.4") == []
