"""The daily report: built from the state alone (records, now, settings), rendered for Slack and the terminal.

Pure: no clock, no I/O. `daily_report.py` decides when to send it; `backup-monitor status` prints it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from backup_monitor.config import ReportTime, Settings, Target
from backup_monitor.messages import (
    ICONS,
    MESSAGE_BLOCK_TEXT_BUDGET,
    TITLES,
    DatabaseInfo,
    Message,
    block_text_len,
    escape,
)
from backup_monitor.records import Incident, Record, ThreadRef
from backup_monitor.rules import NO_SCHEDULE_HOURS, SEVERITY, SEVERITY_ORDER, Kind, Phase, Severity
from backup_monitor.silences import Silence, slack_who

MAX_BLOCKS = 50  # Slack's limit for one message
MAX_SECTION_CHARS = 3000  # Slack's limit for a section's text
STALE_NAMES_SHOWN = 10
SILENCES_SHOWN = 10  # in the Slack report; `backup-monitor silences` lists them all
ENDED_SHOWN = timedelta(days=1)
THREAD_LINK = "https://slack.com/app_redirect?channel={channel}"


@dataclass(frozen=True, slots=True)
class LastVerification:
    """The last archive verification of one database that reached a verdict (issue 12, part 1)."""

    at: datetime
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class OpenIncident:
    """One open incident, for the report."""

    database: DatabaseInfo
    kind: str
    title: str
    severity: Severity
    opened_at: datetime
    age: timedelta
    thread: ThreadRef | None
    # A point-in-time recovery incident (behind, or the only protection): PITR's latest restore point, if known.
    restore_point: datetime | None = None
    acknowledged_by: str = ""
    acknowledged_at: datetime | None = None
    unannounced: bool = False  # opened while its database is silenced: announced when the silence ends


@dataclass(frozen=True, slots=True)
class DatabaseLine:
    """One database's line in `backup-monitor status`."""

    key: str
    database: DatabaseInfo
    known: bool  # a record exists (the database was checked at least once)
    last_usable_at: datetime | None
    fresh: bool
    verification: LastVerification | None
    incidents: tuple[OpenIncident, ...]
    restore_point: datetime | None = None  # point-in-time recovery's latest restore point (None: no PITR known)
    pitr_behind: bool = False  # that restore point is older than PITR_MAX_LAG_HOURS


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the daily report says, computed once, rendered twice."""

    now: datetime
    schedule: ReportTime | None
    watched: int
    excluded: int | None
    fresh_within: timedelta
    fresh: int
    stale: tuple[DatabaseInfo, ...]
    unknown: int
    verify_every_days: float
    verified: int
    verify_failed: int
    incidents: tuple[OpenIncident, ...]
    databases: tuple[DatabaseLine, ...]
    pitr_max_lag: timedelta = timedelta(hours=6)  # PITR_MAX_LAG_HOURS
    shard: str = ""  # the shard reported on (SCALINGO_API_TOKEN_PARAMETERS): each has its own report
    silences: tuple[Silence, ...] = ()  # active at `now`, soonest end first
    silences_ended: tuple[Silence, ...] = ()  # ended in the last day (expired or removed)

    @property
    def acknowledged(self) -> tuple[OpenIncident, ...]:
        return tuple(i for i in self.incidents if i.acknowledged_by)

    @property
    def pitr(self) -> tuple[DatabaseLine, ...]:
        """The databases with point-in-time recovery (a latest restore point is known)."""
        return tuple(d for d in self.databases if d.restore_point is not None)

    @property
    def critical(self) -> int:
        return sum(1 for i in self.incidents if i.severity is Severity.CRITICAL)


def verification_of(record: Record) -> LastVerification | None:
    """`record.verified` (added by part 1 of issue 12: `.at`, `.outcome` ok/failed, `.code`, `.detail`), if any."""
    last = getattr(record, "verified", None)
    at = getattr(last, "at", None)
    if not isinstance(at, datetime):
        return None
    ok = getattr(last, "outcome", "") == "ok"
    detail = "" if ok else str(getattr(last, "detail", "") or getattr(last, "code", "") or "failed")
    return LastVerification(at, ok, detail)


def verify_every_days(settings: Settings) -> float:
    """VERIFY_ARCHIVES_EVERY_DAYS (part 1 of issue 12); 0, "not enabled", where the setting does not exist."""
    value = getattr(settings, "verify_archives_every_days", 0)
    return float(value) if isinstance(value, int | float) else 0.0


def database_info(target: Target, record: Record | None) -> DatabaseInfo:
    """Who a line is about: the cached database info when the record has it."""
    return DatabaseInfo.of(target, record.database if record else None)


def incident_title(kind: str) -> str:
    """A known kind's title ("Backup failed"); an unknown one spelled out."""
    spelled = kind.replace("_", " ").capitalize() or "Incident"
    try:
        return TITLES.get((Kind(kind), Phase.OPEN), spelled)
    except ValueError:
        return spelled


