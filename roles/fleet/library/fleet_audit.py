#!/usr/bin/python
# -*- coding: utf-8 -*-
"""The audit trail on one host: one JSON line per deploy, rollback or maintenance change."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleet_audit
short_description: Append a run to the host's audit trail, or read its last lines
description:
  - The trail is a file of JSON lines, appended to and never rewritten. Each
    line is written with one C(write) to a file opened for appending, so
    lines from runs that end at once do not interleave.
  - Appending is reported as no change, so that a re-run that changes
    nothing else stays idempotent: the trail is a log of runs, as the
    journal is, not a state that runs converge to.
  - With C(state=read), returns the last lines and the release of the last
    deploy or rollback that succeeded, which pruning must keep.
options:
  path:
    description: The audit trail's file.
    type: path
    required: true
  state:
    description: C(present) appends I(entry); C(read) changes nothing.
    type: str
    choices: [present, read]
    default: read
  entry:
    description: The line to append; the module adds C(time), this host's clock in UTC.
    type: dict
    default: {}
  lines:
    description: With C(state=read), how many of the last lines to return.
    type: int
    default: 10
"""

RETURN = r"""
entries:
  description: The last I(lines) lines, oldest first; a line that is not JSON is returned as C({"unreadable": text}).
  type: list
  elements: dict
  returned: with state=read
last_good_release:
  description: The release of the last deploy or rollback whose outcome is C(succeeded), or an empty string.
  type: str
  returned: with state=read
entry:
  description: The line appended.
  type: dict
  returned: with state=present
"""

import datetime
import json
import os

from ansible.module_utils.basic import AnsibleModule

# Deploys and rollbacks put a release in place; maintenance changes do not.
RELEASE_OPERATIONS = ("deploy", "rollback")
# How much of the file's end is read: far more than the lines shown.
TAIL_BYTES = 1 << 20


def tail(path, lines, tail_bytes=TAIL_BYTES):
    """The trail's last lines, parsed, oldest first, and the last good release among all those read."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - tail_bytes))
            data = handle.read()
    except FileNotFoundError:
        return [], ""
    text = data.decode("utf-8", errors="replace").splitlines()
    if size > tail_bytes and text:
        # The first line read may be the end of a longer one.
        text = text[1:]
    entries = []
    for line in text:
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        entries.append(entry if isinstance(entry, dict) else {"unreadable": line})
    last_good = ""
    for entry in reversed(entries):
        if (entry.get("operation") in RELEASE_OPERATIONS and entry.get("outcome") == "succeeded"
                and entry.get("release")):
            last_good = str(entry["release"])
            break
    return entries[-lines:] if lines > 0 else [], last_good


def append(path, entry, now=None):
    """Append entry, stamped with the time, as one line; return what was written."""
    stamped = {"time": (now or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    stamped.update(entry)
    line = (json.dumps(stamped, sort_keys=False) + "\n").encode("utf-8")
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(descriptor, line)
    finally:
        os.close(descriptor)
    return stamped


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "state": {"type": "str", "choices": ["present", "read"], "default": "read"},
            "entry": {"type": "dict", "default": {}},
            "lines": {"type": "int", "default": 10},
        },
        supports_check_mode=True,
    )
    params = module.params
    if params["state"] == "read":
        entries, last_good = tail(params["path"], params["lines"])
        module.exit_json(changed=False, entries=entries, last_good_release=last_good)
    if not params["entry"]:
        module.fail_json(msg="fleet_audit: state=present needs an entry")
    if module.check_mode:
        module.exit_json(changed=False, entry=params["entry"])
    module.exit_json(changed=False, entry=append(params["path"], params["entry"]))


if __name__ == "__main__":
    main()
