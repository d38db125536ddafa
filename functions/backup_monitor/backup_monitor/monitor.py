"""One check: targets -> fetch (concurrently) -> rules -> claim -> send -> commit what was delivered."""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from backup_monitor.budget import (
    CURSOR_KEY,
    deadline_after,
    left_keys,
    order_for_check,
    save_cursor_if_changed,
    split_lanes,
    time_budget,
)
from backup_monitor.config import Settings, Target
from backup_monitor.delivery import GIVEN_UP, Outbox
from backup_monitor.messages import DatabaseInfo, render, render_digest, render_success
from backup_monitor.notifiers import Notifier
from backup_monitor.records import PendingEdit, Record, ThreadRef
from backup_monitor.rules import (
    Evaluation,
    Kind,
    Notice,
    Phase,
    apply,
    evaluate,
    evaluate_failure,
    evaluate_gone,
    implausible_answer,
    with_database,
)
from backup_monitor.scalingo.client import ScalingoClient
from backup_monitor.scalingo.errors import (
    AuthenticationError,
    NotFoundError,
    OutOfTimeError,
    ScalingoError,
    UnavailableError,
)
from backup_monitor.scalingo.models import Backup, Database
from backup_monitor.state.base import Blob, ConflictError, StateError, StateStore
from backup_monitor.state.tokens import restore_tokens, save_tokens, token_keys
from backup_monitor.verification import Candidate, verify_archives
from backup_monitor.verification_rules import with_archive_notices

logger = logging.getLogger(__name__)

DATABASE_INFO_MAX_AGE = timedelta(days=1)
DISCOVERY_KEY_PREFIX = "__discovery__/"
GONE_REASON = "its addon or its app was deleted (Scalingo answers 404 and discovery no longer lists it)"


@dataclass(slots=True)
class Clients:
    """The three outside parties of a check (built once per cold start or command run)."""

    scalingo: ScalingoClient
    store: StateStore
    notifier: Notifier


@dataclass(slots=True)
class Summary:
    """What a check did; decides the exit status and feeds the metrics."""

    targets: int = 0
    checked: int = 0
    unchecked: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    excluded: int = 0
    gone: list[str] = field(default_factory=list)
    findings: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    undelivered: int = 0
    error: str | None = None
    dry_run: bool = False
    given_up: int = 0
    delivery_error: str | None = None
    left: int = 0

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and not self.unchecked
            and self.undelivered == 0
            and self.given_up == 0
            and self.delivery_error is None
        )

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def line(self) -> str:
        """One human line for standard error and the logs."""
        found = ", ".join(f"{count} {kind.replace('_', ' ')}" for kind, count in sorted(self.findings.items()))
        parts = [
            f"{self.checked}/{self.targets} databases checked",
            f"findings: {found or 'none'}",
            f"messages {'printed' if self.dry_run else 'sent'}: {self.sent}",
        ]
        if self.undelivered:
            parts.append(f"undelivered: {self.undelivered} (retried next check)")
        if self.given_up:
            parts.append(f"given up: {self.given_up} (Slack refused them even as plain text; see the log)")
        if self.delivery_error:
            parts.append(self.delivery_error)
        if self.unchecked:
            parts.append(f"could not check: {', '.join(self.unchecked[:5])}{' …' if len(self.unchecked) > 5 else ''}")
        if self.gone:
            parts.append(f"no longer watched (deleted): {', '.join(self.gone[:5])}{' …' if len(self.gone) > 5 else ''}")
        if self.excluded:
            parts.append(f"excluded by EXCLUDE_APPS: {self.excluded}")
        if self.skipped:
            parts.append(f"skipped (another check holds them): {len(self.skipped)}")
        if self.left:
            parts.append(f"left for the next check (time limit): {self.left}")
        if self.error:
            parts.append(f"error: {self.error}")
        return "; ".join(parts)


@dataclass(slots=True)
class _Work:
    """One target's progress through a check."""

    target: Target
    record: Record
    info: DatabaseInfo
    evaluation: Evaluation | None = None
    links: dict[str, str] = field(default_factory=dict)
    claimed: Record | None = None
    delivered: list[tuple[Notice, ThreadRef | None]] = field(default_factory=list)
    failed: bool = False
    left: bool = False
    not_found: str | None = None
    gone: bool = False
    backups: list[Backup] = field(default_factory=list)


