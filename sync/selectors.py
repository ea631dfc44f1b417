"""Sync reads: the change feed (pull), documents, collections, conflicts, devices.

The pull path hands stored JSON through as text: each document's stored JSON
text (``data_text``) goes into the response as it is, so documents are never
decoded and re-encoded, in Python or in PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from django.db.models import QuerySet

from sync import checkpoints
from sync.db import fast_cursor, text_as_bytes
from sync.errors import CollectionNotFound, DocumentNotFound, ResetRequired
from sync.limits import DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT
from sync.store import DOCUMENT_TEXT_SQL
from tenant_apps.syncstore.models import Collection, Conflict, Device


@dataclass(frozen=True)
class ChangePage:
    """One page of the change feed, already rendered by PostgreSQL as the JSON array's inner text."""

    body: bytes  # the changes as JSON objects joined by commas (no brackets)
    count: int
    last_seq: int
    has_more: bool
    floor: int = 0


def collection_ids(names: list[str]) -> dict[str, int]:
    return dict(Collection.objects.filter(name__in=names).values_list("name", "id"))


# Each change as a JSON object, assembled by PostgreSQL around the document's stored JSON
# text (``data_text``, while it belongs to the current version; otherwise ``data`` is
# rendered, see tenant_apps.syncstore.models.Document): neither Python nor PostgreSQL
# decodes or re-encodes a document on the pull path. A chain of
# || (measured ~0.3 ms per 1,000 changes cheaper than one concat(), which looks up
# each argument's output function on every row). Collection names are letters,
# digits and underscores (validation.COLLECTION_NAME_RE), so they need no JSON
# escaping; document ids can hold anything printable and go through to_json.
_CHANGE_JSON = f"""'{{"collection":"' || c.name || '","id":' || to_json(d.doc_id)::text
    || ',"version":' || d.version::text
    || CASE WHEN d.deleted THEN ',"deleted":true,"data":' ELSE ',"deleted":false,"data":' END
    || {DOCUMENT_TEXT_SQL} || '}}'"""


def pull_page(*, checkpoint: checkpoints.Checkpoint, limit: int, collection_ids: list[int] | None = None) -> ChangePage:
    """Changes after ``checkpoint`` in seq (= commit) order, at most ``limit``, in one statement.

    PostgreSQL renders each change around the stored document text, one row per
    change, and Python joins the rows' bytes. The statement reads one change more
    than the page: if it comes back, ``has_more`` is true (a probe past the page
    in the same index scan, where a separate ``EXISTS`` had been planned as a
    sequential scan of the whole table). The page is cut first and joined to the
    (few) collections after, in seq order: PostgreSQL keeps that order through a
    nested loop over a memoized collection lookup, so nothing is sorted (an
    aggregate's ``ORDER BY`` sorted every rendered page, ~0.6 ms per 1,000).

    The tombstone horizon comes first, from the same statement (one snapshot; PostgreSQL runs the
    branches of a ``UNION ALL`` one after the other, each in its own order),
    so a purge committing in between cannot slip past the reset check: a
    checkpoint that may have missed purged deletes gets ``reset_required``. A
    client starting from scratch gets the current horizon as its floor (see
    :mod:`sync.checkpoints`).
    """
    limit = max(1, min(limit, MAX_PULL_LIMIT))
    params: list[Any] = [checkpoint.seq]
    where = "d.seq > %s"
    if collection_ids is not None:
        where += " AND d.collection_id = ANY(%b)"
        params.append(collection_ids or [-1])
    params.append(limit + 1)
    with fast_cursor() as cursor:
        text_as_bytes(cursor)
        cursor.execute(
            f"""
            (SELECT s.horizon_seq, NULL::text FROM syncstore_syncstate s WHERE s.id = 1)
            UNION ALL
            (SELECT d.seq, {_CHANGE_JSON}
             FROM (
                 SELECT d.seq, d.collection_id, d.doc_id, d.version, d.deleted, d.data, d.data_text,
                        d.data_text_version
                 FROM syncstore_document d WHERE {where} ORDER BY d.seq LIMIT %s
             ) d JOIN syncstore_collection c ON c.id = d.collection_id
             ORDER BY d.seq)
            """,
            params,
            binary=True,
        )
        rows = cursor.fetchall()
    horizon = rows[0][0]
    if checkpoint.needs_reset(horizon):
        raise ResetRequired(details={"checkpoint_seq": checkpoint.seq, "horizon_seq": horizon})
    floor = horizon if checkpoint.seq == 0 else checkpoint.floor
    changes = rows[1 : limit + 1]
    if not changes:
        return ChangePage(b"", 0, checkpoint.seq, False, floor)
    return ChangePage(
        b",".join([change for _seq, change in changes]), len(changes), changes[-1][0], len(rows) > limit + 1, floor
    )


