"""The data that flows through a check's stages: the clients, one database's work item, the summary."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from backup_monitor.cadence import Due
from backup_monitor.config import Settings, Target
from backup_monitor.messages import DatabaseInfo
from backup_monitor.notifiers import Notifier, destination_of
from backup_monitor.records import Record
from backup_monitor.rules import Evaluation
from backup_monitor.scalingo.client import ScalingoClient
from backup_monitor.scalingo.models import Backup, Database
from backup_monitor.silences import Silence, active
from backup_monitor.state.base import CLAIM_SECONDS, StateStore, shard_of

CLAIM_MARGIN_SECONDS = 60.0  # a claim outlives its check's budget by this much; past it, it was abandoned


@dataclass(frozen=True, slots=True)
class ClaimClock:
    """The check's clock for writes: `stamp()` is the check's `now` plus the time elapsed since it started (the
    conditional writes compare claims on it), `ttl()` how long a claim taken or renewed now must last: to the
    end of the budget plus a margin, or CLAIM_SECONDS from now without a budget (each write renews it)."""

    start: float  # the check's `now`, epoch seconds
    started: float  # time.monotonic() when the check started
    budget: float | None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def stamp(self) -> float:
        return self.start + self.elapsed()

    def ttl(self) -> float:
        if self.budget is None:
            return CLAIM_SECONDS
        return max(CLAIM_MARGIN_SECONDS, self.budget + CLAIM_MARGIN_SECONDS - self.elapsed())


@dataclass(slots=True)
class Clients:
    """The outside parties of a check (built once per cold start or command run).

    `success_notifier`: where success notices and download links go (SLACK_SUCCESS_CHANNEL or
    SLACK_SUCCESS_WEBHOOK_URL); None: the same place as the alerts."""

    scalingo: ScalingoClient
    store: StateStore
    notifier: Notifier
    success_notifier: Notifier | None = None


@dataclass(frozen=True, slots=True)
class Run:
    """What every stage of one check shares: its settings and clients, its `now`, who it is (the claims'
    owner), whether it is a dry run, and its clock for claims and writes."""

    settings: Settings
    clients: Clients
    now: datetime
    owner: str
    dry_run: bool
    claims: ClaimClock
    silences: tuple[Silence, ...] = ()  # the silences active at `now` (read once, at the start of the check)

    def silenced(self, target: Target) -> Silence | None:
        """The active silence covering `target` (nothing is said about it), or None."""
        return active(self.silences, target, self.now)

    def __post_init__(self) -> None:
        # The settings name the shard's discovery and report, the store its cursor and bearer: one shard only.
        if shard_of(self.clients.store) != self.settings.shard:
            raise ValueError(
                f"the state store was opened for shard {shard_of(self.clients.store)!r}, "
                f"the settings are shard {self.settings.shard!r}'s (build the store with wiring.build_store)"
            )

    @property
    def destination(self) -> str:
        """Where incidents are announced (the alert notifier's fingerprint; "" when it has none)."""
        return destination_of(self.clients.notifier)

    def claim(self, record: Record) -> Record:
        """Claim `record` as read, until this check can no longer write (ConflictError: another check has it)."""
        return self.clients.store.claim(record, self.owner, self.claims.stamp(), ttl=self.claims.ttl())

    def save(self, record: Record) -> Record:
        """Write `record` (conditional on its version and on no live claim) when only the state changed."""
        return self.clients.store.save(record, self.claims.stamp())


@dataclass(slots=True)
class Summary:
    """What a check did; decides the exit status and feeds the metrics."""

    targets: int = 0
    checked: int = 0
    unchecked: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    excluded: int = 0
    gone: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)  # 404 and left out by discovery: retired if confirmed
    findings: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    undelivered: int = 0
    error: str | None = None
    dry_run: bool = False
    given_up: int = 0
    delivery_error: str | None = None
    left: int = 0
    rate_limited: int = 0  # Slack's 429 answers met (each waited out, or the rest left for the next check)
    held: int = 0  # per-database "cannot check" notices held by an open Scalingo API outage
    out_of_time: bool = False  # sending stopped because the budget could not cover a wait
    interrupted: bool = False  # stopped by Ctrl-C or SIGTERM (the command's exit status says which)
    due: int = 0  # databases due for a read (cadence.py); the others were not read, on purpose
    not_due: int = 0
    due_left: int = 0  # of the databases due, those this check could not reach
    oldest_due: datetime | None = None  # since when the longest-waiting due database not reached has waited

    @property
    def reached_none(self) -> bool:
        """Databases were due and the check reached none of them (time ran out before the first)."""
        return self.due > 0 and self.due_left >= self.due

    def oldest_due_minutes(self, now: datetime) -> float:
        """How long the longest-waiting due database this check could not reach has waited (0: none left)."""
        return 0.0 if self.oldest_due is None else max(0.0, (now - self.oldest_due).total_seconds() / 60)

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and not self.unchecked
            and self.undelivered == 0
            and self.given_up == 0
            and self.delivery_error is None
            and not self.reached_none
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
        if self.out_of_time:
            parts.append("Slack sending stopped at the time limit (the rest goes first next check)")
        if self.rate_limited:
            parts.append(f"Slack rate limits met: {self.rate_limited}")
        if self.given_up:
            parts.append(f"given up: {self.given_up} (Slack refused them even as plain text; see the log)")
        if self.delivery_error:
            parts.append(self.delivery_error)
        if self.unchecked:
            parts.append(f"could not check: {', '.join(self.unchecked[:5])}{' …' if len(self.unchecked) > 5 else ''}")
        if self.held:
            parts.append(f"'cannot check' held by a Scalingo API outage: {self.held}")
        if self.gone:
            parts.append(f"no longer watched (deleted): {', '.join(self.gone[:5])}{' …' if len(self.gone) > 5 else ''}")
        if self.unlisted:
            parts.append(
                f"not found and not listed by discovery (retired if still unlisted in an hour): {len(self.unlisted)}"
            )
        if self.excluded:
            parts.append(f"excluded by EXCLUDE_APPS: {self.excluded}")
        if self.skipped:
            parts.append(f"skipped (another check holds them): {len(self.skipped)}")
        if self.not_due:
            parts.append(f"not due (no news expected, see SWEEP_EVERY_HOURS): {self.not_due}")
        if self.left:
            parts.append(f"left for the next check (time limit): {self.left} ({self.due_left} of {self.due} due)")
        if self.reached_none:
            parts.append("no due database was reached")
        if self.error:
            parts.append(f"error: {self.error}")
        if self.interrupted:
            parts.insert(0, "interrupted (what was delivered is saved; the next check does the rest)")
        return "; ".join(parts)


