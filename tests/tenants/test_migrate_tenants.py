"""``migrate_tenants``: skips current schemas, migrates the rest in worker processes, reports failures.

Worker processes open their own connections, so these tests commit their
organisations (``committed_organisation`` drops the schemas afterwards).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from shared_apps.audit.services import CLI
from tenants.migrating import _applied_rows
from tenants.models import Organisation
from tenants.services import organisation_create, organisation_suspend

pytestmark = pytest.mark.django_db(transaction=True)

TENANT_APP = "syncstore"


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("migrate_tenants", "--parallel", "2", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_json(*args: str) -> dict[str, Any]:
    output, _ = run(*args, "--json")
    assert output.count("\n") <= 1, "--json prints exactly one object"
    return json.loads(output)


def schemas(make: Callable[..., Any], count: int) -> list[str]:
    return [make().organisation.schema_name for _ in range(count)]


def unapply_last_tenant_migration(schema: str) -> str:
    """Migrate the tenant app one step back in ``schema`` (undo and unrecord); return the migration's label."""
    connection.set_schema(schema)
    try:
        executor = MigrationExecutor(connection)
        graph = executor.loader.graph
        (leaf,) = [node for node in graph.leaf_nodes() if node[0] == TENANT_APP]
        previous = [parent for parent in graph.node_map[leaf].parents if parent.key[0] == TENANT_APP]
        executor.migrate([(TENANT_APP, previous[0].key[1] if previous else None)])
    finally:
        connection.set_schema_to_public()
    return f"{leaf[0]}.{leaf[1]}"


def applied(schema: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT app || '.' || name FROM \"{schema}\".django_migrations")
        return {row[0] for row in cursor.fetchall()}


def catalog(schema: str) -> dict[str, list[tuple[Any, ...]]]:
    """The schema's structure (its own name replaced by S), migration records and the data migrations put in it."""
    queries = {
        "columns": "SELECT table_name, column_name, data_type, is_nullable, column_default "
        "FROM information_schema.columns WHERE table_schema = %s ORDER BY 1, 2",
        "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE connamespace = %s::regnamespace ORDER BY 2",
        "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s ORDER BY 1",
        "sequences": "SELECT sequence_name, data_type FROM information_schema.sequences "
        "WHERE sequence_schema = %s ORDER BY 1",
    }
    result: dict[str, list[tuple[Any, ...]]] = {}
    with connection.cursor() as cursor:
        for name, sql in queries.items():
            cursor.execute(sql, [schema])
            result[name] = [tuple(str(value).replace(schema, "S") for value in row) for row in cursor.fetchall()]
        cursor.execute(f'SELECT app, name FROM "{schema}".django_migrations ORDER BY app, name')
        result["migrations"] = cursor.fetchall()
        cursor.execute(f'SELECT * FROM "{schema}".syncstore_syncstate ORDER BY 1')
        result["syncstate"] = cursor.fetchall()
    return result


def test_no_op_run_reports_every_schema_up_to_date(committed_organisation) -> None:
    names = schemas(committed_organisation, 3)
    output, _ = run()
    assert "Migrated 0 schema(s), 3 already up to date, 0 failed, of 3" in output
    result = run_json()
    assert (result["total"], result["up_to_date"], result["migrated"], result["failed"]) == (3, 3, 0, 0)
    assert all(applied(name) == applied(names[0]) for name in names)


def test_behind_schemas_are_migrated_to_an_identical_schema_and_a_rerun_skips_them(committed_organisation) -> None:
    current, first, second = schemas(committed_organisation, 3)
    expected = catalog(current)
    label = unapply_last_tenant_migration(first)
    unapply_last_tenant_migration(second)
    assert label not in applied(first)
    assert catalog(first) != expected

    result = run_json()
    assert result["failed"] == 0
    assert result["up_to_date"] == 1
    assert [item["schema"] for item in result["migrated_schemas"]] == sorted([first, second])
    assert all(item["applied"] == [label] for item in result["migrated_schemas"])
    for name in (first, second):
        assert catalog(name) == expected

    again = run_json()
    assert (again["up_to_date"], again["migrated"]) == (3, 0)


def test_shared_app_migrations_are_recorded_alone_or_with_tenant_migrations(committed_organisation) -> None:
    """The router runs none of a shared app's operations in a tenant schema: its row is all that changes."""
    shared_only, mixed = schemas(committed_organisation, 2)
    expected = catalog(shared_only)
    label = unapply_last_tenant_migration(mixed)
    with connection.cursor() as cursor:
        for schema in (shared_only, mixed):
            cursor.execute(
                f'DELETE FROM "{schema}".django_migrations WHERE app = %s AND name = %s', ["sessions", "0001_initial"]
            )

    result = run_json("--parallel", "1")
    assert {item["schema"]: item["applied"] for item in result["migrated_schemas"]} == {
        shared_only: ["sessions.0001_initial"],
        mixed: ["sessions.0001_initial", label],
    }
    assert catalog(shared_only) == expected
    assert catalog(mixed) == expected


