"""No missed change: concurrent writers (each its own connection) and looping pullers.

The writers' transactions are deliberately held open for a random while after
their documents get sequence numbers, which is exactly the window in which a
plain ``seq > cursor`` reader skips changes. Every puller must still see every
committed change exactly once, in increasing ``seq`` order.
"""

from __future__ import annotations

import random
import threading
import time

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from sync import checkpoints, store

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

WRITERS = 4
BATCHES_PER_WRITER = 12
DOCS_PER_BATCH = 5
PULLERS = 3


def test_every_committed_change_reaches_every_puller_exactly_once(committed_organisation, monkeypatch) -> None:
    keyed = committed_organisation()
    original_write = store.write_documents

    def slow_write(cursor, states):
        original_write(cursor, states)
        time.sleep(random.uniform(0, 0.02))

    monkeypatch.setattr(store, "write_documents", slow_write)
    writers_done = threading.Event()
    failures: list[str] = []
    seen: list[list[tuple[int, str, int]]] = [[] for _ in range(PULLERS)]

    def writer(number: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {keyed.key}")
        try:
            for batch in range(BATCHES_PER_WRITER):
                mutations = [
                    {
                        "mutation_id": f"w{number}-b{batch}-d{i}",
                        "collection": "items",
                        "id": f"w{number}-b{batch}-d{i}",
                        "op": "put",
                        "data": {"writer": number, "batch": batch},
                    }
                    for i in range(DOCS_PER_BATCH)
                ]
                # Every other batch also updates a document another writer may be touching.
                if batch % 2:
                    mutations.append(
                        {
                            "mutation_id": f"w{number}-b{batch}-shared",
                            "collection": "items",
                            "id": "shared",
                            "op": "patch",
                            "data": {f"w{number}b{batch}": batch},  # disjoint fields: every patch merges
                        }
                    )
                response = client.post(
                    "/api/v1/sync/push", {"device_id": f"writer-{number}", "mutations": mutations}, format="json"
                )
                if response.status_code != 200:
                    failures.append(f"writer {number}: {response.status_code} {response.content[:200]!r}")
        finally:
            connections.close_all()

    def puller(number: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {keyed.key}")
        checkpoint = None
        try:
            draining = False
            while True:
                params = {"limit": 7}
                if checkpoint:
                    params["checkpoint"] = checkpoint
                response = client.get("/api/v1/sync/pull", params)
                if response.status_code != 200:
                    failures.append(f"puller {number}: {response.status_code}")
                    return
                body = response.json()
                previous = checkpoints.decode(checkpoint).seq
                for change in body["changes"]:
                    seen[number].append((previous, change["id"], change["version"]))
                checkpoint = body["checkpoint"]
                if not body["has_more"]:
                    if draining:
                        return
                    if writers_done.is_set():
                        draining = True  # one more full pass after the last commit
                    time.sleep(random.uniform(0, 0.005))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    pullers = [threading.Thread(target=puller, args=(n,)) for n in range(PULLERS)]
    for thread in pullers + threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    writers_done.set()
    for thread in pullers:
        thread.join(timeout=120)
    connection.set_schema_to_public()
    assert not failures, failures

    expected_new = {
        f"w{w}-b{b}-d{i}" for w in range(WRITERS) for b in range(BATCHES_PER_WRITER) for i in range(DOCS_PER_BATCH)
    }
    shared_updates = WRITERS * (BATCHES_PER_WRITER // 2)
    for number, changes in enumerate(seen):
        ids = [doc_id for _, doc_id, _ in changes if doc_id != "shared"]
        assert len(ids) == len(set(ids)), f"puller {number} saw a change twice"
        assert set(ids) == expected_new, f"puller {number} missed {len(expected_new - set(ids))} changes"
        shared_versions = [version for _, doc_id, version in changes if doc_id == "shared"]
        assert shared_versions == sorted(shared_versions), "versions of one document arrive in order"
        assert shared_versions[-1] == shared_updates, "the final state of the shared document arrives"
