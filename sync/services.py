"""Sync writes: push, conflict resolution, collection settings, devices, tombstone purge.

Every writer of documents takes :func:`sync.db.tenant_write_lock` first (see
:mod:`sync.db` for why), works in one transaction, and uses set-based SQL for
the documents it writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
import psycopg
from django.db import transaction
from django.utils import timezone
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from shared_apps.audit.services import Actor, audit_record
from shared_apps.core.errors import InvalidInput, QuotaExceeded
from sync import engine, store
from sync.db import (
    SPLIT,
    SYNC_LOCK_CLASS,
    current_organisation_id,
    fast_cursor,
    joined,
    joined_json,
    pipelined,
    rollback_to_savepoint,
    tenant_write_lock,
)
from sync.engine import DocState, Outcome
from sync.errors import (
    BatchRejected,
    CollectionNotFound,
    ConflictAlreadyResolved,
    ConflictNotFound,
    DeviceNotFound,
    DeviceRevoked,
)
from sync.limits import SyncLimits
from sync.validation import Mutation, MutationError, mutation_error, validate_collection_name, validate_document_data
from tenant_apps.syncstore.models import Collection, Conflict, ConflictPolicy, Device, SyncState
from tenants.models import Organisation

_validators: dict[tuple[int, str], Draft202012Validator] = {}


@dataclass(frozen=True)
class PushResult:
    """A push's outcome: the results as the JSON array the response carries, and counts for metrics."""

    results_json: bytes
    statuses: dict[str, int]  # mutations by result status
    conflicts: int  # conflict records opened or resolved by policy


def validator_for(collection: dict[str, Any]) -> Draft202012Validator | None:
    schema = collection["json_schema"]
    if not schema:
        return None
    key = (collection["id"], collection["updated_at"])
    validator = _validators.get(key)
    if validator is None:
        if len(_validators) > 1000:
            _validators.clear()
        validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        _validators[key] = validator
    return validator


_DEVICE_PUSH_SQL = """
    INSERT INTO syncstore_device AS d (device_id, first_seen_at, last_seen_at, last_push_at, user_agent,
                                       app_version, pushes, pulls, mutations, conflicts)
    VALUES (%s, now(), now(), now(), %s, %s, 1, 0, %s, 0)
    ON CONFLICT (device_id) DO UPDATE SET
        last_seen_at = now(), last_push_at = now(), pushes = d.pushes + 1, mutations = d.mutations + %s,
        user_agent = COALESCE(NULLIF(EXCLUDED.user_agent, ''), d.user_agent),
        app_version = COALESCE(NULLIF(EXCLUDED.app_version, ''), d.app_version)
    RETURNING revoked_at, (xmax = 0) AS inserted
"""


def _device_push_params(device_id: str, meta: dict[str, str], mutations: int) -> list[Any]:
    return [device_id, meta.get("user_agent", ""), meta.get("app_version", ""), mutations, mutations]


def device_touch_for_push(
    cursor: Any, device_id: str, meta: dict[str, str], mutations: int, limits: SyncLimits
) -> None:
    cursor.execute(_DEVICE_PUSH_SQL, _device_push_params(device_id, meta, mutations))
    device_touched(cursor, cursor.fetchone(), limits)


def device_touched(cursor: Any, row: tuple[Any, bool], limits: SyncLimits) -> None:
    """After the device upsert: refuse a revoked device; a new one must fit the plan."""
    revoked_at, inserted = row
    if revoked_at is not None:
        raise DeviceRevoked()
    if inserted:
        device_quota_check(cursor, limits)


def device_quota_check(cursor: Any, limits: SyncLimits) -> None:
    """A new device must fit the plan (revoked devices do not count)."""
    cursor.execute("SELECT count(*) FROM syncstore_device WHERE revoked_at IS NULL")
    (devices,) = cursor.fetchone()
    if devices > limits.max_devices:
        raise QuotaExceeded(
            f"The {limits.plan} plan allows {limits.max_devices} devices.",
            details={
                "limit": "max_devices",
                "allowed": limits.max_devices,
                "current": devices - 1,
                "plan": limits.plan,
            },
        )


