"""Health endpoints: /healthz is the process, /readyz is the process plus PostgreSQL and Redis."""

from __future__ import annotations

import pytest
from django.test import Client


def test_healthz_needs_nothing() -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_checks_database_and_redis() -> None:
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


@pytest.mark.django_db
def test_readyz_is_503_when_redis_is_unreachable(settings) -> None:
    from config.settings.cache import caches_for

    settings.CACHES = caches_for("redis://127.0.0.1:1/0")
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "redis": "unreachable"}