def test_dry_run_lists_behind_schemas_and_what_would_be_applied_and_changes_nothing(committed_organisation) -> None:
    current, behind = schemas(committed_organisation, 2)
    label = unapply_last_tenant_migration(behind)
    before = catalog(behind)

    output, _ = run("--dry-run")
    assert f"{behind}: {label}" in output
    assert current not in output
    assert "Dry run: 1 schema(s) behind, 1 up to date, 0 failed, of 2" in output
    result = run_json("--dry-run")
    assert result["pending_schemas"] == [{"schema": behind, "migrations": [label]}]
    assert (result["dry_run"], result["pending"], result["migrated"]) == (True, 1, 0)
    assert catalog(behind) == before


def test_a_failing_schema_is_reported_rolled_back_and_the_others_still_migrate(committed_organisation) -> None:
    _, fine, broken = schemas(committed_organisation, 3)
    label = unapply_last_tenant_migration(fine)
    # Forget the last migration without undoing it: applying it again fails (its objects exist).
    app, name = label.split(".")
    with connection.cursor() as cursor:
        cursor.execute(f'DELETE FROM "{broken}".django_migrations WHERE app = %s AND name = %s', [app, name])
    broken_before = catalog(broken)

    with pytest.raises(CommandError, match=rf"1 schema\(s\) failed: {broken}"):
        call_command("migrate_tenants", "--parallel", "2", stdout=io.StringIO(), stderr=(err := io.StringIO()))
    assert f"FAILED {broken}: " in err.getvalue()
    assert "already exists" in err.getvalue()
    assert label in applied(fine)
    # The failed schema's transaction was rolled back: nothing changed, nothing recorded.
    assert catalog(broken) == broken_before


def test_json_output_shape_and_exit_status_on_failure(committed_organisation) -> None:
    """Also the in-process path (one worker), which must survive a failing schema just the same."""
    _, fine, broken = schemas(committed_organisation, 3)
    label = unapply_last_tenant_migration(fine)
    app, name = label.split(".")
    with connection.cursor() as cursor:
        cursor.execute(f'DELETE FROM "{broken}".django_migrations WHERE app = %s AND name = %s', [app, name])

    out = io.StringIO()
    with pytest.raises(SystemExit) as excinfo:
        call_command("migrate_tenants", "--parallel", "1", "--json", stdout=out, stderr=io.StringIO())
    assert excinfo.value.code == 1
    result = json.loads(out.getvalue())
    assert set(result) == {
        "dry_run",
        "total",
        "up_to_date",
        "pending",
        "migrated",
        "failed",
        "pending_schemas",
        "migrated_schemas",
        "failed_schemas",
        "elapsed_seconds",
    }
    assert (result["total"], result["up_to_date"], result["migrated"], result["failed"]) == (3, 1, 1, 1)
    (migrated,) = result["migrated_schemas"]
    assert set(migrated) == {"schema", "applied", "seconds"}
    assert (migrated["schema"], migrated["applied"]) == (fine, [label])
    (failed,) = result["failed_schemas"]
    assert set(failed) == {"schema", "error"}
    assert failed["schema"] == broken
    assert "\n" not in failed["error"]
    assert failed["error"].startswith("ProgrammingError: ")


def test_selection_by_schema_or_org_and_only_organisations_with_a_schema(committed_organisation) -> None:
    first, second = (committed_organisation().organisation for _ in range(2))
    organisation_suspend(actor=CLI, organisation=second, reason="unpaid")
    organisation_create(actor=CLI, name="Still provisioning", slug="still-provisioning")
    label = unapply_last_tenant_migration(second.schema_name)

    # Suspended organisations are migrated; ones still provisioning have no schema and are not counted.
    assert run_json("--dry-run")["total"] == 2
    result = run_json("--org", second.slug)
    assert (result["total"], result["migrated"]) == (1, 1)
    assert label in applied(second.schema_name)
    assert run_json("--schema", first.schema_name, "--schema", second.schema_name)["up_to_date"] == 2

    with pytest.raises(CommandError, match="No active or suspended organisation with organisation 'nope'"):
        run("--org", "nope")
    with pytest.raises(CommandError, match="organisation 'still-provisioning'"):
        run("--org", "still-provisioning")
    with pytest.raises(CommandError, match="migrate_schemas --shared"):
        run("--schema", "public")
    assert Organisation.all_objects.count() == 3


def test_a_schema_that_does_not_exist_is_reported_as_failed(committed_organisation) -> None:
    organisation = committed_organisation().organisation
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER SCHEMA "{organisation.schema_name}" RENAME TO "{organisation.schema_name}_moved"')
    err = io.StringIO()
    try:
        with pytest.raises(CommandError, match=rf"1 schema\(s\) failed: {organisation.schema_name}"):
            call_command("migrate_tenants", stdout=io.StringIO(), stderr=err)
        assert f"FAILED {organisation.schema_name}: schema does not exist" in err.getvalue()
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'ALTER SCHEMA "{organisation.schema_name}_moved" RENAME TO "{organisation.schema_name}"')


def test_a_schema_dropped_during_the_check_is_reported_missing_and_the_others_still_read(
    committed_organisation,
) -> None:
    (schema,) = schemas(committed_organisation, 1)
    has_table = {schema: True, "org_dropped_meanwhile": True}
    with connection.cursor() as cursor:
        rows = _applied_rows(cursor, [schema, "org_dropped_meanwhile"], using="default", has_table=has_table)
    assert {row[0] for row in rows} == {schema}
    assert {(app, name) for _, app, name in rows} == {tuple(label.split(".")) for label in applied(schema)}
    assert has_table == {schema: True}
