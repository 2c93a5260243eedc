# -*- coding: utf-8 -*-
"""The audit trail's file, shared by the fleet_audit and fleet_lock modules.

A file of JSON lines, appended to and never rewritten. Each line is written
with one write() to a file opened for appending, so that the lines of runs
that end at once do not interleave.
"""

from __future__ import annotations

import datetime
import json
import os

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
