"""Fast creation of an organisation's schema.

django-tenants creates a schema by running every tenant migration against it,
which costs seconds per organisation and grows with the migration history.
Outpost instead *records* what the migrations do once and *replays* it:

1. :func:`capture_schema_script` runs the real migrations (the same executor
   and router django-tenants uses) into a scratch schema inside a transaction,
   recording every statement that changes the schema — DDL, data inserted by
   migrations and the ``django_migrations`` rows — and then rolls back.
2. The recording is stored in ``tenants_schemascript`` under a key derived from
   the migration files, so it is captured once per release, not per process.
3. :func:`create_tenant_schema` creates the schema and replays the recording
   in a handful of round trips, inside the caller's transaction.

A replayed schema is indistinguishable from a migrated one (a test compares
the catalogs), so ``migrate_schemas`` treats it as up to date.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import django
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone
from django_tenants.utils import schema_exists

from tenants.models import SchemaScript
from tenants.postgresql_backend.base import search_path_forget

logger = logging.getLogger("outpost.provisioning")

_SCHEMA_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_NOW = "__outpost_now__"
# Reads, search-path changes and savepoints are not part of the schema's construction.
_SKIPPED_PREFIXES = ("SELECT", "SET SEARCH_PATH", "SHOW", "SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")
_process_cache: dict[str, list[tuple[str, list[Any] | None]]] = {}
_lock = threading.Lock()


class _RollbackError(Exception):
    """Raised to roll back the capture transaction."""


def quote_schema(schema_name: str) -> str:
    if not _SCHEMA_NAME_RE.match(schema_name) or schema_name.startswith("pg_"):
        raise ValueError(f"invalid schema name {schema_name!r}")
    return f'"{schema_name}"'


def migrations_key() -> str:
    """A fingerprint of every migration on disk (names and contents) and Django's version."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    digest = hashlib.sha256(django.get_version().encode())
    for key in sorted(loader.disk_migrations):
        migration = loader.disk_migrations[key]
        digest.update(f"{key[0]}.{key[1]}".encode())
        module = __import__(migration.__module__, fromlist=["_"])
        source_file = getattr(module, "__file__", None)
        if source_file:
            with open(source_file, "rb") as fh:
                digest.update(fh.read())
    return digest.hexdigest()


def _jsonable(params: Any) -> list[Any] | None:
    if params is None:
        return None
    out: list[Any] = []
    for value in params:
        if isinstance(value, datetime):
            out.append(_NOW)
        elif value is None or isinstance(value, str | int | float | bool):
            out.append(value)
        else:
            # dicts/lists from JSONField data migrations arrive already adapted by psycopg
            out.append(json.loads(json.dumps(value, default=str)))
    return out


@contextmanager
def _recording(statements: list[tuple[str, list[Any] | None]]) -> Iterator[None]:
    def recorder(execute, sql, params, many, context):
        text = sql.strip()
        head = text[:40].upper()
        if not head.startswith(_SKIPPED_PREFIXES):
            if many:
                for row in params:
                    statements.append((text, _jsonable(row)))
            else:
                statements.append((text, _jsonable(params)))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(recorder):
        yield


def capture_schema_script() -> list[tuple[str, list[Any] | None]]:
    """Run all migrations into a throw-away schema and return the statements they issued."""
    scratch = f"_outpost_capture_{uuid.uuid4().hex[:12]}"
    statements: list[tuple[str, list[Any] | None]] = []
    previous_tenant = getattr(connection, "tenant", None)
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE SCHEMA {quote_schema(scratch)}")
            with _recording(statements):
                # As django-tenants does: the recorder table must be created in
                # the new schema, not found in public through the search path.
                connection.set_schema(scratch, include_public=False)
                MigrationRecorder(connection).ensure_schema()
                connection.set_schema(scratch)
                executor = MigrationExecutor(connection)
                targets = executor.loader.graph.leaf_nodes()
                executor.migrate(targets, plan=executor.migration_plan(targets))
            raise _RollbackError
    except _RollbackError:
        pass
    finally:
        if previous_tenant is not None and previous_tenant.schema_name != "public":
            connection.set_tenant(previous_tenant)
        else:
            connection.set_schema_to_public()
    if not statements:
        raise RuntimeError("capturing the tenant schema recorded no statements")
    return statements


def schema_script() -> list[tuple[str, list[Any] | None]]:
    """The replay script for the current migrations: process memory, else the database, else captured."""
    key = migrations_key()
    with _lock:
        if key in _process_cache:
            return _process_cache[key]
        stored = SchemaScript.objects.filter(key=key).values_list("statements", flat=True).first()
        if stored is None:
            logger.info("capturing tenant schema script for migrations %s", key[:12])
            stored = [list(item) for item in capture_schema_script()]
            with transaction.atomic():
                SchemaScript.objects.bulk_create([SchemaScript(key=key, statements=stored)], ignore_conflicts=True)
        script = [(sql, params) for sql, params in stored]
        _process_cache[key] = script
        return script


def _grouped(script: list[tuple[str, list[Any] | None]], now: datetime) -> Iterator[tuple[str, list[list[Any]] | None]]:
    """Fewer round trips: runs of parameterless statements are joined into one
    execute, runs of the same parameterised statement become one executemany."""
    texts: list[str] = []
    run_sql: str | None = None
    rows: list[list[Any]] = []
    for sql, params in script:
        if params is None:
            if run_sql is not None:
                yield run_sql, rows
                run_sql, rows = None, []
            texts.append(sql.rstrip().rstrip(";") + ";")
            continue
        if texts:
            yield "\n".join(texts), None
            texts = []
        if run_sql is not None and sql != run_sql:
            yield run_sql, rows
            rows = []
        run_sql = sql
        rows.append([now if value == _NOW else value for value in params])
    if texts:
        yield "\n".join(texts), None
    if run_sql is not None:
        yield run_sql, rows


def create_tenant_schema(schema_name: str) -> None:
    """Create ``schema_name`` with every tenant table, in the caller's transaction."""
    quoted = quote_schema(schema_name)
    if schema_exists(schema_name):
        raise ValueError(f"schema {schema_name} already exists")
    script = schema_script()
    now = timezone.now()
    previous_tenant = getattr(connection, "tenant", None)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA {quoted}")
            # Statements are unqualified; the search path puts them in the new schema.
            cursor.execute(f"SET LOCAL search_path TO {quoted}")
            for sql, rows in _grouped(script, now):
                if rows is None:
                    cursor.execute(sql)
                else:
                    cursor.executemany(sql, rows)
    finally:
        # SET LOCAL was issued behind the backend's back: make it set the path again.
        search_path_forget(connection)
        if previous_tenant is not None and previous_tenant.schema_name != "public":
            connection.set_tenant(previous_tenant)
        else:
            connection.set_schema_to_public()


def drop_tenant_schema(schema_name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {quote_schema(schema_name)} CASCADE")
