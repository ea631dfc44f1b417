"""WatermelonDB sync endpoint: pullChanges / pushChanges over real HTTP, timestamps as change-feed positions."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from sync.services import tombstones_purge
from tenant_apps.syncstore.models import Collection, Document
from tenants.context import tenant_context

pytestmark = pytest.mark.django_db

URL = "/api/v1/compat/watermelondb/sync"
_mutation_ids = itertools.count(1)


def wm_pull(client: APIClient, last_pulled_at: Any = None, **params: Any):
    query = {"schema_version": 3, **params}
    if last_pulled_at is not None:
        query["last_pulled_at"] = last_pulled_at
    return client.get(URL, query)


def wm_pull_ok(client: APIClient, last_pulled_at: Any = None) -> dict:
    response = wm_pull(client, last_pulled_at)
    assert response.status_code == 200, response.content
    return response.json()


def wm_push(client: APIClient, changes: Any, last_pulled_at: Any, **extra: Any):
    return client.post(URL, {"changes": changes, "lastPulledAt": last_pulled_at}, format="json", **extra)


def wm_push_ok(client: APIClient, changes: Any, last_pulled_at: Any) -> None:
    response = wm_push(client, changes, last_pulled_at)
    assert response.status_code == 200, response.content
    assert response.json() == {}


def table(created: Any = (), updated: Any = (), deleted: Any = ()) -> dict[str, list]:
    return {"created": list(created), "updated": list(updated), "deleted": list(deleted)}


def native_push(client: APIClient, *mutations: dict[str, Any]) -> None:
    body = {
        "device_id": "native-app",
        "mutations": [{"mutation_id": f"m{next(_mutation_ids)}", **m} for m in mutations],
    }
    response = client.post("/api/v1/sync/push", body, format="json")
    assert response.status_code == 200, response.content
    assert all(r["status"] == "applied" for r in response.json()["results"])


def put(doc_id: str, collection: str = "todos", **data: Any) -> dict[str, Any]:
    return {"collection": collection, "id": doc_id, "op": "put", "data": data}


def delete(doc_id: str, collection: str = "todos", base_version: int = 1) -> dict[str, Any]:
    return {"collection": collection, "id": doc_id, "op": "delete", "base_version": base_version}


def stored(org: Any) -> dict[tuple[str, str], tuple[int, bool, dict]]:
    with tenant_context(org.organisation):
        return {
            (d.collection.name, d.doc_id): (d.version, d.deleted, d.data)
            for d in Document.objects.select_related("collection")
        }


def test_first_sync_of_an_empty_database_returns_no_changes_and_timestamp_1(api) -> None:
    assert wm_pull_ok(api) == {"changes": {}, "timestamp": 1}
    assert wm_pull(api, "null").json() == {"changes": {}, "timestamp": 1}
    assert wm_pull(api, "undefined", migration="undefined").json() == {"changes": {}, "timestamp": 1}


def test_first_sync_lists_live_documents_as_created_and_leaves_out_tombstones(api) -> None:
    native_push(api, put("a", title="Milk"), put("b", title="Eggs"), put("n1", "notes", text="hi"), delete("b"))
    body = wm_pull_ok(api)
    assert body["changes"] == {
        "todos": table(created=[{"id": "a", "title": "Milk"}]),
        "notes": table(created=[{"id": "n1", "text": "hi"}]),
    }
    # The timestamp covers the newest change, the tombstone included: nothing is left to pull.
    assert wm_pull_ok(api, body["timestamp"]) == {"changes": {}, "timestamp": body["timestamp"]}


def test_later_sync_lists_changes_as_updated_and_deletions_by_id_each_once(api) -> None:
    native_push(api, put("a", title="Milk"), put("b", title="Eggs"))
    first = wm_pull_ok(api)["timestamp"]
    native_push(api, put("a", title="Oat milk") | {"base_version": 1}, delete("b"), put("c", title="New"))
    body = wm_pull_ok(api, first)
    assert body["changes"] == {
        "todos": table(updated=[{"id": "a", "title": "Oat milk"}, {"id": "c", "title": "New"}], deleted=["b"])
    }
    assert body["timestamp"] > first
    assert wm_pull_ok(api, body["timestamp"]) == {"changes": {}, "timestamp": body["timestamp"]}


def test_records_come_in_change_order_whatever_order_their_rows_lie_in(committed_organisation) -> None:
    org = committed_organisation()  # committed: VACUUM cannot run inside the test's transaction
    api = org.client()
    native_push(api, put("a", n=1), put("b", n=1), put("c", n=1))
    native_push(api, put("a", n=2) | {"base_version": 1})
    with tenant_context(org.organisation), connection.cursor() as cursor:
        cursor.execute("VACUUM syncstore_document")  # a's old row is gone and its place free
        native_push(api, put("b", n=2) | {"base_version": 1})  # b's new row takes that place
        cursor.execute("SELECT doc_id FROM syncstore_document ORDER BY ctid")
        assert [row[0] for row in cursor.fetchall()] == ["b", "c", "a"]  # the table's order is not change order
    assert [r["id"] for r in wm_pull_ok(api)["changes"]["todos"]["created"]] == ["c", "a", "b"]


def test_push_applies_created_updated_and_deleted_records_in_one_go(org, api) -> None:
    native_push(api, put("a", title="Milk"), put("b", title="Eggs"))
    timestamp = wm_pull_ok(api)["timestamp"]
    changes = {
        "todos": table(
            created=[{"id": "c", "title": "Bread", "_status": "created", "_changed": ""}],
            updated=[{"id": "a", "title": "Oat milk", "_status": "updated", "_changed": "title"}],
            deleted=["b"],
        ),
        "notes": table(created=[{"id": "n1", "text": "hello"}]),
    }
    wm_push_ok(api, changes, timestamp)
    assert stored(org) == {
        ("todos", "a"): (2, False, {"title": "Oat milk"}),
        ("todos", "b"): (2, True, {"title": "Eggs"}),
        ("todos", "c"): (1, False, {"title": "Bread"}),
        ("notes", "n1"): (1, False, {"text": "hello"}),
    }
    with tenant_context(org.organisation):
        assert dict(Collection.objects.values_list("name", "document_count")) == {"todos": 2, "notes": 1}
    # Another device sees exactly the pushed changes, without Watermelon's local fields.
    body = wm_pull_ok(api, timestamp)
    assert body["changes"]["todos"] == table(
        updated=[{"id": "a", "title": "Oat milk"}, {"id": "c", "title": "Bread"}], deleted=["b"]
    )


def test_push_of_records_changed_on_the_server_since_last_pull_is_409_and_applies_nothing(org, api) -> None:
    native_push(api, put("a", title="Milk"), put("b", title="Eggs"))
    timestamp = wm_pull_ok(api)["timestamp"]
    native_push(
        api, put("a", title="Server edit") | {"base_version": 1}, put("b", title="Server too") | {"base_version": 1}
    )
    before = stored(org)
    changes = {
        "todos": table(
            created=[{"id": "z", "title": "Would be new"}],
            updated=[{"id": "a", "title": "Client edit"}],
            deleted=["b"],
        )
    }
    response = wm_push(api, changes, timestamp)
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "conflict"
    assert error["details"] == {"conflicts": [{"table": "todos", "id": "a"}, {"table": "todos", "id": "b"}]}
    assert stored(org) == before
    # After pulling, the same push goes through.
    timestamp = wm_pull_ok(api, timestamp)["timestamp"]
    wm_push_ok(api, changes, timestamp)
    assert stored(org)[("todos", "a")] == (3, False, {"title": "Client edit"})


def test_replayed_push_is_a_no_op_with_no_new_version(org, api) -> None:
    timestamp = wm_pull_ok(api)["timestamp"]
    changes = {"todos": table(created=[{"id": "a", "title": "Milk"}], deleted=["never-existed"])}
    wm_push_ok(api, changes, timestamp)
    before = stored(org)
    newest = wm_pull_ok(api, timestamp)["timestamp"]
    wm_push_ok(api, changes, timestamp)  # the response was lost; the client sends the same push again
    assert stored(org) == before == {("todos", "a"): (1, False, {"title": "Milk"})}
    assert wm_pull_ok(api, newest) == {"changes": {}, "timestamp": newest}


def test_created_upserts_updated_creates_and_deleting_an_unknown_id_is_accepted(org, api) -> None:
    native_push(api, put("exists", title="Old"))
    timestamp = wm_pull_ok(api)["timestamp"]
    changes = {
        "todos": table(
            created=[{"id": "exists", "title": "Upserted"}],
            updated=[{"id": "unknown", "title": "Created"}],
            deleted=["ghost"],
        )
    }
    wm_push_ok(api, changes, timestamp)
    assert stored(org) == {
        ("todos", "exists"): (2, False, {"title": "Upserted"}),
        ("todos", "unknown"): (1, False, {"title": "Created"}),
    }


def test_documents_cross_between_native_watermelon_and_rxdb(api) -> None:
    native_push(api, put("n1", title="native"))
    body = wm_pull_ok(api)
    assert body["changes"]["todos"]["created"] == [{"id": "n1", "title": "native"}]
    wm_push_ok(api, {"todos": table(created=[{"id": "w1", "title": "watermelon"}])}, body["timestamp"])

    native = api.get("/api/v1/sync/pull").json()["changes"]
    assert [(c["id"], c["data"]) for c in native] == [("n1", {"title": "native"}), ("w1", {"title": "watermelon"})]
    rx = api.post("/api/v1/compat/rxdb/todos/pull", {"checkpoint": None, "batchSize": 10}, format="json").json()
    assert rx["documents"][-1] == {"id": "w1", "title": "watermelon", "_deleted": False}

    rx_row = {"newDocumentState": {"id": "r1", "title": "rxdb", "_deleted": False}}
    assert api.post("/api/v1/compat/rxdb/todos/push", [rx_row], format="json").json() == []
    assert wm_pull_ok(api, body["timestamp"])["changes"]["todos"]["updated"][-1] == {"id": "r1", "title": "rxdb"}


def test_organisations_never_see_each_others_documents(org, other_org) -> None:
    acme, globex = org.client(), other_org.client()
    wm_push_ok(acme, {"todos": table(created=[{"id": "same-id", "owner": "acme"}])}, 1)
    assert wm_pull_ok(globex) == {"changes": {}, "timestamp": 1}
    # The same id in the other organisation is that organisation's own document: no conflict.
    wm_push_ok(globex, {"todos": table(created=[{"id": "same-id", "owner": "globex"}])}, 1)
    assert wm_pull_ok(acme)["changes"]["todos"]["created"] == [{"id": "same-id", "owner": "acme"}]
    assert wm_pull_ok(globex)["changes"]["todos"]["created"] == [{"id": "same-id", "owner": "globex"}]


def test_read_only_key_can_pull_but_not_push(make_organisation) -> None:
    reader = make_organisation(scopes=["sync:read"]).client()
    assert wm_pull(reader).status_code == 200
    response = wm_push(reader, {"todos": table(created=[{"id": "a"}])}, 1)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"


def test_pull_refuses_a_last_pulled_at_that_is_not_a_positive_integer(api) -> None:
    for value in ["abc", "0", "-3", "1.5", "1e3", "99999999999999999999999"]:
        response = wm_pull(api, value)
        assert response.status_code == 400, value
        error = response.json()["error"]
        assert (error["code"], error["details"]) == ("invalid_last_pulled_at", {}), value


def test_pull_accepts_migration_json_and_refuses_anything_else(api) -> None:
    migration = '{"from": 2, "tables": ["todos"], "columns": []}'
    assert wm_pull(api, migration=migration).status_code == 200
    assert wm_pull(api, migration="null").status_code == 200
    response = wm_pull(api, migration="{broken")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_migration"


def test_malformed_pushes_get_400_with_the_standard_error_shape(org, api) -> None:
    cases = [
        (b"{not json", "malformed_json"),
        (b"[]", "invalid_body"),
        (b'{"changes": {}}', "invalid_last_pulled_at"),
        (b'{"changes": {}, "lastPulledAt": 0}', "invalid_last_pulled_at"),
        (b'{"changes": {}, "lastPulledAt": "soon"}', "invalid_last_pulled_at"),
        (b'{"changes": [], "lastPulledAt": 1}', "invalid_body"),
    ]
    for body, code in cases:
        response = api.post(URL, body, content_type="application/json")
        assert response.status_code == 400, (body, response.content)
        error = response.json()["error"]
        assert (error["code"], set(error)) == (code, {"code", "message", "details"}), body
    assert stored(org) == {}


def test_a_push_with_an_invalid_record_is_rejected_whole_naming_table_index_and_id(org, api) -> None:
    changes = {
        "todos": table(
            created=[{"id": "ok", "title": "fine"}, {"title": "no id"}, "not a record"],
            updated=[{"id": "ok", "title": "twice"}],
            deleted=[7],
        ),
        "9bad": table(created=[{"id": "x"}]),
        "notes": {"created": [], "renamed": []},
    }
    response = wm_push(api, changes, 1)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "batch_rejected"
    found = [(e["table"], e["kind"], e["index"], e["id"], e["code"]) for e in error["details"]["errors"]]
    assert found == [
        ("todos", "created", 1, None, "invalid_document_id"),
        ("todos", "created", 2, None, "invalid_record"),
        ("todos", "updated", 0, "ok", "duplicate_record"),
        ("todos", "deleted", 0, None, "invalid_document_id"),
        ("9bad", None, None, None, "invalid_collection"),
        ("notes", None, None, None, "invalid_table_changes"),
    ]
    assert stored(org) == {}


def test_push_in_watermelons_documented_form_bare_changes_and_query_timestamp(org, api) -> None:
    changes = {"todos": table(created=[{"id": "a", "title": "Milk"}])}
    response = api.post(f"{URL}?last_pulled_at=1", changes, format="json")
    assert response.status_code == 200, response.content
    assert stored(org) == {("todos", "a"): (1, False, {"title": "Milk"})}


def test_a_record_breaking_the_collection_schema_rejects_the_push(org, api) -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    assert api.put("/api/v1/collections/todos", {"json_schema": schema}, format="json").status_code == 200
    response = wm_push(api, {"todos": table(created=[{"id": "a", "title": "ok"}, {"id": "b", "title": 3}])}, 1)
    assert response.status_code == 400
    errors = response.json()["error"]["details"]["errors"]
    assert [(e["table"], e["index"], e["id"], e["code"]) for e in errors] == [("todos", 1, "b", "schema_violation")]
    assert stored(org) == {}


def test_strict_collections_refuse_pushes_to_undeclared_tables(org, api) -> None:
    assert api.patch("/api/v1/sync/settings", {"strict_collections": True}, format="json").status_code == 200
    response = wm_push(api, {"undeclared": table(created=[{"id": "a"}])}, 1)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_collection"
    assert response.json()["error"]["details"] == {"collections": ["undeclared"]}
    assert stored(org) == {}


def test_push_larger_than_the_plan_allows_is_refused(api, plan_limits) -> None:
    plan_limits(max_batch_mutations=2)
    response = wm_push(api, {"todos": table(created=[{"id": "a"}, {"id": "b"}], deleted=["c"])}, 1)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "batch_too_large"


def test_document_quota_refuses_the_whole_push(org, api, plan_limits) -> None:
    plan_limits(max_documents=2)
    wm_push_ok(api, {"todos": table(created=[{"id": "a"}])}, 1)
    response = wm_push(api, {"todos": table(created=[{"id": "b"}, {"id": "c"}])}, 1)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "quota_exceeded"
    assert set(stored(org)) == {("todos", "a")}


def test_timestamp_older_than_purged_tombstones_must_reset(org, api) -> None:
    native_push(api, put("a", title="Milk"))
    timestamp = wm_pull_ok(api)["timestamp"]
    native_push(api, put("b", title="Eggs"))
    native_push(api, delete("b"))
    with tenant_context(org.organisation):
        assert tombstones_purge(older_than=timedelta(0))["purged"] == 1
    for response in (wm_pull(api, timestamp), wm_push(api, {"todos": table(created=[{"id": "c"}])}, timestamp)):
        assert response.status_code == 410
        assert response.json()["error"]["code"] == "reset_required"
    # A fresh first sync works and the purged document is simply absent.
    body = wm_pull_ok(api)
    assert body["changes"] == {"todos": table(created=[{"id": "a", "title": "Milk"}])}
    assert wm_pull(api, body["timestamp"]).status_code == 200


def test_timestamp_ahead_of_the_servers_change_feed_must_reset(api) -> None:
    native_push(api, put("a", title="Milk"))
    timestamp = wm_pull_ok(api)["timestamp"]
    assert wm_pull(api, timestamp).status_code == 200
    for response in (wm_pull(api, timestamp + 1), wm_push(api, {"todos": table(deleted=["a"])}, timestamp + 1)):
        assert response.status_code == 410
        assert response.json()["error"]["code"] == "reset_required"


def test_device_header_names_the_writer(org, api) -> None:
    wm_push_ok(api, {"todos": table(created=[{"id": "a"}])}, 1)
    response = wm_push(api, {"todos": table(created=[{"id": "b"}])}, 1, HTTP_X_OUTPOST_DEVICE="tablet-2")
    assert response.status_code == 200
    with tenant_context(org.organisation):
        assert dict(Document.objects.values_list("doc_id", "last_device")) == {"a": "watermelondb", "b": "tablet-2"}


def test_pull_and_push_query_counts_do_not_grow_with_records(api) -> None:
    wm_push_ok(api, {"todos": table(created=[{"id": "first"}])}, 1)

    def queries(call: Any) -> int:
        with CaptureQueriesContext(connection) as captured:
            call()
        # Only the organisation's sync tables: key and plan lookups depend on the shared cache's state.
        return sum("syncstore" in query["sql"] for query in captured.captured_queries)

    timestamp = wm_pull_ok(api)["timestamp"]
    small_pull = queries(lambda: wm_pull_ok(api, 1))
    assert small_pull == 1  # one statement: the feed position and every change
    small_push = queries(lambda: wm_push_ok(api, {"todos": table(created=[{"id": "p0"}])}, timestamp))
    many = [{"id": f"d{i}", "n": i} for i in range(50)]
    timestamp = wm_pull_ok(api)["timestamp"]
    assert queries(lambda: wm_push_ok(api, {"todos": table(created=many)}, timestamp)) == small_push
    assert queries(lambda: wm_pull_ok(api, 1)) == small_pull


def test_endpoint_appears_in_the_openapi_schema(client) -> None:
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/compat/watermelondb/sync"])
