"""Low-level access for the sync hot path: the per-organisation write lock and
binary-parameter cursors.

Why one writer at a time per organisation: ``seq`` values come from a
sequence, and a sequence hands out numbers before commit, so with concurrent
writers a reader could see seq 11 committed while seq 10 is still in flight,
move its checkpoint past 10 and never see it. Every writer of documents takes
:func:`tenant_write_lock` first (a transaction-level advisory lock keyed by the
organisation), so numbers are drawn only after the previous writer committed:
``seq`` order is commit order and ``seq > checkpoint`` never skips a change.
Writers of different organisations never wait for each other. See
docs/decisions.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import psycopg
from django.db import connection
from psycopg.adapt import AdaptersMap, Loader
from psycopg.pq import Format
from psycopg.types.json import set_json_loads
from psycopg.types.string import ByteaBinaryLoader

from tenants.postgresql_backend.base import search_path_forget

# First key of the two-key advisory lock space, reserved for sync writers.
SYNC_LOCK_CLASS = 7411


def current_organisation_id() -> int:
    tenant = getattr(connection, "tenant", None)
    if tenant is None or tenant.schema_name == "public" or tenant.pk is None:
        raise RuntimeError("sync services must run inside an organisation's schema")
    return int(tenant.pk)


def tenant_write_lock() -> None:
    """Serialise document writers of the current organisation until the transaction ends."""
    if not connection.in_atomic_block:
        raise RuntimeError("tenant_write_lock must be taken inside a transaction")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [SYNC_LOCK_CLASS, current_organisation_id()])


@contextmanager
def fast_cursor() -> Iterator[psycopg.Cursor]:
    """A server-side-binding psycopg cursor on Django's connection (same transaction, same schema).

    Django's default client-side binding inlines every parameter into the SQL
    text; binary parameters (``%b``) for arrays are several times faster.
    """
    _ready()
    cursor = _new_cursor()
    try:
        yield cursor
    finally:
        cursor.close()


def _ready() -> None:
    """Open Django's connection if needed and set the organisation's search_path on it."""
    with connection.cursor():
        pass


def _json_loaders() -> list[tuple[int, type[Loader]]]:
    """psycopg's loaders of json and jsonb (text and binary) decoding with orjson, made once.

    Django's connections load jsonb as text (its JSONField decodes it), so the sync cursors register
    these on themselves; registering the ready-made classes by oid costs a cursor ~6 µs, where
    ``set_json_loads`` and ``set_json_dumps`` on every cursor cost ~30 µs (~0.1 ms per push, which opens
    several). Nothing here dumps JSON through psycopg: documents go as serialised text."""
    template = AdaptersMap(psycopg.adapters)
    set_json_loads(orjson.loads, template)
    oids = [psycopg.adapters.types[name].oid for name in ("json", "jsonb")]
    return [
        (oid, loader)
        for oid in oids
        for format in (Format.TEXT, Format.BINARY)
        if (loader := template.get_loader(oid, format)) is not None
    ]


_JSON_LOADERS = _json_loaders()


def _new_cursor() -> psycopg.Cursor:
    cursor_class = _LoggedCursor if connection.queries_logged else psycopg.Cursor
    cursor = cursor_class(connection.connection)
    for oid, loader in _JSON_LOADERS:
        cursor.adapters.register_loader(oid, loader)
    return cursor


@contextmanager
def pipelined() -> Iterator[Callable[[str, Any], psycopg.Cursor]]:
    """Send several statements in one round trip (psycopg's pipeline mode) on Django's connection.

    Yields ``execute(sql, params) -> cursor``: each statement gets a cursor of its own, whose results are
    read after the block (reading one inside it waits for the server). Statements run in the order sent,
    in the caller's transaction; an error in one aborts the transaction as usual.
    """
    _ready()

    def execute(sql: str, params: Any = None) -> psycopg.Cursor:
        cursor = _new_cursor()
        cursor.execute(sql, params)
        return cursor  # client-side: it holds only its result, released with the object

    with connection.connection.pipeline():
        yield execute


# Text columns of a batch go to PostgreSQL as one string joined by a separator and split there by
# ``string_to_array`` (SQL: :data:`SPLIT`), instead of an array psycopg builds element by element in
# Python (measured ~0.6 ms less per 500-document push). The separator is a control character: ids and
# collection names may not contain one (sync.validation) and serialised JSON escapes them, so it never
# occurs inside a value.
SEPARATOR = "\x1e"
SPLIT = "string_to_array(%s, E'\\x1e')"
# The same where an element may be NULL, passed as an empty string.
SPLIT_NULLABLE = "string_to_array(%s, E'\\x1e', '')"


def joined(values: list[str]) -> str:
    """``values`` as one :data:`SPLIT` parameter."""
    return SEPARATOR.join(values)


def joined_json(documents: list[bytes]) -> str:
    """Serialised JSON documents as one :data:`SPLIT` parameter (joined as bytes, decoded once)."""
    return SEPARATOR.encode().join(documents).decode()


def text_as_bytes(cursor: psycopg.Cursor) -> None:
    """Read this cursor's text columns as bytes: a page PostgreSQL rendered goes into the response as it
    is, instead of being decoded into a str and encoded back. Execute with ``binary=True``.

    The binary format of text is its UTF-8 bytes, which is what bytea's binary loader hands over; psycopg
    swaps in its C version of that loader, so a page of a thousand rows costs no Python call per row.
    """
    cursor.adapters.register_loader("text", ByteaBinaryLoader)


def rollback_to_savepoint(name: str) -> None:
    """Undo what ran since ``SAVEPOINT name`` (sent by the caller on Django's connection, inside its
    transaction); the transaction goes on, usable again even after an error in between. The session's
    search path is set again before the next query, as after any savepoint rollback (see
    :mod:`tenants.postgresql_backend.base`)."""
    with connection.connection.cursor() as cursor:
        cursor.execute(f"ROLLBACK TO SAVEPOINT {name}")
    search_path_forget()


class _LoggedCursor(psycopg.Cursor):
    """Adds statements to Django's query log when it is on (DEBUG, or tests counting queries),
    so query-count tests see the hot path's statements too."""

    def execute(self, query, params=None, **kwargs):  # type: ignore[override]
        started = time.monotonic()
        try:
            return super().execute(query, params, **kwargs)
        finally:
            connection.queries_log.append({"sql": str(query), "time": f"{time.monotonic() - started:.3f}"})
