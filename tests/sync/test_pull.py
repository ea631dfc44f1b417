"""Pull: change order, checkpoints, paging, filters, tombstones and reset, query counts."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from sync import checkpoints
from sync.services import tombstones_purge
from tenant_apps.syncstore.models import Document
from tenants.context import tenant_context
from tests.sync.helpers import mutation, pull, pull_all, push_ok

pytestmark = pytest.mark.django_db


def test_first_pull_returns_everything_in_change_order_with_data_as_pushed(org) -> None:
    client = org.client()
    push_ok(client, [mutation("b", data={"nested": {"list": [1, 2, {"x": None}]}, "emoji": "🚀"})])
    push_ok(client, [mutation("a", data={"n": 1}, collection="notes")])
    response = pull(client)
    assert response.status_code == 200
    body = response.json()
    assert body["has_more"] is False
    assert body["changes"] == [
        {
            "collection": "todos",
            "id": "b",
            "version": 1,
            "deleted": False,
            "data": {"nested": {"list": [1, 2, {"x": None}]}, "emoji": "🚀"},
        },
        {"collection": "notes", "id": "a", "version": 1, "deleted": False, "data": {"n": 1}},
    ]


def test_pull_from_a_checkpoint_returns_only_later_changes_once(org) -> None:
    client = org.client()
    push_ok(client, [mutation("a", data={"n": 1}), mutation("b", data={"n": 1})])
    _, checkpoint = pull_all(client)
    assert pull_all(client, checkpoint)[0] == []
    push_ok(client, [mutation("a", "patch", {"n": 2}, base_version=1)])
    changes, checkpoint2 = pull_all(client, checkpoint)
    assert [(c["id"], c["version"]) for c in changes] == [("a", 2)]
    assert pull_all(client, checkpoint2)[0] == []


def test_paging_with_limit_and_has_more(org) -> None:
    client = org.client()
    push_ok(client, [mutation(f"d{i:02}", data={"i": i}) for i in range(25)])
    seen: list[str] = []
    checkpoint = None
    pages = 0
    while True:
        body = pull(client, checkpoint, limit=10).json()
        pages += 1
        seen.extend(change["id"] for change in body["changes"])
        checkpoint = body["checkpoint"]
        if not body["has_more"]:
            break
    assert pages == 3
    assert seen == [f"d{i:02}" for i in range(25)]


def test_collections_filter(org) -> None:
    client = org.client()
    push_ok(client, [mutation("a", data={}, collection="todos"), mutation("b", data={}, collection="notes")])
    body = pull(client, collections="notes").json()
    assert [c["id"] for c in body["changes"]] == ["b"]
    assert pull(client, collections="nothing_here").json()["changes"] == []
    bad = pull(client, collections="bad name!")
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_collection")


def test_deletes_are_pulled_as_tombstones(org) -> None:
    client = org.client()
    push_ok(client, [mutation("a", data={"n": 1})])
    _, checkpoint = pull_all(client)
    push_ok(client, [mutation("a", "delete", base_version=1)])
    changes, _ = pull_all(client, checkpoint)
    assert [(c["id"], c["deleted"], c["version"]) for c in changes] == [("a", True, 2)]


def test_purged_tombstones_make_older_checkpoints_reset_never_skip(org) -> None:
    client = org.client()
    push_ok(client, [mutation("a", data={"n": 1}), mutation("b", data={"n": 1})])
    _, old_checkpoint = pull_all(client)
    push_ok(client, [mutation("a", "delete", base_version=1)])
    _, fresh_checkpoint = pull_all(client, old_checkpoint)
    with tenant_context(org.organisation):
        assert tombstones_purge(older_than=timedelta(0))["purged"] == 1
    response = pull(client, old_checkpoint)
    assert response.status_code == 410
    error = response.json()["error"]
    assert error["code"] == "reset_required"
    assert error["details"]["horizon_seq"] > error["details"]["checkpoint_seq"]
    # A client that saw the delete carries on; a reset client starts from scratch and never sees "a".
    assert pull(client, fresh_checkpoint).status_code == 200
    changes, _ = pull_all(client)
    assert [c["id"] for c in changes] == ["b"]


def test_purge_keeps_tombstones_younger_than_the_retention(org) -> None:
    client = org.client()
    push_ok(client, [mutation("a", data={"n": 1})])
    push_ok(client, [mutation("a", "delete", base_version=1)])
    with tenant_context(org.organisation):
        assert tombstones_purge(older_than=timedelta(days=30)) == {"purged": 0, "horizon_seq": 0}


def test_a_client_starting_after_a_purge_pages_through_without_being_told_to_reset(org) -> None:
    client = org.client()
    push_ok(client, [mutation(f"old-{i}", data={"i": i}) for i in range(4)])
    push_ok(client, [mutation("gone", data={})])
    push_ok(client, [mutation("gone", "delete", base_version=1)])
    push_ok(client, [mutation("new", data={})])
    with tenant_context(org.organisation):
        tombstones_purge(older_than=timedelta(0))
    # Live documents older than the horizon keep their old seq; a fresh client pages over them.
    changes: list[str] = []
    checkpoint = None
    while True:
        response = pull(client, checkpoint, limit=2)
        assert response.status_code == 200, response.json()
        body = response.json()
        changes.extend(change["id"] for change in body["changes"])
        checkpoint = body["checkpoint"]
        if not body["has_more"]:
            break
    assert changes == ["old-0", "old-1", "old-2", "old-3", "new"]
    # A later purge still catches that client if it falls behind the new horizon.
    push_ok(client, [mutation("x", data={})])
    push_ok(client, [mutation("x", "delete", base_version=1)])
    with tenant_context(org.organisation):
        tombstones_purge(older_than=timedelta(0))
    assert pull(client, checkpoint).json()["error"]["code"] == "reset_required"


@pytest.mark.parametrize("checkpoint", ["garbage", "YzI6NQ", "@@@", checkpoints.encode(5)[:-1] + "!"])
def test_foreign_checkpoints_are_400_not_a_silent_restart(org, checkpoint: str) -> None:
    response = pull(org.client(), checkpoint)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_checkpoint")


@pytest.mark.parametrize("limit", ["0", "1001", "ten"])
def test_limit_is_validated(org, limit: str) -> None:
    response = org.client().get("/api/v1/sync/pull", {"limit": limit})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_limit")


def test_pull_needs_sync_read(make_organisation) -> None:
    writer = make_organisation(scopes=["sync:write"])
    assert pull(writer.client()).json()["error"]["code"] == "insufficient_scope"


def test_another_organisations_documents_never_appear(org, other_org) -> None:
    push_ok(org.client(), [mutation("secret", data={"owner": "acme"})])
    push_ok(other_org.client(), [mutation("mine", data={"owner": "globex"})])
    assert [c["id"] for c in pull_all(other_org.client())[0]] == ["mine"]
    assert [c["id"] for c in pull_all(org.client())[0]] == ["secret"]
    response = other_org.client().get("/api/v1/collections/todos/documents/secret")
    assert response.status_code == 404


def test_pull_query_count_is_constant(org) -> None:
    client = org.client()
    counts = []
    for size in (1, 300):
        push_ok(client, [mutation(f"n{size}-{i}", data={"i": i}) for i in range(size)])
        with CaptureQueriesContext(connection) as queries:
            assert pull(client, limit=1000).status_code == 200
        # Only the organisation's tables: key and plan lookups are cache hits or misses by luck.
        counts.append(sum("syncstore_" in q["sql"] for q in queries.captured_queries))
    assert counts[0] == counts[1] <= 3


def test_ids_that_need_json_escaping_are_pulled_intact(org) -> None:
    client = org.client()
    ids = ['say "hi"', "back\\slash", "tab\u00a0é🚀", "</script>"]
    push_ok(client, [mutation(doc_id, data={"i": n, "text": doc_id}) for n, doc_id in enumerate(ids)])
    changes = pull(client).json()["changes"]
    assert [(c["id"], c["data"]) for c in changes] == [
        (doc_id, {"i": n, "text": doc_id}) for n, doc_id in enumerate(ids)
    ]


def test_a_caught_up_poll_does_not_scan_the_feed(org) -> None:
    client = org.client()
    for batch in range(3):
        push_ok(client, [mutation(f"d{batch}-{i}", data={"i": i}) for i in range(200)])
    _, checkpoint = pull_all(client, limit=250)
    table = f'"{org.organisation.schema_name}".syncstore_document'

    def sequential_scans() -> int:
        with connection.cursor() as cursor:  # this test's transaction: the counts are not yet flushed
            cursor.execute(
                "SELECT COALESCE(sum(seq_scan), 0) FROM pg_stat_xact_user_tables WHERE relid = %s::regclass", [table]
            )
            return cursor.fetchone()[0]

    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")  # as autovacuum keeps it
    before = sequential_scans()
    for _ in range(3):
        body = pull(client, checkpoint, limit=250).json()
        assert (body["changes"], body["has_more"]) == ([], False)
    assert sequential_scans() == before


def test_pull_passes_the_stored_json_text_through(org) -> None:
    """A pull sends the text the document was written as (its keys in the order sent), not jsonb's
    rendering of it (keys sorted, spaces added)."""
    client = org.client()
    push_ok(client, [mutation("a", data={"zeta": 1, "alpha": [True, None], "mid": {"y": 1.5, "x": "é"}})])
    raw = pull(client).content
    assert b'"data":{"zeta":1,"alpha":[true,null],"mid":{"y":1.5,"x":"\xc3\xa9"}}}' in raw


def test_documents_without_stored_text_are_pulled_from_their_jsonb(org) -> None:
    """Rows written before ``data_text`` existed (NULL) render ``data`` instead."""
    client = org.client()
    push_ok(client, [mutation("a", data={"n": 1, "tags": ["x"]}), mutation("b", data={"n": 2})])
    with tenant_context(org.organisation):
        assert Document.objects.filter(doc_id="a").update(data_text=None) == 1
    assert [(c["id"], c["data"]) for c in pull(client).json()["changes"]] == [
        ("a", {"n": 1, "tags": ["x"]}),
        ("b", {"n": 2}),
    ]


def test_every_writer_keeps_the_stored_text_equal_to_the_document(org) -> None:
    """New documents and edits (the one-statement path), patches, merges and deletes (the engine),
    conflict resolutions, RxDB and WatermelonDB writes: afterwards each row's text is its data."""
    client = org.client()
    push_ok(client, [mutation("a", data={"n": 1, "keep": "x"}), mutation("b", data={"n": 1})])
    push_ok(client, [mutation("a", data={"n": 2, "keep": "x"}, base_version=1)])  # an edit
    push_ok(client, [mutation("b", "patch", {"m": 3}, base_version=1)])  # a patch
    push_ok(client, [mutation("a", "patch", {"other": True}, base_version=1)])  # merged with the edit
    push_ok(client, [mutation("a", "patch", {"n": 9}, base_version=1)], device_id="device-2")  # conflict
    conflict_id = client.get("/api/v1/conflicts").json()["conflicts"][0]["id"]
    resolved = client.post(f"/api/v1/conflicts/{conflict_id}/resolve", {"choose": "client"}, format="json")
    assert resolved.status_code == 200, resolved.content
    push_ok(client, [mutation("b", "delete", base_version=2)])
    rxdb = client.post(
        "/api/v1/compat/rxdb/todos/push", [{"newDocumentState": {"id": "r", "v": 1, "_deleted": False}}], format="json"
    )
    assert rxdb.status_code == 200, rxdb.content
    last_pulled_at = client.get("/api/v1/compat/watermelondb/sync").json()["timestamp"]
    watermelon = client.post(
        "/api/v1/compat/watermelondb/sync",
        {
            "changes": {"todos": {"created": [{"id": "w", "v": 2}], "updated": [], "deleted": []}},
            "lastPulledAt": last_pulled_at,
        },
        format="json",
    )
    assert watermelon.status_code == 200, watermelon.content
    with tenant_context(org.organisation):
        rows = list(Document.objects.values_list("doc_id", "data", "data_text", "data_text_version", "version"))
    assert {row[0] for row in rows} == {"a", "b", "r", "w"}
    for doc_id, data, text, text_version, version in rows:
        assert text is not None, doc_id
        assert orjson.loads(text) == data, doc_id
        assert text_version == version, doc_id


