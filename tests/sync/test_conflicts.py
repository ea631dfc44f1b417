"""Conflicts never lose data: every policy, and resolution by a person."""

from __future__ import annotations

import pytest

from shared_apps.audit.models import AuditEvent
from tenant_apps.syncstore.models import Conflict
from tenants.context import tenant_context
from tests.sync.helpers import mutation, pull_all, push_ok

pytestmark = pytest.mark.django_db


def setup_document(client, policy: str = "merge") -> None:
    if policy != "merge":
        assert client.put("/api/v1/collections/todos", {"conflict_policy": policy}, format="json").status_code == 200
    push_ok(client, [mutation("a", data={"title": "milk", "done": False, "qty": 1})], device_id="phone")
    # The laptop changes the title: version 2. The phone still has version 1.
    push_ok(client, [mutation("a", "patch", {"title": "oat milk"}, base_version=1)], device_id="laptop")


def test_merge_combines_disjoint_fields(org) -> None:
    client = org.client()
    setup_document(client)
    result = push_ok(client, [mutation("a", "patch", {"done": True}, base_version=1)], device_id="phone")[0]
    assert result["status"] == "merged"
    assert result["version"] == 3
    assert result["data"] == {"title": "oat milk", "done": True, "qty": 1}
    with tenant_context(org.organisation):
        assert not Conflict.objects.exists()


def test_merge_of_a_stale_put_keeps_server_fields_the_client_did_not_change(org) -> None:
    client = org.client()
    setup_document(client)
    # A put of the whole document the phone had, with only qty changed... but title is stale.
    result = push_ok(
        client, [mutation("a", data={"title": "milk", "done": False, "qty": 2}, base_version=1)], device_id="phone"
    )[0]
    # A put cannot say it did not mean to change the title, so that overlap is kept, not lost.
    assert result["status"] == "conflict"
    assert result["data"]["title"] == "oat milk"
    with tenant_context(org.organisation):
        conflict = Conflict.objects.get()
    assert conflict.client_write["data"] == {"title": "milk", "done": False, "qty": 2}
    assert conflict.status == "open"


def test_two_devices_creating_the_same_document_offline_conflict_instead_of_overwriting(org) -> None:
    # Fields set when a document is created carry no stored field version (version 1 is the default):
    # a second creation without a base version has seen none of them, so they all count as changed.
    client = org.client()
    push_ok(client, [mutation("a", data={"title": "milk", "qty": 1})], device_id="phone")
    result = push_ok(client, [mutation("a", data={"title": "bread", "qty": 1})], device_id="laptop")[0]
    assert result["status"] == "conflict"
    assert result["data"] == {"title": "milk", "qty": 1}
    with tenant_context(org.organisation):
        conflict = Conflict.objects.get()
    assert conflict.client_write["data"] == {"title": "bread", "qty": 1}


def test_fields_untouched_since_creation_merge_with_a_stale_patch(org) -> None:
    client = org.client()
    push_ok(client, [mutation("a", data={"title": "milk", "qty": 1, "done": False})], device_id="phone")
    push_ok(client, [mutation("a", "patch", {"title": "oat milk"}, base_version=1)], device_id="laptop")
    push_ok(client, [mutation("a", "patch", {"done": True}, base_version=2)], device_id="laptop")
    # The phone saw version 1 and changes qty, a field nobody changed since the document was created.
    result = push_ok(client, [mutation("a", "patch", {"qty": 2}, base_version=1)], device_id="phone")[0]
    assert result["status"] == "merged"
    assert result["data"] == {"title": "oat milk", "qty": 2, "done": True}


def test_merge_with_overlapping_fields_keeps_the_server_state_and_opens_a_conflict(org) -> None:
    client = org.client()
    setup_document(client)
    result = push_ok(client, [mutation("a", "patch", {"title": "soy milk"}, base_version=1)], device_id="phone")[0]
    assert result["status"] == "conflict"
    assert result["resolution"] == "open"
    assert result["data"]["title"] == "oat milk"
    with tenant_context(org.organisation):
        conflict = Conflict.objects.get(pk=result["conflict_id"])
    assert conflict.status == "open"
    assert conflict.policy == "merge"
    assert conflict.client_write["data"] == {"title": "soy milk"}
    assert conflict.client_write["device_id"] == "phone"
    assert conflict.server_state["data"]["title"] == "oat milk"
    assert (conflict.base_version, conflict.server_version) == (1, 2)