def _info(target: Target, database: Database | None, provider: str = "") -> DatabaseInfo:
    return DatabaseInfo(
        target.region,
        target.app,
        target.addon_id,
        database.resource_id if database else "",
        database.type_name if database else (provider or "database"),
    )


def resolve_targets(
    settings: Settings, clients: Clients, now: datetime, *, force: bool = False, summary: Summary | None = None
) -> list[Target]:
    """The configured databases, or every database the token can see (discovery cached in state).

    Apps matched by EXCLUDE_APPS are left out (their addons are not even listed); `force` ignores the cache.
    """
    if settings.monitored:
        return list(settings.monitored)
    key = DISCOVERY_KEY_PREFIX + ",".join(settings.regions)
    cached = clients.store.load_many([key]).get(key)
    max_age = timedelta(hours=settings.discovery_every_hours)
    if not force and cached and cached.database_fetched_at and now - cached.database_fetched_at < max_age:
        return _kept(settings, cached.discovered, cached.excluded_apps, summary)
    excluded: list[str] = []
    try:
        found = clients.scalingo.discover(settings.regions, exclude=settings.excluded, excluded=excluded)
    except ScalingoError as exc:
        if cached and cached.discovered and not force:
            logger.warning("discovery failed, using the previous list", extra={"error": str(exc)})
            return _kept(settings, cached.discovered, cached.excluded_apps, summary)
        raise
    discovered = {Target(d.region, d.app, d.addon_id).key: d.provider for d in found}
    record = replace(
        cached or Record(key=key), discovered=discovered, database_fetched_at=now, excluded_apps=tuple(excluded)
    )
    try:
        clients.store.save(record, now.timestamp())
    except StateError as exc:
        logger.warning("could not cache the discovered databases", extra={"error": str(exc)})
    logger.info("discovered databases", extra={"count": len(discovered)})
    return _kept(settings, discovered, tuple(excluded), summary)


def _kept(
    settings: Settings, discovered: dict[str, str], excluded_apps: tuple[str, ...], summary: Summary | None
) -> list[Target]:
    """The discovered targets EXCLUDE_APPS keeps (the patterns may have changed since the list was cached)."""
    targets = [_target_from_key(k) for k in sorted(discovered)]
    kept = [t for t in targets if not settings.excluded(t.app)]
    if summary is not None:
        summary.excluded = len(set(excluded_apps)) + len({t.app for t in targets if settings.excluded(t.app)})
    return kept


def _target_from_key(key: str) -> Target:
    region, app, addon_id = key.split("/", 2)
    return Target(region, app, addon_id)


