"""Every error answered as JSON, never as HTML or a traceback."""

from __future__ import annotations

import json

from flask import Flask, Response, g
from werkzeug.exceptions import HTTPException


def _http_error_as_json(error: HTTPException) -> Response:
    # Start from Werkzeug's own response so headers that belong to the error
    # (Allow on 405, Retry-After...) are kept; only the body is replaced.
    response = error.get_response()
    response.set_data(
        json.dumps(
            {
                "error": (error.name or "error").lower(),
                "status": error.code,
                "detail": error.description,
                "request_id": g.get("request_id"),
            }
        )
    )
    response.mimetype = "application/json"
    return response


def register_error_handlers(app: Flask) -> None:
    # Unhandled exceptions reach this handler as InternalServerError (an
    # HTTPException) after Flask has logged the traceback, so the client gets
    # the generic 500 description and the log gets the details.
    app.register_error_handler(HTTPException, _http_error_as_json)