def render_pull(page: ChangePage) -> bytes:
    """The native pull response body."""
    return b'{"changes":[%b],"checkpoint":%b,"has_more":%b}' % (
        page.body,
        orjson.dumps(checkpoints.encode(page.last_seq, page.floor)),
        b"true" if page.has_more else b"false",
    )


def parse_limit(raw: str | None, *, default: int, maximum: int) -> int:
    """A ``limit`` query parameter: absent means ``default``; otherwise 1..``maximum`` or 400 ``invalid_limit``."""
    from shared_apps.core.errors import InvalidInput

    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise InvalidInput("limit must be an integer.", code="invalid_limit") from exc
    if not 1 <= value <= maximum:
        raise InvalidInput(f"limit is between 1 and {maximum}.", code="invalid_limit")
    return value


def pull_limit(raw: str | None) -> int:
    return parse_limit(raw, default=DEFAULT_PULL_LIMIT, maximum=MAX_PULL_LIMIT)


def document_get(*, collection: str, doc_id: str) -> dict[str, Any]:
    with fast_cursor() as cursor:
        cursor.execute(
            """
            SELECT d.doc_id, d.version, d.deleted, d.data, d.updated_at, d.last_device
            FROM syncstore_document d JOIN syncstore_collection c ON c.id = d.collection_id
            WHERE c.name = %s AND d.doc_id = %s
            """,
            [collection, doc_id],
        )
        row = cursor.fetchone()
    if row is None:
        raise DocumentNotFound()
    return _document_dict(collection, row)


def _document_dict(collection: str, row: tuple) -> dict[str, Any]:
    return {
        "collection": collection,
        "id": row[0],
        "version": row[1],
        "deleted": row[2],
        "data": row[3],
        "updated_at": row[4].isoformat(),
        "last_device": row[5],
    }


def document_list(
    *, collection: str, after: str | None, limit: int, include_deleted: bool = False
) -> tuple[list[dict[str, Any]], str | None]:
    """A collection's documents ordered by id (keyset pagination); returns the page and the next cursor."""
    collection_id = Collection.objects.filter(name=collection).values_list("id", flat=True).first()
    if collection_id is None:
        raise CollectionNotFound()
    params: list[Any] = [collection_id]
    where = "d.collection_id = %s"
    if not include_deleted:
        where += " AND NOT d.deleted"
    if after:
        where += " AND d.doc_id > %s"
        params.append(after)
    params.append(limit + 1)
    with fast_cursor() as cursor:
        cursor.execute(
            f"""
            SELECT d.doc_id, d.version, d.deleted, d.data, d.updated_at, d.last_device
            FROM syncstore_document d WHERE {where} ORDER BY d.doc_id LIMIT %s
            """,
            params,
        )
        rows = cursor.fetchall()
    documents = [_document_dict(collection, row) for row in rows[:limit]]
    next_cursor = documents[-1]["id"] if len(rows) > limit else None
    return documents, next_cursor


def collection_list() -> QuerySet[Collection]:
    return Collection.objects.order_by("name")


def collection_get(*, name: str) -> Collection:
    collection = Collection.objects.filter(name=name).first()
    if collection is None:
        raise CollectionNotFound()
    return collection


def conflict_list(*, status: str | None = "open", collection: str | None = None) -> QuerySet[Conflict]:
    queryset = Conflict.objects.select_related("collection").order_by("-created_at", "-id")
    if status:
        queryset = queryset.filter(status=status)
    if collection:
        queryset = queryset.filter(collection__name=collection)
    return queryset


def device_list() -> QuerySet[Device]:
    return Device.objects.order_by("-last_seen_at")


def document_count_total() -> int:
    """Live documents in the organisation (maintained counters, no row count)."""
    from django.db.models import Sum

    return Collection.objects.aggregate(total=Sum("document_count"))["total"] or 0
