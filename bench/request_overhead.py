"""What API key authentication, the tenant switch and the rate limiter add to every API request.

Four in-process WSGI loops (no network, no test client: the same ``WSGIHandler`` call gunicorn makes, full
middleware stack), interleaved round by round so all see the same machine load:

* ``bare``: a DRF ``APIView`` with no authentication, permission or throttle classes, answering a small JSON
  body, mounted in a benchmark-only URLconf;
* ``same view authenticated, limiter off``: the same view and body with the project's default
  authentication, scope permission and throttle, called with a valid key (its cache entry in Redis, as on
  every request after a key's first) and ``RATELIMIT_ENABLED`` false;
* ``same view authenticated, limiter on``: the same with the limiter on (the plan's limits raised so nothing
  is throttled). Its difference from ``bare`` is the figure the target is about;
* ``whoami, limiter on``: ``GET /api/v1/whoami``, a real endpoint, for reference.

The floor for the limiter's share is Redis itself: a raw ``EVALSHA`` of the limiter's script and a ``GET`` on
the same connection, measured in the same run.

Usage: ``python bench/request_overhead.py [--requests 6000] [--rounds 20]``
"""

from __future__ import annotations

import argparse
import gc
import io
import statistics
import sys
import time
import types
from collections.abc import Callable

import _setup
from _setup import percentile, setup_django, teardown_django

# Its own database, so it can run while another benchmark uses outpost_bench.
_setup.BENCH_DB = "outpost_bench_overhead"

TARGET_US = 500.0


def wsgi_caller(path: str, headers: dict[str, str]) -> Callable[[], int]:
    from django.core.handlers.wsgi import WSGIHandler

    application = WSGIHandler()
    base = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        **headers,
    }
    status_holder: list[str] = []

    def start_response(status: str, response_headers: list, exc_info: object = None) -> None:
        status_holder.append(status)

    def call() -> int:
        status_holder.clear()
        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO(b"")
        response = application(environ, start_response)
        try:
            b"".join(response)
        finally:
            response.close()
        return int(status_holder[0].split(" ", 1)[0])

    return call


def install_bench_urlconf() -> None:
    """``/bench/bare`` plus the real URLconf, as a module of its own set as ``ROOT_URLCONF``."""
    from django.conf import settings
    from django.urls import clear_url_caches, path
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from config import urls as real_urls

    class BareApi(APIView):
        authentication_classes: list = []
        permission_classes: list = []
        throttle_classes: list = []

        def get(self, request):
            return Response({"ok": True})

    class BareRedisApi(BareApi):
        """The bare view plus one Redis ``GET`` on the admission's connection: what a single round trip costs
        inside a request on this machine (more than in a tight loop: Redis sits idle between requests)."""

        def get(self, request):
            from django_redis import get_redis_connection

            get_redis_connection("platform").execute_command("GET", "outpost:bench:floor")
            return Response({"ok": True})

    class AuthenticatedApi(APIView):
        """The same view with the project's defaults: API key authentication (and with it the tenant switch
        and the rate limit), the scope permission and the throttle."""

        required_scope = "sync:read"

        def get(self, request):
            return Response({"ok": True})

    module = types.ModuleType("bench_overhead_urls")
    module.urlpatterns = [
        path("bench/bare", BareApi.as_view()),
        path("bench/authenticated", AuthenticatedApi.as_view()),
        path("bench/bare-redis", BareRedisApi.as_view()),
        *real_urls.urlpatterns,
    ]
    sys.modules[module.__name__] = module
    settings.ROOT_URLCONF = module.__name__
    clear_url_caches()


def redis_floor(samples: int) -> tuple[float, float]:
    """Median µs of a raw EVALSHA of the limiter script (one bucket) and of a GET, on the limiter's connection."""
    from django_redis import get_redis_connection

    from billing.ratelimit import _GCRA

    redis = get_redis_connection("default")
    sha = redis.script_load(_GCRA.script)
    args = (1, "outpost:rl:bench:floor", 1, 1_000, 1_000_000_000)
    evalsha, get = [], []
    for _ in range(samples):
        started = time.perf_counter_ns()
        redis.evalsha(sha, *args)
        evalsha.append((time.perf_counter_ns() - started) / 1000)
        started = time.perf_counter_ns()
        redis.get("outpost:rl:bench:floor")
        get.append((time.perf_counter_ns() - started) / 1000)
    return statistics.median(evalsha), statistics.median(get)


