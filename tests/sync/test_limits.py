"""Limits and malformed input get clear, stable errors and write nothing."""

from __future__ import annotations

import pytest

from tenant_apps.syncstore.models import Document
from tenants.context import tenant_context
from tests.sync.helpers import mutation, push, push_ok

pytestmark = pytest.mark.django_db


def error_of(response) -> dict:
    return response.json()["error"]


def test_too_many_mutations_is_413(org, plan_limits) -> None:
    plan_limits(max_batch_mutations=5)
    response = push(org.client(), [mutation(f"d{i}", data={}) for i in range(6)])
    assert response.status_code == 413
    assert error_of(response)["code"] == "batch_too_large"
    assert error_of(response)["details"] == {"limit": 5, "received": 6}


def test_oversize_document_names_the_mutation(org, plan_limits) -> None:
    plan_limits(max_document_bytes=100)
    response = push(org.client(), [mutation("small", data={"a": 1}), mutation("big", data={"a": "x" * 200})])
    assert response.status_code == 400
    errors = error_of(response)["details"]["errors"]
    assert [(e["index"], e["code"]) for e in errors] == [(1, "document_too_large")]
    with tenant_context(org.organisation):
        assert not Document.objects.exists()


def test_request_body_over_the_limit_is_413(org, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_000
    response = push(org.client(), [mutation(f"d{i}", data={"pad": "x" * 100}) for i in range(30)])
    assert (response.status_code, error_of(response)["code"]) == (413, "payload_too_large")


def test_malformed_json_is_400(org) -> None:
    response = org.client().post(
        "/api/v1/sync/push", data=b'{"device_id": "d", "mutations": [', content_type="application/json"
    )
    assert (response.status_code, error_of(response)["code"]) == (400, "malformed_json")


def test_non_json_content_type_is_refused(org) -> None:
    response = org.client().post("/api/v1/sync/push", data="device_id=x", content_type="text/plain")
    assert response.status_code == 400
    assert error_of(response)["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ([], "invalid_body"),
        ({"mutations": []}, "invalid_device_id"),
        ({"device_id": "", "mutations": []}, "invalid_device_id"),
        ({"device_id": "x" * 129, "mutations": []}, "invalid_device_id"),
        ({"device_id": "d", "mutations": {}}, "invalid_body"),
    ],
)
def test_envelope_errors(org, body, code: str) -> None:
    response = org.client().post("/api/v1/sync/push", body, format="json")
    assert (response.status_code, error_of(response)["code"]) == (400, code)


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        ("not an object", "invalid_mutation"),
        ({"collection": "todos", "id": "a", "op": "put", "data": {}}, "invalid_mutation_id"),
        ({"mutation_id": "m", "collection": "1todos", "id": "a", "op": "put", "data": {}}, "invalid_collection"),
        ({"mutation_id": "m", "collection": "to-dos", "id": "a", "op": "put", "data": {}}, "invalid_collection"),
        ({"mutation_id": "m", "collection": "todos", "id": "", "op": "put", "data": {}}, "invalid_document_id"),
        ({"mutation_id": "m", "collection": "todos", "id": "x" * 129, "op": "put", "data": {}}, "invalid_document_id"),
        ({"mutation_id": "m", "collection": "todos", "id": "a\nb", "op": "put", "data": {}}, "invalid_document_id"),
        ({"mutation_id": "m", "collection": "todos", "id": 5, "op": "put", "data": {}}, "invalid_document_id"),
        ({"mutation_id": "m", "collection": "todos", "id": "a", "op": "upsert", "data": {}}, "invalid_operation"),
        ({"mutation_id": "m", "collection": "todos", "id": "a", "op": "put", "data": [1]}, "invalid_data"),
        ({"mutation_id": "m", "collection": "todos", "id": "a", "op": "put"}, "invalid_data"),
        ({"mutation_id": "m", "collection": "todos", "id": "a", "op": "delete", "data": {}}, "invalid_data"),
        # PostgreSQL cannot store a NUL character; an escaped backslash before "u0000" is fine (below).
        ({"mutation_id": "m", "collection": "todos", "id": "a", "op": "put", "data": {"t": "a\x00b"}}, "invalid_data"),
        ({"mutation_id": "m", "collection": "todos", "id": "a", "op": "put", "data": {"\x00": 1}}, "invalid_data"),
        (
            {"mutation_id": "m", "collection": "todos", "id": "a", "op": "put", "data": {}, "base_version": "1"},
            "invalid_base_version",
        ),
        (
            {"mutation_id": "m", "collection": "todos", "id": "a", "op": "put", "data": {}, "base_version": -1},
            "invalid_base_version",
        ),
        (
            {"mutation_id": "m", "collection": "todos", "id": "a", "op": "put", "data": {}, "client_ts": 1.5},
            "invalid_client_ts",
        ),
        # beyond what the columns hold (a version is an integer, a timestamp a bigint)
        (
            {"mutation_id": "m", "collection": "todos", "id": "a", "op": "put", "data": {}, "base_version": 2**31},
            "invalid_base_version",
        ),
        (
            {"mutation_id": "m", "collection": "todos", "id": "a", "op": "put", "data": {}, "client_ts": 2**63},
            "invalid_client_ts",
        ),
        ({"mutation_id": "m", "collection": "todos", "id": "a", "op": "put", "data": {}, "extra": 1}, "unknown_fields"),
    ],
)
def test_each_malformed_mutation_is_named(org, bad, code: str) -> None:
    response = push(org.client(), [mutation("fine", data={}), bad])
    assert response.status_code == 400
    assert error_of(response)["code"] == "batch_rejected"
    (error,) = error_of(response)["details"]["errors"]
    assert (error["index"], error["code"]) == (1, code)


