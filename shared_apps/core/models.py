"""Small shared model base."""

from __future__ import annotations

from django.db import models


class TimestampedModel(models.Model):
    """Adds ``created_at`` / ``updated_at`` to every model that wants them."""

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True
