"""``python manage.py runall`` — the whole platform in one terminal (used by ``make run``).

Starts the development web server, one Celery worker consuming every queue
(platform, each tier's main and overflow queue) and Celery beat, prefixes their
output, and stops all of them when one exits or on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Run the web server, a Celery worker for every queue and Celery beat together."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000")
        parser.add_argument("--concurrency", type=int, default=2)

    def handle(self, *args: Any, **options: Any) -> None:
        python = sys.executable
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings.dev")}
        # Children find the same embedded servers (the settings exported their URLs).
        env["DATABASE_URL"] = os.environ["DATABASE_URL"]
        env["REDIS_URL"] = os.environ["REDIS_URL"]
        queues = ",".join(settings.ALL_QUEUES)
        schedule = settings.BASE_DIR / ".local" / "celerybeat-schedule"
        schedule.parent.mkdir(parents=True, exist_ok=True)
        commands = {
            "web": [python, "manage.py", "runserver", options["addr"], "--noreload"],
            "worker": [python, "-m", "celery", "-A", "config", "worker", "-Q", queues, "-l", "INFO",
                       "--concurrency", str(options["concurrency"]), "--pool", "threads", "-n", "local@%h"],
            "beat": [python, "-m", "celery", "-A", "config", "beat", "-l", "INFO", "-s", str(schedule)],
        }  # fmt: skip
        processes: dict[str, subprocess.Popen[bytes]] = {}
        for name, command in commands.items():
            process = subprocess.Popen(
                command, cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
            processes[name] = process
            threading.Thread(target=self._relay, args=(name, process), daemon=True).start()
        self.stdout.write(f"Serving on http://{options['addr']}  (worker queues: {queues}); Ctrl-C stops everything.")
        try:
            while all(process.poll() is None for process in processes.values()):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            for process in processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes.values():
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()

    def _relay(self, name: str, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for line in iter(process.stdout.readline, b""):
            sys.stdout.write(f"{name:>6} | {line.decode(errors='replace')}")
            sys.stdout.flush()
