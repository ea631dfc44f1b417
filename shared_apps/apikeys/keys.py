"""Generating, parsing and checking API key strings.

The secret has ~238 bits of entropy, so a single SHA-256 is enough to make a
stolen database useless (no dictionary to try); a slow password hash would
only slow down every API request. Digests are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from typing import NamedTuple

KEY_PREFIX = "opk"
PREFIX_LENGTH = 12
SECRET_LENGTH = 40
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits
_KEY_RE = re.compile(rf"^{KEY_PREFIX}_([a-z0-9]{{{PREFIX_LENGTH}}})_([A-Za-z0-9]{{{SECRET_LENGTH}}})$")
# Compared against when the prefix is unknown, so both paths cost the same.
DUMMY_DIGEST = hashlib.sha256(b"outpost-unknown-key").hexdigest()


class ParsedKey(NamedTuple):
    prefix: str
    secret: str


def generate() -> tuple[str, str, str]:
    """Return ``(full_key, prefix, secret_digest)`` for a new key."""
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(SECRET_LENGTH))
    return f"{KEY_PREFIX}_{prefix}_{secret}", prefix, digest(secret)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse(raw: str) -> ParsedKey | None:
    match = _KEY_RE.match(raw)
    return ParsedKey(match.group(1), match.group(2)) if match else None


def secret_matches(secret: str, stored_digest: str | None) -> bool:
    """Constant-time comparison; an unknown key still does the same work."""
    expected = stored_digest or DUMMY_DIGEST
    ok = hmac.compare_digest(digest(secret), expected)
    return ok and stored_digest is not None


def normalise_prefix(value: str) -> str:
    """Accept ``opk_<prefix>``, ``opk_<prefix>_…`` or the bare prefix."""
    value = value.strip()
    if value.startswith(f"{KEY_PREFIX}_"):
        value = value[len(KEY_PREFIX) + 1 :]
    return value.split("_", 1)[0]
