"""The state kept for one monitored database, and its JSON form (shared by every state store)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from backup_monitor.scalingo.errors import PayloadError
from backup_monitor.scalingo.models import Database, parse_time
from backup_monitor.silences import Silence, silences_from_json, silences_to_json

RECORD_FORMAT = 1


@dataclass(frozen=True, slots=True)
class ThreadRef:
    """Where an incident's first message went, so reminders can reply in its thread."""

    channel: str
    ts: str


@dataclass(frozen=True, slots=True)
class Incident:
    """An open problem: announced once, reminded, and resolved."""

    kind: str
    opened_at: datetime
    last_notice_at: datetime
    backup_id: str | None = None
    slot: datetime | None = None
    detail: str = ""
    thread: ThreadRef | None = None
    # The thread is a grouped message shared with other databases' incidents: replies go there, but it is
    # never edited to "resolved" (the others may still be open).
    shared: bool = False
    # Where it was announced: a fingerprint of the destination (never the secret). A new destination hears it.
    destination: str = ""
    # A missed slot whose backup was there but stuck ("stuck") or too small ("small"): its messages say so.
    slot_state: str = ""
    # Who said "I am on it" (a Slack user id, or `cli:<login>`) and when: no reminders while it stays open.
    acknowledged_by: str = ""
    acknowledged_at: datetime | None = None
    # Opened while its database was silenced and never announced: announced (as an opening) once the silence
    # ends, or never if it closes first.
    unannounced: bool = False


@dataclass(frozen=True, slots=True)
class PendingEdit:
    """A resolved incident's first message whose edit (bot only) failed after the resolution reply was accepted."""

    channel: str
    ts: str
    text: str
    attempts: int = 1  # failed attempts so far


@dataclass(frozen=True, slots=True)
class Verification:
    """One archive verification: which backup, when, and its outcome (`ok`, `failed`, `not_run`)."""

    backup_id: str
    backup_name: str
    backup_created_at: datetime
    size: int | None
    at: datetime
    outcome: str
    code: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Record:
    """One monitored database's memory: handled backups, open incidents, cached info, failures."""

    key: str
    version: int = 0
    handled: dict[str, str] = field(default_factory=dict)
    incidents: dict[str, Incident] = field(default_factory=dict)
    database: Database | None = None
    database_fetched_at: datetime | None = None
    api_failures: int = 0
    first_seen_at: datetime | None = None
    discovered: dict[str, str] = field(default_factory=dict)
    # Handled backup ids missing from the latest list, with when they went missing (kept a while: a short
    # answer must not make old backups new again).
    absent_since: dict[str, datetime] = field(default_factory=dict)
    # When the newest usable backup (done, not empty, not suspicious) was scheduled.
    last_usable_at: datetime | None = None
    # The database's addon or app was deleted: it is no longer watched, and nothing more is said about it.
    retired_at: datetime | None = None
    # When the monitor saw the backup schedule change (or periodic backups switched back on): no slot before.
    schedule_since: datetime | None = None
    # Discovery records only: the apps EXCLUDE_APPS left out.
    excluded_apps: tuple[str, ...] = ()
    claim_owner: str | None = None
    claim_expires_at: float | None = None
    reported_on: str | None = None  # the daily-report record only: local ISO date of the last report sent
    pending_edits: tuple[PendingEdit, ...] = ()
    verified: Verification | None = None  # the last verification that ran to a verdict (ok or failed)
    verify_skipped: Verification | None = None  # the last one that could not run, since then
    # Discovery records only: listed keys a pass of their region's discovery left out, and when first left out
    # (retired when a second pass at least an hour later still leaves them out).
    unlisted: dict[str, datetime] = field(default_factory=dict)
    # Discovery records only: databases retired (`region/app/addon_id`) whose "no longer watched" is not yet
    # delivered; handed to every check until their record says it was.
    retiring: tuple[str, ...] = ()
    # Discovery records only: when each database (key) was first listed (a new database's wait is counted from it).
    first_listed: dict[str, datetime] = field(default_factory=dict)
    # Discovery records only: the pass of each region's discovery under way (it carries on across checks): the
    # apps still to list (`region/app`, in order), when each region's pass began, and when one last completed.
    pass_todo: tuple[str, ...] = ()
    pass_started: dict[str, datetime] = field(default_factory=dict)
    pass_completed: dict[str, datetime] = field(default_factory=dict)
    # The latest schedule slot a usable backup filled: a short answer that omits that backup keeps it filled.
    filled_slot: datetime | None = None
    # Handled backups made in the last days (id -> created_at): an answer that omits one of them while listing
    # older ones is not data.
    recent: dict[str, datetime] = field(default_factory=dict)
    # When the current streak of failed reads began (None while reads succeed).
    failing_since: datetime | None = None
    # Point-in-time recovery: the recovery window as last read (None: no PITR), and when it was last asked.
    pitr_earliest: datetime | None = None
    pitr_latest: datetime | None = None
    pitr_read_at: datetime | None = None
    # When the database was last read in full with every notice delivered (kept to the hour: see cadence.py).
    read_at: datetime | None = None
    # The head of a record stored in chunks (see state/chunks.py): how many part records hold its collections,
    # and the generation they were written as (0 parts: everything is inline, as before).
    chunk_parts: int = 0
    chunk_generation: int = 0
    # The silences record only (state/silences.py): every silence, active and recently ended.
    silences: tuple[Silence, ...] = ()
    # Incidents announced before a silence and closed during it: their resolution is said once it ends.
    held: dict[str, Incident] = field(default_factory=dict)

    def content(self) -> dict[str, Any]:
        """What decides whether a write is needed: everything but the version and the claim."""
        return record_to_json(self)

    def evolve(self, **changes: Any) -> Record:
        return replace(self, **changes)


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse(value: Any) -> datetime | None:
    return parse_time(value, "state record") if isinstance(value, str) else None


