"""The detection rules: a pure function of (record, database, backups, now, policy). No clock, no I/O.

`evaluate` returns the notices to send and the record as it must be saved whatever gets delivered
(`base`); each delivered notice is folded in with `apply`. `Evaluation.next_record` is the record when
everything is delivered, so evaluating again with it finds nothing new.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from backup_monitor.config import Policy
from backup_monitor.records import Incident, Record, ThreadRef
from backup_monitor.scalingo.models import Backup, Database
from backup_monitor.silences import check_by

SIZE_HISTORY = 7
NO_SCHEDULE_HOURS = 24.0
SLOT_LOOKBACK_DAYS = 3  # the grace is below a day, so the latest due slot is at most two days back
ABSENT_KEEP = timedelta(days=7)  # a handled id missing from the list is remembered this long
MAX_HANDLED = 400  # Scalingo lists a few dozen backups; absent ids beyond this are forgotten oldest first


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
    GONE = "gone"  # the database's addon or app was deleted: no longer watched
    API_OUTAGE = "api_outage"  # Scalingo's API failed for most databases of a region: one incident, not one each
    ENTRIES_SKIPPED = "entries_skipped"  # some entries of the backups list could not be read: said once
    MANUAL_CANCELLED = "manual_cancelled"  # a manual backup cancelled (by someone, on purpose): a warning
    PITR_BEHIND = "pitr_behind"  # point-in-time recovery's latest restore point is older than PITR_MAX_LAG_HOURS
    PITR_ONLY = "pitr_only"  # periodic dumps are off, healthy point-in-time recovery covers it: said once


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
    Kind.GONE: Severity.WARNING,
    Kind.API_OUTAGE: Severity.CRITICAL,
    Kind.ENTRIES_SKIPPED: Severity.WARNING,
    Kind.PITR_BEHIND: Severity.CRITICAL,
    Kind.PITR_ONLY: Severity.WARNING,
    Kind.MANUAL_CANCELLED: Severity.WARNING,
}
# Most severe first, for everything that lists notices or incidents (grouped messages, the daily report).
SEVERITY_ORDER = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}
# The incidents that mean "this database has no usable backup": one page per outage, whichever comes first.
BACKUP_OUTAGE = frozenset({Kind.FAILED, Kind.MISSING})

# A missed slot where a backup is, but not usable: still in progress past STUCK_BACKUP_HOURS, or too small.
SLOT_STUCK = "stuck"
SLOT_SMALL = "small"

# Why a database cannot be checked: the next step depends on it.
CAUSE_SCALINGO = "scalingo"  # 5xx, timeout, 429 past retries, malformed or implausible answer: Scalingo's side
CAUSE_TOKEN = "token"  # noqa: S105 (not a secret) 401/403: the API token (revoked, expired, lacking access)
CAUSE_ADDON = "addon"  # 404: the addon or app is not found (deleted, renamed, or another token's)
CAUSE_INTERNAL = "internal"  # a bug of the monitor, or its state store


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
    reasons: tuple[str, ...] = ()  # why it may have happened (a missing backup: database stopped, maintenance)
    quiet: bool = False  # a critical opening that is news on an outage already paged: no mention
    shared: bool = False  # its incident's thread is a grouped message: replies go there, it is never edited
    # The facts on-call acts on (every alert and reminder): when the newest usable backup was made, PITR's latest
    # restore point, and for a missed slot the backup that was there but stuck or too small.
    last_usable_at: datetime | None = None
    restore_point: datetime | None = None
    slot_backup: Backup | None = None
    # "cannot check": why (CAUSE_* below) and since when the reads fail.
    cause: str = ""
    failing_since: datetime | None = None
    # A re-announcement of an incident already open, to a destination that never heard of it.
    reannounce: bool = False
    # A missed slot's backup was stuck or too small (SLOT_STUCK, SLOT_SMALL): kept with the incident, so its
    # reminders and resolution say the same.
    slot_state: str = ""
    # Who acknowledged the incident, and when (its resolution names them).
    acknowledged_by: str = ""
    acknowledged_at: datetime | None = None
    # An opening announced once a silence ended (the incident opened during it), or a resolution held by a
    # silence (`Record.held`): said now that it ended.
    after_silence: bool = False

    @property
    def severity(self) -> Severity:
        if self.phase is Phase.RESOLVE:
            return Severity.INFO
        if self.phase is Phase.NOTICE and SEVERITY[self.kind] is not Severity.INFO:
            return Severity.WARNING
        return SEVERITY[self.kind]

    @property
    def mention(self) -> bool:
        """Only the first notice of a new critical incident calls people, once per outage."""
        return self.phase is Phase.OPEN and SEVERITY[self.kind] is Severity.CRITICAL and not self.quiet


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
        notice = remind_notice(key, incident, self.now, self.policy)
        if notice is not None:
            self.notices.append(notice)

    def resolve(self, key: str, incident: Incident, detail: str) -> None:
        self.notices.append(resolve_notice(key, incident, detail))


def remind_notice(key: str, incident: Incident, now: datetime, policy: Policy) -> Notice | None:
    """A reminder of an open incident when REMIND_EVERY_HOURS has passed since its last notice, else None."""
    every = policy.remind_every_hours
    if every <= 0 or now - incident.last_notice_at < timedelta(hours=every) or incident.kind == Kind.PITR_ONLY:
        return None
    if incident.acknowledged_by:  # someone is on it: no reminders while it stays open
        return None
    return Notice(
        kind_of(incident.kind),
        Phase.REMIND,
        key,
        slot=incident.slot,
        detail=incident.detail,
        opened_at=incident.opened_at,
        thread=incident.thread,
        shared=incident.shared,
        slot_state=incident.slot_state,
    )


def resolve_notice(key: str, incident: Incident, detail: str) -> Notice:
    """The end of an open incident, in its thread (naming who acknowledged it, if someone did)."""
    return Notice(
        kind_of(incident.kind),
        Phase.RESOLVE,
        key,
        slot=incident.slot,
        detail=detail,
        opened_at=incident.opened_at,
        thread=incident.thread,
        shared=incident.shared,
        slot_state=incident.slot_state,
        acknowledged_by=incident.acknowledged_by,
        acknowledged_at=incident.acknowledged_at,
    )


def kind_of(value: str) -> Kind:
    """The Kind of a stored incident (tolerating kinds from older versions as failures)."""
    try:
        return Kind(value)
    except ValueError:
        return Kind.FAILED


def _age(backup: Backup, now: datetime) -> timedelta:
    return now - (backup.started_at or backup.created_at)


def _pending(backup: Backup, now: datetime, policy: Policy) -> bool:
    """Still under way: a known in-progress status, or a status we do not know yet on a recent backup.

    Scalingo has added statuses before; an unknown one becomes a failure only once it has lasted longer
    than STUCK_BACKUP_HOURS.
    """
    if backup.in_progress:
        return True
    return not backup.known_status and _age(backup, now) <= timedelta(hours=policy.stuck_hours)


def _is_suspicious(backup: Backup, older_done: Sequence[Backup], ratio: float) -> tuple[bool, int | None]:
    """A done backup of size 0, or below `ratio` x the median of the previous done backups."""
    if backup.size == 0:
        return True, None
    sizes = [b.size for b in older_done[:SIZE_HISTORY] if b.size]
    if backup.size is None or not sizes:
        return False, None
    median = int(statistics.median(sizes))
    return backup.size < ratio * median, median


def _size_checks(oldest_first: Sequence[Backup], ratio: float) -> dict[str, tuple[bool, int | None]]:
    """For each done backup: (suspicious, median of the previous done ones)."""
    done_newest_first = [x for x in reversed(oldest_first) if x.done]
    return {d.id: _is_suspicious(d, done_newest_first[i + 1 :], ratio) for i, d in enumerate(done_newest_first)}


def usable_newest_first(backups: Sequence[Backup], size_drop_ratio: float) -> list[Backup]:
    """The usable backups (done, not empty, not suspiciously small), newest first."""
    ordered = sorted(backups, key=lambda x: (x.created_at, x.id))
    size_check = _size_checks(ordered, size_drop_ratio)
    return [d for d in reversed(ordered) if d.done and not size_check[d.id][0]]


@dataclass(frozen=True, slots=True)
class _View:
    """The listed backups as the rules see them at `now`."""

    ordered: list[Backup]  # oldest first
    size_check: dict[str, tuple[bool, int | None]]
    usable_newest_first: list[Backup]
    now: datetime
    policy: Policy

    @classmethod
    def of(cls, backups: Sequence[Backup], now: datetime, policy: Policy) -> _View:
        ordered = sorted(backups, key=lambda x: (x.created_at, x.id))
        size_check = _size_checks(ordered, policy.size_drop_ratio)
        usable = [d for d in reversed(ordered) if d.done and not size_check[d.id][0]]
        return cls(ordered, size_check, usable, now, policy)

    def pending(self, backup: Backup) -> bool:
        return _pending(backup, self.now, self.policy)

    def counts_for_a_slot(self, backup: Backup) -> bool:
        """Usable, or still under way and younger than STUCK_BACKUP_HOURS."""
        if backup.done:
            return not self.size_check[backup.id][0]
        return self.pending(backup) and _age(backup, self.now) <= timedelta(hours=self.policy.stuck_hours)


def _slots_around(moment: datetime, hours: Sequence[int], days_before: int, days_after: int) -> list[datetime]:
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return sorted(day + timedelta(days=d, hours=h) for d in range(-days_before, days_after + 1) for h in hours)


def _latest_due_slot(now: datetime, hours: Sequence[int], grace: timedelta) -> datetime | None:
    """The latest schedule slot whose grace has passed, however far back (a 23:00 slot is due the next day)."""
    due = [slot for slot in _slots_around(now, hours, SLOT_LOOKBACK_DAYS, 0) if slot + grace <= now]
    return due[-1] if due else None


def latest_started_slot(now: datetime, hours: Sequence[int]) -> datetime | None:
    """The latest schedule slot at or before `now` (its backup may be running or due), None without hours."""
    started = [slot for slot in _slots_around(now, hours, 1, 0) if slot <= now]
    return started[-1] if started else None


def _nearest_slot(moment: datetime, hours: Sequence[int]) -> datetime:
    """The schedule slot a backup belongs to: the nearest one (ties go to the earlier, late-running slot)."""
    return min(_slots_around(moment, hours, 1, 1), key=lambda slot: (abs(slot - moment), slot))


def _fills(backup: Backup, slot: datetime, hours: Sequence[int], grace: timedelta) -> bool:
    """Whether `backup` answers for `slot`: a periodic one belongs to that slot or was made after it; a manual
    one only when it was made within the grace before or after the slot (one made hours earlier says nothing
    about whether the periodic backup ran)."""
    if backup.method == "manual":
        return abs(backup.created_at - slot) <= grace
    return _after(backup, slot, hours)


def _after(backup: Backup, slot: datetime, hours: Sequence[int]) -> bool:
    """Whether `backup` makes the data of `slot` safe again: any usable backup of that slot or made after it
    (the manual backup on-call makes after the alert closes it)."""
    return backup.created_at >= slot or (bool(hours) and _nearest_slot(backup.created_at, hours) == slot)


def _skip_reasons(database: Database, slot: datetime | None) -> tuple[str, ...]:
    """The two documented reasons Scalingo skips a periodic backup, when they apply."""
    reasons = []
    if database.status and database.status != "running":
        reasons.append(
            f"The database is {database.status}: Scalingo skips the periodic backup of a database that is not running"
        )
    if slot is not None and database.maintenance is not None and database.maintenance.covers(slot):
        reasons.append(
            f"The slot fell in the database's maintenance window ({database.maintenance.describe()}): "
            "maintenance can delay or skip a backup"
        )
    return tuple(reasons)


@dataclass(frozen=True, slots=True)
class _Missed:
    slot: datetime | None
    detail: str
    slot_backup: Backup | None = None  # the backup at the slot, stuck or too small


def _missing(record: Record, database: Database, view: _View) -> _Missed | None:
    """Whether the latest expected backup did not happen, or None.

    A slot a usable backup filled before (`record.filled_slot`) stays filled when an answer omits it."""
    if not database.periodic_backups_enabled:
        return None
    now, policy = view.now, view.policy
    grace = timedelta(hours=policy.missing_grace_hours)
    known_since = max(filter(None, (database.created_at or record.first_seen_at or now, record.schedule_since)))
    hours = database.scheduled_hours
    if hours:
        slot = _latest_due_slot(now, hours, grace)
        if slot is None or slot < known_since:
            return None  # no slot is expected before the database existed
        if record.filled_slot is not None and record.filled_slot >= slot:
            return None
        at_slot = [b for b in view.ordered if _fills(b, slot, hours, grace)]
        if any(view.counts_for_a_slot(b) for b in at_slot):
            return None
        stuck_or_small = next((b for b in reversed(at_slot) if b.in_progress or b.done), None)
        return _Missed(slot, f"No usable backup for the {slot:%H:%M} UTC slot of {slot:%Y-%m-%d}", stuck_or_small)
    # No schedule known: expect a usable backup at least every day.
    limit = timedelta(hours=NO_SCHEDULE_HOURS) + grace
    if any(now - b.created_at <= limit and view.counts_for_a_slot(b) for b in view.ordered):
        return None
    if record.last_usable_at is not None and now - record.last_usable_at <= limit:
        return None  # known from an earlier answer: a short answer does not unmake it
    newest = view.usable_newest_first[0] if view.usable_newest_first else None
    if newest is not None:
        return _Missed(None, f"The newest usable backup is from {newest.created_at:%Y-%m-%d %H:%M} UTC")
    if now - known_since <= limit:
        return None
    return _Missed(None, "No usable backup is listed")


def _filled_slot(record: Record, database: Database, view: _View) -> datetime | None:
    """The latest slot (due or not yet) a listed usable backup fills; remembered, so a slot filled stays filled
    when a later answer omits its backup."""
    hours = database.scheduled_hours
    if not hours:
        return record.filled_slot
    grace = timedelta(hours=view.policy.missing_grace_hours)
    started = [slot for slot in _slots_around(view.now, hours, SLOT_LOOKBACK_DAYS, 0) if slot <= view.now]
    filled = [slot for slot in started if any(_fills(b, slot, hours, grace) for b in view.usable_newest_first)]
    return max(filter(None, (record.filled_slot, *filled)), default=None)


def _missing_fixed_by(incident: Incident, database: Database, view: _View) -> Backup | None:
    """The usable backup that answers an open "missing" incident: one for its slot or after it."""
    if incident.slot is not None:
        return next((b for b in view.usable_newest_first if _after(b, incident.slot, database.scheduled_hours)), None)
    limit = timedelta(hours=NO_SCHEDULE_HOURS) + timedelta(hours=view.policy.missing_grace_hours)
    return next((b for b in view.usable_newest_first if view.now - b.created_at <= limit), None)


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
                Notice(kind, Phase.NOTICE, None, x, detail=f"A later backup {good_phrase}", median_size=median)
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
                    shared=current.shared,
                )
            )
            latest_bad = x.created_at
    if stored is None:
        return
    since = latest_bad or stored.opened_at
    later_good = [g for g in good_newest_first if g.created_at > since or g.id == stored.backup_id]
    if later_good:
        b.resolve(key, stored, f"Backup {later_good[0].name or later_good[0].id} {good_phrase}")
    elif not any(n.incident_key == key for n in b.notices):
        b.remind_or_keep(key, stored)


def _remember_listed(record: Record, handled: dict[str, str], listed: set[str], now: datetime) -> dict[str, datetime]:
    """Track handled ids missing from this answer; forget them once gone long enough (bounded)."""
    absent = {k: v for k, v in record.absent_since.items() if k in handled and k not in listed}
    for key in handled:
        if key not in listed:
            absent.setdefault(key, now)
    for key, since in list(absent.items()):
        if now - since >= ABSENT_KEEP:
            del absent[key]
            del handled[key]
    overflow = len(handled) - MAX_HANDLED
    if overflow > 0:
        for key, _ in sorted(absent.items(), key=lambda item: (item[1], item[0]))[:overflow]:
            del absent[key]
            del handled[key]
    return absent


RECENT_KEEP = timedelta(days=2)  # handled backups remembered with their time, for the short-answer check
RECENT_OMITTED = timedelta(days=1)  # an answer omitting a backup this recent, listing older ones, is not data
MAX_RECENT = 100


def implausible_answer(
    record: Record, database: Database, backups: Sequence[Backup], now: datetime, policy: Policy
) -> tuple[str, bool] | None:
    """Why a backup list cannot be taken as data, or None: (reason, confirmable).

    Not data: a list without any of the backups listed before; one that omits a backup listed in the last day
    while listing older ones (retention prunes the oldest, never the newest); an empty list at first sight of a
    database old enough to have backups (periodic backups on, created more than a day and the grace ago). The
    last two are `confirmable`: the same answer CANNOT_CHECK_AFTER checks in a row is taken as data (the known
    facts are kept)."""
    listed = {b.id for b in backups}
    before = [k for k in record.handled if k not in record.absent_since]
    if before and not any(k in listed for k in before):
        return f"the backup list came back without any of the {len(before)} backups listed before", False
    omitted = [when for k, when in record.recent.items() if k not in listed and now - when <= RECENT_OMITTED]
    if omitted and any(b.created_at < min(omitted) for b in backups):
        n = len(omitted)
        return f"the backup list omits {n} backup{'s' if n != 1 else ''} listed in the last day, not older ones", True
    old_enough = timedelta(hours=NO_SCHEDULE_HOURS + policy.missing_grace_hours)
    created = database.created_at
    old = database.periodic_backups_enabled and created is not None and now - created > old_enough
    if record.first_seen_at is None and not backups and old:
        return "the backup list came back empty at the first check of a database old enough to have backups", True
    return None


def _recent(view: _View) -> dict[str, datetime]:
    """The listed backups with a final status made in the last RECENT_KEEP, with their times (bounded, newest
    kept). Only this answer's: an answer judged is data, so what it no longer lists is not held against the next."""
    now = view.now
    recent = {b.id: b.created_at for b in view.ordered if not view.pending(b) and now - b.created_at <= RECENT_KEEP}
    if len(recent) > MAX_RECENT:
        recent = dict(sorted(recent.items(), key=lambda item: (item[1], item[0]))[-MAX_RECENT:])
    return recent


