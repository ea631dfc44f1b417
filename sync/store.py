"""Set-based reads and writes of an organisation's documents, shared by every sync protocol.

Callers hold :func:`sync.db.tenant_write_lock` and pass a :func:`sync.db.fast_cursor`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from sync.db import SPLIT, SPLIT_NULLABLE, joined, joined_json
from sync.engine import DocState

COLLECTIONS_SQL = (
    "SELECT id, name, conflict_policy, json_schema, updated_at::text FROM syncstore_collection WHERE name = ANY(%b)"
)


def load_collections(cursor: Any, names: list[str], *, create_missing: bool) -> dict[str, dict[str, Any]]:
    cursor.execute(COLLECTIONS_SQL, [names])
    return collections_found(cursor, cursor.fetchall(), names, create_missing=create_missing)


def collections_found(
    cursor: Any, rows: list[tuple], names: list[str], *, create_missing: bool
) -> dict[str, dict[str, Any]]:
    """The collections among ``names`` (rows read with :data:`COLLECTIONS_SQL`), creating missing ones
    with the default policy when ``create_missing``."""
    found = {row[1]: collection_row(row) for row in rows if row[1] in names}
    missing = [name for name in names if name not in found]
    if missing and create_missing:
        cursor.execute(
            """
            INSERT INTO syncstore_collection
                (name, conflict_policy, json_schema, document_count, created_at, updated_at)
            SELECT n, 'merge', NULL, 0, now(), now() FROM unnest(%b::text[]) AS n
            ON CONFLICT (name) DO NOTHING
            """,
            [missing],
        )
        cursor.execute(COLLECTIONS_SQL, [missing])
        found.update({row[1]: collection_row(row) for row in cursor.fetchall()})
    return found


def collection_row(row: tuple) -> dict[str, Any]:
    return {"id": row[0], "name": row[1], "policy": row[2], "json_schema": row[3], "updated_at": row[4]}


# A document row's JSON text (alias ``d``): the text its writer stored, while it belongs to the current
# version, else PostgreSQL's rendering of ``data`` (rows written before the text was kept, or by the
# previous release during a rolling upgrade). Pulls pass it through (see Document.data_text).
DOCUMENT_TEXT_SQL = "COALESCE(CASE WHEN d.data_text_version = d.version THEN d.data_text END, d.data::text)"

# The columns every insert of documents writes (sync.store.write_documents and the one-statement pushes
# in sync.services), in this order: one list, so no writer can leave the stored text behind.
DOCUMENT_INSERT_SQL = """INSERT INTO syncstore_document (collection_id, doc_id, data, data_text, data_text_version,
        version, seq, deleted, field_versions, client_ts, size_bytes, last_device, created_at, updated_at)"""

# The columns of a DocState, in its field order.
_STATE_COLUMNS = (
    "d.collection_id, d.doc_id, d.data, d.version, d.deleted, d.field_versions, d.client_ts, d.last_device, d.id, d.seq"
)

# The current state of some documents of one collection (by id; a new collection has none). One probe
# of the unique (collection, doc_id) index per document, whatever the statistics say:
# * a LATERAL subquery with LIMIT is planned for one key, so the planner cannot trade the probes for one
#   scan of the collection (which it does for ``doc_id = ANY(...)`` when it believes the collection small);
# * the (collection, seq) index is partial (``WHERE seq IS NOT NULL``, every row), so only queries that
#   bound seq can use it: it cannot win a tie against the unique index here when statistics predate the
#   collection and make both look like one row, and then read the whole collection for every key.
STATES_SQL = f"""
    SELECT {_STATE_COLUMNS}
    FROM unnest({SPLIT}) AS k(doc_id)
    CROSS JOIN LATERAL (
        SELECT * FROM syncstore_document d WHERE d.collection_id = %s AND d.doc_id = k.doc_id LIMIT 1
    ) d
"""

# The same by the collection's name, so the lookup can be sent before the collection id is known.
STATES_BY_NAME_SQL = f"""
    SELECT {_STATE_COLUMNS}
    FROM (SELECT c.id FROM syncstore_collection c WHERE c.name = %s) c
    CROSS JOIN unnest({SPLIT}) AS k(doc_id)
    CROSS JOIN LATERAL (
        SELECT * FROM syncstore_document d WHERE d.collection_id = c.id AND d.doc_id = k.doc_id LIMIT 1
    ) d