def document_quota_verify(total_after: int, limits: SyncLimits, added: int) -> None:
    """Live documents after the batch (read in the write's own round trip) must fit the plan.

    Checked after the write, in its transaction: raising rolls the whole batch back, so nothing is
    written when the quota is exceeded, and the common case costs no extra round trip.
    """
    if added > 0 and total_after > limits.max_documents:
        raise QuotaExceeded(
            f"The {limits.plan} plan allows {limits.max_documents} documents.",
            details={
                "limit": "max_documents",
                "allowed": limits.max_documents,
                "current": int(total_after) - added,
                "requested": added,
                "plan": limits.plan,
            },
        )


# One primary-key probe per mutation id (LATERAL ... LIMIT 1 is planned per key), so the lookup costs
# the batch's size, never a scan of the device's history (which a ``mutation_id = ANY(...)`` filter
# gets planned as once one device holds much of the table).
_STORED_SQL = f"""
    SELECT r.mutation_id, r.result FROM unnest({SPLIT}) AS k(mutation_id)
    CROSS JOIN LATERAL (
        SELECT r.mutation_id, r.result FROM syncstore_idempotencyrecord r
        WHERE r.device_id = %s AND r.mutation_id = k.mutation_id LIMIT 1
    ) r
"""
_RECORDS_SQL = f"""
    INSERT INTO syncstore_idempotencyrecord (device_id, mutation_id, result, created_at)
    SELECT %s, u.m, u.r, now() FROM unnest({SPLIT}, {SPLIT}) AS u(m, r)
"""


def _result(mutation: Mutation, outcome: Outcome, state: DocState) -> dict[str, Any]:
    result: dict[str, Any] = {
        "mutation_id": mutation.mutation_id,
        "status": outcome.status,
        "collection": mutation.collection,
        "id": mutation.doc_id,
        "version": state.version,
    }
    if outcome.return_state:
        result["data"] = state.data
        result["deleted"] = state.deleted
    if outcome.resolution:
        result["resolution"] = outcome.resolution
    return result


def _insert_conflicts(pending: list[tuple[dict[str, Any], Mutation, int, str, str]]) -> list[int]:
    rows = [
        Conflict(
            collection_id=collection_id,
            doc_id=mutation.doc_id,
            device_id=device_id,
            mutation_id=mutation.mutation_id,
            base_version=mutation.base_version,
            server_version=conflict["server_state"]["version"],
            client_write=conflict["client_write"],
            server_state=conflict["server_state"],
            losing=conflict.get("losing", ""),
            policy=policy,
            status=conflict["status"],
            resolution=conflict.get("resolution", ""),
            resolved_by="policy" if conflict["status"] == "resolved" else "",
            resolved_at=timezone.now() if conflict["status"] == "resolved" else None,
        )
        for conflict, mutation, collection_id, policy, device_id in pending
    ]
    return [row.pk for row in Conflict.objects.bulk_create(rows)]


# A batch of plain puts — every mutation a put of an id the batch does not repeat, either new (no base
# version) or based on the stored version of a live document — is how clients create and edit data. It
# is written in one statement, with no state sent to Python and back; the statement itself finds out
# whether the batch really is that. A new document that already exists or a mutation id with a stored
# result (a replay) breaks a unique index; a put whose base is not the stored version (or whose document
# is missing or deleted), or a collection that is missing or has a JSON Schema, leaves its mutation out
# (fewer rows than mutations). Either way the statement ran inside a savepoint that is rolled back, and
# the engine handles the batch in the same transaction. No conflict rule applies to what remains, and the
# statement writes what the engine writes for it:
# * a new document: version 1, every field at version 1 (``{}``);
# * an edit: the next version, the changed top-level fields (a different value, or removed) at that
#   version in ``field_versions``; a put equal to the stored document makes no version;
# * the client's timestamp or the server's, the device, the collection counters, and an idempotency record
#   with the same result as the response's.
# Sequence numbers are drawn in the batch's order, as in store.write_documents. PostgreSQL renders the
# results, in order, as the response's JSON array. Both statements return how many mutations they wrote,
# how many of them were new documents, and the live documents before them (for the quota).
_PUTS_SAVEPOINT = "outpost_push_puts"

