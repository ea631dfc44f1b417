"""Migrating every organisation's schema: skip what is current, migrate the rest in parallel.

django-tenants' ``migrate_schemas`` runs Django's whole ``migrate`` command per
schema: it loads the migration files, builds the graph, renders the project
state and emits the migrate signals for every schema, even when there is
nothing to do (minutes for a no-op at a thousand organisations). Here:

1. :func:`migration_targets` computes once what a tenant schema should have
   applied: every node of the migration graph (all apps, as django-tenants
   records them; the router decides at run time which operations touch a
   tenant schema).
2. :func:`tenant_schemas_check` reads the applied migrations of all schemas
   with ``UNION ALL`` queries (50 schemas each) over one connection and
   compares them with the targets. Schemas already up to date cost nothing
   more; a re-run after a partial run (or a crash) only sees the schemas
   still behind.
3. :func:`tenant_schemas_migrate` hands the schemas that are behind to worker
   processes (``spawn``). Each worker sets Django up once and keeps one
   :class:`SchemaMigrator`: one ``MigrationExecutor`` whose loader is reused,
   refreshed with the schema's applied migrations (one query), and a cache of
   rendered project states keyed by the applied set (Django's ``migrate``
   does the same clone-a-rendered-state trick within one run). Shared apps'
   migrations, whose operations the router skips in a tenant schema anyway,
   are recorded without being run.

Each schema is migrated in its own transaction (unless a migration in its plan
is declared ``atomic = False``), under a per-schema advisory lock so two runs
never migrate the same schema at once. A failing schema is rolled back and
reported; the others carry on.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, router, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.migration import Migration
from django.db.migrations.recorder import MigrationRecorder
from django.db.migrations.state import ProjectState
from django_tenants.routers import TenantSyncRouter
from django_tenants.signals import schema_migrated
from django_tenants.utils import get_public_schema_name

MigrationKey = tuple[str, str]
Status = Literal["migrated", "up_to_date", "failed"]

# Advisory lock namespace (the first key of the two-key form); 7411 is the sync writers' lock.
MIGRATE_LOCK_NAMESPACE = 7412
CHECK_CHUNK_SIZE = 50
_STATE_CACHE_SIZE = 8


def quote_schema(schema_name: str) -> str:
    # Imported on use: worker processes import this module before Django is set up,
    # and tenants.provisioning imports models.
    from tenants.provisioning import quote_schema

    return quote_schema(schema_name)


def migration_label(key: MigrationKey) -> str:
    return f"{key[0]}.{key[1]}"


@dataclass(frozen=True)
class MigrationTargets:
    """What a fully migrated tenant schema has recorded in its ``django_migrations``.

    ``keys`` is Django's full plan on an empty database (every node of the
    graph, in the order they would be applied). A squashed migration counts
    as applied when all the migrations it replaces are, as Django's loader
    decides.
    """

    keys: tuple[MigrationKey, ...]
    replaces: dict[MigrationKey, tuple[MigrationKey, ...]] = field(default_factory=dict)

    def missing(self, applied: set[MigrationKey]) -> list[MigrationKey]:
        """Targets not applied, in plan order; empty when the schema is up to date."""
        return [
            key
            for key in self.keys
            if key not in applied and not (key in self.replaces and all(r in applied for r in self.replaces[key]))
        ]


def migration_targets() -> MigrationTargets:
    """The target set of every tenant schema, computed once from the migration files."""
    loader = MigrationLoader(None)
    graph = loader.graph
    executor_plan: list[MigrationKey] = []
    seen: set[MigrationKey] = set()
    for leaf in graph.leaf_nodes():
        for key in graph.forwards_plan(leaf):
            if key not in seen:
                seen.add(key)
                executor_plan.append(key)
    replaces = {key: tuple(graph.nodes[key].replaces) for key in executor_plan if graph.nodes[key].replaces}
    return MigrationTargets(keys=tuple(executor_plan), replaces=replaces)


@dataclass
class SchemaCheck:
    """Where each schema stands compared with the targets."""

    up_to_date: list[str] = field(default_factory=list)
    pending: dict[str, list[MigrationKey]] = field(default_factory=dict)
    missing_schemas: list[str] = field(default_factory=list)
    invalid_names: list[str] = field(default_factory=list)


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _applied_rows(
    cursor: Any, chunk: Sequence[str], *, using: str, has_table: dict[str, bool]
) -> list[tuple[str, str, str]]:
    """``(schema, app, name)`` of every ``django_migrations`` row of the schemas in ``chunk``.

    A schema dropped since the existence check (an organisation deleted
    meanwhile) fails the whole statement: then each schema is read alone, and
    the ones that are gone are removed from ``has_table`` (reported as missing).
    """
    parts = [f"SELECT %s::text, app, name FROM {quote_schema(name)}.django_migrations" for name in chunk]
    try:
        with transaction.atomic(using=using):
            cursor.execute(" UNION ALL ".join(parts), list(chunk))
            return cursor.fetchall()
    except DatabaseError:
        if len(chunk) == 1:
            has_table.pop(chunk[0], None)
            return []
    rows: list[tuple[str, str, str]] = []
    for name in chunk:
        rows.extend(_applied_rows(cursor, [name], using=using, has_table=has_table))
    return rows


def tenant_schemas_check(
    *,
    schema_names: Sequence[str],
    targets: MigrationTargets,
    using: str = DEFAULT_DB_ALIAS,
    chunk_size: int = CHECK_CHUNK_SIZE,
) -> SchemaCheck:
    """Compare every schema's applied migrations with ``targets``, in a few queries.

    Each chunk of schemas is one ``UNION ALL`` statement over their
    ``django_migrations`` tables. Plain rows compared in Python measured
    faster than asking PostgreSQL for the difference (an ``EXCEPT`` per
    schema), and small chunks faster than large ones (planning grows faster
    than linearly with the number of branches).
    """
    check = SchemaCheck()
    valid: list[str] = []
    for name in schema_names:
        try:
            quote_schema(name)
        except ValueError:
            check.invalid_names.append(name)
        else:
            valid.append(name)
    connection = connections[using]
    applied: dict[str, set[MigrationKey]] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname, EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = n.oid "
            "AND c.relname = 'django_migrations' AND c.relkind IN ('r', 'p')) "
            "FROM pg_namespace n WHERE n.nspname = ANY(%s)",
            [valid],
        )
        has_table = dict(cursor.fetchall())
        with_table = [name for name in valid if has_table.get(name)]
        for chunk in _chunks(with_table, chunk_size):
            for name, app, migration in _applied_rows(cursor, chunk, using=using, has_table=has_table):
                applied.setdefault(name, set()).add((app, migration))
    for name in valid:
        if name not in has_table:
            check.missing_schemas.append(name)
            continue
        # No django_migrations table: everything is missing (the worker creates the table).
        missing = targets.missing(applied.get(name, set()))
        if missing:
            check.pending[name] = missing
        else:
            check.up_to_date.append(name)
    return check


@dataclass
class SchemaResult:
    schema: str
    status: Status
    applied: list[str] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0


def error_line(exc: BaseException) -> str:
    """The exception's class and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@contextmanager
