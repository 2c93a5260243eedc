import re
from datetime import UTC, datetime, timedelta

import pytest

from hello_service import create_app

REQUEST_FIELDS = {
    "time",
    "level",
    "logger",
    "message",
    "method",
    "path",
    "status",
    "duration_ms",
    "request_id",
    "remote_addr",
}


def _request_lines(records):
    return [record for record in records if record["logger"] == "hello_service.request"]


def test_one_json_line_per_request(client, log_records):
    client.get("/requestme")
    client.get("/healthz")
    assert len(_request_lines(log_records())) == 2


def test_request_line_has_every_field(client, log_records):
    client.get("/requestme")
    assert REQUEST_FIELDS <= set(_request_lines(log_records())[0])


def test_request_line_values(client, log_records):
    client.post("/echo", json={"x": 1}, environ_base={"REMOTE_ADDR": "127.0.0.5"})
    line = _request_lines(log_records())[0]
    assert line["level"] == "INFO"
    assert (line["method"], line["path"], line["status"]) == ("POST", "/echo", 200)
    assert line["remote_addr"] == "127.0.0.5"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0


def test_time_is_iso8601_utc(client, log_records):
    client.get("/requestme")
    logged = datetime.fromisoformat(_request_lines(log_records())[0]["time"].replace("Z", "+00:00"))
    assert logged.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - logged) < timedelta(minutes=1)


def test_error_responses_are_logged(client, log_records):
    client.get("/nowhere")
    assert _request_lines(log_records())[0]["status"] == 404


def test_request_id_from_header_is_logged(client, log_records):
    client.get("/requestme", headers={"X-Request-ID": "abc-123"})
    assert _request_lines(log_records())[0]["request_id"] == "abc-123"


def test_request_id_from_header_is_echoed(client):
    response = client.get("/requestme", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"


def test_request_id_generated_when_absent(client, log_records):
    response = client.get("/requestme")
    generated = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert _request_lines(log_records())[0]["request_id"] == generated


def test_each_request_gets_its_own_generated_id(client):
    first = client.get("/requestme").headers["X-Request-ID"]
    second = client.get("/requestme").headers["X-Request-ID"]
    assert first != second


@pytest.mark.parametrize("unsafe", ["a" * 129, "has space", 'quote"d', "tab\tbed"])
def test_unsafe_request_id_is_replaced(client, unsafe):
    echoed = client.get("/requestme", headers={"X-Request-ID": unsafe}).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", echoed)


def test_log_level_setting_filters_request_lines(log_stream, log_records):
    app = create_app({"TESTING": True, "LOG_STREAM": log_stream, "LOG_LEVEL": "WARNING", "REQUEST_LOG": True})
    app.test_client().get("/requestme")
    assert log_records() == []


@pytest.fixture
def quiet_client(log_stream):
    """A client of the app with its default settings: REQUEST_LOG off."""
    app = create_app({"TESTING": True, "LOG_STREAM": log_stream, "PROPAGATE_EXCEPTIONS": False})

    @app.get("/_test/boom")
    def boom():
        raise RuntimeError("boom")

    return app.test_client()


def test_request_log_off_skips_successful_and_client_error_requests(quiet_client, log_records):
    quiet_client.get("/requestme")
    quiet_client.post("/echo", json={"x": 1})
    quiet_client.get("/nowhere")
    assert log_records() == []


def test_request_log_off_still_logs_server_errors(quiet_client, log_records):
    quiet_client.get("/_test/boom", headers={"X-Request-ID": "boom-2"})
    lines = _request_lines(log_records())
    assert [(line["status"], line["level"], line["request_id"]) for line in lines] == [(500, "ERROR", "boom-2")]


def test_request_log_off_still_echoes_request_id(quiet_client):
    assert quiet_client.get("/requestme", headers={"X-Request-ID": "abc-9"}).headers["X-Request-ID"] == "abc-9"


def test_secret_key_is_never_logged(monkeypatch, log_stream):
    secret = "log-test-secret-0123456789abcdefgh"
    monkeypatch.setenv("HELLO_SERVICE_SECRET_KEY", secret)
    app = create_app({"TESTING": True, "LOG_STREAM": log_stream, "PROPAGATE_EXCEPTIONS": False})

    @app.get("/_test/boom")
    def boom():
        raise RuntimeError("boom")

    client = app.test_client()
    client.get("/requestme")
    client.post("/echo", json={"x": 1})
    client.get("/_test/boom")
    assert "Traceback" in log_stream.getvalue()
    assert secret not in log_stream.getvalue()
