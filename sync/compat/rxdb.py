"""RxDB replication (``replicateRxCollection`` with HTTP pull and push handlers).

One endpoint pair per collection. The primary key field is ``id``; documents
travel as RxDB sees them (stored fields plus ``id`` and ``_deleted``). RxDB's
own metadata (``_rev``, ``_meta``, ``_attachments``) is neither stored nor
compared. docs/compat.md shows the client side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiExample, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from shared_apps.core.errors import InvalidInput
from sync import compat, engine, services, store
from sync.apis import _errors, json_response
from sync.db import fast_cursor
from sync.errors import BatchRejected, BatchTooLarge, InvalidCheckpoint
from sync.limits import DEFAULT_PULL_LIMIT, MAX_PULL_LIMIT, SyncLimits, sync_limits_for
from sync.validation import MutationError, parse_json_body, validate_document_data, validate_document_id

DEFAULT_DEVICE = "rxdb"
# Fields RxDB adds to every document; they describe the client's copy, not the document.
RXDB_METADATA = ("_rev", "_meta", "_attachments")
# Keys of a pulled document that Outpost sets itself (removed from stored data first).
_OUTPUT_KEYS = "array['id','_deleted']"


@dataclass(frozen=True, slots=True)
class RxRow:
    index: int
    doc_id: str
    data: dict[str, Any]
    deleted: bool
    # (data, deleted) of assumedMasterState; None when the client assumes no server document.
    assumed: tuple[dict[str, Any], bool] | None


@dataclass(frozen=True, slots=True)
class RxCheckpoint:
    seq: int  # the last change returned
    id: str | None  # its document id (informational)
    horizon: int  # the tombstone horizon the client's state accounts for


@dataclass(frozen=True)
class RxPullPage:
    rows: list[tuple[int, str, bool, str]]  # seq, id, deleted, data json (without id/_deleted)
    checkpoint: dict[str, Any]


# --- reads -------------------------------------------------------------------------------------------------------


_BAD_CHECKPOINT = 'The checkpoint is null or the {"seq", "id", "horizon"} object the last pull returned.'
_MAX_SEQ = 2**63 - 1


def _same_state(a: tuple[dict[str, Any], bool], b: tuple[dict[str, Any], bool]) -> bool:
    """Two (data, deleted) document states are the same, compared as JSON (see engine.json_equal)."""
    return a[1] == b[1] and engine.json_equal(a[0], b[0])


def _position(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_SEQ:
        raise InvalidCheckpoint(_BAD_CHECKPOINT)
    return value


def parse_pull(body: Any) -> tuple[RxCheckpoint, int]:
    """``{"checkpoint": null | {"seq", "id", "horizon"?}, "batchSize": n}`` → (checkpoint, batch size)."""
    if not isinstance(body, dict):
        raise InvalidInput("The body must be a JSON object.", code="invalid_body")
    raw = body.get("checkpoint")
    checkpoint = RxCheckpoint(0, None, 0)
    if raw is not None:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str | None):
            raise InvalidCheckpoint(_BAD_CHECKPOINT)
        checkpoint = RxCheckpoint(_position(raw.get("seq", 0)), raw.get("id"), _position(raw.get("horizon", 0)))
    batch_size = body.get("batchSize", DEFAULT_PULL_LIMIT)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or not 1 <= batch_size <= MAX_PULL_LIMIT:
        raise InvalidInput(f"batchSize is an integer from 1 to {MAX_PULL_LIMIT}.", code="invalid_batch_size")
    return checkpoint, batch_size


def rxdb_changes(*, collection: str, checkpoint: RxCheckpoint, limit: int) -> RxPullPage:
    """The collection's documents changed after the checkpoint, in change order, at most ``limit``.

    The new checkpoint names the last document returned (with nothing new,
    the one given: ``{"seq": 0, "id": null}`` on a first pull of an empty
    collection) and the tombstone horizon its client now accounts for, so a
    purge that happened before a client's first pull never strands it halfway
    through paging.
    """
    with fast_cursor() as cursor:
        horizon, newest, rows = compat.read_feed(
            cursor,
            f"""
            SELECT d.seq, d.doc_id, d.deleted,
                   CASE WHEN d.data ?| {_OUTPUT_KEYS} THEN (d.data - {_OUTPUT_KEYS})::text
                        ELSE {store.DOCUMENT_TEXT_SQL} END
            FROM syncstore_document d
            WHERE d.collection_id = (SELECT c.id FROM syncstore_collection c WHERE c.name = %s) AND d.seq > %s
            ORDER BY d.seq LIMIT %s
            """,
            [collection, checkpoint.seq, limit],
        )
    accounted = horizon if checkpoint.seq == 0 else checkpoint.horizon
    compat.check_position(checkpoint.seq, horizon=horizon, newest=newest, accounted=accounted)
    last_seq, last_id = (rows[-1][0], rows[-1][1]) if rows else (checkpoint.seq, checkpoint.id)
    return RxPullPage(rows, {"seq": last_seq, "id": last_id, "horizon": horizon})


def render_pull(page: RxPullPage) -> bytes:
    documents = b",".join(
        compat.render_record(doc_id, data, b',"_deleted":true' if deleted else b',"_deleted":false')
        for _seq, doc_id, deleted, data in page.rows
    )
    return b'{"documents":[%b],"checkpoint":%b}' % (documents, orjson.dumps(page.checkpoint))


# --- writes ------------------------------------------------------------------------------------------------------


def _split(document: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """An RxDB document → (stored fields, deleted): without ``id``, ``_deleted`` and RxDB metadata."""
    deleted = document.get("_deleted", False)
    if not isinstance(deleted, bool):
        raise MutationError("invalid_deleted", "_deleted must be true or false.")
    data = {key: value for key, value in document.items() if key not in ("id", "_deleted", *RXDB_METADATA)}
    return data, deleted


def _row(index: int, raw: Any, limits: SyncLimits) -> RxRow:
    if not isinstance(raw, dict):
        raise MutationError("invalid_row", "Each row is an object with newDocumentState.")
    unknown = set(raw) - {"newDocumentState", "assumedMasterState"}
    if unknown:
        raise MutationError("unknown_fields", f"Unknown fields: {', '.join(sorted(unknown))}.")
    new = raw.get("newDocumentState")
    if not isinstance(new, dict):
        raise MutationError("invalid_row", "newDocumentState must be a document object.")
    doc_id = validate_document_id(new.get("id"))
    data, deleted = _split(new)
    validate_document_data(data, limits)
    assumed_raw = raw.get("assumedMasterState")
    assumed = None
    if assumed_raw is not None:
        if not isinstance(assumed_raw, dict):
            raise MutationError("invalid_assumed_master_state", "assumedMasterState is a document object or null.")
        if assumed_raw.get("id", doc_id) != doc_id:
            raise MutationError("invalid_assumed_master_state", "assumedMasterState has another id.")
        assumed = _split(assumed_raw)
    return RxRow(index, doc_id, data, deleted, assumed)


def _row_error(index: int, raw: Any, code: str, message: str) -> dict[str, Any]:
    new = raw.get("newDocumentState") if isinstance(raw, dict) else None
    doc_id = new.get("id") if isinstance(new, dict) else None
    return {"index": index, "id": doc_id if isinstance(doc_id, str) else None, "code": code, "message": message}


def parse_push(body: Any, limits: SyncLimits) -> list[RxRow]:
    """``{"rows": [...]}`` or a bare list of rows (what RxDB's push handler receives)."""
    raw_rows = body.get("rows") if isinstance(body, dict) and set(body) <= {"rows"} else body
    if not isinstance(raw_rows, list):
        raise InvalidInput('The body is a list of rows or {"rows": [...]}.', code="invalid_body")
    if len(raw_rows) > limits.max_batch_mutations:
        raise BatchTooLarge(details={"limit": limits.max_batch_mutations, "received": len(raw_rows)})
    rows: list[RxRow] = []
    errors: list[dict[str, Any]] = []
    for index, raw in enumerate(raw_rows):
        try:
            rows.append(_row(index, raw, limits))
        except MutationError as exc:
            errors.append(_row_error(index, raw, exc.code, exc.message))
    if errors:
        raise BatchRejected(details={"errors": errors})
    return rows


def _document(state: Any) -> dict[str, Any]:
    return {**state.data, "id": state.doc_id, "_deleted": state.deleted}


def rxdb_push_apply(
    *, collection: str, rows: list[RxRow], device_id: str, meta: dict[str, str], limits: SyncLimits
) -> list[dict]:
    """Write the rows that do not conflict, in one transaction; return the server documents of those that do.

    A row conflicts when the server holds the document (a tombstone included)
    in a state other than the row's ``assumedMasterState`` — unless the server
    already equals ``newDocumentState``, which makes a replayed push a no-op.
    Conflicting rows are left to RxDB's conflict handler, which resolves on the
    client and pushes again; they are not recorded as Conflict rows. A row that
    breaks the collection's JSON Schema rejects the whole push.
    """
    if not rows:
        return []
    conflicts: list[dict[str, Any]] = []
    with compat.locked_write(device_id=device_id, meta=meta, records=len(rows), names=[collection], limits=limits) as (
        cursor,
        collections,
    ):
        target = collections[collection]
        states = store.load_states(cursor, sorted({(target["id"], row.doc_id) for row in rows}))
        writer = compat.DocumentWriter(cursor, device_id, states, limits)
        errors: list[dict[str, Any]] = []
        for row in rows:
            state = writer.state(target["id"], row.doc_id)
            if state.present:
                server = (state.data, state.deleted)
                if _same_state(server, (row.data, row.deleted)):
                    continue
                if row.assumed is None or not _same_state(row.assumed, server):
                    conflicts.append(_document(state))
                    continue
            if not row.deleted:
                problem = compat.schema_problem(target, row.data)
                if problem is not None:
                    errors.append(
                        {"index": row.index, "id": row.doc_id, "code": "schema_violation", "message": problem}
                    )
                    continue
            writer.set(target, state, row.data, row.deleted)
        if errors:
            raise BatchRejected(details={"errors": errors})
        writer.flush()
    return conflicts


# --- views -------------------------------------------------------------------------------------------------------

_document_schema = inline_serializer(
    "RxdbDocument",
    {
        "id": serializers.CharField(max_length=128),
        "_deleted": serializers.BooleanField(),
    },
)


class RxdbPullApi(APIView):
    """RxDB pull handler: the collection's changes after a checkpoint, in change order."""

    required_scope = "sync:read"
    usage_counters = {"POST": "pulls"}

    @extend_schema(
        operation_id="compat_rxdb_pull",
        tags=["compat"],
        request=inline_serializer(
            "RxdbPullRequest",
            {
                "checkpoint": serializers.JSONField(
                    allow_null=True, required=False, help_text='null, or the {"seq", "id"} the last pull returned.'
                ),
                "batchSize": serializers.IntegerField(min_value=1, max_value=MAX_PULL_LIMIT, required=False),
            },
        ),
        responses={
            200: inline_serializer(
                "RxdbPullResponse",
                {
                    "documents": serializers.ListField(
                        child=_document_schema, help_text="Stored fields plus id and _deleted."
                    ),
                    "checkpoint": inline_serializer(
                        "RxdbCheckpoint",
                        {
                            "seq": serializers.IntegerField(help_text="The last change returned."),
                            "id": serializers.CharField(allow_null=True, help_text="Its document id."),
                            "horizon": serializers.IntegerField(
                                help_text="The tombstone horizon this client's state accounts for."
                            ),
                        },
                    ),
                },
            ),
            **_errors,
        },
        examples=[OpenApiExample("first pull", value={"checkpoint": None, "batchSize": 100}, request_only=True)],
    )
    def post(self, request: Request, collection: str) -> HttpResponse:
        name = compat.collection_name(collection)
        checkpoint, limit = parse_pull(parse_json_body(request._request.body))
        device_id = compat.device_given(request)
        if device_id is not None:
            services.device_check(device_id=device_id)
        page = rxdb_changes(collection=name, checkpoint=checkpoint, limit=limit)
        if device_id is not None:
            limits = sync_limits_for(plan_slug=request.auth.organisation.plan_slug)
            services.device_touch_for_pull(device_id=device_id, seq=page.checkpoint["seq"], limits=limits)
        compat.count_pull(request)
        return json_response(render_pull(page))


class RxdbPushApi(APIView):
    """RxDB push handler: write rows whose assumed master state is current; return the conflicting ones."""

    required_scope = "sync:write"
    usage_counters = {"POST": "pushes"}

    @extend_schema(
        operation_id="compat_rxdb_push",
        tags=["compat"],
        request=inline_serializer(
            "RxdbPushRequest",
            {
                "rows": serializers.ListField(
                    child=inline_serializer(
                        "RxdbPushRow",
                        {
                            "assumedMasterState": serializers.JSONField(allow_null=True, required=False),
                            "newDocumentState": serializers.JSONField(),
                        },
                    ),
                    help_text="A bare JSON array of rows is accepted too.",
                )
            },
        ),
        responses={
            200: inline_serializer(
                "RxdbConflicts",
                {"id": serializers.CharField(), "_deleted": serializers.BooleanField()},
                many=True,
                help_text="Server documents of the conflicting rows; [] when every row was written.",
            ),
            **_errors,
        },
    )
    def post(self, request: Request, collection: str) -> HttpResponse:
        name = compat.collection_name(collection)
        limits = sync_limits_for(plan_slug=request.auth.organisation.plan_slug)
        rows = parse_push(parse_json_body(request._request.body), limits)
        conflicts = rxdb_push_apply(
            collection=name,
            rows=rows,
            device_id=compat.device_id_for(request, DEFAULT_DEVICE),
            meta=compat.client_meta(request),
            limits=limits,
        )
        counted = compat.count_push(request, written=len(rows) - len(conflicts), conflicts=len(conflicts))
        return json_response(conflicts, then=counted)
