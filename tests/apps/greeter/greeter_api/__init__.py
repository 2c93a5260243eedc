"""greeter-api: the deploy role's second test app.

Unlike hello-service it has a flat layout, is served through its factory
(``greeter_api:create_app()``), answers its health check at /ping without a
release id, packs answers with msgpack (a compiled wheel), reads the time
zone database Debian's tzdata package installs, and refuses to start
without its greeting.
"""

from __future__ import annotations

import hmac
import os
import zoneinfo

import msgpack
from flask import Flask, Response, jsonify, request

# What a release changes; the tests deploy copies with another value.
VERSION = 1
GREETING_VARIABLE = "GREETER_GREETING"
SIGNING_KEY_VARIABLE = "GREETER_SIGNING_KEY"
ZONE = "Europe/Paris"


class MissingSetting(RuntimeError):
    """A setting the app cannot start without is not in its environment."""


def create_app() -> Flask:
    greeting = os.environ.get(GREETING_VARIABLE, "").strip()
    if not greeting:
        raise MissingSetting(
            f"{GREETING_VARIABLE} is not set: greeter-api needs the greeting it answers with "
            "in its environment (the deploy's flask_app_environment)"
        )
    signing_key = os.environ.get(SIGNING_KEY_VARIABLE, "").encode()
    # From the system's time zone database (Debian's tzdata), not a Python package.
    zone = zoneinfo.ZoneInfo(ZONE)

    app = Flask(__name__)

    @app.get("/hello")
    def hello():
        body = {"greeting": greeting, "version": VERSION, "zone": zone.key}
        if signing_key:
            body["signature"] = hmac.new(signing_key, greeting.encode(), "sha256").hexdigest()[:16]
        if request.accept_mimetypes.best == "application/msgpack":
            return Response(msgpack.packb(body), mimetype="application/msgpack")
        return jsonify(body)

    @app.get("/ping")
    def ping():
        return jsonify(ok=True)

    return app