def run_check(
    settings: Settings,
    clients: Clients,
    now: datetime,
    *,
    dry_run: bool = False,
    only: Sequence[str] = (),
    remaining_seconds: float | None = None,
) -> Summary:
    """Check every target once; one database's failure never stops the others.

    `remaining_seconds` is the Lambda's remaining time: with CHECK_TIME_LIMIT_SECONDS it bounds the time spent
    starting databases; the ones left go first next time."""
    summary = Summary(dry_run=dry_run)
    owner = f"check-{uuid.uuid4().hex[:12]}"
    deadline = deadline_after(time_budget(settings.check_time_limit, remaining_seconds))
    clients.scalingo.begin_check(deadline)
    try:
        targets = resolve_targets(settings, clients, now, summary=summary)
    except (ScalingoError, StateError) as exc:
        summary.error = f"could not list the databases to check: {exc}"
        logger.error("could not list databases", extra={"error": str(exc)})
        return summary
    if only:
        wanted = set(only)
        targets = [t for t in targets if t.key in wanted or f"{t.app}/{t.addon_id}" in wanted]
        unknown = sorted(wanted - {t.key for t in targets} - {f"{t.app}/{t.addon_id}" for t in targets})
        if unknown:  # a typo must not pass for a successful check of nothing
            summary.error = f"unknown databases (not monitored): {', '.join(unknown)}"
            return summary
    summary.targets = len(targets)
    try:
        records = clients.store.load_many([t.key for t in targets])
    except StateError as exc:
        summary.error = str(exc)
        logger.error("could not read state", extra={"error": str(exc)})
        return summary

    # A deleted database was said once to be no longer watched: nothing more about it, ever (no token read either).
    targets = [t for t in targets if _watched(records.get(t.key), settings, t)]
    summary.targets = len(targets)
    blobs = _load_blobs(clients, targets, with_cursor=not only)
    left_before = left_keys(blobs)
    needs_token = {t.key for t in targets if clients.scalingo.needs_token(t)}
    targets = order_for_check(targets, left_before, lambda t: t.key in needs_token, clients.scalingo.token_expiry)

    works = [_Work(t, records.get(t.key) or Record(key=t.key), _info(t, None)) for t in targets]
    lanes = split_lanes(
        [w for w in works if w.target.key not in needs_token],
        [w for w in works if w.target.key in needs_token],
        settings.max_workers,
    )
    with ExitStack() as stack:
        futures = []
        for i, (lane, workers) in enumerate(lanes):
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"check-{i}"))
            futures += [
                pool.submit(_examine_in_time, w, deadline, settings, clients, now, owner, dry_run) for w in lane
            ]
        for future in futures:
            future.result()
    deferred = [w for w in works if w.not_found is not None]
    if deferred:
        _decide_not_found(deferred, settings, clients, now, owner, dry_run)
    if not dry_run:
        _save_tokens(clients)

    for work in works:
        if work.left:
            summary.left += 1
        elif work.gone:
            summary.gone.append(f"{work.target.app}/{work.target.addon_id}")
        elif work.failed:
            summary.unchecked.append(f"{work.target.app}/{work.target.addon_id}")
        elif work.evaluation is None:
            summary.skipped.append(work.target.key)
        else:
            summary.checked += 1
            for notice in work.evaluation.notices:
                if notice.phase in (Phase.OPEN, Phase.UPDATE, Phase.NOTICE):
                    summary.findings[notice.kind.value] += 1

    _deliver(works, settings, clients.notifier, summary, dry_run)
    if not dry_run:
        for work in works:
            _commit(work, clients.store, owner, now, summary)
        if not only:
            _save_cursor(clients.store, left_before, [w.target.key for w in works if w.left], now)
    if not only:  # a manual check of a few databases does not stand for the day's report
        _daily_report(settings, clients, targets, now, owner, summary, dry_run)
    if not dry_run:
        # Archive verification comes last: it may take minutes and must not delay any alert.
        done = [w for w in works if w.evaluation is not None and not w.failed and not w.gone]
        candidates = [Candidate(w.target, w.info, w.record, w.backups) for w in done]
        remaining = None if deadline is None else _seconds_until(deadline)
        verify_archives(settings, clients, candidates, now, summary, owner=owner, remaining=remaining)
    return summary


def _load_blobs(clients: Clients, targets: Sequence[Target], *, with_cursor: bool) -> dict[str, Blob]:
    """Stored tokens (into the client's cache) and the cursor; without them a check is only slower."""
    keys = token_keys(t.key for t in targets) + ([CURSOR_KEY] if with_cursor else [])
    try:
        blobs = clients.store.load_blobs(keys)
    except StateError as exc:
        logger.warning("could not read the stored tokens", extra={"error": str(exc)})
        return {}
    restore_tokens(blobs.values(), clients.scalingo.tokens, clients.scalingo.sealer)
    return blobs


def _save_tokens(clients: Clients) -> None:
    try:
        save_tokens(clients.store, clients.scalingo.tokens, clients.scalingo.sealer)
    except StateError as exc:
        logger.warning("could not store the new tokens", extra={"error": str(exc)})


def _save_cursor(store: StateStore, before: Sequence[str], left: Sequence[str], now: datetime) -> None:
    try:
        save_cursor_if_changed(store, before, left, now.timestamp())
    except StateError as exc:
        logger.warning("could not remember the databases left", extra={"error": str(exc)})
    if left:
        logger.warning("time limit reached, databases left for the next check", extra={"count": len(left)})


def _examine_in_time(
    work: _Work,
    deadline: float | None,
    settings: Settings,
    clients: Clients,
    now: datetime,
    owner: str,
    dry_run: bool,
) -> None:
    """_examine, unless the time budget is spent: then the database is left for the next check."""
    if deadline is not None and time.monotonic() >= deadline:
        work.left = True
        return
    _examine(work, settings, clients, now, owner, dry_run)


def _seconds_until(deadline: float) -> Callable[[], float]:
    """The time left in the check's budget, for archive verification (which may take minutes)."""
    return lambda: deadline - time.monotonic()


def _daily_report(
    settings: Settings, clients: Clients, targets: list[Target], now: datetime, owner: str, summary: Summary, dry: bool
) -> None:
    """Once a day, the first check after DAILY_REPORT_AT sends the report (see daily_report.py)."""
    from backup_monitor.daily_report import Outcome, send_daily_report

    excluded = None if settings.monitored else summary.excluded
    outcome = send_daily_report(
        settings, clients.store, clients.notifier, targets, now, owner, dry_run=dry, excluded=excluded
    )
    if outcome in (Outcome.SENT, Outcome.PRINTED):
        summary.sent += 1
    elif outcome is Outcome.FAILED:
        summary.undelivered += 1


