import importlib

from flask import Flask

from hello_service import create_app


def test_create_app_returns_flask_app():
    assert isinstance(create_app(), Flask)


def test_testing_flag_comes_from_test_config():
    assert not create_app().testing
    assert create_app({"TESTING": True}).testing


def test_defaults_without_environment():
    config = create_app().config
    assert config["PROXY_COUNT"] == 0
    assert config["RELEASE_ID"] is None
    assert config["LOG_LEVEL"] == "INFO"
    assert config["DEBUG"] is False


def test_environment_variables_are_applied(monkeypatch):
    monkeypatch.setenv("HELLO_SERVICE_PROXY_COUNT", "2")
    monkeypatch.setenv("HELLO_SERVICE_RELEASE_ID", "2024-05-01-abc")
    monkeypatch.setenv("HELLO_SERVICE_LOG_LEVEL", "warning")
    monkeypatch.setenv("HELLO_SERVICE_DEBUG", "true")
    config = create_app().config
    assert config["PROXY_COUNT"] == 2
    assert config["RELEASE_ID"] == "2024-05-01-abc"
    assert config["LOG_LEVEL"] == "WARNING"
    assert config["DEBUG"] is True


def test_test_config_overrides_environment(monkeypatch):
    monkeypatch.setenv("HELLO_SERVICE_RELEASE_ID", "from-env")
    assert create_app({"RELEASE_ID": "from-test"}).config["RELEASE_ID"] == "from-test"


def test_request_body_limit_is_4_kib():
    assert create_app().config["MAX_CONTENT_LENGTH"] == 4096


def test_wsgi_module_exposes_an_app():
    wsgi = importlib.import_module("hello_service.wsgi")
    assert isinstance(wsgi.app, Flask)


def test_secret_key_is_unset_by_default():
    assert create_app().config["SECRET_KEY"] is None


def test_secret_key_from_environment_becomes_flask_secret_key(monkeypatch):
    monkeypatch.setenv("HELLO_SERVICE_SECRET_KEY", "k" * 32)
    assert create_app().config["SECRET_KEY"] == "k" * 32
