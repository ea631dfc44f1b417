"""``python manage.py demo`` — make sure a demo organisation exists and print a fresh key for it.

Used by ``make run``. A key's secret is shown only once, so every run makes a
new "make run" key and revokes the previous ones.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from shared_apps.apikeys.models import DEFAULT_SCOPES
from shared_apps.apikeys.selectors import api_key_list
from shared_apps.apikeys.services import api_key_create, api_key_revoke
from shared_apps.audit.services import Actor
from tenants.selectors import organisation_get
from tenants.services import organisation_create_and_provision

DEMO_SLUG = "demo"
KEY_NAME = "make run"


class Command(BaseCommand):
    help = "Ensure the demo organisation exists and print a new API key and a curl example."

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system("make run")
        with transaction.atomic():
            organisation = organisation_get(slug=DEMO_SLUG)
            if organisation is None:
                organisation = organisation_create_and_provision(actor=actor, name="Demo organisation", slug=DEMO_SLUG)
                self.stdout.write(f"Created the demo organisation ({organisation.slug}).")
            for old in api_key_list(organisation=organisation, include_revoked=False).filter(name=KEY_NAME):
                api_key_revoke(actor=actor, api_key=old, reason="replaced by a new make run key")
            _api_key, full_key = api_key_create(
                actor=actor, organisation=organisation, name=KEY_NAME, scopes=[*DEFAULT_SCOPES, "admin"]
            )
        base = settings.OUTPOST_PUBLIC_URL.rstrip("/")
        self.stdout.write(
            "\n"
            f"  Demo organisation: {organisation.slug}\n"
            f"  API key (shown once): {full_key}\n\n"
            f"  Try it:\n"
            f'    curl -H "Authorization: Bearer {full_key}" {base}/api/v1/whoami\n\n'
            f"  API docs: {base}/api/docs/\n"
        )