def _examine(work: _Work, settings: Settings, clients: Clients, now: datetime, owner: str, dry_run: bool) -> None:
    """Fetch, evaluate and (when there is something to send) claim one target. Runs in a worker thread."""
    evaluation = _evaluate_target(work, settings, clients, now)
    if evaluation is not None:
        _settle(work, evaluation, settings, clients, now, owner, dry_run)


def _needs_fresh_info(evaluation: Evaluation) -> bool:
    """A "missing" or "periodic backups off" finding is decided on the database's current schedule."""
    return any(
        n.kind in (Kind.MISSING, Kind.PERIODIC_OFF) and n.phase in (Phase.OPEN, Phase.UPDATE)
        for n in evaluation.notices
    )


def _evaluate_target(work: _Work, settings: Settings, clients: Clients, now: datetime) -> Evaluation | None:
    """The rules' decision for one target, or None when a 404 must wait for rediscovery."""
    target, record = work.target, work.record
    policy = settings.policy
    try:
        database = record.database
        fetched = record.database_fetched_at
        fresh = database is None or fetched is None or now - fetched >= DATABASE_INFO_MAX_AGE
        if fresh or database is None:
            database = clients.scalingo.get_database(target)
            record = with_database(record, database, now)
        work.info = _info(target, database)
        backups = clients.scalingo.list_backups(target)
        work.backups = backups
        problem = implausible_answer(record, backups)
        if problem is not None:
            raise UnavailableError(f"{target.app}/{target.addon_id}: {problem}")
        evaluation = evaluate(record, database, backups, now, policy)
        if not fresh and _needs_fresh_info(evaluation):
            # The cached schedule may be a day old: a moved or re-enabled schedule must not page.
            database = clients.scalingo.get_database(target)
            record = with_database(record, database, now)
            work.info = _info(target, database)
            evaluation = evaluate(record, database, backups, now, policy)
        return with_archive_notices(evaluation, policy)
    except OutOfTimeError:  # no main-API request may start now: nothing was done, the next check does it
        work.left = True
        return None
    except NotFoundError as exc:
        if not _named_in_settings(settings, target):
            work.not_found = str(exc)  # deleted, or a glitch: rediscovery decides
            return None
        logger.warning("cannot check database", extra={"target": target.key, "error": str(exc)})
        work.failed = True
        work.info = _info(target, record.database)
        return evaluate_failure(record, str(exc), now, policy, permanent=True)
    except ScalingoError as exc:
        permanent = isinstance(exc, AuthenticationError)
        logger.warning("cannot check database", extra={"target": target.key, "error": str(exc)})
        work.failed = True
        work.info = _info(target, record.database)
        return evaluate_failure(record, str(exc), now, policy, permanent=permanent)
    except Exception as exc:  # a bug must cost one database, not the whole check
        logger.exception("unexpected error checking database", extra={"target": target.key})
        work.failed = True
        return evaluate_failure(record, f"internal error ({type(exc).__name__})", now, policy, permanent=False)


def _watched(record: Record | None, settings: Settings, target: Target) -> bool:
    """False for a database retired as deleted (unless MONITORED_DATABASES names it)."""
    return record is None or record.retired_at is None or _named_in_settings(settings, target)


def _named_in_settings(settings: Settings, target: Target) -> bool:
    return any(t.key == target.key for t in settings.monitored)


def _decide_not_found(
    works: list[_Work], settings: Settings, clients: Clients, now: datetime, owner: str, dry_run: bool
) -> None:
    """Scalingo answered 404 for discovered databases: rediscover (ignoring the cache) before deciding."""
    try:
        current: set[str] | None = {t.key for t in resolve_targets(settings, clients, now, force=True)}
    except OutOfTimeError:  # no time left to rediscover: these databases are left for the next check
        for work in works:
            work.left = True
        return
    except (ScalingoError, StateError) as exc:
        logger.warning("rediscovery failed; the 404s count as failed reads", extra={"error": str(exc)})
        current = None
    for work in works:
        if current is not None and work.target.key not in current:
            logger.warning("database deleted, no longer watched", extra={"target": work.target.key})
            evaluation = evaluate_gone(work.record, now, GONE_REASON)
            work.gone = True
        else:
            work.failed = True
            error = work.not_found or "not found"
            evaluation = evaluate_failure(work.record, error, now, settings.policy, permanent=False)
        _settle(work, evaluation, settings, clients, now, owner, dry_run)


