"""Strict, fast validation of sync input (the push hot path bypasses DRF serializers).

Every problem is reported with the offending mutation's index and id and a
stable code, and a batch with any invalid mutation is rejected whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
import orjson

from shared_apps.core.errors import InvalidInput
from sync.errors import BatchRejected, BatchTooLarge
from sync.limits import (
    MAX_CLIENT_TS,
    MAX_DEVICE_ID_LENGTH,
    MAX_ID_LENGTH,
    MAX_JSON_DEPTH,
    MAX_MUTATION_ID_LENGTH,
    MAX_VERSION,
    SyncLimits,
)

# \Z, not $: "$" also matches before a trailing newline, which would let "todos\n" through.
COLLECTION_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,63}\Z"
COLLECTION_NAME_RE = re.compile(COLLECTION_NAME_PATTERN)
# Any printable text without control characters (ids end up in URLs and logs).
_ID_PATTERN = r"^[^\x00-\x1f\x7f]+\Z"
_ID_RE = re.compile(_ID_PATTERN)
OPERATIONS = frozenset({"put", "patch", "delete"})
# A \u0000 escape in serialised JSON that is not itself an escaped backslash followed by "u0000".
_NUL_ESCAPE_RE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
MAX_BODY_DEPTH = 64


@dataclass(slots=True)
class Mutation:
    index: int
    mutation_id: str
    collection: str
    doc_id: str
    op: str
    base_version: int | None
    data: dict[str, Any] | None
    client_ts: int | None
    data_json: bytes | None = None  # ``data`` serialised (measured for the size limit, reused by the write)


class MutationError(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


def parse_json_body(raw: bytes, *, check_depth: bool = True) -> Any:
    """Parse a request body; refuse invalid JSON and nesting deeper than the structural limit.

    The push endpoint passes ``check_depth=False``: its envelope is flat and
    every document is depth-checked on its own, so walking the whole body twice
    would only cost time.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"The body is not valid JSON: {exc}", code="malformed_json") from exc
    if check_depth and not json_depth_ok(value, MAX_BODY_DEPTH):
        raise InvalidInput(f"The body nests deeper than {MAX_BODY_DEPTH} levels.", code="too_deep")
    return value


