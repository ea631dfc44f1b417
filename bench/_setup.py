"""Shared set-up for benchmarks: a fresh, migrated database of their own.

A benchmark never touches the development database: it creates
``outpost_bench`` on the same server (``DATABASE_URL``'s, or the embedded one),
migrates the public schema, and drops the database again at the end.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "outpost_bench"


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def setup_django() -> str:
    """Point Django at a fresh bench database, migrate it, return its URL."""
    import psycopg

    base_url = os.environ.get("DATABASE_URL")
    if not base_url:
        from config import devservices

        base_url = devservices.postgres_url()
        if not os.environ.get("REDIS_URL"):
            os.environ["REDIS_URL"] = devservices.redis_url(db=2)
    admin_url = _with_database(base_url, "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    bench_url = _with_database(base_url, BENCH_DB)
    os.environ["DATABASE_URL"] = bench_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    started = time.perf_counter()
    call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
    print(f"[setup] migrated the public schema of {BENCH_DB} in {time.perf_counter() - started:.1f}s", flush=True)
    return bench_url


def teardown_django() -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    admin_url = _with_database(os.environ["DATABASE_URL"], "postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


def psycopg_url() -> str:
    """The bench database URL in a form psycopg accepts directly."""
    return os.environ["DATABASE_URL"]


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))
    return ordered[index]
