"""Compatibility adapters: RxDB replication and WatermelonDB sync over Outpost's own documents.

Both protocols read and write the same documents table, versions, change order
(``seq``) and tombstones as the native protocol, so a document written through
one protocol is pulled through every other. This module holds what the two
adapters share: the locked write path, the change-feed position checks and the
rendering of stored JSON into client records without decoding it. See
docs/compat.md for the client side.

Stored data never holds the document id: the adapters strip ``id`` (and their
protocols' bookkeeping fields) from records before storing and add it back on
output, so native clients see the same fields as RxDB and WatermelonDB ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
from django.db import transaction
from rest_framework.request import Request

from shared_apps.core.errors import InvalidInput
from sync import engine, services, store
from sync.db import fast_cursor, pipelined, tenant_write_lock
from sync.engine import DocState
from sync.errors import ResetRequired
from sync.limits import SyncLimits
from sync.validation import Mutation, MutationError, validate_collection_name, validate_device_id
from tenant_apps.syncstore.models import SyncState

DEVICE_HEADER = "HTTP_X_OUTPOST_DEVICE"


def device_given(request: Request) -> str | None:
    """The ``X-Outpost-Device`` header (validated), or ``None`` when the client sends none."""
    raw = request.META.get(DEVICE_HEADER)
    return None if raw is None else validate_device_id(raw)


def device_id_for(request: Request, default: str) -> str:
    """The device a compat write is recorded as: the ``X-Outpost-Device`` header, else the protocol's name."""
    return device_given(request) or default


def client_meta(request: Request) -> dict[str, str]:
    return {"user_agent": str(request.META.get("HTTP_USER_AGENT") or "")[:300], "app_version": ""}


def collection_name(name: str) -> str:
    try:
        return validate_collection_name(name)
    except MutationError as exc:
        raise InvalidInput(exc.message, code=exc.code) from exc


def check_position(seq: int, *, horizon: int, newest: int, accounted: int = 0) -> None:
    """Refuse a change-feed position this server cannot continue from without losing changes.

    ``seq`` is the last change the client has seen (0: none). Below the
    tombstone ``horizon`` the client may have missed purged deletes — unless
    its state already accounts for every purge up to that horizon
    (``accounted``: the horizon when its sync started from scratch or last
    passed this check; a purge since then moves the horizon past it). Above the
    ``newest`` number the sequence ever handed out, the server is not the one
    the client synced with (restored from a backup, say) and the client may
    hold changes this server never had. Both get ``410 reset_required``.
    """
    if seq <= 0:
        return
    if seq < horizon and accounted < horizon:
        raise ResetRequired(details={"checkpoint_seq": seq, "horizon_seq": horizon})
    if seq > newest:
        raise ResetRequired(
            "The checkpoint is ahead of this server's change feed (was the server restored from a backup?); "
            "discard local data and pull from the start.",
            details={"checkpoint_seq": seq, "newest_seq": newest},
        )


NEWEST_SEQ = "(SELECT CASE WHEN q.is_called THEN q.last_value ELSE 0 END FROM syncstore_change_seq q)"


def feed_position(cursor: Any) -> tuple[int, int]:
    """(tombstone horizon, newest sequence number handed out)."""
    cursor.execute(f"SELECT s.horizon_seq, {NEWEST_SEQ} FROM syncstore_syncstate s WHERE s.id = 1")
    horizon, newest = cursor.fetchone()
    return horizon, newest


def read_feed(cursor: Any, changes_sql: str, params: list[Any]) -> tuple[int, int, list[tuple]]:
    """Run ``changes_sql`` (a SELECT of changes whose first column is ``seq``) with the feed position.

    One statement is one snapshot: the horizon read belongs to exactly the
    changes returned, so a purge committing in between cannot slip through.
    Returns (horizon, newest, rows).
    """
    cursor.execute(
        f"""
        SELECT s.horizon_seq, {NEWEST_SEQ}, f.*
        FROM syncstore_syncstate s LEFT JOIN LATERAL ({changes_sql}) f ON true
        WHERE s.id = 1 ORDER BY f.seq
        """,
        params,
    )
    rows = cursor.fetchall()
    horizon, newest = rows[0][0], rows[0][1]
    changes = [row[2:] for row in rows if row[2] is not None]
    return horizon, newest, changes


def render_record(doc_id: str, data_text: str, extra: bytes = b"") -> bytes:
    """``{"id": doc_id, <extra>, ...stored fields}`` from the stored JSON text, without decoding it.

    ``data_text`` is the document's stored JSON text (or PostgreSQL's rendering of
    it), with the keys the record adds already removed (so no key appears twice).
    """
    head = b'{"id":' + orjson.dumps(doc_id) + extra
    if data_text == "{}":
        return head + b"}"
    return head + b"," + data_text[1:].encode()