def test_the_same_change_on_both_sides_is_not_a_conflict(org) -> None:
    client = org.client()
    setup_document(client)
    result = push_ok(client, [mutation("a", "patch", {"title": "oat milk"}, base_version=1)], device_id="phone")[0]
    assert result["status"] == "applied"
    assert result["version"] == 2


def test_delete_against_a_newer_update_is_a_conflict_under_merge(org) -> None:
    client = org.client()
    setup_document(client)
    result = push_ok(client, [mutation("a", "delete", base_version=1)], device_id="phone")[0]
    assert result["status"] == "conflict"
    assert result["deleted"] is False


def test_server_wins_keeps_the_server_and_stores_the_losing_write(org) -> None:
    client = org.client()
    setup_document(client, "server_wins")
    result = push_ok(client, [mutation("a", "patch", {"title": "soy milk"}, base_version=1)], device_id="phone")[0]
    assert (result["status"], result["resolution"]) == ("conflict", "server_wins")
    assert result["data"]["title"] == "oat milk"
    with tenant_context(org.organisation):
        conflict = Conflict.objects.get()
    assert (conflict.status, conflict.losing) == ("resolved", "client")
    assert conflict.client_write["data"] == {"title": "soy milk"}


def test_client_wins_applies_the_write_and_stores_the_losing_server_state(org) -> None:
    client = org.client()
    setup_document(client, "client_wins")
    result = push_ok(client, [mutation("a", "patch", {"title": "soy milk"}, base_version=1)], device_id="phone")[0]
    assert (result["status"], result["version"]) == ("applied", 3)
    assert result["conflict_id"]
    with tenant_context(org.organisation):
        conflict = Conflict.objects.get()
    assert (conflict.status, conflict.losing) == ("resolved", "server")
    assert conflict.server_state["data"]["title"] == "oat milk"


@pytest.mark.parametrize(
    ("phone_ts", "expected_title"),
    [(2_000, "soy milk"), (500, "oat milk")],
)
def test_last_write_wins_by_client_timestamp(org, phone_ts: int, expected_title: str) -> None:
    client = org.client()
    client.put("/api/v1/collections/todos", {"conflict_policy": "last_write_wins"}, format="json")
    push_ok(client, [mutation("a", data={"title": "milk"}, client_ts=100)], device_id="phone")
    push_ok(
        client, [mutation("a", "patch", {"title": "oat milk"}, base_version=1, client_ts=1_000)], device_id="laptop"
    )
    push_ok(
        client, [mutation("a", "patch", {"title": "soy milk"}, base_version=1, client_ts=phone_ts)], device_id="phone"
    )
    changes, _ = pull_all(client)
    assert changes[-1]["data"]["title"] == expected_title
    with tenant_context(org.organisation):
        conflict = Conflict.objects.get()
    assert conflict.status == "resolved"
    assert conflict.losing == ("server" if expected_title == "soy milk" else "client")


def test_last_write_wins_ties_are_broken_by_device_id(org) -> None:
    client = org.client()
    client.put("/api/v1/collections/todos", {"conflict_policy": "last_write_wins"}, format="json")
    push_ok(client, [mutation("a", data={"v": 0}, client_ts=1)], device_id="b-device")
    push_ok(client, [mutation("a", data={"v": "b"}, base_version=1, client_ts=50)], device_id="b-device")
    push_ok(client, [mutation("a", data={"v": "a"}, base_version=1, client_ts=50)], device_id="a-device")
    push_ok(client, [mutation("a", data={"v": "c"}, base_version=1, client_ts=50)], device_id="c-device")
    changes, _ = pull_all(client)
    assert changes[-1]["data"] == {"v": "c"}


def test_manual_holds_every_stale_write_as_an_open_conflict(org) -> None:
    client = org.client()
    setup_document(client, "manual")
    result = push_ok(client, [mutation("a", "patch", {"done": True}, base_version=1)], device_id="phone")[0]
    assert (result["status"], result["resolution"]) == ("conflict", "open")
    assert result["data"] == {"title": "oat milk", "done": False, "qty": 1}


def open_conflict(client) -> int:
    setup_document(client)
    return push_ok(client, [mutation("a", "patch", {"title": "soy milk"}, base_version=1)], device_id="phone")[0][
        "conflict_id"
    ]


