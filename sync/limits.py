"""Sync limits for an organisation.

Defaults come from settings; billing's plans override them per organisation
(maximum batch size and document size) through :func:`sync_limits_for`.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

# Structural limits that protect the server whatever the plan.
MAX_ID_LENGTH = 128
MAX_MUTATION_ID_LENGTH = 128
MAX_DEVICE_ID_LENGTH = 128
MAX_JSON_DEPTH = 32
MAX_PULL_LIMIT = 1000
DEFAULT_PULL_LIMIT = 500


@dataclass(frozen=True)
class SyncLimits:
    max_batch_mutations: int
    max_document_bytes: int


def sync_limits_for(*, plan_slug: str | None = None) -> SyncLimits:
    return SyncLimits(
        max_batch_mutations=getattr(settings, "OUTPOST_MAX_BATCH_MUTATIONS", 500),
        max_document_bytes=getattr(settings, "OUTPOST_MAX_DOCUMENT_BYTES", 256 * 1024),
    )
