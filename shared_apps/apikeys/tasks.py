"""Platform cleanup of API keys that can no longer be used, and of stale invitations and sign-ups."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.db.models import Q
from django.utils import timezone

from shared_apps.accounts.services import invites_cleanup, signups_cleanup
from shared_apps.apikeys.models import ApiKey

# Revoked or expired keys are kept this long for the portal's key list; the audit log keeps them for good.
KEY_RETENTION_DAYS = 90


@shared_task(name="shared_apps.apikeys.tasks.cleanup_expired")
def cleanup_expired() -> dict[str, int]:
    cutoff = timezone.now() - timedelta(days=KEY_RETENTION_DAYS)
    keys, _ = ApiKey.objects.filter(Q(revoked_at__lt=cutoff) | Q(expires_at__lt=cutoff)).delete()
    return {"api_keys": keys, "invites": invites_cleanup(), "signups": signups_cleanup()}
