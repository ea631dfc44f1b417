# ruff: noqa: N999  (gunicorn looks for this conventional file name)
"""Gunicorn settings for the Outpost web process.

Every value comes from the environment so that the same image runs on a
laptop, in a container and under the Helm chart without a rebuild. The
container starts ``gunicorn -c config/gunicorn.conf.py config.wsgi:application``.

Environment variables read here (all optional):

``PORT``                        port to bind on all interfaces (default 8000)
``WEB_CONCURRENCY``             number of worker processes
``GUNICORN_THREADS``            threads per worker (default 1: sync workers)
``GUNICORN_TIMEOUT``            seconds before a silent worker is killed
``GUNICORN_GRACEFUL_TIMEOUT``   seconds workers get to finish on shutdown
``GUNICORN_KEEPALIVE``          seconds to hold an idle keep-alive connection
``GUNICORN_MAX_REQUESTS``       recycle a worker after this many requests
``GUNICORN_MAX_REQUESTS_JITTER`` random spread added to the above
``GUNICORN_ACCESS_LOG``         ``1``/``true`` to write gunicorn's access log
``GUNICORN_CONTROL_SOCKET``     path of the ``gunicornc`` control socket
``FORWARDED_ALLOW_IPS``         proxies trusted for ``X-Forwarded-Proto``
``LOG_LEVEL`` / ``LOG_FORMAT``  shared with the application's own logging
"""

from __future__ import annotations

import json
import logging
import os
import time


def _env_int(name: str, default: int, *, minimum: int = 0) -> int:
    """Read a non-negative integer, failing loudly on nonsense.

    A typo in a deployment value should stop the process at start rather than
    silently fall back to a default nobody chose.
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise RuntimeError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise RuntimeError(f"{name} must be >= {minimum}, got {value}")
    return value


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    return raw in {"1", "true", "yes", "on"}


def _available_cpus() -> int:
    """CPUs this process may really use.

    ``os.cpu_count()`` reports the node's cores, not the container's share: a
    pod limited to one CPU on a 64-core node would otherwise start 129 workers
    and run out of memory. Honour CPU affinity and a cgroup v2 CPU quota.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as fh:
            quota, period = fh.read().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


# Binding ---------------------------------------------------------------------
# All interfaces: inside a pod the kubelet probes and the Service reach the
# container on its pod IP, never on loopback.
bind = [f"0.0.0.0:{_env_int('PORT', 8000, minimum=1)}"]

# Workers ---------------------------------------------------------------------
# The classic 2 x cores + 1, capped: each worker holds its own database
# connection (and its own copy of the app), so an uncapped count on a large
# node exhausts PostgreSQL's connection limit long before the CPUs are busy.
# Under Kubernetes set WEB_CONCURRENCY explicitly (the chart does) and size it
# together with CONN_MAX_AGE and the database's max_connections.
MAX_DEFAULT_WORKERS = 8
workers = _env_int("WEB_CONCURRENCY", min(2 * _available_cpus() + 1, MAX_DEFAULT_WORKERS), minimum=1)
# One thread per worker keeps the plain sync worker; more than one switches
# gunicorn to its threaded worker.
threads = _env_int("GUNICORN_THREADS", 1, minimum=1)

# Workers heartbeat by touching a file; the default location is the image's
# filesystem, which is read-only in production, and disk-backed filesystems can
# stall the heartbeat long enough to get healthy workers killed. /dev/shm is a
# tmpfs in every container runtime.
worker_tmp_dir = "/dev/shm"  # noqa: S108  (a per-container tmpfs, not a shared /tmp)

# Timeouts --------------------------------------------------------------------
# A request that needs longer than this belongs in a Celery task.
timeout = _env_int("GUNICORN_TIMEOUT", 30, minimum=1)
# On SIGTERM workers stop accepting and get this long to finish in-flight
# requests. Keep it below the pod's terminationGracePeriodSeconds minus the
# preStop delay, or the kubelet's SIGKILL cuts requests off anyway.
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 25, minimum=1)
# Sync workers close the connection after each response; with
# GUNICORN_THREADS > 1 a short keep-alive saves handshakes between the ingress
# proxy and gunicorn without tying threads up for long.
keepalive = _env_int("GUNICORN_KEEPALIVE", 5, minimum=0)

# Recycling -------------------------------------------------------------------
# Restart each worker after a number of requests so slow leaks (caches that
# grow, fragmentation) cannot take a pod down; the jitter spreads the restarts
# so all workers of a pod never recycle at the same moment.
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = _env_int("GUNICORN_MAX_REQUESTS_JITTER", 200)

# Proxies ---------------------------------------------------------------------
# Which peers may set X-Forwarded-Proto and friends. Gunicorn's default trusts
# loopback only; behind a Kubernetes ingress the peer is an ingress pod whose
# IP is not known in advance, so the chart passes the value it is configured
# with (typically "*" when only the ingress can reach the pods).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Control socket (gunicornc) --------------------------------------------------
# Its default lives under $HOME, which is read-only in the container; /tmp is
# a writable emptyDir there and a normal directory everywhere else.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "/tmp/gunicorn.ctl")  # noqa: S108  (mode 0600)

# Logging ---------------------------------------------------------------------
# The application writes one JSON line per request itself (with tenant and
# request id), so gunicorn's own access log would only duplicate it. Turn it
# on with GUNICORN_ACCESS_LOG=1 when debugging the proxy path.
accesslog = "-" if _env_bool("GUNICORN_ACCESS_LOG", False) else None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Let the arbiter's and workers' stdout/stderr reach the container log.
capture_output = False


class JsonFormatter(logging.Formatter):
    """One JSON object per line, matching the application's log format.

    Log collectors then parse gunicorn's start-up, worker-timeout and shutdown
    messages the same way as the application's, instead of as free text.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


if os.environ.get("LOG_FORMAT", "").lower() == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            # dictConfig accepts a callable factory, so the formatter needs no
            # importable module of its own.
            "json": {"()": JsonFormatter},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            },
            "null": {"class": "logging.NullHandler"},
            "error_console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "gunicorn.error": {
                "level": loglevel.upper(),
                "handlers": ["error_console"],
                "propagate": False,
            },
            # With a logging config gunicorn emits access records whatever
            # ``accesslog`` says, so silence the logger unless it was asked for.
            "gunicorn.access": {
                "level": "INFO" if accesslog else "CRITICAL",
                "handlers": ["console"] if accesslog else ["null"],
                "propagate": False,
            },
        },
    }


# Prometheus ------------------------------------------------------------------
# With several worker processes each keeps its own counters; in multiprocess
# mode they write them to files under PROMETHEUS_MULTIPROC_DIR and /metrics
# aggregates all of them. The directory must start empty (stale files from a
# previous run would be added in), and a dead worker's live gauges are dropped.
def on_starting(server: object) -> None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.endswith(".db"):
                os.remove(os.path.join(directory, name))


def child_exit(server: object, worker: object) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]
