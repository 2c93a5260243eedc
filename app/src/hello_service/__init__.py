"""hello-service: a small JSON web service built with Flask."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import ConfigError, load_settings
from .errors import register_error_handlers
from .json_logging import configure_json_logging
from .request_log import RequestIdFilter, init_request_logging
from .views import bp as service_blueprint

__version__ = "1.2.0"
__all__ = ["ConfigError", "create_app"]

# /echo is only for load tests; anything bigger than this is refused with 413.
MAX_REQUEST_BODY_BYTES = 4 * 1024


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application from HELLO_SERVICE_* environment variables.

    ``test_config`` entries override the environment (tests use it); a
    ``LOG_STREAM`` entry redirects the JSON log lines away from stderr.
    Raises ConfigError naming the variable when a value is invalid.
    """
    app = Flask(__name__)
    app.config.from_mapping(
        load_settings(os.environ),
        MAX_CONTENT_LENGTH=MAX_REQUEST_BODY_BYTES,
        LOG_STREAM=sys.stderr,
    )
    if test_config is not None:
        app.config.from_mapping(test_config)

    configure_json_logging(
        app.import_name,
        app.config["LOG_LEVEL"],
        app.config["LOG_STREAM"],
        filters=(RequestIdFilter(),),
    )

    proxy_count = app.config["PROXY_COUNT"]
    if proxy_count:
        # Trust exactly as many X-Forwarded-* hops as there are proxies in
        # front; trusting more would let clients spoof their address.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app,
            x_for=proxy_count,
            x_proto=proxy_count,
            x_host=proxy_count,
            x_port=proxy_count,
        )

    init_request_logging(app)
    register_error_handlers(app)
    app.register_blueprint(service_blueprint)
    return app