def incident_severity(kind: str) -> Severity:
    """A known kind's severity; an unknown kind is critical (better loud than hidden)."""
    try:
        return SEVERITY.get(Kind(kind), Severity.CRITICAL)
    except ValueError:
        return Severity.CRITICAL


PITR_KINDS = frozenset({Kind.PITR_BEHIND.value, Kind.PITR_ONLY.value})  # their lines say the latest restore point


def build_report(
    settings: Settings,
    targets: Sequence[Target],
    records: Mapping[str, Record],
    now: datetime,
    *,
    excluded: int | None = None,
    silences: Sequence[Silence] = (),
) -> Report:
    """The report of the monitored databases' state at `now` (`excluded`: apps EXCLUDE_APPS left out;
    `silences`: the stored ones, of which the active and those ended in the last day are listed)."""
    fresh_within = timedelta(hours=NO_SCHEDULE_HOURS + settings.policy.missing_grace_hours)
    every = verify_every_days(settings)
    period = timedelta(days=every)
    lines: list[DatabaseLine] = []
    stale: list[DatabaseInfo] = []
    fresh = unknown = verified = verify_failed = 0
    incidents: list[OpenIncident] = []
    named = {t.key for t in settings.monitored}
    pitr_max_lag = timedelta(hours=settings.policy.pitr_max_lag_hours)
    watched = 0
    for target in targets:
        record = records.get(target.key)
        if record is not None and record.retired_at is not None and target.key not in named:
            continue  # deleted: said once, no longer watched
        watched += 1
        info = database_info(target, record)
        last_usable = record.last_usable_at if record else None
        is_fresh = last_usable is not None and now - last_usable <= fresh_within
        if last_usable is None:
            unknown += 1
        elif is_fresh:
            fresh += 1
        else:
            stale.append(info)
        verification = verification_of(record) if record else None
        if every > 0 and verification is not None and now - verification.at <= period:
            verified += 1
            verify_failed += 0 if verification.ok else 1
        restore_point = record.pitr_latest if record else None
        own = tuple(
            _open_incident(info, inc, now, restore_point) for inc in (record.incidents.values() if record else ())
        )
        incidents.extend(own)
        behind = restore_point is not None and now - restore_point > pitr_max_lag
        lines.append(
            DatabaseLine(
                target.name, info, record is not None, last_usable, is_fresh, verification, own, restore_point, behind
            )
        )
    incidents.sort(key=lambda i: (SEVERITY_ORDER[i.severity], i.opened_at, i.database.app))
    return Report(
        now=now,
        schedule=settings.daily_report,
        watched=watched,
        excluded=excluded,
        fresh_within=fresh_within,
        fresh=fresh,
        stale=tuple(stale),
        unknown=unknown,
        verify_every_days=every,
        verified=verified,
        verify_failed=verify_failed,
        incidents=tuple(incidents),
        databases=tuple(lines),
        pitr_max_lag=pitr_max_lag,
        shard=settings.shard,
        silences=tuple(sorted((x for x in silences if x.is_active(now)), key=lambda x: (x.end, x.id))),
        silences_ended=tuple(
            sorted((x for x in silences if x.end <= now and now - x.end <= ENDED_SHOWN), key=lambda x: (x.end, x.id))
        ),
    )


def _open_incident(
    info: DatabaseInfo, incident: Incident, now: datetime, restore_point: datetime | None = None
) -> OpenIncident:
    return OpenIncident(
        database=info,
        kind=incident.kind,
        title=incident_title(incident.kind),
        severity=incident_severity(incident.kind),
        opened_at=incident.opened_at,
        age=max(timedelta(0), now - incident.opened_at),
        thread=incident.thread,
        restore_point=restore_point if incident.kind in PITR_KINDS else None,
        acknowledged_by=incident.acknowledged_by,
        acknowledged_at=incident.acknowledged_at,
        unannounced=incident.unannounced,
    )