"""


def load_states(cursor: Any, keys: list[tuple[int, str]]) -> dict[tuple[int, str], DocState]:
    """The current state of the given (collection id, document id) pairs that exist."""
    by_collection: dict[int, list[str]] = {}
    for collection_id, doc_id in keys:
        by_collection.setdefault(collection_id, []).append(doc_id)
    states: dict[tuple[int, str], DocState] = {}
    for collection_id, doc_ids in by_collection.items():
        cursor.execute(STATES_SQL, [joined(doc_ids), collection_id])
        states.update({(row[0], row[1]): DocState(*row) for row in cursor.fetchall()})
    return states


# Live documents in the organisation after a write (maintained counters, no row count): the quota check.
LIVE_TOTAL_SQL = "SELECT COALESCE(sum(document_count), 0) FROM syncstore_collection"


def write_documents(execute: Callable[[str, Any], Any], states: list[DocState]) -> None:
    """Write the given states in one statement: an INSERT of the new documents and an UPDATE (by primary
    key) of the stored ones.

    ``execute`` is a cursor's, or :func:`sync.db.pipelined`'s. Callers hold the write lock and know from
    the states they loaded which documents exist, so neither part needs ``ON CONFLICT``: a plain insert
    and an update by id each cost PostgreSQL less than an upsert. Sequence numbers are drawn once, in
    the order of ``states``, so the change feed lists a batch's writes in the order they were made.
    """
    if not states:
        return
    serialised = [s.data_json or orjson.dumps(s.data) for s in states]
    execute(
        f"""
        WITH u AS MATERIALIZED (
            SELECT u.*, nextval('syncstore_change_seq') AS seq
            FROM unnest(%b::bigint[], %b::bigint[], {SPLIT}, {SPLIT}, %b::int[], %b::bool[], {SPLIT_NULLABLE},
                        %b::bigint[], %b::int[], {SPLIT})
                 WITH ORDINALITY AS u(row_id, cid, did, data, version, deleted, fv, ts, size, dev, position)
            ORDER BY u.position
        ), inserted AS (
            {DOCUMENT_INSERT_SQL}
            SELECT u.cid, u.did, u.data::jsonb, u.data, u.version, u.version, u.seq, u.deleted,
                   COALESCE(u.fv::jsonb, '{{}}'), u.ts, u.size, u.dev, now(), now()
            FROM u WHERE u.row_id IS NULL
        )
        UPDATE syncstore_document AS d SET
            data = u.data::jsonb, data_text = u.data, data_text_version = u.version, version = u.version,
            seq = u.seq, deleted = u.deleted, field_versions = COALESCE(u.fv::jsonb, '{{}}'), client_ts = u.ts,
            size_bytes = u.size, last_device = u.dev, updated_at = now()
        FROM u WHERE d.id = u.row_id AND d.id = ANY(%b::bigint[])
        """,
        [
            [s.row_id for s in states],
            [s.collection_id for s in states],
            joined([s.doc_id for s in states]),
            joined_json(serialised),
            [s.version for s in states],
            [s.deleted for s in states],
            # Empty (NULL, stored as {}) when every field is at version 1.
            joined([orjson.dumps(s.field_versions).decode() if s.field_versions else "" for s in states]),
            [s.client_ts for s in states],
            [len(d) for d in serialised],  # bytes
            joined([s.last_device for s in states]),
            # The stored rows again, as a primary-key condition: it keeps the update to one index probe per
            # row, where a join on the CTE alone may be planned as a scan of the whole table.
            [s.row_id for s in states if s.row_id is not None],
        ],
    )


def write_changes(execute: Callable[[str, Any], Any], states: list[DocState], deltas: dict[int, int]) -> Any:
    """Send the document write and the collection counters; return the cursor that will hold the live
    documents in the organisation afterwards, for the plan's quota (``execute`` as for
    :func:`write_documents`; inside :func:`sync.db.pipelined` all of it is one round trip)."""
    write_documents(execute, states)
    adjust_counts(execute, deltas)
    return execute(LIVE_TOTAL_SQL)


def adjust_counts(execute: Callable[[str, Any], Any], deltas: dict[int, int]) -> None:
    deltas = {cid: delta for cid, delta in deltas.items() if delta}
    if deltas:
        execute(
            """
            UPDATE syncstore_collection c SET document_count = c.document_count + u.delta
            FROM unnest(%b::bigint[], %b::bigint[]) AS u(cid, delta) WHERE c.id = u.cid
            """,
            [list(deltas), list(deltas.values())],
        )
