"""``python manage.py migrate_tenants`` — migrate every organisation's schema, in parallel.

See :mod:`tenants.migrating` for how schemas already up to date are skipped
and how the others are migrated.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.db.models import Q

from tenants.migrating import (
    SchemaResult,
    default_parallelism,
    migration_label,
    migration_targets,
    tenant_schemas_check,
    tenant_schemas_migrate,
)
from tenants.models import Organisation


class ProgressBar:
    """A one-line progress bar on stderr: counts, rate and ETA.

    On a terminal it is redrawn in place (at most ten times a second); in a log
    (not a terminal) a plain line is written every few seconds instead.
    """

    WIDTH = 28

    def __init__(self, stream: OutputWrapper, total: int, *, enabled: bool = True) -> None:
        self.stream = stream
        self.total = total
        self.enabled = enabled and total > 0
        self.tty = stream.isatty()
        self.done = 0
        self.failed = 0
        self.started = time.perf_counter()
        self._last_draw = self.started
        self._drawn = False

    def advance(self, *, failed: bool = False) -> None:
        self.done += 1
        self.failed += failed
        now = time.perf_counter()
        interval = 0.1 if self.tty else 5.0
        if self.done == self.total or now - self._last_draw >= interval:
            self._draw(now)

    def note(self, text: str) -> None:
        """A line above the bar (a failure), then the bar again."""
        if self.tty and self._drawn:
            self.stream.write("\r\033[K", style_func=_plain, ending="")
        self.stream.write(text)
        if self.tty and self._drawn:
            self._draw(time.perf_counter())

    def close(self) -> None:
        if self.enabled and self.tty and self._drawn:
            self.stream.write("", style_func=_plain)

    def _line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        remaining = (self.total - self.done) / rate if rate > 0 else 0.0
        filled = int(self.WIDTH * self.done / self.total)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        failed = f"  {self.failed} failed" if self.failed else ""
        return (
            f"migrating [{bar}] {self.done}/{self.total} {100 * self.done // self.total:3d}%  "
            f"{rate:.1f} schemas/s  ETA {_clock(remaining)}{failed}"
        )

    def _draw(self, now: float) -> None:
        if not self.enabled:
            return
        self._last_draw = now
        if self.tty:
            # Plain, not in the error colour Django gives stderr on a terminal.
            self.stream.write("\r\033[K" + self._line(now), style_func=_plain, ending="")
            self.stream.flush()
        else:
            self.stream.write(self._line(now), style_func=_plain)
        self._drawn = True


def _plain(text: str) -> str:
    return text


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


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
        progress = ProgressBar(self.stderr, len(schemas), enabled=not options["no_progress"] and verbosity > 0)

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
