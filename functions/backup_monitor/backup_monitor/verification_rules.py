"""Archive verification, the pure part: which backup is due, and what to announce. No clock, no I/O.

A failed verification opens one critical incident per database ("backup archive unreadable"), updated when
another backup fails too and resolved when a later verification passes. A verification that could not run is
said once per reason as a warning (an incident keyed by the reason, never reminded, dropped silently once a
verification runs). The announcements are derived from the record, so one that was not delivered is sent
again by the next check without downloading anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from backup_monitor.archives import Outcome, Verdict
from backup_monitor.config import Policy
from backup_monitor.records import Record, Verification
from backup_monitor.rules import (
    Evaluation,
    Kind,
    Notice,
    Phase,
    remind_notice,
    resolve_notice,
    usable_newest_first,
    with_facts,
)
from backup_monitor.scalingo.models import Backup

UNREADABLE_KEY = Kind.ARCHIVE_UNREADABLE.value
SKIPPED_PREFIX = f"{Kind.VERIFY_SKIPPED.value}:"
RETRY_NOT_RUN = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class VerifyPolicy:
    """How often archives are verified (days; 0 = never) and the largest one downloaded."""

    every_days: float = 7.0
    max_bytes: int = 5_000_000_000
    size_drop_ratio: float = 0.5  # as the rules: a done backup this much below the median is not usable


def newest_usable(backups: Sequence[Backup], size_drop_ratio: float = 0.5) -> Backup | None:
    """The newest usable backup, as the rules mean it (rules.usable_newest_first)."""
    return next(iter(usable_newest_first(backups, size_drop_ratio)), None)


def due_backup(record: Record, backups: Sequence[Backup], now: datetime, policy: VerifyPolicy) -> Backup | None:
    """The backup to verify now, or None: at most once a period, sooner while an unreadable archive is open."""
    if policy.every_days <= 0:
        return None
    candidate = newest_usable(backups, policy.size_drop_ratio)
    if candidate is None:
        return None
    period = timedelta(days=policy.every_days)
    skipped = record.verify_skipped
    if skipped is not None:
        if now - skipped.at < min(period, RETRY_NOT_RUN):
            return None
        if skipped.code == "too_big" and skipped.backup_id == candidate.id:
            return None  # the same archive is still too big
    verified = record.verified
    if verified is None:
        return candidate
    if verified.backup_id == candidate.id:
        return None
    if UNREADABLE_KEY in record.incidents or now - verified.at >= period:
        return candidate
    return None


def record_verdict(record: Record, backup: Backup, verdict: Verdict, now: datetime) -> Record:
    """The record once `verdict` is known about `backup` (announcements come from `announce`)."""
    entry = Verification(
        backup_id=backup.id,
        backup_name=backup.name,
        backup_created_at=backup.created_at,
        size=backup.size,
        at=now,
        outcome=verdict.outcome.value,
        code=verdict.code,
        detail=verdict.detail,
    )
    if verdict.outcome is Outcome.NOT_RUN:
        return replace(record, verify_skipped=entry)
    # A verification ran: forget the reasons it could not before, without a word.
    incidents = {k: v for k, v in record.incidents.items() if not k.startswith(SKIPPED_PREFIX)}
    return replace(record, verified=entry, verify_skipped=None, incidents=incidents)


def _backup(v: Verification) -> Backup:
    return Backup(id=v.backup_id, created_at=v.backup_created_at, status="done", name=v.backup_name, size=v.size)


VERIFICATION_OFF = "Archive verification is switched off (VERIFY_ARCHIVES_EVERY_DAYS=0): nothing more is said about it"


def announce(record: Record, now: datetime, policy: Policy, *, enabled: bool = True) -> list[Notice]:
    """What the verification state of `record` still has to say: open, update, remind, resolve, skipped.

    With verification switched off (`enabled` false), its open incidents are closed and nothing else is said."""
    if not enabled:
        return [
            resolve_notice(key, incident, VERIFICATION_OFF)
            for key, incident in sorted(record.incidents.items())
            if key == UNREADABLE_KEY or key.startswith(SKIPPED_PREFIX)
        ]
    notices: list[Notice] = []
    verified = record.verified
    incident = record.incidents.get(UNREADABLE_KEY)
    if verified is not None and verified.outcome == Outcome.FAILED.value:
        if incident is None:
            notices.append(
                Notice(Kind.ARCHIVE_UNREADABLE, Phase.OPEN, UNREADABLE_KEY, _backup(verified), detail=verified.detail)
            )
        elif incident.backup_id != verified.backup_id:
            notices.append(
                Notice(
                    Kind.ARCHIVE_UNREADABLE,
                    Phase.UPDATE,
                    UNREADABLE_KEY,
                    _backup(verified),
                    detail=verified.detail,
                    opened_at=incident.opened_at,
                    thread=incident.thread,
                )
            )
        elif (reminder := remind_notice(UNREADABLE_KEY, incident, now, policy)) is not None:
            notices.append(reminder)
    elif verified is not None and incident is not None:
        name = verified.backup_name or verified.backup_id
        notices.append(resolve_notice(UNREADABLE_KEY, incident, f"the archive of backup {name} was verified"))
    skipped = record.verify_skipped
    if skipped is not None and f"{SKIPPED_PREFIX}{skipped.code}" not in record.incidents:
        notices.append(
            Notice(
                Kind.VERIFY_SKIPPED,
                Phase.OPEN,
                f"{SKIPPED_PREFIX}{skipped.code}",
                _backup(skipped),
                detail=skipped.detail,
            )
        )
    return notices


def verified_notice(backup: Backup, verdict: Verdict) -> Notice:
    """The success notice of one verification (what was checked, in its detail)."""
    return Notice(Kind.ARCHIVE_VERIFIED, Phase.NOTICE, None, backup, detail=verdict.detail)


def with_archive_notices(evaluation: Evaluation, policy: Policy, *, enabled: bool = True) -> Evaluation:
    """`evaluation` plus what the record's verification state still has to announce (reminders, retries)."""
    extra = with_facts(announce(evaluation.base, evaluation.now, policy, enabled=enabled), evaluation.base)
    if not extra:
        return evaluation
    return replace(evaluation, notices=(*evaluation.notices, *extra))
