"""How long creating an organisation takes, with 0 and with hundreds of organisations present.

Measured per step, against two references in the same run:

* ``raw floor``: the same DDL and rows sent straight through psycopg (no
  Django), in one transaction — what PostgreSQL itself needs;
* ``django-tenants default``: ``CREATE SCHEMA`` + ``migrate_schemas`` for the
  new schema, which is what django-tenants does without a template.

Usage: ``python bench/provisioning.py [--existing 0,300,600] [--samples 20]``
"""

from __future__ import annotations

import argparse
import statistics
import time

from _setup import percentile, psycopg_url, setup_django, teardown_django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--existing", default="0,300,600", help="organisation counts to measure at")
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    levels = [int(x) for x in args.existing.split(",")]

    setup_django()
    import psycopg
    from django.core.management import call_command
    from django.db import connection

    from shared_apps.audit.services import Actor
    from tenants import provisioning
    from tenants.services import organisation_create_and_provision

    actor = Actor.system("bench")
    provisioning.schema_script()  # capture once, as the first provisioning after a release does
    script = provisioning.schema_script()
    counter = iter(range(1_000_000))

    def provision_one() -> float:
        n = next(counter)
        started = time.perf_counter()
        organisation_create_and_provision(actor=actor, name=f"Bench {n}", slug=f"bench-{n}")
        return time.perf_counter() - started

    def raw_one(conn: psycopg.Connection) -> float:
        n = next(counter)
        schema = f"raw_{n}"
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(f'CREATE SCHEMA "{schema}"')
            cur.execute(f'SET LOCAL search_path TO "{schema}"')
            for sql, rows in provisioning._grouped(script, provisioning.timezone.now()):
                if rows is None:
                    cur.execute(sql)
                else:
                    cur.executemany(sql, rows)
        return time.perf_counter() - started

    def django_tenants_default_one() -> float:
        n = next(counter)
        schema = f"dt_{n}"
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{schema}"')
        call_command("migrate_schemas", schema_name=schema, interactive=False, verbosity=0)
        connection.set_schema_to_public()
        return time.perf_counter() - started

    results = []
    existing = 0
    with psycopg.connect(psycopg_url(), autocommit=True) as raw:
        for level in levels:
            if level > existing:
                print(f"[fill] creating {level - existing} organisations…", flush=True)
                for i in range(level - existing):
                    provision_one()
                    if (i + 1) % 100 == 0:
                        print(f"[fill]   {existing + i + 1}/{level}", flush=True)
                existing = level
            ours = [provision_one() for _ in range(args.samples)]
            existing += args.samples
            floor = [raw_one(raw) for _ in range(args.samples)]
            default = [django_tenants_default_one() for _ in range(3)]
            row = {
                "existing": level,
                "ours_median_ms": statistics.median(ours) * 1000,
                "ours_p95_ms": percentile(ours, 95) * 1000,
                "raw_median_ms": statistics.median(floor) * 1000,
                "default_median_ms": statistics.median(default) * 1000,
            }
            row["ratio"] = row["ours_median_ms"] / row["raw_median_ms"]
            results.append(row)
            print(
                f"[measure] {level:>5} organisations present: organisation_provision median "
                f"{row['ours_median_ms']:.1f} ms (p95 {row['ours_p95_ms']:.1f}), raw DDL floor "
                f"{row['raw_median_ms']:.1f} ms ({row['ratio']:.2f}x floor), django-tenants default "
                f"{row['default_median_ms']:.0f} ms",
                flush=True,
            )

    print("\n| organisations present | provision (median) | p95 | raw DDL floor | ratio | django-tenants default |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r['existing']} | {r['ours_median_ms']:.1f} ms | {r['ours_p95_ms']:.1f} ms | "
            f"{r['raw_median_ms']:.1f} ms | {r['ratio']:.2f}x | {r['default_median_ms']:.0f} ms |"
        )
    teardown_django()


if __name__ == "__main__":
    main()
