"""Sends the daily report exactly once a day, overlapping checks included.

The report has its own state record (`__report__/<regions>`, `__report__/<shard>/<regions>` for a shard of
SCALINGO_API_TOKEN_PARAMETERS: each shard reports on its own databases) holding the local date of the last report sent.
A check that finds the report due claims that record like a database record (conditional write on the version
it read), sends, then commits the date. An overlapping check cannot claim the same version and stays silent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from enum import StrEnum

from backup_monitor.config import ReportTime, Settings, Target
from backup_monitor.delivery import Outbox
from backup_monitor.messages import Message
from backup_monitor.notifiers import Notifier
from backup_monitor.records import Record
from backup_monitor.report import build_report, render_slack
from backup_monitor.state.base import ConflictError, StateError, StateStore, load_renamed
from backup_monitor.state.silences import load_silences

logger = logging.getLogger(__name__)

REPORT_KEY_PREFIX = "__report__/"


class Outcome(StrEnum):
    OFF = "off"
    NOT_DUE = "not due"
    SENT = "sent"
    PRINTED = "printed"  # dry run: shown, nothing recorded
    TAKEN = "taken"  # another check holds the report record: it sends the report
    FAILED = "failed"  # not sent or not recorded: the next check tries again


def report_key(settings: Settings) -> str:
    """The report's state key: one report per set of watched regions (one stack), per shard."""
    return settings.singleton_key(REPORT_KEY_PREFIX, ",".join(settings.regions))


def due_date(schedule: ReportTime, now: datetime, last_reported_on: str | None) -> str | None:
    """The local date (ISO) whose report is due at `now`, or None.

    Due once the local wall clock reads the configured time or later, if that date has no report yet. On the
    day clocks go forward, a time in the skipped hour (02:30 in Europe/Paris) is reached when the clocks jump
    (03:00 local); on the day they go back, a time that occurs twice is reached the first time.
    """
    local = now.astimezone(schedule.tz)
    if local.time() < schedule.at:
        return None
    today = local.date().isoformat()
    if last_reported_on is not None and last_reported_on >= today:
        return None
    return today


def send_daily_report(
    settings: Settings,
    store: StateStore,
    notifier: Notifier,
    targets: Sequence[Target],
    now: datetime,
    owner: str,
    *,
    dry_run: bool = False,
    excluded: int | None = None,
    outbox: Outbox | None = None,
) -> Outcome:
    """Send the report if it is due and no other check sends it; record the date only once Slack took it.

    `outbox`: the check's (paced, inside its budget); without one, a fresh one for `notifier`."""
    sender = outbox or Outbox(notifier)
    schedule = settings.daily_report
    if schedule is None:
        return Outcome.OFF
    key = report_key(settings)
    stamp = now.timestamp()
    try:
        stored = store.load_many([key]).get(key) or Record(key=key)
        day = due_date(schedule, now, stored.reported_on)
        if day is None:
            return Outcome.NOT_DUE
        if stored.claim_owner is not None and (stored.claim_expires_at or 0) >= stamp:
            return Outcome.TAKEN
        records = load_renamed(store, {t.key: t.name for t in targets})
        silences = load_silences(store)
    except StateError as exc:
        logger.error("daily report: cannot read state", extra={"error": str(exc)})
        return Outcome.FAILED
    report = build_report(settings, targets, records, now, excluded=excluded, silences=silences)
    message = render_slack(report, sender.permalink)
    if dry_run:
        return _send(sender, message) or Outcome.PRINTED
    try:
        claimed = store.claim(stored, owner, stamp)
    except ConflictError:
        logger.info("daily report: another check sends it")
        return Outcome.TAKEN
    except StateError as exc:
        logger.error("daily report: cannot claim its record", extra={"error": str(exc)})
        return Outcome.FAILED
    failure = _send(sender, message)
    # Commit in both cases: it releases the claim; the date is recorded only for a delivered report.
    committed = replace(stored, version=claimed.version, reported_on=stored.reported_on if failure else day)
    try:
        store.commit(committed, owner, stamp)
    except StateError as exc:
        logger.error("daily report: could not record it (sent again next check)", extra={"error": str(exc)})
        return Outcome.FAILED
    if failure is None:
        logger.info("daily report sent", extra={"count": len(targets)})
    return failure or Outcome.SENT


def _send(sender: Outbox, message: Message) -> Outcome | None:
    """None when the report was taken (or refused even as plain text: given up, like any message), else FAILED.

    Like every message, a report Slack refuses as malformed is sent again as plain text (delivery.Outbox).
    """
    if sender.send(message) is None:
        logger.error("daily report not delivered (sent again next check)")
        return Outcome.FAILED
    return None