def record_to_json(record: Record) -> dict[str, Any]:
    """The record's data as plain JSON types (version and claim are kept beside it by the stores)."""
    return {
        "format": RECORD_FORMAT,
        "handled": dict(sorted(record.handled.items())),
        "incidents": {key: _incident_to_json(inc) for key, inc in sorted(record.incidents.items())},
        "database": record.database.to_json() if record.database else None,
        "database_fetched_at": _time(record.database_fetched_at),
        "api_failures": record.api_failures,
        "first_seen_at": _time(record.first_seen_at),
        **({"discovered": dict(sorted(record.discovered.items()))} if record.discovered else {}),
        **(
            {"absent_since": {k: _time(v) for k, v in sorted(record.absent_since.items())}}
            if record.absent_since
            else {}
        ),
        **({"last_usable_at": _time(record.last_usable_at)} if record.last_usable_at else {}),
        **({"retired_at": _time(record.retired_at)} if record.retired_at else {}),
        **({"schedule_since": _time(record.schedule_since)} if record.schedule_since else {}),
        **({"excluded_apps": sorted(record.excluded_apps)} if record.excluded_apps else {}),
        **({"reported_on": record.reported_on} if record.reported_on else {}),
        **({"pending_edits": [_edit_to_json(e) for e in record.pending_edits]} if record.pending_edits else {}),
        **({"verified": _verification_to_json(record.verified)} if record.verified else {}),
        **({"verify_skipped": _verification_to_json(record.verify_skipped)} if record.verify_skipped else {}),
        **({"unlisted": _times_to_json(record.unlisted)} if record.unlisted else {}),
        **({"retiring": sorted(record.retiring)} if record.retiring else {}),
        **({"filled_slot": _time(record.filled_slot)} if record.filled_slot else {}),
        **({"recent": _times_to_json(record.recent)} if record.recent else {}),
        **({"failing_since": _time(record.failing_since)} if record.failing_since else {}),
        **({"read_at": _time(record.read_at)} if record.read_at else {}),
        **({"first_listed": _times_to_json(record.first_listed)} if record.first_listed else {}),
        **({"pass_todo": list(record.pass_todo)} if record.pass_todo else {}),
        **({"pass_started": _times_to_json(record.pass_started)} if record.pass_started else {}),
        **({"pass_completed": _times_to_json(record.pass_completed)} if record.pass_completed else {}),
        **({"pitr_earliest": _time(record.pitr_earliest)} if record.pitr_earliest else {}),
        **({"pitr_latest": _time(record.pitr_latest)} if record.pitr_latest else {}),
        **({"pitr_read_at": _time(record.pitr_read_at)} if record.pitr_read_at else {}),
        **({"chunk_parts": record.chunk_parts} if record.chunk_parts else {}),
        **({"chunk_generation": record.chunk_generation} if record.chunk_generation else {}),
        **({"silences": silences_to_json(record.silences)} if record.silences else {}),
        **({"held": {k: _incident_to_json(v) for k, v in sorted(record.held.items())}} if record.held else {}),
    }


