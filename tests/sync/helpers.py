"""Small helpers for sync tests: push/pull over HTTP the way a client does."""

from __future__ import annotations

import itertools
from typing import Any

from rest_framework.test import APIClient

_ids = itertools.count(1)


def mutation(
    doc_id: str,
    op: str = "put",
    data: dict[str, Any] | None = None,
    *,
    collection: str = "todos",
    base_version: int | None = None,
    client_ts: int | None = None,
    mutation_id: str | None = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "mutation_id": mutation_id or f"m{next(_ids)}",
        "collection": collection,
        "id": doc_id,
        "op": op,
    }
    if data is not None:
        item["data"] = data
    if base_version is not None:
        item["base_version"] = base_version
    if client_ts is not None:
        item["client_ts"] = client_ts
    return item


def push(client: APIClient, mutations: list[dict[str, Any]], device_id: str = "device-1"):
    return client.post("/api/v1/sync/push", {"device_id": device_id, "mutations": mutations}, format="json")


def push_ok(client: APIClient, mutations: list[dict[str, Any]], device_id: str = "device-1") -> list[dict[str, Any]]:
    response = push(client, mutations, device_id)
    assert response.status_code == 200, response.content
    return response.json()["results"]


def pull(client: APIClient, checkpoint: str | None = None, limit: int | None = None, **params: str):
    query: dict[str, Any] = dict(params)
    if checkpoint is not None:
        query["checkpoint"] = checkpoint
    if limit is not None:
        query["limit"] = limit
    return client.get("/api/v1/sync/pull", query)


def pull_all(client: APIClient, checkpoint: str | None = None, limit: int = 1000) -> tuple[list[dict], str | None]:
    changes: list[dict] = []
    while True:
        response = pull(client, checkpoint, limit)
        assert response.status_code == 200, response.content
        body = response.json()
        changes.extend(body["changes"])
        checkpoint = body["checkpoint"]
        if not body["has_more"]:
            return changes, checkpoint
