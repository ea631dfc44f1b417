"""``python manage.py org create|list|suspend|resume|delete`` — organisations from a shell."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import transaction

from shared_apps.accounts.models import MembershipRole
from shared_apps.accounts.services import membership_add, user_get_or_create
from shared_apps.apikeys.models import DEFAULT_SCOPES
from shared_apps.apikeys.services import api_key_create
from shared_apps.audit.services import CLI
from shared_apps.core.cli import OutpostCommand, iso
from tenants.models import Organisation
from tenants.selectors import organisation_get, organisation_list
from tenants.services import (
    organisation_create_and_provision,
    organisation_delete,
    organisation_resume,
    organisation_suspend,
)


def organisation_dict(organisation: Organisation) -> dict[str, Any]:
    return {
        "slug": organisation.slug,
        "name": organisation.name,
        "schema_name": organisation.schema_name,
        "status": organisation.status,
        "plan": organisation.plan_id,
        "status_reason": organisation.status_reason,
        "created_at": iso(organisation.created_at),
    }


class Command(OutpostCommand):
    help = "Manage organisations (tenants): create, list, suspend, resume, delete."
    subcommands = {
        "create": "Create and provision an organisation; prints its first API key once.",
        "list": "List organisations.",
        "suspend": "Suspend an organisation (its API calls get 403 tenant_suspended).",
        "resume": "Resume a suspended organisation.",
        "delete": "Drop an organisation's schema and all its data (needs --yes).",
    }

    def arguments_create(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--slug", help="Default: derived from the name.")
        parser.add_argument("--owner", metavar="EMAIL", help="Make this user (created if new) the owner.")

    def arguments_list(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true", help="Include deleted organisations.")

    def arguments_suspend(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--reason", required=True)

    def arguments_resume(self, parser: CommandParser) -> None:
        parser.add_argument("slug")

    def arguments_delete(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--yes", action="store_true", help="Confirm: the schema and all its data are dropped.")

    def _get(self, slug: str) -> Organisation:
        organisation = organisation_get(slug=slug)
        if organisation is None:
            raise CommandError(f"No organisation with slug {slug!r}.")
        return organisation

    def handle_create(self, *, name: str, slug: str | None, owner: str | None, **_: Any) -> dict[str, Any]:
        with transaction.atomic():
            organisation = organisation_create_and_provision(actor=CLI, name=name, slug=slug)
            if owner:
                user, _created = user_get_or_create(email=owner)
                membership_add(actor=CLI, organisation=organisation, user=user, role=MembershipRole.OWNER)
            api_key, full_key = api_key_create(
                actor=CLI, organisation=organisation, name="default", scopes=[*DEFAULT_SCOPES, "admin"]
            )
        self.say(f"Created organisation {organisation.slug} (schema {organisation.schema_name}).")
        if owner:
            self.say(f"Owner: {owner}")
        self.say(f"API key (shown once, store it now): {full_key}")
        return {
            "organisation": organisation_dict(organisation),
            "owner": owner,
            "api_key": {"prefix": api_key.display_prefix, "name": api_key.name, "scopes": api_key.scopes},
            "key": full_key,
        }

    def handle_list(self, *, all: bool, **_: Any) -> dict[str, Any]:
        organisations = list(organisation_list(include_deleted=all))
        for organisation in organisations:
            self.say(
                f"{organisation.slug:<40} {organisation.status:<12} {organisation.plan_id:<10} {organisation.name}"
            )
        if not organisations:
            self.say("No organisations.")
        return {"organisations": [organisation_dict(o) for o in organisations]}

    def handle_suspend(self, *, slug: str, reason: str, **_: Any) -> dict[str, Any]:
        organisation = organisation_suspend(actor=CLI, organisation=self._get(slug), reason=reason)
        self.say(f"Suspended {organisation.slug}.")
        return {"organisation": organisation_dict(organisation)}

    def handle_resume(self, *, slug: str, **_: Any) -> dict[str, Any]:
        organisation = organisation_resume(actor=CLI, organisation=self._get(slug))
        self.say(f"Resumed {organisation.slug}.")
        return {"organisation": organisation_dict(organisation)}

    def handle_delete(self, *, slug: str, yes: bool, **_: Any) -> dict[str, Any]:
        if not yes:
            raise CommandError(f"This drops the schema of {slug} and all its data. Re-run with --yes to confirm.")
        organisation = organisation_delete(actor=CLI, organisation=self._get(slug), confirm=True)
        self.say(f"Deleted {organisation.slug}: schema {organisation.schema_name} dropped.")
        return {"organisation": organisation_dict(organisation)}
