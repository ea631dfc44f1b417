"""Push validation: the fast (msgspec) path and the thorough path accept the same bodies and build the
same mutations; whatever the fast path refuses, the thorough path judges with per-mutation errors."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared_apps.core.errors import InvalidInput
from sync.errors import BatchRejected, BatchTooLarge
from sync.limits import SyncLimits
from sync.validation import parse_json_body, parse_push, parse_push_body, validate_collection_name

LIMITS = SyncLimits(max_batch_mutations=6, max_document_bytes=120, max_documents=10**6, max_devices=10**3, plan="test")

_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=8
) | st.sampled_from(["todos", "a\n", "x" * 129, "", "Ok_1", "1bad", "tab\there"])
# Mostly well-formed values (so most batches reach the fast path's end), sometimes anything.
_good = st.sampled_from(["todos", "notes", "a", "x" * 128, "Ok_1", "m-1", "é✓"])
_field = st.one_of(_good, _good, _good, _text)
_json_leaf = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | _text
_json = st.recursive(
    _json_leaf,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_text, children, max_size=3),
    max_leaves=12,
)


def _deep(levels: int) -> Any:
    value: Any = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"n": value}
    return value


_data = _json | st.dictionaries(_text, _json, max_size=4) | st.sampled_from([_deep(32), _deep(33), [1], "x"])
_mutation = st.fixed_dictionaries(
    {
        "mutation_id": st.one_of(*[st.integers(0, 10**9).map(str)] * 3, _text),
        "collection": _field,
        "id": _field,
        "op": st.sampled_from(["put", "patch", "delete", "put", "patch", "upsert", 3]),
    },
    optional={
        "base_version": st.none() | st.integers(0, 9) | st.integers(-2, 2**65) | st.booleans() | st.just(1.0),
        "client_ts": st.none() | st.integers(0, 10**13) | st.integers(-2, 10) | st.just("1"),
        "data": st.one_of(st.dictionaries(_good, _json, max_size=4), st.dictionaries(_good, _json, max_size=4), _data),
        "extra": st.just(1),
    },
)
_valid_mutation = st.fixed_dictionaries(
    {
        "mutation_id": st.uuids().map(str),
        "collection": st.sampled_from(["todos", "notes", "Ok_1"]),
        "id": _good,
        "op": st.sampled_from(["put", "patch"]),
        "data": st.dictionaries(_text, _json, max_size=4),
    },
    optional={"base_version": st.none() | st.integers(0, 9), "client_ts": st.integers(0, 10**13)},
) | st.fixed_dictionaries(
    {"mutation_id": st.uuids().map(str), "collection": st.just("todos"), "id": _good, "op": st.just("delete")},
    optional={"data": st.none()},
)
_valid_body = st.fixed_dictionaries(
    {"device_id": _good, "mutations": st.lists(_valid_mutation, max_size=7)},
    optional={"client": st.just({"user_agent": "app/1"})},
)
_body = (
    _valid_body
    | st.fixed_dictionaries(
        {"device_id": _field, "mutations": st.lists(_mutation, max_size=7) | st.just("nope")},
        optional={"client": st.none() | st.just({"user_agent": "app", "app_version": 3}) | st.just([1])},
    )
    | _json
)


def _outcome(parse: Any) -> Any:
    try:
        device_id, meta, mutations = parse()
    except (BatchRejected, BatchTooLarge, InvalidInput) as exc:
        return ("error", exc.code, orjson.dumps(getattr(exc, "details", None), option=orjson.OPT_SORT_KEYS))
    return (
        "ok",
        device_id,
        meta,
        [
            (m.index, m.mutation_id, m.collection, m.doc_id, m.op, m.base_version, m.data, m.client_ts, m.data_json)
            for m in mutations
        ],
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_body)
def test_the_fast_path_and_the_thorough_path_agree_on_every_body(body: Any) -> None:
    raw = json.dumps(body).encode()  # the standard library writes integers beyond 64 bits too
    thorough = _outcome(lambda: parse_push(parse_json_body(raw, check_depth=False), LIMITS))
    assert _outcome(lambda: parse_push_body(raw, LIMITS)) == thorough


def test_a_valid_batch_is_parsed_into_mutations_with_their_serialised_documents() -> None:
    raw = orjson.dumps(
        {
            "device_id": "phone",
            "client": {"user_agent": "app/1", "app_version": "1.2"},
            "mutations": [
                {"mutation_id": "m1", "collection": "todos", "id": "a", "op": "put", "data": {"title": "milk"}},
                {"mutation_id": "m2", "collection": "todos", "id": "a", "op": "delete", "base_version": 1},
            ],
        }
    )
    device_id, meta, mutations = parse_push_body(raw, LIMITS)
    assert (device_id, meta) == ("phone", {"user_agent": "app/1", "app_version": "1.2"})
    assert [(m.op, m.data, m.data_json) for m in mutations] == [
        ("put", {"title": "milk"}, b'{"title":"milk"}'),
        ("delete", None, None),
    ]


def test_an_invalid_batch_still_names_every_offending_mutation() -> None:
    raw = orjson.dumps(
        {
            "device_id": "phone",
            "mutations": [
                {"mutation_id": "m1", "collection": "todos", "id": "a", "op": "put", "data": {}},
                {"mutation_id": "m2", "collection": "todos", "id": "b\n", "op": "put", "data": {}},
                {"mutation_id": "m3", "collection": "todos", "id": "c", "op": "fly"},
            ],
        }
    )
    with pytest.raises(BatchRejected) as caught:
        parse_push_body(raw, LIMITS)
    assert [(e["index"], e["code"]) for e in caught.value.details["errors"]] == [
        (1, "invalid_document_id"),
        (2, "invalid_operation"),
    ]


@pytest.mark.parametrize("name", ["todos\n", "todos\r", "", "9lives", "a" * 65])
def test_collection_names_with_a_trailing_newline_or_bad_shape_are_refused(name: str) -> None:
    with pytest.raises(Exception, match="collection name"):
        validate_collection_name(name)