# A batch of new documents only (no base versions), the most common push by far, has a statement of its
# own: without the lookups and the edit branches, which cost a creation batch about a fifth more.
_PUSH_NEW_SQL = """
    WITH w AS MATERIALIZED (
        SELECT m.*, c.id AS cid, nextval('syncstore_change_seq') AS seq,
               concat('{"mutation_id":', to_json(m.mutation_id), ',"status":"applied","collection":"', m.collection,
                      '","id":', to_json(m.doc_id), ',"version":1}') AS result
        FROM unnest({SPLIT}, {SPLIT}, {SPLIT}, {SPLIT}, %b::bigint[], %b::int[])
             WITH ORDINALITY AS m(mutation_id, collection, doc_id, data, ts, size, position)
        JOIN syncstore_collection c ON c.name = m.collection AND c.json_schema IS NULL
        ORDER BY m.position
    ), documents AS (
        {DOCUMENT_INSERT}
        SELECT w.cid, w.doc_id, w.data::jsonb, w.data, 1, 1, w.seq, false, '{}', COALESCE(w.ts, %s), w.size, %s,
               now(), now()
        FROM w
    ), records AS (
        INSERT INTO syncstore_idempotencyrecord (device_id, mutation_id, result, created_at)
        SELECT %s, w.mutation_id, w.result, now() FROM w
    ), counts AS (
        UPDATE syncstore_collection c SET document_count = c.document_count + n.added
        FROM (SELECT w.cid, count(*) AS added FROM w GROUP BY w.cid) n WHERE c.id = n.cid
    )
    SELECT (SELECT count(*) FROM w),
           (SELECT count(*) FROM w),
           (SELECT COALESCE(sum(document_count), 0) FROM syncstore_collection),
           (SELECT '[' || string_agg(w.result, ',' ORDER BY w.position) || ']' FROM w)
""".replace("{SPLIT}", SPLIT).replace("{DOCUMENT_INSERT}", store.DOCUMENT_INSERT_SQL)

