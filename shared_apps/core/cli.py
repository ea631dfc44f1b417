"""Shared plumbing for Outpost's management commands (``org``, ``apikey``…).

Errors raised by services become one line on stderr and exit status 1 (or a
JSON error object with ``--json``), instead of a traceback.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from shared_apps.core.errors import OutpostError

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(value: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w``, ``45s``."""
    match = _DURATION.match(value.strip())
    if not match or int(match.group(1)) <= 0:
        raise CommandError(f"Invalid duration {value!r}: use a positive number and one of s, m, h, d, w (e.g. 30d).")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class OutpostCommand(BaseCommand):
    """A command with subcommands; each ``handle_<sub>`` returns a dict (for ``--json``) and prints text."""

    subcommands: dict[str, str] = {}

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, parser_class=_SubParser(self))
        for name, help_text in self.subcommands.items():
            subparser = sub.add_parser(name, help=help_text)
            subparser.add_argument("--json", action="store_true", help="Print one JSON object on stdout.")
            getattr(self, f"arguments_{name.replace('-', '_')}")(subparser)

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["subcommand"].replace("-", "_")
        self.as_json = options.get("json", False)
        try:
            result = getattr(self, f"handle_{name}")(**options)
        except OutpostError as exc:
            if self.as_json:
                self.stdout.write(
                    json.dumps({"error": {"code": exc.code, "message": exc.message, "details": exc.details}})
                )
                raise SystemExit(1) from exc
            raise CommandError(f"{exc.message} [{exc.code}]") from exc
        if self.as_json:
            self.stdout.write(json.dumps(result, default=str))

    def say(self, text: str) -> None:
        """Human output; suppressed with ``--json`` so stdout stays one JSON object."""
        if not self.as_json:
            self.stdout.write(text)


def _SubParser(command: BaseCommand) -> type[CommandParser]:  # noqa: N802 - a class factory
    """Subparsers must be CommandParsers too, so errors become CommandError, not SystemExit."""

    class SubParser(CommandParser):
        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("called_from_command_line", getattr(command, "_called_from_command_line", None))
            super().__init__(**kwargs)

    return SubParser


class ProgressBar:
    """A one-line progress bar for long commands (on stderr): counts, rate and ETA.

    On a terminal it is redrawn in place (at most ten times a second); in a log
    (not a terminal) a plain line is written every few seconds instead.
    ``migrate_tenants`` counts schemas with it, ``backfill_document_text`` documents.
    """

    WIDTH = 28

    def __init__(self, stream: OutputWrapper, total: int, *, verb: str, unit: str, enabled: bool = True) -> None:
        self.stream = stream
        self.total = total
        self.verb = verb
        self.unit = unit
        self.enabled = enabled and total > 0
        self.tty = stream.isatty()
        self.done = 0
        self.failed = 0
        self.started = time.perf_counter()
        self._last_draw = self.started
        self._drawn = False

    def advance(self, count: int = 1, *, failed: bool = False) -> None:
        self.done += count
        self.failed += failed
        now = time.perf_counter()
        interval = 0.1 if self.tty else 5.0
        if self.done >= self.total or now - self._last_draw >= interval:
            self._draw(now)

    def note(self, text: str) -> None:
        """A line above the bar (a failure), then the bar again."""
        if self.tty and self._drawn:
            self.stream.write("\r\033[K", style_func=_plain, ending="")
        self.stream.write(text)
        if self.tty and self._drawn:
            self._draw(time.perf_counter())

    def close(self) -> None:
        if self.enabled and self.tty and self._drawn:
            self.stream.write("", style_func=_plain)

    def _line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        done = min(self.done, self.total)  # a count taken before the work may fall short of it
        rate = done / elapsed
        remaining = (self.total - done) / rate if rate > 0 else 0.0
        filled = int(self.WIDTH * done / self.total)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        failed = f"  {self.failed} failed" if self.failed else ""
        return (
            f"{self.verb} [{bar}] {done}/{self.total} {100 * done // self.total:3d}%  "
            f"{rate:,.1f} {self.unit}/s  ETA {_clock(remaining)}{failed}"
        )

    def _draw(self, now: float) -> None:
        if not self.enabled:
            return
        self._last_draw = now
        if self.tty:
            # Plain, not in the error colour Django gives stderr on a terminal.
            self.stream.write("\r\033[K" + self._line(now), style_func=_plain, ending="")
            self.stream.flush()
        else:
            self.stream.write(self._line(now), style_func=_plain)
        self._drawn = True


def _plain(text: str) -> str:
    return text


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"
