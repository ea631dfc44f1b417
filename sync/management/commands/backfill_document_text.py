"""``python manage.py backfill_document_text`` — store the JSON text of documents written without it.

Pulls pass each document's stored JSON text (``data_text``) through while it
belongs to the document's current version; rows written before that column
existed, or changed by the previous release during a rolling upgrade, have
none that matches and are rendered from ``data`` on every pull until their
next write. This fills them in, organisation by
organisation, in small batches (one short transaction each), with progress.
It changes nothing a client can see: no version, ``seq`` or ``updated_at``
moves, so nothing is pulled again. Each batch takes the organisation's write
lock like every writer of documents (:func:`sync.db.tenant_write_lock`): the
one-statement push updates rows by the address its lookup found, which a
concurrent row update would move. So pushes wait for at most one batch, and
the command is safe to run while the platform serves traffic, and to run
again (it only touches rows still without a current text).
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction

from shared_apps.core.cli import ProgressBar
from sync.db import tenant_write_lock
from tenants.context import tenant_context
from tenants.models import Organisation

# Rows per transaction: a batch holds the organisation's write lock for a few milliseconds.
DEFAULT_BATCH = 1000

# Rows whose text is missing or belongs to an older version (written by a release that did not keep it).
_MISSING = "data_text_version IS DISTINCT FROM version"
# One batch: the next ``batch`` rows by id after the last one seen (so the whole table is read once, not
# once per batch), those of them without a current text given one. Returns the last id read and how many
# rows were written.
_BACKFILL_SQL = f"""
    WITH b AS (SELECT id FROM syncstore_document WHERE id > %s ORDER BY id LIMIT %s),
    written AS (
        UPDATE syncstore_document AS d SET data_text = d.data::text, data_text_version = d.version
        FROM b WHERE d.id = b.id AND d.{_MISSING}
        RETURNING 1
    )
    SELECT (SELECT max(id) FROM b), (SELECT count(*) FROM written)
"""


class Command(BaseCommand):
    help = (
        "Store the JSON text (data_text) of documents written without a current one (before Outpost kept it, or by "
        "the previous release during a rolling upgrade), so pulls pass it through instead of rendering the jsonb "
        "each time. Visible to no client; safe to interrupt and run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--org", action="append", dest="orgs", metavar="SLUG", default=[], help="Only this organisation."
        )
        parser.add_argument(
            "--batch", type=int, default=DEFAULT_BATCH, metavar="N", help="Rows per transaction (default %(default)s)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        batch: int = options["batch"]
        if batch < 1:
            raise CommandError("--batch must be at least 1 (invalid_batch).")
        organisations = Organisation.objects.exclude(schema_name="public").order_by("slug")
        if options["orgs"]:
            organisations = organisations.filter(slug__in=options["orgs"])
            unknown = sorted(set(options["orgs"]) - set(organisations.values_list("slug", flat=True)))
            if unknown:
                raise CommandError(f"Unknown organisation(s): {', '.join(unknown)} (organisation_not_found).")
        started = time.perf_counter()
        selected = list(organisations)
        missing = {organisation.pk: self._missing(organisation) for organisation in selected}
        progress = ProgressBar(
            self.stderr,
            sum(missing.values()),
            verb="backfilling",
            unit="documents",
            enabled=options["verbosity"] > 0,
        )
        total = 0
        for organisation in selected:
            done = self._backfill(organisation, batch, missing[organisation.pk], progress)
            total += done
            if done and options["verbosity"] > 0:
                progress.note(f"{organisation.slug}: {done} documents")
        progress.close()
        self.stdout.write(f"{total} documents given their JSON text in {time.perf_counter() - started:.1f}s.")

    @staticmethod
    def _missing(organisation: Organisation) -> int:
        with tenant_context(organisation), connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM syncstore_document WHERE {_MISSING}")
            return int(cursor.fetchone()[0])

    @staticmethod
    def _backfill(organisation: Organisation, batch: int, missing: int, progress: ProgressBar) -> int:
        """Give ``organisation``'s documents their text, batch by batch; return how many were written."""
        done = 0
        after = 0
        with tenant_context(organisation):
            while missing:
                with transaction.atomic(), connection.cursor() as cursor:
                    tenant_write_lock()
                    cursor.execute(_BACKFILL_SQL, [after, batch])
                    last_id, written = cursor.fetchone()
                if last_id is None:
                    break
                after = last_id
                done += written
                progress.advance(written)
        return done
