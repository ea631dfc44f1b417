"""Push: results per mutation, idempotent retries, atomic batches, devices."""

from __future__ import annotations

import json

import orjson
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tenant_apps.syncstore.models import Collection, Device, Document, IdempotencyRecord
from tenants.context import tenant_context
from tests.sync.helpers import mutation, pull_all, push, push_ok

pytestmark = pytest.mark.django_db


def test_put_creates_documents_with_version_1_and_creates_the_collection(org) -> None:
    results = push_ok(org.client(), [mutation("a", data={"title": "milk"}), mutation("b", data={"title": "eggs"})])
    assert [(r["status"], r["id"], r["version"]) for r in results] == [("applied", "a", 1), ("applied", "b", 1)]
    assert "data" not in results[0]  # the server state is what the client sent
    with tenant_context(org.organisation):
        assert Collection.objects.get(name="todos").conflict_policy == "merge"
        assert Collection.objects.get(name="todos").document_count == 2
        assert Document.objects.get(doc_id="a").data == {"title": "milk"}


def test_patch_and_delete_bump_the_version_once_per_accepted_change(org) -> None:
    client = org.client()
    push_ok(client, [mutation("a", data={"title": "milk", "done": False})])
    results = push_ok(
        client,
        [
            mutation("a", "patch", {"done": True}, base_version=1),
            mutation("a", "patch", {"title": None}, base_version=2),
            mutation("a", "delete", base_version=3),
        ],
    )
    assert [(r["status"], r["version"]) for r in results] == [("applied", 2), ("applied", 3), ("applied", 4)]
    with tenant_context(org.organisation):
        document = Document.objects.get(doc_id="a")
        assert (document.version, document.deleted, document.data) == (4, True, {"done": True})
        assert Collection.objects.get(name="todos").document_count == 0


def test_a_write_that_changes_nothing_makes_no_new_version(org) -> None:
    client = org.client()
    push_ok(client, [mutation("a", data={"title": "milk"})])
    results = push_ok(client, [mutation("a", data={"title": "milk"}, base_version=1)])
    assert (results[0]["status"], results[0]["version"]) == ("applied", 1)
    changes, _ = pull_all(client)
    assert len(changes) == 1


def test_retried_batch_applies_once_and_returns_the_same_results(org) -> None:
    client = org.client()
    batch = [
        mutation("a", data={"n": 1}),
        mutation("b", data={"n": 2}),
        mutation("a", "patch", {"n": 3}, base_version=1),
    ]
    first = push_ok(client, batch)
    second = push_ok(client, batch)  # the response to the first was "lost"
    assert [r["status"] for r in second] == ["duplicate"] * 3
    for before, after in zip(first, second, strict=True):
        assert after["original_status"] == before["status"]
        assert {k: v for k, v in after.items() if k not in ("status", "original_status")} == {
            k: v for k, v in before.items() if k != "status"
        }
    with tenant_context(org.organisation):
        assert Document.objects.get(doc_id="a").version == 2
        assert Document.objects.count() == 2
        assert IdempotencyRecord.objects.count() == 3


def test_idempotency_is_per_device(org) -> None:
    client = org.client()
    push_ok(client, [mutation("a", data={"n": 1}, mutation_id="same")], device_id="phone")
    results = push_ok(client, [mutation("b", data={"n": 1}, mutation_id="same")], device_id="laptop")
    assert results[0]["status"] == "applied"


def test_a_partially_replayed_batch_applies_only_the_new_mutations(org) -> None:
    client = org.client()
    first = mutation("a", data={"n": 1})
    push_ok(client, [first])
    results = push_ok(client, [first, mutation("b", data={"n": 2})])
    assert [r["status"] for r in results] == ["duplicate", "applied"]


