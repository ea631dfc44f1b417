"""A real Celery worker, on the real Redis, runs organisation tasks in the right schema, fairly."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from billing.queues import enqueue_for_organisation
from config.celery import app
from sync.tasks import purge_tombstones
from tenants.context import tenant_context
from tests.sync.helpers import mutation, push_ok

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker() -> Iterator[subprocess.Popen]:
    """A worker process on the test database and Redis, consuming the tenant and platform queues."""
    database = connection.settings_dict
    host = database["HOST"] or "127.0.0.1"
    if host.startswith("/"):
        url = f"postgresql://{database['USER']}@/{database['NAME']}?host={host}"
    else:
        url = f"postgresql://{database['USER']}@{host}:{database['PORT'] or 5432}/{database['NAME']}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": url,
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
    }
    queues = ",".join(["platform", "tenant.free", "tenant.free.overflow"])
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queues, "--concurrency", "4",
         "--pool", "threads", "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "WARNING",
         "-I", "tests.billing.tasks_for_tests"],
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    app.conf.task_always_eager = False
    app.control.purge()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if app.control.ping(timeout=0.5):
            break
    else:
        process.kill()
        pytest.fail("the Celery worker did not start")
    yield process
    app.conf.task_always_eager = True
    app.control.purge()
    process.terminate()
    process.wait(timeout=20)


def test_a_task_runs_in_its_organisations_schema(committed_organisation, worker) -> None:
    acme = committed_organisation()
    globex = committed_organisation()
    for keyed in (acme, globex):
        push_ok(keyed.client(), [mutation("gone", data={"n": 1})])
        push_ok(keyed.client(), [mutation("gone", "delete", base_version=1)])
    connection.set_schema_to_public()
    # Make acme's tombstones old enough for its plan's retention; leave globex's alone.
    with tenant_context(acme.organisation), connection.cursor() as cursor:
        cursor.execute("UPDATE syncstore_document SET updated_at = now() - interval '400 days'")
    result = enqueue_for_organisation(purge_tombstones, acme.organisation, acme.organisation.pk)
    assert result.get(timeout=30)["purged"] == 1
    with tenant_context(acme.organisation), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM syncstore_document")
        assert cursor.fetchone() == (0,)
    with tenant_context(globex.organisation), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM syncstore_document")
        assert cursor.fetchone() == (1,)


def test_one_organisations_flood_does_not_delay_another_on_the_same_tier(committed_organisation, worker) -> None:
    from tests.billing.tasks_for_tests import record_start

    flooder = committed_organisation()
    victim = committed_organisation()
    connection.set_schema_to_public()
    for _ in range(1000):
        enqueue_for_organisation(record_start, flooder.organisation, 0.05)
    sent = time.time()
    result = enqueue_for_organisation(record_start, victim.organisation, 0)
    started_at, schema = result.get(timeout=60)
    assert schema == victim.organisation.schema_name
    # 1,000 tasks of 50 ms on 4 threads would take 12 s to drain; the victim starts well before.
    assert started_at - sent < 3.0
