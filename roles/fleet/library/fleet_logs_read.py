#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Read the last minutes of a service's journal or of a JSON access log on one host."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleet_logs_read
short_description: Read a time window of a systemd unit's journal or of a JSON-lines access log
description:
  - Returns the entries of the last I(minutes) of one log of the host, oldest first, each with its
    time (seconds since the epoch) and its message, for the controller to merge with other hosts' logs.
  - C(journal) streams C(journalctl --output json) for the unit; C(file) reads the access log
    backwards from its end and stops at the first line older than the window, so a large log is never
    read whole. Lines of the file are JSON objects whose C(time) is ISO 8601 (nginx's C($time_iso8601)).
  - With I(request_id), only entries whose text contains the id are kept. The id is never passed to a
    command: the filtering happens here, in Python.
  - At most I(max_lines) entries are returned, the newest; RV(dropped) counts the others.
  - Changes nothing; runs in check mode too.
options:
  source:
    description: Which log to read.
    type: str
    choices: [journal, file]
    required: true
  unit:
    description: The systemd unit whose journal is read (with C(journal)).
    type: str
  path:
    description: The access log read (with C(file)).
    type: path
  minutes:
    description: Length of the window, ending now.
    type: int
    required: true
  request_id:
    description: Keep only the entries that contain this id; empty keeps all.
    type: str
    default: ""
  max_lines:
    description: Most entries returned.
    type: int
    default: 5000
"""

RETURN = r"""
entries:
  description: The entries of the window, oldest first.
  type: list
  elements: dict
  returned: always
  contains:
    time:
      description: Seconds since the epoch.
      type: float
    message:
      description: The journal's MESSAGE, or the access log's line.
      type: str
dropped:
  description: Entries of the window left out by I(max_lines).
  type: int
  returned: always
missing:
  description: The access log does not exist (with C(file)).
  type: bool
  returned: always
"""

import collections
import datetime
import json
import os
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule

BLOCK_SIZE = 64 * 1024
# Lines are written when their request ends, so a long request's line may
# follow younger ones: the backwards read goes this far past the window
# before it trusts that nothing older is left.
OUT_OF_ORDER_SECONDS = 60


def journal_entries(lines, request_id=""):
    """(time, message) of `journalctl --output json` lines that contain REQUEST_ID (any, when empty)."""
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        message = record.get("MESSAGE")
        if isinstance(message, list):
            # journald gives a message that is not UTF-8 as its bytes.
            message = bytes(message).decode("utf-8", "replace")
        if not isinstance(message, str) or request_id not in message:
            continue
        try:
            stamp = int(record["__REALTIME_TIMESTAMP"]) / 1e6
        except (KeyError, ValueError):
            continue
        yield stamp, message


def line_time(line):
    """Seconds since the epoch of an access log line's JSON "time" field, or None."""
    try:
        stamp = json.loads(line)["time"]
        parsed = datetime.datetime.fromisoformat(stamp)
    except (ValueError, KeyError, TypeError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed.timestamp()


def lines_backwards(handle, block_size=BLOCK_SIZE):
    """The complete lines of a binary file, last first, read a block at a time from its end."""
    handle.seek(0, os.SEEK_END)
    position = handle.tell()
    rest = b""
    while position > 0:
        step = min(block_size, position)
        position -= step
        handle.seek(position)
        chunk = handle.read(step) + rest
        lines = chunk.split(b"\n")
        rest = lines.pop(0)
        for line in reversed(lines):
            if line.strip():
                yield line
    if rest.strip():
        yield rest


def file_entries(handle, since, request_id="", block_size=BLOCK_SIZE):
    """(time, line) of an access log's lines from SINCE on that contain REQUEST_ID, newest first."""
    for raw in lines_backwards(handle, block_size):
        line = raw.decode("utf-8", "replace")
        stamp = line_time(line)
        if stamp is None:
            continue
        if stamp < since - OUT_OF_ORDER_SECONDS:
            return
        if stamp >= since and request_id in line:
            yield stamp, line


def newest(entries, max_lines, newest_first=False):
    """The MAX_LINES newest of ENTRIES, oldest first, and how many were left out.

    ENTRIES come oldest first (the journal) or NEWEST_FIRST (a file read backwards).
    """
    kept = collections.deque(maxlen=None if newest_first else max_lines)
    total = 0
    for entry in entries:
        total += 1
        if not newest_first or len(kept) < max_lines:
            kept.append(entry)
    ordered = sorted(kept)
    return ordered, total - len(ordered)


def read_journal(module, unit, since, request_id, max_lines):
    journalctl = module.get_bin_path("journalctl", required=True)
    # An argv list and a whole-second timestamp: nothing the user typed reaches the command.
    argv = [journalctl, "--unit", unit, "--since", "@%d" % int(since), "--output", "json",
            "--output-fields", "MESSAGE", "--no-pager", "--quiet"]
    # Streamed, so that a busy journal's window is never held in memory whole.
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          errors="replace") as process:
        entries, dropped = newest(
            ((stamp, message) for stamp, message in journal_entries(process.stdout, request_id) if stamp >= since),
            max_lines)
        stderr = process.stderr.read()
    if process.returncode != 0:
        module.fail_json(msg="journalctl for unit %s failed (exit %d): %s" % (unit, process.returncode, stderr.strip()),
                         cmd=argv)
    return entries, dropped


def main():
    module = AnsibleModule(
        argument_spec={
            "source": {"type": "str", "choices": ["journal", "file"], "required": True},
            "unit": {"type": "str"},
            "path": {"type": "path"},
            "minutes": {"type": "int", "required": True},
            "request_id": {"type": "str", "default": ""},
            "max_lines": {"type": "int", "default": 5000},
        },
        required_if=[("source", "journal", ["unit"]), ("source", "file", ["path"])],
        supports_check_mode=True,
    )
    params = module.params
    if params["minutes"] < 1 or params["max_lines"] < 1:
        module.fail_json(msg="minutes and max_lines must be at least 1")
    since = time.time() - 60 * params["minutes"]
    missing = False
    if params["source"] == "journal":
        entries, dropped = read_journal(module, params["unit"], since, params["request_id"], params["max_lines"])
    elif not os.path.exists(params["path"]):
        entries, dropped, missing = [], 0, True
    else:
        with open(params["path"], "rb") as handle:
            entries, dropped = newest(file_entries(handle, since, params["request_id"]), params["max_lines"],
                                      newest_first=True)
    module.exit_json(changed=False, missing=missing, dropped=dropped,
                     entries=[{"time": stamp, "message": message} for stamp, message in entries])


if __name__ == "__main__":
    main()
