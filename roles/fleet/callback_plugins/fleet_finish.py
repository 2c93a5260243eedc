# -*- coding: utf-8 -*-
"""Finish a failed run that holds the deploy lock: audit it, release the lock.

Ansible has no "finally" across plays: when a play fails on every host, or
a rolling batch fails, the playbook stops and its last play, which records
the run and releases the lock (playbooks/finish.yml), never runs. This
callback sees the run end; when the run took the lock and that play did
not start, it runs that same play, with fleet_outcome=failed, in the same
process, with the run's inventory and variables (the lock's holder
included). A run killed outright cannot do this: its lock stays, and the
next run reports it with its age.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: fleet_finish
type: aggregate
short_description: Audit a failed run and release the deploy lock it holds
description:
  - Loaded with the fleet role. After a run that took the deploy lock
    failed before its finish play, runs that play with C(fleet_outcome=failed).
"""

from ansible import context
from ansible.executor.task_queue_manager import TaskQueueManager
from ansible.plugins.callback import CallbackBase
from ansible.template import Templar

# The finish play carries this play variable (playbooks/finish.yml).
FINISH_MARKER = "fleet_finish_play"


def takes_lock(task):
    return task.action.rsplit(".", 1)[-1] == "fleet_lock" and task.args.get("state") == "acquired"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "fleet_finish"
    # Active wherever the role is: a run that takes the lock must release it.
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self):
        super().__init__()
        self._playbook = None
        self._play = None
        self._locked = False
        self._finish_started = False

    def v2_playbook_on_start(self, playbook):
        self._playbook = playbook

    def v2_playbook_on_play_start(self, play):
        self._play = play
        if play.vars.get(FINISH_MARKER):
            self._finish_started = True

    def _note_lock(self, result):
        if takes_lock(result._task) and result._result.get("acquired") and not result._task.check_mode:
            self._locked = True

    def v2_runner_on_ok(self, result):
        self._note_lock(result)

    def v2_runner_item_on_ok(self, result):
        self._note_lock(result)

    def v2_playbook_on_stats(self, stats):
        if not self._locked or self._finish_started or self._playbook is None or self._play is None:
            return
        plays = [play for play in self._playbook.get_plays() if play.vars.get(FINISH_MARKER)]
        if not plays:
            self._display.warning("fleet_finish: this run took the deploy lock and has no finish play "
                                  "(playbooks/finish.yml); the lock stays until a run breaks it.")
            return
        self._finish_started = True
        finish = plays[-1]
        finish.vars["fleet_outcome"] = "failed"
        self._display.banner("FLEET: the run failed; recording it and releasing the deploy lock")
        variable_manager = self._play.get_variable_manager()
        inventory = variable_manager._inventory
        # The run's last play may have left the inventory restricted to one batch.
        inventory.remove_restriction()
        # As ansible-playbook does before it runs a play.
        finish.post_validate(Templar(loader=self._play._loader, variables=variable_manager.get_vars(play=finish)))
        manager = TaskQueueManager(
            inventory=inventory,
            variable_manager=variable_manager,
            loader=self._play._loader,
            passwords={},
            forks=context.CLIARGS.get("forks"),
        )
        try:
            manager.run(finish)
        except Exception as error:  # a callback must not turn the run's failure into a traceback
            self._display.warning(f"fleet_finish: could not finish the failed run: {error}")
        finally:
            manager.cleanup()
