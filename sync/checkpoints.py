"""Opaque pull checkpoints.

A checkpoint encodes the last change sequence number a client has seen. It is
opaque to clients (base64url of a versioned token) so the encoding can change
without breaking them; a token that does not decode is a 400, never a silent
restart from zero.
"""

from __future__ import annotations

import base64
import binascii

from sync.errors import InvalidCheckpoint

_VERSION = "c1"


def encode(seq: int) -> str:
    return base64.urlsafe_b64encode(f"{_VERSION}:{seq}".encode()).decode().rstrip("=")


def decode(token: str | None) -> int:
    """Return the sequence number in ``token``; 0 for no checkpoint (a first sync)."""
    if token is None or token in ("", "null"):
        return 0
    try:
        padded = token + "=" * (-len(token) % 4)
        version, _, seq = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
        value = int(seq)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCheckpoint() from exc
    if version != _VERSION or value < 0:
        raise InvalidCheckpoint()
    return value
