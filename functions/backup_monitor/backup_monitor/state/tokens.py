"""Scalingo tokens kept in the state store, sealed, so that a new process (a new Lambda container) reuses them.

Each token is its own blob (`__tokens__/bearer`, `__tokens__/addon/<region>/<addon_id>`), apart from the
database records and their claims. They are read in batches at the start of a check, and only the tokens
fetched during the check are written back. A blob's `expires_at` is the token's own expiry: DynamoDB's TTL
deletes the tokens of databases no longer monitored.

With several API tokens (shards), each shard's bearer is its own (`__tokens__/<shard>/bearer`): a shard never
loads another's. Addon tokens are per database, shared: one sealed with another shard's API token (a database
both accounts see) does not open, is ignored, and is fetched again (and stored over).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable

from backup_monitor.config import shard_key
from backup_monitor.scalingo.tokens import BEARER_KEY, CachedToken, TokenCache, addon_key
from backup_monitor.sealing import TokenSealer
from backup_monitor.state.base import Blob, StateStore

logger = logging.getLogger(__name__)

TOKEN_KEY_PREFIX = "__tokens__/"  # noqa: S105 - a key prefix, not a secret


def bearer_blob_key(shard: str = "") -> str:
    """The blob key of a shard's bearer (`__tokens__/bearer` without a shard)."""
    return shard_key(TOKEN_KEY_PREFIX, BEARER_KEY, shard)


def _blob_key(cache_key: str, shard: str) -> str:
    return bearer_blob_key(shard) if cache_key == BEARER_KEY else TOKEN_KEY_PREFIX + cache_key


def token_keys(target_keys: Iterable[str], shard: str = "") -> list[str]:
    """The blob keys of the shard's bearer and of these databases' addon tokens."""
    return [bearer_blob_key(shard), *(TOKEN_KEY_PREFIX + addon_key(t) for t in target_keys)]


def restore_tokens(blobs: Iterable[Blob], cache: TokenCache, sealer: TokenSealer, shard: str = "") -> int:
    """Seed `cache` with the stored tokens among `blobs` (the shard's bearer, addon tokens); returns how many
    were adopted.

    A token sealed with another API token (another shard's), for another key, or damaged, is ignored (and
    fetched again); another shard's bearer is not even opened."""
    tokens: list[CachedToken] = []
    bearer = bearer_blob_key(shard)
    for blob in blobs:
        if not blob.key.startswith(TOKEN_KEY_PREFIX):
            continue
        if blob.key != bearer and not blob.key.startswith(TOKEN_KEY_PREFIX + addon_key("")):
            continue  # a bearer of another shard (or of the stack before it had shards)
        token = _open(blob, sealer, BEARER_KEY if blob.key == bearer else blob.key[len(TOKEN_KEY_PREFIX) :])
        if token is None:
            logger.info("stored token unusable, it will be fetched again", extra={"key": blob.key})
        else:
            tokens.append(token)
    return cache.restore(tokens)


def save_tokens(store: StateStore, cache: TokenCache, sealer: TokenSealer, shard: str = "") -> int:
    """Store, sealed, the tokens fetched since the last save (the bearer as the shard's); returns how many
    were written."""
    new = cache.drain_new()
    blobs = []
    for token in new:
        key = _blob_key(token.key, shard)
        plain = json.dumps({"token": token.value, "expires_at": token.expires_at, "renew_at": token.renew_at})
        blobs.append(Blob(key, sealer.seal(key, plain), token.expires_at))
    store.save_blobs(blobs)
    return len(blobs)


def _open(blob: Blob, sealer: TokenSealer, cache_key: str) -> CachedToken | None:
    plain = sealer.open(blob.key, blob.data)  # the blob's key is the associated data: a copy elsewhere fails
    if plain is None:
        return None
    try:
        data = json.loads(plain)
        return CachedToken(cache_key, str(data["token"]), float(data["expires_at"]), float(data["renew_at"]))
    except (ValueError, KeyError, TypeError):
        return None
