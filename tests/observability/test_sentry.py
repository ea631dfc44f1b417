"""Errors reach Sentry (a local HTTP server standing in for it) with tags and without secrets."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sentry_sdk

from config.sentry import init_sentry

pytestmark = pytest.mark.django_db


class _Collector(BaseHTTPRequestHandler):
    envelopes: list[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        items = [json.loads(line) for line in body.splitlines() if line.strip().startswith(b"{")]
        _Collector.envelopes.append(items)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def sentry_server() -> Iterator[str]:
    _Collector.envelopes = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    dsn = f"http://public@127.0.0.1:{server.server_port}/1"
    init_sentry(dsn=dsn, environment="test", release="outpost@test")
    yield dsn
    sentry_sdk.flush()
    sentry_sdk.init(dsn=None)
    server.shutdown()


@pytest.mark.urls("tests.urls")
def test_an_api_exception_arrives_tagged_and_scrubbed(org, sentry_server: str) -> None:
    client = org.client()
    client.raise_request_exception = False
    response = client.get(
        "/api/v1/test/explode?token=abc",
        HTTP_COOKIE="sessionid=supersecret",
        HTTP_X_DEBUG=f"see {org.key}",
    )
    assert response.status_code == 500
    sentry_sdk.flush(timeout=5)
    events = [item for envelope in _Collector.envelopes for item in envelope if item.get("exception")]
    assert events, "an exception event arrived"
    event = events[0]
    assert event["exception"]["values"][0]["type"] == "RuntimeError"
    assert event["tags"]["organisation"] == "acme"
    assert event["tags"]["plan"] == "free"
    assert event["environment"] == "test"
    assert event["release"] == "outpost@test"
    raw = json.dumps(_Collector.envelopes)
    secret = org.key.split("_")[2]
    assert secret not in raw, "the API key secret never leaves the process"
    assert "supersecret" not in raw
    assert event["request"]["headers"].get("Authorization") in (None, "[Filtered]")
    assert "abc" not in json.dumps(event["request"])


def test_before_send_scrubs_keys_bodies_and_secret_fields() -> None:
    from config.sentry import before_send

    key = "opk_abcdefghijkl_" + "A" * 40
    event = {
        "request": {"headers": {"Authorization": f"Bearer {key}", "Accept": "json"}, "data": {"title": "private"}},
        "extra": {"message": f"failed with {key}", "password": "hunter2", "nested": [{"api_key": "x"}]},
    }
    scrubbed = before_send(event, {})
    assert scrubbed["request"]["headers"] == {"Authorization": "[Filtered]", "Accept": "json"}
    assert scrubbed["request"]["data"] == "[Filtered]"
    assert scrubbed["extra"]["message"] == "failed with opk_abcdefghijkl_[Filtered]"
    assert scrubbed["extra"]["password"] == "[Filtered]"
    assert scrubbed["extra"]["nested"] == [{"api_key": "[Filtered]"}]
