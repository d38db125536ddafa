"""Archive verification, the I/O part: after a check's messages, verify due archives one at a time.

For each database whose newest usable backup is due (see verification_rules), while the check's remaining
time allows: claim its record (so an overlapping check neither verifies nor writes it too), fetch a download
link, stream and check the archive, then announce and commit like any other finding.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import requests

from backup_monitor.archives import Outcome, Verdict, download_and_verify
from backup_monitor.archives.download import too_big
from backup_monitor.config import Settings, Target
from backup_monitor.delivery import GIVEN_UP, Outbox
from backup_monitor.messages import DatabaseInfo, render, render_verified
from backup_monitor.notifiers import destination_of
from backup_monitor.records import Record
from backup_monitor.rules import Kind, Notice, Phase, apply, with_facts
from backup_monitor.scalingo.client import build_session
from backup_monitor.scalingo.errors import ScalingoError
from backup_monitor.scalingo.models import Backup
from backup_monitor.state.base import CLAIM_SECONDS, StateError, load_renamed
from backup_monitor.verification_rules import (
    VerifyPolicy,
    announce,
    due_backup,
    record_verdict,
    verified_notice,
)

if TYPE_CHECKING:
    from backup_monitor.check.model import Clients, Summary

logger = logging.getLogger(__name__)

TIME_LIMIT_SECONDS = 600.0  # one verification at most; also the whole phase's budget when the check has none
MARGIN_SECONDS = 30.0  # kept back for announcing and committing after a verification
ASSUMED_BYTES_PER_SECOND = 20_000_000  # a cautious download speed, to decide whether an archive fits in time
UNKNOWN_SIZE_SECONDS = 60.0
_SLOT = threading.Lock()  # one verification at a time in this process, whatever calls run_check


@dataclass(frozen=True, slots=True)
class Candidate:
    """A database checked successfully in this check, with the backups it listed."""

    target: Target
    info: DatabaseInfo
    record: Record
    backups: Sequence[Backup]


def policy_of(settings: Settings) -> VerifyPolicy:
    return VerifyPolicy(
        settings.verify_archives_every_days,
        int(settings.verify_max_gb * 1_000_000_000),
        settings.policy.size_drop_ratio,
    )


def needed_seconds(backup: Backup) -> float:
    """How long a verification of `backup` may take, cautiously."""
    if backup.size is None:
        return UNKNOWN_SIZE_SECONDS + MARGIN_SECONDS
    return backup.size / ASSUMED_BYTES_PER_SECOND + MARGIN_SECONDS


def verify_archives(
    settings: Settings,
    clients: Clients,
    candidates: Sequence[Candidate],
    now: datetime,
    summary: Summary,
    *,
    owner: str,
    remaining: Callable[[], float] | None = None,
    session: requests.Session | None = None,
    time_limit: float = TIME_LIMIT_SECONDS,
    outbox: Outbox | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Verify the due archives, oldest verification first, one at a time, while time remains.

    Messages go through `outbox` (the check's: paced, inside its budget), or one of their own."""
    policy = policy_of(settings)
    sender = outbox or Outbox(clients.notifier)
    due = [(c, b) for c in candidates if (b := due_backup(c.record, c.backups, now, policy)) is not None]
    if not due:
        return
    if not _SLOT.acquire(blocking=False):
        logger.info("another verification is running in this process, leaving archives for the next check")
        return
    started = time.monotonic()

    def left() -> float:
        if stop is not None and stop.is_set():
            return 0.0
        if remaining is not None:
            return remaining()
        return time_limit - (time.monotonic() - started)

    due.sort(key=lambda item: item[0].record.verified.at.timestamp() if item[0].record.verified else 0.0)
    own_session = session is None
    http = session or build_session(retries=2, pool_size=2)
    verified: list[tuple[Notice, DatabaseInfo]] = []
    try:
        for candidate, backup in due:
            if left() < needed_seconds(backup):
                logger.info(
                    "no time left to verify more archives this check",
                    extra={"left_s": round(left(), 1), "waiting": len(due)},
                )
                break
            limit = min(time_limit, left() - MARGIN_SECONDS)
            at = now + timedelta(seconds=time.monotonic() - started)
            try:
                notice = _verify_one(
                    settings, clients, candidate, backup, at, summary, owner, http, limit, policy, sender
                )
            except Exception:  # a bug must cost one verification, never the check (the claim expires)
                logger.exception("unexpected error verifying an archive", extra={"target": candidate.target.key})
                continue
            if notice is not None:
                verified.append((notice, candidate.info))
    finally:
        if own_session:
            http.close()
        _SLOT.release()
    _send_verified(settings, sender, verified, summary)


