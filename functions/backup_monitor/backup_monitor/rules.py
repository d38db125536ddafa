"""The detection rules: a pure function of (record, database, backups, now, policy). No clock, no I/O.

`evaluate` returns the notices to send and the record as it must be saved whatever gets delivered
(`base`); each delivered notice is folded in with `apply`. `Evaluation.next_record` is the record when
everything is delivered, so evaluating again with it finds nothing new.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from backup_monitor.config import Policy
from backup_monitor.records import Incident, Record, ThreadRef
from backup_monitor.scalingo.models import Backup, Database

SIZE_HISTORY = 7
NO_SCHEDULE_HOURS = 24.0
FINAL_OK = "done"


class Kind(StrEnum):
    FAILED = "failed"
    MISSING = "missing"
    STUCK = "stuck"
    SUSPICIOUS = "suspicious"
    PERIODIC_OFF = "periodic_off"
    CANNOT_CHECK = "cannot_check"
    SUCCEEDED = "succeeded"
    ARCHIVE_UNREADABLE = "archive_unreadable"
    VERIFY_SKIPPED = "verify_skipped"
    ARCHIVE_VERIFIED = "archive_verified"


class Phase(StrEnum):
    OPEN = "open"  # a new incident
    UPDATE = "update"  # news on an open incident (another failure, another missed slot)
    REMIND = "remind"  # still open
    RESOLVE = "resolve"  # closed
    NOTICE = "notice"  # a one-off message, no incident (a success, a failure already followed by a success)


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


SEVERITY = {
    Kind.FAILED: Severity.CRITICAL,
    Kind.MISSING: Severity.CRITICAL,
    Kind.CANNOT_CHECK: Severity.CRITICAL,
    Kind.STUCK: Severity.WARNING,
    Kind.SUSPICIOUS: Severity.WARNING,
    Kind.PERIODIC_OFF: Severity.WARNING,
    Kind.SUCCEEDED: Severity.INFO,
    Kind.ARCHIVE_UNREADABLE: Severity.CRITICAL,
    Kind.VERIFY_SKIPPED: Severity.WARNING,
    Kind.ARCHIVE_VERIFIED: Severity.INFO,
}


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing to tell on-call about one database."""

    kind: Kind
    phase: Phase
    incident_key: str | None = None
    backup: Backup | None = None
    slot: datetime | None = None
    detail: str = ""
    opened_at: datetime | None = None
    thread: ThreadRef | None = None
    median_size: int | None = None

    @property
    def severity(self) -> Severity:
        if self.phase is Phase.RESOLVE:
            return Severity.INFO
        if self.phase is Phase.NOTICE and SEVERITY[self.kind] is not Severity.INFO:
            return Severity.WARNING
        return SEVERITY[self.kind]

    @property
    def mention(self) -> bool:
        """Only the first notice of a new critical incident calls people."""
        return self.phase is Phase.OPEN and SEVERITY[self.kind] is Severity.CRITICAL


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What one check decided for one database."""

    notices: tuple[Notice, ...]
    base: Record
    now: datetime

    @property
    def next_record(self) -> Record:
        """The record once every notice is delivered (threads unknown)."""
        return apply_all(self.base, self.notices, self.now)


@dataclass(slots=True)
class _Builder:
    now: datetime
    policy: Policy
    notices: list[Notice] = field(default_factory=list)

    def remind_or_keep(self, key: str, incident: Incident) -> None:
        every = self.policy.remind_every_hours
        if every > 0 and self.now - incident.last_notice_at >= timedelta(hours=every):
            self.notices.append(
                Notice(
                    kind_of(incident.kind),
                    Phase.REMIND,
                    key,
                    slot=incident.slot,
                    detail=incident.detail,
                    opened_at=incident.opened_at,
                    thread=incident.thread,
                )
            )

    def resolve(self, key: str, incident: Incident, detail: str) -> None:
        self.notices.append(
            Notice(
                kind_of(incident.kind),
                Phase.RESOLVE,
                key,
                slot=incident.slot,
                detail=detail,
                opened_at=incident.opened_at,
                thread=incident.thread,
            )
        )


def kind_of(value: str) -> Kind:
    """The Kind of a stored incident (tolerating kinds from older versions as failures)."""
    try:
        return Kind(value)
    except ValueError:
        return Kind.FAILED


def _scheduled_slot(now: datetime, hours: Sequence[int], grace: timedelta) -> datetime | None:
    """The latest schedule slot (today or yesterday, UTC) whose grace period has passed."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    slots = [day + timedelta(hours=h) for day in (today, today - timedelta(days=1)) for h in hours]
    due = [slot for slot in slots if slot + grace <= now]
    return max(due) if due else None