def _incident_to_json(inc: Incident) -> dict[str, Any]:
    return {
        "kind": inc.kind,
        "opened_at": _time(inc.opened_at),
        "last_notice_at": _time(inc.last_notice_at),
        "backup_id": inc.backup_id,
        "slot": _time(inc.slot),
        "detail": inc.detail,
        "thread": [inc.thread.channel, inc.thread.ts] if inc.thread else None,
        **({"shared": True} if inc.shared else {}),
        **({"destination": inc.destination} if inc.destination else {}),
        **({"slot_state": inc.slot_state} if inc.slot_state else {}),
        **({"acknowledged_by": inc.acknowledged_by} if inc.acknowledged_by else {}),
        **({"acknowledged_at": _time(inc.acknowledged_at)} if inc.acknowledged_at else {}),
        **({"unannounced": True} if inc.unannounced else {}),
    }


def _incidents_from_json(raw_incidents: Any) -> dict[str, Incident]:
    incidents = {}
    for inc_key, raw in (raw_incidents or {}).items():
        thread = raw.get("thread")
        opened = _parse(raw.get("opened_at"))
        last = _parse(raw.get("last_notice_at"))
        if opened is None or last is None:
            continue
        incidents[str(inc_key)] = Incident(
            kind=str(raw.get("kind", "")),
            opened_at=opened,
            last_notice_at=last,
            backup_id=raw.get("backup_id"),
            slot=_parse(raw.get("slot")),
            detail=str(raw.get("detail") or ""),
            thread=ThreadRef(str(thread[0]), str(thread[1])) if thread else None,
            shared=bool(raw.get("shared")),
            destination=str(raw.get("destination") or ""),
            slot_state=str(raw.get("slot_state") or ""),
            acknowledged_by=str(raw.get("acknowledged_by") or ""),
            acknowledged_at=_parse(raw.get("acknowledged_at")),
            unannounced=bool(raw.get("unannounced")),
        )
    return incidents


def _times_to_json(times: dict[str, datetime]) -> dict[str, str | None]:
    return {k: _time(v) for k, v in sorted(times.items())}


def _times_from_json(raw: Any) -> dict[str, datetime]:
    return {str(k): when for k, v in (raw or {}).items() if (when := _parse(v)) is not None}


def _edit_to_json(edit: PendingEdit) -> dict[str, Any]:
    return {"channel": edit.channel, "ts": edit.ts, "text": edit.text, "attempts": edit.attempts}


def _edits_from_json(raw: Any) -> tuple[PendingEdit, ...]:
    if not isinstance(raw, list):
        return ()
    return tuple(
        PendingEdit(str(e["channel"]), str(e["ts"]), str(e.get("text") or ""), int(e.get("attempts") or 1))
        for e in raw
        if isinstance(e, dict) and e.get("channel") and e.get("ts")
    )


def _verification_to_json(v: Verification) -> dict[str, Any]:
    return {
        "backup_id": v.backup_id,
        "backup_name": v.backup_name,
        "backup_created_at": _time(v.backup_created_at),
        "size": v.size,
        "at": _time(v.at),
        "outcome": v.outcome,
        "code": v.code,
        "detail": v.detail,
    }


def _verification_from_json(raw: Any) -> Verification | None:
    if not isinstance(raw, dict):
        return None
    created, at = _parse(raw.get("backup_created_at")), _parse(raw.get("at"))
    if created is None or at is None:
        return None
    size = raw.get("size")
    return Verification(
        backup_id=str(raw.get("backup_id") or ""),
        backup_name=str(raw.get("backup_name") or ""),
        backup_created_at=created,
        size=size if isinstance(size, int) else None,
        at=at,
        outcome=str(raw.get("outcome") or ""),
        code=str(raw.get("code") or ""),
        detail=str(raw.get("detail") or ""),
    )


