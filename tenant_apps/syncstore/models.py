"""An organisation's sync data. These tables exist in every organisation's schema.

The ``Document`` table is also the change log: every accepted change gives the
document a new, larger ``seq`` from the schema's own sequence, so "changes
after checkpoint N" is an index range scan on ``seq`` whose cost does not grow
with the number of documents. Deletes keep the row as a tombstone.
"""

from __future__ import annotations

from typing import Any

import orjson
from django.contrib.postgres.indexes import BrinIndex
from django.db import models


class ConflictPolicy(models.TextChoices):
    MERGE = "merge", "Merge disjoint fields, keep overlapping ones open"
    SERVER_WINS = "server_wins", "Server wins"
    CLIENT_WINS = "client_wins", "Client wins"
    LAST_WRITE_WINS = "last_write_wins", "Last writer (client timestamp) wins"
    MANUAL = "manual", "Manual: every conflict is kept open"


class SyncState(models.Model):
    """One row per schema: organisation-wide sync settings and the tombstone horizon.

    ``horizon_seq``: tombstones with a smaller ``seq`` may have been purged, so
    a checkpoint below it must reset instead of pulling.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    strict_collections = models.BooleanField(default=False)
    horizon_seq = models.BigIntegerField(default=0)
    purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="syncstate_singleton")]

    def __str__(self) -> str:
        return f"sync state (horizon {self.horizon_seq})"


class Collection(models.Model):
    name = models.CharField(max_length=64, unique=True)
    conflict_policy = models.CharField(max_length=20, choices=ConflictPolicy.choices, default=ConflictPolicy.MERGE)
    json_schema = models.JSONField(null=True, blank=True)
    # Live (non-deleted) documents, maintained by the sync engine per batch so
    # listing collections and checking quotas never counts rows.
    document_count = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DocumentQuerySet(models.QuerySet["Document"]):
    """Refuses bulk writes of ``data`` that would leave ``data_text`` behind (see :class:`Document`)."""

    def update(self, **kwargs: Any) -> int:
        if "data" in kwargs and "data_text" not in kwargs:
            raise ValueError("Document.data is written together with data_text (or data_text=None).")
        return super().update(**kwargs)

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        if "data" in fields and "data_text" not in fields:
            raise ValueError("Document.data is written together with data_text (or data_text=None).")
        return super().bulk_update(objs, fields, batch_size=batch_size)


class Document(models.Model):
    """The current state of one document (or its tombstone).

    ``field_versions`` maps each top-level field to the document version that
    last changed it (removed fields included), which is what field-level merge
    needs to tell "changed on the server since your base" from "unchanged".
    A field absent from it was last changed at version 1 (created with the
    document), so a new document stores ``{}``.
    ``client_ts`` is the client clock of the last accepted write (milliseconds),
    for the last-writer-wins policy.
    ``data_text`` is ``data`` as JSON text, exactly the text its writer cast to
    jsonb: a pull passes it through instead of rendering the jsonb again
    (``data::text`` was ~85% of a pull page's database time). Every writer of
    ``data`` writes it (sync.store, sync.services; :meth:`save` here) with the
    ``version`` it belongs to in ``data_text_version``. Readers use the text only
    while the two versions match, and render ``data`` otherwise: rows written
    before the text existed, and rows changed by a writer that does not know it
    (the previous release, during a rolling upgrade), which moves ``version``
    on every change. See docs/decisions.md.
    """

    id = models.BigAutoField(primary_key=True)
    # No database foreign key and no index of its own: collections are never deleted (Django's CASCADE still
    # applies if one ever is), every writer takes collection ids from the collection table under the tenant
    # write lock, and a deferred constraint cost every push one trigger per written row at commit. Lookups
    # by collection use the (collection, doc_id) and (collection, seq) indexes. See docs/decisions.md.
    collection = models.ForeignKey(
        Collection, on_delete=models.CASCADE, related_name="documents", db_constraint=False, db_index=False
    )
    doc_id = models.CharField(max_length=128)
    data = models.JSONField(default=dict)
    data_text = models.TextField(null=True, blank=True, editable=False)
    data_text_version = models.IntegerField(null=True, blank=True, editable=False)
    version = models.IntegerField()
    seq = models.BigIntegerField(unique=True)
    deleted = models.BooleanField(default=False)
    field_versions = models.JSONField(default=dict)
    client_ts = models.BigIntegerField(null=True, blank=True)
    size_bytes = models.IntegerField(default=0)
    last_device = models.CharField(max_length=128, blank=True, default="")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    objects = DocumentQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["collection", "doc_id"], name="document_unique_collection_doc"),
            models.CheckConstraint(condition=models.Q(version__gte=1), name="document_version_positive"),
        ]
        indexes = [
            # Partial on a condition every row meets, so that only a query bounding seq (a per-collection
            # change feed) can use it, never a lookup by (collection, doc_id): see sync/store.py.
            models.Index(fields=["collection", "seq"], name="document_feed_idx", condition=models.Q(seq__isnull=False)),
            models.Index(fields=["deleted", "seq"], name="document_tombstone_idx", condition=models.Q(deleted=True)),
        ]

    def __str__(self) -> str:
        return f"{self.collection_id}/{self.doc_id}@{self.version}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Keep ``data_text`` the text of ``data`` when the ORM writes a document."""
        update_fields = kwargs.get("update_fields")
        if update_fields is None or "data" in update_fields or "version" in update_fields:
            self.data_text = orjson.dumps(self.data).decode()
            self.data_text_version = self.version
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "data", "data_text", "data_text_version"}
        super().save(*args, **kwargs)