def _missing(
    record: Record, database: Database, backups: Sequence[Backup], now: datetime, policy: Policy
) -> tuple[datetime | None, str] | None:
    """Whether the latest expected backup did not happen: (slot, detail), or None."""
    if not database.periodic_backups_enabled:
        return None
    grace = timedelta(hours=policy.missing_grace_hours)
    if database.scheduled_hours:
        slot = _scheduled_slot(now, database.scheduled_hours, grace)
        if slot is None:
            return None
        if any(b.created_at >= slot - timedelta(hours=1) for b in backups):
            return None
        return slot, f"no backup since the {slot:%H:%M} UTC slot of {slot:%Y-%m-%d}"
    # No schedule known: expect a successful backup at least every day.
    limit = timedelta(hours=NO_SCHEDULE_HOURS) + grace
    newest_done = next((b for b in backups if b.done), None)
    if newest_done is not None:
        if now - newest_done.created_at <= limit:
            return None
        return None, f"the newest successful backup is from {newest_done.created_at:%Y-%m-%d %H:%M} UTC"
    known_since = record.first_seen_at or now
    if now - known_since <= limit:
        return None
    return None, "no successful backup is listed"


def _stuck_age(backup: Backup, now: datetime) -> timedelta:
    return now - (backup.started_at or backup.created_at)


def _is_suspicious(backup: Backup, older_done: Sequence[Backup], ratio: float) -> tuple[bool, int | None]:
    """A done backup of size 0, or below `ratio` x the median of the previous done backups."""
    if backup.size == 0:
        return True, None
    sizes = [b.size for b in older_done[:SIZE_HISTORY] if b.size]
    if backup.size is None or not sizes:
        return False, None
    median = int(statistics.median(sizes))
    return backup.size < ratio * median, median


def _announce_backups(
    b: _Builder,
    incidents: dict[str, Incident],
    kind: Kind,
    bad: Sequence[Backup],
    good_newest_first: Sequence[Backup],
    medians: dict[str, int | None],
    good_phrase: str,
) -> None:
    """Announce each bad backup once; keep one incident of `kind` open until a later good backup."""
    key = kind.value
    stored = incidents.get(key)
    current = stored
    latest_bad = stored.slot if stored else None
    for x in bad:
        median = medians.get(x.id)
        if any(g.created_at > x.created_at for g in good_newest_first):
            b.notices.append(
                Notice(kind, Phase.NOTICE, None, x, detail=f"a later backup {good_phrase}", median_size=median)
            )
        elif current is None:
            b.notices.append(Notice(kind, Phase.OPEN, key, x, median_size=median))
            current = Incident(key, b.now, b.now, x.id, x.created_at)
        else:
            b.notices.append(
                Notice(
                    kind,
                    Phase.UPDATE,
                    key,
                    x,
                    median_size=median,
                    opened_at=current.opened_at,
                    thread=current.thread,
                )
            )
            latest_bad = x.created_at
    if stored is None:
        return
    since = latest_bad or stored.opened_at
    later_good = [g for g in good_newest_first if g.created_at > since]
    if later_good:
        b.resolve(key, stored, f"backup {later_good[0].name or later_good[0].id} {good_phrase}")
    elif not any(n.incident_key == key for n in b.notices):
        b.remind_or_keep(key, stored)


