"""django-tenants' PostgreSQL backend, without a ``SET search_path`` round trip per request.

django-tenants forgets the connection's search path on every ``set_tenant()``,
so with persistent connections every API request pays one extra database round
trip (``SET search_path``) before its first query, even when the connection is
already on that organisation's schema. Here the backend remembers the path the
session really has (the last ``SET`` that succeeded on this connection) and
skips the ``SET`` when the wanted path is the same.

The per-request connection health check (``CONN_HEALTH_CHECKS``) does not cost a
round trip either: see :meth:`DatabaseWrapper.is_usable`.

What the session has is forgotten whenever it may have changed behind our back:
on close and reconnect, on rollback and savepoint rollback (a ``SET`` inside an
aborted transaction is undone), and through :func:`search_path_forget`, which
code issuing its own ``SET [LOCAL] search_path`` must call (see
:mod:`tenants.provisioning`). Raw ``SET search_path`` anywhere else is a bug.
"""

from __future__ import annotations

import select
from typing import Any

from django.db import connection as default_connection
from django_tenants.postgresql_backend import base as tenants_base
from django_tenants.utils import get_limit_set_calls


class DatabaseWrapper(tenants_base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The search path the session has, as a list of schema names; None: unknown.
        self.session_search_path: list[str] | None = None
        super().__init__(*args, **kwargs)

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        self.session_search_path = None
        return super().get_new_connection(conn_params)

    def close(self) -> None:
        self.session_search_path = None
        super().close()

    def rollback(self) -> None:
        self.session_search_path = None
        super().rollback()

    def savepoint_rollback(self, sid: str) -> None:
        try:
            super().savepoint_rollback(sid)
        finally:
            self.session_search_path = None

    def is_usable(self) -> bool:
        """Whether a kept connection can serve this request, without a ``SELECT 1`` round trip when possible.

        Django checks a persistent connection at the start of every request. An idle connection has nothing
        to read: when the server ends a session (restart, ``pg_terminate_backend``, idle timeout) it sends
        a termination notice and closes the socket, which makes the socket readable. So a connection the
        driver still considers open, whose socket has nothing waiting, is usable; anything else gets
        Django's round-trip check. A connection that died silently (no notice reached us) fails its first
        query instead, and Django discards it at the end of that request, as it would without checks.
        """
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        try:
            readable, _, _ = select.select([connection.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable or super().is_usable()

    def _handle_search_path(self, cursor: Any = None) -> None:
        if (
            not self._setting_search_path
            and self.search_path_set_schemas is None
            and self.session_search_path is not None
            and get_limit_set_calls()
            and self.schema_name
            and self._get_cursor_search_paths() == self.session_search_path
        ):
            self.search_path_set_schemas = self.session_search_path
            return
        super()._handle_search_path(cursor)
        if self.search_path_set_schemas is not None:
            self.session_search_path = list(self.search_path_set_schemas)


def search_path_forget(connection: Any = default_connection) -> None:
    """After a raw ``SET [LOCAL] search_path``: the next query sets the tenant's path again."""
    connection.search_path_set_schemas = None
    if hasattr(connection, "session_search_path"):
        connection.session_search_path = None
