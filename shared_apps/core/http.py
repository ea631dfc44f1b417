"""HTTP helpers shared by the API views."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.http import HttpResponse

logger = logging.getLogger("outpost.http")


class ResponseThenWork(HttpResponse):
    """A response that runs some bookkeeping once it has been sent.

    The WSGI server calls ``close()`` after writing the last byte (gunicorn's sync worker, before it closes
    the connection; the test client likewise), so work done there — a usage counter in Redis, say — is
    off the client's wait. The work must not be needed by the response and must handle its own failures;
    an exception is logged, never raised into the server.
    """

    def __init__(self, *args: Any, then: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._then: Callable[[], None] | None = then

    def close(self) -> None:
        work, self._then = self._then, None
        try:
            if work is not None:
                work()
        except Exception:
            logger.exception("work after the response failed")
        finally:
            super().close()