def _verify_one(
    settings: Settings,
    clients: Clients,
    candidate: Candidate,
    backup: Backup,
    now: datetime,
    summary: Summary,
    owner: str,
    http: requests.Session,
    limit: float,
    policy: VerifyPolicy,
    sender: Outbox,
) -> Notice | None:
    """Claim, verify, announce, commit one database; returns the success notice when the archive passed."""
    target = candidate.target
    try:
        fresh = load_renamed(clients.store, {target.key: target.name}).get(target.key)
        if fresh is None or due_backup(fresh, candidate.backups, now, policy) != backup:
            return None  # another check got there first
        claimed = clients.store.claim(fresh, owner, now.timestamp(), ttl=limit + CLAIM_SECONDS)
    except StateError as exc:  # a ConflictError too: another check holds this database
        logger.info("archive not verified: the record is busy", extra={"target": target.key, "error": str(exc)})
        return None
    verdict = _verdict(settings, clients, candidate, backup, http, limit, policy)
    logger.info(
        "archive verified" if verdict.ok else "archive verification did not pass",
        extra={
            "target": target.key,
            "backup": backup.id,
            "outcome": verdict.outcome.value,
            "code": verdict.code,
            "bytes": verdict.received,
            "seconds": verdict.seconds,
        },
    )
    record = record_verdict(claimed, backup, verdict, now)
    destination = destination_of(clients.notifier)
    for notice in with_facts(announce(record, now, settings.policy), record):
        if notice.phase in (Phase.OPEN, Phase.UPDATE, Phase.NOTICE):
            summary.findings[notice.kind.value] += 1
        message = render(
            notice, candidate.info, mention=settings.slack_mention, now=now, runbook=settings.runbook_url or ""
        )
        delivery = sender.send(message)
        if delivery is None:
            summary.undelivered += 1  # the next check announces it again from the record
            continue
        summary.sent += 1
        thread = None if delivery is GIVEN_UP else delivery.thread
        record = apply(record, notice, now, thread, destination=destination)
    try:
        clients.store.commit(record, owner, now.timestamp())
    except StateError as exc:
        logger.error("could not save the verification", extra={"target": target.key, "error": str(exc)})
        summary.undelivered += 1
    if not verdict.ok:
        return None
    summary.findings[Kind.ARCHIVE_VERIFIED.value] += 1
    return verified_notice(backup, verdict)


def _verdict(
    settings: Settings,
    clients: Clients,
    candidate: Candidate,
    backup: Backup,
    http: requests.Session,
    limit: float,
    policy: VerifyPolicy,
) -> Verdict:
    if backup.size is not None and backup.size > policy.max_bytes:
        return too_big(backup.size, policy.max_bytes)
    try:
        link = clients.scalingo.archive_link(candidate.target, backup.id)
    except ScalingoError as exc:
        return Verdict(Outcome.NOT_RUN, "refused", f"no download link: {exc}")
    return download_and_verify(
        http,
        link,
        type_name=candidate.info.type_name,
        listed_size=backup.size,
        max_bytes=policy.max_bytes,
        time_limit=limit,
        read_timeout=max(settings.http_timeout, 30.0),
        allowed_origin=clients.scalingo.db_api_base(candidate.target.region),
    )


def _send_verified(
    settings: Settings, sender: Outbox, verified: list[tuple[Notice, DatabaseInfo]], summary: Summary
) -> None:
    """Success notices of this check's verifications, as SUCCESS_NOTICES says (info: not retried)."""
    mode = settings.policy.success_notices
    if not verified or mode == "off":
        return
    messages = [render_verified(verified)] if mode == "digest" else [render_verified([item]) for item in verified]
    for message in messages:
        if sender.send(message) is None:
            summary.undelivered += 1
            continue
        summary.sent += 1
