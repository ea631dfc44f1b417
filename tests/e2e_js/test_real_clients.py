"""The real ``rxdb`` and ``@nozbe/watermelondb`` npm packages, in Node, sync with a live Outpost server.

Each Node script (``rxdb_client.mjs``, ``watermelon_client.mjs``) runs a whole scenario against
pytest-django's live server with a committed organisation's API key: local writes pushed, a
server-side write pulled, deletes both ways, a conflict resolved the library's way, and both sides
agreeing at the end. The script prints a JSON summary; the test checks it and the stored documents.
The packages (exact versions in ``package.json``) are installed by ``npm ci --prefix tests/e2e_js``,
which ``.ci/run`` does before the tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tenant_apps.syncstore.models import Conflict, Device, Document
from tenants.context import tenant_context
from tests.conftest import KeyedOrganisation

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

HERE = Path(__file__).resolve().parent
NODE = shutil.which("node")


@pytest.fixture
def outpost(live_server, settings, committed_organisation) -> tuple[str, KeyedOrganisation]:
    if NODE is None:
        pytest.skip("node is not installed (Node.js 20+ runs the real client libraries)")
    if not (HERE / "node_modules").is_dir():
        pytest.skip("tests/e2e_js/node_modules is missing: run `npm ci --prefix tests/e2e_js`")
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost", "127.0.0.1"]
    keyed = committed_organisation()
    connection.set_schema_to_public()
    return live_server.url, keyed


def run_client(script: str, url: str, key: str) -> dict[str, Any]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(HERE)),
        "OUTPOST_URL": url,
        "OUTPOST_KEY": key,
    }
    result = subprocess.run(
        [NODE, str(HERE / script)], cwd=HERE, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    lines = result.stdout.strip().splitlines()
    try:
        summary = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        summary = {"error": f"no JSON summary on stdout: {result.stdout[-2000:]!r}"}
    assert result.returncode == 0, (
        f"{script} failed (exit {result.returncode}) at step {summary.get('step')!r}:\n"
        f"{summary.get('error')}\nstatus={summary.get('status')} body={summary.get('body')}\n"
        f"--- stderr ---\n{result.stderr[-6000:]}"
    )
    assert summary["ok"] is True
    return summary


def stored(keyed: KeyedOrganisation, collection: str = "todos") -> dict[str, tuple[int, bool, dict]]:
    with tenant_context(keyed.organisation):
        return {
            d.doc_id: (d.version, d.deleted, d.data)
            for d in Document.objects.filter(collection__name=collection).order_by("doc_id")
        }


def devices(keyed: KeyedOrganisation) -> set[str]:
    with tenant_context(keyed.organisation):
        return set(Device.objects.values_list("device_id", flat=True))


def open_conflicts(keyed: KeyedOrganisation) -> int:
    with tenant_context(keyed.organisation):
        return Conflict.objects.count()


def test_rxdb_replicates_with_outpost(outpost) -> None:
    url, keyed = outpost
    summary = run_client("rxdb_client.mjs", url, keyed.key)

    assert summary["steps"][-1] == "a new device replicates from scratch"
    expected_live = {"t1": {"title": "Milk", "done": False}, "t2": {"title": "Eggs (server)", "done": True}}
    assert summary["local"] == expected_live
    assert summary["device_b"] == expected_live
    replication = summary["replication"]
    assert replication["conflict_rows"] >= 1
    assert replication["resolved_conflicts"] >= 1
    assert replication["pulls"] > replication["initial"]["pulls"]  # reSync() pulled again
    assert replication["device_b_pulls"] >= 3  # batchSize 2: the checkpoint pages through

    assert stored(keyed) == {
        "n1": (2, True, {"title": "From native", "done": False}),
        "t1": (1, False, {"title": "Milk", "done": False}),
        "t2": (2, False, {"title": "Eggs (server)", "done": True}),
        "t3": (2, True, {"title": "Bread", "done": True}),
    }
    assert open_conflicts(keyed) == 0  # RxDB resolves its conflicts on the client
    assert {"e2e-rxdb-a", "e2e-rxdb-b", "e2e-native"} <= devices(keyed)


def test_watermelondb_synchronizes_with_outpost(outpost) -> None:
    url, keyed = outpost
    summary = run_client("watermelon_client.mjs", url, keyed.key)

    assert summary["steps"][-1] == "a new device syncs from scratch without sendCreatedAsUpdated"
    expected_live = {"w1": {"title": "Milk", "done": False}, "w2": {"title": "Eggs (client)", "done": True}}
    assert summary["local"] == expected_live
    assert summary["device_b"] == expected_live
    conflict = summary["conflict"]
    assert conflict["status"] == 409
    assert conflict["body"]["error"]["code"] == "conflict"
    assert conflict["body"]["error"]["details"]["conflicts"] == [{"table": "todos", "id": "w2"}]
    assert [sync["ok"] for sync in summary["syncs"]] == [True, True, True, True, False, True, True]
    assert summary["syncs"][5]["resolved_conflicts"] == 1  # the pull merged the server's w2 into the local one
    assert summary["final_timestamp"] == summary["device_b_timestamp"]

    assert stored(keyed) == {
        "n1": (2, True, {"title": "From native", "done": False}),
        "w1": (1, False, {"title": "Milk", "done": False}),
        "w2": (3, False, {"title": "Eggs (client)", "done": True}),
        "w3": (2, True, {"title": "Bread", "done": True}),
    }
    assert open_conflicts(keyed) == 0  # Watermelon resolves its conflicts on the client
    assert {"e2e-watermelon-a", "e2e-watermelon-b", "e2e-native"} <= devices(keyed)


def test_watermelondb_logs_no_sync_diagnostics_with_the_documented_setup(outpost) -> None:
    """Watermelon recovers from pulls that break its created/updated contract, but logs each one as a
    diagnostic error ("This could be a serious bug"). With the setup docs/compat.md shows, a sync must
    log none: a record new to the client belongs under ``created`` unless the client passes
    ``sendCreatedAsUpdated: true``, and then nothing may come under ``created``."""
    url, keyed = outpost
    summary = run_client("watermelon_client.mjs", url, keyed.key)
    documented = [d for d in summary["diagnostics"] if d["device"] != "e2e-watermelon-c"]
    flagged = [d for d in summary["diagnostics"] if d["device"] == "e2e-watermelon-c"]
    if documented:
        pytest.fail(
            "WatermelonDB logged sync diagnostics with the documented setup:\n"
            + "\n".join(f"  {d['device']}: {d['message']}" for d in documented)
            + "\nand without sendCreatedAsUpdated (device C):\n"
            + "\n".join(f"  {d['device']}: {d['message']}" for d in flagged)
        )
