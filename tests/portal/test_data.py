"""Collections and their policies, the document browser, devices and conflicts, through the portal."""

from __future__ import annotations

import pytest

from shared_apps.audit.models import AuditEvent
from tenant_apps.syncstore.models import Collection, Conflict, Device
from tenants.context import tenant_context
from tests.sync.helpers import mutation, push, push_ok

pytestmark = pytest.mark.django_db


def in_tenant(org, fn):
    with tenant_context(org.organisation):
        return fn()


def test_collections_list_counts_and_policies(viewer, with_data) -> None:
    page = viewer.client.get(f"/o/{viewer.organisation.slug}/data/")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<code>todos</code></a></td>\n          <td class="num">2</td>' in html
    assert '<span class="badge">manual</span>' in html
    detail = viewer.client.get(f"/o/{viewer.organisation.slug}/data/todos/")
    assert b"Admins and owners can change these." in detail.content
    assert b'name="conflict_policy"' not in detail.content


def test_an_admin_changes_the_policy_and_schema(admin, with_data) -> None:
    url = f"/o/{admin.organisation.slug}/data/todos/"
    schema = '{"type": "object", "required": ["title"]}'
    response = admin.client.post(url, {"conflict_policy": "server_wins", "json_schema": schema})
    assert response["Location"] == url
    todos = in_tenant(with_data, lambda: Collection.objects.get(name="todos"))
    assert todos.conflict_policy == "server_wins"
    assert todos.json_schema == {"type": "object", "required": ["title"]}
    event = AuditEvent.objects.get(action="collection.updated", actor=admin.user)
    assert event.details == {"conflict_policy": {"from": "manual", "to": "server_wins"}, "json_schema": "set"}
    # The schema now applies to pushes.
    rejected = push(with_data.client(), [mutation("t9", data={"done": True})])
    assert rejected.status_code == 400
    # An empty box removes it.
    admin.client.post(url, {"conflict_policy": "server_wins", "json_schema": ""})
    assert in_tenant(with_data, lambda: Collection.objects.get(name="todos").json_schema) is None


def test_bad_schemas_are_explained(admin, with_data) -> None:
    url = f"/o/{admin.organisation.slug}/data/todos/"
    broken = admin.client.post(url, {"conflict_policy": "merge", "json_schema": "{nope"})
    assert broken.status_code == 400
    assert b"The JSON Schema is not valid JSON" in broken.content
    invalid = admin.client.post(url, {"conflict_policy": "merge", "json_schema": '{"type": 5}'})
    assert invalid.status_code == 400
    assert b"json_schema is not a valid JSON Schema" in invalid.content
    not_object = admin.client.post(url, {"conflict_policy": "merge", "json_schema": "[1]"})
    assert not_object.status_code == 400
    assert in_tenant(with_data, lambda: Collection.objects.get(name="todos").conflict_policy) == "manual"


def test_unknown_collections_are_404(viewer, with_data) -> None:
    slug = viewer.organisation.slug
    assert viewer.client.get(f"/o/{slug}/data/nope/").status_code == 404
    assert viewer.client.get(f"/o/{slug}/data/nope/documents/").status_code == 404


def test_document_browser_pages_by_id_and_finds_one(viewer, org) -> None:
    push_ok(org.client(), [mutation(f"doc-{n:02d}", data={"n": n, "tags": ["a", "b"]}) for n in range(30)])
    push_ok(org.client(), [mutation("doc-05", "delete", base_version=1)])
    url = f"/o/{viewer.organisation.slug}/data/todos/documents/"
    first = viewer.client.get(url)
    assert first.status_code == 200
    assert first.content.count(b'<details class="card document"') == 25
    assert b'href="?after=doc-24"' in first.content
    assert b'<span class="badge danger">deleted</span>' in first.content
    second = viewer.client.get(url + "?after=doc-24")
    assert second.content.count(b'<details class="card document"') == 5
    assert b"?after=" not in second.content
    found = viewer.client.get(url + "?id=doc-07")
    html = found.content.decode()
    assert '<details class="card document" open>' in html
    assert "&quot;n&quot;: 7,\n  &quot;tags&quot;: [\n    &quot;a&quot;" in html  # pretty JSON, escaped
    assert "<dt>Last device</dt><dd>device-1</dd>" in html
    missing = viewer.client.get(url + "?id=nope")
    assert b"No document with the id <code>nope</code>" in missing.content


def test_devices_are_listed_and_revoked(developer, with_data) -> None:
    slug = developer.organisation.slug
    page = developer.client.get(f"/o/{slug}/devices/")
    assert b"<code>phone-2</code>" in page.content
    response = developer.client.post(f"/o/{slug}/devices/revoke/", {"device_id": "phone-2"})
    assert response["Location"] == f"/o/{slug}/devices/"
    assert in_tenant(with_data, lambda: Device.objects.get(device_id="phone-2").revoked_at) is not None
    refused = push(with_data.client(), [mutation("x", data={})], device_id="phone-2")
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "device_revoked")
    assert AuditEvent.objects.filter(action="device.revoked", target_id="phone-2", actor=developer.user).exists()
    assert developer.client.post(f"/o/{slug}/devices/revoke/", {"device_id": "nope"}).status_code == 404