def human_age(age: timedelta) -> str:
    """`45 min`, `5 h`, `2 d 3 h`."""
    minutes = int(age.total_seconds() // 60)
    if minutes < 60:
        return f"{max(minutes, 0)} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h"
    return f"{hours // 24} d {hours % 24} h" if hours % 24 else f"{hours // 24} d"


def thread_link(thread: ThreadRef) -> str:
    """A link that opens the incident's channel without an API call (a message permalink needs one)."""
    return THREAD_LINK.format(channel=quote(thread.channel, safe=""))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _local_title(report: Report) -> str:
    shard = f"shard {report.shard} · " if report.shard else ""  # ids are letters, digits and dashes
    if report.schedule is None:
        return f"{shard}{report.now:%a %d %b %Y, %H:%M} UTC"
    local = report.now.astimezone(report.schedule.tz)
    return f"{shard}{local:%a %d %b %Y, %H:%M} {report.schedule.zone}"


def summary_lines(report: Report, *, slack: bool) -> list[str]:
    """The report's headline facts, one a line (Slack mrkdwn or plain text)."""

    def bold(text: str | int) -> str:
        return f"*{text}*" if slack else str(text)

    watched = f"Databases watched: {bold(report.watched)}"
    if report.excluded is not None:
        watched += f" ({_plural(report.excluded, 'app')} excluded by EXCLUDE_APPS)"
    hours = int(report.fresh_within.total_seconds() // 3600)
    fresh = f"Fresh usable backup (last {hours} h): {bold(f'{report.fresh} of {report.watched}')}"
    extra = []
    if report.stale:
        # A database without a fresh dump may still be covered by point-in-time recovery: say so beside its name.
        restore_points = {d.database: d.restore_point for d in report.pitr}
        names = [
            (_who(d) if slack else _plain(d)) + _covered_by(restore_points.get(d), report.now)
            for d in report.stale[:STALE_NAMES_SHOWN]
        ]
        more = f" and {len(report.stale) - STALE_NAMES_SHOWN} more" if len(report.stale) > STALE_NAMES_SHOWN else ""
        extra.append(f"not fresh: {', '.join(names)}{more}")
    if report.unknown:
        extra.append(f"{report.unknown} not known yet")
    if extra:
        fresh += f" ({'; '.join(extra)})"
    if report.verify_every_days > 0:
        verified = (
            f"Archives verified (last {report.verify_every_days:g} days): {bold(report.verified)}, "
            f"failed: {bold(report.verify_failed)}"
        )
    else:
        verified = "Archive verification: not enabled"
    if report.incidents:
        warnings = len(report.incidents) - report.critical
        incidents = f"Open incidents: {bold(len(report.incidents))} ({report.critical} critical, {warnings} warning)"
    else:
        incidents = "Open incidents: none"
    pitr = [pitr_line(report, slack=slack)] if report.pitr else []
    return [watched, fresh, *pitr, verified, incidents, *silence_summary(report, slack=slack)]


def pitr_line(report: Report, *, slack: bool) -> str:
    """`Point-in-time recovery (restore point within 6 h): 2 of 3 (behind: ...)`: the databases with PITR."""
    with_pitr = report.pitr
    behind = [d for d in with_pitr if d.pitr_behind]
    hours = f"{report.pitr_max_lag.total_seconds() / 3600:g}"
    count = f"{len(with_pitr) - len(behind)} of {len(with_pitr)}"
    line = f"Point-in-time recovery (restore point within {hours} h): {f'*{count}*' if slack else count}"
    if behind:
        names = [_who(d.database) if slack else _plain(d.database) for d in behind[:STALE_NAMES_SHOWN]]
        more = f" and {len(behind) - STALE_NAMES_SHOWN} more" if len(behind) > STALE_NAMES_SHOWN else ""
        line += f" (behind: {', '.join(names)}{more})"
    return line


def _covered_by(restore_point: datetime | None, now: datetime) -> str:
    if restore_point is None:
        return ""
    return f" (latest restore point {human_age(max(timedelta(0), now - restore_point))} ago)"


def _restore_point_note(incident: OpenIncident, now: datetime) -> str:
    """` · latest restore point 9 h ago` on a point-in-time recovery incident's line."""
    if incident.restore_point is None:
        return ""
    return f" · latest restore point {human_age(max(timedelta(0), now - incident.restore_point))} ago"


def _who(db: DatabaseInfo) -> str:
    """`*app* / resource (type, region)` with Scalingo's text escaped."""
    resource = f" / {escape(db.resource_id)}" if db.resource_id else ""
    return f"*{escape(db.app)}*{resource} ({escape(db.type_name)}, {escape(db.region)})"


def slack_len(text: str) -> int:
    """Length as Slack counts it (UTF-16 code units: an emoji counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def _plain(db: DatabaseInfo) -> str:
    resource = f"/{db.resource_id}" if db.resource_id else ""
    return f"{db.app}{resource}"


def _incident_line(
    incident: OpenIncident, now: datetime, permalink: Callable[[ThreadRef], str | None] | None = None
) -> str:
    line = f"{ICONS[incident.severity]} *{escape(incident.title)}* on {_who(incident.database)}"
    line += f" · open {human_age(incident.age)}{_restore_point_note(incident, now)}"
    line += _ack_note(incident, now, slack=True)
    if incident.thread is not None:
        link = (permalink(incident.thread) if permalink is not None else None) or thread_link(incident.thread)
        line += f" · <{escape(link)}|thread>"
    return line


def _ack_note(incident: OpenIncident, now: datetime, *, slack: bool) -> str:
    """` · acknowledged by <@U123> 2 h ago` (` · silenced, not announced yet` while its database is silenced)."""
    note = ""
    if incident.acknowledged_by:
        who = slack_who(incident.acknowledged_by) if slack else incident.acknowledged_by
        when = incident.acknowledged_at
        note += f" · acknowledged by {who}" + (f" {human_age(max(timedelta(0), now - when))} ago" if when else "")
    if incident.unannounced:
        note += " · silenced, not announced yet"
    return note


def silence_line(silence: Silence, now: datetime, *, slack: bool) -> str:
    """`billing-* until 2026-11-27 13:00 UTC (4 h left) by <@U123>: db migration`."""
    pattern = f"`{escape(silence.pattern)}`" if slack else silence.pattern
    who = slack_who(silence.by) if slack else silence.by
    reason = escape(silence.reason) if slack else silence.reason
    if silence.is_active(now):
        left = human_age(max(timedelta(0), silence.end - now))
        return f"{pattern} until {silence.end:%Y-%m-%d %H:%M} UTC ({left} left) by {who}: {reason}"
    removed = silence.ended_at is not None and silence.ended_at < silence.until
    how = "expired"
    if removed:
        remover = silence.ended_by or ""
        how = f"removed by {slack_who(remover) if slack else remover}" if remover else "removed"
    return f"{pattern} {how} at {silence.end:%Y-%m-%d %H:%M} UTC (set by {who}: {reason})"


def silence_summary(report: Report, *, slack: bool) -> list[str]:
    """`Silences: 2 active (…)` and the acknowledged incidents' count, when there are any."""
    lines = []
    if report.silences or report.silences_ended:
        count = f"*{len(report.silences)}*" if slack else str(len(report.silences))
        ended = f", {len(report.silences_ended)} ended in the last day" if report.silences_ended else ""
        lines.append(f"Silences: {count} active{ended} (nothing is said about their databases while they last)")
    acknowledged = report.acknowledged
    if acknowledged:
        lines.append(f"Acknowledged incidents: {len(acknowledged)} (no reminders while they stay open)")
    return lines


def kind_counts(report: Report) -> str:
    """`120 backup failed, 3 daily backup missing`: open incidents per kind, most severe and most frequent first."""
    counts: dict[tuple[int, str], int] = {}
    for incident in report.incidents:
        key = (SEVERITY_ORDER[incident.severity], incident.title)
        counts[key] = counts.get(key, 0) + 1
    ordered = sorted(counts.items(), key=lambda kv: (kv[0][0], -kv[1], kv[0][1]))
    return ", ".join(f"{count:,} {escape(title.lower())}" for (_, title), count in ordered)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _chunks(lines: Sequence[str], limit: int) -> list[str]:
    """Lines joined into texts of at most `limit` characters (a longer line is cut)."""
    chunks: list[str] = []
    current = ""
    for raw in lines:
        line = raw if slack_len(raw) <= limit else raw[: limit // 2 - 1] + "…"
        if current and slack_len(current) + 1 + slack_len(line) > limit:
            chunks.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        chunks.append(current)
    return chunks


PROBLEMS_POINTER = "`backup-monitor status --problems` lists every database with an open incident."


def render_slack(report: Report, permalink: Callable[[ThreadRef], str | None] | None = None) -> Message:
    """The report as one Slack message within Slack's limits at any number of incidents (50 blocks, 3,000
    characters a section, the block-text budget): the totals and counts per kind, then the most severe and
    oldest incidents, then "and N more" with a pointer to `backup-monitor status --problems`."""
    status = (
        ":red_circle:" if report.critical else ":large_orange_circle:" if report.incidents else ":white_check_mark:"
    )
    head = f"{status} *Daily backup report* · {_local_title(report)}"
    facts = [f"• {line}" for line in summary_lines(report, slack=True)]
    if report.incidents:
        facts.append(f"• By kind: {kind_counts(report)}")
    listed = [*report.silences, *report.silences_ended]
    facts.extend(f"• Silence {silence_line(x, report.now, slack=True)}" for x in listed[:SILENCES_SHOWN])
    if len(listed) > SILENCES_SHOWN:
        facts.append(f"• …and {len(listed) - SILENCES_SHOWN} more silences: `backup-monitor silences --all`")
    blocks: list[dict[str, Any]] = [_section(text) for text in _chunks([head, *facts], MAX_SECTION_CHARS)]
    footer = {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": "One report a day, the first check after "
                f"{report.schedule or 'the configured time'}: when it does not come, the monitor is not running. "
                "`backup-monitor status` prints the same from the state.",
            }
        ],
    }
    total = len(report.incidents)
    closing_reserve = 300  # the "and N more" line
    budget = MESSAGE_BLOCK_TEXT_BUDGET - block_text_len([*blocks, footer]) - closing_reserve
    room = MAX_BLOCKS - len(blocks) - 2  # the footer and the closing line
    shown: list[str] = []
    for incident in report.incidents:
        line = _incident_line(incident, report.now, permalink)
        candidate = _chunks([*shown, line], MAX_SECTION_CHARS)
        if len(candidate) > room or sum(slack_len(t) for t in candidate) > budget:
            break
        shown.append(line)
    blocks.extend(_section(text) for text in _chunks(shown, MAX_SECTION_CHARS))
    if len(shown) < total:
        blocks.append(_section(f"…and {total - len(shown):,} more open incidents. {PROBLEMS_POINTER}"))
    blocks.append(footer)
    shard = f" (shard {report.shard})" if report.shard else ""
    text = (
        f"Daily backup report{shard}: {report.watched} databases, {report.fresh} with a fresh usable backup, "
        f"{_plural(total, 'open incident')}"
    )
    return Message(text, blocks)


def render_text(report: Report, *, per_database: bool = True, problems_only: bool = False) -> str:
    """The report for a terminal: the headline facts, then one line per database (`problems_only`: only the
    databases with an open incident, however many: what the Slack report points to when it cannot list all)."""
    lines = [f"Backup report · {_local_title(report)}", *summary_lines(report, slack=False)]
    if report.silences or report.silences_ended:
        lines.append("")
        lines.append("Silences:")
        lines.extend(
            f"  {silence_line(x, report.now, slack=False)}" for x in (*report.silences, *report.silences_ended)
        )
    if report.incidents:
        lines.append("")
        lines.append("Open incidents:")
        for inc in report.incidents:
            thread = f"  thread {thread_link(inc.thread)}" if inc.thread else ""
            lines.append(
                f"  [{inc.severity.value.upper()}] {inc.title} on {_plain(inc.database)}"
                f" ({inc.database.region}), open {human_age(inc.age)}{_restore_point_note(inc, report.now)}"
                f"{_ack_note(inc, report.now, slack=False)}{thread}"
            )
    databases = [db for db in report.databases if db.incidents] if problems_only else list(report.databases)
    if per_database and databases:
        # The restore point column only when some database has point-in-time recovery.
        pitr = any(db.restore_point is not None for db in databases)
        head = ["DATABASE", "LAST USABLE BACKUP", *(["LATEST RESTORE POINT"] if pitr else []), "LAST VERIFICATION"]
        rows = [[*head, "OPEN INCIDENTS"]]
        for db in databases:
            cells = [db.key, _usable_cell(db, report.now), *([_restore_point_cell(db, report.now)] if pitr else [])]
            rows.append([*cells, _verification_cell(db, report), _incidents_cell(db)])
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        lines.append("")
        for row in rows:
            lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + "  " + row[-1])
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _restore_point_cell(db: DatabaseLine, now: datetime) -> str:
    if db.restore_point is None:
        return "-"
    age = human_age(max(timedelta(0), now - db.restore_point)) + " ago"
    return f"{age} (behind)" if db.pitr_behind else age


def _usable_cell(db: DatabaseLine, now: datetime) -> str:
    if not db.known:
        return "never checked"
    if db.last_usable_at is None:
        return "not known yet"
    age = human_age(now - db.last_usable_at) + " ago"
    return age if db.fresh else f"{age} (stale)"


def _verification_cell(db: DatabaseLine, report: Report) -> str:
    if report.verify_every_days <= 0:
        return "not enabled"
    if db.verification is None:
        return "never"
    outcome = "ok" if db.verification.ok else f"FAILED: {db.verification.detail[:60]}"
    return f"{human_age(report.now - db.verification.at)} ago, {outcome}"


def _incidents_cell(db: DatabaseLine) -> str:
    if not db.incidents:
        return "-"
    return ", ".join(f"{i.title.lower()} ({human_age(i.age)})" for i in db.incidents)
