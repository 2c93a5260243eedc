"""The fleet's logs: reading a window on a host (roles/fleet/library/fleet_logs_read.py) and merging
on the controller (roles/fleet/filter_plugins/fleet_logs.py)."""

import datetime
import io
import json

import pytest

import fleet_logs
import fleet_logs_read

ID = "0f8c1e7a9b2d4c6e8f0a1b2c3d4e5f60"
EPOCH = datetime.datetime(2026, 12, 6, 19, 0, 0, tzinfo=datetime.timezone.utc).timestamp()


def access_line(seconds, request_id=ID, upstream="10.0.0.2:8080", uri="/hello"):
    moment = datetime.datetime.fromtimestamp(EPOCH + seconds, tz=datetime.timezone.utc)
    return json.dumps({"time": moment.isoformat(timespec="seconds"), "request_id": request_id, "method": "GET",
                       "uri": uri, "status": 200, "request_time": 0.004, "upstream_addr": upstream,
                       "upstream_status": "200", "user_agent": "curl/8"}, separators=(",", ":"))


def access_log(*seconds_and_ids):
    return io.BytesIO("".join(access_line(seconds, request_id) + "\n"
                              for seconds, request_id in seconds_and_ids).encode())


def journal_line(seconds, message):
    return json.dumps({"__REALTIME_TIMESTAMP": str(int((EPOCH + seconds) * 1e6)), "MESSAGE": message})


# --- Inputs --------------------------------------------------------------------


@pytest.mark.parametrize("minutes", [1, 10, "10", " 30 ", 10080])
def test_whole_minutes_up_to_a_week_are_accepted(minutes):
    assert fleet_logs.fleet_logs_input_errors(minutes, "") == []


@pytest.mark.parametrize("minutes", [0, -5, "1.5", "ten", "", 10081, True, "10; reboot", None])
def test_a_bad_window_is_named_with_its_value(minutes):
    assert fleet_logs.fleet_logs_input_errors(minutes, "") == [
        f"fleet_logs_minutes={minutes!r} is invalid: expected a whole number of minutes from 1 to 10080"]


@pytest.mark.parametrize("request_id", ["", ID, "demo-1", "a.b:c+d=e@f", "x" * 128])
def test_request_ids_of_nginx_and_the_demo_app_are_accepted(request_id):
    assert fleet_logs.fleet_logs_input_errors(10, request_id) == []


@pytest.mark.parametrize("request_id", ["a b", "$(reboot)", "id;rm -rf /", "'quoted'", "-n1", "x" * 129, "a\nb",
                                        "a/b", None, 12])
def test_a_request_id_that_could_be_read_as_anything_else_is_refused(request_id):
    errors = fleet_logs.fleet_logs_input_errors(10, request_id)
    assert len(errors) == 1 and errors[0].startswith(f"fleet_logs_request_id={request_id!r} is invalid")


def test_both_bad_inputs_are_reported_at_once():
    assert len(fleet_logs.fleet_logs_input_errors("x", "a b")) == 2


# --- Reading the access log backwards ------------------------------------------------


@pytest.mark.parametrize("block_size", [7, 64, 1 << 16])
def test_lines_are_read_last_first_whatever_the_block_size(block_size):
    handle = io.BytesIO(b"one\ntwo\n\nthree\nfour")
    assert list(fleet_logs_read.lines_backwards(handle, block_size)) == [b"four", b"three", b"two", b"one"]


def test_only_the_window_of_the_file_is_kept():
    handle = access_log((0, "old"), (100, "in-1"), (200, "in-2"))
    entries = list(fleet_logs_read.file_entries(handle, since=EPOCH + 50))
    assert [json.loads(line)["request_id"] for _, line in entries] == ["in-2", "in-1"]
    assert [stamp for stamp, _ in entries] == [EPOCH + 200, EPOCH + 100]


def test_reading_stops_well_before_the_start_of_the_file():
    # Lines far older than the window are never parsed: the read stops at the first one.
    lines = [access_line(0, "old")] + ["not json, never reached"] * 3 + [access_line(3600, "new")]
    handle = io.BytesIO(("\n".join(lines) + "\n").encode())
    seen = []
    original = fleet_logs_read.line_time
    fleet_logs_read.line_time = lambda line: seen.append(line) or original(line)
    try:
        entries = list(fleet_logs_read.file_entries(handle, since=EPOCH + 3000))
    finally:
        fleet_logs_read.line_time = original
    assert len(entries) == 1
    assert "not json, never reached" in seen and seen[-1] == lines[0]


def test_a_line_slightly_out_of_order_at_the_window_s_edge_is_still_found():
    handle = access_log((95, "late-finisher"), (110, "a"), (105, "b"))
    ids = [json.loads(line)["request_id"] for _, line in fleet_logs_read.file_entries(handle, since=EPOCH + 100)]
    assert ids == ["b", "a"]


def test_only_the_lines_with_the_request_id_are_kept():
    handle = access_log((10, "other"), (20, ID), (30, "other"))
    entries = list(fleet_logs_read.file_entries(handle, since=EPOCH, request_id=ID))
    assert [json.loads(line)["request_id"] for _, line in entries] == [ID]


def test_lines_that_are_not_json_with_a_time_are_skipped():
    handle = io.BytesIO(b'garbage\n{"no_time": 1}\n' + access_line(10).encode() + b"\n")
    assert len(list(fleet_logs_read.file_entries(handle, since=EPOCH))) == 1


