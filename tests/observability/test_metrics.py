"""Prometheus metrics: protected, bounded labels, HTTP, sync and Celery series."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.sync.helpers import mutation, push, push_ok

pytestmark = pytest.mark.django_db


def scrape(token: str = "metrics-test-token") -> str:
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    return response.content.decode()


def value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture(autouse=True)
def _token(settings) -> None:
    settings.METRICS_TOKEN = "metrics-test-token"


def test_metrics_need_the_token() -> None:
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401


def test_metrics_are_off_without_a_token_outside_debug(settings) -> None:
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics").status_code == 404


def test_http_requests_are_counted_by_route_pattern(org) -> None:
    before = value(scrape(), "outpost_http_requests_total", route="api/v1/collections/<str:name>", status="404")
    org.client().get("/api/v1/collections/some-unique-name-123")
    text = scrape()
    assert value(text, "outpost_http_requests_total", route="api/v1/collections/<str:name>", status="404") == before + 1
    assert "some-unique-name-123" not in text
    assert "outpost_http_request_duration_seconds_bucket" in text


def test_sync_metrics_by_plan_tier_never_by_organisation(org) -> None:
    text = scrape()
    pushes = value(text, "outpost_sync_pushes_total", tier="free")
    applied = value(text, "outpost_sync_mutations_total", tier="free", status="applied")
    rejected = value(text, "outpost_sync_rejections_total", tier="free", code="batch_rejected")
    client = org.client()
    push_ok(client, [mutation("a", data={}), mutation("b", data={})])
    push(client, [mutation("c", "bogus")])
    client.get("/api/v1/sync/pull")
    text = scrape()
    assert value(text, "outpost_sync_pushes_total", tier="free") == pushes + 1
    assert value(text, "outpost_sync_mutations_total", tier="free", status="applied") == applied + 2
    assert value(text, "outpost_sync_rejections_total", tier="free", code="batch_rejected") == rejected + 1
    assert value(text, "outpost_sync_pulls_total", tier="free") >= 1
    assert "acme" not in text
    assert 'organisation="' not in text


def test_celery_tasks_are_counted_and_timed(org) -> None:
    from shared_apps.apikeys.tasks import cleanup_expired

    before = value(scrape(), "outpost_celery_tasks_total", task="shared_apps.apikeys.tasks.cleanup_expired")
    cleanup_expired.delay()
    text = scrape()
    assert value(text, "outpost_celery_tasks_total", task="shared_apps.apikeys.tasks.cleanup_expired") == before + 1
    assert "outpost_celery_task_duration_seconds_count" in text
