"""Development server: ``python -m hello_service [--host HOST] [--port PORT]``.

Werkzeug's server is for a developer's machine only; production runs
Gunicorn with the deploy role's gunicorn.conf.py. It listens on loopback by default so that a
debugger, if switched on with HELLO_SERVICE_DEBUG, is never reachable from
the network by accident.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence

from hello_service import create_app
from hello_service.config import ENV_PREFIX, ConfigError

HOST_VARIABLE = ENV_PREFIX + "DEV_HOST"
PORT_VARIABLE = ENV_PREFIX + "DEV_PORT"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9090


def _port(variable: str, value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise ConfigError(variable, value, "a TCP port 1-65535") from None
    if not 1 <= port <= 65535:
        raise ConfigError(variable, value, "a TCP port 1-65535")
    return port


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m hello_service",
        description="Run hello-service on the development server.",
    )
    parser.add_argument(
        "--host",
        default=environ.get(HOST_VARIABLE, DEFAULT_HOST),
        help=f"address to listen on (env {HOST_VARIABLE}, default {DEFAULT_HOST})",
    )
    parser.add_argument(
        "--port",
        type=lambda value: _port("--port", value),
        default=_port(PORT_VARIABLE, environ.get(PORT_VARIABLE, str(DEFAULT_PORT))),
        help=f"TCP port (env {PORT_VARIABLE}, default {DEFAULT_PORT})",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv, os.environ)
    app = create_app()
    app.run(host=args.host, port=args.port, debug=app.debug)


if __name__ == "__main__":
    main()
