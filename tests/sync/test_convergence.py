"""Convergence: devices that go offline, write, and sync in random orders end identical to the server.

A property-based test: hypothesis generates interleavings of offline writes
(put / patch / delete on a small set of documents, so they collide) and syncs
(push pending, adopt results, pull from the checkpoint) for several simulated
devices, under every conflict policy. After everyone stops writing and syncs,
every device holds exactly the server's live documents.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

DOC_IDS = ["a", "b", "c"]
_examples = itertools.count(1)
FIELDS = ["title", "done", "qty"]
DEVICES = 3


@dataclass
class Device:
    name: str
    local: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {data, version, deleted}
    pending: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: str | None = None
    counter: int = 0

    collection: str = "todos"

    def write(self, op: str, doc_id: str, payload: dict[str, Any], clock: int) -> None:
        current = self.local.get(doc_id)
        base = current["version"] if current else None
        self.counter += 1
        mutation: dict[str, Any] = {
            "mutation_id": f"{self.name}-{self.counter}",
            "collection": self.collection,
            "id": doc_id,
            "op": op,
            "client_ts": clock,
        }
        if base is not None:
            mutation["base_version"] = base
        if op == "delete":
            self.local[doc_id] = {"data": current["data"] if current else {}, "version": base or 0, "deleted": True}
        else:
            mutation["data"] = payload
            data = dict(payload) if op == "put" else {**((current or {}).get("data") or {}), **payload}
            self.local[doc_id] = {"data": data, "version": base or 0, "deleted": False}
        self.pending.append(mutation)

    def sync(self, client) -> None:
        if self.pending:
            response = client.post(
                "/api/v1/sync/push", {"device_id": self.name, "mutations": self.pending}, format="json"
            )
            assert response.status_code == 200, response.content
            self.pending = []
            # As docs/sync-protocol.md tells clients: adopt the server state a result carries
            # (merged or conflict), otherwise just the new version.
            for result in response.json()["results"]:
                if "data" in result:
                    self.local[result["id"]] = {
                        "data": result["data"],
                        "version": result["version"],
                        "deleted": result["deleted"],
                    }
                elif result["id"] in self.local:
                    self.local[result["id"]]["version"] = result["version"]
        while True:
            params = {
                "limit": 2,
                "collections": self.collection,
                **({"checkpoint": self.checkpoint} if self.checkpoint else {}),
            }
            body = client.get("/api/v1/sync/pull", params).json()
            for change in body["changes"]:
                self.local[change["id"]] = {
                    "data": change["data"],
                    "version": change["version"],
                    "deleted": change["deleted"],
                }
            self.checkpoint = body["checkpoint"]
            if not body["has_more"]:
                return

    def live(self) -> dict[str, dict[str, Any]]:
        return {doc_id: state["data"] for doc_id, state in self.local.items() if not state["deleted"]}


values = st.one_of(st.integers(0, 3), st.booleans(), st.sampled_from(["x", "y"]))
write_action = st.tuples(
    st.just("write"),
    st.integers(0, DEVICES - 1),
    st.sampled_from(["put", "patch", "delete"]),
    st.sampled_from(DOC_IDS),
    st.dictionaries(st.sampled_from(FIELDS), values, min_size=1, max_size=3),
)
sync_action = st.tuples(st.just("sync"), st.integers(0, DEVICES - 1))
actions = st.lists(st.one_of(write_action, sync_action), min_size=1, max_size=25)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    policy=st.sampled_from(["merge", "server_wins", "client_wins", "last_write_wins", "manual"]),
    steps=actions,
)
def test_devices_converge_to_the_server_state(org, plan_limits, policy: str, steps: list[tuple]) -> None:
    # One organisation for the whole test (with room for every example's devices);
    # each example gets a collection and devices of its own.
    plan_limits(max_devices=100_000)
    collection = f"todos_{next(_examples)}"
    client = org.client()
    client.put(f"/api/v1/collections/{collection}", {"conflict_policy": policy}, format="json")
    devices = [Device(f"{collection}-device-{n}", collection=collection) for n in range(DEVICES)]
    for clock, step in enumerate(steps, start=1):
        if step[0] == "write":
            _, device, op, doc_id, payload = step
            devices[device].write(op, doc_id, payload, clock)
        else:
            devices[step[1]].sync(client)
    for _ in range(2):  # everyone stops writing and syncs; the second round picks up the others' pushes
        for device in devices:
            device.sync(client)

    body = client.get(f"/api/v1/collections/{collection}/documents", {"limit": 1000}).json()
    server = {document["id"]: document["data"] for document in body["documents"]}
    for device in devices:
        assert device.live() == server, f"{device.name} diverged under {policy}"
