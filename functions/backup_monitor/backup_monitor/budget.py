"""The time budget of a check and the order databases are checked in, so that a cut check loses nothing.

Near the budget no new database is started; the ones left are remembered in a cursor blob (in chunks when
large, see state/chunks.py), written only when a check was cut (or the one after it caught up), so a quiet
check still writes nothing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from backup_monitor.config import Target, shard_key
from backup_monitor.state.base import RECORD_TTL_SECONDS, Blob, StateStore, shard_of
from backup_monitor.state.chunks import blob_part_keys, join_list, save_list

# What a Lambda keeps for evaluating, sending and saving after it stops starting databases: in-flight
# database-API calls (a 10 s timeout, retried), Slack deliveries and conditional writes.
LAMBDA_SAFETY_MARGIN_SECONDS = 60.0
CURSOR_PREFIX = "__cursor__/"
CURSOR_KEY = CURSOR_PREFIX + "check"  # the cursor without a shard (each shard has its own: cursor_key)
CURSOR_FIELD = "left"
_CURSOR_HEAD = re.compile(r"__cursor__/(?:[a-z0-9-]+/)?check")

T = TypeVar("T")


def time_budget(limit: float | None, remaining: float | None) -> float | None:
    """Seconds a check may spend starting databases: the smaller of CHECK_TIME_LIMIT_SECONDS and the
    Lambda's remaining time less a safety margin; None when neither applies (the command, by default)."""
    candidates = [] if limit is None else [limit]
    if remaining is not None:
        candidates.append(max(0.0, remaining - LAMBDA_SAFETY_MARGIN_SECONDS))
    return min(candidates) if candidates else None


DELIVERY_RESERVE_SECONDS = 20.0  # kept from fetching for the last batch's messages and writes
DELIVERY_RESERVE_SHARE = 0.05  # ... or this share of a shorter budget (one of 400 s or less)


def delivery_reserve(budget: float) -> float:
    """How long before the check's deadline fetching stops, so the last findings can still be delivered."""
    return min(DELIVERY_RESERVE_SECONDS, DELIVERY_RESERVE_SHARE * budget)


def deadline_after(budget: float | None, started: float | None = None) -> float | None:
    """The `time.monotonic()` value at which the check's budget ends."""
    if budget is None:
        return None
    return (time.monotonic() if started is None else started) + budget


def cursor_key(shard: str = "") -> str:
    """The cursor of a shard's checks (CURSOR_KEY without a shard)."""
    return shard_key(CURSOR_PREFIX, "check", shard)


def _head_in(blobs: Mapping[str, Blob], key: str | None) -> str:
    """`key`, or (None) the key of the cursor head among `blobs`: a check loads the cursor of its own shard
    only (check/after.load_blobs), so there is at most one; CURSOR_KEY when there is none."""
    if key is not None:
        return key
    return next((k for k in blobs if _CURSOR_HEAD.fullmatch(k)), CURSOR_KEY)


def left_keys(blobs: Mapping[str, Blob], key: str | None = None) -> list[str]:
    """The databases the previous check had no time for, in the order it would have taken them (from the
    cursor `key`; None: the one cursor `blobs` holds)."""
    return join_list(blobs, _head_in(blobs, key), CURSOR_FIELD)


def cursor_part_keys(blobs: Mapping[str, Blob], key: str | None = None) -> list[str]:
    """The keys of the cursor's parts, when the cursor head in `blobs` is stored in chunks (else none)."""
    return blob_part_keys(blobs, _head_in(blobs, key))


def cursor_blob(left: Sequence[str], now: float, key: str = CURSOR_KEY) -> Blob:
    """The cursor for the next check, inline (an empty list once every database was reached)."""
    return Blob(key, json.dumps({CURSOR_FIELD: list(left)}, separators=(",", ":")), now + RECORD_TTL_SECONDS)


def order_for_check(
    targets: Sequence[Target],
    left: Sequence[str],
    needs_token: Callable[[Target], bool],
    token_expiry: Callable[[Target], float] = lambda _: 0.0,
    priority: Callable[[Target], tuple[int, float]] = lambda _: (0, 0.0),
) -> list[Target]:
    """Databases whose addon token is cached first (seconds, no main-API request), then those needing a
    token; within each, by `priority` (urgency, then how long it has waited: see cadence.py), then the ones the
    previous check left first, in its order, then the tokens expiring soonest (a token not yet expired can
    still serve when time runs out). Otherwise stable."""
    rank = {key: i for i, key in enumerate(left)}
    missing = len(rank)

    def key(t: Target) -> tuple[bool, tuple[int, float], int, float]:
        due = needs_token(t)
        return (due, priority(t), rank.get(t.key, missing), token_expiry(t) if due else 0.0)

    return sorted(targets, key=key)


def save_cursor_if_changed(
    store: StateStore, before: Sequence[str], left: Sequence[str], now: float, key: str | None = None
) -> bool:
    """Write the cursor (`key`; None: that of the store's shard) only when what is left changed (nothing, in
    the steady state)."""
    if list(before) == list(left):
        return False
    # inline, or in chunks (state/chunks.py)
    save_list(store, cursor_key(shard_of(store)) if key is None else key, CURSOR_FIELD, left, now)
    return True


def split_lanes(ready: Sequence[T], due: Sequence[T], workers: int) -> list[tuple[Sequence[T], int]]:
    """Two lanes run at once, half the workers each: databases with a cached token, and those needing a new
    one (they wait on the main API's limiter), so the quota is used from the first second and a slow main
    API never holds up the quick databases. One worker: one lane, ready ones first."""
    if workers < 2 or not ready or not due:
        return [([*ready, *due], workers)]
    token_workers = workers // 2
    return [(ready, workers - token_workers), (due, token_workers)]
