"""Provisioning creates a real, complete schema quickly, equivalent to running the migrations."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from shared_apps.audit.models import AuditEvent
from shared_apps.audit.services import CLI
from shared_apps.core.errors import Conflict, InvalidInput
from tenants import provisioning
from tenants.models import Domain, Organisation
from tenants.services import organisation_create, organisation_create_and_provision, organisation_provision

pytestmark = pytest.mark.django_db


def _catalog(schema: str) -> dict[str, list[tuple]]:
    """Everything that defines a schema's structure, minus names of the schema itself."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default, character_maximum_length "
            "FROM information_schema.columns WHERE table_schema = %s ORDER BY 1, 2",
            [schema],
        )
        columns = [tuple(str(v).replace(schema, "S") for v in row) for row in cursor.fetchall()]
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE connamespace = %s::regnamespace ORDER BY 2",
            [schema],
        )
        constraints = [tuple(str(v).replace(schema, "S") for v in row) for row in cursor.fetchall()]
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s ORDER BY 1", [schema])
        indexes = [tuple(str(v).replace(schema, "S") for v in row) for row in cursor.fetchall()]
        cursor.execute(
            "SELECT sequence_name, data_type FROM information_schema.sequences WHERE sequence_schema = %s ORDER BY 1",
            [schema],
        )
        sequences = cursor.fetchall()
        cursor.execute(f'SELECT app, name FROM "{schema}".django_migrations ORDER BY app, name')
        migrations = cursor.fetchall()
        cursor.execute(f'SELECT id, strict_collections, horizon_seq FROM "{schema}".syncstore_syncstate')
        state = cursor.fetchall()
    return {
        "columns": columns,
        "constraints": constraints,
        "indexes": indexes,
        "sequences": sequences,
        "migrations": migrations,
        "state": state,
    }


def test_provisioned_schema_has_every_tenant_table_and_is_active() -> None:
    organisation = organisation_create_and_provision(actor=CLI, name="Acme Corp")
    assert organisation.status == "active"
    assert organisation.provisioned_at is not None
    assert organisation.slug == "acme-corp"
    assert organisation.schema_name == "org_acme_corp"
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", ["org_acme_corp"])
        tables = {row[0] for row in cursor.fetchall()}
    assert {
        "syncstore_collection",
        "syncstore_document",
        "syncstore_device",
        "syncstore_conflict",
        "syncstore_idempotencyrecord",
        "syncstore_syncstate",
        "django_migrations",
    } <= tables
    assert Domain.objects.get(tenant=organisation).domain == "acme-corp.outpost.localhost"
    actions = list(AuditEvent.objects.filter(organisation=organisation).values_list("action", flat=True))
    assert sorted(actions) == ["organisation.created", "organisation.provisioned"]


def test_replayed_schema_is_identical_to_a_migrated_schema() -> None:
    organisation = organisation_create_and_provision(actor=CLI, name="Replayed")
    with connection.cursor() as cursor:
        cursor.execute('CREATE SCHEMA "org_migrated"')
    call_command("migrate_schemas", schema_name="org_migrated", interactive=False, verbosity=0)
    connection.set_schema_to_public()
    replayed = _catalog(organisation.schema_name)
    migrated = _catalog("org_migrated")
    assert replayed == migrated


def test_migrate_schemas_finds_nothing_to_apply_on_a_provisioned_schema(capsys: pytest.CaptureFixture[str]) -> None:
    organisation = organisation_create_and_provision(actor=CLI, name="Up To Date")
    call_command("migrate_schemas", schema_name=organisation.schema_name, interactive=False, verbosity=1)
    assert "No migrations to apply" in capsys.readouterr().out


def test_provisioning_twice_is_a_no_op() -> None:
    organisation = organisation_create_and_provision(actor=CLI, name="Twice")
    again = organisation_provision(organisation_id=organisation.pk)
    assert again.status == "active"
    assert AuditEvent.objects.filter(organisation=organisation, action="organisation.provisioned").count() == 1


def test_failed_provisioning_leaves_neither_row_nor_schema() -> None:
    with connection.cursor() as cursor:
        cursor.execute('CREATE SCHEMA "org_squatted"')  # the schema name is already taken
    with pytest.raises(ValueError, match="already exists"), transaction.atomic():
        organisation_create_and_provision(actor=CLI, name="Squatted", slug="squatted")
    assert not Organisation.all_objects.filter(slug="squatted").exists()
    assert not AuditEvent.objects.filter(organisation_slug="squatted").exists()


def test_organisations_still_provisioning_are_not_migrated_by_django_tenants() -> None:
    pending = organisation_create(actor=CLI, name="Pending")
    assert pending.status == "provisioning"
    assert not Organisation.objects.filter(pk=pending.pk).exists()
    assert Organisation.all_objects.filter(pk=pending.pk).exists()


@pytest.mark.parametrize("slug", ["ab", "ac me", "1acme", "acme_corp", "acme--corp", "acme-", "public", "x" * 51])
def test_invalid_slugs_are_refused(slug: str) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        organisation_create(actor=CLI, name="Bad", slug=slug)
    assert excinfo.value.code == "invalid_slug"


def test_taken_slug_is_refused_and_suggested_slugs_avoid_it() -> None:
    organisation_create_and_provision(actor=CLI, name="Acme", slug="acme")
    with pytest.raises(Conflict) as excinfo:
        organisation_create(actor=CLI, name="Acme again", slug="acme")
    assert excinfo.value.code == "slug_taken"
    second = organisation_create_and_provision(actor=CLI, name="Acme")
    assert second.slug.startswith("acme-")
    assert second.slug != "acme"


def test_schema_names_are_validated_before_reaching_sql() -> None:
    for bad in ['x"; DROP SCHEMA public; --', "pg_catalog", "Upper", ""]:
        with pytest.raises(ValueError, match="invalid schema name"):
            provisioning.quote_schema(bad)