def test_the_newest_lines_are_kept_oldest_first_from_a_file():
    entries, dropped = fleet_logs_read.newest([(3, "c"), (2, "b"), (1, "a")], 2, newest_first=True)
    assert (entries, dropped) == ([(2, "b"), (3, "c")], 1)


def test_the_newest_lines_are_kept_oldest_first_from_the_journal():
    entries, dropped = fleet_logs_read.newest([(1, "a"), (2, "b"), (3, "c")], 2)
    assert (entries, dropped) == ([(2, "b"), (3, "c")], 1)


# --- Reading the journal ------------------------------------------------------------


def test_journal_entries_carry_their_time_and_message():
    lines = [journal_line(1, "Started greeter.service"), journal_line(2, json.dumps({"request_id": ID}))]
    assert list(fleet_logs_read.journal_entries(lines)) == [(EPOCH + 1, "Started greeter.service"),
                                                            (EPOCH + 2, json.dumps({"request_id": ID}))]


def test_journal_entries_are_filtered_by_request_id():
    lines = [journal_line(1, "Started greeter.service"), journal_line(2, f'{{"request_id": "{ID}"}}')]
    assert [message for _, message in fleet_logs_read.journal_entries(lines, ID)] == [f'{{"request_id": "{ID}"}}']


def test_a_journal_message_that_is_not_utf8_is_read_from_its_bytes():
    line = json.dumps({"__REALTIME_TIMESTAMP": "1000000", "MESSAGE": list(b"caf\xe9")})
    assert list(fleet_logs_read.journal_entries([line])) == [(1.0, "caf\ufffd")]


def test_journal_lines_that_cannot_be_read_are_skipped():
    lines = ["not json", json.dumps({"MESSAGE": "no time"}), json.dumps({"__REALTIME_TIMESTAMP": "1"})]
    assert list(fleet_logs_read.journal_entries(lines)) == []


# --- Merging on the controller -----------------------------------------------------------


def read_result(name, *entries, **extra):
    return {"item": {"name": name}, "entries": [{"time": EPOCH + t, "message": m} for t, m in entries], **extra}


def test_the_hosts_lines_are_merged_in_time_order_with_one_host_tag_each():
    merged = fleet_logs.fleet_logs_merge({
        "app1": [read_result("journal", (1, "Started"), (5, "Booting worker"))],
        "lb1": [read_result("access", (3, access_line(3)))],
        "app2": [read_result("journal", (2, "Started")), {"skipped": True}],
    })
    assert [line.split()[1] for line in merged["lines"]] == ["app1", "app2", "lb1", "app1"]
    assert merged["lines"][0] == "2026-12-06T19:00:01.000Z app1 Started"
    assert merged["notes"] == []


def test_a_load_balancer_line_shows_the_request_and_the_backend_that_served_it():
    merged = fleet_logs.fleet_logs_merge({"lb1": [read_result("access", (3, access_line(3)))]})
    assert merged["lines"] == [
        f"2026-12-06T19:00:03.000Z lb1 GET /hello 200 upstream_addr=10.0.0.2:8080 upstream_status=200 "
        f"request_time=0.004 request_id={ID}"]


def test_a_gunicorn_access_line_is_shown_short():
    gunicorn = json.dumps({"time": "[06/Dec/2026:19:00:03 +0000]", "logger": "gunicorn.access", "request_id": ID,
                           "method": "GET", "path": "/hello", "query": "lang=fr", "status": 200, "bytes": "52",
                           "duration_ms": 3, "user_agent": "curl/8"})
    assert fleet_logs.compact(gunicorn) == f"GET /hello?lang=fr 200 duration_ms=3 request_id={ID}"


def test_an_app_s_json_log_line_shows_its_level_message_and_request_id():
    line = json.dumps({"level": "ERROR", "message": "GET /boom 500", "request_id": ID})
    assert fleet_logs.compact(line) == f"ERROR GET /boom 500 request_id={ID}"


@pytest.mark.parametrize("message", ["plain text", "[1, 2]", '{"other": "shape"}', ""])
def test_other_messages_are_shown_as_they_are(message):
    assert fleet_logs.compact(message) == message


def test_host_tags_are_aligned():
    merged = fleet_logs.fleet_logs_merge({"lb1": [read_result("a", (1, "x"))],
                                          "backend-12": [read_result("b", (2, "y"))]})
    assert [line.split(" ", 1)[1] for line in merged["lines"]] == ["lb1        x", "backend-12 y"]


def test_a_missing_log_and_lines_left_out_are_noted():
    merged = fleet_logs.fleet_logs_merge({
        "lb1": [read_result("/var/log/nginx/site.access.log", missing=True)],
        "app1": [read_result("journal of greeter", (1, "x"), dropped=42)],
    })
    assert merged["notes"] == ["app1: journal of greeter: 42 older lines of the window left out",
                               "lb1: /var/log/nginx/site.access.log does not exist"]


def test_nothing_to_merge_gives_no_lines():
    assert fleet_logs.fleet_logs_merge({"app1": [], "lb1": None}) == {"lines": [], "notes": []}


def test_timestamps_are_utc_to_the_millisecond():
    assert fleet_logs.timestamp(EPOCH + 1.23456) == "2026-12-06T19:00:01.234Z"
