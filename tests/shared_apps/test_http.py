"""Work attached to a response runs once the response has been sent, and never breaks it."""

from __future__ import annotations

import io
import logging
import sys

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from shared_apps.core.http import ResponseThenWork

pytestmark = pytest.mark.django_db


def test_the_work_runs_when_the_server_closes_the_response_not_before() -> None:
    done: list[str] = []
    response = ResponseThenWork(b"{}", content_type="application/json", then=lambda: done.append("counted"))
    assert b"".join(response) == b"{}"
    assert done == []  # the body is out before anything else happens
    response.close()
    response.close()  # a second close does not run the work again
    assert done == ["counted"]


def test_a_failing_piece_of_work_is_logged_and_the_response_still_closes(caplog) -> None:
    def broken() -> None:
        raise ConnectionError("redis is down")

    response = ResponseThenWork(b"{}", content_type="application/json", then=broken)
    closed: list[bool] = []
    response._resource_closers.append(lambda: closed.append(True))
    with caplog.at_level(logging.ERROR, logger="outpost.http"):
        response.close()
    assert closed == [True]
    assert "work after the response failed" in caplog.text


def test_usage_of_a_push_is_counted_after_the_wsgi_response_is_closed(org) -> None:
    from billing.usage import usage_today

    body = b'{"device_id":"d1","mutations":[{"mutation_id":"m1","collection":"todos","id":"a","op":"put","data":{}}]}'
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/v1/sync/push",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "HTTP_AUTHORIZATION": f"Bearer {org.key}",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
    }
    statuses: list[str] = []
    # As Django's test client does: the test's own database connection must survive the request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        response = WSGIHandler()(environ, lambda status, headers, exc_info=None: statuses.append(status))
        assert b"".join(response).startswith(b'{"results":[')
        assert statuses == ["200 OK"]
        assert usage_today(organisation_id=org.organisation.pk)["mutations"] == 0  # sent, not yet counted
        response.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    assert usage_today(organisation_id=org.organisation.pk)["mutations"] == 1
