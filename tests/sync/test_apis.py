"""Collections, documents, devices and sync settings APIs: scopes, shapes, pagination."""

from __future__ import annotations

import pytest

from shared_apps.audit.models import AuditEvent
from tests.sync.helpers import mutation, push_ok

pytestmark = pytest.mark.django_db


def test_collections_list_with_live_document_counts(org) -> None:
    client = org.client()
    push_ok(client, [mutation("a", data={}), mutation("b", data={}), mutation("c", data={}, collection="notes")])
    push_ok(client, [mutation("b", "delete", base_version=1)])
    body = client.get("/api/v1/collections").json()
    assert [(c["name"], c["document_count"], c["conflict_policy"]) for c in body["collections"]] == [
        ("notes", 1, "merge"),
        ("todos", 1, "merge"),
    ]


def test_collection_policy_and_schema_change_needs_admin_and_is_audited(make_organisation) -> None:
    sync_only = make_organisation(scopes=["sync:read", "sync:write"])
    push_ok(sync_only.client(), [mutation("a", data={})])
    denied = sync_only.client().patch("/api/v1/collections/todos", {"conflict_policy": "manual"}, format="json")
    assert (denied.status_code, denied.json()["error"]["code"]) == (403, "insufficient_scope")
    admin = make_organisation(scopes=["admin"])
    push_ok(admin.client(), [mutation("a", data={})])
    schema = {"type": "object", "required": ["title"]}
    response = admin.client().patch(
        "/api/v1/collections/todos", {"conflict_policy": "manual", "json_schema": schema}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["conflict_policy"], response.json()["json_schema"]) == ("manual", schema)
    assert admin.client().get("/api/v1/collections/todos").json()["conflict_policy"] == "manual"
    assert AuditEvent.objects.filter(action="collection.updated", organisation=admin.organisation).exists()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"conflict_policy": "yolo"}, "invalid_conflict_policy"),
        ({"json_schema": {"type": "not-a-type"}}, "invalid_json_schema"),
        ({"json_schema": [1]}, "invalid_json_schema"),
        ({"name": "x"}, "invalid_body"),
    ],
)
def test_collection_update_rejects_bad_input(org, body: dict, code: str) -> None:
    push_ok(org.client(), [mutation("a", data={})])
    response = org.client().patch("/api/v1/collections/todos", body, format="json")
    assert (response.status_code, response.json()["error"]["code"]) == (400, code)


def test_unknown_collection_is_404(org) -> None:
    response = org.client().get("/api/v1/collections/nope")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "collection_not_found")
    assert org.client().get("/api/v1/collections/nope/documents").status_code == 404


def test_documents_get_and_list_with_keyset_pagination(make_organisation) -> None:
    reader_org = make_organisation(scopes=["sync:read", "sync:write"])
    client = reader_org.client()
    push_ok(client, [mutation(f"doc-{i:02}", data={"i": i}) for i in range(7)])
    push_ok(client, [mutation("doc-03", "delete", base_version=1)])
    one = client.get("/api/v1/collections/todos/documents/doc-01").json()
    assert (one["id"], one["version"], one["data"], one["last_device"]) == ("doc-01", 1, {"i": 1}, "device-1")
    ids: list[str] = []
    after = None
    while True:
        params = {"limit": 3, **({"after": after} if after else {})}
        body = client.get("/api/v1/collections/todos/documents", params).json()
        ids.extend(d["id"] for d in body["documents"])
        after = body["next"]
        if after is None:
            break
    assert ids == ["doc-00", "doc-01", "doc-02", "doc-04", "doc-05", "doc-06"]
    with_deleted = client.get("/api/v1/collections/todos/documents", {"include_deleted": "true"}).json()
    assert len(with_deleted["documents"]) == 7
    missing = client.get("/api/v1/collections/todos/documents/nope")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "document_not_found")


def test_document_ids_with_slashes_and_unicode_round_trip(org) -> None:
    client = org.client()
    push_ok(client, [mutation("users/42/avatar é", data={"ok": True})])
    assert client.get("/api/v1/collections/todos/documents/users/42/avatar é").json()["data"] == {"ok": True}


def test_devices_list_and_revoke_needs_admin(make_organisation) -> None:
    sync_only = make_organisation(scopes=["sync:read", "sync:write"])
    push_ok(sync_only.client(), [mutation("a", data={})], device_id="tablet")
    devices = sync_only.client().get("/api/v1/devices").json()["devices"]
    assert [d["device_id"] for d in devices] == ["tablet"]
    denied = sync_only.client().post("/api/v1/devices/tablet/revoke")
    assert denied.json()["error"]["code"] == "insufficient_scope"


def test_revoking_an_unknown_device_is_404(org) -> None:
    response = org.client().post("/api/v1/devices/ghost/revoke")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "device_not_found")


def test_sync_settings(org) -> None:
    client = org.client()
    assert client.get("/api/v1/sync/settings").json()["strict_collections"] is False
    bad = client.patch("/api/v1/sync/settings", {"strict_collections": "yes"}, format="json")
    assert bad.json()["error"]["code"] == "invalid_body"
    assert client.patch("/api/v1/sync/settings", {"strict_collections": True}, format="json").json()[
        "strict_collections"
    ]


def test_sync_endpoints_are_in_the_openapi_schema() -> None:
    from rest_framework.test import APIClient

    paths = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    for path in ("/api/v1/sync/push", "/api/v1/sync/pull", "/api/v1/conflicts/{conflict_id}/resolve"):
        assert path in paths