def _schema_lock(connection: Any, schema_name: str) -> Iterator[bool]:
    """Session-level advisory lock, so two runs never migrate one schema at once.

    Yields whether the schema has a ``django_migrations`` table (same round trip).
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_lock(%s, hashtext(%s)), to_regclass(%s) IS NOT NULL",
            [MIGRATE_LOCK_NAMESPACE, schema_name, f"{quote_schema(schema_name)}.django_migrations"],
        )
        has_table = bool(cursor.fetchone()[1])
    yield has_table
    # Not reached on an error: the caller then closes the connection, which releases the lock
    # (an unlock on a broken connection would only hide the original error).
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", [MIGRATE_LOCK_NAMESPACE, schema_name])


class SchemaMigrator:
    """Migrates schemas one after another over one connection, reusing one executor.

    The migration graph does not depend on the schema unless squashed
    migrations are present, so per schema only the applied set is re-read.
    Shared apps' migrations are recorded in tenant schemas, but the router runs
    none of their operations there: they are recorded without being run, and
    only their effect on the project state is kept. The rendered state before
    the migrations that do run is cached per applied set and cloned (as
    Django's ``migrate`` does within one run); rendering it is most of what
    ``migrate`` costs for a small migration.
    """

    def __init__(self, *, using: str = DEFAULT_DB_ALIAS, lock_timeout: float | None = None) -> None:
        self.using = using
        self.lock_timeout = lock_timeout
        self.connection = connections[using]
        self._executor: MigrationExecutor | None = None
        self._states: dict[frozenset[MigrationKey], ProjectState] = {}
        self._splits: dict[tuple[MigrationKey, ...], tuple[list[Migration], list[Migration]]] = {}
        self._by_app_label: bool | None = None
        self._full_plan: list[Migration] | None = None

    def _refresh(self) -> MigrationExecutor:
        if self._executor is None:
            self._executor = MigrationExecutor(self.connection)
            # The loader just read this schema's applied migrations.
            return self._executor
        executor = self._executor
        # The executor's recorder already saw a django_migrations table (cached);
        # this schema has one too: it was ensured just before.
        executor.recorder.ensure_schema()
        if executor.loader.replacements:
            # Which side of a squash the graph uses depends on what is applied.
            executor.loader.build_graph()
            self._splits.clear()
            self._full_plan = None
        else:
            executor.loader.applied_migrations = executor.recorder.applied_migrations()
        return executor

    def _runs_nothing_here(self, migration: Migration) -> bool:
        """Whether the router refuses every operation of ``migration`` in a tenant schema.

        django-tenants' router decides by app label alone, so asking about the
        app answers for every operation; with any other router every migration
        is run normally.
        """
        if self._by_app_label is None:
            routers = router.routers
            self._by_app_label = bool(routers) and all(isinstance(r, TenantSyncRouter) for r in routers)
        return self._by_app_label and router.allow_migrate(self.using, migration.app_label) is False

    def _plan(self, executor: MigrationExecutor) -> list[Migration]:
        """What ``executor.migration_plan(leaf nodes)`` returns, without walking the graph for every schema.

        Without squashed migrations the graph is the same for every schema, so
        the plan is the plan on an empty database minus what is applied.
        """
        loader = executor.loader
        if loader.replacements:
            return [migration for migration, _ in executor.migration_plan(loader.graph.leaf_nodes())]
        if self._full_plan is None:
            self._full_plan = [m for m, _ in executor.migration_plan(loader.graph.leaf_nodes(), clean_start=True)]
        return [m for m in self._full_plan if (m.app_label, m.name) not in loader.applied_migrations]

    def _split(self, executor: MigrationExecutor, plan: list[Migration]) -> tuple[list[Migration], list[Migration]]:
        """``(record only, to run)``: the plan's migrations whose operations all skip this schema, and the rest.

        Recording a migration before the ones that run is only the same as
        Django's order when it does not depend on any of them; otherwise the
        whole plan runs normally.
        """
        key = tuple((m.app_label, m.name) for m in plan)
        if key not in self._splits:
            record = [m for m in plan if self._runs_nothing_here(m)]
            run = [m for m in plan if m not in record]
            graph = executor.loader.graph
            run_keys = {(m.app_label, m.name) for m in run}
            if any(run_keys.intersection(graph.forwards_plan((m.app_label, m.name))) for m in record):
                record, run = [], list(plan)
            self._splits[key] = (record, run)
        return self._splits[key]

    def _state_with(self, executor: MigrationExecutor, record: list[Migration]) -> ProjectState:
        """The project state with the applied migrations and ``record``, rendered; a clone of a cached one."""
        graph = executor.loader.graph
        keys = frozenset(
            [key for key in executor.loader.applied_migrations if key in graph.nodes]
            + [(m.app_label, m.name) for m in record]
        )
        state = self._states.get(keys)
        if state is None:
            state = ProjectState(real_apps=executor.loader.unmigrated_apps)
            for migration, _ in executor.migration_plan(graph.leaf_nodes(), clean_start=True):
                if (migration.app_label, migration.name) in keys:
                    migration.mutate_state(state, preserve=False)
            state.apps  # noqa: B018 - render once; clones copy the rendered registry
            if len(self._states) >= _STATE_CACHE_SIZE:
                self._states.pop(next(iter(self._states)))
            self._states[keys] = state
        return state.clone()

    def migrate(self, schema_name: str) -> SchemaResult:
        """Bring one schema to the leaf nodes of the graph; never raises."""
        started = time.perf_counter()
        connection = self.connection
        try:
            if schema_name == get_public_schema_name():
                raise ValueError("the public schema is migrated with migrate_schemas --shared")
            quote_schema(schema_name)
            connection.set_schema(schema_name)
            with _schema_lock(connection, schema_name) as has_table:
                if not has_table:
                    # As django-tenants does: create django_migrations in the
                    # schema itself, not find public's through the search path.
                    connection.set_schema(schema_name, include_public=False)
                    MigrationRecorder(connection).ensure_schema()
                    connection.set_schema(schema_name)
                executor = self._refresh()
                targets = executor.loader.graph.leaf_nodes()
                plan = self._plan(executor)
                if not plan:
                    return SchemaResult(schema_name, "up_to_date", seconds=time.perf_counter() - started)
                atomic = all(migration.atomic for migration in plan)
                record, run = self._split(executor, plan)
                with transaction.atomic(using=self.using) if atomic else nullcontext():
                    self._set_lock_timeout(local=atomic)
                    try:
                        for migration in record:
                            executor.record_migration(migration)
                        if run:
                            state = self._state_with(executor, record)
                            executor.migrate(targets, plan=[(m, False) for m in run], state=state)
                        else:
                            executor.check_replacements()
                    finally:
                        if not atomic:
                            self._reset_lock_timeout()
            schema_migrated.send(sender=SchemaMigrator, schema_name=schema_name)
            return SchemaResult(
                schema_name,
                "migrated",
                applied=[migration_label((m.app_label, m.name)) for m in plan],
                seconds=time.perf_counter() - started,
            )
        except Exception as exc:
            # The transaction is rolled back; start the next schema on a clean connection.
            connection.close()
            return SchemaResult(schema_name, "failed", error=error_line(exc), seconds=time.perf_counter() - started)
        finally:
            connection.set_schema_to_public()

    def _set_lock_timeout(self, *, local: bool) -> None:
        if not self.lock_timeout:
            return
        scope = "LOCAL " if local else ""
        with self.connection.cursor() as cursor:
            cursor.execute(f"SET {scope}lock_timeout = {int(self.lock_timeout * 1000)}")

    def _reset_lock_timeout(self) -> None:
        if self.lock_timeout and self.connection.connection is not None:
            with self.connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")


# Worker processes --------------------------------------------------------------------------------------------------

_worker: SchemaMigrator | None = None


def _worker_init(settings_module: str, using: str, database: dict[str, Any], lock_timeout: float | None) -> None:
    """Set Django up once per worker, on exactly the parent's database (a test database too)."""
    global _worker
    # Ctrl-C reaches the whole process group: the parent cancels what has not
    # started, and workers finish (commit or roll back) the schema in hand.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django

    django.setup()
    connections[using].settings_dict.update(database)
    connections[using].close()
    _worker = SchemaMigrator(using=using, lock_timeout=lock_timeout)


def _worker_migrate(schema_name: str) -> SchemaResult:
    assert _worker is not None, "worker not initialised"
    return _worker.migrate(schema_name)


def default_parallelism() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def tenant_schemas_migrate(
    *,
    schema_names: Sequence[str],
    parallel: int,
    lock_timeout: float | None = None,
    using: str = DEFAULT_DB_ALIAS,
    on_result: Callable[[SchemaResult], None] | None = None,
) -> list[SchemaResult]:
    """Migrate ``schema_names`` with up to ``parallel`` worker processes; one result per schema.

    With one worker (or one schema) everything runs in this process, which
    saves starting a Python process for the common "one schema is behind" case.
    """
    results: list[SchemaResult] = []

    def record(result: SchemaResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    workers = max(1, min(parallel, len(schema_names)))
    if not schema_names:
        return results
    if workers == 1:
        migrator = SchemaMigrator(using=using, lock_timeout=lock_timeout)
        for name in schema_names:
            record(migrator.migrate(name))
        return results

    database = dict(connections[using].settings_dict)
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_worker_init,
        initargs=(settings.SETTINGS_MODULE, using, database, lock_timeout),
    )
    futures: dict[Future[SchemaResult], str] = {}
    try:
        futures = {pool.submit(_worker_migrate, name): name for name in schema_names}
        not_done = set(futures)
        while not_done:
            done, not_done = wait(not_done, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    record(future.result())
                except BrokenProcessPool as exc:
                    record(SchemaResult(futures[future], "failed", error=f"worker process died: {error_line(exc)}"))
                except Exception as exc:
                    record(SchemaResult(futures[future], "failed", error=error_line(exc)))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results
