"""The errors the Scalingo client raises. Their text never holds a token or a download link."""

from __future__ import annotations


class ScalingoError(Exception):
    """Base of every Scalingo client error; `str()` is safe to log and to show on-call.

    `api` names the Scalingo API whose call failed: "auth" (the token exchange), "main" (api.<region>: discovery,
    addon tokens) or "db" (the database API); "" when the error did not come from a request."""

    def __init__(self, message: str, *, api: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.api = api

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class AuthenticationError(ScalingoError):
    """The API token, the bearer or an addon token was refused (401/403 after one renewal)."""


class NotFoundError(ScalingoError):
    """The app, the addon or the backup does not exist (404)."""


class UnavailableError(ScalingoError):
    """Scalingo could not be reached or kept failing (connection errors, timeouts, 429, 5xx) after retries."""


class PayloadError(ScalingoError):
    """Scalingo answered, but not with the shape documented: malformed JSON, a missing or mistyped field."""


class RedirectRefusedError(ScalingoError):
    """An API call was redirected to another scheme, host or port: not followed, so no credential leaves home."""


class LinkRejectedError(ScalingoError):
    """A download link pointed somewhere other than the configured database API."""


class OutOfTimeError(ScalingoError):
    """The check's time budget ran out before this call could be made: the database is left for the next check."""
