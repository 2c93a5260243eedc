# -*- coding: utf-8 -*-
"""The fleet's logs on the controller: check the inputs, merge the hosts' entries in time order.

fleet_logs_input_errors returns the problems of the window and request id
(empty: fine), each naming the variable and the bad value, so that the
playbook stops before anything runs on a host.

fleet_logs_merge takes what fleet_logs_read returned on each host and gives
one list of lines, oldest first, each "TIME HOST MESSAGE", plus notes about
what could not be read in full. A JSON line (the load balancer's access log,
Gunicorn's access log, an app's JSON logging) is shown in a short form:
method, path and status first, then the fields that tell where and how
long, the request id last.
"""

from __future__ import annotations

import datetime
import json
import re

# Longest window: a week. Longer reads belong to a log store, not to SSH.
MAX_MINUTES = 7 * 24 * 60
# What an X-Request-ID is in the demo app and nginx ($request_id: 32 hex
# digits): no space, quote or shell character, and not starting with a dash.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:+=@][A-Za-z0-9._:+=@-]{0,127}\Z")
# Shown after method, path and status, in this order, when a JSON line has them.
DETAIL_FIELDS = ("upstream_addr", "upstream_status", "request_time", "duration_ms", "request_id")
ABSENT = ("", "-", None)


def fleet_logs_input_errors(minutes, request_id=""):
    """Problems of the window (whole minutes, 1 to a week) and the request id (empty, or an id's characters)."""
    errors = []
    text = str(minutes).strip()
    if isinstance(minutes, bool) or not text.isdigit() or not 1 <= int(text) <= MAX_MINUTES:
        errors.append(f"fleet_logs_minutes={minutes!r} is invalid: expected a whole number of minutes "
                      f"from 1 to {MAX_MINUTES}")
    if request_id is None or not isinstance(request_id, str) or (request_id and not REQUEST_ID.match(request_id)):
        errors.append(f"fleet_logs_request_id={request_id!r} is invalid: expected empty or 1 to 128 letters, "
                      "digits and ._:+=@- not starting with -")
    return errors


def timestamp(seconds):
    """SECONDS since the epoch in UTC, ISO 8601 to the millisecond."""
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def compact(message):
    """A JSON object's line as 'METHOD PATH STATUS key=value...'; any other message as it is."""
    try:
        record = json.loads(message)
    except ValueError:
        return message
    if not isinstance(record, dict):
        return message
    words = []
    if record.get("method") not in ABSENT:
        path = record.get("uri") or record.get("path") or ""
        if record.get("query") not in ABSENT:
            path += "?" + str(record["query"])
        words += [str(record["method"]), path, str(record.get("status", ""))]
    elif record.get("message") not in ABSENT:
        words += [str(value) for value in (record.get("level"), record.get("message")) if value not in ABSENT]
    else:
        return message
    words += [f"{name}={record[name]}" for name in DETAIL_FIELDS if record.get(name) not in ABSENT]
    return " ".join(word for word in words if word)


def fleet_logs_merge(results_by_host):
    """Merge {host: fleet_logs_read results (a loop's)} into {"lines": [...], "notes": [...]}, oldest line first."""
    entries, notes = [], []
    for host, results in sorted((results_by_host or {}).items()):
        for result in results or []:
            if not isinstance(result, dict) or result.get("skipped"):
                continue
            what = result.get("item", {}).get("name", "log") if isinstance(result.get("item"), dict) else "log"
            if result.get("missing"):
                notes.append(f"{host}: {what} does not exist")
            if result.get("dropped"):
                notes.append(f"{host}: {what}: {result['dropped']} older lines of the window left out")
            entries += [(entry["time"], host, entry["message"]) for entry in result.get("entries", [])]
    # Stable: lines of the same instant keep their host's order.
    entries.sort(key=lambda entry: entry[0])
    width = max((len(host) for _, host, _ in entries), default=0)
    lines = [f"{timestamp(seconds)} {host:<{width}} {compact(message)}" for seconds, host, message in entries]
    return {"lines": lines, "notes": notes}


class FilterModule:
    def filters(self):
        return {
            "fleet_logs_input_errors": fleet_logs_input_errors,
            "fleet_logs_merge": fleet_logs_merge,
        }
