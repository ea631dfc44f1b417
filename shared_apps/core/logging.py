"""Request-scoped log context and the JSON log formatter.

The request middleware fills :data:`request_context`; the filter copies it onto
every log record, so a line logged deep inside a service still carries the
request id and organisation. Nothing here ever logs headers or bodies.
"""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime
from typing import Any

request_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "outpost_request_context", default=None
)

_CONTEXT_FIELDS = ("request_id", "organisation", "key_prefix")
_STANDARD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def context_update(**values: Any) -> None:
    """Add values (organisation slug, key prefix…) to the current request's log context."""
    current = request_context.get()
    if current is not None:
        current.update(values)


class RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        context = request_context.get() or {}
        for field in _CONTEXT_FIELDS:
            if not hasattr(record, field):
                setattr(record, field, context.get(field, "-"))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context and extras."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)
