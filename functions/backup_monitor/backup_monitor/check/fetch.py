"""Stage `fetch` (+ `evaluate`): read one database from Scalingo, let the pure rules decide, get download
links, then claim its record when there is something to send (or save it when only the state changed).

Runs in worker threads; one database's failure never reaches another's."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from backup_monitor.cadence import with_read_at
from backup_monitor.check.model import Clients, Run, Work
from backup_monitor.check.targets import named_in_settings
from backup_monitor.config import Settings, Target
from backup_monitor.messages import DatabaseInfo
from backup_monitor.records import Record
from backup_monitor.rules import (
    CAUSE_ADDON,
    CAUSE_INTERNAL,
    CAUSE_SCALINGO,
    CAUSE_TOKEN,
    Evaluation,
    Kind,
    Phase,
    after_silence,
    apply_all,
    evaluate,
    evaluate_failure,
    implausible_answer,
    muted,
    reannounced,
    with_database,
)
from backup_monitor.scalingo.client import ScalingoClient
from backup_monitor.scalingo.errors import (
    AuthenticationError,
    NotFoundError,
    OutOfTimeError,
    PayloadError,
    ScalingoError,
    UnavailableError,
)
from backup_monitor.scalingo.models import Database
from backup_monitor.state.base import ConflictError, StateError
from backup_monitor.verification_rules import with_archive_notices

logger = logging.getLogger(__name__)

DATABASE_INFO_MAX_AGE = timedelta(days=1)
PITR_REFRESH = timedelta(hours=1)  # a healthy recovery window is written to the state at most this often
# A database that had a recovery window and now answers "no PITR" keeps the window it had (aging, so it pages
# "behind" if that lasts past PITR_MAX_LAG_HOURS) until the last window read is this old: PITR switched off.
PITR_FORGET_AFTER = timedelta(days=1)
# One database's answer costs at most this much: a list of thousands of new backups (a bug, a hostile answer)
# announces the newest, records the rest silently, and asks for this many download links.
MAX_SUCCESS_NOTICES_PER_DATABASE = 10
MAX_LINKS_PER_DATABASE = 5


def _needs_fresh_info(evaluation: Evaluation) -> bool:
    """A "missing" or "periodic backups off" finding is decided on the database's current schedule."""
    return any(
        n.kind in (Kind.MISSING, Kind.PERIODIC_OFF) and n.phase in (Phase.OPEN, Phase.UPDATE)
        for n in evaluation.notices
    )


def evaluate_target(work: Work, settings: Settings, clients: Clients, now: datetime) -> Evaluation | None:
    """The rules' decision for one target, or None when a 404 must wait for rediscovery (or time ran out)."""
    target, record = work.target, work.record
    policy = settings.policy
    try:
        database = record.database
        fetched = record.database_fetched_at
        fresh = database is None or fetched is None or now - fetched >= DATABASE_INFO_MAX_AGE
        if fresh or database is None:
            database = clients.scalingo.get_database(target)
            record = with_database(record, database, now)
        work.info = DatabaseInfo.of(target, database)
        listing = clients.scalingo.read_backups(target)
        if listing.skipped and not listing.backups:
            raise PayloadError(f"{target.app}/{target.addon_id}: none of the {listing.skipped} backup entries reads")
        backups = list(listing.backups)
        work.backups = backups
        record = with_recovery_window(record, database, clients.scalingo, target, now, policy.pitr_max_lag_hours)
        skipped, problems = listing.skipped, listing.problems
        problem = implausible_answer(record, database, backups, now, policy)
        if problem is not None:
            reason, confirmable = problem
            if not confirmable or record.api_failures + 1 < policy.cannot_check_after:
                raise UnavailableError(f"{target.app}/{target.addon_id}: {reason}")
            logger.warning(
                "the same unlikely answer again: taken as data", extra={"target": target.key, "error": reason}
            )
        evaluation = evaluate(record, database, backups, now, policy, skipped=skipped, problems=problems)
        if not fresh and _needs_fresh_info(evaluation):
            # The cached schedule may be a day old: a moved or re-enabled schedule must not page.
            database = clients.scalingo.get_database(target)
            record = with_database(record, database, now)
            work.info = DatabaseInfo.of(target, database)
            evaluation = evaluate(record, database, backups, now, policy, skipped=skipped, problems=problems)
        work.database = database
        verifying = settings.verify_archives_every_days > 0
        return bounded(with_archive_notices(evaluation, policy, enabled=verifying))
    except OutOfTimeError:  # no main-API request may start now: nothing was done, the next check does it
        work.left = True
        return None
    except NotFoundError as exc:
        if not named_in_settings(settings, target):
            work.not_found = str(exc)  # deleted, or a glitch: rediscovery decides
            return None
        return _failed(work, exc, now, settings, permanent=True)
    except ScalingoError as exc:
        return _failed(work, exc, now, settings, permanent=isinstance(exc, AuthenticationError))
    except Exception as exc:  # a bug must cost one database, not the whole check
        logger.exception("unexpected error checking database", extra={"target": target.key})
        work.failed = True
        work.failure = f"internal error ({type(exc).__name__})"
        return evaluate_failure(record, work.failure, now, policy, permanent=False, cause=CAUSE_INTERNAL)


def _asks_recovery_window(record: Record, database: Database, now: datetime) -> bool:
    """PostgreSQL databases, and any that answered with a window, at every check; the others once a day."""
    if database.type_name == "postgresql" or record.pitr_latest is not None:
        return True
    return record.pitr_read_at is None or now - record.pitr_read_at >= DATABASE_INFO_MAX_AGE


