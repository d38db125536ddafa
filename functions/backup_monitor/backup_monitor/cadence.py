"""When a database is due for a read (pure): only when it can have news, so one API token serves thousands.

A database is read
- at every check while its reads fail, while an edit or a message of an earlier check is still owed (the
  check left it, could not deliver, or was cut while it held the record's claim), and when it was never read;
- from its backup slot until a usable backup answers for it, at most until the grace plus the stuck limit plus
  an hour has passed: by then a missed or hung backup is an incident;
- while an incident is open: hourly (an addon token lasts an hour), and at every check while its token lives;
- when point-in-time recovery's restore point, as last read, would now be PITR_MAX_LAG_HOURS behind;
- otherwise in a sweep, SWEEP_EVERY_HOURS after its last read: it catches manual backups, a changed status or
  schedule. SWEEP_EVERY_HOURS=0 reads every database at every check.

`Due.urgency` orders the reads a check cannot all afford: retries, incidents and the reads that decide a page
(a slot past its grace, still unfilled) first, then slots and new databases, then point-in-time recovery, then
sweeps; within one urgency, the longest waiting first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from backup_monitor.config import Policy
from backup_monitor.records import Record
from backup_monitor.rules import Kind, latest_started_slot

INCIDENT_READ_EVERY = timedelta(hours=1)  # an open incident is read at least this often (a token's lifetime)
READ_AT_REFRESH = timedelta(hours=1)  # `Record.read_at` is written when older than this (quiet reads stay free)
NO_SCHEDULE_DAY = timedelta(hours=24)  # periodic backups without a known hour: one a day is expected

# Urgencies, most urgent first.
RETRY, SLOT, PITR, SWEEP = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class Due:
    """Why a database is read now, since when it has waited, and how urgent it is (lower first)."""

    reason: str
    since: datetime
    urgency: int


def _sooner(*candidates: Due | None) -> Due | None:
    found = [c for c in candidates if c is not None]
    return min(found, key=lambda d: (d.urgency, d.since)) if found else None


def due(
    record: Record | None,
    now: datetime,
    policy: Policy,
    sweep_hours: float,
    *,
    listed_at: datetime | None = None,
    token_cached: bool = False,
    owed: bool = False,
) -> Due | None:
    """Whether the database of `record` (None: never read) must be read at `now`, or None.

    `listed_at`: when discovery first listed it; `token_cached`: its addon token is held (a read costs no
    main-API request); `owed`: the previous check left it or could not deliver one of its messages."""
    if record is None or record.first_seen_at is None:  # never read (or listed again after its retirement)
        return Due("new", listed_at or now, SLOT)
    read_at = record.read_at or record.first_seen_at
    found = _sooner(
        _incident(record, now, read_at, token_cached),
        _slot(record, now, policy, read_at),
        _pitr(record, now, policy),
        _sweep(read_at, now, sweep_hours),
    )
    if record.api_failures or record.failing_since is not None or record.pending_edits:
        return Due("retry", now, RETRY)  # tried at every check: it never waits
    if owed or record.claim_owner is not None:  # left, not delivered, or a check was cut holding its claim
        # It keeps its own reason's urgency and wait (the alarm measures that): a sweep left by one check must not
        # jump ahead of the slots of the next (the cursor only orders those of one urgency).
        return Due("owed", found.since, found.urgency) if found else Due("owed", now, SLOT)
    return found


def _incident(record: Record, now: datetime, read_at: datetime, token_cached: bool) -> Due | None:
    opened = [i for i in record.incidents.values() if i.kind != Kind.PITR_ONLY]  # said once, nothing to follow
    if not opened:
        return None
    if token_cached:
        return Due("incident", now, RETRY)
    if now - read_at >= INCIDENT_READ_EVERY:
        return Due("incident", read_at + INCIDENT_READ_EVERY, RETRY)
    return None


def _slot(record: Record, now: datetime, policy: Policy, read_at: datetime) -> Due | None:
    """From the latest slot until a usable backup fills it, for at most the grace plus the stuck limit plus an
    hour."""
    database = record.database
    if database is None or not database.periodic_backups_enabled:
        return None
    # A backup may start late in its slot's grace and then run up to the stuck limit before it is "stuck".
    window = timedelta(hours=policy.missing_grace_hours + policy.stuck_hours) + INCIDENT_READ_EVERY
    # As the rules have it (rules._missing): no slot is expected before the database existed.
    known_since = max(filter(None, (database.created_at or record.first_seen_at or now, record.schedule_since)))
    hours = database.scheduled_hours
    if hours:
        slot = latest_started_slot(now, hours)
        if slot is None or slot < known_since:
            return None
        if record.filled_slot is not None and record.filled_slot >= slot:
            return None
        if now - slot > window:
            return None
        if now - slot >= timedelta(hours=policy.missing_grace_hours):  # this read decides a page: first
            return Due("slot", slot + timedelta(hours=policy.missing_grace_hours), RETRY)
        # Read since the slot and still unfilled: it waits from that read (the longest unread go first).
        return Due("slot", max(slot, read_at), SLOT)
    expected = (record.last_usable_at or known_since) + NO_SCHEDULE_DAY
    return Due("slot", max(expected, read_at), SLOT) if expected <= now <= expected + window else None


def _pitr(record: Record, now: datetime, policy: Policy) -> Due | None:
    """When the restore point as last read would be behind: read again to know whether it moved on."""
    if record.pitr_latest is None:
        return None
    behind_at = record.pitr_latest + timedelta(hours=policy.pitr_max_lag_hours)
    return Due("pitr", behind_at, PITR) if now >= behind_at else None


def _sweep(read_at: datetime, now: datetime, sweep_hours: float) -> Due | None:
    if sweep_hours <= 0:
        return Due("every check", read_at, SWEEP)
    at = read_at + timedelta(hours=sweep_hours)
    return Due("sweep", at, SWEEP) if now >= at else None


def with_read_at(record: Record, now: datetime) -> Record:
    """The record noting that it was read at `now`, when what it says is older than READ_AT_REFRESH (else as it
    is: a quiet read writes nothing)."""
    if record.read_at is not None and now - record.read_at < READ_AT_REFRESH:
        return record
    return record.evolve(read_at=now)
