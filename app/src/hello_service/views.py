"""The service's endpoints."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, request
from werkzeug.exceptions import BadRequest

from .responses import json_response

bp = Blueprint("service", __name__)


@bp.get("/requestme")
def hello() -> Response:
    # Kept exactly as the original service answered it: clients depend on it.
    return json_response({"message": "Hello Flask.!!"})


@bp.get("/healthz")
def healthz() -> Response:
    # Deliberately cheap and dependency-free: load balancers call it often,
    # and it must report this process's health, not a backend's.
    return json_response({"status": "ok", "release": current_app.config["RELEASE_ID"]})


@bp.post("/echo")
def echo() -> Response:
    if not current_app.config["ECHO"]:
        abort(404)
    # force=True judges the body, not the Content-Type header, so load tools
    # that post JSON as text/plain still work. Reading the body enforces
    # MAX_CONTENT_LENGTH, so an oversized body ends here with a 413.
    try:
        payload = request.get_json(force=True)
    except BadRequest:
        abort(400, description="The request body must be a JSON document.")
    return json_response({"echo": payload, "release": current_app.config["RELEASE_ID"]})
