"""Set-based reads and writes of an organisation's documents, shared by every sync protocol.

Callers hold :func:`sync.db.tenant_write_lock` and pass a :func:`sync.db.fast_cursor`.
"""

from __future__ import annotations

from typing import Any

import orjson

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


def load_states(cursor: Any, keys: list[tuple[int, str]]) -> dict[tuple[int, str], DocState]:
    """The current state of the given (collection id, document id) pairs that exist.

    One ``collection_id = %s AND doc_id = ANY(%b)`` lookup per collection: always
    the unique (collection, doc_id) index. A join against ``unnest()`` lets the
    planner pick a merge join on the collection alone when its statistics are
    stale, which reads the whole collection.
    """
    by_collection: dict[int, list[str]] = {}
    for collection_id, doc_id in keys:
        by_collection.setdefault(collection_id, []).append(doc_id)
    states: dict[tuple[int, str], DocState] = {}
    for collection_id, doc_ids in by_collection.items():
        cursor.execute(
            """
            SELECT collection_id, doc_id, data, version, deleted, field_versions, client_ts, last_device
            FROM syncstore_document WHERE collection_id = %s AND doc_id = ANY(%b)
            """,
            [collection_id, doc_ids],
        )
        states.update({(row[0], row[1]): DocState(*row) for row in cursor.fetchall()})
    return states


# The current state of some documents of one collection, by the collection's name (a new collection has
# none), through the unique (collection, doc_id) index.
STATES_BY_NAME_SQL = """
    SELECT d.collection_id, d.doc_id, d.data, d.version, d.deleted, d.field_versions, d.client_ts, d.last_device
    FROM syncstore_document d
    WHERE d.collection_id = (SELECT c.id FROM syncstore_collection c WHERE c.name = %s) AND d.doc_id = ANY(%b)
"""


def write_documents(cursor: Any, states: list[DocState]) -> None:
    if not states:
        return
    data_json = [(s.data_json or orjson.dumps(s.data)).decode() for s in states]
    cursor.execute(
        """
        INSERT INTO syncstore_document AS d (collection_id, doc_id, data, version, deleted, field_versions,
                                             client_ts, size_bytes, last_device, created_at, updated_at)
        SELECT u.cid, u.did, u.data::jsonb, u.version, u.deleted, u.fv::jsonb, u.ts, u.size, u.dev, now(), now()
        FROM unnest(%b::bigint[], %b::text[], %b::text[], %b::int[], %b::bool[], %b::text[], %b::bigint[],
                    %b::int[], %b::text[]) AS u(cid, did, data, version, deleted, fv, ts, size, dev)
        ON CONFLICT (collection_id, doc_id) DO UPDATE SET
            data = EXCLUDED.data, version = EXCLUDED.version, deleted = EXCLUDED.deleted,
            field_versions = EXCLUDED.field_versions, client_ts = EXCLUDED.client_ts,
            size_bytes = EXCLUDED.size_bytes, last_device = EXCLUDED.last_device,
            updated_at = EXCLUDED.updated_at, seq = nextval('syncstore_change_seq')
        """,
        [
            [s.collection_id for s in states],
            [s.doc_id for s in states],
            data_json,
            [s.version for s in states],
            [s.deleted for s in states],
            [orjson.dumps(s.field_versions).decode() for s in states],
            [s.client_ts for s in states],
            [len(d) for d in data_json],
            [s.last_device for s in states],
        ],
    )


def adjust_counts(cursor: Any, deltas: dict[int, int]) -> None:
    deltas = {cid: delta for cid, delta in deltas.items() if delta}
    if deltas:
        cursor.execute(
            """
            UPDATE syncstore_collection c SET document_count = c.document_count + u.delta
            FROM unnest(%b::bigint[], %b::bigint[]) AS u(cid, delta) WHERE c.id = u.cid
            """,
            [list(deltas), list(deltas.values())],
        )