def _settle(
    work: _Work,
    evaluation: Evaluation,
    settings: Settings,
    clients: Clients,
    now: datetime,
    owner: str,
    dry_run: bool,
) -> None:
    """Fetch download links, then claim the record (something to send) or save it (only state changed)."""
    target = work.target
    policy = settings.policy
    if settings.download_links and policy.success_notices != "off" and not work.failed:
        for notice in evaluation.notices:
            if notice.kind is Kind.SUCCEEDED and notice.backup is not None:
                try:
                    work.links[notice.backup.id] = clients.scalingo.archive_link(target, notice.backup.id)
                except ScalingoError as exc:
                    logger.warning("download link dropped", extra={"target": target.key, "error": str(exc)})
    if dry_run:
        work.evaluation = evaluation
        return
    try:
        if evaluation.notices or work.record.pending_edits:
            work.claimed = clients.store.claim(work.record, owner, now.timestamp())
        elif evaluation.base.content() != work.record.content():
            clients.store.save(replace(evaluation.base, version=work.record.version), now.timestamp())
    except ConflictError:
        logger.info("another check holds this database, skipping it", extra={"target": target.key})
        work.failed = False
        return
    except StateError as exc:
        logger.error("cannot write state", extra={"target": target.key, "error": str(exc)})
        work.failed = True
        return
    work.evaluation = evaluation


def _deliver(works: list[_Work], settings: Settings, notifier: Notifier, summary: Summary, dry_run: bool) -> None:
    """Send every message in order; success notices per SUCCESS_NOTICES; edits left over from earlier checks.

    A notice counts as delivered when Slack accepted its message (or refused it even as plain text: given up,
    never retried); a refused destination stops sending, and what was not sent is retried next check.
    """
    mode = settings.policy.success_notices
    sender = Outbox(notifier)
    digest: list[tuple[_Work, Notice]] = []
    for work in works:
        if work.evaluation is None:
            continue
        pending = work.evaluation.base.pending_edits
        edits = list(pending) if dry_run else [e for e in (sender.edit(p) for p in pending) if e]
        for notice in work.evaluation.notices:
            if notice.kind is Kind.SUCCEEDED:
                if mode == "off":
                    work.delivered.append((notice, None))
                elif mode == "digest":
                    digest.append((work, notice))
                else:
                    link = work.links.get(notice.backup.id) if notice.backup else None
                    if sender.send(render_success(notice, work.info, link)) is not None:
                        work.delivered.append((notice, None))
                continue
            message = render(notice, work.info, mention=settings.slack_mention)
            delivery = sender.send(message)
            if delivery is None:
                continue
            work.delivered.append((notice, None if delivery is GIVEN_UP else delivery.thread))
            if delivery.edit_error is not None and message.edit is not None:
                first = PendingEdit(message.edit.channel, message.edit.ts, message.edit_text, attempts=0)
                retry = sender.edit_failed(first, delivery.edit_error)
                edits.extend([retry] if retry else [])
        if tuple(edits) != work.evaluation.base.pending_edits:
            work.evaluation = replace(work.evaluation, base=replace(work.evaluation.base, pending_edits=tuple(edits)))
    if digest:
        items = [(n, w.info, w.links.get(n.backup.id) if n.backup else None) for w, n in digest]
        for part in render_digest(items):
            if sender.send(part.message) is not None:
                for index in part.items:
                    work, notice = digest[index]
                    work.delivered.append((notice, None))
    summary.sent += sender.sent
    summary.undelivered += sender.undelivered
    summary.given_up += sender.given_up
    if sender.stopped:
        summary.delivery_error = f"Slack refused the messages: {sender.stopped}"


def _commit(work: _Work, store: StateStore, owner: str, now: datetime, summary: Summary) -> None:
    """Save the base record plus what was delivered, releasing the claim."""
    if work.claimed is None or work.evaluation is None:
        return
    record = replace(work.evaluation.base, version=work.claimed.version)
    for notice, thread in work.delivered:
        record = apply(record, notice, now, thread)
    try:
        store.commit(record, owner, now.timestamp())
    except StateError as exc:
        logger.error("could not save what was delivered", extra={"target": work.target.key, "error": str(exc)})
        summary.undelivered += 1
