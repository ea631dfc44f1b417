"""Dashboard, audit log, billing overview, settings and deleting an organisation."""

from __future__ import annotations

import re

import pytest
from django_redis import get_redis_connection

from billing.usage import usage_key
from shared_apps.audit.models import AuditEvent
from shared_apps.audit.services import Actor, audit_record
from shared_apps.portal.charts import usage_chart
from tenants.models import Organisation
from tests.sync.helpers import mutation, push

pytestmark = pytest.mark.django_db


def test_the_dashboard_shows_counts_usage_and_limits(viewer, with_data) -> None:
    html = viewer.client.get(f"/o/{viewer.organisation.slug}/").content.decode()
    stat = '<span class="stat-value">{}</span><span class="stat-label">{}</span>'
    assert stat.format(2, "Documents") in html
    assert stat.format(1, "Collections") in html
    assert stat.format(2, "Devices") in html
    assert stat.format(1, "Open conflicts") in html
    assert stat.format(3, "Pushes today") in html
    assert 'class="bar pushes"' in html
    assert "<title>" in html
    assert "Pushes (3)" in html
    assert '<span class="muted">2 / 10000</span>' in html  # documents against the free plan
    assert '<span class="muted">2 / 10</span>' in html  # devices
    assert 'aria-valuenow="20"' in html
    assert "Requests per minute" in html
    assert "Your first sync" not in html


def test_a_newcomer_gets_a_first_sync_example_with_their_key_prefix(viewer, org, settings) -> None:
    settings.OUTPOST_PUBLIC_URL = "https://sync.example.test"
    html = viewer.client.get(f"/o/{viewer.organisation.slug}/").content.decode()
    assert "Your first sync" in html
    assert f"export OUTPOST_KEY={org.api_key.display_prefix}_…" in html
    assert "curl -X POST https://sync.example.test/api/v1/sync/push" in html
    assert "No requests yet." in html
    assert org.key not in html


def test_usage_chart_geometry() -> None:
    series = [{"date": f"2026-11-{day:02d}", "pushes": day, "pulls": 2 * day} for day in range(1, 31)]
    chart = usage_chart(series, width=600, height=160)
    assert chart.peak == 100  # 60 rounded up to a round number
    assert len(chart.bars) == 60
    tallest = max(chart.bars, key=lambda bar: bar.height)
    assert (tallest.series, tallest.height, tallest.y) == ("pulls", 96.0, 64.0)
    assert all(0 <= bar.x <= 600 for bar in chart.bars)
    assert usage_chart([{"date": "2026-11-01", "pushes": 0, "pulls": 0}]).empty


def test_the_audit_log_is_filtered_and_paginated(admin, org, other_org) -> None:
    from django.db import transaction

    with transaction.atomic():
        for number in range(60):
            audit_record(
                actor=Actor.for_user(admin.user), action="test.thing", organisation=org.organisation, target_id=number
            )
        audit_record(actor=Actor.system(), action="secret.other", organisation=other_org.organisation)
    url = f"/o/{admin.organisation.slug}/audit/"
    first = admin.client.get(url)
    assert first.status_code == 200
    assert b"Page 1 of 2" in first.content
    assert b"secret.other" not in first.content
    filtered = admin.client.get(url + "?action=member.added")
    assert (
        filtered.content.count(b"<code>member.added</code></td>")
        == AuditEvent.objects.filter(organisation=org.organisation, action="member.added").count()
    )
    assert b"test.thing</code></td>" not in filtered.content
    second = admin.client.get(url + "?action=test.thing&page=2")
    assert second.content.count(b"<code>test.thing</code></td>") == 10
    assert b'href="?action=test.thing&amp;page=1"' in second.content
    # An action of another organisation is not a filter here.
    assert b"secret.other" not in admin.client.get(url + "?action=secret.other").content


def test_the_billing_page_shows_the_plan_and_the_plans(owner, org) -> None:
    html = owner.client.get(f"/o/{owner.organisation.slug}/billing/").content.decode()
    assert "<h2>Free plan</h2>" in html
    assert '<tr class="current" data-plan="free">' in html
    assert "Last 30 days: 0 pushes, 0 pulls, 0 mutations." in html


def test_renaming_the_organisation(admin, org) -> None:
    assert org.client().get("/api/v1/whoami").json()["organisation"]["name"] == "Acme"  # cached snapshot
    url = f"/o/{admin.organisation.slug}/settings/name/"
    assert admin.client.post(url, {"name": "Acme Rockets"})["Location"] == f"/o/{admin.organisation.slug}/settings/"
    assert Organisation.all_objects.get(pk=org.organisation.pk).name == "Acme Rockets"
    assert org.client().get("/api/v1/whoami").json()["organisation"]["name"] == "Acme Rockets"
    event = AuditEvent.objects.get(action="organisation.renamed")
    assert event.details == {"from": "Acme", "to": "Acme Rockets"}
    assert admin.client.post(url, {"name": "   "}).status_code == 400


def test_strict_collections(admin, org) -> None:
    url = f"/o/{admin.organisation.slug}/settings/sync/"
    admin.client.post(url, {"strict_collections": "on"})
    settings_page = admin.client.get(f"/o/{admin.organisation.slug}/settings/").content
    assert re.search(rb'<input type="checkbox" name="strict_collections"[^>]* checked>', settings_page)
    refused = push(org.client(), [mutation("x", data={}, collection="brandnew")])
    assert refused.json()["error"]["code"] == "batch_rejected"
    admin.client.post(url, {})
    assert push(org.client(), [mutation("x", data={}, collection="brandnew")]).status_code == 200
    assert [e.details for e in AuditEvent.objects.filter(action="sync.settings_updated").order_by("id")] == [
        {"strict_collections": True},
        {"strict_collections": False},
    ]


def test_deleting_the_organisation_needs_its_slug(owner, org) -> None:
    url = f"/o/{owner.organisation.slug}/settings/delete/"
    wrong = owner.client.post(url, {"confirm_slug": "acme-typo"})
    assert wrong.status_code == 400
    assert b"That is not this organisation&#x27;s slug." in wrong.content
    assert Organisation.all_objects.get(pk=org.organisation.pk).status == "active"

    response = owner.client.post(url, {"confirm_slug": "acme"})
    assert response["Location"] == "/"
    assert Organisation.all_objects.get(pk=org.organisation.pk).status == "deleted"
    home = owner.client.get("/", follow=True)
    assert b"Acme and all its data were deleted." in home.content
    assert b"You are not a member of any organisation yet." in home.content
    assert org.client().get("/api/v1/whoami").status_code == 401
    assert owner.client.get("/o/acme/").status_code == 404
    assert AuditEvent.objects.filter(action="organisation.deleted", actor=owner.user).exists()


def test_suspended_organisations_say_so(viewer, org) -> None:
    from shared_apps.audit.services import CLI
    from tenants.services import organisation_suspend

    organisation_suspend(actor=CLI, organisation=org.organisation, reason="unpaid invoices")
    page = viewer.client.get(f"/o/{viewer.organisation.slug}/")
    assert b"This organisation is suspended." in page.content
    assert b"Reason: unpaid invoices" in page.content


def test_a_broken_usage_counter_does_not_break_the_dashboard(viewer, org) -> None:
    get_redis_connection("default").set(usage_key(org.organisation.pk, __import__("datetime").date.today()), "x")
    assert viewer.client.get(f"/o/{viewer.organisation.slug}/").status_code == 200
