"""RxDB replication endpoints: pull with checkpoints, push with assumed master states, over real HTTP."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from sync.services import tombstones_purge
from tenant_apps.syncstore.models import Collection, Conflict, Document
from tenants.context import tenant_context

pytestmark = pytest.mark.django_db

BASE = "/api/v1/compat/rxdb"
_mutation_ids = itertools.count(1)


def rx_pull(client: APIClient, checkpoint: Any = None, batch_size: int = 100, collection: str = "todos", **extra: Any):
    body = {"checkpoint": checkpoint, "batchSize": batch_size}
    return client.post(f"{BASE}/{collection}/pull", body, format="json", **extra)


def rx_pull_ok(client: APIClient, checkpoint: Any = None, batch_size: int = 100, collection: str = "todos") -> dict:
    response = rx_pull(client, checkpoint, batch_size, collection)
    assert response.status_code == 200, response.content
    return response.json()


def rx_push(client: APIClient, rows: Any, collection: str = "todos", **extra: Any):
    return client.post(f"{BASE}/{collection}/push", rows, format="json", **extra)


def rx_push_ok(client: APIClient, rows: Any, collection: str = "todos") -> list[dict]:
    response = rx_push(client, rows, collection)
    assert response.status_code == 200, response.content
    return response.json()


def doc(doc_id: str, deleted: bool = False, **fields: Any) -> dict[str, Any]:
    return {"id": doc_id, **fields, "_deleted": deleted}


def rxdb_copy(document: dict[str, Any], rev: str = "1-abc") -> dict[str, Any]:
    """The document as an RxDB client holds it, with its metadata."""
    return {**document, "_rev": rev, "_meta": {"lwt": 1700000000000.5}, "_attachments": {}}


def native_push(client: APIClient, *mutations: dict[str, Any]) -> list[dict]:
    body = {
        "device_id": "native-app",
        "mutations": [{"mutation_id": f"m{next(_mutation_ids)}", **m} for m in mutations],
    }
    response = client.post("/api/v1/sync/push", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def stored(org: Any) -> dict[str, tuple[int, bool, dict]]:
    with tenant_context(org.organisation):
        return {d.doc_id: (d.version, d.deleted, d.data) for d in Document.objects.all()}


def test_first_pull_of_an_empty_collection_returns_no_documents_and_a_zero_checkpoint(api) -> None:
    assert rx_pull_ok(api) == {"documents": [], "checkpoint": {"seq": 0, "id": None, "horizon": 0}}
    # RxDB's first pull passes checkpoint undefined, which JSON.stringify leaves out.
    response = api.post(f"{BASE}/todos/pull", {"batchSize": 10}, format="json")
    assert response.json() == {"documents": [], "checkpoint": {"seq": 0, "id": None, "horizon": 0}}


def test_pushed_documents_pull_back_exactly_as_pushed_with_deleted_flag(api) -> None:
    assert rx_push_ok(api, [{"newDocumentState": doc("a", title="Milk", tags=["x"], n=1.5)}]) == []
    assert rx_push_ok(api, [{"newDocumentState": doc("b", title="Eggs", done=False)}]) == []
    body = rx_pull_ok(api)
    assert body["documents"] == [doc("a", title="Milk", tags=["x"], n=1.5), doc("b", title="Eggs", done=False)]
    assert set(body["checkpoint"]) == {"seq", "id", "horizon"}
    assert body["checkpoint"]["id"] == "b"


def test_pull_pages_by_batch_size_and_checkpoint_and_sees_each_change_once_in_change_order(api) -> None:
    rx_push_ok(api, [{"newDocumentState": doc(f"d{i}", n=i)} for i in range(5)])
    seen: list[str] = []
    checkpoint = None
    pages = 0
    while True:
        body = rx_pull_ok(api, checkpoint, batch_size=2)
        if not body["documents"]:
            assert body["checkpoint"] == checkpoint  # nothing new: the checkpoint given comes back
            break
        assert len(body["documents"]) <= 2
        seen += [d["id"] for d in body["documents"]]
        checkpoint = body["checkpoint"]
        pages += 1
    assert seen == ["d0", "d1", "d2", "d3", "d4"]
    assert pages == 3
    # A later change to an early document comes after the checkpoint, once.
    rx_push_ok(api, [{"assumedMasterState": doc("d0", n=0), "newDocumentState": doc("d0", n=100)}])
    body = rx_pull_ok(api, checkpoint, batch_size=2)
    assert body["documents"] == [doc("d0", n=100)]
    assert rx_pull_ok(api, body["checkpoint"])["documents"] == []


def test_pull_returns_only_the_requested_collection(api) -> None:
    rx_push_ok(api, [{"newDocumentState": doc("t1", title="todo")}], collection="todos")
    rx_push_ok(api, [{"newDocumentState": doc("n1", text="note")}], collection="notes")
    assert [d["id"] for d in rx_pull_ok(api, collection="todos")["documents"]] == ["t1"]
    assert [d["id"] for d in rx_pull_ok(api, collection="notes")["documents"]] == ["n1"]
    assert rx_pull_ok(api, collection="unknown")["documents"] == []


def test_push_accepts_rxdb_bare_row_array_and_rows_object(api) -> None:
    assert rx_push_ok(api, [{"newDocumentState": doc("a", v=1)}]) == []
    assert rx_push_ok(api, {"rows": [{"newDocumentState": doc("b", v=2)}]}) == []
    assert {d["id"] for d in rx_pull_ok(api)["documents"]} == {"a", "b"}


def test_push_strips_rxdb_metadata_and_id_from_stored_data(org, api) -> None:
    rx_push_ok(api, [{"newDocumentState": rxdb_copy(doc("a", title="Milk"))}])
    version, deleted, data = stored(org)["a"]
    assert (version, deleted, data) == (1, False, {"title": "Milk"})
    assert rx_pull_ok(api)["documents"] == [doc("a", title="Milk")]


def test_push_with_current_assumed_master_state_writes_a_new_version(org, api) -> None:
    rx_push_ok(api, [{"newDocumentState": doc("a", title="Milk")}])
    server = rx_pull_ok(api)["documents"][0]
    rows = [{"assumedMasterState": rxdb_copy(server), "newDocumentState": rxdb_copy(doc("a", title="Oat milk"), "2-x")}]
    assert rx_push_ok(api, rows) == []
    assert stored(org)["a"] == (2, False, {"title": "Oat milk"})


def test_push_with_stale_assumed_master_state_returns_server_document_and_writes_nothing(org, api) -> None:
    rx_push_ok(api, [{"newDocumentState": doc("a", title="Milk")}])
    rx_push_ok(api, [{"assumedMasterState": doc("a", title="Milk"), "newDocumentState": doc("a", title="Bread")}])
    rows = [
        {"assumedMasterState": doc("a", title="Milk"), "newDocumentState": doc("a", title="Cheese")},
        {"newDocumentState": doc("b", title="Fresh")},
    ]
    assert rx_push_ok(api, rows) == [doc("a", title="Bread")]
    after = stored(org)
    assert after["a"] == (2, False, {"title": "Bread"})
    assert after["b"] == (1, False, {"title": "Fresh"})  # the row that did not conflict is written
    with tenant_context(org.organisation):
        assert Conflict.objects.count() == 0  # RxDB resolves on the client


def test_push_without_assumed_master_state_conflicts_with_an_existing_document(org, api) -> None:
    rx_push_ok(api, [{"newDocumentState": doc("a", title="Server")}])
    assert rx_push_ok(api, [{"assumedMasterState": None, "newDocumentState": doc("a", title="Client")}]) == [
        doc("a", title="Server")
    ]
    assert stored(org)["a"] == (1, False, {"title": "Server"})


def test_replayed_push_returns_no_conflicts_and_makes_no_new_version(org, api) -> None:
    rows = [{"assumedMasterState": None, "newDocumentState": rxdb_copy(doc("a", title="Milk"))}]
    assert rx_push_ok(api, rows) == []
    before = stored(org)
    seq_before = rx_pull_ok(api)["checkpoint"]["seq"]
    assert rx_push_ok(api, rows) == []
    assert stored(org) == before
    assert rx_pull_ok(api)["checkpoint"]["seq"] == seq_before


def test_deleted_document_is_a_tombstone_pulled_with_deleted_true(org, api) -> None:
    rx_push_ok(api, [{"newDocumentState": doc("a", title="Milk")}, {"newDocumentState": doc("b", title="Eggs")}])
    checkpoint = rx_pull_ok(api)["checkpoint"]
    rx_push_ok(api, [{"assumedMasterState": doc("a", title="Milk"), "newDocumentState": doc("a", True, title="Milk")}])
    assert rx_pull_ok(api, checkpoint)["documents"] == [doc("a", True, title="Milk")]
    assert stored(org)["a"] == (2, True, {"title": "Milk"})
    with tenant_context(org.organisation):
        assert Collection.objects.get(name="todos").document_count == 1
    # Writing over the tombstone needs the tombstone as the assumed master state.
    assert rx_push_ok(api, [{"newDocumentState": doc("a", title="Again")}]) == [doc("a", True, title="Milk")]


def test_document_created_and_deleted_offline_is_stored_as_a_tombstone_with_its_fields(org, api) -> None:
    assert rx_push_ok(api, [{"newDocumentState": doc("gone", True, title="Draft")}]) == []
    assert rx_pull_ok(api)["documents"] == [doc("gone", True, title="Draft")]
    assert stored(org)["gone"][1:] == (True, {"title": "Draft"})
    with tenant_context(org.organisation):
        assert Collection.objects.get(name="todos").document_count == 0


def test_native_push_is_visible_through_rxdb_pull_and_rxdb_push_through_native_pull(api) -> None:
    native_push(api, {"collection": "todos", "id": "n1", "op": "put", "data": {"title": "native"}})
    assert rx_pull_ok(api)["documents"] == [doc("n1", title="native")]

    rx_push_ok(api, [{"assumedMasterState": doc("n1", title="native"), "newDocumentState": doc("n1", title="rx")}])
    changes = api.get("/api/v1/sync/pull").json()["changes"]
    assert [(c["id"], c["version"], c["data"]) for c in changes] == [("n1", 2, {"title": "rx"})]
    # and a native client can keep writing on top of the RxDB version
    result = native_push(
        api, {"collection": "todos", "id": "n1", "op": "patch", "data": {"done": True}, "base_version": 2}
    )
    assert result[0]["status"] == "applied"
    assert rx_pull_ok(api)["documents"] == [doc("n1", title="rx", done=True)]


def test_pulled_documents_always_carry_the_document_id_even_when_native_data_has_another(api) -> None:
    native_push(api, {"collection": "todos", "id": "real", "op": "put", "data": {"id": "fake", "_deleted": True}})
    assert rx_pull_ok(api)["documents"] == [{"id": "real", "_deleted": False}]


def test_organisations_never_see_each_others_documents(org, other_org) -> None:
    acme, globex = org.client(), other_org.client()
    rx_push_ok(acme, [{"newDocumentState": doc("shared-id", owner="acme")}])
    assert rx_pull_ok(globex)["documents"] == []
    # The same id in the other organisation is a new document there, not a conflict.
    assert rx_push_ok(globex, [{"newDocumentState": doc("shared-id", owner="globex")}]) == []
    assert rx_pull_ok(acme)["documents"] == [doc("shared-id", owner="acme")]
    assert rx_pull_ok(globex)["documents"] == [doc("shared-id", owner="globex")]


def test_read_only_key_can_pull_but_not_push(make_organisation) -> None:
    reader = make_organisation(scopes=["sync:read"]).client()
    assert rx_pull(reader).status_code == 200
    response = rx_push(reader, [{"newDocumentState": doc("a")}])
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"


def test_requests_without_a_key_are_refused() -> None:
    response = rx_pull(APIClient())
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_required"


MALFORMED = [
    ("todos/pull", b"{not json", "malformed_json"),
    ("todos/pull", b"[]", "invalid_body"),
    ("todos/pull", b'{"checkpoint": "abc", "batchSize": 10}', "invalid_checkpoint"),
    ("todos/pull", b'{"checkpoint": {"seq": -1, "id": "a"}, "batchSize": 10}', "invalid_checkpoint"),
    ("todos/pull", b'{"checkpoint": {"seq": true, "id": "a"}, "batchSize": 10}', "invalid_checkpoint"),
    ("todos/pull", b'{"checkpoint": {"seq": 1, "id": 5}, "batchSize": 10}', "invalid_checkpoint"),
    ("todos/pull", b'{"checkpoint": null, "batchSize": 0}', "invalid_batch_size"),
    ("todos/pull", b'{"checkpoint": null, "batchSize": 1001}', "invalid_batch_size"),
    ("todos/pull", b'{"checkpoint": null, "batchSize": "10"}', "invalid_batch_size"),
    ("9bad/pull", b'{"checkpoint": null, "batchSize": 10}', "invalid_collection"),
    ("todos/push", b"{not json", "malformed_json"),
    ("todos/push", b'{"documents": []}', "invalid_body"),
    ("todos/push", b'"rows"', "invalid_body"),
    ("9bad/push", b"[]", "invalid_collection"),
]


def test_malformed_requests_get_400_with_the_standard_error_shape(org, api) -> None:
    for path, body, code in MALFORMED:
        response = api.post(f"{BASE}/{path}", body, content_type="application/json")
        assert response.status_code == 400, (path, body, response.content)
        error = response.json()["error"]
        assert (error["code"], set(error)) == (code, {"code", "message", "details"}), (path, body)
    assert stored(org) == {}


def test_a_push_with_an_invalid_row_is_rejected_whole_with_per_row_errors(org, api) -> None:
    rows = [
        {"newDocumentState": doc("ok", title="fine")},
        {"newDocumentState": {"title": "no id"}},
        {"newDocumentState": {"id": 7}},
        {"newDocumentState": doc("bad-deleted") | {"_deleted": "yes"}},
        "not a row",
        {"newDocumentState": doc("x"), "extra": 1},
    ]
    response = rx_push(api, rows)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "batch_rejected"
    assert [(e["index"], e["code"]) for e in error["details"]["errors"]] == [
        (1, "invalid_document_id"),
        (2, "invalid_document_id"),
        (3, "invalid_deleted"),
        (4, "invalid_row"),
        (5, "unknown_fields"),
    ]
    assert stored(org) == {}


def test_a_row_breaking_the_collection_schema_rejects_the_push(org, api) -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    assert api.put("/api/v1/collections/todos", {"json_schema": schema}, format="json").status_code == 200
    response = rx_push(api, [{"newDocumentState": doc("a", title="ok")}, {"newDocumentState": doc("b", title=3)}])
    assert response.status_code == 400
    errors = response.json()["error"]["details"]["errors"]
    assert [(e["index"], e["id"], e["code"]) for e in errors] == [(1, "b", "schema_violation")]
    assert stored(org) == {}


def test_strict_collections_refuse_pushes_to_undeclared_collections(org, api) -> None:
    assert api.patch("/api/v1/sync/settings", {"strict_collections": True}, format="json").status_code == 200
    response = rx_push(api, [{"newDocumentState": doc("a")}], collection="undeclared")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_collection"
    assert stored(org) == {}


def test_batch_larger_than_the_plan_allows_is_refused(api, plan_limits) -> None:
    plan_limits(max_batch_mutations=2)
    response = rx_push(api, [{"newDocumentState": doc(f"d{i}")} for i in range(3)])
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "batch_too_large"


def test_document_quota_refuses_the_whole_push(org, api, plan_limits) -> None:
    plan_limits(max_documents=2)
    rx_push_ok(api, [{"newDocumentState": doc("a")}])
    response = rx_push(api, [{"newDocumentState": doc("b")}, {"newDocumentState": doc("c")}])
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "quota_exceeded"
    assert set(stored(org)) == {"a"}


def test_checkpoint_older_than_purged_tombstones_must_reset(org, api) -> None:
    rx_push_ok(api, [{"newDocumentState": doc("a", v=1)}])
    checkpoint = rx_pull_ok(api)["checkpoint"]
    rx_push_ok(api, [{"newDocumentState": doc("b", v=1)}])
    rx_push_ok(api, [{"assumedMasterState": doc("b", v=1), "newDocumentState": doc("b", True, v=1)}])
    with tenant_context(org.organisation):
        assert tombstones_purge(older_than=timedelta(0))["purged"] == 1
    response = rx_pull(api, checkpoint)
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "reset_required"
    # Starting over works, no longer mentions the purged document, and its checkpoint is good for the next pull.
    body = rx_pull_ok(api)
    assert [d["id"] for d in body["documents"]] == ["a"]
    assert rx_pull_ok(api, body["checkpoint"])["documents"] == []


def test_a_purge_before_a_clients_first_pull_never_strands_it_while_paging(org, api) -> None:
    rx_push_ok(api, [{"newDocumentState": doc("t1")}, {"newDocumentState": doc("t2")}], collection="todos")
    rx_push_ok(api, [{"newDocumentState": doc("n1", True)}], collection="notes")
    with tenant_context(org.organisation):
        horizon = tombstones_purge(older_than=timedelta(0))["horizon_seq"]
    first = rx_pull_ok(api, batch_size=1)
    assert first["documents"] == [doc("t1")]
    assert first["checkpoint"]["seq"] < horizon  # t1 is older than the purged tombstone...
    second = rx_pull_ok(api, first["checkpoint"], batch_size=1)  # ...but this client started after the purge
    assert second["documents"] == [doc("t2")]
    assert rx_pull_ok(api, second["checkpoint"])["documents"] == []
    # A bare {"seq", "id"} checkpoint below the horizon cannot vouch for that, so it must reset.
    assert rx_pull(api, {"seq": first["checkpoint"]["seq"], "id": "t1"}).status_code == 410


def test_a_purge_while_a_client_is_behind_makes_it_reset(org, api) -> None:
    rx_push_ok(api, [{"newDocumentState": doc("a")}, {"newDocumentState": doc("b")}])
    checkpoint = rx_pull_ok(api, batch_size=1)["checkpoint"]
    rx_push_ok(api, [{"assumedMasterState": doc("b"), "newDocumentState": doc("b", True)}])
    with tenant_context(org.organisation):
        tombstones_purge(older_than=timedelta(0))
    response = rx_pull(api, checkpoint)
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "reset_required"


def test_checkpoint_ahead_of_the_servers_change_feed_must_reset(api) -> None:
    rx_push_ok(api, [{"newDocumentState": doc("a")}])
    seq = rx_pull_ok(api)["checkpoint"]["seq"]
    response = rx_pull(api, {"seq": seq + 1000, "id": "a"})
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "reset_required"


def test_device_header_names_the_writer_and_is_validated(org, api) -> None:
    rx_push_ok(api, [{"newDocumentState": doc("a")}])
    rx_push(api, [{"newDocumentState": doc("b")}], HTTP_X_OUTPOST_DEVICE="phone-7")
    with tenant_context(org.organisation):
        assert dict(Document.objects.values_list("doc_id", "last_device")) == {"a": "rxdb", "b": "phone-7"}
    response = rx_push(api, [{"newDocumentState": doc("c")}], HTTP_X_OUTPOST_DEVICE="bad\x01id")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_device_id"


def test_revoked_device_can_neither_push_nor_pull(api) -> None:
    rx_push_ok(api, [{"newDocumentState": doc("a")}])
    assert api.post("/api/v1/devices/rxdb/revoke").status_code == 200
    response = rx_push(api, [{"newDocumentState": doc("b")}])
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "device_revoked"
    assert rx_pull(api, HTTP_X_OUTPOST_DEVICE="rxdb").json()["error"]["code"] == "device_revoked"


def test_pull_query_count_does_not_grow_with_documents(api) -> None:
    rx_push_ok(api, [{"newDocumentState": doc("first")}])
    checkpoint = rx_pull_ok(api)["checkpoint"]

    def count(checkpoint: Any) -> int:
        with CaptureQueriesContext(connection) as queries:
            rx_pull_ok(api, checkpoint)
        # Only the organisation's sync tables: key and plan lookups depend on the shared cache's state.
        return sum("syncstore" in query["sql"] for query in queries.captured_queries)

    small = count(checkpoint)
    assert small == 1  # one statement: the feed position and the page
    rx_push_ok(api, [{"newDocumentState": doc(f"d{i}")} for i in range(50)])
    assert count(checkpoint) == small


def test_endpoints_appear_in_the_openapi_schema(client) -> None:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "post" in paths["/api/v1/compat/rxdb/{collection}/pull"]
    assert "post" in paths["/api/v1/compat/rxdb/{collection}/push"]