# Any batch of plain puts.
_PUSH_PUTS_SQL = """
    WITH m AS MATERIALIZED (
        SELECT m.*, m.data::jsonb AS doc, c.id AS cid
        FROM unnest({SPLIT}, {SPLIT}, {SPLIT}, {SPLIT}, %b::int[], %b::bigint[], %b::int[])
             WITH ORDINALITY AS m(mutation_id, collection, doc_id, data, base, ts, size, position)
        JOIN syncstore_collection c ON c.name = m.collection AND c.json_schema IS NULL
    ), v AS MATERIALIZED (
        -- an edit's stored document, one probe of the unique index per edit (new documents skip it)
        SELECT m.*, d.tid, d.old, d.fv, d.tid IS NOT NULL AND d.old = m.doc AS unchanged,
               CASE WHEN d.tid IS NULL THEN 1 WHEN d.old = m.doc THEN d.version ELSE d.version + 1 END AS version
        FROM m LEFT JOIN LATERAL (
            SELECT d.ctid AS tid, d.version, d.data AS old, d.field_versions AS fv FROM syncstore_document d
            WHERE m.base >= 1 AND d.collection_id = m.cid AND d.doc_id = m.doc_id AND d.version = m.base
              AND NOT d.deleted
            LIMIT 1
        ) d ON true
        WHERE COALESCE(m.base, 0) = 0 OR d.tid IS NOT NULL
    ), w AS MATERIALIZED (
        SELECT v.*, CASE WHEN NOT v.unchanged THEN nextval('syncstore_change_seq') END AS seq,
               concat('{"mutation_id":', to_json(v.mutation_id), ',"status":"applied","collection":"', v.collection,
                      '","id":', to_json(v.doc_id), ',"version":', v.version, '}') AS result
        FROM v ORDER BY v.position
    ), inserted AS (
        {DOCUMENT_INSERT}
        SELECT w.cid, w.doc_id, w.doc, w.data, 1, 1, w.seq, false, '{}', COALESCE(w.ts, %s), w.size, %s, now(),
               now()
        FROM w WHERE w.tid IS NULL
    ), updated AS (
        UPDATE syncstore_document AS d SET
            data = w.doc, data_text = w.data, data_text_version = w.version, version = w.version, seq = w.seq,
            client_ts = COALESCE(w.ts, %s), size_bytes = w.size, last_device = %s, updated_at = now(),
            field_versions = w.fv || COALESCE((
                SELECT jsonb_object_agg(changed.key, w.version) FROM (
                    SELECT e.key FROM jsonb_each(w.doc) e WHERE w.old -> e.key IS DISTINCT FROM e.value
                    UNION ALL
                    SELECT o.key FROM jsonb_object_keys(w.old) o(key) WHERE NOT w.doc ? o.key
                ) changed
            ), '{}')
        FROM w
        -- by the row's physical address from the lookup above: a direct heap fetch per row, which no
        -- statistics can turn into a scan of the table
        WHERE d.ctid = w.tid AND NOT w.unchanged
    ), records AS (
        INSERT INTO syncstore_idempotencyrecord (device_id, mutation_id, result, created_at)
        SELECT %s, w.mutation_id, w.result, now() FROM w
    ), counts AS (
        UPDATE syncstore_collection c SET document_count = c.document_count + n.added
        FROM (SELECT w.cid, count(*) AS added FROM w WHERE w.tid IS NULL GROUP BY w.cid) n WHERE c.id = n.cid
    )
    SELECT (SELECT count(*) FROM w),
           (SELECT count(*) FROM w WHERE w.tid IS NULL),
           (SELECT COALESCE(sum(document_count), 0) FROM syncstore_collection),
           (SELECT '[' || string_agg(w.result, ',' ORDER BY w.position) || ']' FROM w)
""".replace("{SPLIT}", SPLIT).replace("{DOCUMENT_INSERT}", store.DOCUMENT_INSERT_SQL)


def _plain_puts(mutations: list[Mutation]) -> str | None:
    """The statement for a batch that can only be plain puts (puts, no document twice): the one for new
    documents when no mutation has a base version, else the one for puts; None for any other batch."""
    if not mutations or any(m.op != "put" for m in mutations):
        return None
    if len({(m.collection, m.doc_id) for m in mutations}) != len(mutations):
        return None
    return _PUSH_PUTS_SQL if any(m.base_version for m in mutations) else _PUSH_NEW_SQL


def _push_puts_params(statement: str, device_id: str, mutations: list[Mutation], now_ms: int) -> list[Any]:
    data = [m.data_json or orjson.dumps(m.data) for m in mutations]
    columns = [
        joined([m.mutation_id for m in mutations]),
        joined([m.collection for m in mutations]),
        joined([m.doc_id for m in mutations]),
        joined_json(data),
    ]
    sizes = [len(d) for d in data]
    if statement is _PUSH_NEW_SQL:
        return [*columns, [m.client_ts for m in mutations], sizes, now_ms, device_id, device_id]
    return [
        *columns,
        [m.base_version for m in mutations],
        [m.client_ts for m in mutations],
        sizes,
        now_ms,
        device_id,
        now_ms,
        device_id,
        device_id,
    ]


