import io
import json
import os
from pathlib import Path

import pytest

from hello_service import create_app

APP_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch):
    """Settings exported in the developer's shell must not change results."""
    for key in list(os.environ):
        if key.startswith("HELLO_SERVICE_"):
            monkeypatch.delenv(key)


@pytest.fixture
def log_stream():
    return io.StringIO()


@pytest.fixture
def log_records(log_stream):
    """Return a function that parses every JSON log line written so far."""

    def parse():
        return [json.loads(line) for line in log_stream.getvalue().splitlines()]

    return parse


@pytest.fixture
def app(log_stream):
    # With the request log on, so that tests can see what each request did.
    return create_app({"TESTING": True, "LOG_STREAM": log_stream, "REQUEST_LOG": True})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def app_dir():
    return APP_DIR
