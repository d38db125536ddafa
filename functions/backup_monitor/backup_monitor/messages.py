"""Pure renderers: notices to Slack Block Kit blocks plus a plain fallback text. No I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from backup_monitor.records import ThreadRef
from backup_monitor.rules import Kind, Notice, Phase, Severity

DASHBOARD_URL = "https://dashboard.scalingo.com/apps/{region}/{app}/resources"
ICONS = {
    Severity.CRITICAL: ":red_circle:",
    Severity.WARNING: ":large_orange_circle:",
    Severity.INFO: ":white_check_mark:",
}


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    """Which database a message is about."""

    region: str
    app: str
    addon_id: str
    resource_id: str = ""
    type_name: str = "database"


@dataclass(frozen=True, slots=True)
class Message:
    """One Slack message: fallback text, blocks, and where it goes (a thread, or an edit of a first message)."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread: ThreadRef | None = None
    edit: ThreadRef | None = None
    edit_text: str = ""


def escape(text: str) -> str:
    """Scalingo's text is data: it cannot mention, link or format anything in Slack."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_date(moment: datetime) -> str:
    """Slack's date token: each reader sees local time; the fallback is UTC."""
    epoch = int(moment.timestamp())
    fallback = f"{moment:%Y-%m-%d %H:%M} UTC"
    return f"<!date^{epoch}^{{date_short_pretty}} at {{time}}|{fallback}>"


def human_size(size: int | None) -> str:
    """Bytes in human units (powers of 1024)."""
    if size is None:
        return "unknown size"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def dashboard_url(db: DatabaseInfo) -> str:
    return DASHBOARD_URL.format(region=db.region, app=db.app)


def who(db: DatabaseInfo) -> str:
    """`app` / resource (type, region), escaped."""
    resource = f" / {escape(db.resource_id)}" if db.resource_id else ""
    return f"*{escape(db.app)}*{resource} ({escape(db.type_name)}, {escape(db.region)})"


def _plain_who(db: DatabaseInfo) -> str:
    resource = f"/{db.resource_id}" if db.resource_id else ""
    return f"{db.app}{resource} ({db.type_name}, {db.region})"


TITLES = {
    (Kind.FAILED, Phase.OPEN): "Backup failed",
    (Kind.FAILED, Phase.UPDATE): "Another backup failed",
    (Kind.FAILED, Phase.NOTICE): "A backup failed (a later one succeeded)",
    (Kind.MISSING, Phase.OPEN): "Daily backup missing",
    (Kind.MISSING, Phase.UPDATE): "Daily backup still missing",
    (Kind.STUCK, Phase.OPEN): "Backup stuck",
    (Kind.SUSPICIOUS, Phase.OPEN): "Backup suspiciously small",
    (Kind.SUSPICIOUS, Phase.UPDATE): "Another backup suspiciously small",
    (Kind.SUSPICIOUS, Phase.NOTICE): "A backup was suspiciously small (a later one is normal)",
    (Kind.PERIODIC_OFF, Phase.OPEN): "Periodic backups are switched off",
    (Kind.CANNOT_CHECK, Phase.OPEN): "Cannot check backups",
    (Kind.SUCCEEDED, Phase.NOTICE): "Backup succeeded",
    (Kind.GONE, Phase.NOTICE): "Database no longer watched",
}
NEXT_STEPS = {
    Kind.FAILED: "Look at the backup in the dashboard and start a manual backup once the cause is fixed.",
    Kind.MISSING: "Check the database's status and maintenance window, then start a manual backup.",
    Kind.STUCK: "Check the database's load and the backup in the dashboard; contact Scalingo support if it hangs.",
    Kind.SUSPICIOUS: "Download the backup and check that it holds your data.",
    Kind.PERIODIC_OFF: "Switch periodic backups back on in the database dashboard, unless this is intended.",
    Kind.CANNOT_CHECK: "Check the API token (it may have been revoked) and whether the addon still exists.",
}


def title(notice: Notice) -> str:
    base = TITLES.get((notice.kind, notice.phase)) or TITLES.get((notice.kind, Phase.OPEN), notice.kind.value)
    if notice.phase is Phase.REMIND:
        return f"Still open: {base[0].lower()}{base[1:]}"
    if notice.phase is Phase.RESOLVE:
        return f"Resolved: {base[0].lower()}{base[1:]}"
    return base


def _facts(notice: Notice) -> list[str]:
    facts: list[str] = []
    backup = notice.backup
    if backup is not None:
        name = escape(backup.name or backup.id)
        facts.append(f"Backup `{name}` scheduled {slack_date(backup.created_at)}")
        status = escape(backup.status)
        if notice.kind is Kind.FAILED and backup.status not in ("error", "cancelled"):
            facts.append(f"Status `{status}` is not one the monitor knows: treated as not OK")
        else:
            facts.append(f"Status `{status}`, {human_size(backup.size)}")
        if notice.median_size is not None and notice.kind is Kind.SUSPICIOUS:
            facts.append(f"Median of the previous backups: {human_size(notice.median_size)}")
    if notice.slot is not None and notice.kind is Kind.MISSING:
        facts.append(f"Expected at the slot of {slack_date(notice.slot)}")
    if notice.detail:
        facts.append(escape(notice.detail[:300]))
    facts.extend(escape(reason) for reason in notice.reasons)
    if notice.quiet:
        facts.append("Same outage as an incident already announced for this database: no mention")
    if notice.opened_at is not None and notice.phase in (Phase.REMIND, Phase.RESOLVE):
        facts.append(f"Open since {slack_date(notice.opened_at)}")
    return facts


def render(notice: Notice, db: DatabaseInfo, *, mention: str = "", link: str | None = None) -> Message:
    """One notice about one database as a Slack message."""
    heading = title(notice)
    icon = ICONS[notice.severity]
    lead = f"{mention} " if mention and notice.mention else ""
    facts = _facts(notice)
    body = f"{lead}{icon} *{heading}* on {who(db)}\n" + "\n".join(f"• {f}" for f in facts)
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": body.strip()}}]
    next_step = NEXT_STEPS.get(notice.kind) if notice.phase in (Phase.OPEN, Phase.UPDATE, Phase.REMIND) else None
    context = [f"<{dashboard_url(db)}|Open in the Scalingo dashboard>"]
    if next_step:
        context.insert(0, f"Next: {next_step}")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]})
    if link:
        blocks.append(_download(link))
    text = f"{lead}{heading}: {_plain_who(db)}"
    if notice.phase is Phase.RESOLVE and notice.thread is not None:
        return Message(text, blocks, thread=notice.thread, edit=notice.thread, edit_text=f"{heading}: {_plain_who(db)}")
    thread = notice.thread if notice.phase in (Phase.REMIND, Phase.UPDATE) else None
    return Message(text, blocks, thread=thread)


def _download(link: str) -> dict[str, Any]:
    return {
        "type": "actions",
        "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Download backup"}, "url": link}],
    }


def render_digest(items: Sequence[tuple[Notice, DatabaseInfo, str | None]]) -> Message:
    """New successful backups of one check, in one message; links are temporary."""
    lines = []
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f":white_check_mark: *{len(items)} new successful backup{'s' if len(items) != 1 else ''}*",
            },
        }
    ]
    for notice, db, link in items:
        backup = notice.backup
        if backup is None:
            continue
        name = escape(backup.name or backup.id)
        line = f"{who(db)}: `{name}`, {human_size(backup.size)}, {slack_date(backup.created_at)}"
        if link:
            line += f" · <{link}|download>"
        lines.append(line)
    for start in range(0, len(lines), 10):  # a section's text is limited to 3000 characters
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines[start : start + 10])}})
    if any(link for *_, link in items):
        blocks.append(_temporary_note())
    return Message(f"{len(items)} new successful backup{'s' if len(items) != 1 else ''}", blocks[:50])


def _temporary_note() -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": "Download links are temporary: open them soon or get a fresh one from the dashboard.",
            }
        ],
    }


def render_success(notice: Notice, db: DatabaseInfo, link: str | None) -> Message:
    """One success notice (SUCCESS_NOTICES=each)."""
    message = render(notice, db, link=link)
    if link:
        message.blocks.append(_temporary_note())
    return message


def console_text(message: Message) -> str:
    """A readable plain-text form of a message for the terminal (Slack markup simplified)."""
    import re

    parts: list[str] = []
    for block in message.blocks:
        if block["type"] in ("section",):
            parts.append(block["text"]["text"])
        elif block["type"] == "context":
            parts.extend("  " + e["text"] for e in block["elements"])
        elif block["type"] == "actions":
            parts.extend(f"  [{e['text']['text']}] {e['url']}" for e in block["elements"])
    text = "\n".join(parts) or message.text
    text = re.sub(r"<!date\^\d+\^[^|]*\|([^>]*)>", r"\1", text)
    text = re.sub(r"<([^|>]+)\|([^>]+)>", r"\2 (\1)", text)
    text = re.sub(
        r":(red_circle|large_orange_circle|white_check_mark):",
        lambda m: {"red_circle": "[CRITICAL]", "large_orange_circle": "[WARNING]", "white_check_mark": "[OK]"}[
            m.group(1)
        ],
        text,
    )
    text = text.replace("*", "").replace("`", "")
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