def sync_push_apply(
    *, device_id: str, mutations: list[Mutation], meta: dict[str, str], limits: SyncLimits
) -> PushResult:
    """Apply a validated batch in one transaction; return one result per mutation, in order.

    The batch is atomic: a mutation that turns out invalid against server state
    (JSON Schema, unknown collection with strict collections on, a base version
    from the future) rejects the whole batch with ``batch_rejected`` and nothing
    is written. Conflicts are outcomes, not errors.

    The first round trip takes the write lock (so what follows is read under it) and records the
    device; a batch of plain puts is written in it too (:data:`_PUSH_NEW_SQL`, :data:`_PUSH_PUTS_SQL`),
    and everything else goes through the conflict engine (:func:`_push_with_engine`).
    """
    now_ms = int(time.time() * 1000)
    statement = _plain_puts(mutations)
    with transaction.atomic():
        written = None
        try:
            with pipelined() as execute:
                execute("SELECT pg_advisory_xact_lock(%s, %s)", [SYNC_LOCK_CLASS, current_organisation_id()])
                device_cursor = execute(_DEVICE_PUSH_SQL, _device_push_params(device_id, meta, len(mutations)))
                if statement is not None:
                    execute(f"SAVEPOINT {_PUTS_SAVEPOINT}")
                    puts_cursor = execute(statement, _push_puts_params(statement, device_id, mutations, now_ms))
        except psycopg.errors.UniqueViolation:
            pass  # a new document or a stored result is already there: not a batch of plain puts
        else:
            written = puts_cursor.fetchone() if statement is not None else None
        if statement is not None and (written is None or written[0] != len(mutations)):
            rollback_to_savepoint(_PUTS_SAVEPOINT)
            written = None
        with fast_cursor() as cursor:
            device_touched(cursor, device_cursor.fetchone(), limits)
        if not mutations:
            return PushResult(b"[]", {}, 0)
        if written is None:
            return _push_with_engine(device_id, mutations, limits, now_ms)
        _count, added, total_before, results_json = written
        document_quota_verify(total_before + added, limits, added)
        return PushResult(results_json.encode(), {"applied": len(mutations)}, 0)


def _refusal(state: DocState, mutation: Mutation, collection: dict[str, Any]) -> tuple[str, str] | None:
    """Why the server state refuses ``mutation`` (code, message), or None: a base version from the
    future, or a document the collection's JSON Schema rejects."""
    if mutation.base_version is not None and mutation.base_version > state.version:
        return (
            "invalid_base_version",
            f"base_version {mutation.base_version} is newer than the server's {state.version}.",
        )
    validator = validator_for(collection)
    if validator is not None and mutation.op != "delete":
        problem = next(iter(validator.iter_errors(engine.candidate_data(state, mutation))), None)
        if problem is not None:
            path = "/".join(str(p) for p in problem.absolute_path) or "(root)"
            return "schema_violation", f"{path}: {problem.message}"
    return None


