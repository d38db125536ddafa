"""A thread-safe cache of short-lived tokens keyed by scope, renewed before their JWT `exp`."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

RENEW_BEFORE_SECONDS = 300.0
FALLBACK_LIFETIME_SECONDS = 3600.0


def jwt_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT, unverified; None when the token is not a readable JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, UnicodeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        return float(exp)
    return None


@dataclass(slots=True)
class _Entry:
    value: str
    renew_at: float


class TokenCache:
    """Caches one token per key until a few minutes before it expires.

    Fetching holds a per-key lock so that concurrent workers needing the same token ask once.
    """

    def __init__(self, clock: Callable[[], float] = time.time, renew_before: float = RENEW_BEFORE_SECONDS):
        self._clock = clock
        self._renew_before = renew_before
        self._entries: dict[Hashable, _Entry] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock_for(self, key: Hashable) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, key: Hashable, fetch: Callable[[], str]) -> str:
        """The cached token for `key`, fetched anew when absent or close to expiry."""
        with self._lock_for(key):
            entry = self._entries.get(key)
            now = self._clock()
            if entry is not None and now < entry.renew_at:
                return entry.value
            value = fetch()
            fetched_at = self._clock()
            expiry = jwt_expiry(value) or fetched_at + FALLBACK_LIFETIME_SECONDS
            # A token living less than the margin is still used once, then renewed.
            renew_at = max(expiry - self._renew_before, min(expiry, fetched_at + 1.0))
            self._entries[key] = _Entry(value, renew_at)
            return value

    def drop(self, key: Hashable, value: str | None = None) -> None:
        """Forget the token for `key` (only if it is still `value`, when given)."""
        with self._guard:
            entry = self._entries.get(key)
            if entry is not None and (value is None or entry.value == value):
                del self._entries[key]

    def __repr__(self) -> str:
        return f"TokenCache(keys={len(self._entries)})"