def _assign_pages(notices: list[Notice], incidents: dict[str, Incident]) -> list[Notice]:
    """One page per outage of a database's backups: while a failed or missing incident is open, another
    one opens without the mention (it is news on the same outage)."""
    resolved = {n.incident_key for n in notices if n.phase is Phase.RESOLVE}
    paged = any(kind_of(inc.kind) in BACKUP_OUTAGE and key not in resolved for key, inc in incidents.items())
    result = []
    for notice in notices:
        if notice.phase is Phase.OPEN and notice.kind in BACKUP_OUTAGE:
            if paged:
                notice = replace(notice, quiet=True)
            paged = True
        result.append(notice)
    return result


def rewatched(record: Record) -> Record:
    """A retired database listed again: watched again as at first sight (handled backups are remembered, so
    nothing old is replayed; backups older than LOOKBACK_HOURS are recorded silently)."""
    since = record.retired_at
    absent = {k: record.absent_since.get(k) or since for k in record.handled} if since else record.absent_since
    return replace(
        record,
        retired_at=None,
        first_seen_at=None,
        read_at=None,  # read at the next check, as a new database (cadence.py)
        api_failures=0,
        failing_since=None,
        recent={},
        absent_since={k: v for k, v in absent.items() if v is not None},  # not evidence against the next answer
    )


