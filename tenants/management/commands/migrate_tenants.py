"""``python manage.py migrate_tenants`` — migrate every organisation's schema, in parallel.

See :mod:`tenants.migrating` for how schemas already up to date are skipped
and how the others are migrated.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from shared_apps.core.cli import ProgressBar
from tenants.migrating import (
    SchemaResult,
    default_parallelism,
    migration_label,
    migration_targets,
    tenant_schemas_check,
    tenant_schemas_migrate,
)
from tenants.models import Organisation


class Command(BaseCommand):
    help = (
        "Migrate the schema of every organisation that has one (active and suspended) to the current migrations, "
        "in parallel worker processes. Schemas already up to date are skipped after one cheap check, so running "
        "it again after an interruption or a failure only migrates what is still behind. Each schema is migrated "
        "in its own transaction; a failing schema is reported and the others carry on (exit status 1). "
        "Nothing in the public schema is migrated: run `manage.py migrate_schemas --shared` first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--schema",
            action="append",
            dest="schemas",
            metavar="NAME",
            default=[],
            help="Only this schema (repeatable).",
        )
        parser.add_argument(
            "--org",
            action="append",
            dest="orgs",
            metavar="SLUG",
            default=[],
            help="Only this organisation's schema (repeatable).",
        )
        parser.add_argument(
            "--parallel",
            type=int,
            default=default_parallelism(),
            metavar="N",
            help="Worker processes (default: the number of CPUs, %(default)s here).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="List the schemas that are behind and what would be applied."
        )
        parser.add_argument(
            "--lock-timeout",
            type=float,
            default=None,
            metavar="SECONDS",
            help="Give up on a schema whose tables stay locked longer than this (it is reported as failed; "
            "run the command again later). Default: wait.",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar on stderr.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object on stdout.")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        as_json: bool = options["json"]
        verbosity = int(options["verbosity"])
        if options["parallel"] < 1:
            raise CommandError("--parallel must be at least 1.")
        schemas = self._selected(schemas=options["schemas"], orgs=options["orgs"])

        targets = migration_targets()
        check = tenant_schemas_check(schema_names=schemas, targets=targets)
        failed: list[dict[str, str]] = [
            {"schema": name, "error": "schema does not exist"} for name in check.missing_schemas
        ] + [{"schema": name, "error": "invalid schema name"} for name in check.invalid_names]
        summary: dict[str, Any] = {
            "dry_run": options["dry_run"],
            "total": len(schemas),
            "up_to_date": len(check.up_to_date),
            "pending": len(check.pending),
            "migrated": 0,
            "failed": 0,
            "pending_schemas": [],
            "migrated_schemas": [],
            "failed_schemas": failed,
        }
        for item in failed:
            self.stderr.write(f"FAILED {item['schema']}: {item['error']}")

        if options["dry_run"]:
            summary["pending_schemas"] = [
                {"schema": name, "migrations": [migration_label(key) for key in missing]}
                for name, missing in check.pending.items()
            ]
            if not as_json:
                for item in summary["pending_schemas"]:
                    self.stdout.write(f"{item['schema']}: {', '.join(item['migrations'])}")
        else:
            summary["migrated_schemas"], more_failed, raced = self._migrate(
                list(check.pending), options=options, quiet=as_json, verbosity=verbosity
            )
            failed.extend(more_failed)
            summary["up_to_date"] += raced
            summary["pending"] = 0
            summary["migrated"] = len(summary["migrated_schemas"])
        summary["failed"] = len(failed)
        summary["elapsed_seconds"] = round(time.perf_counter() - started, 3)

        if as_json:
            self.stdout.write(json.dumps(summary))
            if failed:
                raise SystemExit(1)
            return
        self.stdout.write(self._summary_line(summary))
        if failed:
            names = ", ".join(item["schema"] for item in failed[:10]) + (" …" if len(failed) > 10 else "")
            raise CommandError(f"{len(failed)} schema(s) failed: {names}")

    def _selected(self, *, schemas: list[str], orgs: list[str]) -> list[str]:
        """Schema names to consider: every organisation with a schema, or the ones asked for."""
        queryset = Organisation.objects.exclude(schema_name="public")
        if not schemas and not orgs:
            return list(queryset.values_list("schema_name", flat=True))
        if "public" in schemas:
            raise CommandError("The public schema is migrated with `manage.py migrate_schemas --shared`.")
        found = dict(queryset.filter(Q(schema_name__in=schemas) | Q(slug__in=orgs)).values_list("schema_name", "slug"))
        unknown = [f"schema {name!r}" for name in schemas if name not in found]
        unknown += [f"organisation {slug!r}" for slug in orgs if slug not in found.values()]
        if unknown:
            raise CommandError(
                f"No active or suspended organisation with {', '.join(unknown)} "
                "(organisations still provisioning or deleted have no schema to migrate)."
            )
        return sorted(found)

    def _migrate(
        self, schemas: list[str], *, options: dict[str, Any], quiet: bool, verbosity: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, str]], int]:
        migrated: list[dict[str, Any]] = []
        failed: list[dict[str, str]] = []
        raced = 0
        progress = ProgressBar(
            self.stderr,
            len(schemas),
            verb="migrating",
            unit="schemas",
            enabled=not options["no_progress"] and verbosity > 0,
        )

        def on_result(result: SchemaResult) -> None:
            nonlocal raced
            if result.status == "failed":
                failed.append({"schema": result.schema, "error": result.error})
                progress.note(f"FAILED {result.schema}: {result.error}")
            elif result.status == "migrated":
                migrated.append(
                    {"schema": result.schema, "applied": result.applied, "seconds": round(result.seconds, 3)}
                )
                if verbosity >= 2 and not quiet:
                    progress.note(f"migrated {result.schema}: {', '.join(result.applied)} ({result.seconds:.2f}s)")
            else:
                # Another run migrated it between the check and now.
                raced += 1
            progress.advance(failed=result.status == "failed")

        try:
            tenant_schemas_migrate(
                schema_names=schemas,
                parallel=options["parallel"],
                lock_timeout=options["lock_timeout"],
                on_result=on_result,
            )
        finally:
            progress.close()
        migrated.sort(key=lambda item: item["schema"])
        failed.sort(key=lambda item: item["schema"])
        return migrated, failed, raced

    @staticmethod
    def _summary_line(summary: dict[str, Any]) -> str:
        if summary["dry_run"]:
            return (
                f"Dry run: {summary['pending']} schema(s) behind, {summary['up_to_date']} up to date, "
                f"{summary['failed']} failed, of {summary['total']} ({summary['elapsed_seconds']:.1f}s)."
            )
        return (
            f"Migrated {summary['migrated']} schema(s), {summary['up_to_date']} already up to date, "
            f"{summary['failed']} failed, of {summary['total']} in {summary['elapsed_seconds']:.1f}s."
        )