def test_a_writer_that_does_not_know_the_text_cannot_make_pulls_stale(org) -> None:
    """The previous release, still running during a rolling upgrade, changes ``data`` and ``version``
    but not the text: pulls render ``data`` until the text is written for the current version again."""
    client = org.client()
    push_ok(client, [mutation("a", data={"n": 1}), mutation("b", data={"n": 1})])
    with tenant_context(org.organisation), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE syncstore_document SET data = '{\"n\": 2}', version = version + 1,"
            " seq = nextval('syncstore_change_seq') WHERE doc_id = 'a'"
        )
    assert {c["id"]: c["data"] for c in pull(client).json()["changes"]} == {"a": {"n": 2}, "b": {"n": 1}}
    rxdb = client.post("/api/v1/compat/rxdb/todos/pull", {"checkpoint": None, "batchSize": 10}, format="json")
    assert {d["id"]: d["n"] for d in rxdb.json()["documents"]} == {"a": 2, "b": 1}
    watermelon = client.get("/api/v1/compat/watermelondb/sync").json()["changes"]["todos"]["created"]
    assert {r["id"]: r["n"] for r in watermelon} == {"a": 2, "b": 1}


def test_the_orm_writes_the_text_with_the_document_and_refuses_to_leave_it_behind(org) -> None:
    client = org.client()
    push_ok(client, [mutation("a", data={"n": 1})])
    with tenant_context(org.organisation):
        document = Document.objects.get(doc_id="a")
        document.data = {"n": 2}
        document.version = 2
        document.save(update_fields=["data", "version"])
        stored = Document.objects.get(doc_id="a")
        assert (orjson.loads(stored.data_text), stored.data_text_version) == ({"n": 2}, 2)
        with pytest.raises(ValueError, match="data_text"):
            Document.objects.filter(doc_id="a").update(data={"n": 3})
        with pytest.raises(ValueError, match="data_text"):
            Document.objects.bulk_update([document], ["data"])
    assert pull(client).json()["changes"][0]["data"] == {"n": 2}


def test_pages_keep_change_order_across_many_collections(org) -> None:
    """With hundreds of collections the planner may join a page to them by hashing; the page still comes
    back in change order, each change once."""
    client = org.client()
    written = []
    for batch in range(6):
        mutations = [
            mutation(f"d{batch}-{i}", data={"i": i}, collection=f"c{(batch * 50 + i) % 300}") for i in range(50)
        ]
        push_ok(client, mutations)
        written += [(m["collection"], m["id"]) for m in mutations]
    with connection.cursor() as cursor:
        cursor.execute(f'ANALYZE "{org.organisation.schema_name}".syncstore_collection')
    pulled = []
    checkpoint = None
    while True:
        body = pull(client, checkpoint, limit=70).json()
        pulled += [(c["collection"], c["id"]) for c in body["changes"]]
        checkpoint = body["checkpoint"]
        if not body["has_more"]:
            break
    assert pulled == written
