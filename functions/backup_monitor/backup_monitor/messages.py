"""Pure renderers: notices to Slack messages (Block Kit blocks, a notification text, a plain-text fallback and a
console form). No I/O.

Everything Scalingo sends (app, resource id, type name, region, backup name, status, error detail) is data: it goes
through `safe` (cut with an ellipsis, bidirectional controls removed, `&`, `<`, `>` escaped, mrkdwn formatting
characters neutralised) before it reaches any Slack text. Messages are built by characters, not by counts: they
stay within Slack's limits whatever the data, and a digest too long for one message becomes several.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from backup_monitor.records import ThreadRef
from backup_monitor.rules import (
    CAUSE_ADDON,
    CAUSE_INTERNAL,
    CAUSE_SCALINGO,
    CAUSE_TOKEN,
    SLOT_SMALL,
    SLOT_STUCK,
    Kind,
    Notice,
    Phase,
    Severity,
    slot_state_of,
)
from backup_monitor.silences import slack_who

if TYPE_CHECKING:
    from backup_monitor.config import Target
    from backup_monitor.scalingo.models import Backup, Database

# Slack's limits (Block Kit reference, chat.postMessage): a section's text, blocks per message, a button's URL,
# a message's `text`. Slack also refuses a message whose blocks carry more than about 12,000 characters of text
# in all (`msg_blocks_too_long`, undocumented and observed refusing below 12,000 too): messages stay within a
# budget with a margin. Lengths are counted in UTF-16 code units, which is never less than characters.
SECTION_TEXT_MAX = 3000
CONTEXT_TEXT_MAX = 3000
MESSAGE_BLOCKS_MAX = 50
MESSAGE_BLOCK_TEXT_BUDGET = 10_000
MESSAGE_TEXT_MAX = 40_000
PLAIN_TEXT_MAX = 3000  # the plain-text retry of a refused message
BUTTON_URL_MAX = 3000

# How much of each Scalingo string a message shows (longer ones end with an ellipsis).
APP_MAX = 100
RESOURCE_MAX = 100
TYPE_MAX = 40
REGION_MAX = 40
BACKUP_NAME_MAX = 200
STATUS_MAX = 40
DETAIL_MAX = 500

ELLIPSIS = "…"
DASHBOARD_URL = "https://dashboard.scalingo.com/apps/{region}/{app}/resources"
ICONS = {
    Severity.CRITICAL: ":red_circle:",
    Severity.WARNING: ":large_orange_circle:",
    Severity.INFO: ":white_check_mark:",
}
CONSOLE_ICONS = {Severity.CRITICAL: "[CRITICAL]", Severity.WARNING: "[WARNING]", Severity.INFO: "[OK]"}
TEMPORARY_LINKS = "Download links are temporary: open them soon or get a fresh one from the dashboard."
LINK_TOO_LONG = "The download link is longer than Slack accepts: download the backup from the dashboard."
# SLACK_INTERACTIVE: successes carry a "Get download link" button instead of the link itself.
LINK_ON_CLICK = "Get download link makes a fresh link when clicked, shown to whoever clicked only."


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    """Which database a message is about."""

    region: str
    app: str
    addon_id: str
    resource_id: str = ""
    type_name: str = "database"

    @classmethod
    def of(cls, target: Target, database: Database | None) -> DatabaseInfo:
        """The target, with its resource id and type when Scalingo's database info is known."""
        if database is None:
            return cls(target.region, target.app, target.addon_id)
        return cls(target.region, target.app, target.addon_id, database.resource_id, database.type_name)


@dataclass(frozen=True, slots=True)
class Message:
    """One Slack message and where it goes (a thread, or an edit of a first message).

    `text` is the notification text sent beside the blocks; `plain` is the whole message as mrkdwn text (what
    is sent, cut, if Slack refuses the blocks); `console` is the terminal form, with names as Scalingo gave them.
    """

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    thread: ThreadRef | None = None
    edit: ThreadRef | None = None
    edit_text: str = ""
    plain: str = ""
    console: str = ""
    broadcast: bool = False  # a reply also shown in the channel (reply_broadcast): reminders

    def payload(self) -> dict[str, Any]:
        """The JSON body Slack receives for this message (without the channel)."""
        body: dict[str, Any] = {"text": self.text}
        if self.blocks:
            body["blocks"] = self.blocks
        if self.thread is not None:
            body["thread_ts"] = self.thread.ts
            if self.broadcast:
                body["reply_broadcast"] = True
        body["unfurl_links"] = False
        return body


@dataclass(frozen=True, slots=True)
class DigestPart:
    """One message of a digest and the positions of the items it lists.

    `in_thread`: a list part of a compact digest, posted in the thread of the digest's first message when the
    notifier has threads (the channel then shows one message however many backups there are)."""

    message: Message
    items: tuple[int, ...]
    in_thread: bool = False


# -- text as data ------------------------------------------------------------------------------------------------

_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# Slack's mrkdwn has no escape character: formatting characters in data are replaced by look-alikes that
# Slack never interprets (inside a code span only the backtick can end it, so only the backtick is replaced).
_LOOKALIKES = {"*": "\u2217", "_": "\u02cd", "~": "\u223c", "`": "\u02cb"}


def slack_len(text: str) -> int:
    """Length as Slack may count it: UTF-16 code units (an emoji counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def clean(value: str) -> str:
    """Bidirectional controls removed, control characters and line breaks as one space."""
    return _CONTROL.sub(" ", _BIDI.sub("", value)).strip()


@functools.lru_cache(maxsize=4096)  # a digest repeats each database's names on every line
def cut(value: str, limit: int) -> str:
    """`value` cleaned and cut to `limit` characters, ending with an ellipsis when cut (the console form)."""
    text = clean(value)
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + ELLIPSIS


@functools.lru_cache(maxsize=4096)
def safe(value: str, limit: int, *, code: bool = False) -> str:
    """Scalingo's text as Slack mrkdwn that cannot mention, link or format: at most `limit` units once escaped.

    `code=True` puts it in a code span (names stay exact, `*`, `_` and `~` literal); otherwise a formatting
    character that could open or close bold, italics or strike-through (one not between two letters or digits:
    Slack ignores those inside a word) or code (any backtick) is replaced by a look-alike.
    """
    source = clean(value)
    truncated = len(source) > limit  # every character counts at least one unit
    source = source[:limit]
    pieces = []
    for i, char in enumerate(source):
        if char in _ENTITIES:
            pieces.append(_ENTITIES[char])
        elif char == "`" or (char in _LOOKALIKES and not code and not _inside_word(source, i)):
            pieces.append(_LOOKALIKES[char])
        else:
            pieces.append(char)
    if truncated or sum(slack_len(p) for p in pieces) > limit:
        kept: list[str] = []
        used = slack_len(ELLIPSIS)
        for piece in pieces:
            used += slack_len(piece)
            if used > limit:
                break
            kept.append(piece)
        pieces = [*kept, ELLIPSIS]
    text = "".join(pieces)
    if code:
        return f"`{text}`" if text.strip() else "(none)"
    return text


def _inside_word(text: str, i: int) -> bool:
    return 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()


def escape(text: str) -> str:
    """Escape `&`, `<` and `>` only (text that may keep its formatting, such as a URL in a link)."""
    return "".join(_ENTITIES.get(c, c) for c in text)


def mask_links(text: str) -> str:
    """Download links with their `token=` hidden, for terminals and logs."""
    return re.sub(r"([?&;]token=)[^&\s>|)\"]+", r"\1" + ELLIPSIS, text)


# -- small pieces ------------------------------------------------------------------------------------------------


def slack_date(moment: datetime) -> str:
    """Slack's date token: each reader sees local time; the fallback is UTC."""
    epoch = int(moment.timestamp())
    return f"<!date^{epoch}^{{date_short_pretty}} at {{time}}|{utc(moment)}>"


