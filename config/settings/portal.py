"""The organisation portal: log-in, sessions, sign-up limits, invitation and verification expiry, e-mail sender.

See ``docs/portal.md``. Production adds the secure-cookie settings in ``security``.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from config.settings.env import env

LOGIN_URL = "portal:login"
LOGIN_REDIRECT_URL = "portal:home"
LOGOUT_REDIRECT_URL = "portal:login"

# Portal sessions (database-backed, Django's default engine) last two weeks unless logged out.
SESSION_COOKIE_AGE = env("SESSION_COOKIE_AGE", int, 14 * 24 * 3600)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

# Sign-ups allowed per client address and per e-mail address within the window (Redis counters).
PORTAL_SIGNUP_LIMIT_PER_IP = env("PORTAL_SIGNUP_LIMIT_PER_IP", int, 10)
PORTAL_SIGNUP_LIMIT_PER_EMAIL = env("PORTAL_SIGNUP_LIMIT_PER_EMAIL", int, 3)
PORTAL_SIGNUP_WINDOW_SECONDS = env("PORTAL_SIGNUP_WINDOW_SECONDS", int, 3600)
# Log-in attempts and password-reset e-mails get the same kind of limit.
PORTAL_LOGIN_LIMIT_PER_IP = env("PORTAL_LOGIN_LIMIT_PER_IP", int, 30)
PORTAL_LOGIN_LIMIT_PER_EMAIL = env("PORTAL_LOGIN_LIMIT_PER_EMAIL", int, 10)
PORTAL_LOGIN_WINDOW_SECONDS = env("PORTAL_LOGIN_WINDOW_SECONDS", int, 900)
PORTAL_PASSWORD_RESET_LIMIT_PER_EMAIL = env("PORTAL_PASSWORD_RESET_LIMIT_PER_EMAIL", int, 3)

# How long links stay valid.
PORTAL_VERIFICATION_MAX_AGE_SECONDS = env("PORTAL_VERIFICATION_MAX_AGE_SECONDS", int, 2 * 24 * 3600)
PORTAL_INVITE_EXPIRY_DAYS = env("PORTAL_INVITE_EXPIRY_DAYS", int, 7)
PASSWORD_RESET_TIMEOUT = env("PASSWORD_RESET_TIMEOUT", int, 24 * 3600)

# An organisation still provisioning this long after creation gets its task sent again (it is idempotent).
PORTAL_PROVISIONING_RETRY_SECONDS = env("PORTAL_PROVISIONING_RETRY_SECONDS", int, 30)

DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", str, "Outpost <no-reply@outpost.localhost>")


def _check() -> None:
    for name in (
        "PORTAL_SIGNUP_LIMIT_PER_IP",
        "PORTAL_SIGNUP_LIMIT_PER_EMAIL",
        "PORTAL_SIGNUP_WINDOW_SECONDS",
        "PORTAL_LOGIN_LIMIT_PER_IP",
        "PORTAL_LOGIN_LIMIT_PER_EMAIL",
        "PORTAL_LOGIN_WINDOW_SECONDS",
        "PORTAL_PASSWORD_RESET_LIMIT_PER_EMAIL",
        "PORTAL_VERIFICATION_MAX_AGE_SECONDS",
        "PORTAL_INVITE_EXPIRY_DAYS",
    ):
        if globals()[name] < 1:
            raise ImproperlyConfigured(f"The {name} environment variable must be at least 1.")


_check()
