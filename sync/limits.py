"""Sync limits for an organisation: structural limits plus the plan's batch and document size."""

from __future__ import annotations

from dataclasses import dataclass

from billing.selectors import plan_limits

# Structural limits that protect the server whatever the plan.
MAX_ID_LENGTH = 128
MAX_MUTATION_ID_LENGTH = 128
MAX_DEVICE_ID_LENGTH = 128
MAX_JSON_DEPTH = 32
# What the columns hold: a version is a PostgreSQL integer, a client timestamp a bigint (milliseconds).
MAX_VERSION = 2**31 - 1
MAX_CLIENT_TS = 2**63 - 1
MAX_PULL_LIMIT = 1000
DEFAULT_PULL_LIMIT = 500


@dataclass(frozen=True)
class SyncLimits:
    max_batch_mutations: int
    max_document_bytes: int
    max_documents: int
    max_devices: int
    plan: str


def sync_limits_for(*, plan_slug: str) -> SyncLimits:
    limits = plan_limits(slug=plan_slug)
    return SyncLimits(
        max_batch_mutations=limits.max_batch_mutations,
        max_document_bytes=limits.max_document_bytes,
        max_documents=limits.max_documents,
        max_devices=limits.max_devices,
        plan=limits.slug,
    )