def test_one_invalid_mutation_rejects_the_whole_batch_and_writes_nothing(org) -> None:
    client = org.client()
    response = push(
        client,
        [
            mutation("ok-1", data={"n": 1}),
            mutation("x" * 129, data={"n": 2}),
            mutation("ok-2", "explode"),
        ],
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "batch_rejected"
    assert [(e["index"], e["code"]) for e in error["details"]["errors"]] == [
        (1, "invalid_document_id"),
        (2, "invalid_operation"),
    ]
    with tenant_context(org.organisation):
        assert not Document.objects.exists()
        assert not IdempotencyRecord.objects.exists()
        assert not Collection.objects.exists()


def test_json_schema_violation_rejects_the_batch_after_state_is_known(org) -> None:
    client = org.client()
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    assert client.put("/api/v1/collections/todos", {"json_schema": schema}, format="json").status_code == 200
    push_ok(client, [mutation("a", data={"title": "milk"})])
    response = push(
        client,
        [mutation("b", data={"title": "eggs"}), mutation("a", "patch", {"title": None}, base_version=1)],
    )
    assert response.status_code == 400
    errors = response.json()["error"]["details"]["errors"]
    assert [(e["index"], e["code"]) for e in errors] == [(1, "schema_violation")]
    assert "title" in errors[0]["message"]
    with tenant_context(org.organisation):
        assert list(Document.objects.values_list("doc_id", "version")) == [("a", 1)]


def test_base_version_from_the_future_rejects_the_batch(org) -> None:
    client = org.client()
    push_ok(client, [mutation("a", data={"n": 1})])
    response = push(client, [mutation("b", data={"n": 1}), mutation("a", data={"n": 2}, base_version=7)])
    assert response.status_code == 400
    assert response.json()["error"]["details"]["errors"][0]["code"] == "invalid_base_version"
    with tenant_context(org.organisation):
        assert not Document.objects.filter(doc_id="b").exists()


def test_devices_are_recorded_with_counters_and_client_info(org) -> None:
    client = org.client()
    client.post(
        "/api/v1/sync/push",
        {
            "device_id": "phone-7",
            "client": {"user_agent": "TodoApp/1.0 (iOS)", "app_version": "1.0.3"},
            "mutations": [mutation("a", data={"n": 1}), mutation("b", data={"n": 1})],
        },
        format="json",
    )
    client.get("/api/v1/sync/pull", {"device_id": "phone-7"})
    with tenant_context(org.organisation):
        device = Device.objects.get(device_id="phone-7")
    assert (device.pushes, device.pulls, device.mutations) == (1, 1, 2)
    assert (device.user_agent, device.app_version) == ("TodoApp/1.0 (iOS)", "1.0.3")
    assert device.last_push_at
    assert device.last_pull_at


def test_a_revoked_device_can_neither_push_nor_pull(org) -> None:
    client = org.client()
    push_ok(client, [mutation("a", data={"n": 1})], device_id="stolen-phone")
    response = client.post("/api/v1/devices/stolen-phone/revoke")
    assert response.status_code == 200
    assert response.json()["revoked_at"]
    denied = push(client, [mutation("b", data={"n": 1})], device_id="stolen-phone")
    assert (denied.status_code, denied.json()["error"]["code"]) == (403, "device_revoked")
    assert client.get("/api/v1/sync/pull", {"device_id": "stolen-phone"}).json()["error"]["code"] == "device_revoked"
    with tenant_context(org.organisation):
        assert not Document.objects.filter(doc_id="b").exists()
    assert push(client, [mutation("b", data={"n": 1})], device_id="other-phone").status_code == 200


def test_strict_collections_refuse_unknown_collections(org) -> None:
    client = org.client()
    assert client.patch("/api/v1/sync/settings", {"strict_collections": True}, format="json").status_code == 200
    response = push(client, [mutation("a", data={"n": 1}, collection="notes")])
    assert response.status_code == 400
    assert response.json()["error"]["details"]["errors"][0]["code"] == "unknown_collection"
    client.put("/api/v1/collections/notes", {"conflict_policy": "server_wins"}, format="json")
    assert push_ok(client, [mutation("a", data={"n": 1}, collection="notes")])[0]["status"] == "applied"


def test_push_needs_sync_write_scope(make_organisation) -> None:
    reader = make_organisation(scopes=["sync:read"])
    response = push(reader.client(), [mutation("a", data={"n": 1})])
    assert (response.status_code, response.json()["error"]["code"]) == (403, "insufficient_scope")


def test_push_query_count_does_not_grow_with_the_batch(org) -> None:
    client = org.client()
    push_ok(client, [mutation("warm", data={"n": 0})])
    counts = []
    for size in (1, 200):
        batch = [mutation(f"d{size}-{i}", data={"n": i}) for i in range(size)]
        with CaptureQueriesContext(connection) as queries:
            push_ok(client, batch)
        # Only the organisation's tables: key and plan lookups are cache hits or misses by luck.
        counts.append(sum("syncstore_" in q["sql"] for q in queries.captured_queries))
    assert counts[0] == counts[1]
    assert counts[0] <= 10


def _engine_ran(queries: CaptureQueriesContext) -> bool:
    """Whether a push read document state for the conflict engine (the general path)."""
    return any("CROSS JOIN unnest" in q["sql"] for q in queries.captured_queries)


def _push_to_both(client, batch: list[tuple[str, dict, int | None, int | None]], tag: str) -> dict[str, list[dict]]:
    """Push the same puts (id, data, base version, client_ts) into the plain collection (one statement) and
    the checked one (a JSON Schema that accepts everything, so the engine decides); return the results with
    the collection's name taken out, after checking which path each took."""
    outcomes = {}
    for collection in ("plain", "checked"):
        mutations = [
            mutation(
                doc_id,
                data=data,
                collection=collection,
                base_version=base,
                client_ts=ts,
                mutation_id=f"{collection}-{tag}-{doc_id}",
            )
            for doc_id, data, base, ts in batch
        ]
        with CaptureQueriesContext(connection) as queries:
            results = push_ok(client, mutations, device_id="phone")
        assert _engine_ran(queries) is (collection == "checked")
        outcomes[collection] = [
            {**r, "mutation_id": r["mutation_id"].split("-", 1)[1], "collection": "-"} for r in results
        ]
    assert outcomes["plain"] == outcomes["checked"]
    return outcomes["plain"]


def _assert_both_collections_alike(org) -> None:
    """Rows (in change order), stored results and counters of the plain and checked collections match."""
    fields = ("doc_id", "data", "version", "deleted", "field_versions", "size_bytes", "last_device", "client_ts")
    with tenant_context(org.organisation):
        rows = {
            name: list(Document.objects.filter(collection__name=name).order_by("seq").values(*fields))
            for name in ("plain", "checked")
        }
        stored = {r.mutation_id: json.loads(r.result) for r in IdempotencyRecord.objects.filter(device_id="phone")}
        counts = {c.name: c.document_count for c in Collection.objects.all()}
    # The server's clock stamps writes without client_ts: equal within the two pushes' distance.
    for plain, checked in zip(rows["plain"], rows["checked"], strict=True):
        assert abs(plain.pop("client_ts") - checked.pop("client_ts")) < 60_000
    assert rows["plain"] == rows["checked"]
    assert counts["plain"] == counts["checked"]
    for mutation_id, result in stored.items():
        if mutation_id.startswith("plain-"):
            twin = stored["checked-" + mutation_id.split("-", 1)[1]]
            assert result == {**twin, "mutation_id": mutation_id, "collection": "plain"}


@pytest.fixture
def twin_collections(org):
    client = org.client()
    client.put("/api/v1/collections/checked", {"json_schema": {"type": "object"}}, format="json")
    client.put("/api/v1/collections/plain", {"conflict_policy": "merge"}, format="json")
    return client


def test_new_documents_are_stored_exactly_as_the_engine_stores_them(org, twin_collections) -> None:
    results = _push_to_both(
        twin_collections,
        [
            ("a", {"title": "milk", "tags": ["x"]}, None, 1_700_000_000_000),
            ("b\u00e9", {"n": 1, "t": "caf\u00e9 \u2713"}, None, None),
            ("c", {}, 0, 5),
        ],
        "new",
    )
    assert [(r["id"], r["status"], r["version"]) for r in results] == [
        ("a", "applied", 1),
        ("b\u00e9", "applied", 1),
        ("c", "applied", 1),
    ]
    _assert_both_collections_alike(org)
    with tenant_context(org.organisation):
        plain = list(
            Document.objects.filter(collection__name="plain").order_by("seq").values_list("doc_id", "client_ts")
        )
    assert [doc_id for doc_id, _ in plain] == ["a", "b\u00e9", "c"]  # change order is batch order
    assert plain[0][1] == 1_700_000_000_000
    assert plain[2][1] == 5
    assert plain[1][1] > 1_700_000_000_000  # the server's time when the client sent none


def test_edits_are_stored_exactly_as_the_engine_stores_them(org, twin_collections) -> None:
    original = {"title": "milk", "done": False, "qty": 1, "tags": ["x"], "meta": {"by": "ann"}, "gone": 1}
    _push_to_both(
        twin_collections,
        [
            ("a", original, None, None),
            ("b", {"n": 1}, None, None),
            ("c", {"flag": 1}, None, None),
            ("d", {"n": 0}, None, None),
        ],
        "create",
    )
    results = _push_to_both(
        twin_collections,
        [
            # changed, unchanged, added, removed and nested fields in one put
            (
                "a",
                {"title": "oat milk", "done": False, "qty": 1.0, "tags": ["x"], "meta": {"by": "bob"}, "new": 1},
                1,
                7,
            ),
            ("b", {"n": 1}, 1, None),  # equal to the stored document: no new version
            ("c", {"flag": True}, 1, None),  # 1 -> true is a change
            ("e", {"fresh": True}, None, None),  # a new document in the same batch
        ],
        "edit",
    )
    assert [(r["id"], r["version"]) for r in results] == [("a", 2), ("b", 1), ("c", 2), ("e", 1)]
    _assert_both_collections_alike(org)
    with tenant_context(org.organisation):
        a = Document.objects.get(collection__name="plain", doc_id="a")
        assert a.field_versions == {"title": 2, "meta": 2, "new": 2, "gone": 2}
        assert Document.objects.get(collection__name="plain", doc_id="c").data == {"flag": True}
    # a second round of edits on top of the first: field versions accumulate
    _push_to_both(twin_collections, [("a", {"title": "oat milk", "qty": 3}, 2, None)], "again")
    _assert_both_collections_alike(org)
    with tenant_context(org.organisation):
        assert Document.objects.get(collection__name="plain", doc_id="a").field_versions == {
            "title": 2,
            "meta": 3,
            "new": 3,
            "gone": 2,
            "qty": 3,
            "done": 3,
            "tags": 3,
        }


@pytest.mark.parametrize(
    ("batch", "statuses"),
    [
        ([("a", {"n": 2}, 1, None), ("b", {"n": 2}, 1, None)], ["applied", "conflict"]),  # b is at version 2
        ([("a", {"n": 2}, 1, None), ("gone", {"n": 2}, 2, None)], ["applied", "applied"]),  # gone was deleted
    ],
)
def test_edits_that_need_a_conflict_rule_go_through_the_engine(org, batch, statuses) -> None:
    client = org.client()
    client.put("/api/v1/collections/todos", {"conflict_policy": "manual"}, format="json")
    push_ok(client, [mutation("a", data={"n": 1}), mutation("b", data={"n": 1}), mutation("gone", data={"n": 1})])
    push_ok(client, [mutation("b", data={"n": 5}, base_version=1), mutation("gone", "delete", base_version=1)])
    with CaptureQueriesContext(connection) as queries:
        results = push_ok(client, [mutation(doc_id, data=data, base_version=base) for doc_id, data, base, _ in batch])
    assert _engine_ran(queries)
    assert [r["status"] for r in results] == statuses
    with tenant_context(org.organisation):
        assert Document.objects.get(doc_id="a").version == 2  # written once, by the engine


def test_an_edit_of_a_document_the_server_does_not_have_is_refused_whole(org) -> None:
    client = org.client()
    push_ok(client, [mutation("a", data={"n": 1})])
    response = push(client, [mutation("a", data={"n": 2}, base_version=1), mutation("nope", data={}, base_version=3)])
    assert response.status_code == 400
    assert response.json()["error"]["details"]["errors"][0]["code"] == "invalid_base_version"
    with tenant_context(org.organisation):
        assert Document.objects.get(doc_id="a").version == 1


def test_new_documents_meeting_an_existing_one_go_through_the_engine_without_writing_twice(org) -> None:
    client = org.client()
    push_ok(client, [mutation("a", data={"title": "milk"})], device_id="phone")
    # Created offline on another device with an id the server already has: the batch is not all new.
    with CaptureQueriesContext(connection) as queries:
        results = push_ok(
            client, [mutation("b", data={"n": 1}), mutation("a", data={"title": "oat milk"})], device_id="laptop"
        )
    assert _engine_ran(queries)
    assert [(r["status"], r["version"]) for r in results] == [("applied", 1), ("conflict", 1)]
    with tenant_context(org.organisation):
        assert Document.objects.filter(doc_id="b").count() == 1
        assert Collection.objects.get(name="todos").document_count == 2
        assert IdempotencyRecord.objects.filter(device_id="laptop").count() == 2
        device = Device.objects.get(device_id="laptop")
        assert (device.pushes, device.mutations) == (1, 2)  # the device is recorded once


def test_a_replayed_batch_of_new_documents_returns_the_stored_results(org) -> None:
    client = org.client()
    batch = [mutation(f"d{i}", data={"n": i}) for i in range(3)]
    first = push_ok(client, batch)
    second = push_ok(client, batch)
    assert [r["status"] for r in second] == ["duplicate"] * 3
    original = [
        {k: v for k, v in r.items() if k != "original_status"} | {"status": r["original_status"]} for r in second
    ]
    assert original == first
    with tenant_context(org.organisation):
        assert Document.objects.count() == 3
        assert Collection.objects.get(name="todos").document_count == 3


def test_a_replayed_batch_of_edits_returns_the_stored_results_and_writes_nothing(org) -> None:
    client = org.client()
    push_ok(client, [mutation("a", data={"n": 1}), mutation("b", data={"n": 1})])
    # a changed edit and one equal to the stored document (which makes no version) in one batch
    batch = [mutation("a", data={"n": 2}, base_version=1), mutation("b", data={"n": 1}, base_version=1)]
    first = push_ok(client, batch)
    assert [(r["status"], r["version"]) for r in first] == [("applied", 2), ("applied", 1)]
    second = push_ok(client, batch)
    assert [(r["status"], r["original_status"], r["version"]) for r in second] == [
        ("duplicate", "applied", 2),
        ("duplicate", "applied", 1),
    ]
    with tenant_context(org.organisation):
        assert dict(Document.objects.values_list("doc_id", "version")) == {"a": 2, "b": 1}
        assert IdempotencyRecord.objects.count() == 4
    assert len(pull_all(client)[0]) == 2


def test_an_edit_diffs_against_the_document_even_when_its_stored_text_is_older(org) -> None:
    """The previous release (a rolling upgrade) changed ``data`` without the text: an edit's changed
    fields come from the document as it is, never from the outdated text."""
    client = org.client()
    push_ok(client, [mutation("a", data={"n": 1, "m": 1})])
    with tenant_context(org.organisation), connection.cursor() as cursor:
        cursor.execute(
            'UPDATE syncstore_document SET data = \'{"n": 5, "m": 1}\', version = 2,'
            " seq = nextval('syncstore_change_seq') WHERE doc_id = 'a'"
        )
    with CaptureQueriesContext(connection) as queries:
        results = push_ok(client, [mutation("a", data={"n": 5, "m": 2}, base_version=2)])
    assert not _engine_ran(queries)
    assert (results[0]["status"], results[0]["version"]) == ("applied", 3)
    with tenant_context(org.organisation):
        document = Document.objects.get(doc_id="a")
        assert document.field_versions == {"m": 3}  # n was already 5: unchanged by this edit
        assert (orjson.loads(document.data_text), document.data_text_version) == ({"n": 5, "m": 2}, 3)


def test_new_documents_for_a_missing_collection_create_it_through_the_engine(org) -> None:
    client = org.client()
    with CaptureQueriesContext(connection) as queries:
        results = push_ok(client, [mutation("a", data={"n": 1}, collection="fresh")])
    assert _engine_ran(queries)
    assert results[0]["status"] == "applied"
    with CaptureQueriesContext(connection) as queries:
        push_ok(client, [mutation("b", data={"n": 2}, collection="fresh")])
    assert not _engine_ran(queries)