def test_a_backslash_followed_by_u0000_is_text_not_a_nul_character(org) -> None:
    results = push_ok(org.client(), [mutation("a", data={"path": "C:\\u0000"})])
    assert results[0]["status"] == "applied"


def test_deeply_nested_documents_are_refused(org) -> None:
    deep: dict = {}
    node = deep
    for _ in range(40):
        node["x"] = {}
        node = node["x"]
    response = push(org.client(), [mutation("deep", data=deep)])
    assert error_of(response)["details"]["errors"][0]["code"] == "too_deep"


def test_duplicate_mutation_ids_in_one_batch_are_refused(org) -> None:
    response = push(org.client(), [mutation("a", data={}, mutation_id="x"), mutation("b", data={}, mutation_id="x")])
    assert error_of(response)["details"]["errors"] == [
        {
            "index": 1,
            "mutation_id": "x",
            "code": "duplicate_mutation_id",
            "message": "The same mutation_id appears twice in the batch.",
        }
    ]


def test_document_quota_refuses_the_whole_batch_naming_limit_usage_and_plan(org, plan_limits) -> None:
    plan_limits(max_documents=3)
    client = org.client()
    assert push(client, [mutation("a", data={}), mutation("b", data={})]).status_code == 200
    response = push(client, [mutation("c", data={}), mutation("d", data={})])
    assert response.status_code == 403
    error = error_of(response)
    assert error["code"] == "quota_exceeded"
    assert error["details"] == {"limit": "max_documents", "allowed": 3, "current": 2, "requested": 2, "plan": "free"}
    with tenant_context(org.organisation):
        assert sorted(Document.objects.values_list("doc_id", flat=True)) == ["a", "b"]
    # Deleting makes room; updates of existing documents are always fine.
    assert push(client, [mutation("a", "delete", base_version=1), mutation("c", data={})]).status_code == 200
    assert push(client, [mutation("b", data={"x": 1}, base_version=1)]).status_code == 200


def test_device_quota_refuses_a_new_device_but_not_known_ones(org, plan_limits) -> None:
    plan_limits(max_devices=2)
    client = org.client()
    assert push(client, [mutation("a", data={})], device_id="one").status_code == 200
    assert push(client, [mutation("b", data={})], device_id="two").status_code == 200
    response = push(client, [mutation("c", data={})], device_id="three")
    assert (response.status_code, error_of(response)["code"]) == (403, "quota_exceeded")
    assert error_of(response)["details"]["limit"] == "max_devices"
    assert client.get("/api/v1/sync/pull", {"device_id": "three"}).status_code == 403
    assert push(client, [mutation("c", data={})], device_id="one").status_code == 200
    assert client.post("/api/v1/devices/two/revoke").status_code == 200
    assert push(client, [mutation("d", data={})], device_id="three").status_code == 200


def test_a_plan_change_applies_on_the_next_request(org, plan_limits) -> None:
    from billing.services import organisation_change_plan
    from shared_apps.audit.services import CLI

    plan_limits(max_documents=1)
    client = org.client()
    assert push(client, [mutation("a", data={})]).status_code == 200
    assert push(client, [mutation("b", data={})]).status_code == 403
    organisation_change_plan(actor=CLI, organisation=org.organisation, plan_slug="pro")
    assert push(client, [mutation("b", data={})]).status_code == 200
    assert client.get("/api/v1/whoami").json()["organisation"]["plan"] == "pro"