def _push_with_engine(device_id: str, mutations: list[Mutation], limits: SyncLimits, now_ms: int) -> PushResult:
    """The general push (inside :func:`sync_push_apply`'s transaction, under the write lock): read the
    batch's stored results, collections and documents in one round trip, decide every mutation with
    :mod:`sync.engine`, then write in one more."""
    names = sorted({m.collection for m in mutations})
    with pipelined() as execute:
        stored_cursor = execute(_STORED_SQL, [joined([m.mutation_id for m in mutations]), device_id])
        strict_cursor = execute("SELECT strict_collections FROM syncstore_syncstate WHERE id = 1")
        collections_cursor = execute(store.COLLECTIONS_SQL, [names])
        state_cursors = [
            execute(store.STATES_BY_NAME_SQL, [name, joined([m.doc_id for m in mutations if m.collection == name])])
            for name in names
        ]
    with fast_cursor() as cursor:
        stored = dict(stored_cursor.fetchall())
        fresh = [m for m in mutations if m.mutation_id not in stored]
        (strict,) = strict_cursor.fetchone()
        collections = store.collections_found(
            cursor,
            collections_cursor.fetchall(),
            sorted({m.collection for m in fresh}),
            create_missing=not strict,
        )
        errors = [
            mutation_error(m.index, {"mutation_id": m.mutation_id}, "unknown_collection", "No such collection.")
            for m in fresh
            if m.collection not in collections
        ]
        if errors:
            raise BatchRejected(details={"errors": errors})
        states = {(row[0], row[1]): DocState(*row) for state_cursor in state_cursors for row in state_cursor.fetchall()}
        outcomes: list[dict[str, Any] | None] = []
        pending_conflicts: list[tuple[dict[str, Any], Mutation, int, str, str]] = []
        conflict_slots: list[int] = []
        count_deltas: dict[int, int] = {}
        for mutation in mutations:
            if mutation.mutation_id in stored:
                outcomes.append(None)
                continue
            collection = collections[mutation.collection]
            key = (collection["id"], mutation.doc_id)
            state = states.get(key)
            if state is None:
                state = states[key] = engine.new_state(collection["id"], mutation.doc_id)
            refusal = _refusal(state, mutation, collection)
            if refusal is not None:
                errors.append(mutation_error(mutation.index, {"mutation_id": mutation.mutation_id}, *refusal))
                outcomes.append(None)
                continue
            was_live = state.live
            outcome = engine.decide(state, mutation, collection["policy"], device_id, now_ms)
            count_deltas[collection["id"]] = count_deltas.get(collection["id"], 0) + int(state.live) - int(was_live)
            if outcome.conflict is not None:
                conflict_slots.append(len(outcomes))
                pending_conflicts.append(
                    (outcome.conflict, mutation, collection["id"], collection["policy"], device_id)
                )
            # The result is taken now: later mutations in the batch may change the same document.
            outcomes.append(_result(mutation, outcome, state))
        if errors:
            raise BatchRejected(details={"errors": errors})

        conflict_ids = _insert_conflicts(pending_conflicts) if pending_conflicts else []
    # The writes in one round trip. The document write goes first so PostgreSQL works on it while
    # Python serialises the results for the idempotency records and the response.
    with pipelined() as execute:
        total_cursor = store.write_changes(execute, [s for s in states.values() if s.dirty], count_deltas)
        results: list[dict[str, Any]] = []
        new_ids: list[str] = []
        new_results: list[str] = []
        slot_to_conflict = dict(zip(conflict_slots, conflict_ids, strict=True))
        for position, (mutation, item) in enumerate(zip(mutations, outcomes, strict=True)):
            if item is None:
                replay = orjson.loads(stored[mutation.mutation_id])
                replay["original_status"] = replay["status"]
                replay["status"] = "duplicate"
                results.append(replay)
                continue
            result = item
            if position in slot_to_conflict:
                result["conflict_id"] = slot_to_conflict[position]
            results.append(result)
            new_ids.append(mutation.mutation_id)
            new_results.append(orjson.dumps(result).decode())
        if new_ids:
            execute(_RECORDS_SQL, [device_id, joined(new_ids), joined(new_results)])
        if conflict_ids:
            execute(
                "UPDATE syncstore_device SET conflicts = conflicts + %s WHERE device_id = %s",
                [len(conflict_ids), device_id],
            )
        statuses: dict[str, int] = {}
        for result in results:
            statuses[result["status"]] = statuses.get(result["status"], 0) + 1
        results_json = orjson.dumps(results)
    (total_after,) = total_cursor.fetchone()
    document_quota_verify(total_after, limits, sum(count_deltas.values()))
    return PushResult(results_json, statuses, len(conflict_ids))