def with_facts(notices: Iterable[Notice], record: Record) -> tuple[Notice, ...]:
    """Every alert and reminder says how old the newest usable backup is, and PITR's latest restore point."""
    return tuple(
        replace(n, last_usable_at=record.last_usable_at, restore_point=record.pitr_latest)
        if n.phase in (Phase.OPEN, Phase.UPDATE, Phase.REMIND)
        else n
        for n in notices
    )


def with_database(record: Record, database: Database, now: datetime) -> Record:
    """The record with freshly read database info; a changed schedule expects no slot before `now`."""
    previous = record.database
    changed = previous is not None and (
        previous.scheduled_hours != database.scheduled_hours
        or (database.periodic_backups_enabled and not previous.periodic_backups_enabled)
    )
    return replace(
        record,
        database=database,
        database_fetched_at=now,
        schedule_since=now if changed else record.schedule_since,
    )


def evaluate(
    record: Record,
    database: Database,
    backups: Sequence[Backup],
    now: datetime,
    policy: Policy,
    *,
    skipped: int = 0,
    problems: Sequence[str] = (),
) -> Evaluation:
    """Decide what to announce for one database after a successful API read (`skipped` entries of the list
    could not be read: `problems` says why, for the first few)."""
    b = _Builder(now, policy)
    view = _View.of(backups, now, policy)
    ordered = view.ordered
    listed = {x.id for x in ordered}
    handled = dict(record.handled)
    absent = _remember_listed(record, handled, listed, now)
    first_sight = record.first_seen_at is None
    lookback = now - timedelta(hours=policy.lookback_hours)
    incidents = dict(record.incidents)

    # Backups finished before we started watching (or long ago on first sight) are recorded silently.
    for x in ordered:
        if x.id not in handled and not view.pending(x) and first_sight and x.created_at < lookback:
            handled[x.id] = x.status

    new_final = [x for x in ordered if x.id not in handled and not view.pending(x)]
    usable = view.usable_newest_first
    size_check = view.size_check

    # Failures: each new one announced once; the incident closes when a later usable backup exists.
    failed = [x for x in new_final if not x.done]
    # A manual backup cancelled is someone's own decision: a warning, never a page.
    for x in failed:
        if x.method == "manual" and x.status == "cancelled":
            b.notices.append(Notice(Kind.MANUAL_CANCELLED, Phase.NOTICE, None, x))
    failed = [x for x in failed if not (x.method == "manual" and x.status == "cancelled")]
    _announce_backups(b, incidents, Kind.FAILED, failed, usable, {}, "succeeded")
    # Successes are notices; a suspiciously small one is a warning until a later one has a normal size.
    suspicious = [x for x in new_final if x.done and size_check[x.id][0]]
    for x in new_final:
        if x.done and not size_check[x.id][0]:
            b.notices.append(Notice(Kind.SUCCEEDED, Phase.NOTICE, None, x, median_size=size_check[x.id][1]))
    medians = {x.id: size_check[x.id][1] for x in suspicious}
    _announce_backups(b, incidents, Kind.SUSPICIOUS, suspicious, usable, medians, "has a normal size")

    # Stuck backups: one incident per backup, closed when it reaches a final status (or leaves the list).
    stuck_limit = timedelta(hours=policy.stuck_hours)
    by_id = {x.id: x for x in ordered}
    for x in ordered:
        key = f"{Kind.STUCK.value}:{x.id}"
        if x.in_progress and _age(x, now) > stuck_limit and key not in incidents:
            b.notices.append(Notice(Kind.STUCK, Phase.OPEN, key, x))
    for key, inc in incidents.items():
        if not key.startswith(f"{Kind.STUCK.value}:"):
            continue
        current = by_id.get(inc.backup_id or "")
        if current is not None and current.in_progress:
            b.remind_or_keep(key, inc)
        else:
            outcome = f"It ended as {current.status}" if current else "It is no longer listed"
            b.resolve(key, inc, outcome)

    # Point-in-time recovery (PostgreSQL's continuous backups), as last read: behind, or healthy.
    pitr = record.pitr_latest
    lag = timedelta(hours=policy.pitr_max_lag_hours)
    # A window that cannot be read ages as it was last read: past the lag it is behind, as far as anyone can tell.
    read_at = record.pitr_read_at
    known = read_at is not None and now - read_at <= lag  # a read recent enough to close an incident on
    behind_key = Kind.PITR_BEHIND.value
    if pitr is not None and now - pitr > lag:
        if behind_key in incidents:
            b.remind_or_keep(behind_key, incidents[behind_key])
        else:
            late = _hours(now - pitr)
            detail = f"The latest restore point is {late} old (PITR_MAX_LAG_HOURS is {policy.pitr_max_lag_hours:g})"
            if not known and read_at is not None:
                detail += f"; the recovery window could not be read since {read_at:%Y-%m-%d %H:%M} UTC"
            b.notices.append(Notice(Kind.PITR_BEHIND, Phase.OPEN, behind_key, detail=detail))
    elif behind_key in incidents and (known or pitr is None):
        closed = "The latest restore point is recent again" if pitr else "Point-in-time recovery is no longer reported"
        b.resolve(behind_key, incidents[behind_key], closed)
    elif behind_key in incidents:
        b.remind_or_keep(behind_key, incidents[behind_key])

    # Periodic backups switched off: with point-in-time recovery, said once (dumps may be off on purpose).
    off_key, only_key = Kind.PERIODIC_OFF.value, Kind.PITR_ONLY.value
    if database.periodic_backups_enabled:
        if off_key in incidents:
            b.resolve(off_key, incidents[off_key], "Periodic backups are enabled again")
        if only_key in incidents:
            b.resolve(only_key, incidents[only_key], "Periodic backups are enabled again")
    elif pitr is not None:
        if off_key in incidents:
            b.resolve(off_key, incidents[off_key], "Point-in-time recovery covers the database")
        if only_key not in incidents:
            b.notices.append(Notice(Kind.PITR_ONLY, Phase.OPEN, only_key))
    else:
        if only_key in incidents:
            b.resolve(only_key, incidents[only_key], "Point-in-time recovery is no longer reported")
        if off_key in incidents:
            b.remind_or_keep(off_key, incidents[off_key])
        else:
            b.notices.append(Notice(Kind.PERIODIC_OFF, Phase.OPEN, off_key))

    # The latest expected backup did not happen. Only a usable backup for the slot (or after it) closes it.
    missing_key = Kind.MISSING.value
    missing = _missing(record, database, view)
    open_missing = incidents.get(missing_key)
    filled_slot = _filled_slot(record, database, view)
    if open_missing is not None:
        fixed_by = _missing_fixed_by(open_missing, database, view)
        if not database.periodic_backups_enabled:
            b.resolve(missing_key, open_missing, "Periodic backups were switched off: no backup is expected")
        elif fixed_by is not None:
            b.resolve(missing_key, open_missing, f"Backup {fixed_by.name or fixed_by.id} was made")
            if open_missing.slot is not None:  # the slot is answered: a later short answer must not reopen it
                filled_slot = max(filter(None, (filled_slot, open_missing.slot)))
        elif missing is not None and missing.slot != open_missing.slot and record.last_usable_at is None and not usable:
            # Never any usable backup: each further slot is no news. Reminders follow REMIND_EVERY_HOURS.
            moved = replace(open_missing, slot=missing.slot, detail=missing.detail)
            incidents[missing_key] = moved
            b.remind_or_keep(missing_key, moved)
        elif missing is not None and missing.slot != open_missing.slot:
            b.notices.append(
                Notice(
                    Kind.MISSING,
                    Phase.UPDATE,
                    missing_key,
                    slot=missing.slot,
                    detail=missing.detail,
                    opened_at=open_missing.opened_at,
                    thread=open_missing.thread,
                    shared=open_missing.shared,
                    reasons=_skip_reasons(database, missing.slot),
                    slot_backup=missing.slot_backup,
                )
            )
        else:
            b.remind_or_keep(missing_key, open_missing)
    elif missing is not None:
        b.notices.append(
            Notice(
                Kind.MISSING,
                Phase.OPEN,
                missing_key,
                slot=missing.slot,
                detail=missing.detail,
                reasons=_skip_reasons(database, missing.slot),
                slot_backup=missing.slot_backup,
            )
        )

    # Entries of the list that could not be read: said once (the others were judged), closed when all read.
    entries_key = Kind.ENTRIES_SKIPPED.value
    if skipped and entries_key not in incidents:
        entries = f"{skipped} entr{'y' if skipped == 1 else 'ies'}"
        why = f" (first: {problems[0]})" if problems else ""
        detail = f"{entries} of Scalingo's backup list could not be read and were skipped{why}; the others were judged"
        b.notices.append(Notice(Kind.ENTRIES_SKIPPED, Phase.OPEN, entries_key, detail=detail))
    elif not skipped and entries_key in incidents:
        b.resolve(entries_key, incidents[entries_key], "Every entry of the backup list can be read again")

    # A successful read ends a "cannot check" incident and the failure count.
    cannot_key = Kind.CANNOT_CHECK.value
    if cannot_key in incidents:
        b.resolve(cannot_key, incidents[cannot_key], "The database can be checked again")

    newest_usable = usable[0].created_at if usable else None
    last_usable = max(filter(None, (record.last_usable_at, newest_usable)), default=None)
    base = replace(
        record,
        handled=handled,
        incidents=incidents,
        absent_since=absent,
        api_failures=0,
        failing_since=None,
        first_seen_at=record.first_seen_at or now,
        last_usable_at=last_usable,
        filled_slot=filled_slot,
        recent=_recent(view),
    )
    return Evaluation(with_facts(_assign_pages(b.notices, record.incidents), base), base, now)


