"""The audit trail's file: appended lines, and what is read back from its end."""

import datetime
import json

import pytest
from ansible.module_utils import fleet_trail as fleet_audit

NOW = datetime.datetime(2026, 12, 6, 12, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "state" / "audit.jsonl")


def line(operation, outcome, release):
    return {"operation": operation, "outcome": outcome, "release": release, "hosts": ["app1"]}


def test_an_entry_is_one_json_line_stamped_with_the_time(path):
    written = fleet_audit.append(path, line("deploy", "succeeded", "r1"), now=NOW)
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    assert len(lines) == 1 and json.loads(lines[0]) == written
    assert written["time"] == "2026-12-06T12:00:00.000000Z"


def test_lines_are_appended_and_the_last_ones_read_oldest_first(path):
    for index in range(5):
        fleet_audit.append(path, line("deploy", "succeeded", f"r{index}"))
    entries, _ = fleet_audit.tail(path, 3)
    assert [entry["release"] for entry in entries] == ["r2", "r3", "r4"]


def test_the_last_good_release_skips_failed_runs_and_maintenance(path):
    fleet_audit.append(path, line("deploy", "succeeded", "good"))
    fleet_audit.append(path, line("deploy", "failed", "bad"))
    fleet_audit.append(path, line("maintenance", "succeeded", ""))
    assert fleet_audit.tail(path, 0) == ([], "good")


def test_a_rollback_that_succeeded_is_the_last_good_release(path):
    fleet_audit.append(path, line("deploy", "succeeded", "new"))
    fleet_audit.append(path, line("rollback", "succeeded", "old"))
    assert fleet_audit.tail(path, 1)[1] == "old"


def test_no_trail_reads_as_empty(path):
    assert fleet_audit.tail(path, 10) == ([], "")


def test_an_unreadable_line_is_shown_not_dropped(path):
    fleet_audit.append(path, line("deploy", "succeeded", "r1"))
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("garbage\n")
    entries, last_good = fleet_audit.tail(path, 5)
    assert entries[-1] == {"unreadable": "garbage"} and last_good == "r1"


def test_only_the_end_of_a_long_trail_is_read_and_no_half_line_is_returned(path):
    for index in range(200):
        fleet_audit.append(path, line("deploy", "succeeded", f"release-{index:04d}"))
    entries, last_good = fleet_audit.tail(path, 1000, tail_bytes=1000)
    assert 0 < len(entries) < 200 and all("unreadable" not in entry for entry in entries)
    assert last_good == "release-0199"
