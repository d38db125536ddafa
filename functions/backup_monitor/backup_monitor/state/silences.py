"""The silences in the state store: one record (`__silences__`) shared by every shard, read by every check, and
changed by `backup-monitor silence` / `unsilence` and the Slack buttons.

Every change is a read-modify-write conditional on the version read (the store's optimistic versioning), retried
on a conflict: a command and a check, or two clicks, never lose each other's change. Acknowledgments are written
the same way into the database's own record.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TypeVar

from backup_monitor.records import Record
from backup_monitor.rules import acknowledge
from backup_monitor.silences import Silence, added, ended, new_silence, pruned
from backup_monitor.state.base import ConflictError, StateError, StateStore

logger = logging.getLogger(__name__)

SILENCES_KEY = "__silences__"  # no shard: a silence names databases, whichever token watches them
ATTEMPTS = 20
Result = TypeVar("Result")


class UnknownSilenceError(KeyError):
    """No silence has this id (or it was dropped: ended more than KEEP_ENDED ago)."""

    def __init__(self, silence_id: str) -> None:
        super().__init__(silence_id)
        self.silence_id = silence_id

    def __str__(self) -> str:
        return f"no silence has the id {self.silence_id!r} (`backup-monitor silences --all` lists them)"


def load_silences(store: StateStore) -> tuple[Silence, ...]:
    """Every stored silence, active, future and recently ended (StateError when the store fails)."""
    record = store.load_many([SILENCES_KEY]).get(SILENCES_KEY)
    return record.silences if record is not None else ()


def active_silences(store: StateStore, now: datetime) -> tuple[Silence, ...]:
    """The silences a check honours at `now`; none (with a warning) when they cannot be read: better a message
    during maintenance than an outage nobody hears of."""
    try:
        return tuple(s for s in load_silences(store) if s.is_active(now))
    except StateError as exc:
        logger.warning("could not read the silences: every database is announced", extra={"error": str(exc)})
        return ()


def _update(
    store: StateStore,
    key: str,
    change: Callable[[Record], tuple[Record, Result]],
    *,
    attempts: int = ATTEMPTS,
    clock: Callable[[], float] = time.time,
) -> Result:
    """Read `key`, apply `change`, write it conditionally on the version read; again on a conflict (another
    writer got there first, or a check holds the record's claim). ConflictError after `attempts` tries."""
    for attempt in range(attempts):
        record = store.load_many([key]).get(key) or Record(key=key)
        changed, result = change(record)
        if changed.content() == record.content():
            return result
        try:
            store.save(changed, clock())
        except ConflictError:
            time.sleep(min(0.5, 0.01 * 2**attempt) * (0.5 + random.random()))  # noqa: S311 (jitter, not a secret)
            continue
        return result
    raise ConflictError(f"state record {key!r} kept changing while it was written: try again")


def add_silence(store: StateStore, pattern: str, duration: timedelta, reason: str, by: str, now: datetime) -> Silence:
    """Store a new silence starting at `now`; SilenceError when it is malformed or MAX_ACTIVE are active."""
    silence = new_silence(pattern, duration, reason, by, now)

    def change(record: Record) -> tuple[Record, Silence]:
        return replace(record, silences=added(record.silences, silence, now)), silence

    return _update(store, SILENCES_KEY, change, clock=lambda: now.timestamp())


def remove_silence(store: StateStore, silence_id: str, by: str, now: datetime) -> Silence:
    """End the silence `silence_id` now (kept as ended a while); UnknownSilenceError when there is none."""

    def change(record: Record) -> tuple[Record, Silence]:
        try:
            kept, stopped = ended(record.silences, silence_id, by, now)
        except KeyError:
            raise UnknownSilenceError(silence_id) from None
        return replace(record, silences=kept), stopped

    return _update(store, SILENCES_KEY, change, clock=lambda: now.timestamp())


def prune_silences(store: StateStore, now: datetime) -> None:
    """Drop the silences ended more than KEEP_ENDED ago (every write prunes too)."""
    _update(store, SILENCES_KEY, lambda r: (replace(r, silences=pruned(r.silences, now)), None))


def acknowledge_incident(store: StateStore, key: str, incident_kind: str, by: str, now: datetime) -> Record:
    """Acknowledge an open incident of the database whose state key is `key` (rules.acknowledge), written
    conditionally on the version read. KeyError when the database has no such open incident; ConflictError when
    a check kept its record claimed through every attempt (try again after the check)."""

    def change(record: Record) -> tuple[Record, Record]:
        if record.version == 0:
            raise KeyError(key)
        done = acknowledge(record, incident_kind, by, now)
        return done, done

    return _update(store, key, change, attempts=5, clock=lambda: now.timestamp())