def utc(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _count(number: int, unit: str) -> str:
    return f"{number} {unit}{'' if number == 1 else 's'}"


def human_span(span: timedelta) -> str:
    """`45 minutes`, `5 hours`, `31 hours`, `3 days`: one unit, rounded down (hours up to two days)."""
    minutes = int(span.total_seconds() // 60)
    if minutes < 1:
        return "less than a minute"
    if minutes < 60:
        return _count(minutes, "minute")
    hours = minutes // 60
    if hours < 48:
        return _count(hours, "hour")
    return _count(hours // 24, "day")


def ago(moment: datetime, now: datetime) -> str:
    """`3 days ago`, seen from `now` (a moment after `now`, a clock ahead of ours, is `just now`)."""
    if now - moment < timedelta(minutes=1):
        return "just now"
    return f"{human_span(now - moment)} ago"


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
    """The app's resources page; region and app are percent-encoded (they are data)."""
    return DASHBOARD_URL.format(region=quote(clean(db.region), safe=""), app=quote(clean(db.app), safe=""))


@dataclass(slots=True)
class _Line:
    """One line built twice at once: as Slack mrkdwn (data made safe) and for the console (data intact)."""

    md: list[str] = field(default_factory=list)
    con: list[str] = field(default_factory=list)

    def say(self, ours: str) -> _Line:
        """Text of our own (no data): the same on both sides."""
        self.md.append(ours)
        self.con.append(ours)
        return self

    def bold(self, ours: str) -> _Line:
        self.md.append(f"*{ours}*")
        self.con.append(ours)
        return self

    def data(self, value: str, limit: int, *, code: bool = False) -> _Line:
        self.md.append(safe(value, limit, code=code))
        self.con.append(cut(value, limit))
        return self

    def date(self, moment: datetime) -> _Line:
        self.md.append(slack_date(moment))
        self.con.append(utc(moment))
        return self

    def date_ago(self, moment: datetime, now: datetime | None) -> _Line:
        """The date, and how long ago it was when `now` is known: `<date> (3 days ago)`."""
        self.date(moment)
        return self.say(f" ({ago(moment, now)})") if now is not None else self

    def link(self, url: str, label: str) -> _Line:
        self.md.append(f"<{escape(url)}|{label}>")
        self.con.append(f"{label}: {url}")
        return self

    def extend(self, other: _Line) -> _Line:
        self.md.extend(other.md)
        self.con.extend(other.con)
        return self

    @property
    def mrkdwn(self) -> str:
        return "".join(self.md)

    @property
    def console(self) -> str:
        return "".join(self.con)


def who(db: DatabaseInfo) -> _Line:
    """`app / resource (type, region)`: the app in bold, the resource id in a code span."""
    line = _Line()
    line.md.append("*")
    line.data(db.app, APP_MAX)
    line.md.append("*")
    if db.resource_id:
        line.say(" / ").data(db.resource_id, RESOURCE_MAX, code=True)
    return line.say(" (").data(db.type_name, TYPE_MAX).say(", ").data(db.region, REGION_MAX).say(")")


def who_plain(db: DatabaseInfo) -> _Line:
    """`app/resource (type, region)` without formatting, for notification texts and edits."""
    line = _Line().data(db.app, APP_MAX)
    if db.resource_id:
        line.say("/").data(db.resource_id, RESOURCE_MAX)
    return line.say(" (").data(db.type_name, TYPE_MAX).say(", ").data(db.region, REGION_MAX).say(")")


# -- blocks ------------------------------------------------------------------------------------------------------


def _mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: Slack does not turn bare URLs, channel names or @words of the data into links or mentions.
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def section(text: str, accessory: dict[str, Any] | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": _mrkdwn(text)}
    if accessory is not None:
        block["accessory"] = accessory
    return block


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [_mrkdwn(fit_markup(text, CONTEXT_TEXT_MAX))]}


def button(url: str, label: str = "Download backup") -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": label}, "url": url}


def block_text_len(blocks: Iterable[Any]) -> int:
    """Characters of text a message's blocks carry (every `text` and `url` string), as Slack may count them."""
    total = 0
    stack: list[Any] = list(blocks)
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if isinstance(value, str) and key in ("text", "url"):
                    total += slack_len(value)
                elif isinstance(value, dict | list):
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return total


_OPEN_MARKUP = re.compile(r"(<[^>]*|&[a-z]*)$")


def fit_markup(text: str, limit: int) -> str:
    """`text` cut to `limit` units without breaking an entity or a `<...>` token (an ellipsis marks the cut)."""
    if slack_len(text) <= limit:
        return text
    if limit < 1:
        return ""
    head = text[: limit - 1]
    while head and slack_len(head) > limit - 1:
        head = head[:-1]
    return _OPEN_MARKUP.sub("", head) + ELLIPSIS


def pack_sections(lines: Sequence[str], limit: int = SECTION_TEXT_MAX) -> list[str]:
    """Lines joined into as few texts of at most `limit` units as possible; a line is never dropped."""
    texts: list[str] = []
    current = ""
    for raw in lines:
        line = fit_markup(raw, limit)
        candidate = f"{current}\n{line}" if current else line
        if slack_len(candidate) <= limit:
            current = candidate
        else:
            texts.append(current)
            current = line
    if current:
        texts.append(current)
    return texts


def fit_lines(lines: Sequence[str], limit: int) -> str:
    """Whole lines up to `limit` units; what does not fit is replaced by one closing line saying so."""
    note = f"{ELLIPSIS} (cut: the whole message is longer than Slack accepts)"
    text = "\n".join(lines)
    if slack_len(text) <= limit:
        return text
    kept: list[str] = []
    used = slack_len(note) + 1
    for line in lines:
        piece = line if kept else fit_markup(line, limit - used - 1)  # only a first line too long is cut
        if not piece or used + slack_len(piece) + 1 > limit:
            break
        kept.append(piece)
        used += slack_len(piece) + 1
    return "\n".join([*kept, note])


def blocks_mrkdwn(blocks: Sequence[dict[str, Any]]) -> list[str]:
    """The text of a message's blocks, one mrkdwn line per text (for messages built without a `plain` form)."""
    lines: list[str] = []
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict) and text.get("text"):
            lines.extend(str(text["text"]).split("\n"))
        accessory = block.get("accessory")
        for element in [*block.get("elements", []), *([accessory] if isinstance(accessory, dict) else [])]:
            if element.get("type") in ("mrkdwn", "plain_text"):
                lines.extend(str(element.get("text", "")).split("\n"))
            elif element.get("type") == "button" and element.get("url"):
                lines.append(f"<{escape(str(element['url']))}|{element.get('text', {}).get('text', 'link')}>")
    return lines


def plain_fallback(message: Message) -> Message:
    """The message as plain text only (no blocks, at most PLAIN_TEXT_MAX units): the retry of a refused message."""
    plain = message.plain or "\n".join(blocks_mrkdwn(message.blocks)) or message.text
    text = fit_lines(plain.split("\n"), PLAIN_TEXT_MAX)
    return Message(text, [], message.thread, message.edit, message.edit_text, text, message.console, message.broadcast)


def edit_blocks(edit_text: str) -> list[dict[str, Any]]:
    """What an incident's first message becomes once resolved (bot only). `edit_text` is already safe: its first
    line (the incident's title and database) is struck through, the lines after it are its facts."""
    head, *facts = edit_text.split("\n")
    lines = [f":white_check_mark: ~{head}~ (resolved, see thread)", *(f"• {fact}" for fact in facts if fact)]
    return [section(fit_markup("\n".join(lines), SECTION_TEXT_MAX))]


# -- notices ------------------------------------------------------------------------------------------------------

# One entry per kind of notice: a new Kind needs a title (and a next step if on-call should act).
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
    (Kind.ARCHIVE_UNREADABLE, Phase.OPEN): "Backup archive unreadable",
    (Kind.ARCHIVE_UNREADABLE, Phase.UPDATE): "Another backup archive unreadable",
    (Kind.VERIFY_SKIPPED, Phase.OPEN): "Backup archive not verified",
    (Kind.ARCHIVE_VERIFIED, Phase.NOTICE): "Backup archive verified",
    (Kind.API_OUTAGE, Phase.OPEN): "Scalingo API failing",
    (Kind.ENTRIES_SKIPPED, Phase.OPEN): "Backup list partly unreadable",
    (Kind.PITR_BEHIND, Phase.OPEN): "Point-in-time recovery behind",
    (Kind.PITR_ONLY, Phase.OPEN): "Periodic backups off (covered by point-in-time recovery)",
    (Kind.MANUAL_CANCELLED, Phase.NOTICE): "Manual backup cancelled",
}
# A missed slot where a backup is, but stuck in progress or too small to be usable (`Notice.slot_backup`): said
# as what it is. Reminders and resolutions follow ("Still open: daily backup stuck").
SLOT_TITLES = {
    (SLOT_STUCK, Phase.OPEN): "Daily backup stuck",
    (SLOT_STUCK, Phase.UPDATE): "Daily backup still stuck",
    (SLOT_SMALL, Phase.OPEN): "Daily backup too small",
    (SLOT_SMALL, Phase.UPDATE): "Daily backup still too small",
}
NEXT_STEPS = {
    Kind.FAILED: "Look at the backup in the dashboard and start a manual backup once the cause is fixed.",
    Kind.MISSING: "Check the database's status and maintenance window, then start a manual backup.",
    Kind.STUCK: "Check the database's load and the backup in the dashboard; contact Scalingo support if it hangs.",
    Kind.SUSPICIOUS: "Download the backup and check that it holds your data.",
    Kind.PERIODIC_OFF: "Switch periodic backups back on in the database dashboard, unless this is intended.",
    Kind.CANNOT_CHECK: "Check the API token (it may have been revoked) and whether the addon still exists.",
    Kind.ARCHIVE_UNREADABLE: "Download the backup and try a restore; make a manual backup and tell Scalingo support.",
    Kind.VERIFY_SKIPPED: "Nothing urgent: the archive will be tried again; raise VERIFY_MAX_GB if it is too big.",
    Kind.API_OUTAGE: 'Look at Scalingo\'s status page; per-database "cannot check" alerts of this region are held '
    "while it lasts.",
    Kind.PITR_BEHIND: "Check point-in-time recovery in the database dashboard and start a manual backup; contact "
    "Scalingo support if the restore point does not catch up.",
    Kind.PITR_ONLY: "Nothing to do if this is intended.",
}
SLOT_NEXT_STEPS = {
    SLOT_STUCK: "Check the database's load and the stuck backup in the dashboard, then start a manual backup; "
    "contact Scalingo support if it hangs.",
    SLOT_SMALL: "Download the backup and check that it holds your data, then start a manual backup.",
}
# "Cannot check": the next step depends on why (`Notice.cause`); an unknown cause gets NEXT_STEPS' generic one.
CAUSE_NEXT_STEPS = {
    CAUSE_SCALINGO: "Scalingo's side (errors, timeouts or answers that cannot be used): look at Scalingo's status "
    "page. Nothing to fix here; the monitor retries at every check.",
    CAUSE_TOKEN: "Check the API token: it may be revoked, expired or without access to this app. Rotate it if so "
    "(SCALINGO_API_TOKEN or its SSM parameter).",
    CAUSE_ADDON: "The addon or app was not found: deleted, renamed, or not visible to this token. Check it in the "
    "dashboard; fix MONITORED_DATABASES or give the token access.",
    CAUSE_INTERNAL: "A problem of the monitor, not of the database: look at the monitor's logs and its state store "
    "for this database.",
}
ALERT_PHASES = (Phase.OPEN, Phase.UPDATE, Phase.REMIND)
REANNOUNCED = "announced again here because the alert destination changed"
AFTER_SILENCE = "not announced until now: its database was silenced"


def title(notice: Notice) -> str:
    """The heading of a notice: from TITLES, or the kind's name for a kind without an entry."""
    state = slot_state_of(notice)  # a missed slot's backup stuck or too small: said as what it is
    base = None
    if state:
        base = SLOT_TITLES.get((state, notice.phase)) or SLOT_TITLES[(state, Phase.OPEN)]
    base = base or TITLES.get((notice.kind, notice.phase)) or TITLES.get((notice.kind, Phase.OPEN))
    if base is None:
        base = notice.kind.value.replace("_", " ").capitalize()
    lowered = base if base.startswith("Scalingo") else f"{base[0].lower()}{base[1:]}"  # a name keeps its capital
    if notice.phase is Phase.REMIND:
        return f"Still open: {lowered}"
    if notice.phase is Phase.RESOLVE:
        return f"Resolved: {lowered}"
    return base


def next_step(notice: Notice) -> str | None:
    """What on-call should do about an alert or reminder (None for resolutions and one-off notices)."""
    if notice.phase not in ALERT_PHASES:
        return None
    state = slot_state_of(notice)
    if state:
        return SLOT_NEXT_STEPS[state]
    if notice.kind is Kind.CANNOT_CHECK and notice.cause in CAUSE_NEXT_STEPS:
        return CAUSE_NEXT_STEPS[notice.cause]
    return NEXT_STEPS.get(notice.kind)


def _wants_runbook(notice: Notice) -> bool:
    """Alerts, reminders and one-off warnings carry the runbook; successes and resolutions do not."""
    return notice.severity is not Severity.INFO


def _backup_facts(notice: Notice, backup: Backup) -> list[_Line]:
    facts = [_Line().say("Backup ").data(backup.name or backup.id, BACKUP_NAME_MAX, code=True)]
    facts[-1].say(" scheduled ").date(backup.created_at)
    status = _Line().say("Status ").data(backup.status, STATUS_MAX, code=True)
    if notice.kind is Kind.FAILED and backup.status not in ("error", "cancelled"):
        facts.append(status.say(" is not one the monitor knows: treated as not OK"))
    else:
        facts.append(status.say(f", {human_size(backup.size)}"))
    if notice.median_size is not None and notice.kind is Kind.SUSPICIOUS:
        facts.append(_Line().say(f"Median of the previous backups: {human_size(notice.median_size)}"))
    return facts


def _slot_backup_fact(backup: Backup, now: datetime | None) -> _Line:
    """The backup that was at a missed slot: `Backup at the slot: `name`, status `running`, unknown size`."""
    line = _Line().say("Backup at the slot: ").data(backup.name or backup.id, BACKUP_NAME_MAX, code=True)
    line.say(", status ").data(backup.status, STATUS_MAX, code=True).say(f", {human_size(backup.size)}")
    if backup.in_progress:
        line.say(", started ").date_ago(backup.started_at or backup.created_at, now)
    return line


def usable_facts(notice: Notice, now: datetime | None) -> list[_Line]:
    """How old the newest usable backup is (and PITR's latest restore point): what on-call can restore now."""
    facts = []
    if notice.last_usable_at is not None:
        facts.append(_Line().say("Newest usable backup: ").date_ago(notice.last_usable_at, now))
        backup = notice.backup
        if notice.kind is Kind.ARCHIVE_UNREADABLE and backup is not None and backup.created_at == notice.last_usable_at:
            facts[-1].say(": the backup above, whose archive is unreadable")
    if notice.restore_point is not None:
        facts.append(_Line().say("Latest restore point (point-in-time recovery): ").date_ago(notice.restore_point, now))
    if not facts:
        facts.append(_Line().say("No usable backup is known"))
    return facts


def _facts(notice: Notice, now: datetime | None = None) -> list[_Line]:
    facts: list[_Line] = []
    if notice.backup is not None:
        facts.extend(_backup_facts(notice, notice.backup))
    if notice.slot is not None and notice.kind is Kind.MISSING:
        facts.append(_Line().say("Expected at the slot of ").date(notice.slot))
    if notice.slot_backup is not None and notice.kind is Kind.MISSING and notice.phase in ALERT_PHASES:
        facts.append(_slot_backup_fact(notice.slot_backup, now))  # a resolution's may be as it was when announced
    if notice.detail:
        facts.append(_Line().data(notice.detail, DETAIL_MAX))
    facts.extend(_Line().data(reason, DETAIL_MAX) for reason in notice.reasons)  # they quote Scalingo's data
    if notice.failing_since is not None and notice.kind is Kind.CANNOT_CHECK and notice.phase is not Phase.RESOLVE:
        facts.append(_Line().say("Reads have failed since ").date_ago(notice.failing_since, now))
    if notice.phase in ALERT_PHASES and notice.kind is not Kind.API_OUTAGE:  # an outage is a region's, not a db's
        facts.extend(usable_facts(notice, now))
    if notice.quiet:
        facts.append(_Line().say("Same outage as an incident already announced for this database: no mention"))
    if notice.after_silence and notice.phase is Phase.OPEN and notice.opened_at is not None:
        facts.append(_open_since(notice.opened_at).say(f"; {AFTER_SILENCE}"))
    elif notice.reannounce and notice.phase is Phase.OPEN:
        if notice.opened_at is not None:
            facts.append(_open_since(notice.opened_at).say(f"; {REANNOUNCED}"))
        else:
            facts.append(_Line().say(f"Already open; {REANNOUNCED}"))
    elif notice.opened_at is not None and notice.phase is Phase.RESOLVE:
        facts.append(_lasted(notice.opened_at, now))
    elif notice.opened_at is not None and notice.phase is Phase.REMIND:
        facts.append(_open_since(notice.opened_at))
    if notice.acknowledged_by and notice.phase is Phase.RESOLVE:
        facts.append(acknowledged_line(notice.acknowledged_by, notice.acknowledged_at))
    return facts


def acknowledged_line(by: str, at: datetime | None) -> _Line:
    """`Acknowledged by <@U123> at <date>`: a Slack user id is mentioned, any other name (`cli:alice`) is text."""
    line = _Line().say("Acknowledged by ")
    line.md.append(slack_who(by))
    line.con.append(by)
    return line.say(" at ").date(at) if at is not None else line


def _open_since(opened_at: datetime) -> _Line:
    return _Line().say("Open since ").date(opened_at)


def _lasted(opened_at: datetime, now: datetime | None) -> _Line:
    """`Lasted 2 days (open since <date>)`: a resolved incident's length (`Open since <date>` without `now`)."""
    if now is None:
        return _open_since(opened_at)
    return _Line().say(f"Lasted {human_span(now - opened_at)} (open since ").date(opened_at).say(")")


def _icon(severity: Severity) -> tuple[str, str]:
    return ICONS.get(severity, ":information_source:"), CONSOLE_ICONS.get(severity, "[INFO]")


RESOLVED_EDIT_DETAIL_MAX = 300  # what closed it, in the edited first message (the thread has the whole story)


def resolved_edit_text(heading: str, notice: Notice, now: datetime | None) -> str:
    """A resolved incident's first message once edited (bot only), as mrkdwn lines for `edit_blocks`: the title
    it was announced with and its database (struck), how long it lasted, what closed it."""
    lines = [heading]
    if notice.opened_at is not None:
        lines.append(_lasted(notice.opened_at, now).mrkdwn)
    if notice.detail:
        lines.append(f"Closed: {safe(notice.detail, RESOLVED_EDIT_DETAIL_MAX)}")
    return "\n".join(lines)


def _footer(step: str | None, *, dashboard: DatabaseInfo | None = None, runbook: str = "", closing: str = "") -> _Line:
    """`Next: ... · Open in the Scalingo dashboard · Runbook`: what to do, and where."""
    footer = _Line()
    parts: list[_Line] = []
    if step or closing:
        parts.append(_Line().say(" ".join(x for x in (f"Next: {step}" if step else "", closing) if x)))
    if dashboard is not None:
        parts.append(_Line().link(dashboard_url(dashboard), "Open in the Scalingo dashboard"))
    if runbook:
        parts.append(_Line().link(runbook, "Runbook"))
    for i, part in enumerate(parts):
        footer.say(" · " if i else "").extend(part)
    return footer


def render(
    notice: Notice,
    db: DatabaseInfo,
    *,
    mention: str = "",
    link: str | None = None,
    temporary_note: bool = False,
    now: datetime | None = None,
    runbook: str = "",
    actions: dict[str, Any] | None = None,
) -> Message:
    """One notice about one database as a Slack message. `now` (the check's clock) dates its facts ("3 days
    ago"); `runbook` (RUNBOOK_URL) is linked from every alert's footer; `actions`: an `actions` block of
    buttons (SLACK_INTERACTIVE, interactions_ui), the message's last block."""
    heading = title(notice)
    icon, console_icon = _icon(notice.severity)
    lead = f"{mention} " if mention and notice.mention else ""
    first = _Line()
    first.md.append(f"{lead}{icon} ")
    first.con.append(f"{lead}{console_icon} ")
    first.bold(heading).say(" on ").extend(who(db))
    lines = [first, *(_Line().say("• ").extend(f) for f in _facts(notice, now))]
    if link and slack_len(link) > BUTTON_URL_MAX:
        lines.append(_Line().say(f"• {LINK_TOO_LONG}"))
        link = None

    blocks = [section(text) for text in pack_sections([line.mrkdwn for line in lines])]
    footer = _footer(next_step(notice), dashboard=db, runbook=runbook if _wants_runbook(notice) else "")
    blocks.append(context(footer.mrkdwn))
    plain = [line.mrkdwn for line in lines] + [footer.mrkdwn]
    console = [line.console for line in lines] + ["  " + footer.console]
    if link:
        blocks.append({"type": "actions", "elements": [button(link)]})
        plain.append(f"<{escape(link)}|Download backup>")
        console.append(f"  [Download backup] {link}")
        if temporary_note:
            blocks.append(context(TEMPORARY_LINKS))
            plain.append(TEMPORARY_LINKS)
            console.append("  " + TEMPORARY_LINKS)
    if actions is not None:
        blocks.append(actions)
        labels = " ".join(f"[{e['text']['text']}]" for e in actions.get("elements", []))
        console.append(f"  {labels}")
        if temporary_note and any(e.get("action_id") == "bm_download" for e in actions.get("elements", [])):
            blocks.append(context(LINK_ON_CLICK))
            plain.append(LINK_ON_CLICK)
            console.append("  " + LINK_ON_CLICK)

    whom = who_plain(db)
    text = f"{lead}{heading}: {whom.mrkdwn}"
    fields: dict[str, Any] = {"plain": "\n".join(plain), "console": "\n".join(console)}
    if notice.phase is Phase.RESOLVE and notice.thread is not None:
        if notice.shared:  # a grouped first message stays as it is: the other databases' incidents may be open
            return Message(text, blocks, thread=notice.thread, **fields)
        announced = title(replace(notice, phase=Phase.OPEN))  # what the first message said
        edit_text = resolved_edit_text(f"{announced}: {whom.mrkdwn}", notice, now)
        return Message(text, blocks, thread=notice.thread, edit=notice.thread, edit_text=edit_text, **fields)
    thread = notice.thread if notice.phase in (Phase.REMIND, Phase.UPDATE) else None
    # A reminder in a thread nobody follows is not seen: it is also shown in the channel.
    broadcast = thread is not None and notice.phase is Phase.REMIND
    return Message(text, blocks, thread=thread, broadcast=broadcast, **fields)


def render_success(
    notice: Notice, db: DatabaseInfo, link: str | None, actions: dict[str, Any] | None = None
) -> Message:
    """One success notice (SUCCESS_NOTICES=each); `actions` (a "Get download link" button) instead of `link`."""
    if actions is not None:
        return render(notice, db, temporary_note=True, actions=actions)
    return render(notice, db, link=link, temporary_note=True)


# -- one message for many databases (a storm) ------------------------------------------------------------------

GROUP_ITEM_DETAIL_MAX = 160  # a grouped line's detail; the whole story is in each database's own thread/record
ONE_INCIDENT_EACH = "Each database has its own incident: it closes on its own evidence."


@dataclass(frozen=True, slots=True)
class GroupPart:
    """One message of a grouped announcement and the positions of the items it names."""

    message: Message
    items: tuple[int, ...]


def _group_fact(notice: Notice, now: datetime | None) -> _Line:
    line = _Line()
    backup = notice.backup
    if backup is not None:
        line.say(": ").data(backup.name or backup.id, BACKUP_NAME_MAX, code=True)
        line.say(" ").data(backup.status, STATUS_MAX, code=True)
    elif notice.slot is not None and notice.kind is Kind.MISSING:
        line.say(": slot of ").date(notice.slot)
        if notice.slot_backup is not None and notice.phase in ALERT_PHASES:
            at_slot = notice.slot_backup
            line.say(", ").data(at_slot.name or at_slot.id, BACKUP_NAME_MAX, code=True)
            line.say(" ").data(at_slot.status, STATUS_MAX, code=True).say(f" {human_size(at_slot.size)}")
    elif notice.detail and notice.phase is not Phase.REMIND:
        line.say(": ").data(notice.detail, GROUP_ITEM_DETAIL_MAX)
    if notice.phase in ALERT_PHASES:
        line.extend(_usable_compact(notice, now))
    if notice.reannounce and notice.phase is Phase.OPEN:
        line.say(" · announced again (new destination)")
    if notice.after_silence and notice.phase is Phase.OPEN:
        line.say(" · opened during a silence")
    if notice.acknowledged_by and notice.phase is Phase.RESOLVE:
        line.say(" · acknowledged by ")
        line.md.append(slack_who(notice.acknowledged_by))
        line.con.append(notice.acknowledged_by)
    if notice.opened_at is not None and notice.phase in (Phase.REMIND, Phase.RESOLVE):
        line.say(" · open since ").date(notice.opened_at)
    return line


def _usable_compact(notice: Notice, now: datetime | None) -> _Line:
    """A grouped line's `· newest usable 3 days ago` (the date when `now` is not known)."""

    def when(moment: datetime) -> _Line:
        return _Line().say(ago(moment, now)) if now is not None else _Line().date(moment)

    line = _Line()
    if notice.last_usable_at is not None:
        line.say(" · newest usable ").extend(when(notice.last_usable_at))
    if notice.restore_point is not None:
        line.say(" · restore point ").extend(when(notice.restore_point))
    if notice.last_usable_at is None and notice.restore_point is None:
        line.say(" · no usable backup known")
    return line


def _group_line(
    notice: Notice, db: DatabaseInfo, permalink: Callable[[ThreadRef], str | None] | None, now: datetime | None
) -> _Line:
    line = _Line().say("• ").extend(who(db)).extend(_group_fact(notice, now))
    link = permalink(notice.thread) if permalink is not None and notice.thread is not None else None
    if link:
        line.say(" · ").link(link, "thread")
    return line


def group_title(kind: Kind, phase: Phase, count: int, notices: Sequence[Notice] = ()) -> str:
    """`Backup failed on 300 databases`, `Still open: backup failed on 12 databases`; the title the notices
    share when they all have the same ("Daily backup stuck on 6 databases")."""
    titles = {title(n) for n in notices}
    base = titles.pop() if len(titles) == 1 else title(Notice(kind, phase))
    return f"{base} on {count:,} databases"


def render_group(
    items: Sequence[tuple[Notice, DatabaseInfo]],
    *,
    mention: str = "",
    permalink: Callable[[ThreadRef], str | None] | None = None,
    now: datetime | None = None,
    runbook: str = "",
) -> list[GroupPart]:
    """Notices of one kind and phase across many databases, as one message (parts when too long for one):
    one heading with the count, one mention at most (on the first part), every database named once."""
    if not items:
        return []
    first = items[0][0]
    heading = group_title(first.kind, first.phase, len(items), [n for n, _ in items])
    severity = first.severity
    icon, console_icon = _icon(severity)
    lead = f"{mention} " if mention and any(n.mention for n, _ in items) else ""
    lines = [(i, _group_line(n, db, permalink, now)) for i, (n, db) in enumerate(items)]
    steps = {next_step(n) for n, _ in items}
    step = steps.pop() if len(steps) == 1 else next_step(Notice(first.kind, first.phase))
    footer = _footer(step, closing=ONE_INCIDENT_EACH, runbook=runbook if _wants_runbook(first) else "")

    groups: list[list[tuple[int, _Line]]] = [[]]
    for entry in lines:
        candidate = [*groups[-1], entry]
        texts = pack_sections([x.mrkdwn for _, x in candidate])
        too_many = len(texts) + 2 > MESSAGE_BLOCKS_MAX
        too_long = (
            sum(slack_len(t) for t in texts) + _HEADING_RESERVE + slack_len(footer.mrkdwn) > MESSAGE_BLOCK_TEXT_BUDGET
        )
        if groups[-1] and (too_many or too_long):
            groups.append([entry])
        else:
            groups[-1] = candidate
    parts: list[GroupPart] = []
    for number, group in enumerate(groups, start=1):
        suffix = f" (part {number} of {len(groups)})" if len(groups) > 1 else ""
        say = lead if number == 1 else ""
        head_md = f"{say}{icon} *{heading}*{suffix}"
        head_console = f"{say}{console_icon} {heading}{suffix}"
        texts = pack_sections([x.mrkdwn for _, x in group])
        blocks = [section(head_md), *(section(t) for t in texts), context(footer.mrkdwn)]
        plain = "\n".join([head_md, *(x.mrkdwn for _, x in group), footer.mrkdwn])
        console = "\n".join([head_console, *(x.console for _, x in group), f"  {footer.console}"])
        message = Message(f"{say}{heading}{suffix}", blocks, plain=plain, console=console)
        parts.append(GroupPart(message, tuple(i for i, _ in group)))
    return parts


def render_outage(
    notice: Notice, region: str, *, mention: str = "", now: datetime | None = None, runbook: str = ""
) -> Message:
    """The one incident of a region whose Scalingo API fails for most databases (threads, reminders, resolution
    and the edit of its first message as for any incident)."""
    icon, console_icon = _icon(notice.severity)
    lead = f"{mention} " if mention and notice.mention else ""
    first = _Line()
    first.md.append(f"{lead}{icon} ")
    first.con.append(f"{lead}{console_icon} ")
    first.bold(title(notice)).say(" in ").data(region, REGION_MAX)
    lines = [first, *(_Line().say("• ").extend(f) for f in _facts(notice, now))]
    if notice.phase is Phase.RESOLVE:
        footer = _Line().say("From now on, a database that still cannot be read is reported on its own.")
    else:
        footer = _footer(NEXT_STEPS[Kind.API_OUTAGE], runbook=runbook if _wants_runbook(notice) else "")
    blocks = [section(t) for t in pack_sections([x.mrkdwn for x in lines])]
    blocks.append(context(footer.mrkdwn))
    plain = "\n".join([*(x.mrkdwn for x in lines), footer.mrkdwn])
    console = "\n".join([*(x.console for x in lines), f"  {footer.console}"])
    text = f"{lead}{title(notice)} in {safe(region, REGION_MAX)}"
    if notice.phase is Phase.RESOLVE and notice.thread is not None:
        announced = title(replace(notice, phase=Phase.OPEN))
        edit_text = resolved_edit_text(f"{announced} in {safe(region, REGION_MAX)}", notice, now)
        return Message(text, blocks, notice.thread, notice.thread, edit_text, plain, console)
    thread = notice.thread if notice.phase in (Phase.REMIND, Phase.UPDATE) else None
    broadcast = thread is not None and notice.phase is Phase.REMIND
    return Message(text, blocks, thread=thread, plain=plain, console=console, broadcast=broadcast)


# -- the digest ---------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    index: int
    line: _Line
    link: str | None
    accessory: dict[str, Any] | None = None  # SLACK_INTERACTIVE: its "Get download link" button

    def block(self) -> dict[str, Any] | None:
        """Its own section when it has a download button; otherwise it shares sections with other lines."""
        if self.accessory is not None:
            return section(self.line.mrkdwn, self.accessory)
        return section(self.line.mrkdwn, button(self.link, "Download")) if self.link else None


def _digest_entry(
    index: int, notice: Notice, db: DatabaseInfo, link: str | None, accessory: dict[str, Any] | None = None
) -> _Entry:
    if accessory is not None:
        entry = _digest_entry(index, notice, db, None)
        entry.accessory = accessory
        return entry
    line = _Line().extend(who(db))
    backup = notice.backup
    if backup is not None:
        line.say(": ").data(backup.name or backup.id, BACKUP_NAME_MAX, code=True)
        line.say(f", {human_size(backup.size)}, ").date(backup.created_at)
    if link and slack_len(link) > BUTTON_URL_MAX:
        line.say(f" ({LINK_TOO_LONG})")
        link = None
    return _Entry(index, line, link)


def _digest_heading(total: int, part: int, parts: int) -> tuple[str, str]:
    text = f"{total} new successful backup{'s' if total != 1 else ''}"
    if parts > 1:
        text += f" (part {part} of {parts})"
    return f":white_check_mark: *{text}*", text


_HEADING_RESERVE = 200  # the heading's units, reserved before the part numbers are known


def _digest_blocks(entries: Sequence[_Entry]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    loose: list[str] = []
    for entry in entries:
        own = entry.block()
        if own is None:
            loose.append(entry.line.mrkdwn)
            continue
        blocks.extend(section(t) for t in pack_sections(loose))
        loose = []
        blocks.append(own)
    blocks.extend(section(t) for t in pack_sections(loose))
    if any(e.link for e in entries):
        blocks.append(context(TEMPORARY_LINKS))
    elif any(e.accessory for e in entries):
        blocks.append(context(LINK_ON_CLICK))
    return blocks


def _fits(blocks: list[dict[str, Any]]) -> bool:
    if len(blocks) + 1 > MESSAGE_BLOCKS_MAX:  # + the heading
        return False
    return block_text_len(blocks) + _HEADING_RESERVE <= MESSAGE_BLOCK_TEXT_BUDGET


DIGEST_COMPACT_AFTER = 20  # more new successes than this: one count, then the list in parts (in a thread)


def render_digest(
    items: Sequence[tuple[Notice, DatabaseInfo, str | None]],
    *,
    threaded: bool = False,
    buttons: Sequence[dict[str, Any] | None] | None = None,
) -> list[DigestPart]:
    """New successful backups of one check: one message, or several when they do not fit in one.

    Up to DIGEST_COMPACT_AFTER backups, each has its own line and download button; more, and the digest is a
    count followed by compact list parts (links inline), which go in the count's thread when `threaded`.
    Every item is listed in exactly one part; a part's `items` are positions in `items`.

    `buttons` (SLACK_INTERACTIVE): each item's "Get download link" button (or None), in place of the links:
    each backup then keeps its own section (a button is a section's accessory), and a digest of more than
    DIGEST_COMPACT_AFTER is the count followed by parts of such sections (at most 50 blocks each).
    """
    if not items:
        return []
    if buttons is not None:
        entries = [_digest_entry(i, n, db, None, buttons[i]) for i, (n, db, _) in enumerate(items)]
        if len(items) > DIGEST_COMPACT_AFTER:
            return _button_digest(items, entries, threaded=threaded)
    elif len(items) > DIGEST_COMPACT_AFTER:
        return _compact_digest(items, threaded=threaded)
    else:
        entries = [_digest_entry(i, n, db, link) for i, (n, db, link) in enumerate(items)]
    groups = _entry_groups(entries)
    parts: list[DigestPart] = []
    for number, group in enumerate(groups, start=1):
        heading_md, heading_text = _digest_heading(len(items), number, len(groups))
        blocks = [section(heading_md), *_digest_blocks(group)]
        plain = [heading_md]
        console = [f"[OK] {heading_text}"]
        for entry in group:
            suffix_md = f" · <{escape(entry.link)}|download>" if entry.link else ""
            plain.append(f"• {entry.line.mrkdwn}{suffix_md}")
            console.append(f"• {entry.line.console}" + (f"\n    [Download] {entry.link}" if entry.link else ""))
        if any(e.link for e in group):
            plain.append(TEMPORARY_LINKS)
            console.append("  " + TEMPORARY_LINKS)
        message = Message(heading_text, blocks, plain="\n".join(plain), console="\n".join(console))
        parts.append(DigestPart(message, tuple(e.index for e in group)))
    return parts


def _entry_groups(entries: Sequence[_Entry]) -> list[list[_Entry]]:
    """Entries in order, as many per message as fit (blocks and text)."""
    groups: list[list[_Entry]] = [[]]
    for entry in entries:
        candidate = [*groups[-1], entry]
        if groups[-1] and not _fits(_digest_blocks(candidate)):
            groups.append([entry])
        else:
            groups[-1] = candidate
    return groups


def _button_digest(
    items: Sequence[tuple[Notice, DatabaseInfo, str | None]], entries: Sequence[_Entry], *, threaded: bool
) -> list[DigestPart]:
    """More than DIGEST_COMPACT_AFTER successes with download buttons: the count, then parts of one section
    (and one button) per backup, in the count's thread when `threaded`."""
    groups = _entry_groups(entries)
    head = _compact_head(items, len(groups), threaded=threaded, what=" with download buttons")
    parts = [DigestPart(head, ())]
    total = len(items)
    for number, group in enumerate(groups, start=1):
        part_text = f"{total:,} new successful backups (part {number} of {len(groups)})"
        blocks = [section(f"*{part_text}*"), *_digest_blocks(group)]
        plain = [f"*{part_text}*", *(f"• {e.line.mrkdwn}" for e in group)]
        console = [f"[OK] {part_text}", *(f"• {e.line.console}" for e in group)]
        message = Message(part_text, blocks, plain="\n".join(plain), console="\n".join(console))
        parts.append(DigestPart(message, tuple(e.index for e in group), in_thread=threaded))
    return parts


def _compact_head(
    items: Sequence[tuple[Notice, DatabaseInfo, str | None]], parts: int, *, threaded: bool, what: str
) -> Message:
    """The count message of a digest in parts: how many, of which types, and where the list follows."""
    by_type: dict[str, int] = {}
    for _, db, _ in items:
        by_type[cut(db.type_name, TYPE_MAX)] = by_type.get(cut(db.type_name, TYPE_MAX), 0) + 1
    counts = ", ".join(f"{count:,} {escape(name)}" for name, count in sorted(by_type.items(), key=lambda kv: -kv[1]))
    where = "in this message's thread" if threaded else "in the next messages"
    heading_text = f"{len(items):,} new successful backups"
    parts_count = f"{parts} part{'s' if parts != 1 else ''}"
    follow = f"The list{what} follows {where} (in {parts_count})."
    head_md = f":white_check_mark: *{heading_text}*"
    summary = [head_md, counts, follow]
    return Message(
        heading_text,
        [section("\n".join(summary))],
        plain="\n".join(summary),
        console="\n".join([f"[OK] {heading_text}", counts, follow]),
    )


def _compact_digest(items: Sequence[tuple[Notice, DatabaseInfo, str | None]], *, threaded: bool) -> list[DigestPart]:
    entries = [_digest_entry(i, n, db, link) for i, (n, db, link) in enumerate(items)]
    lines: list[tuple[int, str, str]] = []
    for entry in entries:
        md = f"• {entry.line.mrkdwn}" + (f" · <{escape(entry.link)}|download>" if entry.link else "")
        con = f"• {entry.line.console}" + (f"\n    [Download] {entry.link}" if entry.link else "")
        lines.append((entry.index, md, con))
    any_link = any(e.link for e in entries)
    groups: list[list[tuple[int, str, str]]] = [[]]
    for line in lines:
        candidate = [*groups[-1], line]
        texts = pack_sections([md for _, md, _ in candidate])
        too_long = sum(slack_len(t) for t in texts) + _HEADING_RESERVE + slack_len(TEMPORARY_LINKS)
        if groups[-1] and (len(texts) + 2 > MESSAGE_BLOCKS_MAX or too_long > MESSAGE_BLOCK_TEXT_BUDGET):
            groups.append([line])
        else:
            groups[-1] = candidate
    total = len(items)
    heading_text = f"{total:,} new successful backups"
    head = _compact_head(items, len(groups), threaded=threaded, what=" with download links" if any_link else "")
    parts = [DigestPart(head, ())]
    for number, group in enumerate(groups, start=1):
        part_text = f"{heading_text} (part {number} of {len(groups)})"
        blocks = [section(f"*{part_text}*"), *(section(t) for t in pack_sections([md for _, md, _ in group]))]
        plain = [f"*{part_text}*", *(md for _, md, _ in group)]
        console = [f"[OK] {part_text}", *(con for _, _, con in group)]
        if any_link:
            blocks.append(context(TEMPORARY_LINKS))
            plain.append(TEMPORARY_LINKS)
            console.append("  " + TEMPORARY_LINKS)
        message = Message(part_text, blocks, plain="\n".join(plain), console="\n".join(console))
        parts.append(DigestPart(message, tuple(i for i, _, _ in group), in_thread=threaded))
    return parts


# -- the console -------------------------------------------------------------------------------------------------


def console_text(message: Message, *, show_links: bool = False) -> str:
    """A readable plain-text form of a message for the terminal; download tokens hidden unless `show_links`."""
    text = message.console or _readable("\n".join(blocks_mrkdwn(message.blocks))) or message.text
    return text if show_links else mask_links(text)


def _readable(mrkdwn: str) -> str:
    """Slack markup made readable, for messages built without a console form (names keep every character)."""
    text = re.sub(r"<!date\^\d+\^[^|]*\|([^>]*)>", r"\1", mrkdwn)
    text = re.sub(r"<([^|>]+)\|([^>]+)>", r"\2 (\1)", text)
    text = re.sub(r"(?<!\w)\*([^*\n]+)\*(?!\w)", r"\1", text)  # bold markers
    for code, word in (
        ("red_circle", "[CRITICAL]"),
        ("large_orange_circle", "[WARNING]"),
        ("white_check_mark", "[OK]"),
    ):
        text = text.replace(f":{code}:", word)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


VERIFIED_SHOWN_MAX = 40  # archives named in one "verified" notice; the rest are counted


def render_verified(items: Sequence[tuple[Notice, DatabaseInfo]]) -> Message:
    """Backups whose archives were downloaded and checked in this check, with what was checked.

    Within Slack's limits at any count: the first archives are named, the rest counted ("and N more")."""
    lines: list[_Line] = []
    for notice, db in items:
        backup = notice.backup
        if backup is None:
            continue
        line = _Line().extend(who(db)).say(": ").data(backup.name or backup.id, BACKUP_NAME_MAX, code=True)
        line.say(f", {human_size(backup.size)}, ").date(backup.created_at).say("\n    ")
        lines.append(line.data(notice.detail, DETAIL_MAX))
    count = len(lines)
    heading = f"{count} backup archive{'s' if count != 1 else ''} verified"
    note = "Each archive was streamed and checked as a restore would read it, never stored."
    heading_md = f":white_check_mark: *{heading}*"
    shown: list[_Line] = []
    used = slack_len(heading_md) + slack_len(note) + _HEADING_RESERVE
    for line in lines[:VERIFIED_SHOWN_MAX]:
        cost = slack_len(line.mrkdwn) + 1
        if used + cost > MESSAGE_BLOCK_TEXT_BUDGET:
            break
        shown.append(line)
        used += cost
    more = count - len(shown)
    tail = [_Line().say(f"{ELLIPSIS}and {more} more (see `backup-monitor status`)")] if more else []
    body = [x.mrkdwn for x in [*shown, *tail]]
    texts = pack_sections(body)[: MESSAGE_BLOCKS_MAX - 2]
    blocks = [section(heading_md), *(section(t) for t in texts), context(note)]
    plain = "\n".join([heading_md, *(f"• {x}" for x in body), note])
    console = "\n".join([f"[OK] {heading}", *(f"• {x.console}" for x in [*shown, *tail]), f"  {note}"])
    return Message(heading, blocks, plain=plain, console=console)
