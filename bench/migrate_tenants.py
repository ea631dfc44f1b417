"""How long migrating every tenant schema takes: ``migrate_tenants`` against django-tenants and the raw floor.

With ``--organisations`` organisations (default 1,000) in a database of its
own, this measures:

* a no-op ``migrate_tenants`` (every schema already up to date), as an
  operator runs it: a fresh ``manage.py`` process, Django start-up included;
* for reference, django-tenants' ``migrate_schemas`` no-op on a sample of
  ``--sample`` schemas (one ``migrate_schemas --schema`` call each, in one
  process), extrapolated to all organisations;
* a real one-column migration (``AddField`` on ``syncstore.Document``) over
  every schema with ``migrate_tenants`` (default ``--parallel``, then
  ``--parallel 1``), django-tenants' ``migrate_schemas`` on a sample, and the
  raw floor: the same ``ALTER TABLE … ADD COLUMN`` + ``INSERT INTO
  django_migrations`` sent with psycopg to every schema over one connection,
  one transaction per schema.

The extra migrations never touch the source tree: the benchmark copies
``tenant_apps/syncstore/migrations`` into a temporary directory, adds its
migrations there and points ``MIGRATION_MODULES`` at the copy through a
temporary settings module (removed at the end, as is the database).

Usage: ``python bench/migrate_tenants.py [--organisations 1000] [--sample 50]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import _setup
from _setup import ROOT, psycopg_url, setup_django, teardown_django

# Its own database, so it can run while another benchmark uses outpost_bench.
_setup.BENCH_DB = "outpost_bench_migrate_tenants"

SETTINGS_NAME = "outpost_bench_migrate_settings"
MIGRATIONS_PACKAGE = "outpost_bench_syncstore_migrations"


def run_manage(*args: str, settings: str | None = None, extra_path: str | None = None) -> tuple[float, str]:
    """Run ``manage.py`` in a fresh process; return the wall time and stdout."""
    env = dict(os.environ)
    if settings:
        env["DJANGO_SETTINGS_MODULE"] = settings
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [extra_path, env.get("PYTHONPATH")]))
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{completed.stderr[-3000:]}")
    return elapsed, completed.stdout


def migrate_schemas_sample(schemas: list[str], *, settings: str | None = None, extra_path: str | None = None) -> float:
    """Median seconds per schema of ``migrate_schemas --schema`` (one call per schema, one process)."""
    script = textwrap.dedent(
        f"""
        import json, sys, time
        import django
        django.setup()
        from django.core.management import call_command
        from django.db import connection
        times = []
        for schema in {schemas!r}:
            started = time.perf_counter()
            call_command("migrate_schemas", schema_name=schema, interactive=False, verbosity=0)
            connection.set_schema_to_public()
            times.append(time.perf_counter() - started)
        print(json.dumps(times))
        """
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), extra_path, env.get("PYTHONPATH")]))
    if settings:
        env["DJANGO_SETTINGS_MODULE"] = settings
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"migrate_schemas sample failed:\n{completed.stderr[-3000:]}")
    times = json.loads(completed.stdout.strip().splitlines()[-1])
    return statistics.median(times)


def write_extra_migration(package: Path, number: int, depends_on: str, column: str) -> str:
    name = f"{number}_bench_{column}"
    (package / f"{name}.py").write_text(
        textwrap.dedent(
            f"""
            from django.db import migrations, models


            class Migration(migrations.Migration):
                dependencies = [("syncstore", {depends_on!r})]
                operations = [
                    migrations.AddField("document", {column!r}, models.TextField(null=True, blank=True)),
                ]
            """
        )
    )
    return name


def columns_present(conn, column: str) -> int:
    return conn.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'syncstore_document' AND column_name = %s",
        [column],
    ).fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--organisations", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=50, help="schemas migrate_schemas is timed on")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the no-op measurement")
    args = parser.parse_args()

    setup_django()
    import psycopg
    from django.db.migrations.loader import MigrationLoader

    from shared_apps.audit.services import Actor
    from tenants.models import Organisation
    from tenants.provisioning import schema_script
    from tenants.services import organisation_create_and_provision

    temp = Path(tempfile.mkdtemp(prefix="outpost-bench-migrate-"))
    rows: list[dict[str, str]] = []
    try:
        actor = Actor.system("bench")
        schema_script()
        started = time.perf_counter()
        print(f"[fill] creating {args.organisations} organisations…", flush=True)
        for n in range(args.organisations):
            organisation_create_and_provision(actor=actor, name=f"Bench {n}", slug=f"bench-{n}")
            if (n + 1) % 100 == 0:
                rate = (n + 1) / (time.perf_counter() - started)
                print(f"[fill]   {n + 1}/{args.organisations} ({rate:.0f}/s)", flush=True)
        schemas = list(Organisation.objects.values_list("schema_name", flat=True))
        count = len(schemas)
        sample = schemas[: args.sample]
        factor = count / len(sample)

        # Migration files may change while the organisations are created (a branch being worked on):
        # bring every schema to the files as they are now, so the no-op below is one.
        _, out = run_manage("migrate_tenants", "--json", "--no-progress")
        print(f"[settle] {json.loads(out)['migrated']} schemas needed migrating after the fill", flush=True)

        # (a) no-op
        noop_wall, noop_inner = [], []
        for _ in range(args.repeat):
            wall, out = run_manage("migrate_tenants", "--json", "--no-progress")
            result = json.loads(out)
            assert result["up_to_date"] == count, result
            noop_wall.append(wall)
            noop_inner.append(result["elapsed_seconds"])
        startup, _ = run_manage("check", "--fail-level", "ERROR")
        print(
            f"[a] migrate_tenants no-op over {count}: {statistics.median(noop_wall):.2f}s wall "
            f"(command {statistics.median(noop_inner):.2f}s; `manage.py check` alone {startup:.2f}s)",
            flush=True,
        )
        rows.append(
            {
                "what": f"no-op, {count} schemas up to date",
                "tool": "`migrate_tenants`",
                "time": f"{statistics.median(noop_wall):.1f} s (command itself {statistics.median(noop_inner):.2f} s)",
                "per": f"{statistics.median(noop_inner) / count * 1000:.2f} ms",
            }
        )

        # (b) django-tenants no-op on a sample
        per_schema = migrate_schemas_sample(sample)
        print(
            f"[b] migrate_schemas no-op: {per_schema * 1000:.0f} ms per schema (median of {len(sample)}), "
            f"≈{per_schema * count:.0f}s for {count}",
            flush=True,
        )
        rows.append(
            {
                "what": f"no-op, {count} schemas up to date",
                "tool": f"django-tenants `migrate_schemas` ({len(sample)} timed, x{factor:.0f})",
                "time": f"≈{per_schema * count:.0f} s",
                "per": f"{per_schema * 1000:.0f} ms",
            }
        )

        # (c) a real one-column migration, with migration files outside the source tree
        package = temp / MIGRATIONS_PACKAGE
        shutil.copytree(
            ROOT / "tenant_apps" / "syncstore" / "migrations", package, ignore=shutil.ignore_patterns("__pycache__")
        )
        (temp / f"{SETTINGS_NAME}.py").write_text(
            "from config.settings.dev import *  # noqa: F403\n"
            f"MIGRATION_MODULES = {{'syncstore': {MIGRATIONS_PACKAGE!r}}}\n"
        )
        (leaf,) = [name for app, name in MigrationLoader(None).graph.leaf_nodes() if app == "syncstore"]
        first = write_extra_migration(package, 9000, leaf, "bench_one")
        wall, out = run_manage(
            "migrate_tenants", "--json", "--no-progress", settings=SETTINGS_NAME, extra_path=str(temp)
        )
        result = json.loads(out)
        assert (result["migrated"], result["failed"]) == (count, 0), result
        with psycopg.connect(psycopg_url(), autocommit=True) as conn:
            assert columns_present(conn, "bench_one") == count
        print(f"[c] migrate_tenants AddField over {count}: {wall:.1f}s wall (command {result['elapsed_seconds']:.1f}s)")
        rows.append(
            {
                "what": f"one `AddField`, {count} schemas",
                "tool": f"`migrate_tenants` (--parallel {os.cpu_count()})",
                "time": f"{wall:.1f} s (command itself {result['elapsed_seconds']:.1f} s)",
                "per": f"{result['elapsed_seconds'] / count * 1000:.1f} ms",
            }
        )

        second = write_extra_migration(package, 9001, first, "bench_two")
        wall, out = run_manage(
            "migrate_tenants",
            "--json",
            "--no-progress",
            "--parallel",
            "1",
            settings=SETTINGS_NAME,
            extra_path=str(temp),
        )
        result = json.loads(out)
        assert (result["migrated"], result["failed"]) == (count, 0), result
        print(f"[c] migrate_tenants --parallel 1 AddField over {count}: {wall:.1f}s wall", flush=True)
        rows.append(
            {
                "what": f"one `AddField`, {count} schemas",
                "tool": "`migrate_tenants --parallel 1`",
                "time": f"{wall:.1f} s (command itself {result['elapsed_seconds']:.1f} s)",
                "per": f"{result['elapsed_seconds'] / count * 1000:.1f} ms",
            }
        )

        write_extra_migration(package, 9002, second, "bench_three")
        per_schema = migrate_schemas_sample(sample, settings=SETTINGS_NAME, extra_path=str(temp))
        print(
            f"[c] migrate_schemas AddField: {per_schema * 1000:.0f} ms per schema, ≈{per_schema * count:.0f}s "
            f"for {count}",
            flush=True,
        )
        rows.append(
            {
                "what": f"one `AddField`, {count} schemas",
                "tool": f"django-tenants `migrate_schemas` ({len(sample)} timed, x{factor:.0f})",
                "time": f"≈{per_schema * count:.0f} s",
                "per": f"{per_schema * 1000:.0f} ms",
            }
        )

        # The raw floor: the same DDL and bookkeeping row, one transaction per schema, one connection.
        with psycopg.connect(psycopg_url()) as conn:
            started = time.perf_counter()
            for schema in schemas:
                with conn.transaction():
                    conn.execute(f'ALTER TABLE "{schema}".syncstore_document ADD COLUMN bench_raw text NULL')
                    conn.execute(
                        f'INSERT INTO "{schema}".django_migrations (app, name, applied) VALUES (%s, %s, now())',
                        ["syncstore", "9999_bench_raw"],
                    )
            raw = time.perf_counter() - started
            assert columns_present(conn, "bench_raw") == count
        print(f"[c] raw floor over {count}: {raw:.1f}s", flush=True)
        rows.append(
            {
                "what": f"one `AddField`, {count} schemas",
                "tool": "raw floor (psycopg, one connection)",
                "time": f"{raw:.1f} s",
                "per": f"{raw / count * 1000:.1f} ms",
            }
        )
    finally:
        shutil.rmtree(temp, ignore_errors=True)
        teardown_django()

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n[load] load average at the end (1, 5, 15 min) on {os.cpu_count()} CPUs: {load}")
    print("\n| work | tool | time | per schema |")
    print("| --- | --- | ---: | ---: |")
    for row in rows:
        print(f"| {row['what']} | {row['tool']} | {row['time']} | {row['per']} |")


if __name__ == "__main__":
    main()
