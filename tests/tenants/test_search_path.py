"""The backend skips ``SET search_path`` when the session already has the wanted path, and never trusts a
path that may have been undone (rollback, savepoint rollback, reconnect, a raw SET)."""

from __future__ import annotations

import time

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from tenants.postgresql_backend.base import search_path_forget

pytestmark = pytest.mark.django_db


def set_statements(call) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        call()
    return [query["sql"] for query in captured.captured_queries if query["sql"].startswith("SET search_path")]


def pull(org):
    response = org.client().get("/api/v1/sync/pull")
    assert response.status_code == 200


def test_consecutive_requests_of_one_organisation_set_the_path_once(org) -> None:
    pull(org)
    assert set_statements(lambda: pull(org)) == []


def test_switching_organisation_sets_the_path(org, other_org) -> None:
    pull(org)
    pull(other_org)  # both keys' first requests read the public schema; from here on neither does
    statements = set_statements(lambda: pull(org))
    assert statements == [f'SET search_path = "{org.organisation.schema_name}","public"']
    statements = set_statements(lambda: pull(other_org))
    assert statements == [f'SET search_path = "{other_org.organisation.schema_name}","public"']


def test_a_savepoint_rollback_forgets_the_path(org) -> None:
    pull(org)
    connection.set_tenant(org.organisation)

    def rolled_back() -> None:
        with pytest.raises(RuntimeError), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            raise RuntimeError("rolled back")

    with CaptureQueriesContext(connection) as captured:
        rolled_back()
    statements = [query["sql"] for query in captured.captured_queries]
    rollback = next(i for i, sql in enumerate(statements) if sql.startswith("ROLLBACK TO SAVEPOINT"))
    # The statement after the rollback (releasing the savepoint) sets the path again first.
    assert statements[rollback + 1].startswith("SET search_path")


def test_a_raw_set_must_be_followed_by_forget(org) -> None:
    pull(org)
    search_path_forget(connection)
    assert len(set_statements(lambda: pull(org))) == 1


def test_closing_the_connection_forgets_the_path(org) -> None:
    pull(org)
    connection.set_tenant(org.organisation)
    assert connection.session_search_path is not None
    connection.close()
    assert connection.session_search_path is None


def test_the_connection_health_check_costs_no_round_trip_and_still_sees_a_session_ended_by_the_server() -> None:
    from django.db import connections

    kept = connections.create_connection("default")
    kept.connect()
    try:
        pid = kept.connection.info.backend_pid
        kept.connection.execute("SELECT 'last statement'")

        def last_statement() -> str:
            with connection.cursor() as cursor:
                cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid])
                return cursor.fetchone()[0]

        assert kept.is_usable() is True
        assert last_statement() == "SELECT 'last statement'"  # nothing was sent to check it

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        for _ in range(100):  # the termination notice reaches the socket shortly after
            if not kept.is_usable():
                break
            time.sleep(0.01)
        assert kept.is_usable() is False
    finally:
        kept.close()


def test_prepared_statements_follow_the_organisation_of_each_request(org, other_org) -> None:
    from tests.sync.helpers import mutation, push_ok

    push_ok(org.client(), [mutation("only-in-acme", data={"n": 1})])
    push_ok(other_org.client(), [mutation("only-in-globex", data={"n": 2})])
    assert connection.connection.prepare_threshold == 2  # DATABASE_PREPARED_STATEMENTS is on
    # Several rounds on one connection: from the second run on, the sync statements are prepared, and each
    # organisation's must still read its own schema.
    for _ in range(4):
        for keyed, own in ((org, "only-in-acme"), (other_org, "only-in-globex")):
            changes = keyed.client().get("/api/v1/sync/pull").json()["changes"]
            assert [change["id"] for change in changes] == [own]
