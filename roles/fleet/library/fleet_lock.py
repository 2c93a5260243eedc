#!/usr/bin/python
# -*- coding: utf-8 -*-
"""The deploy lock's file on one host: take it, release it, or read who holds it."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleet_lock
short_description: Take, release or read the deploy lock on one host
description:
  - The lock is a file holding its holder as JSON. It is created with a hard
    link from a complete temporary file, so that two runs taking it at once
    cannot both succeed, and a reader never sees half of it.
  - The fleet_lock action plugin of the same role calls this module with the
    holder it describes on the controller (operator, controller, process,
    playbook), and turns a refusal into the message an operator reads.
options:
  path:
    description: The lock file.
    type: path
    required: true
  state:
    description:
      - C(acquired) takes the lock, or keeps it when this holder has it already.
      - C(released) removes it when this holder has it; one held by another is left alone.
      - C(query) changes nothing.
    type: str
    choices: [acquired, released, query]
    default: query
  holder:
    description: Who takes or releases the lock. C(token) tells one run from another.
    type: dict
    default: {}
  force:
    description: With C(state=acquired), replace a lock that another holder has.
    type: bool
    default: false
  trail:
    description:
      - The host's audit trail. With C(state=acquired), the release of the last good deploy in it is returned;
        with C(state=released) and I(record), the line is appended to it before the lock is released.
      - In the same module run as the lock, to spare the run a round trip per host at its start and its end.
    type: path
  record:
    description:
      - With C(state=released), the line that records the run in I(trail), stamped with this host's time.
        Written only where this holder has the lock, and not in check mode.
      - Appending is reported as no change: the trail is a log of runs, as the journal is, so a re-run that
        changes nothing else stays idempotent.
    type: dict
"""

RETURN = r"""
acquired:
  description: Whether this holder has the lock when the module returns (or would, in check mode).
  type: bool
  returned: always
held_by:
  description: The holder found in the file before the module changed anything (none if there was no lock).
  type: dict
  returned: always
age:
  description: Seconds since the lock found was taken, by this host's clock.
  type: int
  returned: when a lock was found
broken:
  description: The holder whose lock C(force) replaced.
  type: dict
  returned: when a lock was broken
last_good_release:
  description: The release of the last deploy or rollback that succeeded, from I(trail); empty if none.
  type: str
  returned: with state=acquired and trail
recorded:
  description: The line appended to I(trail).
  type: dict
  returned: when a line was appended
"""

import json
import os
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.fleet_trail import append, tail


def read_lock(path):
    """The holder the lock file names, or None when there is no lock.

    A file that is not a JSON object (written by hand, or damaged) still
    holds the lock: it is reported as held by an unknown holder.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    try:
        holder = json.loads(text)
    except ValueError:
        holder = None
    if not isinstance(holder, dict):
        return {"token": "", "operator": "unknown", "controller": "unknown", "playbook": "unknown",
                "since": os.stat(path).st_mtime}
    return holder


def write_lock(path, holder, replace=False):
    """Create the lock with holder in it; False if another run created it first.

    The content is written to a temporary file in the same directory, then
    linked to the lock's name: the link fails when the name exists, so
    exactly one of two racing writers gets it, with the whole content.
    """
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=".lock.", dir=directory)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(holder, handle, sort_keys=True)
            handle.write("\n")
        os.chmod(temporary, 0o644)
        if replace:
            os.replace(temporary, path)
            return True
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)


def decide(path, state, holder, force, check_mode, now):
    """Carry out state for holder on the lock at path; return the module's result."""
    found = read_lock(path)
    mine = found is not None and bool(holder.get("token")) and found.get("token") == holder.get("token")
    result = {"changed": False, "acquired": mine, "held_by": found or {}}
    if found is not None:
        result["age"] = max(0, int(now - float(found.get("since") or now)))

    if state == "query":
        return result

    if state == "released":
        if mine:
            result["changed"] = True
            result["acquired"] = False
            if not check_mode:
                os.unlink(path)
        return result

    if mine:
        return result
    if found is not None and not force:
        return result
    taken = dict(holder, since=now)
    if found is not None:
        result["broken"] = found
    result["changed"] = True
    result["acquired"] = True
    if check_mode:
        return result
    if not write_lock(path, taken, replace=found is not None):
        # Another run linked its lock between the read and the link.
        result.update(changed=False, acquired=False, held_by=read_lock(path) or {})
        result.pop("broken", None)
    return result


def run(params, check_mode, now):
    """decide() for the module's parameters, with the audit trail read or written in the same run."""
    state, trail = params["state"], params.get("trail")
    recorded = None
    # The line goes in while the lock is still this holder's.
    if state == "released" and trail and params.get("record") and not check_mode:
        held = read_lock(params["path"])
        if held is not None and held.get("token") == params["holder"].get("token"):
            recorded = append(trail, params["record"])
    result = decide(params["path"], state, params["holder"], params.get("force", False), check_mode, now)
    if recorded is not None:
        result["recorded"] = recorded
    if state == "acquired" and trail:
        result["last_good_release"] = tail(trail, 0)[1]
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["acquired", "released", "query"], "default": "query"},
            "holder": {"type": "dict", "default": {}},
            "force": {"type": "bool", "default": False},
            "trail": {"type": "path"},
            "record": {"type": "dict"},
        },
        supports_check_mode=True,
    )
    params = module.params
    if params["state"] != "query" and not params["holder"].get("token"):
        module.fail_json(msg="fleet_lock: a holder with a token is needed to take or release the lock")
    module.exit_json(**run(params, module.check_mode, time.time()))


if __name__ == "__main__":
    main()
