"""Scalingo tokens kept in the state store, sealed, so that a new process (a new Lambda container) reuses them.

Each token is its own blob (`__tokens__/bearer`, `__tokens__/addon/<region>/<app>/<addon_id>`), apart from the
database records and their claims. They are read in batches at the start of a check, and only the tokens
fetched during the check are written back. A blob's `expires_at` is the token's own expiry: DynamoDB's TTL
deletes the tokens of databases no longer monitored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from backup_monitor.scalingo.tokens import BEARER_KEY, CachedToken, TokenCache, addon_key
from backup_monitor.sealing import TokenSealer
from backup_monitor.state.base import Blob, StateStore

logger = logging.getLogger(__name__)

TOKEN_KEY_PREFIX = "__tokens__/"  # noqa: S105 - a key prefix, not a secret


def token_keys(target_keys: Iterable[str]) -> list[str]:
    """The blob keys of the bearer and of these databases' addon tokens."""
    return [TOKEN_KEY_PREFIX + k for k in (BEARER_KEY, *(addon_key(t) for t in target_keys))]


def restore_tokens(blobs: Iterable[Blob], cache: TokenCache, sealer: TokenSealer) -> int:
    """Seed `cache` with the stored tokens among `blobs`; returns how many were adopted.

    A token sealed with another API token, for another key, or damaged, is ignored (and fetched again)."""
    tokens: list[CachedToken] = []
    for blob in blobs:
        if not blob.key.startswith(TOKEN_KEY_PREFIX):
            continue
        token = _open(blob, sealer)
        if token is None:
            logger.info("stored token unusable, it will be fetched again", extra={"key": blob.key})
        else:
            tokens.append(token)
    return cache.restore(tokens)


def save_tokens(store: StateStore, cache: TokenCache, sealer: TokenSealer) -> int:
    """Store, sealed, the tokens fetched since the last save; returns how many were written."""
    new = cache.drain_new()
    blobs = []
    for token in new:
        key = TOKEN_KEY_PREFIX + token.key
        plain = json.dumps({"token": token.value, "expires_at": token.expires_at, "renew_at": token.renew_at})
        blobs.append(Blob(key, sealer.seal(key, plain), token.expires_at))
    store.save_blobs(blobs)
    return len(blobs)


def _open(blob: Blob, sealer: TokenSealer) -> CachedToken | None:
    plain = sealer.open(blob.key, blob.data)
    if plain is None:
        return None
    try:
        data = json.loads(plain)
        return CachedToken(
            blob.key[len(TOKEN_KEY_PREFIX) :], str(data["token"]), float(data["expires_at"]), float(data["renew_at"])
        )
    except (ValueError, KeyError, TypeError):
        return None
