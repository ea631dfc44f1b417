"""Shared helpers for benchmarks that go through the real HTTP API.

A benchmark calls ``_setup.setup_django`` first (its own database),
then :func:`organisation_with_key` to make a committed organisation and key
in-process, then :func:`gunicorn_server` to serve the app on a free loopback
port from that same database, and talks to it with :class:`ApiClient`.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
from _setup import ROOT

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@contextlib.contextmanager
def gunicorn_server(*, workers: int = 1, threads: int = 1, ready_timeout: float = 30.0) -> Iterator[Server]:
    """Run gunicorn on 127.0.0.1:<free port> against the bench database; stop it on exit.

    The child gets the bench process's ``DATABASE_URL`` and ``REDIS_URL`` (set
    by ``setup_django``), the dev settings with ``DEBUG=false`` and warnings-only
    logging, so the numbers include neither debug bookkeeping nor log output.
    """
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.dev",
            "DEBUG": "false",
            "LOG_LEVEL": "WARNING",
            "ALLOWED_HOSTS": "127.0.0.1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    log_dir = Path(tempfile.mkdtemp(prefix="outpost-bench-"))
    log_path = log_dir / "gunicorn.log"
    command = [
        str(VENV_BIN / "gunicorn"),
        "config.wsgi:application",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--bind",
        f"127.0.0.1:{port}",
        "--timeout",
        "120",
        # No recycling mid-run: a fresh worker would re-warm caches inside a measurement.
        "--max-requests",
        "0",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", process, log_path)
    failed = True  # until the benchmark's block has finished without an exception
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{server.log_tail()}")
            probe = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                # The first request waits for the worker to import the app.
                probe.request("GET", "/healthz")
                status = probe.getresponse().status
            except (OSError, http.client.HTTPException):
                status = None
            finally:
                probe.close()
            if status == 200:
                break
            if status is not None:
                raise RuntimeError(f"/healthz answered {status}:\n{server.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn not ready after {ready_timeout:.0f}s:\n{server.log_tail()}")
            time.sleep(0.1)
        print(f"[server] gunicorn (pid {process.pid}, {workers} worker x {threads} thread) on {server.base_url}")
        yield server
        failed = False
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if failed:
            print(f"[server] gunicorn stopped; its log is kept in {log_path}", flush=True)
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
            print("[server] gunicorn stopped", flush=True)


@dataclass
class Response:
    status_code: int
    content: bytes

    def json(self) -> Any:
        return orjson.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")


class ApiClient:
    """A keep-alive HTTP client (``http.client``) with the organisation's API key.

    ``http.client`` rather than ``requests``: reading a ~380 KB pull page costs
    ``requests`` ~3 ms more here (10% of the page), which would be charged to
    the server. Gunicorn's sync worker closes the connection after each
    response, so with ``--threads 1`` every request reconnects (a loopback
    connect costs well under a millisecond); the connection reopens
    transparently.
    """

    def __init__(self, base_url: str, key: str) -> None:
        parts = urlsplit(base_url)
        self.connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
        self.headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}

    def request(
        self, method: str, path: str, body: bytes | None = None, params: dict[str, Any] | None = None
    ) -> Response:
        if params:
            path = f"{path}?{urlencode(params)}"
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
        except (ConnectionError, http.client.HTTPException):
            # The server closed a kept-alive connection between requests: reconnect once.
            self.connection.close()
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
        content = response.read()
        if response.will_close:
            self.connection.close()
        return Response(response.status, content)

    def get(self, path: str, params: dict[str, Any] | None = None) -> Response:
        return self.request("GET", path, params=params)

    def post_json(self, path: str, body: bytes, params: dict[str, Any] | None = None) -> Response:
        return self.request("POST", path, body=body, params=params)

    def close(self) -> None:
        self.connection.close()


def organisation_with_key(slug: str, *, plan: str = "enterprise") -> tuple[Any, str]:
    """A committed, provisioned organisation and an admin + sync API key for it.

    It is put on ``plan`` (by default the largest), so document quotas and
    request rate limits measure nothing but throughput.
    """
    from billing.services import organisation_change_plan
    from shared_apps.apikeys.services import api_key_create
    from shared_apps.audit.services import Actor
    from tenants.services import organisation_create_and_provision

    actor = Actor.system("bench")
    organisation = organisation_create_and_provision(actor=actor, name=f"Bench {slug}", slug=slug)
    organisation = organisation_change_plan(actor=actor, organisation=organisation, plan_slug=plan, reason="bench")
    _, key = api_key_create(
        actor=actor, organisation=organisation, name="bench", scopes=["sync:read", "sync:write", "admin"]
    )
    return organisation, key


def machine_load() -> str:
    """The 1/5/15-minute load averages: benchmarks on a shared machine should say how busy it was."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} on {os.cpu_count()} CPUs"


def describe_error(response: Response) -> str:
    try:
        error = response.json().get("error", {})
        return f"HTTP {response.status_code} {error.get('code', '')}: {error.get('message', '')}".strip()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