def evaluate_failure(
    record: Record, error: str, now: datetime, policy: Policy, *, permanent: bool, cause: str = ""
) -> Evaluation:
    """Decide what to announce when the API could not be read for this database (`cause`: CAUSE_*)."""
    failures = record.api_failures + 1
    since = record.failing_since or now
    base = replace(record, api_failures=failures, failing_since=since)
    key = Kind.CANNOT_CHECK.value
    notices: list[Notice] = []
    if key in record.incidents:
        b = _Builder(now, policy)
        b.remind_or_keep(key, record.incidents[key])
        notices = [replace(n, cause=cause, failing_since=since) for n in b.notices]
    elif permanent or failures >= policy.cannot_check_after:
        in_a_row = f"{failures} check{'s' if failures != 1 else ''} in a row"
        detail = f"{error} ({in_a_row})"
        notices = [Notice(Kind.CANNOT_CHECK, Phase.OPEN, key, detail=detail, cause=cause, failing_since=since)]
    return Evaluation(with_facts(notices, base), base, now)


def evaluate_gone(record: Record, now: datetime, reason: str) -> Evaluation:
    """The database's addon or app is gone: close its incidents, say once that it is no longer watched (the
    record is retired when that notice is delivered: until then every check says it again)."""
    notices = [
        resolve_notice(key, inc, f"The database is no longer watched: {reason}")
        for key, inc in sorted(record.incidents.items())
    ]
    if record.retired_at is None:
        notices.append(Notice(Kind.GONE, Phase.NOTICE, None, detail=reason[:1].upper() + reason[1:]))
    return Evaluation(tuple(notices), record, now)