def test_conflicts_api_lists_and_shows_open_conflicts(org) -> None:
    client = org.client()
    conflict_id = open_conflict(client)
    listed = client.get("/api/v1/conflicts").json()["conflicts"]
    assert [c["id"] for c in listed] == [conflict_id]
    shown = client.get(f"/api/v1/conflicts/{conflict_id}").json()
    assert shown["client_write"]["data"] == {"title": "soy milk"}
    assert shown["server_state"]["data"]["title"] == "oat milk"
    assert client.get("/api/v1/conflicts", {"status": "resolved"}).json()["conflicts"] == []
    assert client.get("/api/v1/conflicts/999999").json()["error"]["code"] == "conflict_not_found"


def test_resolving_with_the_client_write_makes_a_new_version_every_device_pulls(org) -> None:
    client = org.client()
    conflict_id = open_conflict(client)
    _, checkpoint = pull_all(client)
    response = client.post(f"/api/v1/conflicts/{conflict_id}/resolve", {"choose": "client"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["conflict"]["status"] == "resolved"
    assert body["document"]["data"]["title"] == "soy milk"
    assert body["document"]["version"] == 3
    changes, _ = pull_all(client, checkpoint)
    assert [(c["id"], c["version"], c["data"]["title"]) for c in changes] == [("a", 3, "soy milk")]
    assert AuditEvent.objects.filter(action="conflict.resolved", organisation=org.organisation).exists()


def test_resolving_with_merged_data(org) -> None:
    client = org.client()
    conflict_id = open_conflict(client)
    merged = {"title": "oat & soy milk", "done": False, "qty": 2}
    body = client.post(
        f"/api/v1/conflicts/{conflict_id}/resolve", {"choose": "merged", "data": merged}, format="json"
    ).json()
    assert body["document"]["data"] == merged
    assert body["conflict"]["resolution"] == "merged"


def test_resolving_with_the_server_state_changes_no_document(org) -> None:
    client = org.client()
    conflict_id = open_conflict(client)
    _, checkpoint = pull_all(client)
    body = client.post(f"/api/v1/conflicts/{conflict_id}/resolve", {"choose": "server"}, format="json").json()
    assert body["document"]["version"] == 2
    assert pull_all(client, checkpoint)[0] == []


def test_resolution_is_refused_twice_and_validates_input(org) -> None:
    client = org.client()
    conflict_id = open_conflict(client)
    bad = client.post(f"/api/v1/conflicts/{conflict_id}/resolve", {"choose": "both"}, format="json")
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_choice")
    no_data = client.post(f"/api/v1/conflicts/{conflict_id}/resolve", {"choose": "merged"}, format="json")
    assert no_data.json()["error"]["code"] == "invalid_data"
    assert (
        client.post(f"/api/v1/conflicts/{conflict_id}/resolve", {"choose": "server"}, format="json").status_code == 200
    )
    again = client.post(f"/api/v1/conflicts/{conflict_id}/resolve", {"choose": "client"}, format="json")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "conflict_already_resolved")


def test_resolution_needs_sync_write(make_organisation) -> None:
    reader = make_organisation(scopes=["sync:read"])
    response = reader.client().post("/api/v1/conflicts/1/resolve", {"choose": "server"}, format="json")
    assert response.json()["error"]["code"] == "insufficient_scope"


def test_json_equality_tells_booleans_from_numbers_but_not_int_from_float() -> None:
    from sync.engine import json_equal

    assert json_equal({"a": [1, {"b": 2.0}]}, {"a": [1.0, {"b": 2}]})
    assert not json_equal({"a": True}, {"a": 1})
    assert not json_equal([0], [False])
    assert not json_equal({"a": {"b": [True]}}, {"a": {"b": [1]}})
    assert not json_equal({"a": 1}, {"a": 1, "b": None})


def test_changed_fields_are_the_fields_that_differ_as_json() -> None:
    from sync.engine import changed_fields

    old = {"same": "x", "num": 1, "flag": 1, "list": [1, 2], "nested": {"a": [0]}, "gone": None, "f": 2.0}
    new = {"same": "x", "num": 1.0, "flag": True, "list": [1, 3], "nested": {"a": [False]}, "added": None, "f": 2}
    assert changed_fields(old, new) == {"flag", "list", "nested", "gone", "added"}
    assert changed_fields(old, dict(old)) == set()
    assert changed_fields({}, {}) == set()