def open_conflict(org) -> Conflict:
    return in_tenant(org, lambda: Conflict.objects.get(status="open"))


def test_conflicts_side_by_side(viewer, with_data) -> None:
    conflict = open_conflict(with_data)
    slug = viewer.organisation.slug
    listing = viewer.client.get(f"/o/{slug}/conflicts/")
    assert f'href="/o/{slug}/conflicts/{conflict.pk}/"'.encode() in listing.content
    assert b"Nothing here." in viewer.client.get(f"/o/{slug}/conflicts/?status=resolved").content
    page = viewer.client.get(f"/o/{slug}/conflicts/{conflict.pk}/")
    html = page.content.decode()
    assert "Server state" in html
    assert "Losing write" in html
    assert "&quot;done&quot;: true" in html  # the server's version
    assert "&quot;title&quot;: &quot;Buy oat milk&quot;" in html  # the losing write
    assert "Developers, admins and owners can resolve conflicts." in html
    assert viewer.client.get(f"/o/{slug}/conflicts/999999/").status_code == 404


@pytest.mark.parametrize(
    ("choose", "data", "expected"),
    [
        ("server", "", {"title": "Buy milk", "done": True}),
        ("client", "", {"title": "Buy oat milk", "done": True}),
        ("merged", '{"title": "Oat milk", "done": false}', {"title": "Oat milk", "done": False}),
    ],
)
def test_resolving_a_conflict(developer, with_data, choose, data, expected) -> None:
    conflict = open_conflict(with_data)
    url = f"/o/{developer.organisation.slug}/conflicts/{conflict.pk}/"
    page = developer.client.get(url)
    # The merged box starts from the server's data with the losing write on top.
    assert "&quot;title&quot;: &quot;Buy oat milk&quot;" in page.content.decode().split("Merged document")[1]
    response = developer.client.post(url, {"choose": choose, "data": data})
    assert response["Location"] == url
    document = with_data.client().get("/api/v1/collections/todos/documents/t1").json()
    assert document["data"] == expected
    conflict = in_tenant(with_data, lambda: Conflict.objects.get(pk=conflict.pk))
    assert (conflict.status, conflict.resolution, conflict.resolved_by) == ("resolved", choose, "user:dev@acme.test")
    event = AuditEvent.objects.get(action="conflict.resolved")
    assert event.details == {"collection": "todos", "document": "t1", "choose": choose}
    again = developer.client.post(url, {"choose": "server"})
    assert again.status_code == 409
    assert b"This conflict is already resolved." in again.content


def test_merged_data_is_validated(developer, with_data) -> None:
    conflict = open_conflict(with_data)
    url = f"/o/{developer.organisation.slug}/conflicts/{conflict.pk}/"
    for data, message in [
        ("{oops", b"The merged document is not valid JSON"),
        ("[1, 2]", b"A document is a JSON object."),
        ("", b"Enter the merged document as JSON."),
    ]:
        response = developer.client.post(url, {"choose": "merged", "data": data})
        assert response.status_code == 400
        assert message in response.content
    assert developer.client.post(url, {"choose": "everything"}).status_code == 400
    assert open_conflict(with_data).status == "open"


def test_list_pages_cost_a_fixed_number_of_queries(viewer, org, plan_limits, django_assert_max_num_queries) -> None:
    plan_limits(max_devices=100)
    client = org.client()
    push_ok(client, [mutation(f"t{n}", data={"v": 0}) for n in range(12)])
    client.put("/api/v1/collections/todos", {"conflict_policy": "manual"}, format="json")
    for n in range(12):
        push_ok(client, [mutation(f"t{n}", "patch", data={"v": 1}, base_version=1)], device_id=f"a{n}")
        push_ok(client, [mutation(f"t{n}", "patch", data={"v": 2}, base_version=1)], device_id=f"b{n}")
    slug = viewer.organisation.slug
    viewer.client.get(f"/o/{slug}/")  # the session remembers the organisation
    for url, budget in [
        (f"/o/{slug}/conflicts/", 9),
        (f"/o/{slug}/devices/", 9),
        (f"/o/{slug}/data/", 8),
        (f"/o/{slug}/data/todos/documents/", 10),
        (f"/o/{slug}/", 16),
    ]:
        with django_assert_max_num_queries(budget):
            assert viewer.client.get(url).status_code == 200, url


def test_only_what_changed_is_recorded(admin, with_data) -> None:
    admin.client.post(f"/o/{admin.organisation.slug}/data/todos/", {"conflict_policy": "merge", "json_schema": ""})
    event = AuditEvent.objects.get(action="collection.updated", actor=admin.user)
    assert event.details == {"conflict_policy": {"from": "manual", "to": "merge"}}