def retired(record: Record | None) -> bool:
    """Whether a retirement was delivered in full: "no longer watched" said, every incident closed."""
    return record is None or (record.retired_at is not None and not record.incidents)


def apply(
    record: Record,
    notice: Notice,
    now: datetime,
    thread: ThreadRef | None = None,
    *,
    shared: bool = False,
    destination: str = "",
) -> Record:
    """The record after `notice` was delivered (`thread`: where its message landed; `shared`: a grouped message;
    `destination`: the notifier's fingerprint).

    An opening records its thread; a reply that had to move (its thread's channel refused it) moves the incident."""
    handled = dict(record.handled)
    incidents = dict(record.incidents)
    if notice.backup is not None and notice.kind is not Kind.STUCK:
        handled[notice.backup.id] = notice.backup.status
    key = notice.incident_key
    if key is not None and notice.after_silence:  # said once its silence ended
        if notice.phase is Phase.RESOLVE:
            held = dict(record.held)
            held.pop(key, None)
            return replace(record, handled=handled, held=held)
        if key in incidents:
            incidents[key] = replace(
                incidents[key],
                last_notice_at=now,
                thread=thread,
                shared=shared and thread is not None,
                destination=destination,
                unannounced=False,
            )
    elif key is not None:
        if notice.reannounce and key in incidents:  # the same incident, now known at this destination too
            incidents[key] = replace(
                incidents[key],
                last_notice_at=now,
                thread=thread,
                shared=shared and thread is not None,
                destination=destination,
            )
        elif notice.phase is Phase.OPEN:
            incidents[key] = Incident(
                kind=notice.kind.value,
                opened_at=now,
                last_notice_at=now,
                backup_id=notice.backup.id if notice.backup else None,
                slot=_concern_time(notice),
                detail=notice.detail,
                thread=thread,
                shared=shared and thread is not None,
                destination=destination,
                slot_state=slot_state_of(notice),
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
                slot_state=slot_state_of(notice) if notice.phase is Phase.UPDATE else current.slot_state,
            )
            if thread is not None and current.thread is not None and thread != current.thread:
                incidents[key] = replace(incidents[key], thread=thread, shared=shared)
    retired_at = now if notice.kind is Kind.GONE and record.retired_at is None else record.retired_at
    return replace(record, handled=handled, incidents=incidents, retired_at=retired_at)


