"""Opaque pull checkpoints.

A checkpoint encodes the last change sequence number a client has seen and
the tombstone horizon that was in force when the client last started from
scratch. It is opaque to clients (base64url of a versioned token) so the
encoding can change without breaking them; a token that does not decode is a
400, never a silent restart from zero.

Why the horizon: a client that starts from scratch after a purge walks through
documents whose ``seq`` is below the horizon (live documents keep their old
numbers). It has no ghosts to miss — it began after the purge — so it must not
be told to reset. It needs a reset only when a purge *newer than its start*
moved the horizon past its checkpoint.
"""

from __future__ import annotations

import base64
import binascii
from typing import NamedTuple

from sync.errors import InvalidCheckpoint

_VERSION = "c2"


class Checkpoint(NamedTuple):
    seq: int
    floor: int  # the horizon when the client last started from scratch

    def needs_reset(self, horizon: int) -> bool:
        return self.seq > 0 and self.seq < horizon and self.floor < horizon


START = Checkpoint(0, 0)


def encode(seq: int, floor: int = 0) -> str:
    return base64.urlsafe_b64encode(f"{_VERSION}:{seq}:{floor}".encode()).decode().rstrip("=")


def decode(token: str | None) -> Checkpoint:
    """Decode ``token``; no token (a first sync) is :data:`START`."""
    if token is None or token in ("", "null"):
        return START
    try:
        padded = token + "=" * (-len(token) % 4)
        parts = base64.urlsafe_b64decode(padded.encode()).decode().split(":")
        if parts[0] == "c1" and len(parts) == 2:  # the first format: no floor
            checkpoint = Checkpoint(int(parts[1]), 0)
        elif parts[0] == _VERSION and len(parts) == 3:
            checkpoint = Checkpoint(int(parts[1]), int(parts[2]))
        else:
            raise InvalidCheckpoint()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCheckpoint() from exc
    if checkpoint.seq < 0 or checkpoint.floor < 0:
        raise InvalidCheckpoint()
    return checkpoint
