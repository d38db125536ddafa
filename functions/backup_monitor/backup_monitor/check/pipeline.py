"""One check as a short pipeline of named stages, data flowing one way:

    targets -> fetch+evaluate (concurrent) -> [group -> deliver] per batch -> inhibit -> [group -> deliver]
            -> after (tokens, cursor, daily report, archive verification)

Findings of databases already fetched go out after a short group wait (GROUP_WAIT_SECONDS), not after the
slowest lane. Failed reads wait for the end of fetching: only then can the check tell one Scalingo outage
(one incident for the region: the inhibit stage) from many databases failing on their own.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from datetime import datetime

from backup_monitor.budget import (
    deadline_after,
    delivery_reserve,
    left_keys,
    order_for_check,
    split_lanes,
    time_budget,
)
from backup_monitor.cadence import RETRY, SWEEP, Due, due
from backup_monitor.check.after import daily_report, load_blobs, save_cursor, save_tokens, verify
from backup_monitor.check.deliver import Deliverer
from backup_monitor.check.fetch import evaluate_target, settle
from backup_monitor.check.inhibit import hold_and_judge
from backup_monitor.check.model import ClaimClock, Clients, Run, Summary, Work
from backup_monitor.check.targets import (
    GONE_REASON,
    RETIRE_AFTER,
    Targets,
    advance,
    cached_targets,
    finish_retirements,
    load_discovery,
    target_from_name,
)
from backup_monitor.check.unreadable import unreadable_work
from backup_monitor.config import Settings, Target
from backup_monitor.messages import DatabaseInfo
from backup_monitor.progress import NO_PROGRESS, Progress
from backup_monitor.records import Record
from backup_monitor.rules import (
    CAUSE_ADDON,
    OUTAGE_MIN_DATABASES,
    Phase,
    evaluate_failure,
    evaluate_gone,
    retired,
    rewatched,
)
from backup_monitor.scalingo.errors import OutOfTimeError, ScalingoError
from backup_monitor.state.base import StateError, load_renamed
from backup_monitor.state.silences import active_silences

logger = logging.getLogger(__name__)

STOP_POLL_SECONDS = 0.25  # how often the dispatcher looks at the stop signal while databases are fetched


def run_check(
    settings: Settings,
    clients: Clients,
    now: datetime,
    *,
    dry_run: bool = False,
    only: Sequence[str] = (),
    remaining_seconds: float | None = None,
    stop: threading.Event | None = None,
    progress: Progress = NO_PROGRESS,
) -> Summary:
    """Check every target once; one database's failure never stops the others.

    `remaining_seconds` is the Lambda's remaining time: with CHECK_TIME_LIMIT_SECONDS it bounds the whole check
    (fetching stops early enough to deliver; Slack's waits count against it); what is left goes first next time.
    `stop` (Ctrl-C, SIGTERM): no database is started and no message sent after it is set; what was delivered is
    committed, the claims released and the tokens saved.
    `progress` is told what the check is doing (the command's progress line on a terminal; no-op by default).
    """
    stop = stop or threading.Event()
    summary = Summary(dry_run=dry_run)
    owner = f"check-{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    budget = time_budget(settings.check_time_limit, remaining_seconds)
    deadline = deadline_after(budget, started)
    fetch_deadline = None if deadline is None or budget is None else deadline - delivery_reserve(budget)
    clients.scalingo.begin_check(fetch_deadline, progress=progress)
    silences = active_silences(clients.store, now)
    run = Run(settings, clients, now, owner, dry_run, ClaimClock(now.timestamp(), started, budget), silences)

    # -- targets: the cached list, then discovery carried on with what the due reads leave of the quota --------
    unreadable: dict[str, str] = {}
    adopted: set[str] = set()  # records found under their pre-addon key: written once under the new one
    records: dict[str, Record] = {}

    def load(wanted: Sequence[Target]) -> None:
        fresh = [t for t in wanted if t.key not in records and t.key not in unreadable]
        if fresh:
            keys = {t.key: t.name for t in fresh}
            records.update(load_renamed(clients.store, keys, unreadable=unreadable, adopted=adopted))

    try:
        found = cached_targets(settings, clients, summary=summary)
        load([*found.watched, *found.retired])
        if not settings.monitored and (not only or not found.watched):
            allowance, until = _discovery_allowance(run, found, records, fetch_deadline, started)
            found = advance(
                settings, clients, now, found, allowance=allowance, until=until, summary=summary, save=not dry_run
            )
            load([*found.watched, *found.retired])
    except ScalingoError as exc:
        summary.error = f"could not list the databases to check: {exc}"
        logger.error("could not list databases", extra={"error": str(exc)})
        return summary
    except StateError as exc:
        summary.error = str(exc)
        logger.error("could not read state", extra={"error": str(exc)})
        return summary
    targets = found.watched
    if only:
        wanted = set(only)
        names = {t: {t.key, t.name, f"{t.app}/{t.addon_id}"} for t in targets}
        targets = [t for t in targets if names[t] & wanted]
        unknown = sorted(wanted - set().union(*(names[t] for t in targets)))
        if unknown:  # a typo must not pass for a successful check of nothing
            summary.error = f"unknown databases (not monitored): {', '.join(unknown)}"
            return summary
    for target in targets:  # retired once, listed again (or named in MONITORED_DATABASES): watched again
        record = records.get(target.key)
        if record is not None and record.retired_at is not None:
            logger.info("database listed again, watched again", extra={"target": target.key})
            records[target.key] = rewatched(record)
            adopted.add(target.key)
    summary.targets = len(targets)
    # An unreadable record is its database's problem: not checked (nothing may overwrite it), said once.
    broken = {t.key: t for t in targets if t.key in unreadable}
    summary.unchecked.extend(f"{t.app}/{t.addon_id}" for t in broken.values())
    targets = [t for t in targets if t.key not in broken]
    # -- cadence: only the databases that can have news are read (all of them with --only) ----------------------
    listed_at = found.record.first_listed if found.record is not None else {}
    plan = {t.key: _due(run, records.get(t.key), t, listed_at) for t in targets}
    # Tokens are read for the databases due, and those with an incident (read at every check while it lives).
    hopeful = [t for t in targets if only or plan[t.key] is not None or _has_incident(records.get(t.key))]
    blobs = load_blobs(clients, hopeful, with_cursor=not only)
    left_before = left_keys(blobs)
    owed = set(left_before)
    late = [t for t in targets if t.key in owed and plan[t.key] is None and not _has_incident(records.get(t.key))]
    if late:  # left or not delivered by the previous check, not due otherwise: their tokens too
        load_blobs(clients, late, with_cursor=False)
    needs_token = {t.key for t in targets if clients.scalingo.needs_token(t)}
    for t in targets:
        plan[t.key] = _due(run, records.get(t.key), t, listed_at, cached=t.key not in needs_token, owed=t.key in owed)
    if only:  # a manual check reads what it names
        plan = {t.key: plan[t.key] or Due("asked", now, RETRY) for t in targets}
    summary.not_due = sum(1 for t in targets if plan[t.key] is None)
    watched = targets  # the daily report covers every database, read now or not
    targets = [t for t in targets if plan[t.key] is not None]
    summary.due = len(targets)
    progress.reading(len(targets))

    def priority(t: Target) -> tuple[int, float]:
        d = plan[t.key]
        return (d.urgency, d.since.timestamp()) if d is not None else (SWEEP + 1, 0.0)

    targets = order_for_check(
        targets, left_before, lambda t: t.key in needs_token, clients.scalingo.token_expiry, priority
    )
    works = [Work(t, records.get(t.key) or Record(key=t.key), DatabaseInfo.of(t, None)) for t in targets]
    for work in works:
        work.adopted = work.key in adopted
        work.due = plan[work.key]
    # Retired by discovery: "no longer watched" said once, incidents closed (nothing is read from Scalingo).
    retiring = [
        Work(t, records[t.key], DatabaseInfo.of(t, records[t.key].database), retiring=True)
        for t in found.retired
        if t.key in records and t.key not in unreadable and not retired(records[t.key])
    ]
    rank = {id(w): i for i, w in enumerate(works)}

    deliverer = Deliverer(run, summary, deadline, stop)

    # -- fetch + evaluate, with early delivery of what is ready ---------------------------------------------------
    def examine(work: Work) -> None:
        try:
            _examine(work)
        finally:
            if work.due is not None:  # one of the due databases is read (or left)
                progress.database_done()

    def _examine(work: Work) -> None:
        if stop.is_set() or (fetch_deadline is not None and time.monotonic() >= fetch_deadline):
            work.left = True
            return
        try:
            if work.retiring:
                logger.warning("database no longer listed by discovery, retired", extra={"target": work.key})
                work.gone = True
                settle(work, evaluate_gone(work.record, now, GONE_REASON), run)
                return
            evaluation = evaluate_target(work, settings, clients, now)
            if evaluation is not None:
                settle(work, evaluation, run)
        except Exception as exc:  # a bug costs this database only (its claim, if taken, expires)
            logger.exception("unexpected error checking database", extra={"target": work.target.key})
            work.failed, work.failure, work.evaluation = True, f"internal error ({type(exc).__name__})", None

    held_back: list[Work] = []  # failed reads: judged after fetching (one outage, or each its own)
    lanes = split_lanes(
        [*retiring, *(w for w in works if w.target.key not in needs_token)],
        [w for w in works if w.target.key in needs_token],
        settings.max_workers,
    )
    with ExitStack() as stack:
        futures: dict[Future[None], Work] = {}
        for i, (lane, workers) in enumerate(lanes):
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"check-{i}"))
            futures.update({pool.submit(examine, w): w for w in lane})
        ready: list[Work] = []
        first_ready: float | None = None
        pending = set(futures)
        interrupted = False
        while pending:
            timeout = STOP_POLL_SECONDS
            if first_ready is not None:
                timeout = min(timeout, max(0.0, first_ready + settings.group_wait - time.monotonic()))
            done, pending = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
            if stop.is_set() and not interrupted:
                interrupted = True
                logger.warning("check interrupted: no new database, no new message")
                clients.scalingo.interrupt()
                deliverer.interrupt()
            for future in done:
                future.result()
                work = futures[future]
                if work.failed or work.not_found is not None:
                    held_back.append(work)
                elif work.evaluation is not None:
                    ready.append(work)
                    first_ready = time.monotonic() if first_ready is None else first_ready
            if ready and first_ready is not None and time.monotonic() - first_ready >= settings.group_wait:
                deliverer.deliver(sorted(ready, key=lambda w: rank[id(w)]))
                ready, first_ready = [], None

    # -- evidence: a region whose few due reads failed on Scalingo's side is read a little more ---------------
    if not only:
        probes = _outage_probes(works, [t for t in watched if plan[t.key] is None], records, needs_token)
        for work in probes:
            rank[id(work)] = len(rank)
            examine(work)
            if work.failed or work.not_found is not None:
                held_back.append(work)
            elif work.evaluation is not None:
                ready.append(work)
        works.extend(probes)

    # -- rediscovery for 404s, then one cause one incident ----------------------------------------------------
    deferred = [w for w in held_back if w.not_found is not None]
    if deferred:
        share = (
            None
            if fetch_deadline is None
            else max(2, int(DISCOVERY_FLOOR_SHARE * _capacity(run, fetch_deadline, started)))
        )
        _decide_not_found(deferred, run, found, share)
    final = [*ready, *sorted(held_back, key=lambda w: rank[id(w)])]
    if not only:
        final = hold_and_judge(works, final, run, summary)
    for work in held_back:
        if work.failed and not work.held:
            logger.warning("cannot check database", extra={"target": work.target.key, "error": work.failure})
        elif work.failed:
            logger.info("cannot check database (one outage)", extra={"target": work.target.key, "error": work.failure})
    works.extend(retiring)
    checked = {w.target.key: w.target for w in works} | broken
    side = unreadable_work(run, checked, unreadable)
    if side is not None:
        final.insert(0, side)
    if stop.is_set():
        deliverer.interrupt()
    deliverer.deliver(final)  # interrupted: nothing is sent, but every claimed record is committed and released
    deliverer.close()
    summary.interrupted = stop.is_set()

    # -- after -------------------------------------------------------------------------------------------------
    if not dry_run and (found.retired or deferred or any(w.gone for w in works)):
        _finish_retirements(run)
    if not dry_run:
        save_tokens(clients)
        if not only:  # the next check takes first what this one left or could not deliver
            owing = [w.target.key for w in works if (w.left or w.undelivered) and not w.retiring]
            save_cursor(clients.store, left_before, owing, now)
    _count(works, summary)
    if stop.is_set():
        return summary
    if not only:  # a manual check of a few databases does not stand for the day's report
        daily_report(run, watched, summary, deliverer)
    if not dry_run:
        verify(run, works, summary, deadline, deliverer, stop)
    return summary


def _due(
    run: Run,
    record: Record | None,
    target: Target,
    listed_at: Mapping[str, datetime],
    *,
    cached: bool = False,
    owed: bool = False,
) -> Due | None:
    settings = run.settings
    listed = listed_at.get(target.key)
    if record is not None and _owed_after_silence(record) and run.silenced(target) is None:
        return Due("silence ended", run.now, RETRY)  # what its silence kept quiet is said now
    return due(
        record, run.now, settings.policy, settings.sweep_every_hours, listed_at=listed, token_cached=cached, owed=owed
    )


def _owed_after_silence(record: Record) -> bool:
    return bool(record.held) or any(inc.unannounced for inc in record.incidents.values())


DISCOVERY_FLOOR_SHARE = 0.1  # of a check's main-API requests, always left to discovery (a pass always moves)


def _discovery_allowance(
    run: Run, found: Targets, records: Mapping[str, Record], fetch_deadline: float | None, started: float
) -> tuple[int | None, float | None]:
    """The main-API requests this check gives discovery, and until when (`time.monotonic()`): what the due
    databases leave of what the rate limit allows before fetching stops, and at least a tenth of it; half of
    it when nothing is cached yet (the first check reads what it found). The same share of the fetching time
    (a slow API must not let discovery take it all). None, None without a time limit (the command: discovery
    goes on to the end of its pass)."""
    if fetch_deadline is None:
        return None, None
    window = max(0.0, fetch_deadline - started)
    capacity = _capacity(run, fetch_deadline, started)
    if not found.watched:
        allowance = max(2, capacity // 2)
    else:
        listed_at = found.record.first_listed if found.record is not None else {}
        wanted = sum(1 for t in found.watched if _due(run, records.get(t.key), t, listed_at) is not None)
        allowance = max(2, int(DISCOVERY_FLOOR_SHARE * capacity), capacity - wanted)
    return allowance, started + window * min(1.0, allowance / capacity)


OUTAGE_EVIDENCE = OUTAGE_MIN_DATABASES + 2  # reads a region's failures are judged on, when the cadence read fewer


def _outage_probes(
    works: Sequence[Work],
    not_due: Sequence[Target],
    records: Mapping[str, Record],
    needs_token: set[str],
) -> list[Work]:
    """Databases not due, read now as evidence, in each region where a read failed on Scalingo's side while
    the cadence read fewer than OUTAGE_EVIDENCE databases there: one Scalingo outage must be one incident, not
    a page per database as each comes due (those with a cached addon token first: they cost no main-API request)."""
    probes: list[Work] = []
    for region in sorted({w.target.region for w in works if w.failed and w.api_failed}):
        tried = sum(1 for w in works if w.target.region == region and not w.left and not w.retiring)
        wanted = OUTAGE_EVIDENCE - tried
        if wanted <= 0:
            continue
        spare = sorted(
            (t for t in not_due if t.region == region and t.key in records), key=lambda t: t.key in needs_token
        )
        for target in spare[:wanted]:
            record = records[target.key]
            probes.append(Work(target, record, DatabaseInfo.of(target, record.database)))  # not due: not counted
    return probes


def _capacity(run: Run, fetch_deadline: float, started: float) -> int:
    """The main-API requests the rate limit allows from the start of the check until fetching stops."""
    return max(1, run.clients.scalingo.requests_within(max(0.0, fetch_deadline - started)))


def _has_incident(record: Record | None) -> bool:
    return record is not None and bool(record.incidents)


def _count(works: Sequence[Work], summary: Summary) -> None:
    for work in works:
        if work.left:
            summary.left += 1
            if work.due is not None:
                summary.due_left += 1
                since = work.due.since
                summary.oldest_due = since if summary.oldest_due is None else min(summary.oldest_due, since)
        elif work.gone:
            summary.gone.append(f"{work.target.app}/{work.target.addon_id}")
        elif work.unlisted:
            summary.unlisted.append(f"{work.target.app}/{work.target.addon_id}")
        elif work.failed:
            summary.unchecked.append(f"{work.target.app}/{work.target.addon_id}")
            for notice in work.evaluation.notices if work.evaluation is not None and not work.held else ():
                if notice.phase is Phase.OPEN:  # a "cannot check" opened is a finding too
                    summary.findings[notice.kind.value] += 1
        elif work.evaluation is None:
            summary.skipped.append(work.target.key)
        else:
            summary.checked += 1
            for notice in work.evaluation.notices:
                if notice.phase in (Phase.OPEN, Phase.UPDATE, Phase.NOTICE):
                    summary.findings[notice.kind.value] += 1


def _finish_retirements(run: Run) -> None:
    """Retirements delivered in full leave the discovery record's list of retirements to say (a database with
    no record, never checked, has nothing to say); the others are handed to the next check."""
    try:
        cached = load_discovery(run.settings, run.clients)
        if cached is None or not cached.retiring:
            return
        names = {target_from_name(name).key: name for name in cached.retiring}
        fresh = load_renamed(run.clients.store, names, unreadable={})
        finish_retirements(run.settings, run.clients, run.now, lambda key: retired(fresh.get(key)))
    except StateError as exc:
        logger.warning("could not update the retirements", extra={"error": str(exc)})


def _decide_not_found(works: list[Work], run: Run, found: Targets, allowance: int | None) -> None:
    """Scalingo answered 404 for discovered databases: discovery of their region decides (a 404 alone retires
    nothing). Listed under the same name: a failed read. Listed under another app name: renamed, read again.
    Left out: held until a pass at least RETIRE_AFTER later confirms it (then retired), with nothing said."""
    settings, clients, now = run.settings, run.clients, run.now
    record = found.record or load_discovery(settings, clients)
    pending = record.unlisted if record else {}
    # Regions to discover again: those with a database not yet left out, or left out an hour ago or more.
    due = sorted(
        {w.target.region for w in works if (since := pending.get(w.target.key)) is None or now - since >= RETIRE_AFTER}
    )
    gone: set[str] = set()
    failed: dict[str, Exception] = {}  # regions whose discovery failed: no evidence either way
    reached: set[tuple[str, str]] = set()  # apps whose addons were listed now
    if due:
        first = {(w.target.region, w.target.app) for w in works}
        try:
            # The evidence (the region's app list, the 404s' apps, new apps: a rename) whatever `allowance`; then
            # the pass under way goes on by at most `allowance` requests (the rest at the next checks).
            result = advance(
                settings,
                clients,
                now,
                Targets(record=record),
                allowance=allowance,
                regions=due,
                first=first,
                save=not run.dry_run,
            )
        except (ScalingoError, StateError) as exc:  # every region failed, nothing cached
            failed = dict.fromkeys(due, exc)
        else:
            record, failed, reached = result.record, dict(result.failed), result.listed
            gone = {t.key for t in result.retired}
    if failed:
        logger.warning("rediscovery failed; the 404s count as failed reads", extra={"regions": sorted(failed)})
    pending = record.unlisted if record else {}
    listed = {t.key: t for t in map(target_from_name, record.discovered if record else {}) if t.key not in pending}
    for work in works:
        key = work.target.key
        where = (work.target.region, work.target.app)
        todo = set(record.pass_todo) if record else set()
        late = isinstance(failed.get(where[0]), OutOfTimeError) or f"{where[0]}/{where[1]}" in todo
        if late and where not in reached and key in listed:
            work.left = True  # no time to list its app: the next check
            continue
        if key in gone:
            logger.warning("database deleted, no longer watched", extra={"target": key})
            work.gone = True
            settle(work, evaluate_gone(work.record, now, GONE_REASON), run)
            continue
        if key not in listed:  # left out (the cached list, if this region's discovery failed now)
            logger.info("database not listed by discovery, retired if still unlisted later", extra={"target": key})
            work.unlisted = True
            continue
        current = listed[key]
        if current != work.target:
            logger.info("database renamed, read again", extra={"target": key, "app": current.app})
            work.target, work.not_found = current, None
            evaluation = evaluate_target(work, settings, clients, now)
            if work.not_found is None:
                if evaluation is not None:
                    settle(work, evaluation, run)
                continue
        work.failed = True
        work.failure = work.not_found or "not found"
        evaluation = evaluate_failure(
            work.record, work.failure, now, settings.policy, permanent=False, cause=CAUSE_ADDON
        )
        settle(work, evaluation, run)
