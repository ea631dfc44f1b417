"""Background provisioning of organisations created from the portal."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import OperationalError, connection

from shared_apps.core.errors import NotFound
from tenants.services import organisation_provision

logger = logging.getLogger("outpost.tenants")


@shared_task(
    name="tenants.tasks.provision_organisation",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def provision_organisation(organisation_id: int) -> str:
    """Create the organisation's schema and mark it active; returns the resulting status.

    Sent to the ``platform`` queue (see :func:`provision_organisation_send`), not to a tenant queue: the
    organisation has no schema yet, and sign-ups must not wait behind any organisation's backlog.

    Safe to run twice (a redelivered message, or the portal re-sending a task
    that seems lost): :func:`organisation_provision` locks the row and leaves an
    organisation that is no longer ``provisioning`` alone.
    """
    # Provisioning works from the public schema whatever the worker's connection last did.
    connection.set_schema_to_public()
    try:
        organisation = organisation_provision(organisation_id=organisation_id)
    except NotFound:
        logger.warning("organisation %s vanished before provisioning", organisation_id)
        return "missing"
    return organisation.status


def provision_organisation_send(organisation_id: int) -> None:
    """Queue provisioning on the platform queue."""
    provision_organisation.apply_async(args=[organisation_id], queue=settings.PLATFORM_QUEUE)
