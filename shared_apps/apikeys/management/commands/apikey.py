"""``python manage.py apikey create|list|revoke`` — API keys from a shell."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from shared_apps.apikeys import keys
from shared_apps.apikeys.models import DEFAULT_SCOPES, ApiKey
from shared_apps.apikeys.selectors import api_key_get, api_key_list
from shared_apps.apikeys.services import api_key_create, api_key_revoke
from shared_apps.audit.services import CLI
from shared_apps.core.cli import OutpostCommand, iso, parse_duration
from tenants.selectors import organisation_get


def api_key_dict(api_key: ApiKey) -> dict[str, Any]:
    return {
        "prefix": api_key.display_prefix,
        "name": api_key.name,
        "organisation": api_key.organisation.slug,
        "scopes": api_key.scopes,
        "created_by": api_key.created_by_label,
        "created_at": iso(api_key.created_at),
        "expires_at": iso(api_key.expires_at),
        "revoked_at": iso(api_key.revoked_at),
        "last_used_at": iso(api_key.last_used_at),
        "active": api_key.is_active,
    }


class Command(OutpostCommand):
    help = "Manage API keys: create, list, revoke."
    subcommands = {
        "create": "Create a key; the full key is printed once.",
        "list": "List an organisation's keys (never their secrets).",
        "revoke": "Revoke a key by its prefix (opk_xxxxxxxxxxxx).",
    }

    def arguments_create(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, metavar="SLUG")
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--scopes", default=",".join(DEFAULT_SCOPES), help="Comma-separated: sync:read,sync:write,admin"
        )
        parser.add_argument("--expires-in", metavar="DURATION", help="e.g. 30d, 12h, 2w")

    def arguments_list(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, metavar="SLUG")

    def arguments_revoke(self, parser: CommandParser) -> None:
        parser.add_argument("prefix", metavar="KEY_PREFIX")

    def handle_create(self, *, org: str, name: str, scopes: str, expires_in: str | None, **_: Any) -> dict[str, Any]:
        organisation = organisation_get(slug=org)
        if organisation is None:
            raise CommandError(f"No organisation with slug {org!r}.")
        expires_at = timezone.now() + parse_duration(expires_in) if expires_in else None
        api_key, full_key = api_key_create(
            actor=CLI, organisation=organisation, name=name, scopes=scopes.split(","), expires_at=expires_at
        )
        self.say(f"Created key {api_key.display_prefix} ({api_key.name}) for {organisation.slug}.")
        self.say(f"API key (shown once, store it now): {full_key}")
        return {"api_key": api_key_dict(api_key), "key": full_key}

    def handle_list(self, *, org: str, **_: Any) -> dict[str, Any]:
        organisation = organisation_get(slug=org)
        if organisation is None:
            raise CommandError(f"No organisation with slug {org!r}.")
        api_keys = list(api_key_list(organisation=organisation))
        for api_key in api_keys:
            state = "active" if api_key.is_active else ("revoked" if api_key.revoked_at else "expired")
            self.say(f"{api_key.display_prefix:<20} {state:<8} {','.join(api_key.scopes):<30} {api_key.name}")
        if not api_keys:
            self.say("No keys.")
        return {"organisation": organisation.slug, "api_keys": [api_key_dict(k) for k in api_keys]}

    def handle_revoke(self, *, prefix: str, **_: Any) -> dict[str, Any]:
        api_key = api_key_get(prefix=keys.normalise_prefix(prefix))
        if api_key is None:
            raise CommandError(f"No key with prefix {prefix!r}.")
        api_key = api_key_revoke(actor=CLI, api_key=api_key)
        self.say(f"Revoked {api_key.display_prefix} ({api_key.name}).")
        return {"api_key": api_key_dict(api_key)}