def device_touch_for_pull(*, device_id: str, seq: int, limits: SyncLimits) -> None:
    """Record a pull (upserting the device); refuse a revoked device."""
    with transaction.atomic(), fast_cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO syncstore_device AS d (device_id, first_seen_at, last_seen_at, last_pull_at, last_pull_seq,
                                               user_agent, app_version, pushes, pulls, mutations, conflicts)
            VALUES (%s, now(), now(), now(), %s, '', '', 0, 1, 0, 0)
            ON CONFLICT (device_id) DO UPDATE SET
                last_seen_at = now(), last_pull_at = now(), last_pull_seq = EXCLUDED.last_pull_seq,
                pulls = d.pulls + 1
            RETURNING revoked_at, (xmax = 0) AS inserted
            """,
            [device_id, seq],
        )
        revoked_at, inserted = cursor.fetchone()
        if revoked_at is not None:
            raise DeviceRevoked()
        if inserted:
            device_quota_check(cursor, limits)


def device_check(*, device_id: str) -> None:
    """Refuse a revoked device before doing any work for it."""
    if Device.objects.filter(device_id=device_id, revoked_at__isnull=False).exists():
        raise DeviceRevoked()


@transaction.atomic
def device_revoke(*, actor: Actor, organisation: Organisation, device_id: str) -> Device:
    device = Device.objects.select_for_update().filter(device_id=device_id).first()
    if device is None:
        raise DeviceNotFound()
    if device.revoked_at is None:
        device.revoked_at = timezone.now()
        device.save(update_fields=["revoked_at"])
        audit_record(
            actor=actor, action="device.revoked", organisation=organisation, target_type="device", target_id=device_id
        )
    return device


def _validate_json_schema(schema: Any) -> dict[str, Any] | None:
    if schema is None:
        return None
    if not isinstance(schema, dict):
        raise InvalidInput("json_schema must be a JSON object or null.", code="invalid_json_schema")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise InvalidInput(
            f"json_schema is not a valid JSON Schema: {exc.message}", code="invalid_json_schema"
        ) from exc
    return schema


@transaction.atomic
def collection_update(
    *,
    actor: Actor,
    organisation: Organisation,
    name: str,
    conflict_policy: str | None = None,
    json_schema: Any = ...,
    create: bool = False,
) -> Collection:
    """Change a collection's conflict policy and/or JSON Schema (``create`` makes it if missing)."""
    try:
        validate_collection_name(name)
    except MutationError as exc:
        raise InvalidInput(exc.message, code=exc.code) from exc
    collection = Collection.objects.select_for_update().filter(name=name).first()
    if collection is None:
        if not create:
            raise CollectionNotFound()
        collection = Collection(name=name)
    changes: dict[str, Any] = {}
    if conflict_policy is not None:
        if conflict_policy not in ConflictPolicy.values:
            raise InvalidInput(
                f"Unknown conflict policy {conflict_policy!r}.",
                code="invalid_conflict_policy",
                details={"allowed": ConflictPolicy.values},
            )
        if conflict_policy != collection.conflict_policy:
            changes["conflict_policy"] = {"from": collection.conflict_policy, "to": conflict_policy}
        collection.conflict_policy = conflict_policy
    if json_schema is not ...:
        collection.json_schema = _validate_json_schema(json_schema)
        changes["json_schema"] = "set" if json_schema is not None else "removed"
    collection.save()
    audit_record(
        actor=actor,
        action="collection.updated",
        organisation=organisation,
        target_type="collection",
        target_id=name,
        details=changes,
    )
    return collection


@transaction.atomic
def sync_settings_update(*, actor: Actor, organisation: Organisation, strict_collections: bool) -> SyncState:
    state = SyncState.objects.select_for_update().get(pk=1)
    state.strict_collections = strict_collections
    state.save(update_fields=["strict_collections"])
    audit_record(
        actor=actor,
        action="sync.settings_updated",
        organisation=organisation,
        target_type="sync_settings",
        details={"strict_collections": strict_collections},
    )
    return state


def _put_mutation(collection: str, doc_id: str, op: str, data: dict[str, Any] | None, base_version: int) -> Mutation:
    return Mutation(
        index=0,
        mutation_id=f"resolution-{doc_id}",
        collection=collection,
        doc_id=doc_id,
        op=op,
        base_version=base_version,
        data=data,
        client_ts=None,
    )


