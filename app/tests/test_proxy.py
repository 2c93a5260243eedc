import pytest

from hello_service import create_app

CLIENT = "198.51.100.7"
PROXY = "192.0.2.10"


@pytest.fixture
def app_behind(log_stream):
    """Build the app for a given number of proxies, with a route showing what it sees."""

    def build(proxy_count):
        app = create_app({"TESTING": True, "LOG_STREAM": log_stream, "PROXY_COUNT": proxy_count, "REQUEST_LOG": True})

        @app.get("/_test/seen")
        def seen():
            from flask import request

            return {"remote_addr": request.remote_addr, "scheme": request.scheme, "host": request.host}

        return app

    return build


def _seen(app, headers):
    response = app.test_client().get("/_test/seen", headers=headers, environ_base={"REMOTE_ADDR": PROXY})
    return response.get_json()


def test_forwarded_for_ignored_without_proxies(app_behind):
    assert _seen(app_behind(0), {"X-Forwarded-For": CLIENT})["remote_addr"] == PROXY


def test_forwarded_for_honoured_with_one_proxy(app_behind):
    assert _seen(app_behind(1), {"X-Forwarded-For": CLIENT})["remote_addr"] == CLIENT


def test_only_the_configured_number_of_hops_is_trusted(app_behind):
    spoofed = f"203.0.113.99, {CLIENT}"
    assert _seen(app_behind(1), {"X-Forwarded-For": spoofed})["remote_addr"] == CLIENT


def test_two_proxies_trust_two_hops(app_behind):
    chain = f"{CLIENT}, 192.0.2.20"
    assert _seen(app_behind(2), {"X-Forwarded-For": chain})["remote_addr"] == CLIENT


def test_forwarded_proto_and_host_honoured_with_one_proxy(app_behind):
    seen = _seen(
        app_behind(1),
        {"X-Forwarded-For": CLIENT, "X-Forwarded-Proto": "https", "X-Forwarded-Host": "hello.example"},
    )
    assert (seen["scheme"], seen["host"]) == ("https", "hello.example")


def test_forwarded_proto_ignored_without_proxies(app_behind):
    assert _seen(app_behind(0), {"X-Forwarded-Proto": "https"})["scheme"] == "http"


def test_request_log_shows_forwarded_client_address(app_behind, log_records):
    _seen(app_behind(1), {"X-Forwarded-For": CLIENT})
    assert log_records()[-1]["remote_addr"] == CLIENT