@dataclass
class DocumentWriter:
    """Applies whole-document writes to loaded states through the engine, then persists them in bulk.

    Every write carries ``base_version`` equal to the current version, so the
    engine applies it directly (a write equal to the stored state makes no new
    version). The compat protocols detect conflicts themselves, before writing.
    """

    cursor: Any
    device_id: str
    states: dict[tuple[int, str], DocState]
    limits: SyncLimits
    now_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    count_deltas: dict[int, int] = field(default_factory=dict)

    def state(self, collection_id: int, doc_id: str) -> DocState:
        key = (collection_id, doc_id)
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = engine.new_state(collection_id, doc_id)
        return state

    def _decide(self, collection: str, state: DocState, op: str, data: dict[str, Any] | None) -> None:
        mutation = Mutation(
            index=0,
            mutation_id=f"{self.device_id}:{state.doc_id}"[:128],
            collection=collection,
            doc_id=state.doc_id,
            op=op,
            base_version=state.version,
            data=data,
            client_ts=None,
        )
        engine.decide(state, mutation, "manual", self.device_id, self.now_ms)

    def set(self, collection: dict[str, Any], state: DocState, data: dict[str, Any], deleted: bool) -> None:
        """Make the document exactly ``data`` (a tombstone when ``deleted``)."""
        was_live = state.live
        if deleted:
            # A tombstone keeps the fields it was deleted with; when the client deletes a
            # document it holds with other fields (or one the server never had), store them first.
            if not state.present or not engine.json_equal(state.data, data):
                self._decide(collection["name"], state, "put", data)
            self._decide(collection["name"], state, "delete", None)
        else:
            self._decide(collection["name"], state, "put", data)
        delta = int(state.live) - int(was_live)
        self.count_deltas[collection["id"]] = self.count_deltas.get(collection["id"], 0) + delta

    def delete(self, collection: dict[str, Any], state: DocState) -> None:
        """Tombstone an existing document, keeping its last fields; nothing for an unknown or deleted one."""
        if state.live:
            self.set(collection, state, state.data, True)

    def flush(self) -> int:
        """Write the changed documents in one round trip, then check the plan's document quota (raising
        rolls the transaction back, so nothing is written over quota); return how many."""
        dirty = [s for s in self.states.values() if s.dirty]
        with pipelined() as execute:
            total_cursor = store.write_changes(execute, dirty, self.count_deltas)
        (total_after,) = total_cursor.fetchone()
        services.document_quota_verify(total_after, self.limits, sum(self.count_deltas.values()))
        return len(dirty)


def schema_problem(collection: dict[str, Any], data: dict[str, Any]) -> str | None:
    """The first JSON Schema violation of ``data`` in ``collection``, as ``path: message``."""
    validator = services.validator_for(collection)
    if validator is None:
        return None
    problem = next(iter(validator.iter_errors(data)), None)
    if problem is None:
        return None
    return f"{'/'.join(str(p) for p in problem.absolute_path) or '(root)'}: {problem.message}"


@contextmanager
def locked_write(
    *, device_id: str, meta: dict[str, str], records: int, names: list[str], limits: SyncLimits
) -> Iterator[tuple[Any, dict[str, dict[str, Any]]]]:
    """One transaction holding the organisation's write lock: yields a fast cursor and the named collections.

    Unknown collections are created unless the organisation has strict
    collections on, in which case the request is refused with
    ``unknown_collection`` and nothing is written. The device is recorded (and
    refused if revoked, or if it is new and the plan's device quota is full) as
    for a native push.
    """
    with transaction.atomic():
        tenant_write_lock()
        with fast_cursor() as cursor:
            services.device_touch_for_push(cursor, device_id, meta, records, limits)
            strict = SyncState.objects.values_list("strict_collections", flat=True).get(pk=1)
            collections = store.load_collections(cursor, sorted(set(names)), create_missing=not strict)
            missing = sorted(set(names) - set(collections))
            if missing:
                raise InvalidInput(
                    "Strict collections are on and these collections are not declared.",
                    code="unknown_collection",
                    details={"collections": missing},
                )
            yield cursor, collections


def count_pull(request: Any) -> None:
    """Metrics for a compat pull, the same as a native one (the usage counter is added to at admission)."""
    from shared_apps.core.metrics import record_pull

    organisation = request.auth.organisation
    record_pull(plan_slug=organisation.plan_slug)


def count_push(request: Any, *, written: int, conflicts: int) -> Callable[[], None]:
    """Metrics for a compat push; returns the usage count to add once the response is sent (rows written
    count as applied mutations; the push itself is counted at admission)."""
    from billing.usage import usage_incr
    from shared_apps.core.metrics import record_push_counts

    organisation = request.auth.organisation
    record_push_counts(
        plan_slug=organisation.plan_slug, statuses={"applied": written, "conflict": conflicts}, conflicts=0
    )
    return partial(usage_incr, organisation_id=organisation.id, mutations=written + conflicts)
