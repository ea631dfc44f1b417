"""django-tenants' PostgreSQL backend, without a ``SET search_path`` round trip per request.

django-tenants forgets the connection's search path on every ``set_tenant()``,
so with persistent connections every API request pays one extra database round
trip (``SET search_path``) before its first query, even when the connection is
already on that organisation's schema. Here the backend remembers the path the
session really has (the last ``SET`` that succeeded on this connection) and
skips the ``SET`` when the wanted path is the same.

What the session has is forgotten whenever it may have changed behind our back:
on close and reconnect, on rollback and savepoint rollback (a ``SET`` inside an
aborted transaction is undone), and through :func:`search_path_forget`, which
code issuing its own ``SET [LOCAL] search_path`` must call (see
:mod:`tenants.provisioning`). Raw ``SET search_path`` anywhere else is a bug.
"""

from __future__ import annotations

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