def slot_state_of(notice: Notice) -> str:
    """SLOT_STUCK or SLOT_SMALL for a missed slot whose backup is there but not usable, "" otherwise."""
    backup = notice.slot_backup
    if notice.kind is not Kind.MISSING:
        return ""
    if backup is None:
        return notice.slot_state
    if backup.in_progress:
        return SLOT_STUCK
    return SLOT_SMALL if backup.done else ""


def _hours(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def _concern_time(notice: Notice) -> datetime | None:
    """The time an incident is about: the missed slot, or the bad backup's scheduled time."""
    if notice.slot is not None:
        return notice.slot
    return notice.backup.created_at if notice.backup else None


def reannounced(evaluation: Evaluation, destination: str) -> Evaluation:
    """The incidents still open that were announced to another destination (console, another webhook, a bot,
    another channel) are announced once to this one, as openings (critical ones call people, once per outage);
    their reminders due now are replaced by that. An incident of an older version (no destination known) is
    taken as announced here. Successes are never replayed."""
    if not destination:
        return evaluation
    base = evaluation.base
    unknown = {k: replace(inc, destination=destination) for k, inc in base.incidents.items() if not inc.destination}
    if unknown:
        base = replace(base, incidents={**base.incidents, **unknown})
    touched = {n.incident_key for n in evaluation.notices if n.phase is not Phase.REMIND}
    elsewhere = {
        key: inc for key, inc in sorted(base.incidents.items()) if inc.destination != destination and key not in touched
    }
    if not elsewhere:
        return replace(evaluation, base=base) if unknown else evaluation
    notices = [n for n in evaluation.notices if n.incident_key not in elsewhere]
    paged = any(n.mention for n in notices)
    for key, inc in elsewhere.items():
        kind = kind_of(inc.kind)
        again = Notice(
            kind,
            Phase.OPEN,
            key,
            slot=inc.slot,
            detail=inc.detail,
            opened_at=inc.opened_at,
            reannounce=True,
            last_usable_at=base.last_usable_at,
            restore_point=base.pitr_latest,
        )
        if kind in BACKUP_OUTAGE:
            again = replace(again, quiet=paged)
            paged = True
        notices.append(again)
    return replace(evaluation, notices=tuple(notices), base=base)


def muted(evaluation: Evaluation) -> Evaluation:
    """A silenced database's evaluation: nothing is said, everything is tracked. Openings are recorded as never
    announced (`Incident.unannounced`: announced once the silence ends, unless they close first); updates and
    notices are recorded as delivered; the resolution of an incident announced before the silence is held
    (`Record.held`) and said once it ends; reminders and re-announcements wait for the end of the silence."""
    record, now = evaluation.base, evaluation.now
    for notice in evaluation.notices:
        key = notice.incident_key
        if notice.reannounce or notice.after_silence or notice.phase is Phase.REMIND:
            continue
        current = record.incidents.get(key) if key is not None else None
        if key is not None and notice.phase is Phase.RESOLVE and current is not None and not current.unannounced:
            record = replace(record, held={**record.held, key: replace(current, detail=notice.detail)})
        record = apply(record, notice, now)
        if key is not None and notice.phase is Phase.OPEN and key in record.incidents:
            opened = replace(record.incidents[key], unannounced=True, thread=None, shared=False)
            record = replace(record, incidents={**record.incidents, key: opened})
    return Evaluation((), record, now)


def after_silence(evaluation: Evaluation, backups: Sequence[Backup] = ()) -> Evaluation:
    """A database no longer silenced: the resolutions its silence held are said, and each incident still open
    that was never announced is announced as an opening (critical ones call people, once per outage). An
    incident opened during the silence that closes now says nothing; its updates and reminders are folded in
    silently (its opening says where it stands). `backups`: the listing read now (an opening names its backup)."""
    base, now = evaluation.base, evaluation.now
    if not base.held and not any(inc.unannounced for inc in base.incidents.values()):
        return evaluation
    keep: list[Notice] = []
    for notice in evaluation.notices:
        key = notice.incident_key
        current = base.incidents.get(key) if key is not None else None
        if current is not None and current.unannounced and notice.phase is not Phase.OPEN and not notice.reannounce:
            base = apply(base, notice, now)
            continue
        keep.append(notice)
    by_id = {b.id: b for b in backups}
    said = [replace(resolve_notice(k, inc, inc.detail), after_silence=True) for k, inc in sorted(base.held.items())]
    for key, inc in sorted(base.incidents.items()):
        if inc.unannounced:
            said.append(
                Notice(
                    kind_of(inc.kind),
                    Phase.OPEN,
                    key,
                    backup=by_id.get(inc.backup_id or ""),
                    slot=inc.slot,
                    detail=inc.detail,
                    opened_at=inc.opened_at,
                    slot_state=inc.slot_state,
                    after_silence=True,
                )
            )
    announced = {k: inc for k, inc in base.incidents.items() if not inc.unannounced}
    notices = _assign_pages([*said, *keep], announced)
    return Evaluation(with_facts(notices, base), base, now)


def acknowledge(record: Record, incident_kind: str, by: str, now: datetime) -> Record:
    """The record with the open incident `incident_kind` acknowledged by `by` (a Slack user id or `cli:<login>`)
    at `now`: no more reminders while it stays open; its resolution names them. `incident_kind` is the incident's
    key (`failed`, `stuck:<backup id>`) or a kind (every open incident of it). An incident already acknowledged
    keeps its first acknowledgment. KeyError when no such incident is open; SilenceError (a ValueError) when
    `by` names nobody."""
    by = check_by(by)  # SilenceError (a ValueError) when it cannot name anyone
    keys = [incident_kind] if incident_kind in record.incidents else []
    keys = keys or sorted(k for k, inc in record.incidents.items() if inc.kind == incident_kind)
    if not keys:
        raise KeyError(incident_kind)
    incidents = dict(record.incidents)
    for key in keys:
        if not incidents[key].acknowledged_by:
            incidents[key] = replace(incidents[key], acknowledged_by=by, acknowledged_at=now)
    return replace(record, incidents=incidents)


def apply_all(record: Record, notices: Iterable[Notice], now: datetime) -> Record:
    """The record after every notice was delivered."""
    for notice in notices:
        record = apply(record, notice, now)
    return record


# -- one cause, one incident -------------------------------------------------------------------------------------

OUTAGE_MIN_DATABASES = 3  # a region with fewer failing databases is judged database by database


def region_failing(failed: int, attempted: int) -> bool:
    """Whether Scalingo's API failed for most databases of a region in one check (one cause, not many)."""
    return failed >= OUTAGE_MIN_DATABASES and failed * 2 > attempted


def evaluate_outage(
    record: Record, region: str, failed: int, attempted: int, error: str, now: datetime, policy: Policy
) -> Evaluation:
    """The region's API-outage incident: opened after `cannot_check_after` checks in a row where most of the
    region's databases could not be read, reminded while it lasts, closed by a check that reads most of them.
    `api_failures` counts those checks in a row."""
    key = Kind.API_OUTAGE.value
    open_incident = record.incidents.get(key)
    b = _Builder(now, policy)
    if attempted == 0:  # nothing was read in this region this check: no evidence either way
        return Evaluation((), record, now)
    if region_failing(failed, attempted):
        streak = record.api_failures + 1
        detail = f"{failed} of {attempted} databases of {region} could not be read: {error}"
        if open_incident is not None:
            b.remind_or_keep(key, open_incident)
        elif streak >= policy.cannot_check_after:
            in_a_row = f"{streak} checks in a row"
            b.notices.append(Notice(Kind.API_OUTAGE, Phase.OPEN, key, detail=f"{detail} ({in_a_row})"))
        return Evaluation(tuple(b.notices), replace(record, api_failures=streak), now)
    if open_incident is not None:
        b.resolve(key, open_incident, f"{attempted - failed} of {attempted} databases of {region} were read")
    return Evaluation(tuple(b.notices), replace(record, api_failures=0), now)
