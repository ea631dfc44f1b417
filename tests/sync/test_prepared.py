"""The push statements are prepared on the connection (DATABASE_PREPARED_STATEMENTS): a statement that
fails inside its savepoint (a replayed batch breaks a unique index) must leave the session's prepared
statements usable for the pushes after it."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.sync.helpers import mutation, push_ok

# A session of its own (the test closes the connection), so nothing is prepared when it starts.
pytestmark = pytest.mark.django_db(transaction=True)


def test_a_statement_that_fails_the_first_time_it_is_prepared_stays_usable(org) -> None:
    connection.close()
    client = org.client()
    created = [mutation(f"a{i}", data={"n": i}) for i in range(3)]
    assert [r["status"] for r in push_ok(client, created)] == ["applied"] * 3  # first run: not prepared
    # second run: prepared now, and it fails inside (the documents exist), so the engine answers
    assert [r["status"] for r in push_ok(client, created)] == ["duplicate"] * 3
    for round_ in range(3):
        results = push_ok(client, [mutation(f"b{round_}-{i}", data={"n": i}) for i in range(3)])
        assert [(r["status"], r["version"]) for r in results] == [("applied", 1)] * 3
        edits = [mutation(f"b{round_}-{i}", data={"n": i + 100}, base_version=1) for i in range(3)]
        assert [(r["status"], r["version"]) for r in push_ok(client, edits)] == [("applied", 2)] * 3
        assert [r["status"] for r in push_ok(client, created)] == ["duplicate"] * 3
