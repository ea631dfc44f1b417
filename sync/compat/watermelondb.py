"""WatermelonDB sync (``synchronize({ pullChanges, pushChanges })``).

Tables are collections; raw records are stored fields plus ``id``. Watermelon's
timestamps are positions in the change feed: ``T = last seq included + 1``, so
a client at ``T`` has seen every change with ``seq < T``. docs/compat.md shows
the client side.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from typing import Any

import orjson
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from shared_apps.core.errors import Conflict, InvalidInput
from sync import compat, engine, services, store
from sync.apis import _errors, json_response
from sync.db import fast_cursor, text_as_bytes
from sync.errors import BatchRejected, BatchTooLarge
from sync.limits import SyncLimits, sync_limits_for
from sync.validation import (
    MutationError,
    parse_json_body,
    validate_collection_name,
    validate_document_data,
    validate_document_id,
)

DEFAULT_DEVICE = "watermelondb"
# Watermelon's local bookkeeping; never stored, never sent.
WATERMELON_LOCAL_FIELDS = ("_status", "_changed")
_OUTPUT_KEYS = "array['id','_status','_changed']"
_KINDS = ("created", "updated", "deleted")
_MAX_SEQ = 2**63 - 1
# How JavaScript renders a missing value in a query string (`${null}`, `${undefined}`).
_ABSENT = ("", "null", "undefined")
_SEQ = itemgetter(0)


@dataclass(frozen=True, slots=True)
class WmRecord:
    table: str
    kind: str  # created | updated | deleted
    index: int
    doc_id: str
    data: dict[str, Any] | None  # None for deleted


@dataclass(frozen=True)
class WmPull:
    # Per table: its name, its records (JSON objects joined by commas, in change order) and its deleted ids
    # (JSON strings joined by commas); either is empty when there is none.
    tables: list[tuple[str, bytes, bytes]]
    first: bool
    timestamp: int


def parse_last_pulled_at(raw: Any, *, required: bool) -> int | None:
    """A positive integer (JSON number or query string), or null/absent (a first sync)."""
    if raw is None or raw in _ABSENT:
        if required:
            raise InvalidInput(
                "lastPulledAt is required: the timestamp of the last pull.", code="invalid_last_pulled_at"
            )
        return None
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) < 20:
        raw = int(raw)
    if not isinstance(raw, int) or isinstance(raw, bool) or not 1 <= raw <= _MAX_SEQ:
        raise InvalidInput(
            "last_pulled_at is a positive integer (a timestamp this server returned) or null.",
            code="invalid_last_pulled_at",
        )
    return raw


def parse_migration(raw: str | None) -> None:
    """``migration`` is accepted and ignored (every change is sent anyway), but it must be JSON."""
    if raw is None or raw in _ABSENT:
        return
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput("migration is JSON or null.", code="invalid_migration") from exc


# --- reads -------------------------------------------------------------------------------------------------------


def watermelon_changes(*, last_pulled_at: int | None) -> WmPull:
    """Every change with ``seq >= last_pulled_at`` (all of them: Watermelon does not paginate).

    PostgreSQL renders every record around the stored document text (``id`` first,
    then the stored fields; the keys a record adds itself are removed from the
    stored ones, so none appears twice) and every deleted id, one row per change;
    Python puts each table's rows in change order and joins them. Joining in SQL
    (``string_agg(… ORDER BY seq)`` grouped by table) sorted the whole rendered
    response, twice, and spilled it to disk once it outgrew ``work_mem``, as an
    ``ORDER BY`` of the rendered rows does too. The new timestamp is one past the
    newest change returned, and never below one past the tombstone horizon (the
    client has everything that still matters up to there). With no change it is
    ``last_pulled_at`` again (1 on a first sync of an empty database). One
    statement (the feed position first, then the changes), so the timestamp and
    the records come from the same snapshot.
    """
    start = last_pulled_at or 1
    with fast_cursor() as cursor:
        text_as_bytes(cursor)
        cursor.execute(
            f"""
            (SELECT s.horizon_seq, {compat.NEWEST_SEQ}, NULL::text, NULL::boolean, NULL::text
             FROM syncstore_syncstate s WHERE s.id = 1)
            UNION ALL
            (SELECT d.seq, NULL, c.name::text, d.deleted,
                    CASE WHEN d.deleted THEN to_json(d.doc_id)::text
                         ELSE concat('{{"id":', to_json(d.doc_id),
                                     CASE WHEN r.fields = '{{}}' THEN '}}' ELSE ',' || substr(r.fields, 2) END)
                    END
             FROM syncstore_document d
             JOIN syncstore_collection c ON c.id = d.collection_id
             CROSS JOIN LATERAL (
                 SELECT CASE WHEN d.deleted THEN NULL
                             WHEN d.data ?| {_OUTPUT_KEYS} THEN (d.data - {_OUTPUT_KEYS})::text
                             ELSE {store.DOCUMENT_TEXT_SQL} END AS fields
             ) r
             WHERE d.seq >= %s)
            """,
            [start],
            binary=True,
        )
        rows = cursor.fetchall()
    horizon, newest = rows[0][0], rows[0][1]
    compat.check_position(start - 1, horizon=horizon, newest=newest)
    # Each table's changes (by its name as PostgreSQL sent it), put in change order here: they arrive in
    # the order the rows lie in the table, which is nearly that already, so the sort costs little. Each
    # table's rows are let go once joined, so a large first sync holds about two copies of its records.
    grouped: dict[bytes, list[tuple[Any, ...]]] = {}
    for row in islice(rows, 1, None):
        grouped.setdefault(row[2], []).append(row)
    del rows
    for changes in grouped.values():
        changes.sort(key=_SEQ)
    names = sorted(grouped, key=lambda name: grouped[name][-1][0])  # tables by their newest change
    timestamp = max(grouped[names[-1]][-1][0] + 1 if names else start, horizon + 1)
    tables = []
    for name in names:
        changes = grouped.pop(name)
        records = b",".join([change[4] for change in changes if not change[3]])
        deletes = b",".join([change[4] for change in changes if change[3]])
        tables.append((name.decode(), records, deletes))
    return WmPull(tables, last_pulled_at is None, timestamp)


def render_pull(pull: WmPull, *, created_as_updated: bool = False) -> bytes:
    """Watermelon's pull body. ``created`` on a first sync and ``updated`` afterwards (the
    protocol's contract); ``created_as_updated`` lists everything under ``updated`` for clients
    that pass ``sendCreatedAsUpdated: true`` to ``synchronize()`` (no diagnostics either way)."""
    created_list = pull.first and not created_as_updated
    parts = []
    for table, records, deletes in pull.tables:
        listed = b"[" + records + b"]"
        created, updated = (listed, b"[]") if created_list else (b"[]", listed)
        # a first sync has nothing to delete
        parts.append(
            b'%b:{"created":%b,"updated":%b,"deleted":[%b]}'
            % (orjson.dumps(table), created, updated, b"" if pull.first else deletes)
        )
    return b'{"changes":{%b},"timestamp":%d}' % (b",".join(parts), pull.timestamp)


# --- writes ------------------------------------------------------------------------------------------------------


def _error(table: Any, kind: str | None, index: int | None, doc_id: Any, code: str, message: str) -> dict[str, Any]:
    return {
        "table": table if isinstance(table, str) else None,
        "kind": kind,
        "index": index,
        "id": doc_id if isinstance(doc_id, str) else None,
        "code": code,
        "message": message,
    }


def _record(table: str, kind: str, index: int, raw: Any, limits: SyncLimits) -> WmRecord:
    if kind == "deleted":
        return WmRecord(table, kind, index, validate_document_id(raw), None)
    if not isinstance(raw, dict):
        raise MutationError("invalid_record", "A record is an object with a string id.")
    doc_id = validate_document_id(raw.get("id"))
    data = {key: value for key, value in raw.items() if key != "id" and key not in WATERMELON_LOCAL_FIELDS}
    return WmRecord(table, kind, index, doc_id, validate_document_data(data, limits))


def _envelope(body: Any, query_last_pulled_at: str | None) -> tuple[Any, Any]:
    """``{"changes", "lastPulledAt"}`` (or ``last_pulled_at``), or Watermelon's documented form:
    the bare changes object as the body and ``?last_pulled_at=`` in the URL."""
    if isinstance(body, dict) and "changes" in body and set(body) <= {"changes", "lastPulledAt", "last_pulled_at"}:
        given = body.get("lastPulledAt", body.get("last_pulled_at"))
        return body["changes"], given if given is not None else query_last_pulled_at
    return body, query_last_pulled_at


def parse_push(body: Any, query_last_pulled_at: str | None, limits: SyncLimits) -> tuple[int, list[WmRecord]]:
    changes, raw_last_pulled_at = _envelope(body, query_last_pulled_at)
    if not isinstance(changes, dict):
        raise InvalidInput('The body is {"changes": {...}, "lastPulledAt": n}.', code="invalid_body")
    last_pulled_at = parse_last_pulled_at(raw_last_pulled_at, required=True)
    assert last_pulled_at is not None
    received = sum(
        len(items)
        for table_changes in changes.values()
        if isinstance(table_changes, dict)
        for items in table_changes.values()
        if isinstance(items, list)
    )
    if received > limits.max_batch_mutations:
        raise BatchTooLarge(details={"limit": limits.max_batch_mutations, "received": received})
    records: list[WmRecord] = []
    errors: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for table, table_changes in changes.items():
        try:
            validate_collection_name(table)
        except MutationError as exc:
            errors.append(_error(table, None, None, None, exc.code, exc.message))
            continue
        if not isinstance(table_changes, dict) or set(table_changes) - set(_KINDS):
            errors.append(
                _error(
                    table, None, None, None, "invalid_table_changes", 'A table is {"created", "updated", "deleted"}.'
                )
            )
            continue
        for kind in _KINDS:
            items = table_changes.get(kind, [])
            if not isinstance(items, list):
                errors.append(_error(table, kind, None, None, "invalid_table_changes", f"{kind} must be a list."))
                continue
            for index, raw in enumerate(items):
                raw_id = raw if kind == "deleted" else raw.get("id") if isinstance(raw, dict) else None
                try:
                    record = _record(table, kind, index, raw, limits)
                except MutationError as exc:
                    errors.append(_error(table, kind, index, raw_id, exc.code, exc.message))
                    continue
                if (table, record.doc_id) in seen:
                    errors.append(
                        _error(table, kind, index, raw_id, "duplicate_record", "The same id appears twice in a table.")
                    )
                    continue
                seen.add((table, record.doc_id))
                records.append(record)
    if errors:
        raise BatchRejected(details={"errors": errors})
    return last_pulled_at, records


def watermelon_push_apply(
    *, last_pulled_at: int, records: list[WmRecord], device_id: str, meta: dict[str, str], limits: SyncLimits
) -> int:
    """Apply a Watermelon push in one transaction, or nothing; return the number of documents written.

    A record conflicts when its document changed on the server at or after
    ``last_pulled_at`` (``seq >= last_pulled_at``) and the record differs from
    the server's state; any conflict answers ``409 conflict`` naming every
    conflicting record, and nothing is applied (Watermelon then pulls, merges
    locally and pushes again). ``created`` for an existing id and ``updated``
    for an unknown one both store the record; ``deleted`` for an unknown id is
    a no-op; a record equal to the server's makes no new version, so a replayed
    push changes nothing.
    """
    with compat.locked_write(
        device_id=device_id, meta=meta, records=len(records), names=[r.table for r in records], limits=limits
    ) as (cursor, collections):
        horizon, newest = compat.feed_position(cursor)
        compat.check_position(last_pulled_at - 1, horizon=horizon, newest=newest)
        keys = sorted({(collections[r.table]["id"], r.doc_id) for r in records})
        states = store.load_states(cursor, keys)
        # Changed on the server at or after the client's last pull: read with the states, no second lookup.
        changed = {key for key, state in states.items() if state.seq is not None and state.seq >= last_pulled_at}
        writer = compat.DocumentWriter(cursor, device_id, states, limits)
        conflicts: list[dict[str, str]] = []
        errors: list[dict[str, Any]] = []
        for record in records:
            collection = collections[record.table]
            key = (collection["id"], record.doc_id)
            state = writer.state(*key)
            if record.data is None:
                if not state.live:
                    continue  # unknown or already deleted
                if key in changed:
                    conflicts.append({"table": record.table, "id": record.doc_id})
                    continue
                writer.delete(collection, state)
                continue
            if state.live and engine.json_equal(state.data, record.data):
                continue
            if key in changed:
                conflicts.append({"table": record.table, "id": record.doc_id})
                continue
            problem = compat.schema_problem(collection, record.data)
            if problem is not None:
                errors.append(
                    _error(record.table, record.kind, record.index, record.doc_id, "schema_violation", problem)
                )
                continue
            writer.set(collection, state, record.data, False)
        if errors:
            raise BatchRejected(details={"errors": errors})
        if conflicts:
            raise Conflict(
                "Records changed on the server since lastPulledAt; nothing was applied. Pull, then push again.",
                details={"conflicts": conflicts},
            )
        return writer.flush()


# --- views -------------------------------------------------------------------------------------------------------


def _table_changes() -> serializers.Serializer:
    return inline_serializer(
        "WatermelonTableChanges",
        {
            "created": serializers.ListField(child=serializers.JSONField(), required=False),
            "updated": serializers.ListField(child=serializers.JSONField(), required=False),
            "deleted": serializers.ListField(child=serializers.CharField(), required=False),
        },
    )


class WatermelonSyncApi(APIView):
    """WatermelonDB ``pullChanges`` (GET) and ``pushChanges`` (POST)."""

    required_scopes = {"GET": "sync:read", "POST": "sync:write"}
    usage_counters = {"GET": "pulls", "POST": "pushes"}

    @extend_schema(
        operation_id="compat_watermelondb_pull",
        tags=["compat"],
        parameters=[
            OpenApiParameter("last_pulled_at", int, description="The timestamp the last pull returned; omit or null."),
            OpenApiParameter("schema_version", int, description="Accepted and ignored."),
            OpenApiParameter("migration", str, description="JSON or null; accepted and ignored."),
        ],
        responses={
            200: inline_serializer(
                "WatermelonPullResponse",
                {
                    "changes": serializers.DictField(child=_table_changes(), help_text="Per table (collection)."),
                    "timestamp": serializers.IntegerField(min_value=1),
                },
            ),
            **_errors,
        },
    )
    def get(self, request: Request) -> HttpResponse:
        params = request.query_params
        last_pulled_at = parse_last_pulled_at(params.get("last_pulled_at"), required=False)
        parse_migration(params.get("migration"))
        device_id = compat.device_given(request)
        if device_id is not None:
            services.device_check(device_id=device_id)
        pull = watermelon_changes(last_pulled_at=last_pulled_at)
        if device_id is not None:
            limits = sync_limits_for(plan_slug=request.auth.organisation.plan_slug)
            services.device_touch_for_pull(device_id=device_id, seq=pull.timestamp - 1, limits=limits)
        compat.count_pull(request)
        created_as_updated = params.get("created_as_updated", "").lower() in ("1", "true", "yes")
        return json_response(render_pull(pull, created_as_updated=created_as_updated))

    @extend_schema(
        operation_id="compat_watermelondb_push",
        tags=["compat"],
        parameters=[
            OpenApiParameter(
                "last_pulled_at", int, description="When the body is the bare changes object (Watermelon's docs)."
            )
        ],
        request=inline_serializer(
            "WatermelonPushRequest",
            {
                "changes": serializers.DictField(child=_table_changes()),
                "lastPulledAt": serializers.IntegerField(min_value=1),
            },
        ),
        responses={200: OpenApiTypes.OBJECT, 409: _errors[400], **_errors},
    )
    def post(self, request: Request) -> HttpResponse:
        limits = sync_limits_for(plan_slug=request.auth.organisation.plan_slug)
        last_pulled_at, records = parse_push(
            parse_json_body(request._request.body), request.query_params.get("last_pulled_at"), limits
        )
        watermelon_push_apply(
            last_pulled_at=last_pulled_at,
            records=records,
            device_id=compat.device_id_for(request, DEFAULT_DEVICE),
            meta=compat.client_meta(request),
            limits=limits,
        )
        counted = compat.count_push(request, written=len(records), conflicts=0)
        return json_response({}, then=counted)