class RecordFormatError(ValueError):
    """A stored record cannot be read: corrupt, of the wrong shape, or written by a newer version.

    The message names the record's key and the fault, never the record's content."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"state record {key!r} {problem}")
        self.key = key
        self.problem = problem


def record_from_json(
    key: str,
    data: dict[str, Any],
    version: int,
    claim_owner: str | None = None,
    claim_expires_at: float | None = None,
) -> Record:
    """The inverse of record_to_json; RecordFormatError naming the record when it cannot be read (the stores
    report it as an UnreadableRecordError, a StateError).

    A record of a newer format is refused: this version would misread it, and must never rewrite it."""
    fmt = data.get("format", RECORD_FORMAT)
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 1:
        raise RecordFormatError(key, "has no valid format number")
    if fmt > RECORD_FORMAT:
        raise RecordFormatError(
            key, f"was written by a newer version of the monitor (format {fmt}, this one reads up to {RECORD_FORMAT})"
        )
    try:
        return _record_from_data(key, data, version, claim_owner, claim_expires_at)
    except _PARSE_ERRORS as exc:
        # The reason names the kind of fault only: the record's content (thread ids, names) stays out of logs.
        raise RecordFormatError(key, f"has a field of the wrong type or shape ({type(exc).__name__})") from None


# What a field of the wrong type or shape raises while a record is parsed (PayloadError: an unreadable time).
_PARSE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError, PayloadError)


def _record_from_data(
    key: str,
    data: dict[str, Any],
    version: int,
    claim_owner: str | None,
    claim_expires_at: float | None,
) -> Record:
    incidents = _incidents_from_json(data.get("incidents"))
    database = data.get("database")
    return Record(
        key=key,
        version=version,
        handled={str(k): str(v) for k, v in (data.get("handled") or {}).items()},
        incidents=incidents,
        database=Database.from_json(database) if database else None,
        database_fetched_at=_parse(data.get("database_fetched_at")),
        api_failures=int(data.get("api_failures") or 0),
        first_seen_at=_parse(data.get("first_seen_at")),
        discovered={str(k): str(v) for k, v in (data.get("discovered") or {}).items()},
        absent_since=_times_from_json(data.get("absent_since")),
        last_usable_at=_parse(data.get("last_usable_at")),
        retired_at=_parse(data.get("retired_at")),
        schedule_since=_parse(data.get("schedule_since")),
        excluded_apps=tuple(str(x) for x in (data.get("excluded_apps") or [])),
        claim_owner=claim_owner,
        claim_expires_at=claim_expires_at,
        reported_on=str(data["reported_on"]) if data.get("reported_on") else None,
        pending_edits=_edits_from_json(data.get("pending_edits")),
        verified=_verification_from_json(data.get("verified")),
        verify_skipped=_verification_from_json(data.get("verify_skipped")),
        unlisted=_times_from_json(data.get("unlisted")),
        retiring=tuple(str(x) for x in (data.get("retiring") or [])),
        filled_slot=_parse(data.get("filled_slot")),
        recent=_times_from_json(data.get("recent")),
        failing_since=_parse(data.get("failing_since")),
        read_at=_parse(data.get("read_at")),
        first_listed=_times_from_json(data.get("first_listed")),
        pass_todo=tuple(str(x) for x in (data.get("pass_todo") or [])),
        pass_started=_times_from_json(data.get("pass_started")),
        pass_completed=_times_from_json(data.get("pass_completed")),
        pitr_earliest=_parse(data.get("pitr_earliest")),
        pitr_latest=_parse(data.get("pitr_latest")),
        pitr_read_at=_parse(data.get("pitr_read_at")),
        chunk_parts=int(data.get("chunk_parts") or 0),
        chunk_generation=int(data.get("chunk_generation") or 0),
        silences=silences_from_json(data.get("silences")),
        held=_incidents_from_json(data.get("held")),
    )
