"""Settings come from the environment through one typed helper; production refuses unsafe values."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.settings.env import env

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET = "k" * 20 + "Zq9!x" * 8


def test_env_helper_casts_and_names_missing_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTPOST_T_INT", "42")
    monkeypatch.setenv("OUTPOST_T_BOOL", "yes")
    monkeypatch.setenv("OUTPOST_T_LIST", "a, b,,c")
    assert env("OUTPOST_T_INT", int) == 42
    assert env("OUTPOST_T_BOOL", bool) is True
    assert env("OUTPOST_T_LIST", list) == ["a", "b", "c"]
    assert env("OUTPOST_T_MISSING", int, 7) == 7
    with pytest.raises(ImproperlyConfigured, match="OUTPOST_T_MISSING"):
        env("OUTPOST_T_MISSING", str)
    monkeypatch.setenv("OUTPOST_T_BAD", "maybe")
    with pytest.raises(ImproperlyConfigured, match="OUTPOST_T_BAD"):
        env("OUTPOST_T_BAD", bool)


def _load_prod(**overrides: str) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings.prod",
        "SECRET_KEY": GOOD_SECRET,
        "DATABASE_URL": "postgres://u@db.internal:5432/outpost",
        "REDIS_URL": "redis://redis.internal:6379/0",
        "ALLOWED_HOSTS": "outpost.example.com",
        **overrides,
    }
    environment = {k: v for k, v in environment.items() if v != "<unset>"}
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True)


def test_production_settings_load_with_real_values() -> None:
    result = _load_prod()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"DEBUG": "true"}, "DEBUG must be off"),
        ({"SECRET_KEY": "<unset>"}, "SECRET_KEY"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY must be a random value"),
        ({"SECRET_KEY": "dev-only-insecure-secret-key-do-not-use-in-production-xxxxxxx"}, "SECRET_KEY must be"),
        ({"DATABASE_URL": "<unset>"}, "DATABASE_URL"),
        ({"REDIS_URL": "<unset>"}, "REDIS_URL"),
        ({"ALLOWED_HOSTS": "<unset>"}, "ALLOWED_HOSTS"),
    ],
)
def test_production_settings_refuse_unsafe_or_missing_values(overrides: dict[str, str], message: str) -> None:
    result = _load_prod(**overrides)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr
