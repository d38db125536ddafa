"""Golden files: what Slack receives for each kind of message, in tests/snapshots/*.json.

Each message is made the way a check makes it: the rules judge a small scenario (`rules.evaluate`,
`evaluate_failure`, `evaluate_outage`, `evaluate_gone`, the archive verification's `announce`), each delivered
notice is folded into the record with `rules.apply` as the delivery stage does, and `check.group.plan` renders the
last check's notices with the options `Deliverer` gives it (the check's `now`, SLACK_MENTION, RUNBOOK_URL). No
notice is written by hand: every fact a message shows is one the rules put there.

After a deliberate change to the messages, regenerate them with
    UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/unit/test_snapshots.py
and review the diff: it is exactly what changes in Slack. Each file can be pasted into Block Kit Builder
(its "payload" object).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backup_monitor.archives import Outcome, Verdict
from backup_monitor.archives.download import too_big
from backup_monitor.check.fetch import bounded
from backup_monitor.check.group import Options, Outgoing, plan
from backup_monitor.check.inhibit import outage_key
from backup_monitor.check.model import Work
from backup_monitor.check.targets import GONE_REASON
from backup_monitor.config import Policy, Target
from backup_monitor.interactions_ui import (
    acknowledged_message,
    download_button,
    download_reply,
    silenced_message,
    unsilenced_message,
)
from backup_monitor.messages import (
    SLOT_TITLES,
    TITLES,
    DatabaseInfo,
    Message,
    edit_blocks,
    plain_fallback,
    render_digest,
    render_verified,
)
from backup_monitor.records import Record, ThreadRef
from backup_monitor.rules import (
    CAUSE_ADDON,
    CAUSE_INTERNAL,
    CAUSE_SCALINGO,
    CAUSE_TOKEN,
    SLOT_SMALL,
    SLOT_STUCK,
    Evaluation,
    Kind,
    Notice,
    Phase,
    apply,
    evaluate,
    evaluate_failure,
    evaluate_gone,
    evaluate_outage,
)
from backup_monitor.rules import reannounced as rules_reannounced
from backup_monitor.scalingo.models import Backup, Database
from backup_monitor.verification_rules import record_verdict, verified_notice, with_archive_notices
from tests.fakes.slack import refusal

SNAPSHOTS = Path(__file__).resolve().parents[1] / "snapshots"
UPDATE = os.environ.get("UPDATE_SNAPSHOTS") == "1"
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)  # a check at 09:00 UTC; the daily slot is 01:00 UTC
DAY = timedelta(days=1)
POLICY = Policy()
MENTION = "<!here>"
RUNBOOK = "https://wiki.example.com/ops/backups#when-an-alert-fires"
REGION = "osc-fr1"
TARGET = Target(REGION, "billing", "ad-billing")
DATABASE = Database("db-billing", "billing-4567", "mysql", True, (1,), status="running", created_at=NOW - 400 * DAY)
BILLING = DatabaseInfo.of(TARGET, DATABASE)
SHOP = DatabaseInfo(REGION, "shop-prod", "ad-shop", "shop-prod-1234", "postgresql")
DB_ID = "5f3c9a1b2d4e6f7a8b9c0d1e"
LISTING = f"GET /api/databases/{DATABASE.id}/backups (billing)"
SCALINGO_ERROR = f"{LISTING}: Scalingo kept answering 503 after retries"


def link(backup_id: str) -> str:
    return (
        f"https://db-api.osc-fr1.scalingo.com/api/databases/{DB_ID}/backups/{backup_id}/download"
        "?token=EXAMPLE-NOT-A-REAL-TOKEN-0000000000000000"
    )


def backup(i: int, status: str = "done", size: int | None = 412_000_000, name: str = "billing-4567") -> Backup:
    """The backup of the 01:00 UTC slot `i` days before today's."""
    created = NOW - timedelta(hours=8, days=i)
    return Backup(
        f"6a1f{i:020x}", created, status, started_at=created, name=f"{created:%Y%m%d%H%M%S}_{name}", size=size
    )


HISTORY = [backup(i) for i in range(2, 9)]  # a week of good backups, up to the day before yesterday
SMALL = 41_000_000  # a tenth of the usual size: suspicious


def watched(listed: Sequence[Backup] = HISTORY, key: str = TARGET.key, database: Database = DATABASE) -> Record:
    """A database watched for a month whose listed backups were all handled already."""
    return Record(key, first_seen_at=NOW - 30 * DAY, handled={b.id: b.status for b in listed}, database=database)


def check(
    record: Record,
    backups: Sequence[Backup],
    at: datetime = NOW,
    database: Database = DATABASE,
    policy: Policy = POLICY,
    **kw: Any,
) -> Evaluation:
    """What one check decides for the database, as the fetch stage hands it on."""
    return bounded(with_archive_notices(evaluate(record, database, backups, at, policy, **kw), policy))


def delivered(ev: Evaluation, *, shared: bool = False) -> Record:
    """The record once every notice of `ev` was accepted by a bot (each opening in a thread of its own)."""
    record = ev.base
    for i, notice in enumerate(ev.notices):
        thread = (
            ThreadRef("C0BACKUPS", f"{int(ev.now.timestamp())}.{i + 1:06d}") if notice.phase is Phase.OPEN else None
        )
        record = apply(record, notice, ev.now, thread, shared=shared and thread is not None)
    return record


def work(ev: Evaluation, target: Target = TARGET, database: Database = DATABASE, **kw: Any) -> Work:
    return Work(target, ev.base, DatabaseInfo.of(target, database), evaluation=ev, **kw)


def planned(works: Sequence[Work], **options: Any) -> list[Outgoing]:
    """The messages of one check's batch, as `Deliverer` plans them."""
    now = works[0].evaluation.now if works[0].evaluation else NOW
    return plan(works, Options(now=now, runbook_url=RUNBOOK, mention=MENTION, **options))


def sent(works: Work | Sequence[Work], kind: Kind, phase: Phase, **options: Any) -> Message:
    """The message of the batch that announces the (first) notice of `kind` and `phase`."""
    batch = [works] if isinstance(works, Work) else list(works)
    for out in planned(batch, **options):
        if out.message is not None and any(n.kind is kind and n.phase is phase for _, n in out.items):
            return out.message
    raise AssertionError(f"the check sends no {kind.value} {phase.value}")


# -- the stories --------------------------------------------------------------------------------------------------


def failed_today() -> Evaluation:
    listed = [*HISTORY, backup(1)]
    return check(watched(listed), [*listed, backup(0, "error", None)])


def failed_yesterday() -> tuple[Record, list[Backup]]:
    listed = [*HISTORY, backup(1, "error", None)]
    return delivered(check(watched(), listed, at=NOW - DAY)), listed


def missed_yesterday(database: Database = DATABASE, at_slot: Sequence[Backup] = ()) -> tuple[Record, list[Backup]]:
    listed = [*HISTORY, *at_slot]
    return delivered(check(watched(database=database), listed, at=NOW - DAY, database=database)), listed


def stuck_yesterday() -> tuple[Record, list[Backup]]:
    """Yesterday's backup still running at the check of 09:00 (8 hours: stuck), its slot missed."""
    return missed_yesterday(at_slot=[backup(1, "running", None)])


def small_yesterday() -> tuple[Record, list[Backup]]:
    return missed_yesterday(at_slot=[backup(1, "done", SMALL)])


def cannot_check(
    error: str, cause: str, since: datetime, *, failures: int = 2, permanent: bool = False, at: datetime = NOW
) -> Evaluation:
    """A read that fails at `at`, after `failures` failed ones (since `since`) of a database read well before."""
    listed = [*HISTORY, backup(1)]
    record = check(watched(listed), listed, at=at - timedelta(hours=1)).base
    record = replace(record, api_failures=failures, failing_since=since if failures else None)
    return evaluate_failure(record, error, at, POLICY, permanent=permanent, cause=cause)


def cannot_check_yesterday() -> Record:
    return delivered(cannot_check(SCALINGO_ERROR, CAUSE_SCALINGO, NOW - DAY - timedelta(minutes=30), at=NOW - DAY))


def outage_work(ev: Evaluation) -> Work:
    target = Target(REGION, "Scalingo API", "outage")
    return Work(target, ev.base, DatabaseInfo(REGION, "Scalingo API", ""), evaluation=ev, outage_region=REGION)


def outage(record: Record, failed: int, at: datetime = NOW) -> Evaluation:
    return evaluate_outage(record, REGION, failed, 14, SCALINGO_ERROR, at, POLICY)


def outage_open_yesterday() -> Record:
    record = Record(outage_key(REGION), api_failures=2)
    return delivered(outage(record, 12, NOW - DAY))


def unreadable(b: Backup) -> Verdict:
    return Verdict(Outcome.FAILED, "tar", f"the tar member {b.name}.sql is cut short (4096 of 8752 bytes)")


VERIFIED = Verdict(
    Outcome.OK, "ok", "gzip (1 member, CRC and length), tar (1 entry, end marker), MySQL dump: SQL text (x.sql)"
)


def archive_unreadable_yesterday() -> Record:
    listed = [*HISTORY, backup(1)]
    record = record_verdict(
        check(watched(listed), listed, at=NOW - DAY).base, backup(1), unreadable(backup(1)), NOW - DAY
    )
    return delivered(with_archive_notices(Evaluation((), record, NOW - DAY), POLICY))


def archive_check(record: Record, listed: Sequence[Backup]) -> Evaluation:
    """The check of NOW, after the verification of the day (its verdict is in `record`)."""
    return check(record, listed)


def group_of(stories: Callable[[Target, Database], Evaluation], count: int = 6) -> list[Work]:
    """The same story on `count` databases in one check (a storm)."""
    works = []
    for i in range(count):
        target = Target(REGION, f"shop-{i}", f"ad-shop-{i}")
        database = Database(f"db-shop-{i}", f"shop-{i}-1234", "postgresql", True, (1,), status="running")
        works.append(work(stories(target, database), target, database))
    return works


def failing_in_storm(target: Target, database: Database) -> Evaluation:
    listed = [*HISTORY, backup(1)]
    return check(watched(listed, target.key, database), [*listed, backup(0, "error", None)], database=database)


def reminded_in_storm(target: Target, database: Database) -> Evaluation:
    listed = [*HISTORY, backup(1, "error", None)]
    opened = check(watched(HISTORY, target.key, database), listed, at=NOW - DAY, database=database)
    return check(delivered(opened, shared=True), listed, database=database)


def resolved_in_storm(target: Target, database: Database) -> Evaluation:
    opened = check(watched(HISTORY, target.key, database), HISTORY, at=NOW - DAY, database=database)
    return check(delivered(opened, shared=True), [*HISTORY, backup(0)], database=database)


# PITR: the rules do not make these kinds yet. The notices follow rules.Notice's contract (PITR_BEHIND: critical,
# `restore_point` set, `detail` says by how much; PITR_ONLY: said once), their reminder and resolution come from the
# rules' own remind_notice / resolve_notice.
def pitr_record(latest: datetime, read_at: datetime = NOW) -> Record:
    listed = [*HISTORY, backup(1), backup(0)]
    base = check(watched(listed), listed, at=read_at).base
    return replace(base, pitr_earliest=NOW - 7 * DAY, pitr_latest=latest, pitr_read_at=read_at)


PITR_LISTED = [*HISTORY, backup(1), backup(0)]


def pitr_behind(phase: Phase) -> Evaluation:
    """Point-in-time recovery 9 hours behind, judged by the rules: opened, reminded a day later, caught up."""
    opened = check(pitr_record(NOW - DAY - timedelta(hours=9), NOW - DAY), PITR_LISTED, at=NOW - DAY)
    if phase is Phase.OPEN:
        return check(pitr_record(NOW - timedelta(hours=9)), PITR_LISTED)
    behind = replace(delivered(opened), pitr_latest=NOW - DAY - timedelta(hours=9), pitr_read_at=NOW)
    if phase is Phase.REMIND:
        return check(behind, PITR_LISTED)
    return check(replace(behind, pitr_latest=NOW - timedelta(minutes=4)), PITR_LISTED)


def pitr_only() -> Evaluation:
    database = replace(DATABASE, periodic_backups_enabled=False)
    record = replace(
        watched(database=database),
        pitr_earliest=NOW - 7 * DAY,
        pitr_latest=NOW - timedelta(minutes=4),
        pitr_read_at=NOW,
    )
    return check(record, HISTORY, database=database)


def reannounced() -> Evaluation:
    """A failure opened yesterday in the old alert channel, announced again to the new one by the rules."""
    record, listed = failed_yesterday()
    moved = {k: replace(v, destination="webhook:0123456789abcdef") for k, v in record.incidents.items()}
    return rules_reannounced(check(replace(record, incidents=moved), listed), "bot:C0BACKUPS")


# -- the golden files --------------------------------------------------------------------------------------------

Rendered = Message | dict[str, Any]  # a message, or a response_url payload (the buttons' edits and replies)
CASES: dict[str, Callable[[], Rendered]] = {}


def case(name: str) -> Callable[[Callable[[], Rendered]], Callable[[], Rendered]]:
    def register(make: Callable[[], Rendered]) -> Callable[[], Rendered]:
        CASES[name] = make
        return make

    return register


@case("failed_open")
def _() -> Message:
    return sent(work(failed_today()), Kind.FAILED, Phase.OPEN)


@case("failed_update")
def _() -> Message:
    record, listed = failed_yesterday()
    return sent(work(check(record, [*listed, backup(0, "error", None)])), Kind.FAILED, Phase.UPDATE)


@case("failed_notice")
def _() -> Message:
    listed = [*HISTORY, backup(1, "error", None), backup(0)]
    return sent(work(check(watched(), listed)), Kind.FAILED, Phase.NOTICE)


@case("manual_cancelled_notice")
def _() -> Message:
    cancelled = replace(
        backup(0, "cancelled", None), id="6a1fmanual", created_at=NOW - timedelta(hours=1), method="manual"
    )
    listed = [*HISTORY, backup(1), backup(0), cancelled]
    return sent(work(check(watched([*HISTORY, backup(1), backup(0)]), listed)), Kind.MANUAL_CANCELLED, Phase.NOTICE)


@case("failed_remind")
def _() -> Message:
    record, listed = failed_yesterday()
    return sent(work(check(record, listed)), Kind.FAILED, Phase.REMIND)


@case("failed_resolve")  # with the edit of the first message (a bot): the facts stay
def _() -> Message:
    record, listed = failed_yesterday()
    return sent(work(check(record, [*listed, backup(0)])), Kind.FAILED, Phase.RESOLVE)


@case("failed_reannounce")
def _() -> Message:
    return sent(work(reannounced()), Kind.FAILED, Phase.OPEN)


@case("missing_open")
def _() -> Message:
    stopped = replace(DATABASE, status="stopped")
    listed = [*HISTORY, backup(1)]
    ev = check(watched(listed, database=stopped), listed, database=stopped)
    return sent(work(ev, database=stopped), Kind.MISSING, Phase.OPEN)


@case("missing_open_no_usable_backup")
def _() -> Message:
    new = replace(DATABASE, created_at=NOW - DAY)
    record = Record(TARGET.key, first_seen_at=NOW - DAY, database=new)
    return sent(work(check(record, [], database=new), database=new), Kind.MISSING, Phase.OPEN)


@case("missing_update")
def _() -> Message:
    record, listed = missed_yesterday()
    return sent(work(check(record, listed)), Kind.MISSING, Phase.UPDATE)


@case("missing_remind")
def _() -> Message:
    unscheduled = replace(DATABASE, scheduled_hours=())
    record, listed = missed_yesterday(unscheduled)
    ev = check(record, listed, database=unscheduled)
    return sent(work(ev, database=unscheduled), Kind.MISSING, Phase.REMIND)


@case("missing_resolve")
def _() -> Message:
    record, listed = missed_yesterday()
    return sent(work(check(record, [*listed, backup(0)])), Kind.MISSING, Phase.RESOLVE)


@case("missing_stuck_open")
def _() -> Message:
    stuck = backup(0, "running", None)
    listed = [*HISTORY, backup(1), stuck]
    ev = check(watched(listed[:-1]), listed)
    return sent(work(ev), Kind.MISSING, Phase.OPEN)


@case("missing_stuck_update")
def _() -> Message:
    record, listed = stuck_yesterday()
    stuck = backup(0, "running", None)
    ev = check(record, [*listed, stuck])
    return sent(work(ev), Kind.MISSING, Phase.UPDATE)


@case("missing_stuck_remind")  # REMIND_EVERY_HOURS=12: reminded before the next slot is due
def _() -> Message:
    every_12 = replace(POLICY, remind_every_hours=12)
    record, listed = stuck_yesterday()
    ev = check(record, listed, at=NOW - timedelta(hours=12), policy=every_12)
    return sent(work(ev), Kind.MISSING, Phase.REMIND)


@case("missing_stuck_resolve")  # the title follows the opening: the slot's backup as it was announced
def _() -> Message:
    record, listed = stuck_yesterday()
    now_done = [*listed[:-1], backup(1), backup(0)]
    ev = check(record, now_done)
    return sent(work(ev), Kind.MISSING, Phase.RESOLVE)


@case("missing_small_open")
def _() -> Message:
    small = backup(0, "done", SMALL)
    listed = [*HISTORY, backup(1), small]
    ev = check(watched(listed[:-1]), listed)
    return sent(work(ev), Kind.MISSING, Phase.OPEN)


@case("missing_small_update")
def _() -> Message:
    record, listed = small_yesterday()
    small = backup(0, "done", SMALL)
    ev = check(record, [*listed, small])
    return sent(work(ev), Kind.MISSING, Phase.UPDATE)


@case("stuck_open")
def _() -> Message:
    listed = [*HISTORY, backup(1), backup(0, "running", None)]
    return sent(work(check(watched(listed[:-1]), listed)), Kind.STUCK, Phase.OPEN)


@case("stuck_remind")
def _() -> Message:
    record, listed = stuck_yesterday()
    return sent(work(check(record, listed)), Kind.STUCK, Phase.REMIND)


@case("stuck_resolve")
def _() -> Message:
    record, listed = stuck_yesterday()
    return sent(work(check(record, [*listed[:-1], backup(1), backup(0)])), Kind.STUCK, Phase.RESOLVE)


@case("suspicious_open")
def _() -> Message:
    listed = [*HISTORY, backup(1), backup(0, "done", SMALL)]
    return sent(work(check(watched(listed[:-1]), listed)), Kind.SUSPICIOUS, Phase.OPEN)


@case("suspicious_update")
def _() -> Message:
    record, listed = small_yesterday()
    ev = check(record, [*listed, backup(0, "done", SMALL)])
    return sent(work(ev), Kind.SUSPICIOUS, Phase.UPDATE)


@case("suspicious_notice")
def _() -> Message:
    listed = [*HISTORY, backup(1, "done", SMALL), backup(0)]
    return sent(work(check(watched(), listed)), Kind.SUSPICIOUS, Phase.NOTICE)


@case("suspicious_remind")
def _() -> Message:
    record, listed = small_yesterday()
    return sent(work(check(record, listed)), Kind.SUSPICIOUS, Phase.REMIND)


@case("suspicious_resolve")
def _() -> Message:
    record, listed = small_yesterday()
    return sent(work(check(record, [*listed, backup(0)])), Kind.SUSPICIOUS, Phase.RESOLVE)


OFF = replace(DATABASE, periodic_backups_enabled=False)


@case("periodic_off_open")
def _() -> Message:
    listed = [*HISTORY, backup(1)]
    ev = check(watched(listed, database=OFF), listed, database=OFF)
    return sent(work(ev, database=OFF), Kind.PERIODIC_OFF, Phase.OPEN)


@case("periodic_off_remind")
def _() -> Message:
    record, listed = missed_yesterday(OFF, [backup(1)])
    return sent(work(check(record, listed, database=OFF), database=OFF), Kind.PERIODIC_OFF, Phase.REMIND)


@case("periodic_off_resolve")
def _() -> Message:
    record, listed = missed_yesterday(OFF, [backup(1)])
    ev = check(record, [*listed, backup(0)])
    return sent(work(ev), Kind.PERIODIC_OFF, Phase.RESOLVE)


@case("cannot_check_open")  # the cause unknown: the generic next step
def _() -> Message:
    return sent(work(cannot_check(SCALINGO_ERROR, "", NOW - timedelta(minutes=30))), Kind.CANNOT_CHECK, Phase.OPEN)


@case("cannot_check_open_scalingo")
def _() -> Message:
    ev = cannot_check(SCALINGO_ERROR, CAUSE_SCALINGO, NOW - timedelta(minutes=30))
    return sent(work(ev), Kind.CANNOT_CHECK, Phase.OPEN)


@case("cannot_check_open_token")
def _() -> Message:
    ev = cannot_check(f"{LISTING}: refused (401)", CAUSE_TOKEN, NOW, failures=0, permanent=True)
    return sent(work(ev), Kind.CANNOT_CHECK, Phase.OPEN)


@case("cannot_check_open_addon")  # a database named in MONITORED_DATABASES that answers 404
def _() -> Message:
    ev = cannot_check(f"{LISTING}: not found", CAUSE_ADDON, NOW, failures=0, permanent=True)
    return sent(work(ev), Kind.CANNOT_CHECK, Phase.OPEN)


@case("cannot_check_open_internal")
def _() -> Message:
    ev = cannot_check("internal error (KeyError)", CAUSE_INTERNAL, NOW - timedelta(minutes=30))
    return sent(work(ev), Kind.CANNOT_CHECK, Phase.OPEN)


@case("cannot_check_remind")
def _() -> Message:
    ev = evaluate_failure(cannot_check_yesterday(), SCALINGO_ERROR, NOW, POLICY, permanent=False, cause=CAUSE_SCALINGO)
    return sent(work(ev), Kind.CANNOT_CHECK, Phase.REMIND)


@case("cannot_check_resolve")
def _() -> Message:
    ev = check(cannot_check_yesterday(), [*HISTORY, backup(1), backup(0)])
    return sent(work(ev), Kind.CANNOT_CHECK, Phase.RESOLVE)


@case("api_outage_open")
def _() -> Message:
    return sent(outage_work(outage(Record(outage_key(REGION), api_failures=2), 12)), Kind.API_OUTAGE, Phase.OPEN)


@case("api_outage_remind")
def _() -> Message:
    return sent(outage_work(outage(outage_open_yesterday(), 12)), Kind.API_OUTAGE, Phase.REMIND)


@case("api_outage_resolve")
def _() -> Message:
    return sent(outage_work(outage(outage_open_yesterday(), 0)), Kind.API_OUTAGE, Phase.RESOLVE)


@case("archive_unreadable_open")
def _() -> Message:
    listed = [*HISTORY, backup(1)]
    record = record_verdict(check(watched(listed), listed).base, backup(1), unreadable(backup(1)), NOW)
    return sent(work(archive_check(record, listed)), Kind.ARCHIVE_UNREADABLE, Phase.OPEN)


@case("archive_unreadable_update")
def _() -> Message:
    listed = [*HISTORY, backup(1), backup(0)]
    record = record_verdict(archive_unreadable_yesterday(), backup(0), unreadable(backup(0)), NOW)
    return sent(work(archive_check(record, listed)), Kind.ARCHIVE_UNREADABLE, Phase.UPDATE)


@case("archive_unreadable_remind")
def _() -> Message:
    ev = archive_check(archive_unreadable_yesterday(), [*HISTORY, backup(1), backup(0)])
    return sent(work(ev), Kind.ARCHIVE_UNREADABLE, Phase.REMIND)


@case("archive_unreadable_resolve")
def _() -> Message:
    listed = [*HISTORY, backup(1), backup(0)]
    record = record_verdict(archive_unreadable_yesterday(), backup(0), VERIFIED, NOW)
    return sent(work(archive_check(record, listed)), Kind.ARCHIVE_UNREADABLE, Phase.RESOLVE)


@case("verify_skipped_open")
def _() -> Message:
    big = backup(1, size=7_200_000_000)
    listed = [*HISTORY, big]
    record = record_verdict(check(watched(listed), listed).base, big, too_big(7_200_000_000, 5_000_000_000), NOW)
    return sent(work(archive_check(record, listed)), Kind.VERIFY_SKIPPED, Phase.OPEN)


@case("entries_skipped_open")
def _() -> Message:
    listed = [*HISTORY, backup(1)]
    problems = ("database_backups[3]: field 'id' has the wrong type (int)",)
    ev = check(watched(listed), listed, skipped=2, problems=problems)
    return sent(work(ev), Kind.ENTRIES_SKIPPED, Phase.OPEN)


@case("gone_notice")
def _() -> Message:
    listed = [*HISTORY, backup(1)]
    return sent(work(evaluate_gone(watched(listed), NOW, GONE_REASON)), Kind.GONE, Phase.NOTICE)


@case("pitr_behind_open")
def _() -> Message:
    return sent(work(pitr_behind(Phase.OPEN)), Kind.PITR_BEHIND, Phase.OPEN)


@case("pitr_behind_remind")
def _() -> Message:
    return sent(work(pitr_behind(Phase.REMIND)), Kind.PITR_BEHIND, Phase.REMIND)


@case("pitr_behind_resolve")
def _() -> Message:
    return sent(work(pitr_behind(Phase.RESOLVE)), Kind.PITR_BEHIND, Phase.RESOLVE)


@case("pitr_only_open")
def _() -> Message:
    return sent(work(pitr_only(), database=OFF), Kind.PITR_ONLY, Phase.OPEN)


@case("succeeded_each")
def _() -> Message:
    listed = [*HISTORY, backup(1)]
    ev = check(watched(listed), [*listed, backup(0)])
    return sent(
        work(ev, links={backup(0).id: link(backup(0).id)}), Kind.SUCCEEDED, Phase.NOTICE, success_notices="each"
    )


@case("archive_verified_notice")  # as the verification sends it
def _() -> Message:
    return render_verified([(verified_notice(backup(0), VERIFIED), BILLING)])


def successes(count: int, links: bool) -> list[tuple[Notice, DatabaseInfo, str | None]]:
    """New successes of one check as the rules make them (SUCCEEDED notices), as `plan` hands them to the digest."""
    items = []
    for i in range(count):
        b = backup(i)
        items.append(
            (Notice(Kind.SUCCEEDED, Phase.NOTICE, None, b), SHOP if i % 2 else BILLING, link(b.id) if links else None)
        )
    return items


@case("digest_with_links")
def _() -> Message:
    return render_digest(successes(3, links=True))[0].message


@case("digest_without_links")
def _() -> Message:
    return render_digest(successes(3, links=False))[0].message


@case("digest_compact_count")
def _() -> Message:
    return render_digest(successes(60, links=True), threaded=True)[0].message


@case("digest_compact_part_1")
def _() -> Message:
    return render_digest(successes(60, links=True), threaded=True)[1].message


def permalink(thread: ThreadRef) -> str:
    return f"https://acme.slack.com/archives/{thread.channel}/p{thread.ts.replace('.', '')}"


@case("group_failed_open")
def _() -> Message:
    return sent(group_of(failing_in_storm), Kind.FAILED, Phase.OPEN)


@case("group_failed_remind")
def _() -> Message:
    return sent(group_of(reminded_in_storm), Kind.FAILED, Phase.REMIND, permalink=permalink)


@case("group_missing_resolve")
def _() -> Message:
    return sent(group_of(resolved_in_storm), Kind.MISSING, Phase.RESOLVE)


@case("plain_text_fallback")
def _() -> Message:
    return plain_fallback(sent(work(failed_today()), Kind.FAILED, Phase.OPEN))


# -- SLACK_INTERACTIVE: the buttons, and what a click makes of the message -------------------------------------

CLICKER = "U0ONCALL1"
CLICKED_AT = NOW + timedelta(minutes=7)


