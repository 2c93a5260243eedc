"""Run an Ansible module's main() in a unit test: its exit_json and fail_json raise `Exited` instead."""

from ansible.module_utils import basic


class Exited(Exception):
    """The module ended: `result` is what it returned, `failed` whether through fail_json."""

    def __init__(self, result, failed):
        super().__init__(result.get("msg"))
        self.result, self.failed = result, failed


def _raise(failed):
    def end(_module, **result):
        raise Exited(result, failed)
    return end


def trap_exits(monkeypatch):
    """Make every AnsibleModule's exit_json and fail_json raise Exited, for this test."""
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", _raise(False))
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", _raise(True))
