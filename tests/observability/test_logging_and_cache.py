"""JSON request logs carry context and nothing secret; the tenant cache never crosses organisations."""

from __future__ import annotations

import json
import logging

import pytest
from django.core.cache import caches

from shared_apps.core.logging import JsonFormatter, RequestContextFilter
from tenants.context import tenant_context
from tests.sync.helpers import mutation, push_ok

pytestmark = pytest.mark.django_db


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(JsonFormatter())
        self.addFilter(RequestContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def request_log() -> _Capture:
    handler = _Capture()
    logger = logging.getLogger("outpost.request")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(previous)


def test_request_log_lines_are_json_with_context_and_no_secrets(org, request_log: _Capture) -> None:
    push_ok(org.client(), [mutation("doc-1", data={"diary": "very private words"})])
    line = json.loads(request_log.lines[-1])
    assert line["method"] == "POST"
    assert line["path"] == "/api/v1/sync/push"
    assert line["status"] == 200
    assert line["organisation"] == "acme"
    assert line["key_prefix"] == org.api_key.display_prefix
    assert len(line["request_id"]) == 32
    assert isinstance(line["duration_ms"], float)
    raw = "\n".join(request_log.lines)
    assert "very private words" not in raw
    assert org.key.split("_")[2] not in raw


def test_an_incoming_request_id_is_kept_and_echoed(org, request_log: _Capture) -> None:
    response = org.client().get("/api/v1/whoami", HTTP_X_REQUEST_ID="trace-abc-123")
    assert response["X-Request-ID"] == "trace-abc-123"
    assert json.loads(request_log.lines[-1])["request_id"] == "trace-abc-123"
    bogus = org.client().get("/api/v1/whoami", HTTP_X_REQUEST_ID="<script>")
    assert bogus["X-Request-ID"] != "<script>"


def test_the_default_cache_is_keyed_by_tenant_schema(org, other_org) -> None:
    cache = caches["default"]
    with tenant_context(org.organisation):
        cache.set("dashboard:counts", {"documents": 42})
        assert cache.get("dashboard:counts") == {"documents": 42}
    with tenant_context(other_org.organisation):
        assert cache.get("dashboard:counts") is None
        cache.set("dashboard:counts", {"documents": 7})
    with tenant_context(org.organisation):
        assert cache.get("dashboard:counts") == {"documents": 42}
    assert cache.get("dashboard:counts") is None  # the public schema has its own space too
