# -*- coding: utf-8 -*-
"""The deploy lock, seen from the controller: who this run is, and what a refusal says.

The module of the same name changes the lock file on the host; this plugin
gives it the holder (operator, controller, the ansible-playbook process,
playbook, repository commit) and, when another holder has the lock, fails
with who, since when and with which playbook. A lock taken on this
controller by a process that no longer runs is said to be left by a killed
run; only an explicit break (fleet_lock_break) replaces it.
"""

from __future__ import annotations

import datetime
import getpass
import os
import socket
import subprocess

from ansible import context
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

BREAK_INPUT = "fleet_lock_break"


def process_start(pid):
    """The start time of process pid in clock ticks since boot, '' where /proc has none.

    With the pid, it tells a run from a later process that reuses its pid.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            # The command name (2nd field) is in parentheses and may hold spaces.
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def repository_state(directory):
    """The commit checked out at directory and whether tracked files differ from it."""
    def git(*args):
        return subprocess.run(["git", "-C", directory, *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": "", "dirty": False}
    return {"commit": commit, "dirty": dirty}


def process_started_at(pid):
    """When process pid started, as a UTC datetime, or None where /proc does not say."""
    ticks = process_start(pid)
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith("btime "))
        seconds = boot + int(ticks) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, StopIteration):
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


def run_holder(playbook_dir, pid=None, now=None):
    """This run, as the lock and the audit trail record it.

    Action plugins run in worker processes forked by ansible-playbook, so
    the run's process is the worker's parent; the token is the same in
    every task of the run, the lock's release included.
    """
    pid = pid or os.getppid()
    controller = socket.gethostname()
    started = process_start(pid)
    playbooks = [os.path.basename(path) for path in (context.CLIARGS.get("args") or ())]
    holder = {
        "token": f"{controller}/{pid}/{started}",
        "operator": getpass.getuser(),
        "controller": controller,
        "pid": pid,
        "playbook": " ".join(playbooks) or "unknown",
        "started": (now or process_started_at(pid) or datetime.datetime.now(datetime.timezone.utc))
        .strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    holder.update(repository_state(playbook_dir))
    return holder


def holder_alive(holder):
    """False when holder's run is known to be gone: taken on this controller by a process no longer running."""
    if holder.get("controller") != socket.gethostname() or not os.path.exists("/proc/self/stat"):
        return True
    token = str(holder.get("token", ""))
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return True
    started = process_start(pid)
    return started != "" and token == f"{holder.get('controller')}/{pid}/{started}"


def describe(holder, age):
    """One sentence naming the lock's holder, for an operator."""
    since = holder.get("started") or "an unknown time"
    text = (f"{holder.get('operator', 'unknown')} on {holder.get('controller', 'unknown')} "
            f"with {holder.get('playbook', 'unknown')}, since {since} ({format_age(age)} ago)")
    if not holder_alive(holder):
        text += f"; its run (process {holder.get('pid')}) is no longer running on this controller, so a killed run left it"
    return text


def format_age(seconds):
    seconds = int(seconds or 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"


def refusal(host, holder, age):
    return (f"{host}: the deploy lock is held by {describe(holder, age)}. Nothing was changed. "
            f"Wait for that run, or, if it is gone, break the lock with -e {BREAK_INPUT}=true.")


class ActionModule(ActionBase):
    """Runs the fleet_lock module with this run as the holder."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("path", "state", "force", "trail", "record"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = dict(self._task.args)
        state = args.get("state", "query")
        holder = run_holder(task_vars.get("playbook_dir") or os.getcwd())
        host = task_vars.get("inventory_hostname", "?")
        # A dry run neither takes the lock nor waits for it: it says who holds it.
        module_state = "query" if self._task.check_mode and state == "acquired" else state
        outcome = self._execute_module(
            module_name="fleet_lock",
            module_args={"path": args["path"], "state": module_state, "holder": holder,
                         "force": bool(args.get("force", False)), "trail": args.get("trail"),
                         "record": args.get("record")},
            task_vars=task_vars,
        )
        result.update(outcome)
        # The lock lasts only as long as the run: taking and releasing it is
        # not a change a re-run converges, so an idempotent run reports none.
        result["changed"] = False
        result["run"] = holder
        if outcome.get("failed"):
            return result

        found = outcome.get("held_by") or {}
        age = outcome.get("age", 0)
        if module_state == "query":
            if found and found.get("token") != holder["token"]:
                result["msg"] = f"{host}: the deploy lock is held by {describe(found, age)}"
                if self._task.check_mode:
                    display.warning(result["msg"] + "; a real run would stop here.")
        elif state == "acquired" and not outcome.get("acquired"):
            result["failed"] = True
            result["msg"] = refusal(host, found, age)
        elif outcome.get("broken"):
            result["msg"] = f"{host}: broke the deploy lock held by {describe(outcome['broken'], age)}"
            display.warning(result["msg"])
        return result
