"""The whole portal journey in a real browser (Chromium via Playwright) against a live server.

Sign up → verify by e-mail → background provisioning (a real Celery worker) → dashboard → API key →
the key works → data, a conflict resolved in the browser → invite a teammate who signs up in a second
browser → revoke the key → the API refuses it. Screenshots of the main pages go to
``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core import mail

from tenants import provisioning
from tenants.models import Organisation
from tests.conftest import ensure_plans

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-and-unusual-passphrase"
LINK = re.compile(r"https?://\S+")
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def portal(live_server, settings, celery_worker) -> Iterator[str]:
    """The live server's URL, with e-mailed links pointing at it; drops the schemas the journey created."""
    ensure_plans()
    settings.OUTPOST_PUBLIC_URL = live_server.url
    yield live_server.url
    for organisation in Organisation.all_objects.exclude(schema_name="public"):
        provisioning.drop_tenant_schema(organisation.schema_name)


def last_link(to: str, contains: str) -> str:
    for message in reversed(mail.outbox):
        if to in message.to:
            for link in LINK.findall(message.body):
                if contains in link:
                    return link
    raise AssertionError(f"no e-mail to {to} with a {contains} link: {[m.subject for m in mail.outbox]}")


def shot(page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_sign_up_to_revoked_key(chromium_browser, portal: str, screenshots: Path) -> None:
    context = chromium_browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())

    # Sign up; the verification link arrives by e-mail.
    page.goto(f"{portal}/signup/")
    page.fill("input[name=email]", "founder@journey.test")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=organisation_name]", "Journey Labs")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Check your inbox")
    verify_link = last_link("founder@journey.test", "/signup/verify/")

    # Confirm: the organisation is provisioned by the worker while the progress page polls.
    page.goto(verify_link)
    page.click("text=Confirm and create Journey Labs")
    page.wait_for_url(re.compile(r"/o/journey-labs/(provisioning/)?$"))
    page.wait_for_url(re.compile(r"/o/journey-labs/$"), timeout=30_000)
    page.wait_for_selector("text=Your first sync")
    assert Organisation.all_objects.get(slug="journey-labs").status == "active"

    # Create an API key and read its secret from the page, once.
    page.click("nav.orgnav >> text=API keys")
    page.fill("input[name=name]", "laptop")
    page.click("button:has-text('Create key')")
    key = page.inner_text("#new-key").strip()
    assert re.fullmatch(r"opk_[a-z0-9]{12}_[A-Za-z0-9]{40}", key), key
    shot(page, screenshots, "keys")

    api = page.request
    auth = {"Authorization": f"Bearer {key}"}
    whoami = api.get(f"{portal}/api/v1/whoami", headers=auth)
    assert whoami.status == 200, whoami.text()
    assert whoami.json()["organisation"]["slug"] == "journey-labs"

    # Some data, and a conflict on a collection whose policy is made manual in the browser.
    def push(device: str, mutations: list[dict]) -> list[dict]:
        response = api.post(
            f"{portal}/api/v1/sync/push", headers=auth, data={"device_id": device, "mutations": mutations}
        )
        assert response.status == 200, response.text()
        return response.json()["results"]

    push("laptop-1", [
        {"mutation_id": "a1", "collection": "todos", "id": "t1", "op": "put", "data": {"title": "Milk", "done": False}},
        {"mutation_id": "a2", "collection": "todos", "id": "t2", "op": "put", "data": {"title": "Bread"}},
        {"mutation_id": "a3", "collection": "notes", "id": "n1", "op": "put", "data": {"body": "Hello"}},
    ])  # fmt: skip
    api.get(f"{portal}/api/v1/sync/pull?device_id=phone-2", headers=auth)
    page.click("nav.orgnav >> text=Data")
    page.click("a:has-text('todos')")
    page.select_option("select[name=conflict_policy]", "manual")
    page.click("button:has-text('Save')")
    page.wait_for_selector("text=Collection todos was updated.")
    push("laptop-1", [{"mutation_id": "b1", "collection": "todos", "id": "t1", "op": "patch",
                       "base_version": 1, "data": {"done": True}}])  # fmt: skip
    results = push("phone-2", [{"mutation_id": "c1", "collection": "todos", "id": "t1", "op": "patch",
                                "base_version": 1, "data": {"title": "Oat milk"}}])  # fmt: skip
    assert results[0]["status"] == "conflict"

    page.click("nav.orgnav >> text=Dashboard")
    page.wait_for_selector("text=Open conflicts")
    shot(page, screenshots, "dashboard")
    phone = chromium_browser.new_context(viewport=PHONE, storage_state=context.storage_state())
    phone_page = phone.new_page()
    phone_page.goto(page.url)
    shot(phone_page, screenshots, "dashboard-phone")
    phone.close()

    page.click("nav.orgnav >> text=Conflicts")
    page.click("td.actions >> a:has-text('Resolve')")
    page.wait_for_selector("text=Losing write")
    shot(page, screenshots, "conflict")
    page.check("input[name=choose][value=merged]")
    page.fill("textarea[name=data]", '{"title": "Oat milk", "done": true}')
    page.click("button:has-text('Resolve conflict')")
    page.wait_for_selector("text=is resolved")
    pulled = api.get(f"{portal}/api/v1/collections/todos/documents/t1", headers=auth).json()
    assert pulled["data"] == {"title": "Oat milk", "done": True}

    page.click("nav.orgnav >> text=Data")
    shot(page, screenshots, "data")

    # Invite a teammate, who signs up from the e-mailed link in another browser.
    page.click("nav.orgnav >> text=Members")
    page.fill("input[name=email]", "teammate@journey.test")
    page.select_option("select[name=role]", "developer")
    page.click("button:has-text('Send invitation')")
    page.wait_for_selector("text=Invitation sent to teammate@journey.test")
    invite_link = last_link("teammate@journey.test", "/invites/")

    teammate = chromium_browser.new_context(viewport=DESKTOP)
    teammate.set_default_timeout(15_000)
    teammate_page = teammate.new_page()
    teammate_page.goto(invite_link)
    teammate_page.wait_for_selector("text=Join Journey Labs")
    teammate_page.fill("input[name=full_name]", "Tess Mate")
    teammate_page.fill("input[name=password]", PASSWORD + "-2")
    teammate_page.click("button:has-text('Create account and join')")
    teammate_page.wait_for_url(re.compile(r"/o/journey-labs/$"))
    teammate_page.wait_for_selector("text=You joined Journey Labs as developer.")
    teammate.close()

    page.reload()
    page.wait_for_selector("tr[data-member='teammate@journey.test']")
    shot(page, screenshots, "members")

    # Revoke the key: the very next API request with it is refused.
    page.click("nav.orgnav >> text=API keys")
    row = page.locator(f"tr[data-key='{key[:16]}']")
    row.locator("summary:has-text('Manage')").click()
    row.locator("button:has-text('Revoke now')").click()
    page.wait_for_selector("text=is revoked")
    refused = api.get(f"{portal}/api/v1/whoami", headers=auth)
    assert refused.status == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"

    page.click("nav.orgnav >> text=Audit log")
    page.wait_for_selector("td >> text=api_key.revoked")
    shot(page, screenshots, "audit")
    context.close()
