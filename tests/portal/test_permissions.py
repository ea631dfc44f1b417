"""Roles on every page and action: one table of (url, method, minimum role).

Every role below the minimum gets 403 and changes nothing; a member of another organisation gets the
same 404 as for an organisation that does not exist; anonymous visitors are sent to log in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from shared_apps.accounts.models import ROLE_RANK, Invite
from shared_apps.accounts.services import invite_create
from shared_apps.apikeys.models import ApiKey
from shared_apps.audit.models import AuditEvent
from shared_apps.audit.services import CLI
from tenant_apps.syncstore.models import Collection, Conflict, Device
from tenants.context import tenant_context

pytestmark = pytest.mark.django_db

ROLES = ("viewer", "developer", "admin", "owner")

# (url, method, minimum role). Placeholders: slug, key, member, invite, conflict.
ENDPOINTS: list[tuple[str, str, str]] = [
    ("/o/{slug}/", "GET", "viewer"),
    ("/o/{slug}/provisioning/", "GET", "viewer"),
    ("/o/{slug}/status.json", "GET", "viewer"),
    ("/o/{slug}/keys/", "GET", "viewer"),
    ("/o/{slug}/keys/", "POST", "developer"),
    ("/o/{slug}/keys/{key}/revoke/", "POST", "developer"),
    ("/o/{slug}/keys/{key}/roll/", "POST", "developer"),
    ("/o/{slug}/members/", "GET", "viewer"),
    ("/o/{slug}/members/", "POST", "admin"),
    ("/o/{slug}/members/{member}/role/", "POST", "admin"),
    ("/o/{slug}/members/{member}/remove/", "POST", "admin"),
    ("/o/{slug}/members/leave/", "POST", "viewer"),
    ("/o/{slug}/members/transfer/", "POST", "owner"),
    ("/o/{slug}/invites/{invite}/resend/", "POST", "admin"),
    ("/o/{slug}/invites/{invite}/withdraw/", "POST", "admin"),
    ("/o/{slug}/data/", "GET", "viewer"),
    ("/o/{slug}/data/todos/", "GET", "viewer"),
    ("/o/{slug}/data/todos/", "POST", "admin"),
    ("/o/{slug}/data/todos/documents/", "GET", "viewer"),
    ("/o/{slug}/devices/", "GET", "viewer"),
    ("/o/{slug}/devices/revoke/", "POST", "developer"),
    ("/o/{slug}/conflicts/", "GET", "viewer"),
    ("/o/{slug}/conflicts/{conflict}/", "GET", "viewer"),
    ("/o/{slug}/conflicts/{conflict}/", "POST", "developer"),
    ("/o/{slug}/audit/", "GET", "admin"),
    ("/o/{slug}/billing/", "GET", "owner"),
    ("/o/{slug}/billing/checkout/", "POST", "owner"),
    ("/o/{slug}/billing/manage/", "POST", "owner"),
    ("/o/{slug}/settings/", "GET", "admin"),
    ("/o/{slug}/settings/name/", "POST", "admin"),
    ("/o/{slug}/settings/sync/", "POST", "admin"),
    ("/o/{slug}/settings/delete/", "POST", "owner"),
]

FORBIDDEN = [
    pytest.param(url, method, role, id=f"{method} {url} as {role}")
    for url, method, minimum in ENDPOINTS
    for role in ROLES
    if ROLE_RANK[role] < ROLE_RANK[minimum]
]

# What a POST would change if it got through: every forbidden POST sends a plausible body.
POST_BODIES = {
    "/o/{slug}/keys/": {"name": "sneaky", "scopes": ["sync:read"]},
    "/o/{slug}/keys/{key}/roll/": {"grace_seconds": "0"},
    "/o/{slug}/members/": {"email": "new@example.test", "role": "viewer"},
    "/o/{slug}/members/{member}/role/": {"role": "admin"},
    "/o/{slug}/members/transfer/": {"membership_id": "{member}"},
    "/o/{slug}/data/todos/": {"conflict_policy": "server_wins", "json_schema": ""},
    "/o/{slug}/devices/revoke/": {"device_id": "device-1"},
    "/o/{slug}/conflicts/{conflict}/": {"choose": "server"},
    "/o/{slug}/settings/name/": {"name": "Hijacked"},
    "/o/{slug}/settings/sync/": {"strict_collections": "on"},
    "/o/{slug}/settings/delete/": {"confirm_slug": "{slug}"},
    "/o/{slug}/billing/checkout/": {"plan": "pro"},
}


@dataclass
class Scene:
    values: dict[str, str]

    def url(self, template: str) -> str:
        return template.format(**self.values)

    def body(self, template: str) -> dict[str, object]:
        body = POST_BODIES.get(template, {})
        return {k: v.format(**self.values) if isinstance(v, str) else v for k, v in body.items()}


@pytest.fixture
def scene(org, make_member) -> Scene:
    """Acme with a key, a member to act on, a pending invitation, a device and an open conflict."""
    target = make_member("developer", email="target@acme.test")
    invite, _ = invite_create(actor=CLI, organisation=org.organisation, email="invitee@example.test", role="viewer")
    with tenant_context(org.organisation):
        todos = Collection.objects.create(name="todos")
        from django.utils import timezone

        Device.objects.create(device_id="device-1", first_seen_at=timezone.now(), last_seen_at=timezone.now())
        conflict = Conflict.objects.create(
            collection=todos,
            doc_id="t1",
            client_write={"op": "put", "data": {"a": 1}},
            server_state={"data": {"a": 0}, "version": 2, "deleted": False},
            policy="manual",
        )
    return Scene(
        {
            "slug": org.organisation.slug,
            "key": org.api_key.display_prefix,
            "member": str(target.membership.pk),
            "invite": str(invite.pk),
            "conflict": str(conflict.pk),
        }
    )


def without_csrf(content: bytes) -> bytes:
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]+"', b"", content)


def state_fingerprint(org) -> tuple:
    """Everything a forbidden request could have changed."""
    with tenant_context(org.organisation):
        tenant = (
            list(Collection.objects.values_list("name", "conflict_policy")),
            list(Device.objects.values_list("device_id", "revoked_at")),
            list(Conflict.objects.values_list("pk", "status")),
        )
    org.organisation.refresh_from_db()
    return (
        AuditEvent.objects.count(),
        list(ApiKey.objects.values_list("prefix", "revoked_at", "expires_at")),
        list(org.organisation.memberships.values_list("user__email", "role")),
        list(Invite.objects.values_list("token_hash", "withdrawn_at")),
        org.organisation.name,
        org.organisation.status,
        tenant,
    )


@pytest.mark.parametrize(("url", "method", "role"), FORBIDDEN)
def test_a_role_below_the_minimum_gets_403_and_changes_nothing(org, scene, make_member, url, method, role) -> None:
    member = make_member(role)
    before = state_fingerprint(org)
    if method == "GET":
        response = member.client.get(scene.url(url))
    else:
        response = member.client.post(scene.url(url), scene.body(url))
    assert response.status_code == 403
    assert b"You cannot do this here" in response.content
    assert state_fingerprint(org) == before


def test_every_role_at_or_above_the_minimum_can_open_the_pages(org, scene, make_member) -> None:
    members = {role: make_member(role) for role in ROLES}
    for url, method, minimum in ENDPOINTS:
        if method != "GET":
            continue
        for role in ROLES:
            if ROLE_RANK[role] >= ROLE_RANK[minimum]:
                response = members[role].client.get(scene.url(url))
                assert response.status_code in (200, 302), (url, role, response.status_code)
                if response.status_code == 302:
                    # Only the provisioning page redirects (to the dashboard) once the organisation is active.
                    assert url.endswith("/provisioning/"), url


def test_members_of_another_organisation_get_404_everywhere(org, other_org, scene, make_member) -> None:
    stranger = make_member("owner", organisation=other_org.organisation)
    before = state_fingerprint(org)
    missing = stranger.client.get("/o/no-such-org/")
    assert missing.status_code == 404
    for url, method, _ in ENDPOINTS:
        if method == "GET":
            response = stranger.client.get(scene.url(url))
        else:
            response = stranger.client.post(scene.url(url), scene.body(url))
        assert response.status_code == 404, (method, url)
        # Indistinguishable from an organisation that does not exist.
        assert without_csrf(response.content) == without_csrf(missing.content), (method, url)
    assert state_fingerprint(org) == before


def test_anonymous_visitors_are_sent_to_log_in(client, scene) -> None:
    for url, method, _ in ENDPOINTS:
        response = client.get(scene.url(url)) if method == "GET" else client.post(scene.url(url), scene.body(url))
        assert response.status_code == 302, (method, url)
        assert response["Location"].startswith("/login/?next="), (method, url)


def test_post_only_actions_refuse_get(owner, scene) -> None:
    for url, method, _ in ENDPOINTS:
        if method == "POST" and url not in {"/o/{slug}/keys/", "/o/{slug}/members/"} and "{conflict}" not in url:
            if url == "/o/{slug}/data/todos/":
                continue
            assert owner.client.get(scene.url(url)).status_code == 405, url
