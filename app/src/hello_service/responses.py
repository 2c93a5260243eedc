"""The one way this service turns data into an HTTP response."""

from __future__ import annotations

import json
from typing import Any

from flask import Response


def json_response(payload: Any, status: int = 200) -> Response:
    # json.dumps with its default separators keeps the /requestme body
    # byte-for-byte what the original service returned, for old clients.
    return Response(json.dumps(payload), status=status, mimetype="application/json")