@dataclass(slots=True)
class Work:
    """One database's progress through a check (or a region's API-outage record: `outage_region`)."""

    target: Target
    record: Record
    info: DatabaseInfo
    evaluation: Evaluation | None = None
    links: dict[str, str] = field(default_factory=dict)
    claimed: Record | None = None  # the record as this check holds it (its version moves with each write)
    failed: bool = False
    failure: str = ""  # why the read failed (a ScalingoError's text)
    api_failed: bool = False  # Scalingo's API failed for it (not a 404, not our state): evidence of an outage
    held: bool = False  # its "cannot check" is held by its region's API outage
    left: bool = False
    not_found: str | None = None
    gone: bool = False
    retiring: bool = False  # retired by discovery in this check: said once, not read
    unlisted: bool = False  # a 404, and its region's discovery leaves it out: retired if a later pass confirms
    adopted: bool = False  # its record was found under an older key (or retired and listed again): written once
    backups: list[Backup] = field(default_factory=list)
    database: Database | None = None
    due: Due | None = None  # why it is read in this check (cadence.py)
    undelivered: bool = False  # one of its messages was not delivered: the next check reads it first
    outage_region: str | None = None
    done: bool = False  # committed (claim released) in this check
    # A record whose notices are about several databases (the unreadable records): who each incident key is.
    infos: dict[str, DatabaseInfo] = field(default_factory=dict)

    def info_for(self, incident_key: str | None) -> DatabaseInfo:
        """Which database a notice of this work is about."""
        return self.infos.get(incident_key or "", self.info)

    @property
    def key(self) -> str:
        """The state record's key."""
        return self.record.key