def json_depth_ok(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``value`` nests no deeper than ``limit``.

    Level by level, so the work is one pass over the containers and nothing
    recurses (orjson already refuses nesting beyond 1024 levels).
    """
    level = [value] if type(value) is dict or type(value) is list else []
    depth = 1
    while level:
        if depth > limit:
            return False
        children: list[Any] = []
        for item in level:
            values = item.values() if type(item) is dict else item
            children.extend(child for child in values if type(child) is dict or type(child) is list)
        level = children
        depth += 1
    return True


def validate_collection_name(name: Any) -> str:
    if not isinstance(name, str) or not COLLECTION_NAME_RE.match(name):
        raise MutationError(
            "invalid_collection", "A collection name is a letter then up to 63 letters, digits or underscores."
        )
    return name


def validate_document_id(doc_id: Any) -> str:
    if not isinstance(doc_id, str) or not doc_id or len(doc_id) > MAX_ID_LENGTH or not _ID_RE.match(doc_id):
        raise MutationError(
            "invalid_document_id", f"A document id is 1 to {MAX_ID_LENGTH} characters without control characters."
        )
    return doc_id


def validate_document_data(data: Any, limits: SyncLimits) -> dict[str, Any]:
    return validate_document_json(data, limits)[0]


def validate_document_json(data: Any, limits: SyncLimits) -> tuple[dict[str, Any], bytes]:
    """A document's data checked (an object, depth, size) and serialised: the bytes its size is measured on."""
    if not isinstance(data, dict):
        raise MutationError("invalid_data", "data must be a JSON object.")
    if not json_depth_ok(data):
        raise MutationError("too_deep", f"data nests deeper than {MAX_JSON_DEPTH} levels.")
    serialised = orjson.dumps(data)
    if b"\\u0000" in serialised and _NUL_ESCAPE_RE.search(serialised):
        raise MutationError("invalid_data", "data contains a NUL character (\\u0000), which cannot be stored.")
    if len(serialised) > limits.max_document_bytes:
        raise MutationError(
            "document_too_large",
            f"The document is {len(serialised)} bytes; the limit is {limits.max_document_bytes}.",
        )
    return data, serialised


def validate_device_id(device_id: Any) -> str:
    if (
        not isinstance(device_id, str)
        or not device_id
        or len(device_id) > MAX_DEVICE_ID_LENGTH
        or not _ID_RE.match(device_id)
    ):
        raise InvalidInput(
            f"device_id is required: 1 to {MAX_DEVICE_ID_LENGTH} characters without control characters.",
            code="invalid_device_id",
        )
    return device_id


def _mutation(index: int, raw: Any, limits: SyncLimits) -> Mutation:
    if not isinstance(raw, dict):
        raise MutationError("invalid_mutation", "Each mutation must be a JSON object.")
    mutation_id = raw.get("mutation_id")
    if (
        not isinstance(mutation_id, str)
        or not mutation_id
        or len(mutation_id) > MAX_MUTATION_ID_LENGTH
        or not _ID_RE.match(mutation_id)
    ):
        raise MutationError("invalid_mutation_id", f"mutation_id is 1 to {MAX_MUTATION_ID_LENGTH} characters.")
    collection = validate_collection_name(raw.get("collection"))
    doc_id = validate_document_id(raw.get("id"))
    op = raw.get("op")
    if op not in OPERATIONS:
        raise MutationError("invalid_operation", "op must be one of put, patch, delete.")
    base_version = raw.get("base_version")
    if base_version is not None and (
        not isinstance(base_version, int) or isinstance(base_version, bool) or not 0 <= base_version <= MAX_VERSION
    ):
        raise MutationError("invalid_base_version", f"base_version is an integer from 0 to {MAX_VERSION}, or null.")
    client_ts = raw.get("client_ts")
    if client_ts is not None and (
        not isinstance(client_ts, int) or isinstance(client_ts, bool) or not 0 <= client_ts <= MAX_CLIENT_TS
    ):
        raise MutationError(
            "invalid_client_ts", f"client_ts is an integer from 0 to {MAX_CLIENT_TS} (milliseconds), or null."
        )
    data = data_json = None
    if op in ("put", "patch"):
        data, data_json = validate_document_json(raw.get("data"), limits)
    elif raw.get("data") is not None:
        raise MutationError("invalid_data", "A delete carries no data.")
    unknown = set(raw) - {"mutation_id", "collection", "id", "op", "base_version", "data", "client_ts"}
    if unknown:
        raise MutationError("unknown_fields", f"Unknown fields: {', '.join(sorted(unknown))}.")
    return Mutation(index, mutation_id, collection, doc_id, op, base_version, data, client_ts, data_json)


def mutation_error(index: int, raw: Any, code: str, message: str) -> dict[str, Any]:
    mutation_id = raw.get("mutation_id") if isinstance(raw, dict) else None
    return {
        "index": index,
        "mutation_id": mutation_id if isinstance(mutation_id, str) else None,
        "code": code,
        "message": message,
    }


# ---------------------------------------------------------------------------- push: the fast path


def _text_of(max_length: int) -> Any:
    """Text of 1 to ``max_length`` characters, as msgspec checks it (what the characters may be is
    checked after decoding, far faster than a pattern per string)."""
    return Annotated[str, msgspec.Meta(min_length=1, max_length=max_length)]


_MutationId = _text_of(MAX_MUTATION_ID_LENGTH)
_DocumentId = _text_of(MAX_ID_LENGTH)
_DeviceId = _text_of(MAX_DEVICE_ID_LENGTH)
_Version = Annotated[int, msgspec.Meta(ge=0, le=MAX_VERSION)]
_Timestamp = Annotated[int, msgspec.Meta(ge=0, le=MAX_CLIENT_TS)]


class _WireMutation(msgspec.Struct, forbid_unknown_fields=True):
    mutation_id: _MutationId
    collection: str
    id: _DocumentId
    op: Literal["put", "patch", "delete"]
    base_version: _Version | None = None
    data: dict[str, Any] | None = None
    client_ts: _Timestamp | None = None


class _WirePush(msgspec.Struct):
    device_id: _DeviceId
    mutations: list[_WireMutation]
    client: dict[str, Any] | None = None


_push_decoder = msgspec.json.Decoder(_WirePush)


class _SlowPath(Exception):
    """The fast path cannot vouch for this body: validate it the thorough way."""


def parse_push_body(raw: bytes, limits: SyncLimits) -> tuple[str, dict[str, str], list[Mutation]]:
    """Parse and validate a push request body (bytes) into the device, client metadata and mutations.

    Most batches are valid, so they are decoded straight into typed structures by msgspec (compiled
    checks of every field's type and length, no intermediate dicts for the envelope). Anything that path
    does not accept, it does not judge: the body goes through :func:`parse_json_body` and
    :func:`parse_push`, which report every problem with the offending mutation and a stable code. The two
    paths accept the same bodies and build the same mutations; the fast one only gets there sooner.
    """
    try:
        return _parse_push_fast(raw, limits)
    except (msgspec.DecodeError, orjson.JSONEncodeError, _SlowPath):
        return parse_push(parse_json_body(raw, check_depth=False), limits)


def _parse_push_fast(raw: bytes, limits: SyncLimits) -> tuple[str, dict[str, str], list[Mutation]]:
    push = _push_decoder.decode(raw)
    if len(push.mutations) > limits.max_batch_mutations:
        raise BatchTooLarge(details={"limit": limits.max_batch_mutations, "received": len(push.mutations)})
    # Ids without control characters: str.isprintable() is stricter (it also refuses, say, a no-break
    # space), so what it refuses goes to the thorough check, which applies the exact rule.
    if not push.device_id.isprintable():
        raise _SlowPath
    client = push.client or {}
    meta = {
        "user_agent": str(client.get("user_agent") or "")[:300],
        "app_version": str(client.get("app_version") or "")[:100],
    }
    mutations: list[Mutation] = []
    seen: set[str] = set()
    max_bytes = limits.max_document_bytes
    for index, wire in enumerate(push.mutations):
        data = wire.data
        data_json = None
        if wire.op == "delete":
            if data is not None:
                raise _SlowPath
        else:
            if data is None:
                raise _SlowPath
            # orjson refuses to write an integer beyond 64 bits (JSONEncodeError), which the thorough
            # path (orjson's parser) reads as a float: that body takes the thorough path.
            data_json = orjson.dumps(data)
            # At most MAX_JSON_DEPTH brackets in all (brackets inside strings only count against it): the
            # document cannot nest deeper; no NUL character (PostgreSQL cannot store one); within the size.
            if (
                data_json.count(b"{") + data_json.count(b"[") > MAX_JSON_DEPTH
                or len(data_json) > max_bytes
                or b"\\u0000" in data_json
            ):
                raise _SlowPath
        if wire.mutation_id in seen or not (wire.mutation_id.isprintable() and wire.id.isprintable()):
            raise _SlowPath
        seen.add(wire.mutation_id)
        mutations.append(
            Mutation(
                index,
                wire.mutation_id,
                wire.collection,
                wire.id,
                wire.op,
                wire.base_version,
                data,
                wire.client_ts,
                data_json,
            )
        )
    if not all(COLLECTION_NAME_RE.match(name) for name in {m.collection for m in mutations}):
        raise _SlowPath
    return push.device_id, meta, mutations


# ---------------------------------------------------------------------------- push: the thorough path


def parse_push(body: Any, limits: SyncLimits) -> tuple[str, dict[str, str], list[Mutation]]:
    """Validate a push body: ``{"device_id", "mutations": [...], "client"?: {"user_agent", "app_version"}}``."""
    if not isinstance(body, dict):
        raise InvalidInput("The body must be a JSON object.", code="invalid_body")
    device_id = validate_device_id(body.get("device_id"))
    raw_mutations = body.get("mutations")
    if not isinstance(raw_mutations, list):
        raise InvalidInput("mutations must be a list.", code="invalid_body")
    if len(raw_mutations) > limits.max_batch_mutations:
        raise BatchTooLarge(
            details={"limit": limits.max_batch_mutations, "received": len(raw_mutations)},
        )
    client = body.get("client") or {}
    if not isinstance(client, dict):
        raise InvalidInput("client must be an object.", code="invalid_body")
    meta = {
        "user_agent": str(client.get("user_agent") or "")[:300],
        "app_version": str(client.get("app_version") or "")[:100],
    }
    mutations: list[Mutation] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_mutations):
        try:
            mutation = _mutation(index, raw, limits)
        except MutationError as exc:
            errors.append(mutation_error(index, raw, exc.code, exc.message))
            continue
        if mutation.mutation_id in seen:
            errors.append(
                mutation_error(index, raw, "duplicate_mutation_id", "The same mutation_id appears twice in the batch.")
            )
            continue
        seen.add(mutation.mutation_id)
        mutations.append(mutation)
    if errors:
        raise BatchRejected(details={"errors": errors})
    return device_id, meta, mutations
