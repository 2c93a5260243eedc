import pytest
from flask import Flask

from hello_service import ConfigError
from hello_service.__main__ import main, parse_args


def test_defaults_to_loopback_port_9090():
    args = parse_args([], {})
    assert (args.host, args.port) == ("127.0.0.1", 9090)


def test_environment_overrides_defaults():
    args = parse_args([], {"HELLO_SERVICE_DEV_HOST": "0.0.0.0", "HELLO_SERVICE_DEV_PORT": "8000"})
    assert (args.host, args.port) == ("0.0.0.0", 8000)


def test_flags_override_environment():
    args = parse_args(["--host", "::1", "--port", "7000"], {"HELLO_SERVICE_DEV_PORT": "8000"})
    assert (args.host, args.port) == ("::1", 7000)


def test_invalid_port_variable_is_named():
    with pytest.raises(ConfigError, match="HELLO_SERVICE_DEV_PORT='99999'"):
        parse_args([], {"HELLO_SERVICE_DEV_PORT": "99999"})


def test_invalid_port_flag_is_rejected():
    with pytest.raises(SystemExit):
        parse_args(["--port", "http"], {})


@pytest.fixture
def run_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(Flask, "run", lambda self, **kwargs: calls.append(kwargs))
    return calls


def test_main_runs_without_debugger_by_default(run_calls):
    main([])
    assert run_calls == [{"host": "127.0.0.1", "port": 9090, "debug": False}]


def test_main_enables_debugger_only_when_asked(run_calls, monkeypatch):
    monkeypatch.setenv("HELLO_SERVICE_DEBUG", "true")
    main([])
    assert run_calls[0]["debug"] is True