def redis_commands(call: Callable[[], int]) -> list[str]:
    """The Redis commands one request sends (counted on one extra, unmeasured request)."""
    import redis

    seen: list[str] = []
    original = redis.Redis.execute_command

    def counting(self, *args, **options):
        seen.append(str(args[0]))
        return original(self, *args, **options)

    redis.Redis.execute_command = counting
    try:
        call()
    finally:
        redis.Redis.execute_command = original
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=6000, help="requests per variant")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds the requests are split into")
    parser.add_argument("--warmup", type=int, default=300, help="unmeasured requests per variant first")
    args = parser.parse_args()
    per_round = max(1, args.requests // args.rounds)

    setup_django()
    from _http import machine_load, organisation_with_key
    from django.conf import settings
    from django.core.cache import caches

    from billing.models import Plan
    from billing.selectors import plan_cache_key

    _, key = organisation_with_key("overhead", plan="enterprise")
    # Far above what the loop sends, so the limiter does all its work but never refuses.
    Plan.objects.filter(slug="enterprise").update(requests_per_minute=100_000_000, burst=10_000_000)
    caches["platform"].delete(plan_cache_key("enterprise"))
    install_bench_urlconf()
    # As config/wsgi.py does in every worker: startup objects out of the garbage collector's reach.
    gc.collect()
    gc.freeze()

    bare = wsgi_caller("/bench/bare", {})
    authorization = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    authenticated = wsgi_caller("/bench/authenticated", authorization)
    whoami = wsgi_caller("/api/v1/whoami", authorization)
    variants: dict[str, tuple[Callable[[], int], bool]] = {
        "bare DRF view": (bare, True),
        "bare DRF view + one Redis GET": (wsgi_caller("/bench/bare-redis", {}), True),
        "same view authenticated, limiter off": (authenticated, False),
        "same view authenticated, limiter on": (authenticated, True),
        "whoami, limiter on": (whoami, True),
    }
    timings: dict[str, list[float]] = {name: [] for name in variants}

    def run(name: str, count: int, record: bool) -> None:
        call, limiter = variants[name]
        settings.RATELIMIT_ENABLED = limiter
        for _ in range(count):
            started = time.perf_counter_ns()
            status = call()
            elapsed = (time.perf_counter_ns() - started) / 1000
            if status != 200:
                raise SystemExit(f"{name}: HTTP {status}; the benchmark needs every request to succeed")
            if record:
                timings[name].append(elapsed)

    print(f"[bench] {machine_load()}", flush=True)
    print(f"[warmup] {args.warmup} requests per variant", flush=True)
    for name in variants:
        run(name, args.warmup, record=False)
    for number in range(1, args.rounds + 1):
        for name in variants:
            run(name, per_round, record=True)
        if number % max(1, args.rounds // 5) == 0 or number == args.rounds:
            medians = ", ".join(f"{name} {statistics.median(values):.0f} µs" for name, values in timings.items())
            print(f"[round {number}/{args.rounds}] medians so far: {medians}", flush=True)
    commands = {}
    for name, (call, limiter) in variants.items():
        settings.RATELIMIT_ENABLED = limiter
        commands[name] = redis_commands(call)
        print(f"[redis] {name}: {' '.join(commands[name]) or 'none'}", flush=True)
    evalsha_us, get_us = redis_floor(2000)
    print(f"[floor] Redis EVALSHA (limiter script) {evalsha_us:.0f} µs, GET {get_us:.0f} µs", flush=True)
    settings.RATELIMIT_ENABLED = True

    medians = {name: statistics.median(values) for name, values in timings.items()}
    bare_us = medians["bare DRF view"]
    print()
    print(f"{per_round * args.rounds} requests per variant, in-process WSGI, {args.rounds} interleaved rounds")
    print()
    print("| variant | Redis commands | median | p95 | added over bare |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, values in timings.items():
        added = "—" if name == "bare DRF view" else f"{medians[name] - bare_us:+.0f} µs"
        row = f"| {name} | {len(commands[name])} | {medians[name]:.0f} µs | {percentile(values, 95):.0f} µs | {added} |"
        print(row)
    limiter_us = medians["same view authenticated, limiter on"] - medians["same view authenticated, limiter off"]
    total_us = medians["same view authenticated, limiter on"] - bare_us
    print(f"| Redis alone, tight loop: one EVALSHA of the limiter script | 1 | {evalsha_us:.0f} µs | | |")
    print(f"| Redis alone, tight loop: one GET | 1 | {get_us:.0f} µs | | |")
    print()
    print(f"rate limiter alone (on - off): {limiter_us:+.0f} µs")
    round_trip_us = medians["bare DRF view + one Redis GET"] - bare_us
    rest_us = total_us - round_trip_us
    print(f"one Redis round trip inside a request: {round_trip_us:+.0f} µs; the rest: {rest_us:+.0f} µs")
    verdict = "within" if total_us < TARGET_US else "OVER"
    print(f"auth + tenant switch + rate limit over bare: {total_us:+.0f} µs ({verdict} the {TARGET_US:.0f} µs target)")
    teardown_django()


if __name__ == "__main__":
    main()