def with_recovery_window(
    record: Record, database: Database, scalingo: ScalingoClient, target: Target, now: datetime, lag_hours: float
) -> Record:
    """The record with point-in-time recovery's window as read now (one database-API request, with the addon
    token already held), or as it was when it cannot be read (the rules give no verdict on an old read)."""
    if not _asks_recovery_window(record, database, now) or not scalingo.has_time():
        return record  # not due, or fetching time is over: the window is read at the next check
    try:
        window = scalingo.recovery_window(target)
    except OutOfTimeError:
        return record
    except ScalingoError as exc:
        logger.warning("recovery window not read", extra={"target": target.key, "error": str(exc)})
        return record
    read_at = record.pitr_read_at
    if window is None:
        if record.pitr_latest is None and read_at is not None and now - read_at < DATABASE_INFO_MAX_AGE:
            return record  # still no PITR: nothing to write
        if record.pitr_latest is not None and (read_at is None or now - read_at < PITR_FORGET_AFTER):
            # A window seen before: one "no PITR" answer (a glitch) is not evidence. The window is kept as it
            # was read, and ages: it is forgotten once the answers say "no PITR" for PITR_FORGET_AFTER.
            return record
        return replace(record, pitr_earliest=None, pitr_latest=None, pitr_read_at=now)
    lag = timedelta(hours=lag_hours)
    stored = record.pitr_latest
    # A healthy window advances at every read: written at most every PITR_REFRESH (the verdict cannot change in
    # between); whenever either read is behind, written at once (the alert says the exact restore point).
    recent = stored is not None and read_at is not None and now - read_at < PITR_REFRESH
    if recent and stored is not None and now - stored <= lag and now - window.latest <= lag:
        return record
    return replace(record, pitr_earliest=window.earliest, pitr_latest=window.latest, pitr_read_at=now)


def _failed(work: Work, exc: ScalingoError, now: datetime, settings: Settings, *, permanent: bool) -> Evaluation:
    work.failed = True  # logged once the check knows whether one outage explains it (pipeline)
    work.failure = str(exc)
    work.api_failed = not isinstance(exc, NotFoundError)
    work.info = DatabaseInfo.of(work.target, work.record.database)
    cause = (
        CAUSE_TOKEN
        if isinstance(exc, AuthenticationError)
        else CAUSE_ADDON
        if isinstance(exc, NotFoundError)
        else CAUSE_SCALINGO
    )
    return evaluate_failure(work.record, str(exc), now, settings.policy, permanent=permanent, cause=cause)


def bounded(evaluation: Evaluation) -> Evaluation:
    """At most MAX_SUCCESS_NOTICES_PER_DATABASE success notices (the newest); older new successes are recorded
    as handled without a message."""
    successes = [n for n in evaluation.notices if n.kind is Kind.SUCCEEDED]
    if len(successes) <= MAX_SUCCESS_NOTICES_PER_DATABASE:
        return evaluation
    newest = sorted(successes, key=lambda n: n.backup.created_at if n.backup else datetime.min, reverse=True)
    silent = newest[MAX_SUCCESS_NOTICES_PER_DATABASE:]
    logger.warning("too many new successful backups, announcing the newest", extra={"count": len(successes)})
    quiet = {id(n) for n in silent}
    kept = tuple(n for n in evaluation.notices if id(n) not in quiet)
    return replace(evaluation, notices=kept, base=apply_all(evaluation.base, silent, evaluation.now))


def settle(work: Work, evaluation: Evaluation, run: Run) -> None:
    """Fetch download links, then claim the record (something to send) or save it (only state changed)."""
    settings, clients = run.settings, run.clients
    target = work.target
    silence = run.silenced(target)
    if silence is not None:  # nothing said (no link asked for), everything tracked: said when the silence ends
        evaluation = muted(evaluation)
    else:
        evaluation = after_silence(evaluation, work.backups)
    if not run.dry_run and silence is None:  # a dry run prints to the console: not a new destination
        evaluation = reannounced(evaluation, run.destination)
    # SLACK_INTERACTIVE: no link is asked for now (no token goes to the channel); a button asks when clicked.
    wants_links = settings.download_links and not settings.slack_interactive
    if wants_links and settings.policy.success_notices != "off" and not work.failed:
        wanted = [n for n in evaluation.notices if n.kind is Kind.SUCCEEDED and n.backup is not None]
        for notice in wanted[-MAX_LINKS_PER_DATABASE:]:
            assert notice.backup is not None
            try:
                work.links[notice.backup.id] = clients.scalingo.archive_link(target, notice.backup.id)
            except OutOfTimeError:
                break
            except ScalingoError as exc:
                logger.warning("download link dropped", extra={"target": target.key, "error": str(exc)})
    if run.dry_run:
        work.evaluation = evaluation
        return
    try:
        if work.adopted:
            # Adopted from its pre-addon key (or retired and listed again): written as it is before anything
            # else (a claim on a record not yet stored writes no data, and a cut after it would forget what the
            # old record knew).
            work.record = run.save(work.record)
            evaluation = replace(evaluation, base=replace(evaluation.base, version=work.record.version))
        if evaluation.notices or work.record.pending_edits:
            work.claimed = run.claim(work.record)  # `read_at` is noted once every message is delivered
        else:
            base = evaluation.base if work.failed else with_read_at(evaluation.base, run.now)
            if base.content() != work.record.content():
                run.save(replace(base, version=work.record.version))
    except ConflictError:
        logger.info("another check holds this database, skipping it", extra={"target": target.key})
        work.failed = False
        return
    except StateError as exc:
        logger.error("cannot write state", extra={"target": target.key, "error": str(exc)})
        work.failed = True
        work.failure = str(exc)
        work.api_failed = False
        return
    work.evaluation = evaluation
