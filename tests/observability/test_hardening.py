"""Hardening: check --deploy is clean in production, security headers, body and depth limits."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]


def test_check_deploy_is_clean_with_production_settings() -> None:
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings.prod",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "DATABASE_URL": "postgres://outpost@db.internal:5432/outpost",
        "REDIS_URL": "redis://redis.internal:6379/0",
        "ALLOWED_HOSTS": "outpost.example.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.django_db
def test_pages_carry_csp_and_frame_denial() -> None:
    response = Client().get("/admin/login/")
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"]


@pytest.mark.django_db
def test_api_responses_are_not_cacheable(org) -> None:
    response = org.client().get("/api/v1/whoami")
    assert response["Cache-Control"] == "no-store"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_production_cookies_and_hsts_are_strict() -> None:
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, s.SECURE_HSTS_SECONDS, "
        "s.SECURE_SSL_REDIRECT)"
    )
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings.prod",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "DATABASE_URL": "postgres://outpost@db.internal:5432/outpost",
        "REDIS_URL": "redis://redis.internal:6379/0",
        "ALLOWED_HOSTS": "outpost.example.com",
    }
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.stdout.split() == ["True", "True", "True", "31536000", "True"], result.stderr


@pytest.mark.django_db
def test_json_nesting_depth_is_limited_on_every_json_endpoint(org) -> None:
    deep = "[" * 100 + "]" * 100
    response = org.client().patch(
        "/api/v1/collections/todos", data='{"json_schema": ' + deep + "}", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_deep"
