"""A thread-safe cache of short-lived tokens keyed by scope, renewed a random margin before their JWT `exp`.

The cache can be seeded from, and drained to, the state store (sealed there), so tokens outlive the process.
"""

from __future__ import annotations

import base64
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from backup_monitor.scalingo.errors import OutOfTimeError

# Each token is renewed between 2 and 10 minutes before it expires, drawn once when it is fetched, so a fleet
# fetched in one burst is not renewed in one burst. A check out of time keeps using a token inside its margin
# (it has not expired): its renewal waits for the next check instead of the database.
RENEW_MARGIN_SECONDS = (120.0, 600.0)
MIN_VALIDITY_SECONDS = 60.0
FALLBACK_LIFETIME_SECONDS = 3600.0
BEARER_KEY = "bearer"


def addon_key(target_key: str) -> str:
    """The cache key of a database's addon token."""
    return f"addon/{target_key}"


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


@dataclass(frozen=True, slots=True)
class CachedToken:
    """A token with its expiry and the moment it is renewed (epoch seconds). `repr` never shows the value."""

    key: str
    value: str
    expires_at: float
    renew_at: float

    def __repr__(self) -> str:
        return f"CachedToken({self.key!r}, expires_at={self.expires_at}, renew_at={self.renew_at})"


class TokenCache:
    """Caches one token per key until its renewal time; remembers which tokens are new since the last drain.

    Fetching holds a per-key lock so that concurrent workers needing the same token ask once.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        margin: tuple[float, float] = RENEW_MARGIN_SECONDS,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        self._margin = margin
        self._rng = rng or random.Random()  # noqa: S311 - spreading renewals, not a secret
        self._entries: dict[str, CachedToken] = {}
        self._new: set[str] = set()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock_for(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def get(self, key: str, fetch: Callable[[], str]) -> str:
        """The cached token for `key`, fetched anew when absent or due for renewal.

        When the check is out of time, a due token that has not expired is used once more."""
        with self._lock_for(key):
            entry = self._entries.get(key)
            if entry is not None and self._clock() < entry.renew_at:
                return entry.value
            try:
                value = fetch()
            except OutOfTimeError:
                if entry is not None and self._clock() < entry.expires_at - MIN_VALIDITY_SECONDS:
                    return entry.value
                raise
            fetched_at = self._clock()
            expiry = jwt_expiry(value) or fetched_at + FALLBACK_LIFETIME_SECONDS
            margin = self._rng.uniform(*self._margin)
            # A token living less than the margin is still used once, then renewed.
            renew_at = max(expiry - margin, min(expiry, fetched_at + 1.0))
            with self._guard:
                self._entries[key] = CachedToken(key, value, expiry, renew_at)
                self._new.add(key)
            return value

    def is_fresh(self, key: str) -> bool:
        """Whether `key` has a token that will not be renewed now (no request needed to use it)."""
        entry = self._entries.get(key)
        return entry is not None and self._clock() < entry.renew_at

    def expires_at(self, key: str) -> float:
        """When the cached token for `key` expires (0 when there is none)."""
        entry = self._entries.get(key)
        return entry.expires_at if entry is not None else 0.0

    def drop(self, key: str, value: str | None = None) -> None:
        """Forget the token for `key` (only if it is still `value`, when given)."""
        with self._guard:
            entry = self._entries.get(key)
            if entry is not None and (value is None or entry.value == value):
                del self._entries[key]
                self._new.discard(key)

    def restore(self, tokens: list[CachedToken]) -> int:
        """Adopt stored tokens still fresh and later than what the cache holds; returns how many."""
        now = self._clock()
        adopted = 0
        with self._guard:
            for token in tokens:
                held = self._entries.get(token.key)
                if token.renew_at <= now or (held is not None and held.renew_at >= token.renew_at):
                    continue
                self._entries[token.key] = token
                self._new.discard(token.key)
                adopted += 1
        return adopted

    def drain_new(self) -> list[CachedToken]:
        """The tokens fetched since the last drain (to be stored), and forget that they were new."""
        with self._guard:
            new = [self._entries[key] for key in sorted(self._new) if key in self._entries]
            self._new.clear()
            return new

    def __repr__(self) -> str:
        return f"TokenCache(keys={len(self._entries)})"