class Device(models.Model):
    device_id = models.CharField(max_length=128, unique=True)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    last_pull_at = models.DateTimeField(null=True, blank=True)
    last_pull_seq = models.BigIntegerField(null=True, blank=True)
    last_push_at = models.DateTimeField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True, default="")
    app_version = models.CharField(max_length=100, blank=True, default="")
    pushes = models.BigIntegerField(default=0)
    pulls = models.BigIntegerField(default=0)
    mutations = models.BigIntegerField(default=0)
    conflicts = models.BigIntegerField(default=0)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen_at"]

    def __str__(self) -> str:
        return self.device_id


class ConflictStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"


class Conflict(models.Model):
    """A write that lost, or is waiting for a decision. The losing side is always stored here."""

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="conflicts")
    doc_id = models.CharField(max_length=128)
    device_id = models.CharField(max_length=128, blank=True, default="")
    mutation_id = models.CharField(max_length=128, blank=True, default="")
    base_version = models.IntegerField(null=True, blank=True)
    server_version = models.IntegerField(null=True, blank=True)
    client_write = models.JSONField()
    server_state = models.JSONField(null=True, blank=True)
    losing = models.CharField(max_length=10, blank=True, default="")  # "client", "server" or "" while open
    policy = models.CharField(max_length=20, choices=ConflictPolicy.choices)
    status = models.CharField(max_length=10, choices=ConflictStatus.choices, default=ConflictStatus.OPEN)
    resolution = models.CharField(max_length=20, blank=True, default="")
    resolved_by = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="conflict_status_idx"),
            models.Index(fields=["collection", "doc_id"], name="conflict_doc_idx"),
        ]

    def __str__(self) -> str:
        return f"conflict {self.pk} on {self.doc_id} ({self.status})"


class IdempotencyRecord(models.Model):
    """The stored result of a pushed mutation, so a retried push applies nothing twice.

    Keyed by (device, mutation id) itself: a push writes one record per
    mutation, and a surrogate id would cost each of them a second index entry
    and a sequence draw. ``result`` is the result as JSON text: it is only ever
    handed back whole, so it is stored as serialised rather than parsed into
    ``jsonb`` on every push. See docs/decisions.md.
    """

    pk = models.CompositePrimaryKey("device_id", "mutation_id")
    device_id = models.CharField(max_length=128)
    mutation_id = models.CharField(max_length=128)
    result = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        # BRIN: records are appended in created_at order and only ever deleted by age, so a block-range
        # index serves the clean-up and costs a push almost nothing (a btree entry per mutation did).
        indexes = [BrinIndex(fields=["created_at"], name="idempotency_created_brin")]

    def __str__(self) -> str:
        return f"{self.device_id}/{self.mutation_id}"
