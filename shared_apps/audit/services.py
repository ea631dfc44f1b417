"""Writing the audit log.

Every mutating service that an organisation would want on record calls
:func:`audit_record` inside its own transaction, so the audit row and the
change commit (or roll back) together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import transaction

from shared_apps.audit.models import AuditEvent

if TYPE_CHECKING:
    from shared_apps.accounts.models import User
    from tenants.models import Organisation


@dataclass(frozen=True)
class Actor:
    """Who performs an action: a user, or a labelled non-user (CLI, system, API key)."""

    label: str
    user: User | None = None

    @classmethod
    def for_user(cls, user: User) -> Actor:
        prefix = "staff:" if user.is_staff else "user:"
        return cls(label=f"{prefix}{user.email}", user=user)

    @classmethod
    def system(cls, what: str = "system") -> Actor:
        return cls(label=what)


CLI = Actor(label="cli")
SYSTEM = Actor(label="system")


def audit_record(
    *,
    actor: Actor,
    action: str,
    organisation: Organisation | None = None,
    target_type: str = "",
    target_id: str | int = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Insert one audit row; must run inside the caller's transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must be called inside the mutating service's transaction")
    return AuditEvent.objects.create(
        actor=actor.user,
        actor_label=actor.label[:200],
        organisation=organisation,
        organisation_slug=organisation.slug if organisation else "",
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        details=details or {},
    )
