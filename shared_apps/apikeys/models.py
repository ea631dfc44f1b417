"""API keys, stored in the public schema as a public prefix plus a digest of the secret."""

from __future__ import annotations

from typing import Literal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone

Scope = Literal["sync:read", "sync:write", "admin"]
SCOPES: tuple[Scope, ...] = ("sync:read", "sync:write", "admin")
DEFAULT_SCOPES: list[Scope] = ["sync:read", "sync:write"]


class ApiKey(models.Model):
    """An organisation's API key.

    The full key is ``opk_<prefix>_<secret>``. Only ``prefix`` (not secret, used
    to find the row and shown in lists and logs) and the SHA-256 digest of the
    secret are stored; the secret itself is shown exactly once, at creation.
    """

    organisation = models.ForeignKey("tenants.Organisation", on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64)
    scopes = ArrayField(models.CharField(max_length=20), default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_label = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organisation", "-created_at"], name="apikey_org_created_idx")]

    def __str__(self) -> str:
        return f"opk_{self.prefix}… ({self.name})"

    @property
    def display_prefix(self) -> str:
        return f"opk_{self.prefix}"

    @property
    def is_active(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
