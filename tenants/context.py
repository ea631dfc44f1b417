"""The one helper for running code inside an organisation's schema."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection

from tenants.models import Organisation


@contextmanager
def tenant_context(organisation: Organisation) -> Iterator[Organisation]:
    """Switch the connection to ``organisation``'s schema, restoring the previous one after."""
    previous = connection.tenant if hasattr(connection, "tenant") else None
    connection.set_tenant(organisation)
    try:
        yield organisation
    finally:
        if previous is None or previous.schema_name == "public":
            connection.set_schema_to_public()
        else:
            connection.set_tenant(previous)
