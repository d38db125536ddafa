"""Stage `after`: what a check does once its alerts are out: tokens and cursor saved, the daily report, and
archive verification (last: it may take minutes and must never delay an alert).

The bearer and the cursor are the shard's (SCALINGO_API_TOKEN_PARAMETERS): the one its state store was opened
for (`state.base.shard_of`; `Run` checks that it is the settings' shard)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import datetime

from backup_monitor.budget import cursor_key, cursor_part_keys, save_cursor_if_changed
from backup_monitor.check.deliver import Deliverer
from backup_monitor.check.model import Clients, Run, Summary, Work
from backup_monitor.config import Target
from backup_monitor.daily_report import Outcome, send_daily_report
from backup_monitor.state.base import Blob, StateError, StateStore, shard_of
from backup_monitor.state.tokens import restore_tokens, token_keys
from backup_monitor.state.tokens import save_tokens as store_tokens
from backup_monitor.verification import Candidate, verify_archives

logger = logging.getLogger(__name__)


def load_blobs(clients: Clients, targets: Sequence[Target], *, with_cursor: bool) -> dict[str, Blob]:
    """Stored tokens (into the client's cache) and the cursor, the shard's; without them a check is only slower."""
    shard = shard_of(clients.store)
    cursor = cursor_key(shard)
    keys = token_keys((t.key for t in targets), shard) + ([cursor] if with_cursor else [])
    try:
        blobs = clients.store.load_blobs(keys)
        parts = cursor_part_keys(blobs, cursor) if with_cursor else []
        if parts:  # a cursor stored in chunks: its parts, in one batch
            blobs.update(clients.store.load_blobs(parts))
    except StateError as exc:
        logger.warning("could not read the stored tokens", extra={"error": str(exc)})
        return {}
    restore_tokens(blobs.values(), clients.scalingo.tokens, clients.scalingo.sealer, shard)
    return blobs


def save_tokens(clients: Clients) -> None:
    try:
        store_tokens(clients.store, clients.scalingo.tokens, clients.scalingo.sealer, shard_of(clients.store))
    except StateError as exc:
        logger.warning("could not store the new tokens", extra={"error": str(exc)})


def save_cursor(store: StateStore, before: Sequence[str], left: Sequence[str], now: datetime) -> None:
    try:
        save_cursor_if_changed(store, before, left, now.timestamp())
    except StateError as exc:
        logger.warning("could not remember the databases left", extra={"error": str(exc)})
    if left:
        logger.warning("time limit reached, databases left for the next check", extra={"count": len(left)})


def daily_report(run: Run, targets: list[Target], summary: Summary, deliverer: Deliverer) -> None:
    """Once a day, the first check after DAILY_REPORT_AT sends the report (see daily_report.py)."""
    settings, clients = run.settings, run.clients
    excluded = None if settings.monitored else summary.excluded
    outcome = send_daily_report(
        settings,
        clients.store,
        clients.notifier,
        targets,
        run.now,
        run.owner,
        dry_run=run.dry_run,
        excluded=excluded,
        outbox=deliverer.outbox,
    )
    if outcome in (Outcome.SENT, Outcome.PRINTED):
        summary.sent += 1
    elif outcome is Outcome.FAILED:
        summary.undelivered += 1


def verify(
    run: Run,
    works: Sequence[Work],
    summary: Summary,
    deadline: float | None,
    deliverer: Deliverer,
    stop: threading.Event | None = None,
) -> None:
    """Archive verification of the databases read successfully, within what is left of the budget (no new
    archive once `stop` is set)."""
    done = [w for w in works if w.evaluation is not None and not w.failed and not w.gone and w.outage_region is None]
    done = [w for w in done if run.silenced(w.target) is None]  # a silenced database: no archive, no message
    candidates = [Candidate(w.target, w.info, w.record, w.backups) for w in done]
    remaining = None if deadline is None else (lambda: deadline - time.monotonic())
    verify_archives(
        run.settings,
        run.clients,
        candidates,
        run.now,
        summary,
        owner=run.owner,
        remaining=remaining,
        outbox=deliverer.outbox,
        stop=stop,
    )