def evaluate(
    record: Record, database: Database, backups: Sequence[Backup], now: datetime, policy: Policy
) -> Evaluation:
    """Decide what to announce for one database after a successful API read."""
    b = _Builder(now, policy)
    ordered = sorted(backups, key=lambda x: (x.created_at, x.id))  # oldest first
    listed = {x.id for x in ordered}
    handled = {k: v for k, v in record.handled.items() if k in listed}
    first_sight = record.first_seen_at is None
    lookback = now - timedelta(hours=policy.lookback_hours)
    incidents = dict(record.incidents)

    # Backups finished before we started watching (or long ago on first sight) are recorded silently.
    for x in ordered:
        if x.id not in handled and not x.in_progress and first_sight and x.created_at < lookback:
            handled[x.id] = x.status

    done_newest_first = [x for x in reversed(ordered) if x.done]
    size_check = {
        d.id: _is_suspicious(d, done_newest_first[i + 1 :], policy.size_drop_ratio)
        for i, d in enumerate(done_newest_first)
    }
    normal_done = [d for d in done_newest_first if not size_check[d.id][0]]
    new_final = [x for x in ordered if x.id not in handled and not x.in_progress]

    # Failures: each new one announced once; the incident closes when a later backup is done.
    _announce_backups(
        b, incidents, Kind.FAILED, [x for x in new_final if not x.done], done_newest_first, {}, "succeeded"
    )
    # Successes are notices; a suspiciously small one is a warning until a later one has a normal size.
    suspicious = [x for x in new_final if x.done and size_check[x.id][0]]
    for x in new_final:
        if x.done and not size_check[x.id][0]:
            b.notices.append(Notice(Kind.SUCCEEDED, Phase.NOTICE, None, x, median_size=size_check[x.id][1]))
    medians = {x.id: size_check[x.id][1] for x in suspicious}
    _announce_backups(b, incidents, Kind.SUSPICIOUS, suspicious, normal_done, medians, "has a normal size")

    # Stuck backups: one incident per backup, closed when it reaches a final status (or leaves the list).
    stuck_limit = timedelta(hours=policy.stuck_hours)
    by_id = {x.id: x for x in ordered}
    for x in ordered:
        key = f"{Kind.STUCK.value}:{x.id}"
        if x.in_progress and _stuck_age(x, now) > stuck_limit and key not in incidents:
            b.notices.append(Notice(Kind.STUCK, Phase.OPEN, key, x))
    for key, inc in incidents.items():
        if not key.startswith(f"{Kind.STUCK.value}:"):
            continue
        current = by_id.get(inc.backup_id or "")
        if current is not None and current.in_progress:
            b.remind_or_keep(key, inc)
        else:
            outcome = f"it ended as {current.status}" if current else "it is no longer listed"
            b.resolve(key, inc, outcome)

    # Periodic backups switched off.
    off_key = Kind.PERIODIC_OFF.value
    if not database.periodic_backups_enabled:
        if off_key in incidents:
            b.remind_or_keep(off_key, incidents[off_key])
        else:
            b.notices.append(Notice(Kind.PERIODIC_OFF, Phase.OPEN, off_key))
    elif off_key in incidents:
        b.resolve(off_key, incidents[off_key], "periodic backups are enabled again")

    # The latest expected backup did not happen.
    missing_key = Kind.MISSING.value
    missing = _missing(record, database, ordered[::-1], now, policy)
    open_missing = incidents.get(missing_key)
    if missing is not None:
        slot, detail = missing
        if open_missing is None:
            b.notices.append(Notice(Kind.MISSING, Phase.OPEN, missing_key, slot=slot, detail=detail))
        elif open_missing.slot != slot:
            b.notices.append(
                Notice(
                    Kind.MISSING,
                    Phase.UPDATE,
                    missing_key,
                    slot=slot,
                    detail=detail,
                    opened_at=open_missing.opened_at,
                    thread=open_missing.thread,
                )
            )
        else:
            b.remind_or_keep(missing_key, open_missing)
    elif open_missing is not None:
        b.resolve(missing_key, open_missing, "a backup was made")

    # A successful read ends a "cannot check" incident and the failure count.
    cannot_key = Kind.CANNOT_CHECK.value
    if cannot_key in incidents:
        b.resolve(cannot_key, incidents[cannot_key], "the database can be checked again")

    base = replace(
        record,
        handled=handled,
        api_failures=0,
        first_seen_at=record.first_seen_at or now,
    )
    return Evaluation(tuple(b.notices), base, now)


def evaluate_failure(record: Record, error: str, now: datetime, policy: Policy, *, permanent: bool) -> Evaluation:
    """Decide what to announce when the API could not be read for this database."""
    failures = record.api_failures + 1
    base = replace(record, api_failures=failures)
    key = Kind.CANNOT_CHECK.value
    notices: list[Notice] = []
    if key in record.incidents:
        b = _Builder(now, policy)
        b.remind_or_keep(key, record.incidents[key])
        notices = b.notices
    elif permanent or failures >= policy.cannot_check_after:
        notices = [Notice(Kind.CANNOT_CHECK, Phase.OPEN, key, detail=f"{error} ({failures} checks in a row)")]
    return Evaluation(tuple(notices), base, now)


def apply(record: Record, notice: Notice, now: datetime, thread: ThreadRef | None = None) -> Record:
    """The record after `notice` was delivered (`thread`: where an opening message landed)."""
    handled = dict(record.handled)
    incidents = dict(record.incidents)
    if notice.backup is not None and notice.kind is not Kind.STUCK:
        handled[notice.backup.id] = notice.backup.status
    key = notice.incident_key
    if key is not None:
        if notice.phase is Phase.OPEN:
            incidents[key] = Incident(
                kind=notice.kind.value,
                opened_at=now,
                last_notice_at=now,
                backup_id=notice.backup.id if notice.backup else None,
                slot=_concern_time(notice),
                detail=notice.detail,
                thread=thread,
            )
        elif notice.phase is Phase.RESOLVE:
            incidents.pop(key, None)
        elif key in incidents:
            current = incidents[key]
            incidents[key] = replace(
                current,
                last_notice_at=now,
                backup_id=notice.backup.id if notice.backup else current.backup_id,
                slot=_concern_time(notice) if notice.phase is Phase.UPDATE else current.slot,
                detail=notice.detail if notice.phase is Phase.UPDATE else current.detail,
            )
    return replace(record, handled=handled, incidents=incidents)


def _concern_time(notice: Notice) -> datetime | None:
    """The time an incident is about: the missed slot, or the bad backup's scheduled time."""
    if notice.slot is not None:
        return notice.slot
    return notice.backup.created_at if notice.backup else None


def apply_all(record: Record, notices: Iterable[Notice], now: datetime) -> Record:
    """The record after every notice was delivered."""
    for notice in notices:
        record = apply(record, notice, now)
    return record
