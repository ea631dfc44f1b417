"""Start a real Celery worker for a test, on the test database and the test Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _database_url() -> str:
    from django.db import connection

    database = connection.settings_dict
    host = database["HOST"] or "127.0.0.1"
    if host.startswith("/"):
        return f"postgresql://{database['USER']}@/{database['NAME']}?host={host}"
    return f"postgresql://{database['USER']}@{host}:{database['PORT'] or 5432}/{database['NAME']}"


@contextmanager
def celery_worker_process(
    *, queues: list[str], concurrency: int = 2, include: list[str] | None = None
) -> Iterator[subprocess.Popen]:
    """A worker consuming ``queues``; the test's producers stop running tasks eagerly meanwhile."""
    from django.conf import settings

    from config.celery import app

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }
    command = [
        sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", ",".join(queues),
        "--concurrency", str(concurrency), "--pool", "threads",
        "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "WARNING",
    ]  # fmt: skip
    for module in include or []:
        command += ["-I", module]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    app.conf.task_always_eager = False
    app.control.purge()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if app.control.ping(timeout=0.5):
                break
        else:
            pytest.fail("the Celery worker did not start")
        yield process
    finally:
        app.conf.task_always_eager = True
        app.control.purge()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
