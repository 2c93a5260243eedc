"""Log records rendered as one JSON object per line.

journald stores each stderr line as one entry; JSON lines keep the fields
(status, duration, request id...) machine-readable without a parser per
message format.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import IO

# Attributes every LogRecord has; anything else on a record came from
# ``extra=`` (or a filter) and is emitted as its own JSON field.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _utc_iso8601(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": _utc_iso8601(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: a log call must never fail because of an odd extra value.
        return json.dumps(entry, default=str)


def configure_json_logging(
    logger_name: str,
    level: str,
    stream: IO[str],
    filters: tuple[logging.Filter, ...] = (),
) -> logging.Logger:
    """Send ``logger_name`` and its children to ``stream`` as JSON lines."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    for log_filter in filters:
        handler.addFilter(log_filter)

    logger = logging.getLogger(logger_name)
    # Replace rather than add: create_app may run several times in one
    # process (tests, reloader) and each run would otherwise duplicate lines.
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    # Gunicorn and the dev server configure their own handlers higher up;
    # propagating would print every line a second time, not as JSON.
    logger.propagate = False
    return logger
