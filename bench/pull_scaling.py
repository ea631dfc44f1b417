"""Pull-page cost versus organisation size: a page of 1,000 changes at 10,000 and at 1,000,000 documents.

Two organisations, one with ``--small`` and one with ``--large`` documents,
are filled straight through SQL (``generate_series`` into each one's document
table, ``seq`` from its own change sequence, ~300-byte todo documents with their
JSON text as a push stores it, then ``VACUUM (ANALYZE)``). The same kind of page is then timed in both through the
real HTTP API (gunicorn, 1 worker, 1 thread):
``GET /api/v1/sync/pull?limit=1000&checkpoint=…`` from random checkpoints
spread over each feed's whole seq range, every one returning a full page of
1,000. The organisations are measured alternately (ABBA order), so drift on a
shared machine affects both alike. The same page read as raw SQL (psycopg,
``data::text`` passed through) is timed at the same checkpoints for reference.

Usage: ``python bench/pull_scaling.py [--small 10000] [--large 1000000] [--pages 50]``
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import _setup
import orjson
import psycopg
from _http import ApiClient, describe_error, gunicorn_server, machine_load, organisation_with_key
from _setup import percentile, psycopg_url, setup_django, teardown_django

# Its own database, so it can run while another benchmark uses outpost_bench.
_setup.BENCH_DB = "outpost_bench_pull"

PAGE = 1000
FILL_CHUNK = 50_000


def fill(conn: psycopg.Connection, schema: str, collection_id: int, start: int, stop: int) -> None:
    """Documents number ``start`` … ``stop - 1`` of a todo list, in chunks (one transaction each), with progress."""
    began = time.perf_counter()
    for low in range(start, stop, FILL_CHUNK):
        high = min(stop, low + FILL_CHUNK) - 1
        conn.execute(
            f"""
            INSERT INTO "{schema}".syncstore_document
                (collection_id, doc_id, data, data_text, data_text_version, version, seq, deleted, field_versions,
                 client_ts, size_bytes, last_device, created_at, updated_at)
            SELECT %s, 'todo-' || lpad(g::text, 8, '0'), x.data, x.data::text, 1, 1,
                   nextval('"{schema}".syncstore_change_seq'),
                   false, '{{}}'::jsonb, 1760000000000 + g, octet_length(x.data::text), '', now(), now()
            FROM generate_series(%s::bigint, %s::bigint) AS g,
            LATERAL (SELECT jsonb_build_object(
                'title', 'Task ' || g || ': ' || (array['buy oat milk', 'call the plumber', 'renew passport',
                         'review pull request', 'water plants', 'send invoice'])[1 + g %% 6],
                'notes', 'Remember to check the ' || md5(g::text) || ' before the end of the week',
                'done', g %% 3 = 0,
                'priority', 1 + g %% 5,
                'tags', jsonb_build_array((array['home', 'work', 'errands', 'health'])[1 + g %% 4], 'inbox'),
                'due_at', '2026-' || lpad((1 + g %% 12)::text, 2, '0') || '-' || lpad((1 + g %% 28)::text, 2, '0')
                          || 'T09:00:00Z',
                'list_id', 'list-' || lpad((g %% 40)::text, 4, '0'),
                'assignee', 'user-' || lpad((g %% 200)::text, 4, '0'),
                'position', g
            ) AS data) AS x
            """,
            [collection_id, low, high],
        )
        elapsed = time.perf_counter() - began
        print(
            f"[fill]   {high:,}/{stop - 1:,} documents ({(high + 1 - start) / elapsed:,.0f} rows/s, {elapsed:.0f}s)",
            flush=True,
        )
    conn.execute(
        f'UPDATE "{schema}".syncstore_collection SET document_count = %s WHERE id = %s', [stop - 1, collection_id]
    )
    started = time.perf_counter()
    conn.execute(f'VACUUM (ANALYZE) "{schema}".syncstore_document')
    print(f"[fill]   VACUUM (ANALYZE) in {time.perf_counter() - started:.1f}s", flush=True)


@dataclass
class Tenant:
    documents: int
    schema: str
    client: ApiClient
    positions: list[int]
    http: list[float]
    raw: list[float]


def http_page(tenant: Tenant, seq: int) -> float:
    from sync import checkpoints

    started = time.perf_counter()
    response = tenant.client.get("/api/v1/sync/pull", {"limit": PAGE, "checkpoint": checkpoints.encode(seq)})
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"pull failed: {describe_error(response)}")
    changes = orjson.loads(response.content)["changes"]
    if len(changes) != PAGE:
        raise RuntimeError(f"page after {seq} had {len(changes)} changes")
    return seconds


def raw_page(conn: psycopg.Connection, tenant: Tenant, seq: int) -> float:
    started = time.perf_counter()
    rows = conn.execute(
        f'SELECT seq, collection_id, doc_id, version, deleted, data::text FROM "{tenant.schema}".syncstore_document '
        f"WHERE seq > %s ORDER BY seq LIMIT {PAGE}",
        [seq],
    ).fetchall()
    seconds = time.perf_counter() - started
    if len(rows) != PAGE:
        raise RuntimeError(f"raw page after {seq} had {len(rows)} rows")
    return seconds


def measure(conn: psycopg.Connection, tenants: list[Tenant], pages: int) -> None:
    """Pages of both organisations alternately (ABBA order), so drift on a shared machine hits both alike."""
    for tenant in tenants:  # warm-up: connections, prepared statements, code paths
        for seq in tenant.positions[:5]:
            http_page(tenant, seq)
            raw_page(conn, tenant, seq)
    for number in range(pages):
        for tenant in tenants if number % 2 == 0 else tenants[::-1]:
            seq = tenant.positions[number]
            tenant.http.append(http_page(tenant, seq))
            tenant.raw.append(raw_page(conn, tenant, seq))
        if (number + 1) % 25 == 0 or number + 1 == pages:
            print(
                f"[measure] {number + 1}/{pages} pages each: "
                + ", ".join(
                    f"{t.documents:,} documents HTTP median {statistics.median(t.http) * 1000:.1f} ms "
                    f"(raw {statistics.median(t.raw) * 1000:.1f} ms)"
                    for t in tenants
                ),
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=10_000, help="documents in the small organisation")
    parser.add_argument("--large", type=int, default=1_000_000, help="documents in the large organisation")
    parser.add_argument("--pages", type=int, default=50, help="pages timed per organisation")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    if not PAGE * 2 <= args.small < args.large:
        parser.error(f"need {PAGE * 2} <= --small < --large")

    print(f"[setup] {machine_load()}", flush=True)
    setup_django()
    try:
        run(args)
    finally:
        teardown_django()
        print(f"[done] {machine_load()}", flush=True)


def run(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    tenants: list[Tenant] = []
    with psycopg.connect(psycopg_url(), autocommit=True) as conn, gunicorn_server() as server:
        try:
            for label, size in (("small", args.small), ("large", args.large)):
                organisation, key = organisation_with_key(f"bench-pull-{label}")
                schema = organisation.schema_name
                (collection_id,) = conn.execute(
                    f"""
                    INSERT INTO "{schema}".syncstore_collection
                        (name, conflict_policy, json_schema, document_count, created_at, updated_at)
                    VALUES ('todos', 'merge', NULL, 0, now(), now()) RETURNING id
                    """
                ).fetchone()
                print(f"[fill] organisation {organisation.slug} (schema {schema}): {size:,} documents", flush=True)
                fill(conn, schema, collection_id, 1, size + 1)
                (table_bytes,) = conn.execute(
                    f"SELECT pg_total_relation_size('\"{schema}\".syncstore_document')"
                ).fetchone()
                print(f"[fill]   document table with indexes: {table_bytes / 2**20:,.0f} MB", flush=True)
                low, high = conn.execute(f'SELECT min(seq), max(seq) FROM "{schema}".syncstore_document').fetchone()
                # Checkpoints anywhere in the feed that still leave a full page after them.
                positions = [rng.randint(low - 1, high - PAGE) for _ in range(args.pages + 5)]
                tenants.append(Tenant(size, schema, ApiClient(server.base_url, key), positions, [], []))
            measure(conn, tenants, args.pages)
        finally:
            for tenant in tenants:
                tenant.client.close()

    small, large = tenants
    print(
        f"\n| documents in the organisation | HTTP page of {PAGE} (median) | HTTP p95 | raw SQL page (median) "
        "| raw p95 |\n| ---: | ---: | ---: | ---: | ---: |"
    )
    for t in tenants:
        print(
            f"| {t.documents:,} | {statistics.median(t.http) * 1000:.1f} ms | {percentile(t.http, 95) * 1000:.1f} ms | "
            f"{statistics.median(t.raw) * 1000:.1f} ms | {percentile(t.raw, 95) * 1000:.1f} ms |"
        )

    def ratio(values: Callable[[Tenant], list[float]], stat: Callable[[list[float]], float]) -> str:
        return f"{stat(values(large)) / stat(values(small)):.2f}x"

    def p95(values: list[float]) -> float:
        return percentile(values, 95)

    print(
        f"| ratio {large.documents:,} / {small.documents:,} | {ratio(lambda t: t.http, statistics.median)} "
        f"(target <= 1.2x) | {ratio(lambda t: t.http, p95)} | {ratio(lambda t: t.raw, statistics.median)} | "
        f"{ratio(lambda t: t.raw, p95)} |"
    )


if __name__ == "__main__":
    main()
