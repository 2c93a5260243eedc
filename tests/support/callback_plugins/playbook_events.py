"""Ansible callback: every task result and the final stats, one JSON line each, for tests/support/playbook.py."""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: playbook_events
type: aggregate
short_description: Write each task result and the final stats as JSON lines
description:
  - For tests/support/playbook.py, which reads a run's results from them instead of its readable output.
  - Loaded from ANSIBLE_CALLBACK_PLUGINS without being enabled; writes nothing unless PLAYBOOK_EVENTS_FILE is set.
  - "Each line is an object with an event (playbook_on_play_start, playbook_on_task_start, runner_on_ok,
    runner_on_failed, runner_on_unreachable, runner_on_skipped or playbook_on_stats), its event_data and
    its time (seconds since the epoch)."
  - "A play's or task's start has its name (a role's task's as role : name)."
  - "A result's data holds host, task (its name, rendered), role and res (the result as other callbacks get it,
    no_log censoring applied); a failure's also ignore_errors."
  - "The stats' data maps ok, changed, failures, dark, skipped, rescued, ignored and processed to a count per host."
"""

STAT_COUNTERS = ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored", "processed")


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "playbook_events"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self):
        super().__init__()
        path = os.environ.get("PLAYBOOK_EVENTS_FILE")
        self._output = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115 - open for the whole run

    def _write(self, event, data):
        if self._output is not None:
            self._output.write(json.dumps({"event": event, "event_data": data, "time": time.time()}, default=str)
                               + "\n")
            self._output.flush()

    def _result(self, event, result, **extra):
        role = getattr(result._task, "_role", None)
        self._write(event, {"host": result._host.get_name(), "task": result.task_name,
                            "role": role.get_name(include_role_fqcn=False) if role else None,
                            "res": result._result, **extra})

    def v2_playbook_on_play_start(self, play):
        self._write("playbook_on_play_start", {"play": play.get_name().strip()})

    def v2_playbook_on_task_start(self, task, is_conditional):
        # Named as Ansible prints it: "role : name" for a role's task.
        self._write("playbook_on_task_start", {"task": task.get_name().strip()})

    def v2_runner_on_ok(self, result):
        self._result("runner_on_ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result("runner_on_failed", result, ignore_errors=ignore_errors)

    def v2_runner_on_unreachable(self, result):
        self._result("runner_on_unreachable", result)

    def v2_runner_on_skipped(self, result):
        self._result("runner_on_skipped", result)

    def v2_playbook_on_stats(self, stats):
        self._write("playbook_on_stats", {name: dict(getattr(stats, name)) for name in STAT_COUNTERS})
