"""Pure conflict logic: given a document's current state and a mutation, decide the outcome.

No database here, so every rule can be read (and tested) on its own. The
service in :mod:`sync.services` loads states, calls :func:`decide` for each
mutation in order, and writes the results in bulk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sync.validation import Mutation

Status = Literal["applied", "merged", "conflict", "duplicate", "rejected"]
_MISSING = object()


@dataclass(slots=True)
class DocState:
    """A document as the batch sees it (loaded from the database or created by an earlier mutation)."""

    collection_id: int
    doc_id: str
    data: dict[str, Any]
    version: int
    deleted: bool
    field_versions: dict[str, int]
    client_ts: int | None
    last_device: str
    row_id: int | None = None  # the stored row's primary key; None until the document is first written
    seq: int | None = None  # the stored row's change number when loaded (not updated by this batch's writes)
    exists: bool = True
    dirty: bool = False
    # ``data`` as JSON when it is exactly what a put sent (validation already serialised it), so the
    # write does not serialise it again; None otherwise.
    data_json: bytes | None = None

    @property
    def present(self) -> bool:
        """The document exists: stored, or created earlier in this batch."""
        return self.exists or self.dirty

    @property
    def live(self) -> bool:
        """Present and not a tombstone (what document counts and quotas count)."""
        return self.present and not self.deleted

    def snapshot(self) -> dict[str, Any]:
        return {"data": self.data, "version": self.version, "deleted": self.deleted}


@dataclass(slots=True)
class Outcome:
    status: Status
    # The resulting state when the server state differs from what the client sent.
    return_state: bool = False
    conflict: dict[str, Any] | None = None  # fields for a Conflict row
    resolution: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _candidate(state: DocState | None, mutation: Mutation) -> tuple[dict[str, Any], bool]:
    """The document a mutation produces when applied on ``state`` with no conflict."""
    if mutation.op == "delete":
        return (state.data if state else {}), True
    if mutation.op == "put":
        return dict(mutation.data or {}), False
    base = {} if state is None or state.deleted else dict(state.data)
    for key, value in (mutation.data or {}).items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base, False


def candidate_data(state: DocState | None, mutation: Mutation) -> dict[str, Any] | None:
    """What a put/patch would store (for JSON Schema validation); ``None`` for a delete."""
    if mutation.op == "delete":
        return None
    return _candidate(state, mutation)[0]


def json_equal(a: Any, b: Any) -> bool:
    """Equality of two decoded JSON values as JSON (and PostgreSQL's ``jsonb``) sees it.

    Python's ``==`` is that, except that ``True == 1`` and ``False == 0``: a client changing a field
    from ``1`` to ``true`` would otherwise be told its write changed nothing. Numbers still compare by
    value (``1`` equals ``1.0``, as in ``jsonb``).
    """
    return a == b and _same_kinds(a, b)


def _same_kinds(a: Any, b: Any) -> bool:
    """After ``a == b``: no boolean is matched with a number anywhere in the two values."""
    kind_a, kind_b = type(a), type(b)
    if kind_a is bool or kind_b is bool:
        return kind_a is kind_b
    if kind_a is dict:
        return all(_same_kinds(value, b[key]) for key, value in a.items())
    if kind_a is list:
        return all(_same_kinds(x, y) for x, y in zip(a, b, strict=True))
    return True


def changed_fields(old: dict[str, Any], new: dict[str, Any]) -> set[str]:
    """Top-level fields whose values differ as JSON (:func:`json_equal`), including fields only one has.

    Every edit the engine applies, and every stale put it merges, runs this once per field, so it is
    written for the common case: two scalars of one type that ``==`` tells apart or not; only containers,
    and values of different types that ``==`` calls equal (``1`` and ``1.0``, ``1`` and ``true``), need
    the kinds checked. (Plain puts diff in SQL instead: sync.services._PUSH_PUTS_SQL.)
    """
    get = old.get
    changed = {
        key
        for key, value in new.items()
        if (current := get(key, _MISSING)) != value
        or (
            ((kind := type(value)) is not type(current) or kind is dict or kind is list)
            and not _same_kinds(current, value)
        )
    }
    changed |= old.keys() - new.keys()
    return changed


def _write(
    state: DocState,
    data: dict[str, Any],
    deleted: bool,
    mutation: Mutation,
    device_id: str,
    now_ms: int,
    *,
    as_sent: bool = True,
) -> None:
    """Apply a new version to ``state`` in memory (the service persists dirty states).

    ``as_sent``: ``data`` is what the mutation itself produces (not a merge), so a put's serialised
    data can be written as it is.
    """
    if state.present:
        new_version = state.version + 1
        for key in changed_fields(state.data if not state.deleted else {}, data if not deleted else {}):
            state.field_versions[key] = new_version
    else:
        new_version = 1
        state.field_versions = {}  # every field is at version 1: the default (see _server_changed)
    state.data_json = mutation.data_json if as_sent and mutation.op == "put" and not deleted else None
    state.data = data
    state.deleted = deleted
    state.version = new_version
    state.client_ts = mutation.client_ts if mutation.client_ts is not None else now_ms
    state.last_device = device_id
    state.dirty = True


def new_state(collection_id: int, doc_id: str) -> DocState:
    return DocState(
        collection_id=collection_id,
        doc_id=doc_id,
        data={},
        version=0,
        deleted=False,
        field_versions={},
        client_ts=None,
        last_device="",
        exists=False,
    )


def _client_write(mutation: Mutation, device_id: str) -> dict[str, Any]:
    return {
        "op": mutation.op,
        "data": mutation.data,
        "base_version": mutation.base_version,
        "client_ts": mutation.client_ts,
        "mutation_id": mutation.mutation_id,
        "device_id": device_id,
    }


def decide(state: DocState, mutation: Mutation, policy: str, device_id: str, now_ms: int) -> Outcome:
    """Apply ``mutation`` to ``state`` (in place) under the collection's conflict ``policy``.

    Rules (docs/sync-protocol.md explains them for client authors):

    * new document, or ``base_version`` equal to the current version: applied;
    * a write that would not change anything: applied, no new version;
    * stale ``base_version``: the policy decides — ``merge`` merges disjoint
      top-level fields (overlap keeps the server state and opens a conflict),
      ``server_wins``/``client_wins``/``last_write_wins`` pick a side and record
      a resolved conflict holding the losing side, ``manual`` opens a conflict.
    """
    if not state.present:
        data, deleted = _candidate(None, mutation)
        _write(state, data, deleted, mutation, device_id, now_ms)
        return Outcome("applied")

    data, deleted = _candidate(state, mutation)
    unchanged = deleted == state.deleted and (deleted or json_equal(data, state.data))
    if unchanged:
        return Outcome("applied")

    base = mutation.base_version or 0
    if base == state.version:
        _write(state, data, deleted, mutation, device_id, now_ms)
        return Outcome("applied")

    # Stale write: someone changed the document since the client's base version.
    server_before = state.snapshot()
    losing_client = {"client_write": _client_write(mutation, device_id), "server_state": server_before}

    if policy == "merge":
        merged = _merge(state, mutation, data, base)
        if merged is not None:
            _write(state, merged, False, mutation, device_id, now_ms, as_sent=False)
            return Outcome("merged", return_state=True)
        return Outcome("conflict", return_state=True, conflict={**losing_client, "status": "open"}, resolution="open")
    if policy == "manual":
        return Outcome("conflict", return_state=True, conflict={**losing_client, "status": "open"}, resolution="open")
    if policy == "server_wins":
        return Outcome(
            "conflict",
            return_state=True,
            conflict={**losing_client, "status": "resolved", "losing": "client", "resolution": "server_wins"},
            resolution="server_wins",
        )
    client_wins = policy == "client_wins"
    if policy == "last_write_wins":
        client_clock = mutation.client_ts if mutation.client_ts is not None else now_ms
        client_wins = (client_clock, device_id) > (state.client_ts or 0, state.last_device)
    if client_wins:
        _write(state, data, deleted, mutation, device_id, now_ms)
        return Outcome(
            "applied",
            conflict={**losing_client, "status": "resolved", "losing": "server", "resolution": policy},
            resolution=policy,
        )
    return Outcome(
        "conflict",
        return_state=True,
        conflict={**losing_client, "status": "resolved", "losing": "client", "resolution": policy},
        resolution=policy,
    )


def _server_changed(state: DocState, base: int) -> set[str]:
    """Top-level fields changed on the server after version ``base``.

    ``field_versions`` lists only fields changed after the document was created: a field absent from it
    was last changed at version 1, so a new document stores ``{}`` instead of one entry per field (a
    smaller row, and no map to build and parse on the common write). A client with no base (0) has seen
    no version, so every field, present or removed, counts as changed.
    """
    if base < 1:
        return set(state.data) | set(state.field_versions)
    return {key for key, version in state.field_versions.items() if version > base}


def _merge(state: DocState, mutation: Mutation, candidate: dict[str, Any], base: int) -> dict[str, Any] | None:
    """Field-level merge of a stale put/patch; ``None`` when the changes overlap.

    Server-changed fields are those whose field version is newer than the
    client's base. Client-changed fields are the patch's keys (a patch says
    exactly what it changes) or, for a put, the fields whose value differs from
    the server's — a put cannot say which fields it meant to change, so a field
    changed on the server and merely stale on the client counts as overlap:
    never lost, kept as a conflict. Deletes on either side always overlap.
    """
    if mutation.op == "delete" or state.deleted:
        return None
    server_changed = _server_changed(state, base)
    if mutation.op == "patch":
        client_changed = set((mutation.data or {}).keys())
    else:
        client_changed = changed_fields(state.data, candidate)
    overlap = {
        key
        for key in client_changed & server_changed
        if not json_equal(candidate.get(key, _MISSING), state.data.get(key, _MISSING))
    }
    if overlap:
        return None
    merged = dict(state.data)
    for key in client_changed:
        if key in candidate:
            merged[key] = candidate[key]
        else:
            merged.pop(key, None)
    return merged