def as_slack_returns(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The blocks as a block_actions payload's `message.blocks` gives them back: every block with a block id
    (Slack makes one up when we gave none), every plain_text with its emoji flag."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: walk(v) for k, v in node.items()}
            if out.get("type") == "plain_text":
                out.setdefault("emoji", True)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return [{"block_id": f"Xa{i}", **walk(b)} for i, b in enumerate(blocks)]


def interactive_open() -> Message:
    return sent(work(failed_today()), Kind.FAILED, Phase.OPEN, interactive=True, download_buttons=True)


@case("interactive_failed_open")
def _() -> Message:
    return interactive_open()


@case("interactive_failed_remind")
def _() -> Message:
    record, listed = failed_yesterday()
    return sent(work(check(record, listed)), Kind.FAILED, Phase.REMIND, interactive=True)


@case("interactive_succeeded_each")
def _() -> Message:
    listed = [*HISTORY, backup(1)]
    ev = check(watched(listed), [*listed, backup(0)])
    return sent(work(ev), Kind.SUCCEEDED, Phase.NOTICE, success_notices="each", interactive=True, download_buttons=True)


@case("interactive_digest")
def _() -> Message:
    items = successes(3, links=False)
    buttons = [
        download_button(TARGET.key if db is BILLING else "osc-fr1/ad-shop", n.backup.id if n.backup else "")
        for n, db, _ in items
    ]
    return render_digest(items, buttons=buttons)[0].message


@case("interactive_acknowledged")
def _() -> dict[str, Any]:
    message = interactive_open()
    return acknowledged_message(as_slack_returns(message.blocks), message.text, CLICKER, CLICKED_AT)


@case("interactive_silenced")
def _() -> dict[str, Any]:
    message = interactive_open()
    until = CLICKED_AT + DAY
    return silenced_message(as_slack_returns(message.blocks), message.text, CLICKER, until, "9f3a1c2e")


@case("interactive_unsilenced")
def _() -> dict[str, Any]:
    message = interactive_open()
    silenced = silenced_message(as_slack_returns(message.blocks), message.text, CLICKER, CLICKED_AT + DAY, "9f3a1c2e")
    later = CLICKED_AT + timedelta(hours=2)
    return unsilenced_message(as_slack_returns(silenced["blocks"]), silenced["text"], "U0ONCALL2", later)


@case("interactive_download_reply")
def _() -> dict[str, Any]:
    b = backup(0)
    return download_reply(link(b.id), b.name, "Scalingo does not say how long the link lives: use it now.")


def dump(message: Rendered) -> dict[str, Any]:
    if isinstance(message, dict):
        return {"payload": message}
    body: dict[str, Any] = {"payload": message.payload()}
    if message.edit is not None:
        body["edit"] = {
            "channel": message.edit.channel,
            "ts": message.edit.ts,
            "text": message.edit_text,
            "blocks": edit_blocks(message.edit_text),
        }
    return body


@pytest.mark.parametrize("name", sorted(CASES))
def test_message_matches_its_golden_file(name: str) -> None:
    rendered = json.dumps(dump(CASES[name]()), indent=2, ensure_ascii=False) + "\n"
    path = SNAPSHOTS / f"{name}.json"
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(rendered, encoding="utf-8")
    assert path.exists(), f"no golden file {path.name}: run UPDATE_SNAPSHOTS=1 pytest tests/unit/test_snapshots.py"
    assert path.read_text(encoding="utf-8") == rendered, f"{path.name} changed: review, then regenerate"
    body = json.loads(rendered)
    assert refusal(body["payload"]) is None
    if "edit" in body:
        assert refusal({"text": body["edit"]["text"], "blocks": body["edit"]["blocks"]}) is None


def test_no_golden_file_is_left_over() -> None:
    assert {p.stem for p in SNAPSHOTS.glob("*.json")} == set(CASES)


def test_every_title_has_a_golden_file() -> None:
    named = {f"{kind.value}_{phase.value}" for kind, phase in TITLES if kind is not Kind.SUCCEEDED}
    slots = {SLOT_STUCK: "missing_stuck", SLOT_SMALL: "missing_small"}
    named |= {f"{slots[state]}_{phase.value}" for state, phase in SLOT_TITLES}
    assert named <= set(CASES), sorted(named - set(CASES))
