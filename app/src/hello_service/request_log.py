"""Request ids and one JSON log line for every request."""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Flask, Response, g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-ID"

# A caller-supplied id is reused only if it is short and plain, so it cannot
# smuggle control characters or huge values into logs and headers.
_ACCEPTABLE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")


def _request_id_for_this_request() -> str:
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    if _ACCEPTABLE_REQUEST_ID.fullmatch(offered):
        return offered
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Stamp the current request id on every record logged during a request.

    This ties an error's traceback to the request log line of the same request.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id") and has_request_context():
            record.request_id = g.get("request_id")
        return True


def init_request_logging(app: Flask) -> None:
    request_logger = logging.getLogger(f"{app.import_name}.request")
    # With REQUEST_LOG off the load balancer's access log is the request log
    # (same X-Request-ID); the service still reports its own failures.
    log_every_request = app.config["REQUEST_LOG"]

    @app.before_request
    def start_request() -> None:
        g.request_id = _request_id_for_this_request()
        g.request_started = time.perf_counter()

    @app.after_request
    def log_request(response: Response) -> Response:
        # Runs for error responses too, including unhandled exceptions, because
        # Flask finalizes the 500 response through the after_request hooks.
        if "request_id" not in g:
            start_request()
        duration_ms = (time.perf_counter() - g.request_started) * 1000
        response.headers[REQUEST_ID_HEADER] = g.request_id
        failed = response.status_code >= 500
        if not (log_every_request or failed):
            return response
        request_logger.log(
            logging.ERROR if failed else logging.INFO,
            "%s %s %s",
            request.method,
            request.path,
            response.status_code,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round(duration_ms, 3),
                "request_id": g.request_id,
                "remote_addr": request.remote_addr,
            },
        )
        return response
