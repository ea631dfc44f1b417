"""Shared plumbing for Outpost's management commands (``org``, ``apikey``…).

Errors raised by services become one line on stderr and exit status 1 (or a
JSON error object with ``--json``), instead of a traceback.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

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