def conflict_resolve(
    *,
    actor: Actor,
    organisation: Organisation,
    conflict_id: int,
    choose: str,
    data: Any = None,
    limits: SyncLimits,
) -> tuple[Conflict, dict[str, Any]]:
    """Resolve an open conflict: keep the ``server`` state, take the ``client`` write, or store ``merged`` data.

    Taking the client write or merged data makes a normal new version, which
    every device then pulls. Returns the conflict and the document's state.
    """
    if choose not in ("server", "client", "merged"):
        raise InvalidInput("choose is one of server, client, merged.", code="invalid_choice")
    if choose == "merged":
        try:
            data = validate_document_data(data, limits)
        except MutationError as exc:
            raise InvalidInput(exc.message, code=exc.code) from exc
    elif data is not None:
        raise InvalidInput("data is only given with choose=merged.", code="invalid_choice")
    with transaction.atomic():
        tenant_write_lock()
        conflict = Conflict.objects.select_for_update().select_related("collection").filter(pk=conflict_id).first()
        if conflict is None:
            raise ConflictNotFound()
        if conflict.status != "open":
            raise ConflictAlreadyResolved()
        collection = conflict.collection
        with fast_cursor() as cursor:
            states = store.load_states(cursor, [(collection.id, conflict.doc_id)])
            state = states.get((collection.id, conflict.doc_id)) or engine.new_state(collection.id, conflict.doc_id)
            was_live = state.live
            if choose != "server":
                if choose == "client":
                    write = conflict.client_write
                    mutation = _put_mutation(
                        collection.name, conflict.doc_id, write["op"], write["data"], state.version
                    )
                else:
                    mutation = _put_mutation(collection.name, conflict.doc_id, "put", data, state.version)
                validator = validator_for(
                    {
                        "id": collection.id,
                        "json_schema": collection.json_schema,
                        "updated_at": str(collection.updated_at),
                    }
                )
                candidate = engine.candidate_data(state, mutation)
                if validator is not None and candidate is not None:
                    problem = next(iter(validator.iter_errors(candidate)), None)
                    if problem is not None:
                        raise InvalidInput(
                            f"The data violates the collection's JSON Schema: {problem.message}",
                            code="schema_violation",
                        )
                engine.decide(state, mutation, "manual", f"resolution:{actor.label}"[:128], int(time.time() * 1000))
                store.write_documents(cursor.execute, [state] if state.dirty else [])
                store.adjust_counts(cursor.execute, {collection.id: int(state.live) - int(was_live)})
        conflict.status = "resolved"
        conflict.resolution = choose
        conflict.resolved_by = actor.label
        conflict.resolved_at = timezone.now()
        conflict.losing = "client" if choose == "server" else ("server" if choose == "client" else "both")
        conflict.save(update_fields=["status", "resolution", "resolved_by", "resolved_at", "losing"])
        audit_record(
            actor=actor,
            action="conflict.resolved",
            organisation=organisation,
            target_type="conflict",
            target_id=conflict.pk,
            details={"collection": collection.name, "document": conflict.doc_id, "choose": choose},
        )
    return conflict, state.snapshot()


def tombstones_purge(*, older_than: timedelta) -> dict[str, int]:
    """Delete tombstones older than ``older_than`` and move the horizon past them.

    A client whose checkpoint is below the new horizon may have missed one of
    the purged deletes, so its next pull gets ``410 reset_required``.
    """
    cutoff = timezone.now() - older_than
    with transaction.atomic():
        tenant_write_lock()
        with fast_cursor() as cursor:
            cursor.execute("DELETE FROM syncstore_document WHERE deleted AND updated_at < %s RETURNING seq", [cutoff])
            purged = [row[0] for row in cursor.fetchall()]
            horizon = max(purged, default=0)
            if purged:
                cursor.execute(
                    "UPDATE syncstore_syncstate SET horizon_seq = GREATEST(horizon_seq, %s), purged_at = now()",
                    [horizon],
                )
            cursor.execute("SELECT horizon_seq FROM syncstore_syncstate WHERE id = 1")
            (current_horizon,) = cursor.fetchone()
    return {"purged": len(purged), "horizon_seq": current_horizon}
